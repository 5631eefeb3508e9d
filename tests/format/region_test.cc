// CopyBox and BoxRows (format/internal/region.h) against an
// element-by-element copy written from the definition: random shapes of rank
// 1-4 and boxes, with trailing dimensions spanned whole (where rows merge
// into one memcpy) and not; BoxRows::CopyRange over the source cut into
// random byte ranges, as a read cuts a stored sample into blocks.
#include "format/internal/region.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <random>
#include <string>
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

// A random box between two random arrays, with its source filled and the
// expected copy made by NaiveCopyBox.
struct BoxCase {
  size_t item;
  std::vector<uint64_t> src_origin, dst_origin;
  Shape src_shape, dst_shape, extent;
  std::vector<std::byte> src, got, want;

  BoxCase(std::mt19937_64& rng, uint64_t min_extent) {
    auto below = [&](uint64_t n) {
      return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng);
    };
    const size_t rank = 1 + below(4);
    item = size_t{1} << below(4);
    std::vector<uint64_t> sd(rank), dd(rank), ext(rank);
    src_origin.resize(rank);
    dst_origin.resize(rank);
    for (size_t d = 0; d < rank; ++d) {
      ext[d] = min_extent + below(6 - min_extent);
      // Often the whole dimension in both arrays, as channels are.
      const bool whole = below(2) == 0;
      sd[d] = whole ? ext[d] : ext[d] + below(4);
      dd[d] = whole ? ext[d] : ext[d] + below(4);
      src_origin[d] = below(sd[d] - ext[d] + 1);
      dst_origin[d] = below(dd[d] - ext[d] + 1);
    }
    src_shape = Shape(sd), dst_shape = Shape(dd), extent = Shape(ext);
    src.resize(src_shape.num_elements() * item);
    for (auto& b : src) b = static_cast<std::byte>(below(256));
    got.assign(dst_shape.num_elements() * item, std::byte{0xEE});
    want = got;
    NaiveCopyBox(src.data(), src_shape, src_origin.data(), want.data(),
                 dst_shape, dst_origin.data(), extent, item);
  }
  std::string ToString() const {
    return src_shape.ToString() + " -> " + dst_shape.ToString() + " box " +
           extent.ToString();
  }
};

TEST(CopyBoxTest, MatchesAnElementByElementCopy) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 3000; ++trial) {
    BoxCase c(rng, 1);
    CopyBox(c.src.data(), c.src_shape, c.src_origin.data(), c.got.data(),
            c.dst_shape, c.dst_origin.data(), c.extent, c.item);
    ASSERT_EQ(c.got, c.want) << "trial " << trial << ": " << c.ToString();
  }
}

TEST(BoxRowsTest, CopyRangeOverAnyCutOfTheSourceMatchesTheWholeCopy) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 3000; ++trial) {
    BoxCase c(rng, 0);  // empty boxes too
    const BoxRows rows(c.src_shape, c.src_origin.data(), c.dst_shape,
                       c.dst_origin.data(), c.extent, c.item);
    // The source in pieces of random size, as blocks cut a stored sample.
    const uint64_t piece = 1 + rng() % std::max<uint64_t>(c.src.size(), 1);
    for (uint64_t begin = 0; begin < c.src.size(); begin += piece) {
      const uint64_t end = std::min<uint64_t>(begin + piece, c.src.size());
      rows.CopyRange(c.src.data() + begin, begin, end, c.got.data());
    }
    ASSERT_EQ(c.got, c.want)
        << "trial " << trial << ": " << c.ToString() << " pieces of " << piece;
  }
}

}  // namespace
}  // namespace shoal::internal
