// The NPY source (loader/source.h): NumPy .npy files, in one of two ways.
//
// - One file: its first axis is the samples. Records are blocks of rows,
//   read with pread at their offset (in parallel); the samples are the
//   rest of the array's shape.
// - Several files, or a folder of them (all .npy files under it, in byte
//   order of their relative paths): one sample each. All must have one
//   dtype and rank; their shapes may differ (a ragged tensor). Each file's
//   header is read and checked by Scan, so a bad file is found before
//   anything is written (or, with skip_bad, left out and named); the files
//   are opened again by Read, since a folder may hold more files than a
//   process may keep open.
//
// A header is a claim: the data it declares must fill the rest of the file
// exactly, which is checked before anything is allocated. Big-endian data
// is converted to little-endian by Read, into the record's own buffer.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "loader/internal/array_bytes.h"
#include "loader/internal/folder.h"
#include "loader/internal/npy.h"
#include "loader/internal/random_access_file.h"
#include "loader/internal/row_blocks.h"
#include "loader/internal/source_util.h"
#include "loader/source.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;
using internal::NpyLayout;
using internal::RandomAccessFile;

bool NativeLittleEndian() { return std::endian::native == std::endian::little; }

std::string DumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// One file of one sample.
struct NpyFile {
  std::string path;
  std::string relative;  // relative to the folder, or as given
  std::string name;      // printable relative: record name
  Shape shape;
  uint64_t file_size = 0;
  uint64_t data_offset = 0;
  uint64_t data_bytes = 0;
  bool swap = false;  // big-endian data of multi-byte elements
};

class NpySource : public Source {
 public:
  NpySource(std::vector<std::string> paths, std::string tensor,
            ArrayFileOptions options)
      : paths_(std::move(paths)),
        tensor_(std::move(tensor)),
        options_(std::move(options)) {}

  std::string name() const override {
    if (paths_.size() == 1) {
      return "NumPy '" + internal::PrintableName(paths_[0]) + "'";
    }
    return "NumPy files '" + internal::PrintableName(paths_.front()) +
           "' ... '" + internal::PrintableName(paths_.back()) + "' (" +
           std::to_string(paths_.size()) + ")";
  }

  Result<SourceScan> Scan(bool skip_bad) override;
  Result<bool> Plan(uint64_t index, Record& record) override;
  Status Read(const Record& record, MutableByteSpan out) const override;
  Status Prepare(Record& record, const Buffer& input) const override;

 private:
  // The one-file form: rows of a single array.
  Status ScanRows(SourceScan& scan);
  // The one-sample-per-file form; `folder` when the files were listed from
  // a folder (for the tensor info).
  Status ScanFiles(std::vector<std::pair<std::string, std::string>> files,
                   bool skip_bad, const std::string& folder, SourceScan& scan);
  // The layout of the file `name` at `path`, checked as a sample of this
  // source: rank within Shape::kMaxRank, and the dtype and rank of the
  // first file.
  Result<NpyFile> ScanFile(std::string path, std::string name);
  TensorSpec Spec(std::string info) const;

  std::vector<std::string> paths_;
  std::string tensor_;
  ArrayFileOptions options_;
  bool scanned_ = false;
  DType dtype_ = DType::kUInt8;
  int rank_ = -1;

  // One file of rows.
  bool rows_ = false;
  std::unique_ptr<RandomAccessFile> file_;
  std::string file_name_;
  NpyLayout layout_;
  Shape sample_shape_;
  uint64_t row_bytes_ = 0;
  internal::RowBlocks blocks_;

  // Files of one sample each.
  std::vector<NpyFile> files_;
};

TensorSpec NpySource::Spec(std::string info) const {
  TensorSpec spec;
  spec.name = tensor_;
  spec.htype = HType::kGeneric;
  spec.dtype = dtype_;
  spec.rank = rank_;
  spec.chunk_compression = options_.compression;
  spec.max_chunk_bytes = options_.max_chunk_bytes;
  spec.info = std::move(info);
  return spec;
}

