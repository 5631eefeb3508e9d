// Antialiased bilinear resize (see resize.h).
//
// Both passes compute, for each output byte, kHalf + sum(pixel * weight)
// over the same taps and shift by kBits: integer sums do not depend on the
// order of the additions, so the AVX2 passes and the portable ones agree bit
// for bit (the transform test checks it on random images).
#include "loader/internal/resize.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <new>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SHOAL_RESIZE_X86 1
#endif

namespace shoal::internal {
namespace {

constexpr int kBits = 14;
constexpr int32_t kOne = 1 << kBits;
constexpr int32_t kHalf = 1 << (kBits - 1);

std::atomic<bool> simd_allowed{true};

bool CpuHasAvx2() {
#ifdef SHOAL_RESIZE_X86
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

// The AVX2 horizontal pass reads a fixed-length window of source pixels per
// output pixel: taps in pairs for RGB (one madd covers two taps of three
// channels), in groups of 8 for gray (one madd covers 8 taps of two outputs).
uint32_t WindowMultiple(int channels) { return channels == 3 ? 2 : 8; }

inline uint8_t Finish(int32_t sum) {
  const int32_t v = sum >> kBits;
  return static_cast<uint8_t>(std::clamp(v, 0, 255));
}

// Pillow's bilinear filter (support 1).
inline double Triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

template <typename T>
T* Grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

#ifdef SHOAL_RESIZE_X86

// Two RGB output pixels per iteration, one per 128-bit lane. The shuffle
// turns 8 source bytes (pixels t, t+1 and part of t+2) into the int16 words
// r_t r_t+1 g_t g_t+1 b_t b_t+1 0 0, which madd pairs with the weights
// k_t k_t+1 k_t k_t+1 k_t k_t+1 0 0.
__attribute__((target("avx2"))) void HorizontalRgbAvx2(
    const uint8_t* src, uint32_t pairs, uint32_t tap_pairs,
    const uint32_t* start, const int16_t* weights, uint8_t* dst) {
  const __m256i shuffle = _mm256_setr_epi8(
      0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1,  //
      0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1);
  for (uint32_t p = 0; p < pairs; ++p) {
    const uint8_t* a = src + size_t{start[2 * p]} * 3;
    const uint8_t* b = src + size_t{start[2 * p + 1]} * 3;
    const int16_t* k = weights + size_t{p} * tap_pairs * 16;
    __m256i sum = _mm256_set1_epi32(kHalf);
    for (uint32_t q = 0; q < tap_pairs; ++q) {
      const __m128i pa =
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a + size_t{q} * 6));
      const __m128i pb =
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + size_t{q} * 6));
      __m256i px = _mm256_inserti128_si256(_mm256_castsi128_si256(pa), pb, 1);
      px = _mm256_shuffle_epi8(px, shuffle);
      const __m256i kq = _mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(k + size_t{q} * 16));
      sum = _mm256_add_epi32(sum, _mm256_madd_epi16(px, kq));
    }
    sum = _mm256_srai_epi32(sum, kBits);
    const __m256i words = _mm256_packs_epi32(sum, sum);
    const __m256i bytes = _mm256_packus_epi16(words, words);
    const uint32_t pixel_a = _mm256_extract_epi32(bytes, 0);
    const uint32_t pixel_b = _mm256_extract_epi32(bytes, 4);
    // 4-byte stores; each one's extra byte is overwritten by the next
    // pixel, except after the row's last pixel.
    std::memcpy(dst + size_t{p} * 6, &pixel_a, 4);
    std::memcpy(dst + size_t{p} * 6 + 3, &pixel_b, p + 1 < pairs ? 4 : 3);
  }
}

// Two gray output pixels per iteration: 8 taps of each per madd.
__attribute__((target("avx2"))) void HorizontalGrayAvx2(
    const uint8_t* src, uint32_t pairs, uint32_t groups, const uint32_t* start,
    const int16_t* weights, uint8_t* dst) {
  for (uint32_t p = 0; p < pairs; ++p) {
    const uint8_t* a = src + start[2 * p];
    const uint8_t* b = src + start[2 * p + 1];
    const int16_t* k = weights + size_t{p} * groups * 16;
    __m256i sum = _mm256_setzero_si256();
    for (uint32_t g = 0; g < groups; ++g) {
      const __m128i pa =
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a + size_t{g} * 8));
      const __m128i pb =
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + size_t{g} * 8));
      const __m256i px = _mm256_cvtepu8_epi16(_mm_unpacklo_epi64(pa, pb));
      const __m256i kg = _mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(k + size_t{g} * 16));
      sum = _mm256_add_epi32(sum, _mm256_madd_epi16(px, kg));
    }
    // Lane 0 holds four partial sums of pixel a, lane 1 of pixel b.
    sum = _mm256_hadd_epi32(sum, sum);
    sum = _mm256_hadd_epi32(sum, sum);
    dst[2 * p] = Finish(_mm256_extract_epi32(sum, 0) + kHalf);
    dst[2 * p + 1] = Finish(_mm256_extract_epi32(sum, 4) + kHalf);
  }
}

