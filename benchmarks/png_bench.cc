// shoal_png_bench: single-thread PNG decode throughput through shoal's "png"
// codec against libpng used directly, on the same encoded bytes.
//
// The images are synthetic 512x512 RGB8 pictures (smooth gradients, shapes
// and mild noise, so deflate and the row filters have realistic work),
// encoded once by shoal's codec at level 6. Each pass decodes all of them
// into one preallocated, pre-touched buffer; passes of the three decoders
// are interleaved and the best pass of each is reported, in MB/s of decoded
// pixels (MB = 10^6 bytes). The references are libpng's simplified API
// (png_image_*) and its classic API with row pointers and default settings.
//
// Not a ctest test. Results and their reading: benchmarks/RESULTS.md.
#include <png.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "base/random.h"
#include "codecs/image_codec.h"

namespace shoal {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::byte> SyntheticImage(uint32_t size, SplitMix64& rng) {
  std::vector<std::byte> pixels(size_t{size} * size * 3);
  const double fx = 1 + rng.Bounded(5), fy = 1 + rng.Bounded(5);
  const auto cx = static_cast<uint32_t>(rng.Bounded(size)),
             cy = static_cast<uint32_t>(rng.Bounded(size)),
             r = static_cast<uint32_t>(40 + rng.Bounded(150));
  for (uint32_t y = 0; y < size; ++y) {
    for (uint32_t x = 0; x < size; ++x) {
      const bool disc = (x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r;
      for (int c = 0; c < 3; ++c) {
        double v = 128 + 100 * std::sin((x * fx + y * fy * (c + 1)) / 97.0);
        if (disc) v = 255 - v;
        v += static_cast<int>(rng.Bounded(9)) - 4;
        pixels[(size_t{y} * size + x) * 3 + c] =
            static_cast<std::byte>(std::clamp(v, 0.0, 255.0));
      }
    }
  }
  return pixels;
}

// libpng's simplified API; false on error.
bool DecodeSimplified(const Buffer& png, std::byte* out) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, png.data(), png.size())) {
    return false;
  }
  image.format = PNG_FORMAT_RGB;
  const bool ok = png_image_finish_read(&image, nullptr, out, 0, nullptr) != 0;
  png_image_free(&image);
  return ok;
}

struct MemoryReader {
  const Buffer* png;
  size_t pos;
};

void ReadMemory(png_structp png, png_bytep data, size_t length) {
  auto* reader = static_cast<MemoryReader*>(png_get_io_ptr(png));
  if (length > reader->png->size() - reader->pos) png_error(png, "truncated");
  std::memcpy(data, reader->png->data() + reader->pos, length);
  reader->pos += length;
}

void Quiet(png_structp, png_const_charp) {}

// libpng's classic API, default settings; `rows` has one pointer per row.
bool DecodeClassic(const Buffer& bytes, std::vector<png_bytep>& rows) {
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, Quiet);
  png_infop info = png_create_info_struct(png);
  MemoryReader reader{&bytes, 0};
  bool ok = false;
  if (!setjmp(png_jmpbuf(png))) {
    png_set_read_fn(png, &reader, ReadMemory);
    png_read_info(png, info);
    png_read_image(png, rows.data());
    png_read_end(png, info);
    ok = true;
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return ok;
}

int Main(int argc, char** argv) {
  int count = 200;
  int passes = 5;
  uint32_t size = 512;
  CLI::App app{"PNG decode: shoal's png codec vs libpng"};
  app.add_option("--images", count, "number of images")
      ->check(CLI::Range(1, 10000));
  app.add_option("--passes", passes, "timed passes per decoder")
      ->check(CLI::Range(1, 100));
  app.add_option("--size", size, "image side in pixels")
      ->check(CLI::Range(1, 4096));
  CLI11_PARSE(app, argc, argv);

  auto codec_or = MakeImageCodec("png");
  if (!codec_or.ok()) {
    std::fprintf(stderr, "%s\n", codec_or.status().ToString().c_str());
    return 1;
  }
  const ImageCodec& codec = **codec_or;
  SplitMix64 rng(1);
  std::vector<Buffer> images;
  size_t encoded_bytes = 0;
  const Shape shape{size, size, 3};
  for (int i = 0; i < count; ++i) {
    ImageEncodeOptions options;
    options.compression_level = 6;
    auto png =
        codec.Encode(shape, DType::kUInt8, SyntheticImage(size, rng), options);
    if (!png.ok()) {
      std::fprintf(stderr, "%s\n", png.status().ToString().c_str());
      return 1;
    }
    encoded_bytes += png->size();
    images.push_back(*std::move(png));
  }
  const size_t image_bytes = size_t{size} * size * 3;
  std::vector<std::byte> out(image_bytes, std::byte{1});
  std::vector<png_bytep> rows(size);
  for (uint32_t y = 0; y < size; ++y) {
    rows[y] = reinterpret_cast<png_bytep>(out.data() + size_t{y} * size * 3);
  }

  struct Decoder {
    const char* name;
    std::function<bool(const Buffer&)> decode;
    double best_seconds = 1e300;
  };
  std::vector<Decoder> decoders = {
      {"libpng simplified API (png_image_*)",
       [&](const Buffer& b) { return DecodeSimplified(b, out.data()); }},
      {"libpng classic API (row pointers)",
       [&](const Buffer& b) { return DecodeClassic(b, rows); }},
      {"shoal png codec (ReadInfo + Decode)",
       [&](const Buffer& b) {
         auto info = codec.ReadInfo(b.span());
         return info.ok() && codec.Decode(b.span(), {}, out).ok();
       }},
  };
  for (int pass = 0; pass < passes; ++pass) {
    for (Decoder& d : decoders) {
      const auto start = Clock::now();
      for (const Buffer& b : images) {
        if (!d.decode(b)) {
          std::fprintf(stderr, "%s: decode failed\n", d.name);
          return 1;
        }
      }
      const double s =
          std::chrono::duration<double>(Clock::now() - start).count();
      d.best_seconds = std::min(d.best_seconds, s);
    }
  }

  std::printf(
      "%d images %ux%u RGB8, level 6, %.2f MB encoded (ratio %.2f); "
      "best of %d passes, one thread\n\n",
      count, size, size, encoded_bytes / 1e6,
      double(image_bytes) * count / encoded_bytes, passes);
  std::printf("| decoder | MB/s (decoded) | images/s | ÷ libpng classic |\n");
  std::printf("|---|---:|---:|---:|\n");
  const double classic = decoders[1].best_seconds;
  for (const Decoder& d : decoders) {
    std::printf("| %s | %.0f | %.0f | %.3f |\n", d.name,
                double(image_bytes) * count / d.best_seconds / 1e6,
                count / d.best_seconds, classic / d.best_seconds);
  }
  return 0;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) { return shoal::Main(argc, argv); }
