// Test pictures for the image benchmarks: a real photograph (a PPM file)
// resampled at random scales and offsets with a little noise, so that every
// benchmark image is natural-looking, distinct and not periodic; and small
// smooth grey images (Gaussian blobs) for format benchmarks without a data set.
//
// Thread-safety: plain functions; an Rgb is a value.
#ifndef SHOAL_BENCHMARKS_SYNTHETIC_IMAGES_H_
#define SHOAL_BENCHMARKS_SYNTHETIC_IMAGES_H_

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/random.h"

namespace shoal::bench {

struct Rgb {
  int height = 0, width = 0;
  std::vector<uint8_t> pixels;  // height * width * 3
};

/// An 8-bit binary PPM (P6); exits with a message on anything else.
inline Rgb ReadPpm(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream in;
  in << file.rdbuf();
  std::string magic;
  int maxval = 0;
  Rgb image;
  in >> magic >> image.width >> image.height >> maxval;
  in.get();
  image.pixels.resize(size_t(image.width) * image.height * 3);
  in.read(reinterpret_cast<char*>(image.pixels.data()), image.pixels.size());
  if (magic != "P6" || maxval != 255 || !in) {
    std::fprintf(stderr, "cannot read %s as an 8-bit P6 PPM\n", path.c_str());
    std::exit(1);
  }
  return image;
}

/// Bilinear resampling of `src` (mirrored at its edges) at a random scale
/// in [1.8, 3.2) and offset in [0, 300), plus uniform noise of +-2.
inline Rgb Synthesize(const Rgb& src, int height, int width, SplitMix64& rng) {
  const double s = rng.Uniform(1.8, 3.2), oy = rng.Uniform(0, 300),
               ox = rng.Uniform(0, 300);
  auto mirror = [](int v, int n) {
    v %= 2 * n;
    return v < n ? v : 2 * n - 1 - v;
  };
  Rgb out{height, width, std::vector<uint8_t>(size_t(height) * width * 3)};
  for (int y = 0; y < height; ++y) {
    const double fy = (y + oy) / s;
    const int y0 = int(fy);
    const double wy = fy - y0;
    const int ya = mirror(y0, src.height), yb = mirror(y0 + 1, src.height);
    for (int x = 0; x < width; ++x) {
      const double fx = (x + ox) / s;
      const int x0 = int(fx);
      const double wx = fx - x0;
      const int xa = mirror(x0, src.width), xb = mirror(x0 + 1, src.width);
      for (int c = 0; c < 3; ++c) {
        auto at = [&](int yy, int xx) {
          return double(src.pixels[(size_t(yy) * src.width + xx) * 3 + c]);
        };
        const double v = (1 - wy) * ((1 - wx) * at(ya, xa) + wx * at(ya, xb)) +
                         wy * ((1 - wx) * at(yb, xa) + wx * at(yb, xb));
        out.pixels[(size_t(y) * width + x) * 3 + c] = uint8_t(
            std::clamp(int(std::lround(v)) + int(rng.Bounded(5)) - 2, 0, 255));
      }
    }
  }
  return out;
}

// Smooth 28x28 "images" (a few Gaussian blobs plus a little noise) for
// machines without Fashion-MNIST: compressible like real pictures, unlike
// random bytes.
inline std::vector<std::byte> SynthesizeSmallImages(uint64_t count,
                                                    uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<std::byte> out(count * 784);
  for (uint64_t i = 0; i < count; ++i) {
    double cx[3], cy[3], w[3], a[3];
    for (int b = 0; b < 3; ++b) {
      cx[b] = rng.Uniform(4, 24), cy[b] = rng.Uniform(4, 24);
      w[b] = rng.Uniform(2, 7), a[b] = rng.Uniform(60, 200);
    }
    for (int y = 0; y < 28; ++y) {
      for (int x = 0; x < 28; ++x) {
        double v = 0;
        for (int b = 0; b < 3; ++b) {
          const double d2 =
              (x - cx[b]) * (x - cx[b]) + (y - cy[b]) * (y - cy[b]);
          v += a[b] * std::exp(-d2 / (2 * w[b] * w[b]));
        }
        if (v > 8) v += static_cast<double>(rng.Bounded(8));
        out[i * 784 + y * 28 + x] = static_cast<std::byte>(std::min(v, 255.0));
      }
    }
  }
  return out;
}

}  // namespace shoal::bench

#endif  // SHOAL_BENCHMARKS_SYNTHETIC_IMAGES_H_
