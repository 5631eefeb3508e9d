// `shoal ingest videos DIR DS`: a folder of video files becomes a video
// tensor (files stored as they came, sample_compression mp4), plus a
// class_label tensor when the folder has one subfolder per class.
//
// Each file is read whole and probed (video/video.h): its packets are
// demuxed, without decoding, into the frame index that later reads use to
// seek, and its first frame is decoded, which proves the stream decodes. The
// index goes into the sample's info, so reads never rescan the file. A file
// that is not a readable video stops the ingestion with its path in the
// message, or with --skip-bad is named, counted and left out.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "loader/video_sample.h"
#include "tools/commands.h"
#include "tools/internal/folder.h"
#include "video/video.h"

namespace shoal::tools {
namespace {

namespace fs = std::filesystem;

struct IngestVideosOptions {
  std::string dir;
  std::string dataset;
  bool skip_bad = false;
  bool overwrite = false;
  uint64_t chunk_bytes = kDefaultMaxChunkBytes;
};

bool HasVideoExtension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  for (const char* known : {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi",
                            ".mpg", ".mpeg", ".ts", ".3gp", ".ogv"}) {
    if (ext == known) return true;
  }
  return false;
}

struct IngestVideosTotals {
  uint64_t videos = 0;
  uint64_t classes = 0;
  uint64_t ignored = 0;
  uint64_t frames = 0;
  double seconds_of_video = 0;
  uint64_t file_bytes = 0;
  std::vector<std::string> bad;
};

Result<IngestVideosTotals> Fill(const IngestVideosOptions& options,
                                const std::vector<FolderFile>& files,
                                const FolderClasses& classes,
                                IngestVideosTotals totals, Dataset& dataset) {
  TensorSpec video_spec;
  video_spec.name = "videos";
  video_spec.htype = HType::kVideo;
  video_spec.sample_compression = "mp4";
  video_spec.max_chunk_bytes = options.chunk_bytes;
  SHOAL_ASSIGN_OR_RETURN(Tensor * videos, dataset.CreateTensor(video_spec));
  Tensor* labels = nullptr;
  if (!classes.names.empty()) {
    TensorSpec label_spec;
    label_spec.name = "labels";
    label_spec.htype = HType::kClassLabel;
    label_spec.dtype = DType::kUInt32;
    label_spec.rank = 0;
    label_spec.chunk_compression = "lz4";
    label_spec.class_names = classes.names;
    SHOAL_ASSIGN_OR_RETURN(labels, dataset.CreateTensor(label_spec));
  }
  totals.classes = classes.names.size();
  Progress progress("ingest", "videos");
  std::vector<std::byte> bytes;
  for (size_t i = 0; i < files.size(); ++i) {
    const FolderFile& file = files[i];
    Status read = ReadWholeFile(file.path, bytes);
    // The Buffer takes the bytes over (no copy); the next file gets a new
    // vector.
    const Buffer video = Buffer::FromVector(std::move(bytes));
    bytes = {};
    Result<VideoProbe> probe = read.ok() ? ProbeVideo(video, file.path.string())
                                         : Result<VideoProbe>(read);
    if (!probe.ok()) {
      if (!options.skip_bad) return probe.status();
      std::fprintf(stderr, "shoal: skipped %s\n",
                   std::string(probe.status().message()).c_str());
      totals.bad.emplace_back(probe.status().message());
      continue;
    }
    const VideoInfo& info = probe->info;
    const Shape shape{info.frame_count, info.height, info.width, 3};
    // From here on a failure is the dataset's, never skipped.
    SHOAL_RETURN_IF_ERROR(videos->AppendVideo(
        video.span(), shape, VideoSampleInfo(file.relative, *probe)));
    if (labels != nullptr) {
      SHOAL_RETURN_IF_ERROR(labels->Append(
          Shape{},
          std::as_bytes(std::span<const uint32_t>(&classes.labels[i], 1))));
    }
    ++totals.videos;
    totals.frames += info.frame_count;
    totals.seconds_of_video += info.duration_seconds;
    totals.file_bytes += video.size();
    progress.Update(i + 1, files.size(), totals.file_bytes);
  }
  if (totals.videos == 0) {
    return NotFound("none of the " + Count(files.size(), "video file") +
                    " under '" + options.dir + "' could be read");
  }
  SHOAL_RETURN_IF_ERROR(dataset.Flush());
  progress.Finish();
  return totals;
}

Result<IngestVideosTotals> IngestVideos(const IngestVideosOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(std::vector<FolderFile> all, ListFolder(options.dir));
  IngestVideosTotals totals;
  std::vector<FolderFile> files;
  std::vector<std::string> relatives;
  for (FolderFile& f : all) {
    if (!HasVideoExtension(f.path)) {
      ++totals.ignored;
      continue;
    }
    relatives.push_back(f.relative);
    files.push_back(std::move(f));
  }
  if (files.empty()) {
    return NotFound("no video files (.mp4, .mov, .mkv, .webm, ...) under '" +
                    options.dir + "'");
  }
  SHOAL_ASSIGN_OR_RETURN(FolderClasses classes,
                         AssignClasses(options.dir, relatives, "videos"));
  return CreateAndFill<IngestVideosTotals>(
      options.dataset, options.overwrite, [&](Dataset& dataset) {
        return Fill(options, files, classes, std::move(totals), dataset);
      });
}

Result<int> RunIngestVideos(const IngestVideosOptions& options) {
  const Stopwatch clock;
  SHOAL_ASSIGN_OR_RETURN(IngestVideosTotals totals, IngestVideos(options));
  const double seconds = clock.seconds();
  std::printf(
      "ingest: %s (%s) in %.2f s (%s of files); %llu frames, %.1f s of "
      "video, stored as they came (sample_compression mp4)\n",
      Count(totals.videos, "video").c_str(),
      totals.classes == 0 ? "no classes"
      : totals.classes == 1
          ? "1 class"
          : (std::to_string(totals.classes) + " classes").c_str(),
      seconds,
      FormatRate(static_cast<double>(totals.file_bytes), seconds).c_str(),
      static_cast<unsigned long long>(totals.frames), totals.seconds_of_video);
  PrintIngestSkips(totals.ignored, "non-video file", totals.bad.size());
  return kExitOk;
}

}  // namespace

void AddIngestVideosCommand(CLI::App& ingest, CommandRun* run) {
  auto options = std::make_shared<IngestVideosOptions>();
  CLI::App* cmd = ingest.add_subcommand(
      "videos", "Ingest a folder of video files (class subfolders = labels)");
  cmd->add_option("DIR", options->dir, "The folder to read")->required();
  cmd->add_option("DS", options->dataset,
                  "The dataset to create (a path or URL)")
      ->required();
  cmd->add_flag("--skip-bad", options->skip_bad,
                "Skip files that are not readable videos (each is named on "
                "stderr and counted) instead of stopping at the first");
  cmd->add_flag("--overwrite", options->overwrite,
                "Replace a dataset that exists at DS");
  AddChunkBytesOption(*cmd, options->chunk_bytes);
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
      "'labels' (class_label, uint32) gets the folder names, sorted. A "
      "failed ingestion removes what it wrote.\n\n"
      "Example:\n  shoal ingest videos ~/ucf101/train /data/ucf101\n"
      "  shoal get /data/ucf101 videos 0 --frames 0:16 -o clip.npy");
  cmd->callback([options, run] {
    *run = [options] { return RunIngestVideos(*options); };
  });
}

}  // namespace shoal::tools
