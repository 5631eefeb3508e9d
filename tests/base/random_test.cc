#include "base/random.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace shoal {
namespace {

TEST(SplitMix64Test, MatchesThePublishedSequence) {
  // The first outputs of seed 0 as published with the reference
  // implementation (Vigna, splitmix64.c).
  SplitMix64 rng(0);
  EXPECT_EQ(rng.Next(), 0xe220a8397b1dcdafull);
  EXPECT_EQ(rng.Next(), 0x6e789e6aa1b965f4ull);
  EXPECT_EQ(rng.Next(), 0x06c45d188009454full);
}

TEST(SplitMix64Test, TheIthOutputIsMixOfSeedPlusIGolden) {
  SplitMix64 rng(12345);
  for (uint64_t i = 1; i <= 100; ++i) {
    EXPECT_EQ(rng.Next(), SplitMix64::Mix(12345 + i * SplitMix64::kGolden));
  }
}

TEST(SplitMix64Test, BoundedIsUniformAndInRange) {
  SplitMix64 rng(7);
  constexpr uint64_t kRange = 6;
  constexpr int kDraws = 600000;
  std::vector<int> counts(kRange, 0);
  for (int i = 0; i < kDraws; ++i) {
    const uint64_t v = rng.Bounded(kRange);
    ASSERT_LT(v, kRange);
    ++counts[v];
  }
  // Each count is binomial(600000, 1/6): sd ~ 289; 6 sd is far beyond
  // chance.
  for (int c : counts) EXPECT_NEAR(c, kDraws / kRange, 1750);
  EXPECT_EQ(rng.Bounded(1), 0u);
}

TEST(SplitMix64Test, BoundedRejectsTheBiasedLowRange) {
  // With range 2^63 + 1 almost half of all products fall in the rejected
  // low range; the draw still ends, in range, and is not always the first
  // candidate's high half.
  const uint64_t range = (1ull << 63) + 1;
  SplitMix64 a(99), b(99);
  int redrawn = 0;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t first = b.Next();
    const auto m = static_cast<unsigned __int128>(first) * range;
    const uint64_t v = a.Bounded(range);
    ASSERT_LT(v, range);
    if (static_cast<uint64_t>(m) < (0 - range) % range) {
      ++redrawn;
      b = a;  // a drew more than once; continue in step
    } else {
      EXPECT_EQ(v, static_cast<uint64_t>(m >> 64));
    }
  }
  EXPECT_GT(redrawn, 300);
}

TEST(SplitMix64Test, UniformIsInTheHalfOpenInterval) {
  SplitMix64 rng(3);
  double sum = 0;
  for (int i = 0; i < 100000; ++i) {
    const double u = rng.Uniform(2.0, 4.0);
    ASSERT_GE(u, 2.0);
    ASSERT_LT(u, 4.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 100000, 3.0, 0.01);
}

}  // namespace
}  // namespace shoal
