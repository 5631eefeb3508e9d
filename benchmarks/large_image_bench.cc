// shoal_large_image_bench: one large photo held in a dataset, read whole and
// as a 512 x 512 region, against c-blosc decompressing the same bytes with
// the same codec, block size and threads, and against memcpy (issue 16).
//
// Each JPEG is decoded (TurboJPEG) to an H x W x 3 uint8 array, stored as one
// sample of a mem:// or file:// dataset in every layout (raw or lz4 /
// lz4+shuffle / zstd:1 chunks; tiled by default, planar tiles of one
// channel, or in one untiled chunk),
// then, in turns so that every side sees the same moments of the machine:
//   - whole: Tensor::ReadInto a reused buffer on 2 and on 1 thread
//     (ReadOptions::max_threads), and Tensor::Read (a fresh buffer);
//   - region: Tensor::ReadRegionInto of 512 x 512 x 3 at seeded places;
//   - c-blosc (Debian's libblosc, 1.21): blosc_decompress_ctx of the array
//     compressed with the same codec (lz4 at --blosc-lz4-clevel; 9 calls
//     LZ4 as shoal's lz4 does), shuffle as the layout says, the layout's
//     block size, into a reused buffer on 1 and 2 threads;
//   - memcpy of the array into a touched buffer.
// Every time is the best of --repeats. Ratios printed: c-blosc time ÷
// shoal's (≥ 1 means shoal is faster), compression ratio ÷ c-blosc's,
// memcpy ÷ shoal, region ÷ whole, 1 thread ÷ 2 threads. Both read-backs are
// checked against the source array.
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
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "benchmarks/bench_tmp.h"
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
  // Tiles of one channel (TensorSpec::planar); c-blosc then holds the
  // planes one after the other, as a c-blosc image store keeps channels.
  bool planar = false;
};

// The H x W x 3 array as three H x W planes.
std::vector<std::byte> Planes(const Image& img) {
  const size_t n = img.height * img.width;
  std::vector<std::byte> out(n * 3);
  for (size_t p = 0; p < n; ++p) {
    for (size_t c = 0; c < 3; ++c) out[c * n + p] = img.rgb[p * 3 + c];
  }
  return out;
}

// One layout's figures; every time is the best of --repeats, measured in
// turns (shoal, c-blosc, shoal on 1 thread, ...) so that both sides see the
// same moments of a shared machine.
struct Measured {
  static constexpr double kNone = std::numeric_limits<double>::infinity();
  double whole_ms = kNone;        // ReadInto a reused buffer, 2 threads
  double whole_1t_ms = kNone;     // the same on 1 thread
  double whole_alloc_ms = kNone;  // Read: a fresh buffer each time
  double region_ms = kNone, memcpy_ms = kNone;
  double blosc_1t_ms = kNone, blosc_2t_ms = kNone;
  double ratio = 0, blosc_ratio = 0;  // blosc_ratio 0: c-blosc not run
};

// c-blosc holding the same array with the same codec and block size.
struct Blosc {
  std::vector<std::byte> packed, out;
  double ratio = 0;
};

bool PackBlosc(const std::vector<std::byte>& src, const Layout& layout,
               uint64_t block_bytes, int lz4_clevel, Blosc& b) {
  const bool zstd = layout.compression.starts_with("zstd");
  const bool shuffle = layout.compression.find("shuffle") != std::string::npos;
  const size_t n = src.size();
  b.packed.resize(n + BLOSC_MAX_OVERHEAD);
  b.out.assign(n, std::byte{1});
  const int size = blosc_compress_ctx(
      zstd ? 1 : lz4_clevel, shuffle ? BLOSC_SHUFFLE : BLOSC_NOSHUFFLE, 1, n,
      src.data(), b.packed.data(), b.packed.size(), zstd ? "zstd" : "lz4",
      block_bytes, 2);
  if (size <= 0) return false;
  b.ratio = static_cast<double>(n) / size;
  return true;
}