// One output row of the vertical pass, 16 bytes at a time; rows are paired
// so one madd applies two taps. The last block overlaps the one before it
// instead of leaving a scalar tail. Precondition: len >= 16.
__attribute__((target("avx2"))) void VerticalRowAvx2(const uint8_t* src,
                                                     size_t stride,
                                                     uint32_t count,
                                                     const int16_t* k,
                                                     size_t len, uint8_t* dst) {
  for (size_t i = 0; i < len; i += 16) {
    const size_t at = std::min(i, len - 16);
    __m256i lo = _mm256_set1_epi32(kHalf);
    __m256i hi = lo;
    for (uint32_t t = 0; t < count; t += 2) {
      const uint8_t* r0 = src + t * stride + at;
      const bool pair = t + 1 < count;
      const uint8_t* r1 = pair ? r0 + stride : r0;
      const uint32_t k0 = static_cast<uint16_t>(k[t]);
      const uint32_t k1 = pair ? static_cast<uint16_t>(k[t + 1]) : 0;
      const __m256i kk = _mm256_set1_epi32(static_cast<int32_t>(k0 | k1 << 16));
      const __m256i a = _mm256_cvtepu8_epi16(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(r0)));
      const __m256i b = _mm256_cvtepu8_epi16(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(r1)));
      lo = _mm256_add_epi32(lo,
                            _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), kk));
      hi = _mm256_add_epi32(hi,
                            _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), kk));
    }
    // lo holds bytes 0-3 | 8-11, hi 4-7 | 12-15; the in-lane packs restore
    // the order.
    lo = _mm256_srai_epi32(lo, kBits);
    hi = _mm256_srai_epi32(hi, kBits);
    const __m256i words = _mm256_packs_epi32(lo, hi);
    const __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(words),
                                           _mm256_extracti128_si256(words, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + at), bytes);
  }
}

#endif  // SHOAL_RESIZE_X86

}  // namespace

void ComputeBilinearWeights(uint32_t in, uint32_t out,
                            Resizer::Weights* weights) {
  // Pillow's precompute_coeffs (Resample.c), then Q14.
  const double scale = static_cast<double>(in) / out;
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;
  const double inverse = 1.0 / filter_scale;  // Pillow's `ss`
  const uint32_t max_taps = static_cast<uint32_t>(std::ceil(support)) * 2 + 1;
  weights->max_taps = max_taps;
  weights->max_count = 1;
  weights->first.resize(out);
  weights->count.resize(out);
  weights->k.assign(size_t{out} * max_taps, 0);
  for (uint32_t i = 0; i < out; ++i) {
    const double center = (i + 0.5) * scale;
    // Truncation toward zero, as Pillow's (int) casts.
    const int64_t lo =
        std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t hi =
        std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in);
    const uint32_t count = static_cast<uint32_t>(
        std::clamp<int64_t>(hi - lo, 1, std::min<int64_t>(max_taps, in - lo)));
    auto weight = [&](uint32_t t) {
      return Triangle((t + lo - center + 0.5) * inverse);
    };
    double total = 0;
    for (uint32_t t = 0; t < count; ++t) total += weight(t);
    int16_t* k = &weights->k[size_t{i} * max_taps];
    int32_t sum = 0;
    uint32_t largest = 0;
    for (uint32_t t = 0; t < count; ++t) {
      const double w = total > 0 ? weight(t) / total : (t == 0 ? 1.0 : 0.0);
      k[t] = static_cast<int16_t>(w * kOne + 0.5);  // w >= 0
      sum += k[t];
      if (k[t] > k[largest]) largest = t;
    }
    // Weights summing to exactly one keep flat areas flat.
    k[largest] = static_cast<int16_t>(k[largest] + kOne - sum);
    weights->first[i] = static_cast<uint32_t>(lo);
    weights->count[i] = count;
    weights->max_count = std::max(weights->max_count, count);
  }
}

