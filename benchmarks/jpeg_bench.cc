// shoal_jpeg_bench: single-thread JPEG decode through shoal's "jpeg" codec
// against raw TurboJPEG (tjDecompress2 with TJFLAG_ACCURATEDCT, the same
// ISLOW IDCT and fancy upsampling) on the same bytes, plus the speed-ups of
// DCT-domain scaling (1/2, 1/4) and of a 224x224 region decode over a full
// decode.
//
// The images are a folder of .jpg files (--dir), or by default --images
// synthetic photos: tests/data/jpeg/testorig.ppm (a real photograph)
// resampled at random scales and offsets to --width x --height with light
// noise, encoded by shoal's codec at q90 4:2:0. Every variant runs once per
// pass, passes interleaved, best pass reported. Not a ctest test.
#include <turbojpeg.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "base/random.h"
#include "benchmarks/synthetic_images.h"
#include "codecs/image_codec.h"

namespace shoal {
namespace {

using bench::ReadPpm;
using bench::Rgb;
using bench::Synthesize;

using Clock = std::chrono::steady_clock;

struct Config {
  std::string dir;
  std::string source =
      std::string(SHOAL_SOURCE_DIR) + "/tests/data/jpeg/testorig.ppm";
  int images = 200;
  int width = 500;
  int height = 400;
  int quality = 90;
  int passes = 5;
  uint64_t seed = 1;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

std::vector<std::string> LoadImages(const Config& config,
                                    const ImageCodec& codec) {
  std::vector<std::string> jpegs;
  if (!config.dir.empty()) {
    std::vector<std::filesystem::path> paths;
    for (const auto& e :
         std::filesystem::recursive_directory_iterator(config.dir)) {
      const std::string ext = e.path().extension().string();
      if (ext == ".jpg" || ext == ".jpeg" || ext == ".JPG") {
        paths.push_back(e.path());
      }
    }
    std::sort(paths.begin(), paths.end());
    for (const auto& p : paths) jpegs.push_back(ReadFile(p.string()));
    return jpegs;
  }
  const Rgb src = ReadPpm(config.source);
  SplitMix64 rng(config.seed);
  ImageEncodeOptions options;
  options.quality = config.quality;
  options.subsampling = "4:2:0";
  for (int i = 0; i < config.images; ++i) {
    const Rgb image = Synthesize(src, config.height, config.width, rng);
    auto jpeg = codec.Encode(
        Shape{uint64_t(image.height), uint64_t(image.width), 3}, DType::kUInt8,
        {reinterpret_cast<const std::byte*>(image.pixels.data()),
         image.pixels.size()},
        options);
    if (!jpeg.ok()) {
      std::fprintf(stderr, "%s\n", jpeg.status().ToString().c_str());
      std::exit(1);
    }
    jpegs.emplace_back(jpeg->view());
  }
  return jpegs;
}

ByteSpan Bytes(const std::string& s) { return AsBytes(s); }

// One full pass over all images; returns seconds, or exits on an error.
using Pass = std::function<void(size_t)>;

double Time(const std::vector<std::string>& jpegs, const Pass& decode_one) {
  const auto start = Clock::now();
  for (size_t i = 0; i < jpegs.size(); ++i) decode_one(i);
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void Check(const Status& status) {
  if (!status.ok()) {
    std::fprintf(stderr, "decode failed: %s\n", status.ToString().c_str());
    std::exit(1);
  }
}

int Main(int argc, char** argv) {
  Config config;
  CLI::App app{"JPEG decode: shoal's codec against raw TurboJPEG"};
  app.add_option("--dir", config.dir,
                 "folder of .jpg files (default: synthesize)");
  app.add_option("--source", config.source,
                 "PPM photo the synthetic images come from");
  app.add_option("--images", config.images, "number of synthetic images");
  app.add_option("--width", config.width, "synthetic image width");
  app.add_option("--height", config.height, "synthetic image height");
  app.add_option("--quality", config.quality, "synthetic image JPEG quality");
  app.add_option("--passes", config.passes,
                 "interleaved passes; the best counts");
  app.add_option("--seed", config.seed, "seed of the images and regions");
  CLI11_PARSE(app, argc, argv);

  auto codec_or = MakeImageCodec("jpeg");
  Check(codec_or.status());
  const ImageCodec& codec = **codec_or;
  const std::vector<std::string> jpegs = LoadImages(config, codec);
  if (jpegs.empty()) {
    std::fprintf(stderr, "no images\n");
    return 1;
  }
  size_t max_pixels = 0, total_bytes = 0, total_pixels = 0;
  std::vector<ImageInfo> infos;
  for (const auto& j : jpegs) {
    auto info = codec.ReadInfo(Bytes(j));
    Check(info.status());
    infos.push_back(*info);
    max_pixels =
        std::max<size_t>(max_pixels, size_t(info->height) * info->width);
    total_bytes += j.size();
    total_pixels += size_t(info->height) * info->width;
  }
  // One output buffer, touched once, shared by every variant.
  std::vector<uint8_t> out(max_pixels * 3, 1);
  std::vector<uint8_t> check(max_pixels * 3);

  tjhandle tj = tjInitDecompress();
  auto tj_decode = [&](size_t i, uint8_t* dst) {
    int w = 0, h = 0, sub = 0, cs = 0;
    const auto* src = reinterpret_cast<const unsigned char*>(jpegs[i].data());
    if (tjDecompressHeader3(tj, src, jpegs[i].size(), &w, &h, &sub, &cs) != 0 ||
        tjDecompress2(tj, src, jpegs[i].size(), dst, w, 0, h, TJPF_RGB,
                      TJFLAG_ACCURATEDCT) != 0) {
      std::fprintf(stderr, "tjDecompress2: %s\n", tjGetErrorStr2(tj));
      std::exit(1);
    }
  };
  auto shoal_decode = [&](size_t i, const ImageDecodeOptions& options) {
    auto info = codec.ReadInfo(Bytes(jpegs[i]));
    Check(info.status());
    auto shape = codec.OutputShape(*info, options);
    Check(shape.status());
    Check(codec.Decode(
        Bytes(jpegs[i]), options,
        {reinterpret_cast<std::byte*>(out.data()), shape->num_elements()}));
  };

  // Same pixels from both (colour images: RGB; the check is the point of
  // comparing on "the same bytes").
  size_t mismatched = 0;
  for (size_t i = 0; i < jpegs.size(); ++i) {
    if (infos[i].channels != 3) continue;
    ImageDecodeOptions rgb;
    shoal_decode(i, rgb);
    tj_decode(i, check.data());
    mismatched +=
        std::memcmp(out.data(), check.data(),
                    size_t(infos[i].height) * infos[i].width * 3) != 0;
  }

  // Seeded 224x224 regions (clipped to small images), fixed across passes.
  SplitMix64 rng(config.seed);
  std::vector<ImageRegion> regions;
  for (const auto& info : infos) {
    ImageRegion r;
    r.height = std::min<uint32_t>(224, info.height);
    r.width = std::min<uint32_t>(224, info.width);
    r.y = rng.Bounded(info.height - r.height + 1);
    r.x = rng.Bounded(info.width - r.width + 1);
    regions.push_back(r);
  }

  struct Variant {
    std::string name;
    Pass pass;
    double best = 1e30;
  };
  ImageDecodeOptions full, half, quarter;
  half.scale_eighths = 4;
  quarter.scale_eighths = 2;
  std::vector<Variant> variants = {
      {"TurboJPEG tjDecompress2 (ACCURATEDCT), full",
       [&](size_t i) { tj_decode(i, out.data()); }},
      {"shoal jpeg codec, full", [&](size_t i) { shoal_decode(i, full); }},
      {"shoal jpeg codec, scale 1/2", [&](size_t i) { shoal_decode(i, half); }},
      {"shoal jpeg codec, scale 1/4",
       [&](size_t i) { shoal_decode(i, quarter); }},
      {"shoal jpeg codec, 224x224 region",
       [&](size_t i) {
         ImageDecodeOptions options;
         options.region = regions[i];
         shoal_decode(i, options);
       }},
  };
  for (int p = 0; p < config.passes; ++p) {
    for (auto& v : variants) v.best = std::min(v.best, Time(jpegs, v.pass));
  }
  tjDestroy(tj);

  std::string command = "build/benchmarks/shoal_jpeg_bench";
  for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
  std::printf(
      "```\n%s  # --images %d --passes %d --width %d --height %d\n```\n\n",
      command.c_str(), config.images, config.passes, config.width,
      config.height);
  std::printf(
      "%zu JPEGs, %.2f MB, %.1f Mpixel; shoal == TurboJPEG pixels on "
      "%zu of %zu colour images\n\n",
      jpegs.size(), total_bytes / 1e6, total_pixels / 1e6,
      jpegs.size() - mismatched, jpegs.size());
  std::printf(
      "| decoder | images/s | Mpixel/s (source) | ÷ TurboJPEG | "
      "speed-up vs shoal full |\n|---|---:|---:|---:|---:|\n");
  const double tj_best = variants[0].best, full_best = variants[1].best;
  for (const auto& v : variants) {
    std::printf("| %s | %.0f | %.1f | %.3f | %.2fx |\n", v.name.c_str(),
                jpegs.size() / v.best, total_pixels / 1e6 / v.best,
                tj_best / v.best, full_best / v.best);
  }
  return mismatched == 0 ? 0 : 2;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) { return shoal::Main(argc, argv); }
