// shoal_transform_bench: one-thread cost of the loader's image transforms on
// 500x400 q90 4:2:0 JPEGs, against the raw TurboJPEG full decode of the same
// bytes (tjDecompress2, TJFLAG_ACCURATEDCT: the IDCT shoal's codec uses).
// The loader's target is train (RandomResizedCrop 224 + flip) at >= 0.9x
// the images/s of that raw decode.
//
// Images: tests/data/jpeg/testorig.ppm (a photograph) resampled at random
// scales and offsets with light noise, encoded by shoal's codec, as in
// shoal_jpeg_bench. Each iteration transforms the next image with the next
// seed, so the random crops vary as in training.
//
// Also timed, to keep the choice of resampler measurable: the resampler
// alone on a decoded image, and libswscale doing the same resize (packed
// RGB24 with a cached context; per-plane GRAY8 with a new context per crop
// size, which is what random crops would need). Not a ctest test.
#include <benchmark/benchmark.h>
#include <turbojpeg.h>

extern "C" {
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/random.h"
#include "benchmarks/synthetic_images.h"
#include "codecs/image_codec.h"
#include "loader/image_transform.h"
#include "loader/internal/resize.h"

namespace shoal {
namespace {

using bench::ReadPpm;
using bench::Rgb;
using bench::Synthesize;

constexpr int kImages = 64;
constexpr int kHeight = 400, kWidth = 500;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::exit(1);
}

void Check(const Status& status) {
  if (!status.ok()) Die(status.ToString());
}

struct Data {
  std::shared_ptr<const ImageCodec> codec;
  std::vector<std::string> jpegs;
  Rgb decoded;  // jpegs[0], decoded, for the resampler-only runs
};

const Data& GetData() {
  static const Data data = [] {
    Data d;
    auto codec = MakeImageCodec("jpeg");
    if (!codec.ok()) Die(codec.status().ToString());
    d.codec = *codec;
    const Rgb src = ReadPpm(std::string(SHOAL_SOURCE_DIR) +
                            "/tests/data/jpeg/testorig.ppm");
    SplitMix64 rng(1);
    ImageEncodeOptions options;
    options.quality = 90;
    options.subsampling = "4:2:0";
    for (int i = 0; i < kImages; ++i) {
      const Rgb image = Synthesize(src, kHeight, kWidth, rng);
      auto jpeg = d.codec->Encode(
          Shape{uint64_t(image.height), uint64_t(image.width), 3},
          DType::kUInt8,
          {reinterpret_cast<const std::byte*>(image.pixels.data()),
           image.pixels.size()},
          options);
      if (!jpeg.ok()) Die(jpeg.status().ToString());
      d.jpegs.emplace_back(jpeg->view());
    }
    d.decoded = {kHeight, kWidth,
                 std::vector<uint8_t>(size_t(kHeight) * kWidth * 3 +
                                      internal::kResizeSourceSlack)};
    ImageDecodeOptions rgb;
    rgb.channels = ImageDecodeOptions::Channels::kRgb;
    const Status s =
        d.codec->Decode(AsBytes(d.jpegs[0]), rgb,
                        {reinterpret_cast<std::byte*>(d.decoded.pixels.data()),
                         size_t(kHeight) * kWidth * 3});
    if (!s.ok()) Die(s.ToString());
    return d;
  }();
  return data;
}

void BM_TurboJpegFullDecode(benchmark::State& state) {
  const Data& d = GetData();
  tjhandle tj = tjInitDecompress();
  std::vector<uint8_t> out(size_t(kHeight) * kWidth * 3);
  size_t i = 0;
  for (auto _ : state) {
    const std::string& j = d.jpegs[i++ % d.jpegs.size()];
    const auto* src = reinterpret_cast<const unsigned char*>(j.data());
    int w = 0, h = 0, sub = 0, cs = 0;
    if (tjDecompressHeader3(tj, src, j.size(), &w, &h, &sub, &cs) != 0 ||
        tjDecompress2(tj, src, j.size(), out.data(), w, 0, h, TJPF_RGB,
                      TJFLAG_ACCURATEDCT) != 0) {
      Die(tjGetErrorStr2(tj));
    }
    benchmark::DoNotOptimize(out.data());
  }
  tjDestroy(tj);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TurboJpegFullDecode);

void BM_CodecFullDecode(benchmark::State& state) {
  const Data& d = GetData();
  std::vector<std::byte> out(size_t(kHeight) * kWidth * 3);
  ImageDecodeOptions rgb;
  rgb.channels = ImageDecodeOptions::Channels::kRgb;
  size_t i = 0;
  for (auto _ : state) {
    const ByteSpan bytes = AsBytes(d.jpegs[i++ % d.jpegs.size()]);
    auto info = d.codec->ReadInfo(bytes);
    if (!info.ok()) Die(info.status().ToString());
    const Status s = d.codec->Decode(bytes, rgb, out);
    if (!s.ok()) Die(s.ToString());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CodecFullDecode);

// Apply() of `transform`, counting the DCT scales used.
void RunTransform(benchmark::State& state, ImageTransform transform) {
  const Data& d = GetData();
  const auto info = d.codec->ReadInfo(AsBytes(d.jpegs[0]));
  const auto shape = ImageTransformShape(transform, *info);
  if (!shape.ok()) Die(shape.status().ToString());
  std::vector<std::byte> out(shape->num_elements());
  ImageTransformer transformer;
  ImageTransformStats stats;
  uint64_t seed = 0, scaled = 0, pixels = 0;
  for (auto _ : state) {
    const ByteSpan bytes = AsBytes(d.jpegs[seed % d.jpegs.size()]);
    const Status s =
        transformer.Apply(*d.codec, bytes, transform, seed++, out, &stats);
    if (!s.ok()) Die(s.ToString());
    scaled += stats.scale_eighths < 8;
    pixels += uint64_t{stats.decoded.height} * stats.decoded.width;
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["dct_scaled"] =
      benchmark::Counter(double(scaled) / std::max<uint64_t>(seed, 1));
  state.counters["decoded_px"] =
      benchmark::Counter(double(pixels) / std::max<uint64_t>(seed, 1));
}

ImageTransform NoDct(ImageTransform t) {
  t.allow_dct_scaling = false;
  return t;
}

ImageTransform Resize(uint32_t height, uint32_t width) {
  ImageTransform t;
  t.kind = ImageTransform::Kind::kResize;
  t.height = height;
  t.width = width;
  return t;
}

BENCHMARK_CAPTURE(RunTransform, train_224, ImageTransform::Train(224));
BENCHMARK_CAPTURE(RunTransform, train_224_no_dct,
                  NoDct(ImageTransform::Train(224)));
BENCHMARK_CAPTURE(RunTransform, train_112, ImageTransform::Train(112));
BENCHMARK_CAPTURE(RunTransform, train_112_no_dct,
                  NoDct(ImageTransform::Train(112)));
BENCHMARK_CAPTURE(RunTransform, eval_224, ImageTransform::Eval(224));
BENCHMARK_CAPTURE(RunTransform, resize_224, Resize(224, 224));
BENCHMARK_CAPTURE(RunTransform, resize_112_dct_half, Resize(112, 112));
BENCHMARK_CAPTURE(RunTransform, resize_112_no_dct, NoDct(Resize(112, 112)));

// Random 224-ish crops of one decoded image, as train would resample them.
std::vector<ImageRegion> Crops() {
  std::vector<ImageRegion> crops;
  const ImageTransform t = ImageTransform::Train(224);
  for (uint64_t seed = 0; seed < 256; ++seed) {
    crops.push_back(PlanImageCrop(t, kHeight, kWidth, seed).box);
  }
  return crops;
}

void BM_ResampleCrops(benchmark::State& state) {
  const Data& d = GetData();
  const std::vector<ImageRegion> crops = Crops();
  internal::Resizer resizer;
  std::vector<uint8_t> out(224 * 224 * 3);
  size_t i = 0;
  for (auto _ : state) {
    const ImageRegion& c = crops[i++ % crops.size()];
    Check(resizer.Resize(
        {d.decoded.pixels.data() + (size_t(c.y) * kWidth + c.x) * 3,
         size_t(kWidth) * 3, c.height, c.width, 3},
        224, 224, false, out.data()));
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ResampleCrops);

void BM_SwscaleRgb24Crops(benchmark::State& state) {
  const Data& d = GetData();
  const std::vector<ImageRegion> crops = Crops();
  std::vector<uint8_t> out(224 * 224 * 3);
  SwsContext* ctx = nullptr;
  size_t i = 0;
  for (auto _ : state) {
    const ImageRegion& c = crops[i++ % crops.size()];
    ctx = sws_getCachedContext(ctx, c.width, c.height, AV_PIX_FMT_RGB24, 224,
                               224, AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr,
                               nullptr, nullptr);
    const uint8_t* src[4] = {d.decoded.pixels.data() +
                             (size_t(c.y) * kWidth + c.x) * 3};
    const int src_stride[4] = {kWidth * 3};
    uint8_t* dst[4] = {out.data()};
    const int dst_stride[4] = {224 * 3};
    sws_scale(ctx, src, src_stride, 0, c.height, dst, dst_stride);
    benchmark::DoNotOptimize(out.data());
  }
  sws_freeContext(ctx);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SwscaleRgb24Crops);

// Planes with 64-byte-aligned rows (swscale's SIMD needs aligned strides).
void BM_SwscalePlanarCrops(benchmark::State& state) {
  const Data& d = GetData();
  const std::vector<ImageRegion> crops = Crops();
  constexpr int kStride = 512, kOutStride = 256;
  std::vector<uint8_t> planes(size_t(3) * kStride * kHeight);
  std::vector<uint8_t> out_planes(size_t(3) * kOutStride * 224);
  std::vector<uint8_t> out(224 * 224 * 3);
  SwsContext* ctx = nullptr;
  size_t i = 0;
  for (auto _ : state) {
    const ImageRegion& c = crops[i++ % crops.size()];
    ctx = sws_getCachedContext(ctx, c.width, c.height, AV_PIX_FMT_GRAY8, 224,
                               224, AV_PIX_FMT_GRAY8, SWS_BILINEAR, nullptr,
                               nullptr, nullptr);
    for (uint32_t y = 0; y < c.height; ++y) {
      const uint8_t* s =
          d.decoded.pixels.data() + ((size_t(c.y) + y) * kWidth + c.x) * 3;
      for (uint32_t x = 0; x < c.width; ++x) {
        for (int p = 0; p < 3; ++p) {
          planes[(size_t(p) * kHeight + y) * kStride + x] = s[3 * x + p];
        }
      }
    }
    for (int p = 0; p < 3; ++p) {
      const uint8_t* src[4] = {planes.data() + size_t(p) * kHeight * kStride};
      const int src_stride[4] = {kStride};
      uint8_t* dst[4] = {out_planes.data() + size_t(p) * 224 * kOutStride};
      const int dst_stride[4] = {kOutStride};
      sws_scale(ctx, src, src_stride, 0, c.height, dst, dst_stride);
    }
    for (int y = 0; y < 224; ++y) {
      for (int x = 0; x < 224; ++x) {
        for (int p = 0; p < 3; ++p) {
          out[(size_t(y) * 224 + x) * 3 + p] =
              out_planes[(size_t(p) * 224 + y) * kOutStride + x];
        }
      }
    }
    benchmark::DoNotOptimize(out.data());
  }
  sws_freeContext(ctx);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SwscalePlanarCrops);

}  // namespace
}  // namespace shoal

BENCHMARK_MAIN();
