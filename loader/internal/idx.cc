#include "loader/internal/idx.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>

#include "base/coding.h"
#include "loader/internal/array_bytes.h"

namespace shoal::internal {
namespace {

// Deflate emits at least 2 bits per 258-byte match, so no gzip file inflates
// to more than this many times its size: a header claiming more is a lie
// found before a byte of data is read.
constexpr uint64_t kMaxInflateRatio = 1032;
// What ReadBuffer allocates before the data has shown up; beyond it, the
// buffer doubles only as data arrives. A record of the IDX source (64 MiB
// at most, loader/internal/idx_source.cc) fits in one allocation.
constexpr uint64_t kFirstAllocation = uint64_t{64} << 20;
constexpr size_t kSkipPiece = 256 * 1024;

// zlib's message, without the "<fd:3>: " it starts with for a file opened
// by descriptor (the caller names the file).
std::string GzMessage(gzFile file, int* code) {
  std::string_view message = gzerror(file, code);
  if (message.starts_with("<fd:")) {
    const size_t colon = message.find(": ");
    if (colon != std::string_view::npos) message.remove_prefix(colon + 2);
  }
  return std::string(message);
}

// The Status for a failed gzread: the OS refused (IOError) or the gzip
// stream is damaged (Corruption).
Status GzError(gzFile file, const std::string& path, int saved_errno) {
  int code = Z_OK;
  const std::string message = GzMessage(file, &code);
  if (code == Z_ERRNO) return ErrnoStatus("read " + path, saved_errno);
  return Corruption(path + ": gzip: " + message);
}

// Reads until `dst` is full or the data ends; returns the bytes read.
// zlib reports a truncated gzip stream as a short read, not an error; callers
// detect it through the size check or CheckEnd().
Result<size_t> ReadFully(gzFile file, const std::string& path,
                         MutableByteSpan dst) {
  size_t done = 0;
  while (done < dst.size()) {
    // gzread counts in unsigned int and returns an int.
    const auto chunk = static_cast<unsigned>(
        std::min<size_t>(dst.size() - done, size_t{1} << 30));
    const int n = gzread(file, dst.data() + done, chunk);
    if (n < 0) return GzError(file, path, errno);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

std::optional<DType> IdxDType(uint8_t type) {
  switch (type) {
    case 0x08:
      return DType::kUInt8;
    case 0x09:
      return DType::kInt8;
    case 0x0B:
      return DType::kInt16;
    case 0x0C:
      return DType::kInt32;
    case 0x0D:
      return DType::kFloat32;
    case 0x0E:
      return DType::kFloat64;
    default:
      return std::nullopt;
  }
}

uint32_t BigEndianU32(const std::byte* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | static_cast<uint32_t>(p[3]);
}

Status DataEnded(const std::string& path, uint64_t declared, uint64_t has) {
  return Corruption(path + ": declares " + std::to_string(declared) +
                    " bytes of data, has " + std::to_string(has));
}

}  // namespace

void IdxReader::GzCloser::operator()(gzFile_s* file) const { gzclose(file); }

IdxReader::~IdxReader() = default;

Result<std::unique_ptr<IdxReader>> IdxReader::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open " + path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int saved = errno;
    ::close(fd);
    return ErrnoStatus("stat " + path, saved);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument(path + ": not a regular file");
  }
  gzFile file = gzdopen(fd, "rb");
  if (file == nullptr) {
    ::close(fd);
    return ResourceExhausted(path + ": no memory to open it");
  }
  std::unique_ptr<IdxReader> reader(new IdxReader());
  reader->path_ = path;
  reader->file_.reset(file);
  reader->file_size_ = static_cast<uint64_t>(st.st_size);
  gzbuffer(file, 256 * 1024);

  std::array<std::byte, 4> magic;
  SHOAL_ASSIGN_OR_RETURN(size_t got, ReadFully(file, path, magic));
  if (got < magic.size()) {
    return Corruption(path + ": not an IDX file: " + std::to_string(got) +
                      " bytes is too short for the 4-byte magic");
  }
  if (magic[0] != std::byte{0} || magic[1] != std::byte{0}) {
    return Corruption(path + ": not an IDX file: magic starts with 0x" +
                      HexString(std::span(magic).first(2)) +
                      " instead of 0x0000");
  }
  const std::optional<DType> dtype = IdxDType(static_cast<uint8_t>(magic[2]));
  if (!dtype) {
    return Corruption(path + ": unknown IDX element type 0x" +
                      HexString(std::span(magic).subspan(2, 1)));
  }
  const auto rank = static_cast<uint8_t>(magic[3]);
  if (rank == 0 || rank > Shape::kMaxRank) {
    return Corruption(path + ": IDX dimension count " + std::to_string(rank) +
                      " is not in [1, " + std::to_string(Shape::kMaxRank) +
                      "]");
  }

