// The IDX source (loader/source.h): the images file of the MNIST family and
// optionally its labels file, plain or gzip, as blocks of rows. The tensors
// are those `shoal ingest idx` has always made: "images" (htype image,
// uint8, samples [H, W, 1], or [H, W, C] from an [N, H, W, C] file) and
// "labels" (class_label, uint32 scalars).
//
// A plain file is read where it lies: Plan says which rows, Read preads
// them, in parallel. A gzip stream can only be decompressed from its start,
// so Plan (serial, in order) decompresses each record's rows into a buffer
// of the record's own, one record at a time; a resumed ingestion starts by
// decompressing and dropping the rows already in. Scan reads the labels
// file once as well, in small pieces, for its largest label: the class
// names are part of the schema, fixed before anything is written. Labels
// are one byte per image, so that pass costs little next to the images.
//
// Both files hold bytes (IDX type 0x08), so IDX's big-endian element order
// needs no conversion.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "loader/internal/array_bytes.h"
#include "loader/internal/idx.h"
#include "loader/internal/random_access_file.h"
#include "loader/internal/row_blocks.h"
#include "loader/internal/source_util.h"
#include "loader/source.h"

namespace shoal {
namespace {

using internal::IdxReader;

// Pieces in which Scan reads the labels.
constexpr size_t kLabelPiece = 64 * 1024;

// One of the source's files: the images or the labels.
struct IdxInput {
  std::string path;
  std::string shown;      // PrintableName(path), for messages
  std::string file_name;  // printable base name: record names, tensor info
  internal::IdxHeader header;
  bool compressed = false;
  uint64_t file_size = 0;
  uint64_t row_bytes = 0;  // input bytes of one sample
  // A plain file, read by Read() (concurrently).
  std::unique_ptr<internal::RandomAccessFile> file;
  // A gzip file, decompressed by Plan() (one thread); null until needed.
  std::unique_ptr<IdxReader> stream;
};

std::string TensorInfo(const IdxInput& input, uint64_t samples) {
  return nlohmann::json{
      {"source", "idx"}, {"file", input.file_name}, {"samples", samples}}
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

class IdxSource : public Source {
 public:
  IdxSource(std::string images, std::string labels, ArrayFileOptions options)
      : options_(std::move(options)) {
    inputs_.resize(labels.empty() ? 1 : 2);
    inputs_[0].path = std::move(images);
    if (!labels.empty()) inputs_[1].path = std::move(labels);
    for (IdxInput& input : inputs_) {
      input.shown = internal::PrintableName(input.path);
      input.file_name = internal::PrintableName(
          std::filesystem::path(input.path).filename().string());
    }
  }

  std::string name() const override {
    if (inputs_.size() == 1) return "IDX file '" + inputs_[0].shown + "'";
    return "IDX files '" + inputs_[0].shown + "' and '" + inputs_[1].shown +
           "'";
  }

  Result<SourceScan> Scan(bool skip_bad) override;
  Result<bool> Plan(uint64_t index, Record& record) override;
  Status Read(const Record& record, MutableByteSpan out) const override;
  Status Prepare(Record& record, const Buffer& input) const override;

 private:
  Status Open(IdxInput& input);
  Status CheckImages();
  Status CheckLabels();
  // Reads the labels (once, in pieces) for the largest, and sets the class
  // names from it or checks the given ones against it.
  Status ResolveClassNames();
  // Positions the gzip stream of `input` at the start of `row`: onward by
  // decompressing and dropping, backward by starting over.
  Status StreamTo(IdxInput& input, uint64_t row);
  Status ConvertLabels(const Record& record, uint64_t first, uint64_t n,
                       const Buffer& bytes, RecordColumn& column) const;

  ArrayFileOptions options_;
  std::vector<IdxInput> inputs_;  // the images, then the labels if any
  bool scanned_ = false;
  Shape image_shape_;
  uint64_t input_bytes_ = 0;
  internal::RowBlocks blocks_;
  std::vector<std::string> class_names_;
};

Status IdxSource::Open(IdxInput& input) {
  SHOAL_ASSIGN_OR_RETURN(input.stream, IdxReader::Open(input.path));
  input.header = input.stream->header();
  input.compressed = input.stream->compressed();
  input.file_size = input.stream->file_size();
  const std::span<const uint64_t> dims(input.header.dims);
  const std::optional<uint64_t> row_bytes =
      internal::CheckedByteSize(dims.subspan(1), input.header.dtype);
  if (!row_bytes) {
    return Corruption(input.shown + ": IDX dimensions " +
                      Shape(dims).ToString() + " overflow 64 bits");
  }
  input.row_bytes = *row_bytes;
  if (!input.compressed) {
    // Read() takes the rows where they lie; the header's claim was checked
    // against the file's size on opening.
    input.stream.reset();
    SHOAL_ASSIGN_OR_RETURN(input.file,
                           internal::RandomAccessFile::Open(input.path));
    if (input.file->size() != input.file_size) {
      return Corruption(input.shown + ": changed while being opened");
    }
  }
  return Status::OK();
}

Status IdxSource::CheckImages() {
  const IdxInput& images = inputs_[0];
  const std::vector<uint64_t>& d = images.header.dims;
  if (images.header.dtype != DType::kUInt8) {
    return InvalidArgument(
        images.shown + ": images must be unsigned bytes (IDX type 0x08), " +
        "this file holds " + std::string(DTypeName(images.header.dtype)));
  }
  if (d.size() == 3) {
    image_shape_ = Shape{d[1], d[2], 1};
  } else if (d.size() == 4 && d[3] >= 1 && d[3] <= 4) {
    image_shape_ = Shape{d[1], d[2], d[3]};
  } else {
    return InvalidArgument(images.shown +
                           ": images must have dimensions [N, H, W] or " +
                           "[N, H, W, C] with C in 1..4, this file has " +
                           Shape(std::span(d)).ToString());
  }
  return Status::OK();
}

Status IdxSource::CheckLabels() {
  const IdxInput& labels = inputs_[1];
  if (labels.header.dtype != DType::kUInt8 || labels.header.dims.size() != 1) {
    return InvalidArgument(labels.shown +
                           ": labels must be a 1-dimensional array of " +
                           "unsigned bytes (IDX type 0x08)");
  }
  const uint64_t images = inputs_[0].header.dims[0];
  if (labels.header.dims[0] != images) {
    return InvalidArgument(
        "the image and label counts differ: " + inputs_[0].shown + " has " +
        std::to_string(images) + " images, " + labels.shown + " has " +
        std::to_string(labels.header.dims[0]) + " labels");
  }
  return Status::OK();
}

Status IdxSource::ResolveClassNames() {
  IdxInput& labels = inputs_[1];
  std::unique_ptr<IdxReader> reader = std::move(labels.stream);
  if (reader == nullptr) {
    SHOAL_ASSIGN_OR_RETURN(reader, IdxReader::Open(labels.path));
  }
  class_names_.clear();
  const uint64_t count = labels.header.data_bytes;
  std::vector<std::byte> piece(std::min<uint64_t>(count, kLabelPiece));
  uint8_t max_label = 0;
  for (uint64_t done = 0; done < count; done += piece.size()) {
    const auto n =
        static_cast<size_t>(std::min<uint64_t>(piece.size(), count - done));
    SHOAL_RETURN_IF_ERROR(reader->Read(std::span(piece).first(n)));
    for (size_t i = 0; i < n; ++i) {
      max_label = std::max(max_label, std::to_integer<uint8_t>(piece[i]));
    }
  }
  SHOAL_RETURN_IF_ERROR(reader->CheckEnd());
  if (options_.class_names.empty()) {
    for (int k = 0; count > 0 && k <= max_label; ++k) {
      class_names_.push_back(std::to_string(k));
    }
  } else if (count > 0 && max_label >= options_.class_names.size()) {
    return InvalidArgument(labels.shown + ": label " +
                           std::to_string(max_label) + " has no class name (" +
                           std::to_string(options_.class_names.size()) +
                           " class names given)");
  } else {
    class_names_ = options_.class_names;
  }
  // Plan starts the stream over when it needs it.
  return Status::OK();
}

Result<SourceScan> IdxSource::Scan(bool /*skip_bad*/) {
  // One pair of files: there is nothing to skip, a bad file is the end.
  if (options_.rows_per_record == 0) {
    return InvalidArgument(name() + ": rows_per_record must be at least 1");
  }
  if (inputs_.size() == 1 && !options_.class_names.empty()) {
    return InvalidArgument(name() + ": class names need a labels file");
  }
  SHOAL_RETURN_IF_ERROR(Open(inputs_[0]));
  SHOAL_RETURN_IF_ERROR(CheckImages());
  if (inputs_.size() == 2) {
    SHOAL_RETURN_IF_ERROR(Open(inputs_[1]));
    SHOAL_RETURN_IF_ERROR(CheckLabels());
    SHOAL_RETURN_IF_ERROR(ResolveClassNames());
  }
  const uint64_t samples = inputs_[0].header.dims[0];
  uint64_t row_bytes = 0;
  input_bytes_ = 0;
  for (const IdxInput& input : inputs_) {
    row_bytes += input.row_bytes;
    input_bytes_ += input.file_size;
  }
  blocks_ =
      internal::RowBlocks::Make(samples, row_bytes, options_.rows_per_record);

  SourceScan scan;
  scan.num_records = blocks_.records;
  scan.input_bytes = input_bytes_;
  TensorSpec images;
  images.name = "images";
  images.htype = HType::kImage;
  images.dtype = DType::kUInt8;
  images.chunk_compression = options_.compression;
  images.max_chunk_bytes = options_.max_chunk_bytes;
  images.info = TensorInfo(inputs_[0], samples);
  scan.tensors.push_back(std::move(images));
  if (inputs_.size() == 2) {
    TensorSpec labels;
    labels.name = "labels";
    labels.htype = HType::kClassLabel;
    labels.dtype = DType::kUInt32;
    labels.rank = 0;
    labels.chunk_compression = options_.compression;
    labels.max_chunk_bytes = options_.max_chunk_bytes;
    labels.class_names = class_names_;
    labels.info = TensorInfo(inputs_[1], samples);
    scan.tensors.push_back(std::move(labels));
  }
  scanned_ = true;
  return scan;
}

Status IdxSource::StreamTo(IdxInput& input, uint64_t row) {
  const uint64_t target = row * input.row_bytes;
  if (input.stream == nullptr || input.stream->position() > target) {
    SHOAL_ASSIGN_OR_RETURN(input.stream, IdxReader::Open(input.path));
    const internal::IdxHeader& now = input.stream->header();
    if (now.dtype != input.header.dtype || now.dims != input.header.dims) {
      input.stream.reset();
      return Corruption(input.shown + ": changed since it was scanned");
    }
  }
  return input.stream->Skip(target - input.stream->position());
}

Result<bool> IdxSource::Plan(uint64_t index, Record& record) {
  if (!scanned_) return FailedPrecondition(name() + ": Plan before Scan");
  if (index >= blocks_.records) return false;
  const uint64_t first = blocks_.first(index);
  const uint64_t n = blocks_.count_from(first);
  record.name = blocks_.Name(index, inputs_[0].file_name);
  record.locator_index = first;
  record.input_bytes = static_cast<uint64_t>(
      static_cast<unsigned __int128>(input_bytes_) * n / blocks_.samples);
  record.columns.resize(inputs_.size());
  for (size_t i = 0; i < inputs_.size(); ++i) {
    IdxInput& input = inputs_[i];
    const uint64_t bytes = n * input.row_bytes;
    if (!input.compressed) {
      record.read_bytes += bytes;
      continue;
    }
    MutableBuffer data;
    Status status = StreamTo(input, first);
    if (status.ok()) {
      Result<MutableBuffer> read = input.stream->ReadBuffer(bytes);
      status = read.status();
      if (read.ok()) data = std::move(*read);
    }
    // The end of a gzip stream holds its CRC, checked by reading to it.
    if (status.ok() && first + n == blocks_.samples) {
      status = input.stream->CheckEnd();
    }
    if (!status.ok()) {
      input.stream.reset();  // in an unknown place: start over if asked again
      return status.WithContext(record.name);
    }
    record.columns[i].data = std::move(data).Freeze();
  }
  return true;
}

Status IdxSource::Read(const Record& record, MutableByteSpan out) const {
  const uint64_t first = record.locator_index;
  const uint64_t n = blocks_.count_from(first);
  uint64_t offset = 0;
  for (const IdxInput& input : inputs_) {
    if (input.compressed) continue;
    const uint64_t bytes = n * input.row_bytes;
    if (bytes > out.size() - offset) break;
    SHOAL_RETURN_IF_ERROR(
        input.file
            ->ReadAt(input.header.data_offset + first * input.row_bytes,
                     out.subspan(offset, bytes))
            .WithContext(record.name));
    offset += bytes;
  }
  if (offset != out.size()) {
    return Internal(record.name + ": read into " + std::to_string(out.size()) +
                    " bytes, the record has " + std::to_string(offset));
  }
  return Status::OK();
}

Status IdxSource::ConvertLabels(const Record& record, uint64_t first,
                                uint64_t n, const Buffer& bytes,
                                RecordColumn& column) const {
  SHOAL_ASSIGN_OR_RETURN(MutableBuffer labels,
                         MutableBuffer::Allocate(n * sizeof(uint32_t)));
  auto* out = reinterpret_cast<uint32_t*>(labels.data());
  for (uint64_t i = 0; i < n; ++i) {
    const auto label = std::to_integer<uint32_t>(bytes.data()[i]);
    // Scan saw every label; a label past the classes means the file
    // changed since.
    if (label >= class_names_.size()) {
      return Corruption(record.name + ": " + inputs_[1].shown + ": label " +
                        std::to_string(label) + " of row " +
                        std::to_string(first + i) + " has no class (" +
                        std::to_string(class_names_.size()) + " classes)");
    }
    out[i] = label;
  }
  column.data = std::move(labels).Freeze();
  return Status::OK();
}

Status IdxSource::Prepare(Record& record, const Buffer& input) const {
  const uint64_t first = record.locator_index;
  const uint64_t n = blocks_.count_from(first);
  record.columns.resize(inputs_.size());
  uint64_t offset = 0;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    RecordColumn& column = record.columns[i];
    const uint64_t bytes_wanted = n * inputs_[i].row_bytes;
    Buffer bytes;
    if (inputs_[i].compressed) {
      bytes = column.data;  // decompressed by Plan
    } else {
      SHOAL_ASSIGN_OR_RETURN(bytes, input.CheckedSlice(offset, bytes_wanted));
      offset += bytes_wanted;
    }
    if (bytes.size() != bytes_wanted) {
      return Internal(record.name + ": " + std::to_string(bytes.size()) +
                      " bytes of " + inputs_[i].shown + " for " +
                      std::to_string(bytes_wanted));
    }
    column.kind = RecordColumn::Kind::kArrays;
    column.count = n;
    if (i == 0) {
      column.sample_shape = image_shape_;
      column.data = std::move(bytes);
    } else {
      column.sample_shape = Shape();
      SHOAL_RETURN_IF_ERROR(ConvertLabels(record, first, n, bytes, column));
    }
  }
  return Status::OK();
}

}  // namespace

std::unique_ptr<Source> MakeIdxSource(std::string images, std::string labels,
                                      ArrayFileOptions options) {
  return std::make_unique<IdxSource>(std::move(images), std::move(labels),
                                     std::move(options));
}

namespace {
[[maybe_unused]] const bool kRegistered = SourceRegistry::Register(
    "idx", [](const SourceSpec& spec) -> Result<std::unique_ptr<Source>> {
      if (spec.paths.empty() || spec.paths.size() > 2) {
        return InvalidArgument(
            "an idx source takes the images file and optionally the labels "
            "file");
      }
      return MakeIdxSource(spec.paths[0],
                           spec.paths.size() > 1 ? spec.paths[1] : "",
                           spec.arrays);
    });
}  // namespace

}  // namespace shoal
