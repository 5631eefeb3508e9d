// Copies of n-dimensional boxes between C-order arrays: cutting tiles out of
// a sample, putting tiles back together, cropping a region.
//
// Thread-safety: pure functions.
#ifndef SHOAL_FORMAT_INTERNAL_REGION_H_
#define SHOAL_FORMAT_INTERNAL_REGION_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "base/types.h"

namespace shoal::internal {

/// Copies the box of size `extent` at `src_origin` of the array `src` (shape
/// `src_shape`) to `dst_origin` of `dst` (shape `dst_shape`). All shapes have
/// the same rank; `item` is the element size. Preconditions: the box fits
/// both arrays.
inline void CopyBox(const std::byte* src, const Shape& src_shape,
                    const uint64_t* src_origin, std::byte* dst,
                    const Shape& dst_shape, const uint64_t* dst_origin,
                    const Shape& extent, size_t item) {
  const size_t rank = extent.rank();
  if (rank == 0) {
    std::memcpy(dst, src, item);
    return;
  }
  if (extent.num_elements() == 0) return;
  // Strides in bytes.
  uint64_t src_stride[Shape::kMaxRank], dst_stride[Shape::kMaxRank];
  src_stride[rank - 1] = dst_stride[rank - 1] = item;
  for (size_t d = rank - 1; d > 0; --d) {
    src_stride[d - 1] = src_stride[d] * src_shape[d];
    dst_stride[d - 1] = dst_stride[d] * dst_shape[d];
  }
  uint64_t src_base = 0, dst_base = 0;
  for (size_t d = 0; d < rank; ++d) {
    src_base += src_origin[d] * src_stride[d];
    dst_base += dst_origin[d] * dst_stride[d];
  }
  // Trailing dimensions the box spans whole in both arrays are contiguous
  // with the one before them: one memcpy covers them all (an RGB tile's
  // rows are one copy each, not one per pixel).
  size_t inner = rank - 1;
  while (inner > 0 && extent[inner] == src_shape[inner] &&
         extent[inner] == dst_shape[inner]) {
    --inner;
  }
  uint64_t row = item;
  for (size_t d = inner; d < rank; ++d) row *= extent[d];
  if (inner == 0) {
    std::memcpy(dst + dst_base, src + src_base, row);
    return;
  }
  // Iterate over the dimensions before `inner`; each step is one memcpy.
  uint64_t idx[Shape::kMaxRank] = {};
  while (true) {
    uint64_t s = src_base, t = dst_base;
    for (size_t d = 0; d < inner; ++d) {
      s += idx[d] * src_stride[d];
      t += idx[d] * dst_stride[d];
    }
    std::memcpy(dst + t, src + s, row);
    size_t d = inner;
    while (d > 0) {
      --d;
      if (++idx[d] < extent[d]) break;
      idx[d] = 0;
      if (d == 0) return;
    }
  }
}

}  // namespace shoal::internal

#endif  // SHOAL_FORMAT_INTERNAL_REGION_H_