namespace {

// 16-bit sample to 8 bits, rounded to nearest.
inline uint8_t To8(uint16_t v) {
  return static_cast<uint8_t>((uint32_t{v} * 255 + 32767) / 65535);
}

// libjpeg's rgb->gray (jdcolor.c), which is also Pillow's "L" conversion.
inline uint8_t Luma(uint32_t r, uint32_t g, uint32_t b) {
  return static_cast<uint8_t>((19595 * r + 38470 * g + 7471 * b + 32768) >> 16);
}

template <typename T>
void ConvertBox(const T* image, uint32_t image_width, int channels,
                uint32_t box_y, uint32_t box_x, uint32_t box_height,
                uint32_t box_width, int out_channels, uint8_t* out) {
  auto to8 = [](T v) -> uint32_t {
    if constexpr (sizeof(T) == 2) {
      return To8(v);
    } else {
      return v;
    }
  };
  const bool color = channels >= 3;
  for (uint32_t y = 0; y < box_height; ++y) {
    const T* p = image + (size_t{box_y + y} * image_width + box_x) * channels;
    for (uint32_t x = 0; x < box_width; ++x, p += channels) {
      const uint32_t r = to8(p[0]);
      const uint32_t g = color ? to8(p[1]) : r;
      const uint32_t b = color ? to8(p[2]) : r;
      if (out_channels == 3) {
        *out++ = static_cast<uint8_t>(r);
        *out++ = static_cast<uint8_t>(g);
        *out++ = static_cast<uint8_t>(b);
      } else {
        *out++ = color ? Luma(r, g, b) : static_cast<uint8_t>(r);
      }
    }
  }
}

}  // namespace

void ConvertPixels(const uint8_t* image, bool sixteen, uint32_t image_width,
                   int channels, uint32_t y, uint32_t x, uint32_t height,
                   uint32_t width, int out_channels, uint8_t* out) {
  if (sixteen) {
    ConvertBox(reinterpret_cast<const uint16_t*>(image), image_width, channels,
               y, x, height, width, out_channels, out);
  } else {
    ConvertBox(image, image_width, channels, y, x, height, width, out_channels,
               out);
  }
}

void FlipLeftRight(uint8_t* pixels, uint32_t height, uint32_t width,
                   int channels) {
  const size_t row = size_t{width} * channels;
  for (uint32_t y = 0; y < height; ++y) {
    uint8_t* left = pixels + y * row;
    uint8_t* right = left + row - channels;
    for (; left < right; left += channels, right -= channels) {
      for (int c = 0; c < channels; ++c) std::swap(left[c], right[c]);
    }
  }
}

void Resizer::EnableSimdForTesting(bool enable) {
  simd_allowed.store(enable, std::memory_order_relaxed);
}

bool Resizer::UsesSimd() {
  static const bool has_avx2 = CpuHasAvx2();
  return has_avx2 && simd_allowed.load(std::memory_order_relaxed);
}

Status Resizer::Resize(const PixelView& src, uint32_t dst_height,
                       uint32_t dst_width, bool mirror, uint8_t* dst) {
  try {
    ResizeUnchecked(src, dst_height, dst_width, mirror, dst);
  } catch (const std::bad_alloc&) {
    return ResourceExhausted(
        "resize: out of memory resizing " + std::to_string(src.height) + "x" +
        std::to_string(src.width) + " to " + std::to_string(dst_height) + "x" +
        std::to_string(dst_width));
  }
  return Status::OK();
}

void Resizer::ResizeUnchecked(const PixelView& src, uint32_t dst_height,
                              uint32_t dst_width, bool mirror, uint8_t* dst) {
  const int channels = src.channels;
  const bool horizontal = src.width != dst_width;
  const bool vertical = src.height != dst_height;
  if (!horizontal && !vertical) {
    const size_t row = size_t{dst_width} * channels;
    for (uint32_t y = 0; y < dst_height; ++y) {
      std::memcpy(dst + y * row, src.data + y * src.stride, row);
    }
  } else if (!horizontal) {
    ComputeBilinearWeights(src.height, dst_height, &vertical_);
    Vertical(src, dst_height, dst);
  } else if (!vertical) {
    ComputeBilinearWeights(src.width, dst_width, &horizontal_);
    Horizontal(src, 0, src.height, dst_width, mirror, dst);
    return;  // Mirrored by the horizontal weights.
  } else {
    ComputeBilinearWeights(src.width, dst_width, &horizontal_);
    ComputeBilinearWeights(src.height, dst_height, &vertical_);
    // Only the source rows the vertical pass reads go through the
    // horizontal pass; their indexes become rows of `between_`.
    uint32_t row_begin = src.height, row_end = 0;
    for (uint32_t i = 0; i < dst_height; ++i) {
      row_begin = std::min(row_begin, vertical_.first[i]);
      row_end = std::max(row_end, vertical_.first[i] + vertical_.count[i]);
    }
    for (uint32_t& first : vertical_.first) first -= row_begin;
    const uint32_t rows = row_end - row_begin;
    const size_t row = size_t{dst_width} * channels;
    uint8_t* between = Grow(between_, rows * row + kResizeSourceSlack);
    Horizontal(src, row_begin, rows, dst_width, mirror, between);
    Vertical(PixelView{between, row, rows, dst_width, channels}, dst_height,
             dst);
    return;  // Mirrored by the horizontal weights.
  }
  if (mirror) FlipLeftRight(dst, dst_height, dst_width, channels);
}