Result<SourceScan> NpySource::Scan(bool skip_bad) {
  if (paths_.empty()) return InvalidArgument("NumPy source: no files given");
  if (options_.rows_per_record == 0) {
    return InvalidArgument(name() + ": rows_per_record must be at least 1");
  }
  files_.clear();
  rank_ = -1;
  SourceScan scan;
  std::error_code ec;
  if (paths_.size() == 1 && fs::is_directory(paths_[0], ec)) {
    SHOAL_ASSIGN_OR_RETURN(std::vector<internal::FolderFile> entries,
                           internal::ListFolder(paths_[0]));
    std::vector<std::pair<std::string, std::string>> files;
    for (internal::FolderFile& entry : entries) {
      if (entry.path.extension() != ".npy") {
        ++scan.ignored;
        continue;
      }
      if (!entry.error.empty()) {
        const std::string reason =
            internal::PrintableName(entry.path.string()) + ": " + entry.error;
        if (!skip_bad) return IOError(reason);
        scan.bad.push_back(reason);
        continue;
      }
      files.emplace_back(entry.path.string(), std::move(entry.relative));
    }
    SHOAL_RETURN_IF_ERROR(
        ScanFiles(std::move(files), skip_bad, paths_[0], scan));
  } else if (paths_.size() == 1) {
    SHOAL_RETURN_IF_ERROR(ScanRows(scan));
  } else {
    std::vector<std::pair<std::string, std::string>> files;
    for (const std::string& path : paths_) files.emplace_back(path, path);
    SHOAL_RETURN_IF_ERROR(ScanFiles(std::move(files), skip_bad, "", scan));
  }
  scanned_ = true;
  return scan;
}

Status NpySource::ScanRows(SourceScan& scan) {
  rows_ = true;
  SHOAL_ASSIGN_OR_RETURN(file_, RandomAccessFile::Open(paths_[0]));
  SHOAL_ASSIGN_OR_RETURN(layout_, internal::ReadNpyLayout(*file_));
  const std::string shown = internal::PrintableName(paths_[0]);
  file_name_ = internal::PrintableName(fs::path(paths_[0]).filename().string());
  const std::vector<uint64_t>& shape = layout_.shape;
  if (shape.empty()) {
    return InvalidArgument(
        shown +
        ": a 0-dimensional array; a single .npy file gives its "
        "samples along its first axis (give several files, or a "
        "folder, for one sample per file)");
  }
  const std::span<const uint64_t> sample_dims = std::span(shape).subspan(1);
  if (sample_dims.size() > Shape::kMaxRank) {
    return InvalidArgument(
        shown + ": samples of rank " + std::to_string(sample_dims.size()) +
        ", more than shoal's " + std::to_string(Shape::kMaxRank));
  }
  const std::optional<uint64_t> row_bytes =
      internal::CheckedByteSize(sample_dims, layout_.dtype);
  if (!row_bytes) return Corruption(shown + ": npy shape overflows 64 bits");
  dtype_ = layout_.dtype;
  rank_ = static_cast<int>(sample_dims.size());
  sample_shape_ = Shape(sample_dims);
  row_bytes_ = *row_bytes;
  blocks_ =
      internal::RowBlocks::Make(shape[0], row_bytes_, options_.rows_per_record);
  scan.num_records = blocks_.records;
  scan.input_bytes = file_->size();
  scan.tensors.push_back(Spec(DumpJson(
      {{"source", "npy"}, {"file", file_name_}, {"samples", shape[0]}})));
  return Status::OK();
}

Result<NpyFile> NpySource::ScanFile(std::string path, std::string name) {
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file,
                         RandomAccessFile::Open(path));
  SHOAL_ASSIGN_OR_RETURN(NpyLayout layout, internal::ReadNpyLayout(*file));
  const std::string shown = internal::PrintableName(path);
  const int rank = static_cast<int>(layout.shape.size());
  if (layout.shape.size() > Shape::kMaxRank) {
    return InvalidArgument(shown + ": an array of rank " +
                           std::to_string(rank) + ", more than shoal's " +
                           std::to_string(Shape::kMaxRank));
  }
  if (rank_ < 0) {
    dtype_ = layout.dtype;
    rank_ = rank;
  } else if (layout.dtype != dtype_ || rank != rank_) {
    return InvalidArgument(
        shown + ": " + std::string(DTypeName(layout.dtype)) + " of rank " +
        std::to_string(rank) + ", where '" + files_.front().name + "' has " +
        std::string(DTypeName(dtype_)) + " of rank " + std::to_string(rank_) +
        ": the samples of one tensor share dtype and rank");
  }
  NpyFile out;
  out.path = std::move(path);
  out.name = internal::PrintableName(name);
  out.relative = std::move(name);
  out.shape = Shape(layout.shape);
  out.file_size = file->size();
  out.data_offset = layout.data_offset;
  out.data_bytes = layout.data_bytes;
  out.swap = layout.little_endian != NativeLittleEndian() &&
             DTypeSize(layout.dtype) > 1;
  return out;
}

