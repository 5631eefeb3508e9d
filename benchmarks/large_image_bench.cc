// shoal_large_image_bench: one large photo held in a dataset, read whole and
// as a 512 x 512 region, against c-blosc decompressing the same bytes with
// the same codec, block size and threads, and against memcpy (issue 16).
//
// Each JPEG is decoded (TurboJPEG) to an H x W x 3 uint8 array, stored as one
// sample of a mem:// dataset in every layout (raw or lz4 / lz4+shuffle /
// zstd:1 chunks; tiled by default, or in one untiled chunk), then:
//   - whole: Tensor::Read of the sample, best of --repeats;
//   - region: Tensor::ReadRegion of 512 x 512 x 3 at seeded random places;
//   - c-blosc (Debian's libblosc, 1.21): blosc_decompress_ctx of the array
//     compressed with the same codec (blosclz is not used), shuffle as the
//     layout says, the layout's block size, on 1 and 2 threads;
//   - memcpy of the array into a touched buffer.
// Ratios printed: c-blosc time ÷ shoal's (≥ 1 means shoal is faster),
// compression ratio ÷ c-blosc's, memcpy ÷ raw tiled read, region ÷ whole.
//
// Not a ctest test: run by hand (`build-release/benchmarks/
// shoal_large_image_bench`). Results and their reading: benchmarks/RESULTS.md.
#include <blosc.h>
#include <turbojpeg.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "format/dataset.h"
#include "format/schema.h"

