// The image folder source (loader/source.h): every JPEG and PNG file under
// a folder, in byte order of the relative paths, with class subfolders as
// labels (torchvision's ImageFolder convention).
//
// Scan lists the tree and reads the first bytes of each file: that decides
// the tensor's sample compression for "keep" (one format, or "image" for a
// mix) and its dtype before anything is written, and finds files that are
// not images. Read takes a file whole; Prepare checks it by decoding it (so
// a corrupt file is found at ingestion, not in the middle of a training
// run) and converts it when the chosen compression differs from its own.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>

#include "codecs/byte_codec.h"
#include "codecs/image_codec.h"
#include "loader/internal/folder.h"
#include "loader/internal/source_util.h"
#include "loader/source.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;

// Enough for the JPEG and PNG signatures and a PNG's IHDR chunk.
constexpr size_t kSniffBytes = 33;

bool HasImageExtension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".jpe" || ext == ".jfif" ||
         ext == ".png";
}

// The format of an image file from its first bytes ("" when none), and its
// sample dtype: PNG's IHDR bit depth (byte 24) tells 16-bit files apart.
std::pair<std::string, DType> SniffFormat(ByteSpan prefix) {
  auto codec = SniffImageCodec(prefix);
  if (!codec.ok()) return {"", DType::kUInt8};
  const std::string format((*codec)->name());
  if (format == "png" && prefix.size() > 24 &&
      std::to_integer<int>(prefix[24]) == 16) {
    return {format, DType::kUInt16};
  }
  return {format, DType::kUInt8};
}

struct ImageFile {
  std::string relative;
  uint64_t size = 0;
  uint32_t label = 0;
};

class ImageFolderSource : public Source {
 public:
  ImageFolderSource(std::string dir, ImageFolderOptions options)
      : dir_(std::move(dir)), options_(std::move(options)) {}

  std::string name() const override { return "image folder '" + dir_ + "'"; }

  Result<SourceScan> Scan(bool skip_bad) override;
  Result<bool> Plan(uint64_t index, Record& record) override;
  Status Read(const Record& record, MutableByteSpan out) const override {
    return internal::ReadFileExactly(record.locator, out);
  }
  Status Prepare(Record& record, const Buffer& input) const override;

 private:
  Status ChooseFormat(const std::set<std::string>& formats,
                      const std::set<DType>& dtypes);

  std::string dir_;
  ImageFolderOptions options_;
  std::vector<ImageFile> files_;
  std::vector<std::string> class_names_;
  std::vector<Buffer> label_bytes_;  // one per class, shared by its samples
  // What Prepare makes: "keep" (the file's own bytes), a codec name to
  // convert to, or "raw" (decoded pixels).
  std::string target_;
  std::string sample_compression_;
  DType dtype_ = DType::kUInt8;
  std::shared_ptr<const ImageCodec> target_codec_;
  ImageEncodeOptions encode_;
};

Status ImageFolderSource::ChooseFormat(const std::set<std::string>& formats,
                                       const std::set<DType>& dtypes) {
  if (dtypes.size() > 1) {
    return InvalidArgument(
        "'" + dir_ +
        "' mixes 8-bit images with 16-bit PNGs; a tensor has one dtype: "
        "ingest them into separate datasets");
  }
  dtype_ = dtypes.empty() ? DType::kUInt8 : *dtypes.begin();
  const std::string& c = options_.compression;
  if (c == "keep") {
    target_ = "keep";
    sample_compression_ = formats.size() == 1 ? *formats.begin() : "image";
    return Status::OK();
  }
  if (c == "jpeg" || c == "png") {
    if (c == "jpeg" && dtype_ == DType::kUInt16) {
      return InvalidArgument(
          "16-bit PNGs cannot become JPEG (8-bit only): use png or keep");
    }
    target_ = c;
    sample_compression_ = c;
    SHOAL_ASSIGN_OR_RETURN(target_codec_, MakeImageCodec(c));
    return Status::OK();
  }
  if (c.starts_with("raw")) {
    target_ = "raw";
    sample_compression_ = "";
    return Status::OK();
  }
  return InvalidArgument("image compression '" + c +
                         "': use keep, jpeg, png or raw[:<byte codec>]");
}

