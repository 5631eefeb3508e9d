// shoal_large_image_loader_bench: the loader taking random 224 x 224 crops
// of large photos held as pixels (read as regions: only the tiles and
// blocks under each crop) against the same crops of the photos held as
// JPEGs (a region decode: libjpeg-turbo decodes every row above the crop's
// bottom edge, skipping the columns it can), issue 16.
//
// Every photo is one sample of each tensor of one mem:// or file://
// dataset: "jpeg" (the file's bytes, sample_compression jpeg) and its
// TurboJPEG decode as H x W x 3 uint8 pixels, tiled (the default) in "raw"
// (no compression), "lz4" and "zstd" (zstd:1) chunks, and "lz4-planar"
// (TensorSpec::planar: tiles of one channel). Each tensor is loaded
// alone with the same options (random_crop 224 + flip, batch 16, chunk
// shuffle, --threads), timed from its first batch for at least --seconds;
// turns go round the tensors --turns times so each sees the same moments
// of a shared machine, and the best turn counts. The reference in the same
// run: TurboJPEG full decodes of the same JPEGs on as many threads (what a
// crop costs a pipeline that decodes the whole photo first, e.g. PIL +
// RandomCrop).
//
// Not a ctest test: run by hand; results in benchmarks/RESULTS.md.
#include <turbojpeg.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "benchmarks/bench_tmp.h"
#include "format/dataset.h"
#include "format/schema.h"
#include "loader/loader.h"

namespace shoal {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::vector<unsigned char> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// H x W x 3 pixels of a JPEG; false when TurboJPEG cannot decode it.
bool DecodeJpeg(tjhandle tj, const std::vector<unsigned char>& jpeg,
                std::vector<std::byte>& rgb, int& height, int& width) {
  int sub = 0, cs = 0;
  if (jpeg.empty() || tjDecompressHeader3(tj, jpeg.data(), jpeg.size(), &width,
                                          &height, &sub, &cs) != 0) {
    return false;
  }
  rgb.resize(size_t(width) * height * 3);
  return tjDecompress2(tj, jpeg.data(), jpeg.size(),
                       reinterpret_cast<unsigned char*>(rgb.data()), width, 0,
                       height, TJPF_RGB, 0) == 0;
}

// Photos per second of a full TurboJPEG decode on `threads` threads, each
// taking the next photo, for at least `seconds`.
double TurboJpegRate(const std::vector<std::vector<unsigned char>>& jpegs,
                     int threads, double seconds) {
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  const auto t0 = Clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < threads; ++w) {
    workers.emplace_back([&] {
      tjhandle tj = tjInitDecompress();
      std::vector<std::byte> rgb;
      while (Seconds(t0) < seconds) {
        const auto& jpeg = jpegs[next.fetch_add(1) % jpegs.size()];
        int h = 0, w = 0;
        if (!DecodeJpeg(tj, jpeg, rgb, h, w)) failed = true;
      }
      tjDestroy(tj);
    });
  }
  for (auto& t : workers) t.join();
  if (failed) std::fprintf(stderr, "TurboJPEG failed on a photo\n");
  return static_cast<double>(next.load()) / Seconds(t0);
}

// Crops per second of the loader over `tensor`, for at least `seconds`.
Result<double> LoaderRate(std::shared_ptr<const Dataset> ds,
                          const std::string& tensor, uint32_t size, int threads,
                          double seconds) {
  LoaderOptions options{.tensors = {tensor},
                        .batch_size = 16,
                        .epochs = 1000000,
                        .seed = 1,
                        .threads = threads};
  ImageTransform crop;
  crop.kind = ImageTransform::Kind::kRandomCrop;
  crop.height = crop.width = size;
  crop.random_flip = true;
  options.transforms[tensor] = crop;
  SHOAL_ASSIGN_OR_RETURN(auto loader, Loader::Create(ds, options));
  // Timed from the first batch on: filling the pipeline (threads x 16 JPEG
  // decodes before anything comes out) is not the steady rate.
  SHOAL_RETURN_IF_ERROR(loader->Next().status());
  uint64_t samples = 0;
  const auto t0 = Clock::now();
  while (Seconds(t0) < seconds) {
    SHOAL_ASSIGN_OR_RETURN(std::optional<Batch> batch, loader->Next());
    if (batch) samples += batch->indices().size();
  }
  return static_cast<double>(samples) / Seconds(t0);
}

struct Layout {
  std::string tensor, chunk_compression;
  bool planar = false;
};