namespace shoal {
namespace {

using Clock = std::chrono::steady_clock;

struct Image {
  std::string name;
  uint64_t height = 0, width = 0;
  std::vector<std::byte> rgb;
};

bool DecodeJpeg(const std::string& path, Image& out) {
  std::ifstream in(path, std::ios::binary);
  std::vector<unsigned char> jpeg((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  tjhandle tj = tjInitDecompress();
  int w = 0, h = 0, sub = 0, cs = 0;
  bool ok = !jpeg.empty() && tjDecompressHeader3(tj, jpeg.data(), jpeg.size(),
                                                 &w, &h, &sub, &cs) == 0;
  if (ok) {
    out.rgb.resize(static_cast<size_t>(w) * h * 3);
    ok = tjDecompress2(tj, jpeg.data(), jpeg.size(),
                       reinterpret_cast<unsigned char*>(out.rgb.data()), w, 0,
                       h, TJPF_RGB, TJFLAG_ACCURATEDCT) == 0;
  }
  tjDestroy(tj);
  out.name = path.substr(path.find_last_of('/') + 1);
  out.height = static_cast<uint64_t>(h);
  out.width = static_cast<uint64_t>(w);
  return ok;
}

// Best wall time of `repeats` calls of fn, in ms.
template <typename Fn>
double BestMs(int repeats, Fn&& fn) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    fn();
    best = std::min(
        best,
        std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return best;
}

struct Layout {
  std::string label;
  std::string compression;  // "" raw
  bool tiled = true;
};

struct Measured {
  double whole_ms = 0, region_ms = 0, ratio = 0;
};

Result<Measured> MeasureShoal(const Image& img, const Layout& layout,
                              uint64_t block_bytes, int repeats,
                              const std::string& url) {
  SHOAL_ASSIGN_OR_RETURN(auto ds, Dataset::Create(url));
  TensorSpec spec;
  spec.name = "image";
  spec.htype = HType::kImage;
  spec.dtype = DType::kUInt8;
  spec.chunk_compression = layout.compression;
  spec.block_bytes = block_bytes;
  if (!layout.tiled) {
    spec.tiling_threshold = kNoTiling;
    spec.max_chunk_bytes = std::max<uint64_t>(img.rgb.size(), 8ull << 20);
  }
  SHOAL_ASSIGN_OR_RETURN(Tensor * t, ds->CreateTensor(spec));
  SHOAL_RETURN_IF_ERROR(
      t->Append(Shape({img.height, img.width, 3}), ByteSpan(img.rgb)));
  SHOAL_RETURN_IF_ERROR(ds->Flush());
  Measured m;
  const TensorStats stats = t->stats();
  m.ratio = static_cast<double>(img.rgb.size()) /
            static_cast<double>(stats.stored_bytes);
  Status failed;
  m.whole_ms = BestMs(repeats, [&] {
    auto s = t->Read(0);
    if (!s.ok()) failed = s.status();
  });
  std::mt19937_64 rng(1);
  m.region_ms = BestMs(repeats * 3, [&] {
    const uint64_t y = rng() % (img.height - 512),
                   x = rng() % (img.width - 512);
    const uint64_t lo[3] = {y, x, 0}, hi[3] = {y + 512, x + 512, 3};
    auto s = t->ReadRegion(0, lo, hi);
    if (!s.ok()) failed = s.status();
  });
  SHOAL_RETURN_IF_ERROR(failed);
  return m;
}

struct BloscMeasured {
  double ms1 = 0, ms2 = 0, ratio = 0;
};

BloscMeasured MeasureBlosc(const Image& img, const char* codec, bool shuffle,
                           uint64_t block_bytes, int repeats) {
  const size_t n = img.rgb.size();
  std::vector<std::byte> packed(n + BLOSC_MAX_OVERHEAD);
  std::vector<std::byte> out(n);
  std::memset(out.data(), 1, n);
  const int clevel = std::string(codec) == "zstd" ? 1 : 5;
  const int packed_size = blosc_compress_ctx(
      clevel, shuffle ? BLOSC_SHUFFLE : BLOSC_NOSHUFFLE, 1, n, img.rgb.data(),
      packed.data(), packed.size(), codec, block_bytes, 2);
  BloscMeasured m;
  if (packed_size <= 0) return m;
  m.ratio = static_cast<double>(n) / packed_size;
  m.ms1 = BestMs(
      repeats, [&] { blosc_decompress_ctx(packed.data(), out.data(), n, 1); });
  m.ms2 = BestMs(
      repeats, [&] { blosc_decompress_ctx(packed.data(), out.data(), n, 2); });
  return m;
}

int Run(const std::vector<std::string>& jpegs, uint64_t block_bytes,
        int repeats) {
  const std::vector<Layout> layouts = {
      {"raw, tiled", "", true},
      {"raw, untiled", "", false},
      {"lz4, tiled", "lz4", true},
      {"lz4, untiled", "lz4", false},
      {"lz4+shuffle, tiled", "lz4+shuffle", true},
      {"zstd:1, tiled", "zstd:1", true},
  };
  int id = 0;
  for (const std::string& path : jpegs) {
    Image img;
    if (!DecodeJpeg(path, img)) {
      std::fprintf(stderr, "cannot decode %s\n", path.c_str());
      return 1;
    }
    if (img.height <= 512 || img.width <= 512) {
      std::fprintf(stderr, "%s: smaller than the 512 x 512 region\n",
                   path.c_str());
      return 1;
    }
    std::vector<std::byte> dst(img.rgb.size());
    std::memset(dst.data(), 1, dst.size());
    const double memcpy_ms = BestMs(repeats, [&] {
      std::memcpy(dst.data(), img.rgb.data(), img.rgb.size());
    });
    std::printf(
        "\n%s: %llu x %llu x 3 = %.1f MB, block %llu KiB, memcpy %.2f ms\n",
        img.name.c_str(), static_cast<unsigned long long>(img.width),
        static_cast<unsigned long long>(img.height), img.rgb.size() / 1e6,
        static_cast<unsigned long long>(block_bytes >> 10), memcpy_ms);
    std::printf(
        "| layout | whole ms | 512x512 ms | region ÷ whole | ratio | "
        "c-blosc 1 / 2 threads ms | c-blosc 2T ÷ whole | ratio ÷ c-blosc's |"
        " memcpy ÷ whole |\n|---|---|---|---|---|---|---|---|---|\n");
    for (const Layout& layout : layouts) {
      auto m = MeasureShoal(img, layout, block_bytes, repeats,
                            "mem://large-image-" + std::to_string(id++));
      if (!m.ok()) {
        std::fprintf(stderr, "%s: %s\n", layout.label.c_str(),
                     m.status().ToString().c_str());
        return 1;
      }
      std::string blosc_cell = "-", blosc_speed = "-", blosc_ratio = "-";
      if (!layout.compression.empty()) {
        const bool zstd = layout.compression.starts_with("zstd");
        const BloscMeasured b = MeasureBlosc(
            img, zstd ? "zstd" : "lz4",
            layout.compression.find("shuffle") != std::string::npos,
            block_bytes, repeats);
        char cell[96];
        std::snprintf(cell, sizeof cell, "%.1f / %.1f", b.ms1, b.ms2);
        blosc_cell = cell;
        std::snprintf(cell, sizeof cell, "%.2f", b.ms2 / m->whole_ms);
        blosc_speed = cell;
        std::snprintf(cell, sizeof cell, "%.3f", m->ratio / b.ratio);
        blosc_ratio = cell;
      }
      std::printf("| %s | %.2f | %.2f | %.3f | %.2f | %s | %s | %s | %.2f |\n",
                  layout.label.c_str(), m->whole_ms, m->region_ms,
                  m->region_ms / m->whole_ms, m->ratio, blosc_cell.c_str(),
                  blosc_speed.c_str(), blosc_ratio.c_str(),
                  memcpy_ms / m->whole_ms);
    }
  }
  return 0;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) {
  CLI::App app{"A large photo read whole and by region against c-blosc"};
  std::vector<std::string> jpegs = {
      "/usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg",
      "/usr/share/backgrounds/mate/nature/Wood.jpg"};
  uint64_t block_kib = 128;
  int repeats = 7;
  app.add_option("jpegs", jpegs, "JPEG photos (mate-backgrounds by default)");
  app.add_option("--block-kib", block_kib,
                 "block size, KiB (shoal and c-blosc)")
      ->check(CLI::Range(4, 16384));
  app.add_option("--repeats", repeats, "best of this many")
      ->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);
  blosc_init();
  const int rc = shoal::Run(jpegs, block_kib << 10, repeats);
  blosc_destroy();
  return rc;
}
