// Reader for IDX files, the array format of the MNIST family of datasets
// (train-images-idx3-ubyte etc.), for `shoal ingest`.
//
// An IDX file is: two zero bytes, a type byte (0x08 uint8, 0x09 int8,
// 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), a byte giving the
// number of dimensions, one big-endian uint32 per dimension, then the
// elements in row-major order, big-endian. Files are commonly distributed
// gzip-compressed; both forms are read transparently.
//
// Files are untrusted: every size is checked before anything is allocated.
//
// Thread-safety: ReadIdxFile is reentrant.
#ifndef SHOAL_TOOLS_INTERNAL_IDX_H_
#define SHOAL_TOOLS_INTERNAL_IDX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "format/base/buffer.h"
#include "format/base/result.h"
#include "format/base/types.h"

namespace shoal::tools {

/// One IDX array. `data` holds product(dims) elements of `dtype` in
/// row-major order and little-endian byte order.
struct IdxArray {
  DType dtype = DType::kUInt8;
  std::vector<uint64_t> dims;
  Buffer data;
};

/// The largest data size ReadIdxFile accepts unless told otherwise.
inline constexpr uint64_t kDefaultIdxMaxBytes = uint64_t{4} << 30;

/// Reads the IDX file at `path`, plain or gzip-compressed.
/// Errors: NotFound / IOError when the file cannot be read; Corruption for a
/// bad magic, a dimension count of 0 or more than Shape::kMaxRank, a size
/// that overflows, a gzip error, less data than the dimensions declare, or
/// bytes after the data; ResourceExhausted when the data would exceed
/// `max_data_bytes`.
Result<IdxArray> ReadIdxFile(const std::string& path,
                             uint64_t max_data_bytes = kDefaultIdxMaxBytes);

}  // namespace shoal::tools

#endif  // SHOAL_TOOLS_INTERNAL_IDX_H_