Result<Measured> Measure(const Image& img, const Layout& layout,
                         uint64_t block_bytes, int lz4_clevel, int repeats,
                         const std::string& url) {
  SHOAL_ASSIGN_OR_RETURN(auto ds, Dataset::Create(url));
  TensorSpec spec;
  spec.name = "image";
  spec.htype = HType::kImage;
  spec.dtype = DType::kUInt8;
  spec.chunk_compression = layout.compression;
  spec.block_bytes = block_bytes;
  spec.planar = layout.planar;
  if (!layout.tiled) {
    spec.tiling_threshold = kNoTiling;
    spec.max_chunk_bytes = std::max<uint64_t>(img.rgb.size(), 8ull << 20);
  }
  SHOAL_ASSIGN_OR_RETURN(Tensor * t, ds->CreateTensor(spec));
  SHOAL_RETURN_IF_ERROR(
      t->Append(Shape({img.height, img.width, 3}), ByteSpan(img.rgb)));
  SHOAL_RETURN_IF_ERROR(ds->Flush());
  Measured m;
  m.ratio = static_cast<double>(img.rgb.size()) /
            static_cast<double>(t->stats().stored_bytes);
  Blosc blosc;
  const std::vector<std::byte> blosc_src =
      layout.planar ? Planes(img) : img.rgb;
  const bool with_blosc =
      !layout.compression.empty() &&
      PackBlosc(blosc_src, layout, block_bytes, lz4_clevel, blosc);
  if (with_blosc) m.blosc_ratio = blosc.ratio;

  // Into a buffer touched once, as c-blosc and memcpy are measured.
  std::vector<std::byte> out(img.rgb.size(), std::byte{1});
  Status failed;
  auto read_into = [&](int threads) {
    Status s = t->ReadInto(0, MutableByteSpan(out), {.max_threads = threads});
    if (!s.ok()) failed = s;
  };
  auto blosc_run = [&](int threads) {
    const size_t n = img.rgb.size();
    if (blosc_decompress_ctx(blosc.packed.data(), blosc.out.data(), n,
                             threads) != static_cast<int>(n)) {
      failed = Internal("c-blosc failed to decompress");
    }
  };
  std::mt19937_64 rng(1);
  auto region = [&] {
    const uint64_t y = rng() % (img.height - 512),
                   x = rng() % (img.width - 512);
    const uint64_t lo[3] = {y, x, 0}, hi[3] = {y + 512, x + 512, 3};
    Status s =
        t->ReadRegionInto(0, lo, hi, MutableByteSpan(out.data(), 512 * 512 * 3),
                          {.max_threads = 2});
    if (!s.ok()) failed = s;
  };
  for (int r = 0; r < repeats; ++r) {
    m.whole_ms = std::min(m.whole_ms, BestMs(1, [&] { read_into(2); }));
    if (with_blosc) {
      m.blosc_2t_ms = std::min(m.blosc_2t_ms, BestMs(1, [&] { blosc_run(2); }));
    }
    m.whole_1t_ms = std::min(m.whole_1t_ms, BestMs(1, [&] { read_into(1); }));
    if (with_blosc) {
      m.blosc_1t_ms = std::min(m.blosc_1t_ms, BestMs(1, [&] { blosc_run(1); }));
    }
    m.whole_alloc_ms = std::min(m.whole_alloc_ms, BestMs(1, [&] {
                                  auto s = t->Read(0, {.max_threads = 2});
                                  if (!s.ok()) failed = s.status();
                                }));
    m.memcpy_ms =
        std::min(m.memcpy_ms, BestMs(1, [&] {
                   std::memcpy(out.data(), img.rgb.data(), img.rgb.size());
                 }));
    m.region_ms = std::min(m.region_ms, BestMs(3, region));
  }
  SHOAL_RETURN_IF_ERROR(failed);
  read_into(2);
  if (std::memcmp(out.data(), img.rgb.data(), out.size()) != 0) {
    return Internal(layout.label + ": the image read back differs");
  }
  if (with_blosc && blosc.out != blosc_src) {
    return Internal(layout.label + ": c-blosc's copy differs");
  }
  return m;
}

