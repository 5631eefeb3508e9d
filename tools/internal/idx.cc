#include "tools/internal/idx.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <limits>
#include <memory>
#include <optional>

#include "format/base/coding.h"
#include "tools/internal/array_bytes.h"

namespace shoal::tools {
namespace {

struct GzCloser {
  void operator()(gzFile file) const { gzclose(file); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// The Status for a failed gzread: the OS refused (IOError) or the gzip
// stream is damaged (Corruption).
Status GzError(gzFile file, const std::string& path, int saved_errno) {
  int code = Z_OK;
  const char* message = gzerror(file, &code);
  if (code == Z_ERRNO) return ErrnoStatus("read " + path, saved_errno);
  return Corruption(path + ": gzip: " + message);
}

// Reads until `dst` is full or the data ends; returns the bytes read.
// zlib reports a truncated gzip stream as a short read, not an error; callers
// detect it through the size check or CheckCleanEnd().
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

// After the data: nothing may follow, and a gzip stream must have ended
// properly (zlib checks the CRC only when it reaches the trailer).
Status CheckCleanEnd(gzFile file, const std::string& path,
                     uint64_t data_bytes) {
  std::byte extra[1];
  auto n = ReadFully(file, path, extra);
  if (!n.ok()) return n.status();
  if (*n != 0) {
    return Corruption(path + ": bytes follow the " +
                      std::to_string(data_bytes) +
                      " bytes of data the dimensions declare");
  }
  int code = Z_OK;
  const char* message = gzerror(file, &code);
  if (code != Z_OK) return Corruption(path + ": gzip: " + message);
  return Status::OK();
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

}  // namespace

Result<IdxArray> ReadIdxFile(const std::string& path, uint64_t max_data_bytes) {
  GzFile file(gzopen(path.c_str(), "rb"));
  if (file == nullptr) return ErrnoStatus("open " + path, errno);
  gzbuffer(file.get(), 256 * 1024);

  std::array<std::byte, 4> magic;
  SHOAL_ASSIGN_OR_RETURN(size_t got, ReadFully(file.get(), path, magic));
  if (got < magic.size()) {
    return Corruption(path + ": not an IDX file: " + std::to_string(got) +
                      " bytes is too short for the 4-byte magic");
  }
  if (magic[0] != std::byte{0} || magic[1] != std::byte{0}) {
    return Corruption(path + ": not an IDX file: magic starts with 0x" +
                      HexString(std::span(magic).first(2)) +
                      " instead of 0x0000");
  }
  const auto type = static_cast<uint8_t>(magic[2]);
  const std::optional<DType> dtype = IdxDType(type);
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
  SHOAL_ASSIGN_OR_RETURN(got, ReadFully(file.get(), path, dims_span));
  if (got < dims_span.size()) {
    return Corruption(path + ": truncated in the dimensions (" +
                      std::to_string(rank) + " declared)");
  }
  IdxArray out;
  out.dtype = *dtype;
  for (uint8_t i = 0; i < rank; ++i) {
    out.dims.push_back(BigEndianU32(dim_bytes.data() + 4 * i));
  }
  const std::string shape = Shape(out.dims).ToString();
  const std::optional<uint64_t> byte_size = CheckedByteSize(out.dims, *dtype);
  if (!byte_size) {
    return Corruption(path + ": IDX dimensions " + shape + " overflow 64 bits");
  }
  const uint64_t data_bytes = *byte_size;
  if (data_bytes > max_data_bytes ||
      data_bytes > std::numeric_limits<size_t>::max()) {
    return ResourceExhausted(path + ": IDX dimensions " + shape + " declare " +
                             std::to_string(data_bytes) +
                             " bytes of data, more than the limit of " +
                             std::to_string(max_data_bytes));
  }

  SHOAL_ASSIGN_OR_RETURN(MutableBuffer data,
                         MutableBuffer::Allocate(data_bytes));
  SHOAL_ASSIGN_OR_RETURN(got, ReadFully(file.get(), path, data.span()));
  if (got < data_bytes) {
    return Corruption(path + ": declares " + std::to_string(data_bytes) +
                      " bytes of data, has " + std::to_string(got));
  }
  SHOAL_RETURN_IF_ERROR(CheckCleanEnd(file.get(), path, data_bytes));

  if constexpr (std::endian::native == std::endian::little) {
    SwapElementBytes(data.span(), DTypeSize(*dtype));
  }
  out.data = std::move(data).Freeze();
  return out;
}

}  // namespace shoal::tools
