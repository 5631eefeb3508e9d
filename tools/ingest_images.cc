// `shoal ingest images DIR DS`: a folder of JPEG and PNG files becomes an
// image tensor, plus a class_label tensor when the folder has one subfolder
// per class (torchvision's ImageFolder convention). The work is the
// library's: the image folder source (loader/source.h) through the write
// graph (loader/ingestor.h); this file only parses flags.
#include <memory>
#include <string>

#include "tools/commands.h"
#include "tools/ingest_run.h"

namespace shoal::tools {

void AddIngestImagesCommand(CLI::App& ingest, CommandRun* run) {
  auto command = std::make_shared<IngestCommand>();
  CLI::App* cmd = AddFolderIngestCommand(
      ingest, "images",
      "Ingest a folder of JPEG and PNG files (ImageFolder layout)", *command);
  ConfigFlags& f = command->flags;
  f.Add(*cmd, "--compression", "ingest.source.compression");
  CLI::Option* quality = f.Add(*cmd, "--quality", "ingest.source.quality");
  f.Add(*cmd, "--subsampling", "ingest.source.subsampling");
  f.Add(*cmd, "--png-level", "ingest.source.png_level");
  f.AddSwitch(*cmd, "--no-check", "ingest.source.check", "false",
              "Store files kept as they are after reading only their "
              "header, without decoding them (faster; damage in the pixel "
              "data is then found only when the image is read)");
  AddIngestFlags(*cmd, *command);
  cmd->footer(
      "Every JPEG and PNG file under DIR (found by content; hidden files and "
      "folders are skipped, folder symlinks are not followed, files with "
      "other content and no image extension are ignored and counted, "
      "unreadable ones - a symlink loop - are bad files) becomes a sample of "
      "the tensor 'images' (htype image, [H, W, C], uint8, or uint16 for "
      "16-bit PNGs), in byte order of the relative paths. Files are stored "
      "as they came whatever their size (a file larger than a chunk gets a "
      "chunk of its own). When DIR has subfolders, each top-level subfolder "
      "is a class: the tensor 'labels' (class_label, uint32) gets the folder "
      "names, sorted, as class names. Each image's info JSON records its "
      "path relative to DIR: {\"path\": \"cat/001.jpg\"} (a name that is not "
      "UTF-8 also gets \"path_hex\", its bytes). Every file is decoded once "
      "to check it unless --no-check (a JPEG at 1/8 scale: every "
      "coefficient is still read, so damage is found as by a full "
      "decode).\n\n"
      "The work runs in parallel (read, decode check, compress, write) with "
      "worker counts that adapt unless --workers pins them, commits every "
      "--commit-seconds, so a killed or failed ingestion keeps what it "
      "committed: --resume continues it. Ctrl-C stops at the next safe point "
      "with a commit (twice: at once).\n\n"
      "Every option is also a key of a job file (in brackets); --config "
      "reads one (configs/imagefolder-ingest.yaml), the flags given override "
      "it.\n\n"
      "Example:\n  shoal ingest images ~/imagenette/train /data/imagenette");
  cmd->callback([command, run, quality] {
    SetIngestRun(command, "images", run, [quality](const JobConfig& job) {
      if (quality->count() > 0 && job.ingest.compression != "jpeg") {
        throw CLI::ValidationError("--quality", "needs --compression jpeg");
      }
    });
  });
}

}  // namespace shoal::tools
