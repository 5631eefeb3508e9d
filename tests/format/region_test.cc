// CopyBox (format/internal/region.h) against an element-by-element copy
// written from the definition: random shapes of rank 1-4 and boxes, with
// trailing dimensions spanned whole (where rows merge into one memcpy) and
// not.
#include "format/internal/region.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <random>
#include <vector>

namespace shoal::internal {
namespace {

uint64_t Offset(const Shape& shape, const uint64_t* index) {
  uint64_t at = 0;
  for (size_t d = 0; d < shape.rank(); ++d) at = at * shape[d] + index[d];
  return at;
}

// The reference: every element of the box, one at a time.
void NaiveCopyBox(const std::byte* src, const Shape& src_shape,
                  const uint64_t* src_origin, std::byte* dst,
                  const Shape& dst_shape, const uint64_t* dst_origin,
                  const Shape& extent, size_t item) {
  const size_t rank = extent.rank();
  for (uint64_t n = 0; n < extent.num_elements(); ++n) {
    uint64_t rest = n, s[Shape::kMaxRank], t[Shape::kMaxRank];
    for (size_t d = rank; d-- > 0;) {
      const uint64_t i = rest % extent[d];
      rest /= extent[d];
      s[d] = src_origin[d] + i;
      t[d] = dst_origin[d] + i;
    }
    for (size_t b = 0; b < item; ++b) {
      dst[Offset(dst_shape, t) * item + b] =
          src[Offset(src_shape, s) * item + b];
    }
  }
}

TEST(CopyBoxTest, MatchesAnElementByElementCopy) {
  std::mt19937_64 rng(7);
  auto below = [&](uint64_t n) {
    return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng);
  };
  for (int trial = 0; trial < 3000; ++trial) {
    const size_t rank = 1 + below(4);
    const size_t item = size_t{1} << below(4);
    std::vector<uint64_t> sd(rank), dd(rank), ext(rank), so(rank), dor(rank);
    for (size_t d = 0; d < rank; ++d) {
      ext[d] = 1 + below(5);
      // Often the whole dimension in both arrays, as channels are.
      const bool whole = below(2) == 0;
      sd[d] = whole ? ext[d] : ext[d] + below(4);
      dd[d] = whole ? ext[d] : ext[d] + below(4);
      so[d] = below(sd[d] - ext[d] + 1);
      dor[d] = below(dd[d] - ext[d] + 1);
    }
    const Shape src_shape(sd), dst_shape(dd), extent(ext);
    std::vector<std::byte> src(src_shape.num_elements() * item);
    for (auto& b : src) b = static_cast<std::byte>(below(256));
    std::vector<std::byte> got(dst_shape.num_elements() * item,
                               std::byte{0xEE});
    std::vector<std::byte> want = got;
    CopyBox(src.data(), src_shape, so.data(), got.data(), dst_shape, dor.data(),
            extent, item);
    NaiveCopyBox(src.data(), src_shape, so.data(), want.data(), dst_shape,
                 dor.data(), extent, item);
    ASSERT_EQ(got, want) << "trial " << trial << ": " << src_shape.ToString()
                         << " -> " << dst_shape.ToString() << " box "
                         << extent.ToString();
  }
}

}  // namespace
}  // namespace shoal::internal