Result<SourceScan> ImageFolderSource::Scan(bool skip_bad) {
  SHOAL_ASSIGN_OR_RETURN(std::vector<internal::FolderFile> entries,
                         internal::ListFolder(dir_));
  SourceScan scan;
  std::set<std::string> formats;
  std::set<DType> dtypes;
  auto bad = [&](std::string reason) -> Status {
    if (!skip_bad) return Corruption(reason);
    scan.bad.push_back(std::move(reason));
    return Status::OK();
  };
  for (const internal::FolderFile& entry : entries) {
    const std::string shown = internal::PrintableName(entry.path.string());
    if (!entry.error.empty()) {
      // A link that leads nowhere or in a circle: unreadable, not ignored.
      if (!HasImageExtension(entry.path)) {
        ++scan.ignored;
        continue;
      }
      SHOAL_RETURN_IF_ERROR(bad(shown + ": " + entry.error));
      continue;
    }
    auto prefix = internal::ReadFilePrefix(entry.path, kSniffBytes);
    if (!prefix.ok()) {
      SHOAL_RETURN_IF_ERROR(bad(std::string(prefix.status().message())));
      continue;
    }
    auto [format, dtype] = SniffFormat(*prefix);
    if (format.empty()) {
      if (!HasImageExtension(entry.path)) {
        ++scan.ignored;
        continue;
      }
      SHOAL_RETURN_IF_ERROR(
          bad(shown + ": not a JPEG or PNG file despite its name"));
      continue;
    }
    formats.insert(format);
    dtypes.insert(dtype);
    files_.push_back({entry.relative, entry.size, 0});
  }
  if (files_.empty()) {
    return NotFound("no JPEG or PNG files under '" + dir_ + "'" +
                    (scan.bad.empty() ? "" : " that could be read"));
  }
  std::vector<std::string> relatives;
  relatives.reserve(files_.size());
  for (const ImageFile& f : files_) relatives.push_back(f.relative);
  SHOAL_ASSIGN_OR_RETURN(internal::FolderClasses classes,
                         internal::AssignClasses(dir_, relatives, "images"));
  class_names_ = std::move(classes.names);
  for (size_t i = 0; i < files_.size(); ++i) {
    files_[i].label = classes.labels[i];
    scan.input_bytes += files_[i].size;
  }
  label_bytes_ = internal::LabelBuffers(class_names_.size());
  SHOAL_RETURN_IF_ERROR(ChooseFormat(formats, dtypes));
  encode_.quality = options_.quality;
  encode_.subsampling = options_.subsampling;
  encode_.compression_level = options_.png_level;

  TensorSpec images;
  images.name = "images";
  images.htype = HType::kImage;
  images.dtype = dtype_;
  images.sample_compression = sample_compression_;
  images.max_chunk_bytes = options_.max_chunk_bytes;
  if (target_ == "raw") {
    const std::string& c = options_.compression;
    images.chunk_compression = c.size() > 4 ? c.substr(4) : "";
  }
  scan.tensors.push_back(std::move(images));
  if (!class_names_.empty()) {
    scan.tensors.push_back(internal::LabelsSpec(class_names_));
  }
  scan.num_records = files_.size();
  return scan;
}

Result<bool> ImageFolderSource::Plan(uint64_t index, Record& record) {
  if (index >= files_.size()) return false;
  const ImageFile& f = files_[index];
  record.name = f.relative;
  // Assigned in place: the record's strings keep their capacity from file
  // to file.
  record.locator.assign(dir_);
  record.locator += '/';
  record.locator += f.relative;
  record.read_bytes = f.size;
  record.input_bytes = f.size;
  record.locator_index = f.label;
  return true;
}

Status ImageFolderSource::Prepare(Record& record, const Buffer& input) const {
  record.columns.resize(class_names_.empty() ? 1 : 2);
  RecordColumn& image = record.columns[0];
  auto prepared = [&]() -> Status {
    SHOAL_ASSIGN_OR_RETURN(auto codec, SniffImageCodec(input.span()));
    SHOAL_ASSIGN_OR_RETURN(ImageInfo info, codec->ReadInfo(input.span()));
    if (info.dtype != dtype_) {
      return InvalidArgument("a " + std::string(DTypeName(info.dtype)) +
                             " image in a folder of " +
                             std::string(DTypeName(dtype_)) + " images");
    }
    const bool keep = target_ == "keep" || target_ == codec->name();
    image.kind = RecordColumn::Kind::kEncodedImage;
    image.count = 1;
    if (keep && !options_.check) {
      image.data = input;
      return Status::OK();
    }
    // Scratch that each worker thread keeps.
    thread_local std::vector<std::byte> pixels;
    if (keep) {  // stored as it came: checked, not converted
      SHOAL_RETURN_IF_ERROR(codec->Check(input.span(), pixels));
      image.data = input;
      return Status::OK();
    }
    SHOAL_ASSIGN_OR_RETURN(Shape shape, codec->OutputShape(info, {}));
    SHOAL_ASSIGN_OR_RETURN(uint64_t size, shape.ByteSize(info.dtype));
    if (target_ == "raw") {
      SHOAL_ASSIGN_OR_RETURN(MutableBuffer pixels,
                             MutableBuffer::Allocate(size));
      SHOAL_RETURN_IF_ERROR(codec->Decode(input.span(), {}, pixels.span()));
      image.kind = RecordColumn::Kind::kArrays;
      image.sample_shape = shape;
      image.data = std::move(pixels).Freeze();
      return Status::OK();
    }
    pixels.resize(size);
    SHOAL_RETURN_IF_ERROR(codec->Decode(input.span(), {}, pixels));
    auto converted = target_codec_->Encode(shape, info.dtype, pixels, encode_);
    if (!converted.ok()) {
      return converted.status().WithContext(
          "converting " + std::string(codec->name()) + " " + shape.ToString() +
          " to " + target_);
    }
    image.data = std::move(*converted);
    return Status::OK();
  };
  Status s = prepared();
  if (!s.ok()) return s.WithContext(internal::PrintableName(record.locator));
  internal::SourceInfo(record.name, &image.info);
  if (!class_names_.empty()) {
    RecordColumn& label = record.columns[1];
    label.kind = RecordColumn::Kind::kArrays;
    label.count = 1;
    label.sample_shape = Shape{};
    label.data = label_bytes_[record.locator_index];
  }
  return Status::OK();
}

}  // namespace

std::unique_ptr<Source> MakeImageFolderSource(std::string dir,
                                              ImageFolderOptions options) {
  return std::make_unique<ImageFolderSource>(std::move(dir),
                                             std::move(options));
}

namespace {
[[maybe_unused]] const bool kRegistered = SourceRegistry::Register(
    "images", [](const SourceSpec& spec) -> Result<std::unique_ptr<Source>> {
      if (spec.paths.size() != 1) {
        return InvalidArgument("an images source takes one folder");
      }
      return MakeImageFolderSource(spec.paths[0], spec.images);
    });
}  // namespace

}  // namespace shoal
