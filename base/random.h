// SplitMix64: shoal's one seeded random generator (shuffle plans, random
// crops and flips, temporary-file names, test data).
//
// Tiny, fast, portable and fully specified, unlike the engines and
// distributions of <random>, whose outputs differ between standard
// libraries: the same seed gives the same plan and the same crops on every
// platform, and other implementations (the Python references in tests) can
// reproduce them from this description (Steele, Lea, Flood 2014):
//  - Mix(z), the finalizer, in arithmetic mod 2^64:
//    z ^= z >> 30; z *= 0xbf58476d1ce4e5b9; z ^= z >> 27;
//    z *= 0x94d049bb133111eb; z ^= z >> 31.
//  - Next() adds kGolden = 0x9e3779b97f4a7c15 to the state and returns
//    Mix(state): the i-th output (i = 1, 2, ...) of seed s is
//    Mix(s + i * kGolden).
//  - Bounded(r), uniform in [0, r) for r >= 1, is Lemire's multiply-shift
//    with rejection (2019): m = Next() * r in 128 bits; while low64(m) <
//    (2^64 - r) mod r, draw again; the result is high64(m). No modulo bias.
//  - Uniform() is (Next() >> 11) * 2^-53, in [0, 1).
//
// Thread-safety: a generator is a plain value; use one per thread.
#ifndef SHOAL_BASE_RANDOM_H_
#define SHOAL_BASE_RANDOM_H_

#include <cstdint>

namespace shoal {

class SplitMix64 {
 public:
  static constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;

  /// The finalizer: a bijection of 64-bit values that mixes every input bit
  /// into every output bit. Also a good hash of an integer.
  static constexpr uint64_t Mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  explicit constexpr SplitMix64(uint64_t seed) : state_(seed) {}

  constexpr uint64_t Next() {
    state_ += kGolden;
    return Mix(state_);
  }

  /// Uniform in [0, range); precondition: range >= 1.
  constexpr uint64_t Bounded(uint64_t range) {
    unsigned __int128 m = static_cast<unsigned __int128>(Next()) * range;
    auto low = static_cast<uint64_t>(m);
    if (low < range) {
      const uint64_t threshold = (0 - range) % range;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(Next()) * range;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

  /// Uniform in [0, 1), 53 random bits.
  constexpr double Uniform() {
    return static_cast<double>(Next() >> 11) * 0x1.0p-53;
  }
  /// Uniform in [a, b).
  constexpr double Uniform(double a, double b) {
    return a + (b - a) * Uniform();
  }

 private:
  uint64_t state_;
};

}  // namespace shoal

#endif  // SHOAL_BASE_RANDOM_H_