  std::array<std::byte, 4 * Shape::kMaxRank> dim_bytes;
  const MutableByteSpan dims_span = std::span(dim_bytes).first(4 * rank);
  SHOAL_ASSIGN_OR_RETURN(got, ReadFully(file, path, dims_span));
  if (got < dims_span.size()) {
    return Corruption(path + ": truncated in the dimensions (" +
                      std::to_string(rank) + " declared)");
  }
  IdxHeader& header = reader->header_;
  header.dtype = *dtype;
  for (uint8_t i = 0; i < rank; ++i) {
    header.dims.push_back(BigEndianU32(dim_bytes.data() + 4 * i));
  }
  header.data_offset = magic.size() + dims_span.size();
  const std::optional<uint64_t> byte_size =
      CheckedByteSize(header.dims, *dtype);
  if (!byte_size) {
    return Corruption(path + ": IDX dimensions " +
                      Shape(header.dims).ToString() + " overflow 64 bits");
  }
  header.data_bytes = *byte_size;

  // zlib passes a file without the gzip magic through unchanged.
  reader->compressed_ = gzdirect(file) == 0;
  const uint64_t size = reader->file_size_;
  if (!reader->compressed_) {
    const uint64_t has = size - std::min(size, header.data_offset);
    if (has < header.data_bytes) {
      return DataEnded(path, header.data_bytes, has);
    }
    if (has > header.data_bytes) {
      return Corruption(path + ": " + std::to_string(has - header.data_bytes) +
                        " bytes follow the " +
                        std::to_string(header.data_bytes) +
                        " bytes of data the dimensions declare");
    }
  } else if (header.data_bytes / kMaxInflateRatio > size) {
    return Corruption(path + ": declares " + std::to_string(header.data_bytes) +
                      " bytes of data, more than a gzip file of " +
                      std::to_string(size) + " bytes can hold");
  }
  return reader;
}

Status IdxReader::Read(MutableByteSpan dst) {
  if (dst.size() > header_.data_bytes - position_) {
    return InvalidArgument(path_ + ": read of " + std::to_string(dst.size()) +
                           " bytes at " + std::to_string(position_) +
                           " passes the end of the data");
  }
  SHOAL_ASSIGN_OR_RETURN(const size_t got, ReadFully(file_.get(), path_, dst));
  position_ += got;
  if (got < dst.size()) return DataEnded(path_, header_.data_bytes, position_);
  return Status::OK();
}

Result<MutableBuffer> IdxReader::ReadBuffer(uint64_t bytes) {
  if (bytes > std::numeric_limits<size_t>::max()) {
    return ResourceExhausted(path_ + ": " + std::to_string(bytes) +
                             " bytes do not fit in memory");
  }
  // A plain file's length was checked against the header: its data is there.
  uint64_t capacity = compressed_ ? std::min(bytes, kFirstAllocation) : bytes;
  SHOAL_ASSIGN_OR_RETURN(MutableBuffer buffer,
                         MutableBuffer::Allocate(capacity));
  uint64_t filled = 0;
  while (true) {
    SHOAL_RETURN_IF_ERROR(Read(buffer.span().subspan(filled)));
    filled = capacity;
    if (filled == bytes) return buffer;
    capacity = std::min(bytes, capacity * 2);
    SHOAL_ASSIGN_OR_RETURN(MutableBuffer larger,
                           MutableBuffer::Allocate(capacity));
    std::memcpy(larger.data(), buffer.data(), filled);
    buffer = std::move(larger);
  }
}

Status IdxReader::Skip(uint64_t bytes) {
  if (bytes > 0 && scratch_.empty()) scratch_.resize(kSkipPiece);
  while (bytes > 0) {
    const size_t piece = std::min<uint64_t>(bytes, scratch_.size());
    SHOAL_RETURN_IF_ERROR(Read(std::span(scratch_).first(piece)));
    bytes -= piece;
  }
  return Status::OK();
}

Status IdxReader::CheckEnd() {
  std::byte extra[1];
  SHOAL_ASSIGN_OR_RETURN(const size_t n, ReadFully(file_.get(), path_, extra));
  if (n != 0) {
    return Corruption(path_ + ": bytes follow the " +
                      std::to_string(header_.data_bytes) +
                      " bytes of data the dimensions declare");
  }
  int code = Z_OK;
  const std::string message = GzMessage(file_.get(), &code);
  if (code != Z_OK) return Corruption(path_ + ": gzip: " + message);
  return Status::OK();
}

Result<IdxArray> ReadIdxFile(const std::string& path, uint64_t max_data_bytes) {
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<IdxReader> reader,
                         IdxReader::Open(path));
  const IdxHeader& header = reader->header();
  if (header.data_bytes > max_data_bytes) {
    return ResourceExhausted(path + ": IDX dimensions " +
                             Shape(header.dims).ToString() + " declare " +
                             std::to_string(header.data_bytes) +
                             " bytes of data, more than the limit of " +
                             std::to_string(max_data_bytes));
  }
  SHOAL_ASSIGN_OR_RETURN(MutableBuffer data,
                         reader->ReadBuffer(header.data_bytes));
  SHOAL_RETURN_IF_ERROR(reader->CheckEnd());
  if constexpr (std::endian::native == std::endian::little) {
    SwapElementBytes(data.span(), DTypeSize(header.dtype));
  }
  IdxArray out;
  out.dtype = header.dtype;
  out.dims = header.dims;
  out.data = std::move(data).Freeze();
  return out;
}

}  // namespace shoal::internal
