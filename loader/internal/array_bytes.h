// Helpers for array data read from foreign formats (IDX, NPY): the checked
// size of an array, and byte-order conversion. IDX is big-endian and NPY
// names its order; shoal keeps array bytes little-endian, which is also the
// native order of the platforms it runs on.
//
// Thread-safety: stateless functions.
#ifndef SHOAL_LOADER_INTERNAL_ARRAY_BYTES_H_
#define SHOAL_LOADER_INTERNAL_ARRAY_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "base/buffer.h"
#include "base/types.h"

namespace shoal::internal {

/// product(dims) * DTypeSize(dtype), or nullopt when that does not fit in 64
/// bits (zero when any dimension is zero). Unlike Shape::ByteSize, which
/// saturates the element count, this sees every overflow, and it takes any
/// rank.
std::optional<uint64_t> CheckedByteSize(std::span<const uint64_t> dims,
                                        DType dtype);

/// Reverses the bytes of each `element_size`-byte element of `data` in place.
/// Precondition: data.size() is a multiple of element_size.
void SwapElementBytes(MutableByteSpan data, size_t element_size);

}  // namespace shoal::internal

#endif  // SHOAL_LOADER_INTERNAL_ARRAY_BYTES_H_
