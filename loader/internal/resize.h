// Resizer: antialiased bilinear resampling of 8-bit images with 1 (gray) or
// 3 (RGB) interleaved channels; the resampling step of the loader's image
// transforms (loader/image_transform.h).
//
// The filter and pixel geometry are Pillow's Image.resize(BILINEAR), the
// resize torchvision applies to PIL images: a triangle filter stretched by
// the shrink factor (so shrinking averages every source pixel, no aliasing),
// pixel centers aligned, edges clamped, a horizontal pass then a vertical
// pass with 8-bit rounding in between. Weights are 16-bit fixed point (Q14,
// rounded, summing to exactly 1 so flat areas stay flat) where Pillow uses
// 22 bits; results differ from Pillow's by at most 1 at rounding ties (the
// transform test compares with Pillow).
//
// Why not libswscale: on the random crops of 500x400 images that the train
// transform resizes to 224x224 (benchmarks/transform_bench.cc, one core),
// its packed RGB24 path takes ~410 us a crop, as long as decoding the whole
// JPEG (it converts to YUV and back); GRAY8 per plane ~220 us, including
// the new SwsContext (~45 us, several allocations) that every crop size
// needs. This code takes ~80 us and allocates nothing once warm.
//
// Speed: the passes use AVX2 when the CPU has it (checked at run time), else
// portable code. Both compute the same integer sums, so the output is
// bit-identical on every machine: same seed, same batch bytes.
//
// Thread-safety: a Resizer is used by one thread at a time. It keeps the
// weight tables and the intermediate image between calls, so once warmed up
// to the largest size it sees, resizing does not allocate.
#ifndef SHOAL_LOADER_INTERNAL_RESIZE_H_
#define SHOAL_LOADER_INTERNAL_RESIZE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/status.h"

namespace shoal::internal {

/// Bytes after the last source pixel that Resize() may read (it never uses
/// their values): the vector loads run a little past the pixels they need.
inline constexpr size_t kResizeSourceSlack = 32;

/// A read-only 8-bit image: `height` rows of `width` pixels of `channels`
/// bytes, rows `stride` bytes apart.
struct PixelView {
  const uint8_t* data = nullptr;
  size_t stride = 0;
  uint32_t height = 0;
  uint32_t width = 0;
  int channels = 0;
};

class Resizer {
 public:
  /// Resizes `src` to `dst_height` x `dst_width` (same channels, 1 or 3)
  /// into `dst`, contiguous rows; flipped left-right when `mirror`.
  /// ResourceExhausted when the intermediate image (source rows x
  /// dst_width) cannot be allocated.
  /// Preconditions (checked by the caller): every size >= 1, `dst` holds
  /// dst_height * dst_width * channels bytes and does not overlap `src`,
  /// and kResizeSourceSlack bytes after src's last pixel are readable.
  Status Resize(const PixelView& src, uint32_t dst_height, uint32_t dst_width,
                bool mirror, uint8_t* dst);

  /// Tests compare the AVX2 and portable paths; false forces the portable
  /// one in every Resizer of the process. Not for concurrent use.
  static void EnableSimdForTesting(bool enable);
  /// True when Resize() uses AVX2 (the CPU has it and tests did not turn it
  /// off).
  static bool UsesSimd();

  /// One axis' weights: output i takes count[i] source pixels from first[i]
  /// on, with Q14 weights k[i * max_taps + t].
  struct Weights {
    uint32_t max_taps = 0;
    uint32_t max_count = 0;  // the largest count[i]
    std::vector<uint32_t> first;
    std::vector<uint32_t> count;
    std::vector<int16_t> k;
  };

 private:
  void ResizeUnchecked(const PixelView& src, uint32_t dst_height,
                       uint32_t dst_width, bool mirror, uint8_t* dst);
  void Horizontal(const PixelView& src, uint32_t row_begin, uint32_t rows,
                  uint32_t dst_width, bool mirror, uint8_t* dst);
  void Vertical(const PixelView& src, uint32_t dst_height, uint8_t* dst);

  Weights horizontal_;
  Weights vertical_;
  // The horizontal weights laid out for the AVX2 pass: per output pixel the
  // first source pixel of a fixed-length window, and the weights of output
  // pixel pairs as int16 vectors (see resize.cc).
  std::vector<uint32_t> window_start_;
  std::vector<int16_t> window_weights_;
  // Horizontal pass output, input of the vertical pass (+ slack).
  std::vector<uint8_t> between_;
};

/// Pillow's bilinear weights from `in` to `out` pixels, in Q14.
void ComputeBilinearWeights(uint32_t in, uint32_t out,
                            Resizer::Weights* weights);

/// Copies the height x width box at (y, x) of an image in the PNG data
/// model (1..4 channels of uint8, or of native uint16 when `sixteen`;
/// image_width pixels a row) to contiguous uint8 pixels of `out_channels`
/// (1 or 3): gray is replicated, colour converted with the ITU-R 601
/// weights of libjpeg and Pillow's "L", alpha dropped, 16-bit samples
/// rounded to 8 bits (v * 255 / 65535).
void ConvertPixels(const uint8_t* image, bool sixteen, uint32_t image_width,
                   int channels, uint32_t y, uint32_t x, uint32_t height,
                   uint32_t width, int out_channels, uint8_t* out);

/// Reverses the pixel order of every row of a contiguous image in place.
void FlipLeftRight(uint8_t* pixels, uint32_t height, uint32_t width,
                   int channels);

}  // namespace shoal::internal

#endif  // SHOAL_LOADER_INTERNAL_RESIZE_H_