int Run(const std::vector<std::string>& jpegs, uint64_t block_bytes,
        int lz4_clevel, int repeats, const std::string& store) {
  const std::vector<Layout> layouts = {
      {"raw, tiled", "", true},
      {"raw, untiled", "", false},
      {"lz4, tiled", "lz4", true},
      {"lz4, untiled", "lz4", false},
      {"lz4+shuffle, tiled", "lz4+shuffle", true},
      {"zstd:1, tiled", "zstd:1", true},
      {"lz4, tiled planar", "lz4", true, true},
      {"lz4+shuffle, tiled planar", "lz4+shuffle", true, true},
      {"zstd:1, tiled planar", "zstd:1", true, true},
  };
  std::string dir;
  if (store == "file") {
    auto made = MakeTempDir("/tmp", "shoal-large-image");
    if (!made.ok()) {
      std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
      return 1;
    }
    dir = *made;
  }
  int id = 0;
  int rc = 0;
  for (const std::string& path : jpegs) {
    Image img;
    if (!DecodeJpeg(path, img)) {
      std::fprintf(stderr, "cannot decode %s\n", path.c_str());
      rc = 1;
      break;
    }
    if (img.height <= 512 || img.width <= 512) {
      std::fprintf(stderr, "%s: smaller than the 512 x 512 region\n",
                   path.c_str());
      rc = 1;
      break;
    }
    std::printf(
        "\n%s: %llu x %llu x 3 = %.1f MB, block %llu KiB, %s://\n",
        img.name.c_str(), static_cast<unsigned long long>(img.width),
        static_cast<unsigned long long>(img.height), img.rgb.size() / 1e6,
        static_cast<unsigned long long>(block_bytes >> 10), store.c_str());
    std::printf(
        "| layout | whole ms | 1T ms | 2T ÷ 1T | Read ms | 512x512 ms | "
        "region ÷ whole | ratio | c-blosc 1T / 2T ms | c-blosc 2T ÷ whole | "
        "ratio ÷ c-blosc's | memcpy ms | memcpy ÷ whole |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const Layout& layout : layouts) {
      const std::string url = store == "file"
                                  ? "file://" + dir + "/" + std::to_string(id++)
                                  : "mem://large-image-" + std::to_string(id++);
      auto m = Measure(img, layout, block_bytes, lz4_clevel, repeats, url);
      if (!m.ok()) {
        std::fprintf(stderr, "%s: %s\n", layout.label.c_str(),
                     m.status().ToString().c_str());
        rc = 1;
        break;
      }
      char blosc[96] = "-", speed[32] = "-", ratio[32] = "-";
      if (m->blosc_ratio > 0) {
        std::snprintf(blosc, sizeof blosc, "%.1f / %.1f", m->blosc_1t_ms,
                      m->blosc_2t_ms);
        std::snprintf(speed, sizeof speed, "%.2f",
                      m->blosc_2t_ms / m->whole_ms);
        std::snprintf(ratio, sizeof ratio, "%.3f", m->ratio / m->blosc_ratio);
      }
      std::printf(
          "| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.3f | %.2f | %s | %s | "
          "%s | %.2f | %.2f |\n",
          layout.label.c_str(), m->whole_ms, m->whole_1t_ms,
          m->whole_1t_ms / m->whole_ms, m->whole_alloc_ms, m->region_ms,
          m->region_ms / m->whole_ms, m->ratio, blosc, speed, ratio,
          m->memcpy_ms, m->memcpy_ms / m->whole_ms);
      std::fflush(stdout);
    }
    if (rc != 0) break;
  }
  if (!dir.empty()) std::filesystem::remove_all(dir);
  return rc;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) {
  CLI::App app{"A large photo read whole and by region against c-blosc"};
  std::vector<std::string> jpegs = {
      "/usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg",
      "/usr/share/backgrounds/Dragonfly_by_Bolly.jpg",
      "/usr/share/backgrounds/mate/nature/Wood.jpg"};
  uint64_t block_kib = 128;
  int repeats = 7;
  int lz4_clevel = 9;
  std::string store = "mem";
  app.add_option("jpegs", jpegs, "JPEG photos (mate-backgrounds by default)");
  app.add_option("--block-kib", block_kib,
                 "block size, KiB (shoal and c-blosc)")
      ->check(CLI::Range(4, 16384));
  app.add_option("--repeats", repeats, "best of this many")
      ->check(CLI::Range(1, 1000));
  app.add_option("--blosc-lz4-clevel", lz4_clevel,
                 "c-blosc's clevel for lz4: 9 compresses as shoal's lz4 "
                 "does (LZ4 acceleration 1), 10 - clevel is the acceleration")
      ->check(CLI::Range(1, 9));
  app.add_option("--store", store, "mem (mem://) or file (file:// in /tmp)")
      ->check(CLI::IsMember({"mem", "file"}));
  CLI11_PARSE(app, argc, argv);
  blosc_init();
  const int rc = shoal::Run(jpegs, block_kib << 10, lz4_clevel, repeats, store);
  blosc_destroy();
  return rc;
}
