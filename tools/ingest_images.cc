// `shoal ingest images DIR DS`: a folder of JPEG and PNG files becomes an
// image tensor, plus a class_label tensor when the folder has one subfolder
// per class (torchvision's ImageFolder convention). The work is the
// library's: the image folder source (loader/source.h) through the write
// graph (loader/ingestor.h); this file only parses flags.
#include <optional>
#include <string>

#include "tools/commands.h"
#include "tools/ingest_run.h"

namespace shoal::tools {
namespace {

// The source's own options are bound to the flags in place (no copies).
struct IngestImagesOptions {
  // The folder is bound to the DIR argument.
  SourceSpec source = [] {
    SourceSpec s;
    s.kind = "images";
    s.paths = {""};
    return s;
  }();
  std::string dataset;
  std::optional<int> quality;
  bool no_check = false;
  IngestFlags flags;
};

Result<int> RunIngestImages(IngestImagesOptions& o) {
  if (o.quality) o.source.images.quality = *o.quality;
  o.source.images.check = !o.no_check;
  SHOAL_ASSIGN_OR_RETURN(auto source, MakeSource(o.source));
  return RunIngest(*source, o.dataset, o.flags, "images");
}

}  // namespace

void AddIngestImagesCommand(CLI::App& ingest, CommandRun* run) {
  auto options = std::make_shared<IngestImagesOptions>();
  CLI::App* cmd = ingest.add_subcommand(
      "images", "Ingest a folder of JPEG and PNG files (ImageFolder layout)");
  cmd->add_option("DIR", options->source.paths[0], "The folder to read")
      ->required();
  cmd->add_option("DS", options->dataset,
                  "The dataset to create (a path or URL)")
      ->required();
  cmd->add_option("--compression", options->source.images.compression,
                  "How images are stored: 'keep' stores each file's own "
                  "bytes (its format read from its content; a folder mixing "
                  "JPEG and PNG gives sample_compression 'image'); 'jpeg' or "
                  "'png' convert files of the other format; 'raw' or "
                  "'raw:CODEC' (e.g. raw:zstd:3) stores decoded pixels, "
                  "chunk-compressed with CODEC")
      ->capture_default_str();
  cmd->add_option("--quality", options->quality,
                  "JPEG quality of converted images, 1..100 (default 90); "
                  "JPEG files are stored as they are")
      ->check(CLI::Range(1, 100));
  cmd->add_option("--subsampling", options->source.images.subsampling,
                  "Chroma subsampling of converted JPEGs")
      ->check(CLI::IsMember({"4:4:4", "4:2:2", "4:2:0"}))
      ->capture_default_str();
  cmd->add_option("--png-level", options->source.images.png_level,
                  "zlib level of converted PNGs, 0..9")
      ->check(CLI::Range(0, 9))
      ->capture_default_str();
  cmd->add_flag("--no-check", options->no_check,
                "Store files kept as they are after reading only their "
                "header, without decoding them (faster; damage in the pixel "
                "data is then found only when the image is read)");
  AddChunkBytesOption(*cmd, options->source.images.max_chunk_bytes);
  AddIngestFlags(*cmd, options->flags);
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
      "to check it unless --no-check.\n\n"
      "The work runs in parallel (read, decode check, compress, write) with "
      "worker counts that adapt unless --workers pins them, commits every "
      "--commit-seconds, so a killed or failed ingestion keeps what it "
      "committed: --resume continues it. Ctrl-C stops at the next safe point "
      "with a commit (twice: at once).\n\n"
      "Example:\n  shoal ingest images ~/imagenette/train /data/imagenette");
  cmd->callback([options, run] {
    if (options->quality && options->source.images.compression != "jpeg") {
      throw CLI::ValidationError("--quality", "needs --compression jpeg");
    }
    *run = [options] { return RunIngestImages(*options); };
  });
}

}  // namespace shoal::tools