Status NpySource::ScanFiles(
    std::vector<std::pair<std::string, std::string>> files, bool skip_bad,
    const std::string& folder, SourceScan& scan) {
  rows_ = false;
  for (auto& [path, name] : files) {
    Result<NpyFile> file = ScanFile(path, name);
    if (!file.ok()) {
      if (!skip_bad) return file.status();
      scan.bad.push_back(std::string(file.status().message()));
      continue;
    }
    scan.input_bytes += file->file_size;
    files_.push_back(std::move(*file));
  }
  // Appended: GCC 12 at -O3 warns falsely (-Wrestrict, GCC bug 105329) on
  // a literal plus a temporary string.
  std::string where = name();
  if (!folder.empty()) {
    where.assign("'").append(internal::PrintableName(folder)).append("'");
  }
  if (files_.empty()) {
    return NotFound("no .npy files in " + where +
                    (scan.bad.empty() ? "" : " that could be read"));
  }
  nlohmann::json info = {{"source", "npy"}, {"files", files_.size()}};
  if (!folder.empty()) info["folder"] = internal::PrintableName(folder);
  scan.num_records = files_.size();
  scan.tensors.push_back(Spec(DumpJson(info)));
  return Status::OK();
}

Result<bool> NpySource::Plan(uint64_t index, Record& record) {
  if (!scanned_) return FailedPrecondition(name() + ": Plan before Scan");
  if (rows_) {
    if (index >= blocks_.records) return false;
    const uint64_t first = blocks_.first(index);
    record.name = blocks_.Name(index, file_name_);
    record.locator = paths_[0];
    record.locator_index = first;
    record.read_bytes = blocks_.count_from(first) * row_bytes_;
    record.input_bytes = record.read_bytes;
    return true;
  }
  if (index >= files_.size()) return false;
  const NpyFile& file = files_[index];
  record.name = file.name;
  record.locator = file.path;
  record.locator_index = index;
  record.read_bytes = file.data_bytes;
  record.input_bytes = file.file_size;
  return true;
}

Status NpySource::Read(const Record& record, MutableByteSpan out) const {
  if (out.size() != record.read_bytes) {
    return Internal(record.name + ": read into " + std::to_string(out.size()) +
                    " bytes, the record has " +
                    std::to_string(record.read_bytes));
  }
  if (rows_) {
    SHOAL_RETURN_IF_ERROR(
        file_
            ->ReadAt(layout_.data_offset + record.locator_index * row_bytes_,
                     out)
            .WithContext(record.name));
    if (layout_.little_endian != NativeLittleEndian()) {
      internal::SwapElementBytes(out, DTypeSize(dtype_));
    }
    return Status::OK();
  }
  const NpyFile& file = files_[record.locator_index];
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> f,
                         RandomAccessFile::Open(file.path));
  if (f->size() != file.file_size) {
    return Corruption(record.name +
                      ": the file changed size since it was "
                      "scanned (" +
                      std::to_string(file.file_size) + " to " +
                      std::to_string(f->size()) + " bytes)");
  }
  SHOAL_RETURN_IF_ERROR(
      f->ReadAt(file.data_offset, out).WithContext(record.name));
  if (file.swap) internal::SwapElementBytes(out, DTypeSize(dtype_));
  return Status::OK();
}

Status NpySource::Prepare(Record& record, const Buffer& input) const {
  record.columns.resize(1);
  RecordColumn& column = record.columns[0];
  column.kind = RecordColumn::Kind::kArrays;
  column.data = input;
  if (rows_) {
    column.count = blocks_.count_from(record.locator_index);
    column.sample_shape = sample_shape_;
    return Status::OK();
  }
  column.count = 1;
  column.sample_shape = files_[record.locator_index].shape;
  internal::SourceInfo(files_[record.locator_index].relative, &column.info);
  return Status::OK();
}

}  // namespace

std::unique_ptr<Source> MakeNpySource(std::vector<std::string> paths,
                                      std::string tensor,
                                      ArrayFileOptions options) {
  return std::make_unique<NpySource>(std::move(paths), std::move(tensor),
                                     std::move(options));
}

namespace {
[[maybe_unused]] const bool kRegistered = SourceRegistry::Register(
    "npy", [](const SourceSpec& spec) -> Result<std::unique_ptr<Source>> {
      if (spec.paths.empty()) {
        return InvalidArgument("an npy source takes .npy files or a folder");
      }
      return MakeNpySource(spec.paths, spec.tensor, spec.arrays);
    });
}  // namespace

}  // namespace shoal
