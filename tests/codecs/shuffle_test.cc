// Checks ShuffleBytes/UnshuffleBytes against a reference written from the
// layout definition (output position -> input position), which shares no
// loop structure with the implementation.
#include "codecs/internal/shuffle.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

#include "base/random.h"

namespace shoal::internal {
namespace {

std::vector<std::byte> RandomBytes(size_t size, uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<std::byte> out(size);
  for (std::byte& b : out) b = static_cast<std::byte>(rng.Next());
  return out;
}

// Output byte p < n * t holds byte (p / n) of element (p % n); the tail is
// copied in place.
std::vector<std::byte> ReferenceShuffle(const std::vector<std::byte>& in,
                                        size_t t) {
  const size_t n = in.size() / t;
  std::vector<std::byte> out(in);
  for (size_t p = 0; p < n * t; ++p) out[p] = in[(p % n) * t + p / n];
  return out;
}

std::vector<std::byte> ReferenceUnshuffle(const std::vector<std::byte>& in,
                                          size_t t) {
  const size_t n = in.size() / t;
  std::vector<std::byte> out(in);
  for (size_t p = 0; p < n * t; ++p) out[(p % n) * t + p / n] = in[p];
  return out;
}

void CheckAgainstReference(size_t length, size_t element_size) {
  SCOPED_TRACE(testing::Message()
               << "length " << length << ", element size " << element_size);
  const std::vector<std::byte> input =
      RandomBytes(length, length * 31 + element_size);
  std::vector<std::byte> shuffled(length);
  ShuffleBytes(input, shuffled, element_size);
  ASSERT_EQ(shuffled, ReferenceShuffle(input, element_size));

  std::vector<std::byte> restored(length);
  UnshuffleBytes(shuffled, restored, element_size);
  ASSERT_EQ(restored, input);
  // Unshuffle checked on its own too, not only as the inverse.
  UnshuffleBytes(input, restored, element_size);
  ASSERT_EQ(restored, ReferenceUnshuffle(input, element_size));
}

TEST(ShuffleTest, KnownExample) {
  const std::vector<std::byte> input = {
      std::byte{0}, std::byte{1}, std::byte{2}, std::byte{3},
      std::byte{4}, std::byte{5}, std::byte{6}};
  std::vector<std::byte> shuffled(input.size());
  ShuffleBytes(input, shuffled, 2);
  const std::vector<std::byte> expected = {
      std::byte{0}, std::byte{2}, std::byte{4}, std::byte{1},
      std::byte{3}, std::byte{5}, std::byte{6}};
  EXPECT_EQ(shuffled, expected);
}

TEST(ShuffleTest, MatchesReferenceForSmallLengths) {
  for (size_t element_size = 1; element_size <= kMaxShuffleElementSize;
       ++element_size) {
    for (size_t length = 0; length <= 100; ++length) {
      CheckAgainstReference(length, element_size);
    }
  }
}

TEST(ShuffleTest, MatchesReferenceForLargeLengths) {
  for (size_t element_size = 1; element_size <= kMaxShuffleElementSize;
       ++element_size) {
    for (size_t length :
         {size_t{4096}, size_t{65536 + 3}, size_t{(1 << 20) + 7}}) {
      CheckAgainstReference(length, element_size);
    }
  }
}

TEST(ShuffleTest, ElementSizeLargerThanInputCopies) {
  const std::vector<std::byte> input = RandomBytes(5, 7);
  std::vector<std::byte> shuffled(input.size());
  ShuffleBytes(input, shuffled, 8);
  EXPECT_EQ(shuffled, input);
}

}  // namespace
}  // namespace shoal::internal