int Run(std::vector<std::string> paths, const std::string& store, int threads,
        uint32_t size, double seconds, int turns, uint64_t block_bytes,
        const std::vector<std::string>& only) {
  std::string dir;
  std::string url = "mem://large-image-loader";
  if (store == "file") {
    auto made = MakeTempDir("/tmp", "shoal-large-loader");
    if (!made.ok()) {
      std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
      return 1;
    }
    dir = *made;
    url = "file://" + dir + "/ds";
  }
  const std::vector<Layout> layouts = {{"raw", ""},
                                       {"lz4", "lz4"},
                                       {"zstd", "zstd:1"},
                                       {"lz4-planar", "lz4", true}};
  auto created = Dataset::Create(url);
  if (!created.ok()) {
    std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
    return 1;
  }
  Dataset& ds = **created;
  Tensor* jpeg_tensor = *ds.CreateTensor(
      {.name = "jpeg", .htype = HType::kImage, .sample_compression = "jpeg"});
  std::vector<Tensor*> pixel_tensors;
  for (const Layout& l : layouts) {
    pixel_tensors.push_back(
        *ds.CreateTensor({.name = l.tensor,
                          .htype = HType::kImage,
                          .dtype = DType::kUInt8,
                          .chunk_compression = l.chunk_compression,
                          .block_bytes = block_bytes,
                          .planar = l.planar}));
  }
  std::vector<std::vector<unsigned char>> jpegs;
  double megapixels = 0;
  tjhandle tj = tjInitDecompress();
  std::vector<std::byte> rgb;
  for (const std::string& path : paths) {
    auto jpeg = ReadFile(path);
    int h = 0, w = 0;
    if (!DecodeJpeg(tj, jpeg, rgb, h, w) || h < int(size) || w < int(size)) {
      std::fprintf(stderr, "skipping %s (not a JPEG of at least %ux%u)\n",
                   path.c_str(), size, size);
      continue;
    }
    Status s = jpeg_tensor->AppendEncoded(
        {reinterpret_cast<const std::byte*>(jpeg.data()), jpeg.size()});
    for (Tensor* t : pixel_tensors) {
      if (s.ok()) s = t->Append(Shape{uint64_t(h), uint64_t(w), 3}, rgb);
    }
    if (!s.ok()) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), s.ToString().c_str());
      return 1;
    }
    megapixels += double(h) * w / 1e6;
    jpegs.push_back(std::move(jpeg));
  }
  tjDestroy(tj);
  if (Status s = ds.Flush(); !s.ok() || jpegs.empty()) {
    std::fprintf(stderr, "no photos: %s\n", s.ToString().c_str());
    return 1;
  }
  std::shared_ptr<const Dataset> shared(std::move(*created));
  std::printf(
      "%zu photos, %.1f MP on average, %s, %d threads, random %ux%u crops + "
      "flip, batch 16, blocks of %llu KiB, best of %d turns of %.1f s\n",
      jpegs.size(), megapixels / jpegs.size(), url.c_str(), threads, size, size,
      static_cast<unsigned long long>(block_bytes >> 10), turns, seconds);

  std::vector<std::string> names = {"jpeg"};
  for (const Layout& l : layouts) {
    if (only.empty() ||
        std::find(only.begin(), only.end(), l.tensor) != only.end()) {
      names.push_back(l.tensor);
    }
  }
  std::vector<double> best(names.size(), 0);
  double turbo = 0;
  for (int turn = 0; turn < turns; ++turn) {
    for (size_t i = 0; i < names.size(); ++i) {
      auto rate = LoaderRate(shared, names[i], size, threads, seconds);
      if (!rate.ok()) {
        std::fprintf(stderr, "%s: %s\n", names[i].c_str(),
                     rate.status().ToString().c_str());
        return 1;
      }
      best[i] = std::max(best[i], *rate);
    }
    turbo = std::max(turbo, TurboJpegRate(jpegs, threads, seconds));
  }
  std::printf(
      "| tensor | stored MB | crops/s | ÷ loader on JPEGs | ÷ TurboJPEG full "
      "decodes |\n|---|---|---|---|---|\n");
  for (size_t i = 0; i < names.size(); ++i) {
    const Tensor* t = *shared->tensor(names[i]);
    std::printf("| %s | %.0f | %.1f | %.2f | %.2f |\n", names[i].c_str(),
                t->stats().stored_bytes / 1e6, best[i], best[i] / best[0],
                best[i] / turbo);
  }
  std::printf("| TurboJPEG full decode (reference) | | %.1f | %.2f | 1.00 |\n",
              turbo, turbo / best[0]);
  if (!dir.empty()) fs::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) {
  CLI::App app{
      "The loader's random crops of large photos: pixels read as "
      "regions against JPEGs decoded"};
  std::vector<std::string> paths;
  std::string store = "mem";
  int threads = 2, turns = 3;
  uint32_t size = 224;
  double seconds = 2;
  uint64_t block_kib = shoal::kDefaultBlockBytes >> 10;
  std::vector<std::string> only;
  app.add_option("jpegs", paths,
                 "JPEG photos (every .jpg under /usr/share/backgrounds by "
                 "default)");
  app.add_option("--store", store, "mem (mem://) or file (file:// in /tmp)")
      ->check(CLI::IsMember({"mem", "file"}));
  app.add_option("--threads", threads, "loader and TurboJPEG threads")
      ->check(CLI::Range(1, 256));
  app.add_option("--size", size, "crop side")->check(CLI::Range(1, 4096));
  app.add_option("--seconds", seconds, "length of one turn")
      ->check(CLI::Range(0.1, 600.0));
  app.add_option("--block-kib", block_kib, "block size of the pixel tensors")
      ->check(CLI::Range(4, 16384));
  app.add_option("--pixels", only,
                 "pixel tensors to load: raw, lz4, zstd, lz4-planar (all by "
                 "default)")
      ->check(CLI::IsMember({"raw", "lz4", "zstd", "lz4-planar"}));
  app.add_option("--turns", turns, "turns round the tensors (best counts)")
      ->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);
  if (paths.empty()) {
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(
             "/usr/share/backgrounds", ec)) {
      if (e.path().extension() == ".jpg") paths.push_back(e.path().string());
    }
    std::sort(paths.begin(), paths.end());
  }
  if (paths.empty()) {
    std::fprintf(stderr,
                 "no photos given and none under /usr/share/backgrounds "
                 "(apt install mate-backgrounds)\n");
    return 2;
  }
  return shoal::Run(paths, store, threads, size, seconds, turns,
                    block_kib << 10, only);
}
