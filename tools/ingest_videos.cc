// `shoal ingest videos DIR DS`: a folder of video files becomes a video
// tensor (files stored as they came, sample_compression mp4, with a frame
// index in each sample's info), plus a class_label tensor when the folder
// has one subfolder per class. The video folder source (loader/source.h)
// through the write graph (loader/ingestor.h); this file parses flags.
#include <memory>
#include <string>

#include "tools/commands.h"
#include "tools/ingest_run.h"

namespace shoal::tools {

void AddIngestVideosCommand(CLI::App& ingest, CommandRun* run) {
  auto command = std::make_shared<IngestCommand>();
  CLI::App* cmd = AddFolderIngestCommand(
      ingest, "videos",
      "Ingest a folder of video files (class subfolders = labels)", *command);
  AddIngestFlags(*cmd, *command);
  cmd->footer(
      "Every file under DIR with a video extension (.mp4 .m4v .mov .mkv "
      ".webm .avi .mpg .mpeg .ts .3gp .ogv; hidden files and folders are "
      "skipped, folder symlinks not followed) becomes a sample of the tensor "
      "'videos' (htype video, [frames, H, W, 3] uint8 when decoded), in byte "
      "order of the relative paths, stored exactly as it came (never "
      "re-encoded, never tiled: a video larger than --chunk-bytes gets a "
      "chunk of its own). Each file's packets are read to build its frame "
      "index (pts and keyframes, kept in the sample's info with codec, size, "
      "rate and colour) and its first frame is decoded as a check. When DIR "
      "has subfolders, each top-level subfolder is a class: the tensor "
      "'labels' (class_label, uint32) gets the folder names, sorted. "
      "Ingestion is parallel and resumable as for images.\n\n"
      "Example:\n  shoal ingest videos ~/ucf101/train /data/ucf101\n"
      "  shoal get /data/ucf101 videos 0 --frames 0:16 -o clip.npy");
  cmd->callback([command, run] { SetIngestRun(command, "videos", run); });
}

}  // namespace shoal::tools
