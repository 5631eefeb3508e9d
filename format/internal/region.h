// Copies of n-dimensional boxes between C-order arrays: cutting tiles out of
// a sample, putting tiles back together, cropping a region, and copying the
// part of a box that one block of a stored sample holds.
//
// Thread-safety: pure functions; a BoxRows is immutable once built.
#ifndef SHOAL_FORMAT_INTERNAL_REGION_H_
#define SHOAL_FORMAT_INTERNAL_REGION_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "base/types.h"

namespace shoal::internal {

/// A box of size `extent` at `src_origin` of an array `src_shape`, bound for
/// `dst_origin` of an array `dst_shape` (same rank, element size `item`),
/// seen as rows: runs of bytes contiguous in both arrays. Trailing
/// dimensions the box spans whole in both arrays merge into the run before
/// them, so an RGB tile's row is one run, and a box of whole rows is one.
/// Rows are numbered in C order; their source offsets increase with the
/// number. Preconditions: the box fits both arrays.
class BoxRows {
 public:
  BoxRows(const Shape& src_shape, const uint64_t* src_origin,
          const Shape& dst_shape, const uint64_t* dst_origin,
          const Shape& extent, size_t item) {
    rank_ = extent.rank();
    if (rank_ == 0) {
      row_bytes_ = item;
      rows_ = 1;
      return;
    }
    uint64_t src_stride[Shape::kMaxRank], dst_stride[Shape::kMaxRank];
    src_stride[rank_ - 1] = dst_stride[rank_ - 1] = item;
    for (size_t d = rank_ - 1; d > 0; --d) {
      src_stride[d - 1] = src_stride[d] * src_shape[d];
      dst_stride[d - 1] = dst_stride[d] * dst_shape[d];
    }
    for (size_t d = 0; d < rank_; ++d) {
      src_base_ += src_origin[d] * src_stride[d];
      dst_base_ += dst_origin[d] * dst_stride[d];
    }
    outer_ = rank_ - 1;
    while (outer_ > 0 && extent[outer_] == src_shape[outer_] &&
           extent[outer_] == dst_shape[outer_]) {
      --outer_;
    }
    row_bytes_ = item;
    for (size_t d = outer_; d < rank_; ++d) row_bytes_ *= extent[d];
    rows_ = row_bytes_ == 0 ? 0 : 1;
    for (size_t d = 0; d < outer_; ++d) {
      extent_[d] = extent[d];
      src_stride_[d] = src_stride[d];
      dst_stride_[d] = dst_stride[d];
      rows_ *= extent[d];
    }
  }

  uint64_t rows() const { return rows_; }
  uint64_t row_bytes() const { return row_bytes_; }
  /// Byte offsets of row k in the source and the destination.
  uint64_t SrcOffset(uint64_t k) const {
    return Offset(k, src_stride_) + src_base_;
  }
  uint64_t DstOffset(uint64_t k) const {
    return Offset(k, dst_stride_) + dst_base_;
  }
  /// The first row that ends after source byte `at` (rows() if none).
  uint64_t FirstRowEndingAfter(uint64_t at) const {
    uint64_t lo = 0, hi = rows_;
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      if (SrcOffset(mid) + row_bytes_ > at)
        hi = mid;
      else
        lo = mid + 1;
    }
    return lo;
  }

  /// Copies the part of the box in source bytes [begin, end) to `dst`;
  /// `src` points at source byte `begin`.
  /// Rows run in lines along the dimension before the run, a constant
  /// stride apart in both arrays: whole rows of a line are copied in one
  /// loop (for narrow rows, e.g. one channel of a planar tile, a typed store
  /// per row rather than an offset computation and a memcpy call).
  void CopyRange(const std::byte* src, uint64_t begin, uint64_t end,
                 std::byte* dst) const {
    const uint64_t line = outer_ > 0 ? extent_[outer_ - 1] : 1;
    const uint64_t src_step = outer_ > 0 ? src_stride_[outer_ - 1] : 0;
    const uint64_t dst_step = outer_ > 0 ? dst_stride_[outer_ - 1] : 0;
    uint64_t k = FirstRowEndingAfter(begin);
    while (k < rows_) {
      const uint64_t s = SrcOffset(k);
      if (s >= end) break;
      const uint64_t d = DstOffset(k);
      if (s < begin || s + row_bytes_ > end) {  // a row the range cuts
        const uint64_t a = std::max(s, begin);
        const uint64_t b = std::min(s + row_bytes_, end);
        std::memcpy(dst + d + (a - s), src + (a - begin), b - a);
        ++k;
        continue;
      }
      // The whole rows from k on, to the end of its line or of the range.
      uint64_t n = line - k % line;
      if (src_step > 0) {
        n = std::min(n, (end - s - row_bytes_) / src_step + 1);
      }
      CopyRows(src + (s - begin), src_step, dst + d, dst_step, n);
      k += n;
    }
  }

 private:
  template <size_t N>
  static void Strided(const std::byte* src, uint64_t src_step, std::byte* dst,
                      uint64_t dst_step, uint64_t n) {
    for (uint64_t j = 0; j < n; ++j) {
      std::memcpy(dst + j * dst_step, src + j * src_step, N);
    }
  }
  void CopyRows(const std::byte* src, uint64_t src_step, std::byte* dst,
                uint64_t dst_step, uint64_t n) const {
    switch (row_bytes_) {
      case 1:
        return Strided<1>(src, src_step, dst, dst_step, n);
      case 2:
        return Strided<2>(src, src_step, dst, dst_step, n);
      case 4:
        return Strided<4>(src, src_step, dst, dst_step, n);
      case 8:
        return Strided<8>(src, src_step, dst, dst_step, n);
      default:
        for (uint64_t j = 0; j < n; ++j) {
          std::memcpy(dst + j * dst_step, src + j * src_step, row_bytes_);
        }
    }
  }

  // Row k's offset: its index in the dimensions before the run, in strides.
  uint64_t Offset(uint64_t k, const uint64_t* stride) const {
    uint64_t at = 0;
    for (size_t d = outer_; d-- > 0;) {
      at += (k % extent_[d]) * stride[d];
      k /= extent_[d];
    }
    return at;
  }

  size_t rank_ = 0;
  size_t outer_ = 0;  // dimensions before the contiguous run
  uint64_t rows_ = 0, row_bytes_ = 0;
  uint64_t src_base_ = 0, dst_base_ = 0;
  uint64_t extent_[Shape::kMaxRank] = {};
  uint64_t src_stride_[Shape::kMaxRank] = {};
  uint64_t dst_stride_[Shape::kMaxRank] = {};
};

/// Copies the box of size `extent` at `src_origin` of the array `src` (shape
/// `src_shape`) to `dst_origin` of `dst` (shape `dst_shape`). All shapes have
/// the same rank; `item` is the element size. Preconditions: the box fits
/// both arrays.
inline void CopyBox(const std::byte* src, const Shape& src_shape,
                    const uint64_t* src_origin, std::byte* dst,
                    const Shape& dst_shape, const uint64_t* dst_origin,
                    const Shape& extent, size_t item) {
  const BoxRows rows(src_shape, src_origin, dst_shape, dst_origin, extent,
                     item);
  rows.CopyRange(src, 0, UINT64_MAX, dst);
}

}  // namespace shoal::internal

#endif  // SHOAL_FORMAT_INTERNAL_REGION_H_