void Resizer::Horizontal(const PixelView& src, uint32_t row_begin,
                         uint32_t rows, uint32_t dst_width, bool mirror,
                         uint8_t* dst) {
  const Weights& w = horizontal_;
  const int channels = src.channels;
  const size_t dst_row = size_t{dst_width} * channels;
  const uint32_t multiple = WindowMultiple(channels);
  // As long as the most taps any output pixel has (often one less than
  // max_taps), rounded up to the multiple.
  const uint32_t window = (w.max_count + multiple - 1) / multiple * multiple;
  // A window longer than the row would read past it.
  const bool simd = UsesSimd() && src.width >= window && dst_width >= 2;
  const uint32_t pairs = simd ? dst_width / 2 : 0;
  if (simd) {
    // Per output pixel (mirrored: the weights of the opposite pixel), a
    // window moved left where it would pass the row's end, its weights
    // moved right to match; zero weights elsewhere.
    uint32_t* start = Grow(window_start_, dst_width);
    int16_t* vec =
        Grow(window_weights_, size_t{pairs} * window / multiple * 16);
    std::fill_n(vec, size_t{pairs} * window / multiple * 16, int16_t{0});
    for (uint32_t j = 0; j < pairs * 2; ++j) {
      const uint32_t i = mirror ? dst_width - 1 - j : j;
      start[j] = std::min(w.first[i], src.width - window);
      const uint32_t offset = w.first[i] - start[j];
      const int16_t* k = &w.k[size_t{i} * w.max_taps];
      // This pixel pair's blocks of 16 words; this pixel's 128-bit lane.
      int16_t* out = vec + size_t{j / 2} * window / multiple * 16 + (j % 2) * 8;
      for (uint32_t t = 0; t < w.count[i]; ++t) {
        const uint32_t tap = offset + t;
        if (channels == 3) {
          // Tap pair tap/2 occupies one 16-word block; words 0,2,4 take
          // its even tap, 1,3,5 its odd one.
          int16_t* block = out + size_t{tap / 2} * 16;
          for (int c = 0; c < 3; ++c) block[2 * c + tap % 2] = k[t];
        } else {
          out[size_t{tap / 8} * 16 + tap % 8] = k[t];
        }
      }
    }
  }
  for (uint32_t y = 0; y < rows; ++y) {
    const uint8_t* s = src.data + size_t{row_begin + y} * src.stride;
    uint8_t* d = dst + y * dst_row;
#ifdef SHOAL_RESIZE_X86
    if (simd && channels == 3) {
      HorizontalRgbAvx2(s, pairs, window / 2, window_start_.data(),
                        window_weights_.data(), d);
    } else if (simd) {
      HorizontalGrayAvx2(s, pairs, window / 8, window_start_.data(),
                         window_weights_.data(), d);
    }
#endif
    for (uint32_t j = pairs * 2; j < dst_width; ++j) {
      const uint32_t i = mirror ? dst_width - 1 - j : j;
      const uint8_t* p = s + size_t{w.first[i]} * channels;
      const int16_t* k = &w.k[size_t{i} * w.max_taps];
      for (int c = 0; c < channels; ++c) {
        int32_t sum = kHalf;
        for (uint32_t t = 0; t < w.count[i]; ++t) {
          sum += p[size_t{t} * channels + c] * k[t];
        }
        d[size_t{j} * channels + c] = Finish(sum);
      }
    }
  }
}

void Resizer::Vertical(const PixelView& src, uint32_t dst_height,
                       uint8_t* dst) {
  const Weights& w = vertical_;
  const size_t len = size_t{src.width} * src.channels;
  const bool simd = UsesSimd() && len >= 16;
  for (uint32_t i = 0; i < dst_height; ++i) {
    const uint8_t* s = src.data + size_t{w.first[i]} * src.stride;
    const int16_t* k = &w.k[size_t{i} * w.max_taps];
    uint8_t* d = dst + i * len;
#ifdef SHOAL_RESIZE_X86
    if (simd) {
      VerticalRowAvx2(s, src.stride, w.count[i], k, len, d);
      continue;
    }
#endif
    for (size_t x = 0; x < len; ++x) {
      int32_t sum = kHalf;
      for (uint32_t t = 0; t < w.count[i]; ++t) {
        sum += s[t * src.stride + x] * k[t];
      }
      d[x] = Finish(sum);
    }
  }
}

}  // namespace shoal::internal
