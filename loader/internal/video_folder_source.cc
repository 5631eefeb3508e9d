// The video folder source (loader/source.h): every file with a video
// extension under a folder, stored as it came (sample_compression mp4), with
// class subfolders as labels. Prepare probes each file (video/video.h): its
// packets are demuxed, without decoding, into the frame index that reads
// later seek with, and its first frame is decoded, which proves the stream
// decodes. The index goes into the sample's info.
#include <algorithm>
#include <filesystem>

#include "loader/internal/folder.h"
#include "loader/internal/source_util.h"
#include "loader/source.h"
#include "loader/video_sample.h"
#include "video/video.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;

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

class VideoFolderSource : public Source {
 public:
  VideoFolderSource(std::string dir, VideoFolderOptions options)
      : dir_(std::move(dir)), options_(options) {}

  std::string name() const override { return "video folder '" + dir_ + "'"; }

  Result<SourceScan> Scan(bool skip_bad) override {
    SHOAL_ASSIGN_OR_RETURN(std::vector<internal::FolderFile> all,
                           internal::ListFolder(dir_));
    SourceScan scan;
    std::vector<std::string> relatives;
    for (internal::FolderFile& f : all) {
      if (!HasVideoExtension(f.path)) {
        ++scan.ignored;
        continue;
      }
      if (!f.error.empty()) {
        std::string reason =
            internal::PrintableName(f.path.string()) + ": " + f.error;
        if (!skip_bad) return Corruption(reason);
        scan.bad.push_back(std::move(reason));
        continue;
      }
      relatives.push_back(f.relative);
      files_.push_back(std::move(f));
    }
    if (files_.empty()) {
      return NotFound("no video files (.mp4, .mov, .mkv, .webm, ...) under '" +
                      dir_ + "'");
    }
    SHOAL_ASSIGN_OR_RETURN(internal::FolderClasses classes,
                           internal::AssignClasses(dir_, relatives, "videos"));
    class_names_ = std::move(classes.names);
    labels_ = std::move(classes.labels);
    label_bytes_ = internal::LabelBuffers(class_names_.size());
    TensorSpec videos;
    videos.name = "videos";
    videos.htype = HType::kVideo;
    videos.sample_compression = "mp4";
    videos.max_chunk_bytes = options_.max_chunk_bytes;
    scan.tensors.push_back(std::move(videos));
    if (!class_names_.empty()) {
      scan.tensors.push_back(internal::LabelsSpec(class_names_));
    }
    for (const auto& f : files_) scan.input_bytes += f.size;
    scan.num_records = files_.size();
    return scan;
  }

  Result<bool> Plan(uint64_t index, Record& record) override {
    if (index >= files_.size()) return false;
    const internal::FolderFile& f = files_[index];
    record.name = f.relative;
    record.locator = f.path.string();
    record.read_bytes = f.size;
    record.input_bytes = f.size;
    record.locator_index = class_names_.empty() ? 0 : labels_[index];
    return true;
  }

  Status Read(const Record& record, MutableByteSpan out) const override {
    return internal::ReadFileExactly(record.locator, out);
  }

  Status Prepare(Record& record, const Buffer& input) const override {
    const std::string shown = internal::PrintableName(record.locator);
    SHOAL_ASSIGN_OR_RETURN(VideoProbe probe, ProbeVideo(input, shown));
    record.columns.resize(class_names_.empty() ? 1 : 2);
    RecordColumn& video = record.columns[0];
    video.kind = RecordColumn::Kind::kVideo;
    video.count = 1;
    video.sample_shape =
        Shape{probe.info.frame_count, probe.info.height, probe.info.width, 3};
    video.data = input;
    video.info = VideoSampleInfo(internal::PrintableName(record.name), probe);
    if (!class_names_.empty()) {
      RecordColumn& label = record.columns[1];
      label.kind = RecordColumn::Kind::kArrays;
      label.count = 1;
      label.sample_shape = Shape{};
      label.data = label_bytes_[record.locator_index];
    }
    return Status::OK();
  }

 private:
  std::string dir_;
  VideoFolderOptions options_;
  std::vector<internal::FolderFile> files_;
  std::vector<std::string> class_names_;
  std::vector<uint32_t> labels_;
  std::vector<Buffer> label_bytes_;
};

}  // namespace

std::unique_ptr<Source> MakeVideoFolderSource(std::string dir,
                                              VideoFolderOptions options) {
  return std::make_unique<VideoFolderSource>(std::move(dir), options);
}

namespace {
[[maybe_unused]] const bool kRegistered = SourceRegistry::Register(
    "videos", [](const SourceSpec& spec) -> Result<std::unique_ptr<Source>> {
      if (spec.paths.size() != 1) {
        return InvalidArgument("a videos source takes one folder");
      }
      return MakeVideoFolderSource(spec.paths[0], spec.videos);
    });
}  // namespace

}  // namespace shoal
