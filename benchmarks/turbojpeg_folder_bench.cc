// shoal_turbojpeg_folder_bench: the reference for `shoal ingest images` with
// its decode check. It does the least work that check implies: list the
// folder, read every JPEG file (from the page cache when warm) and decode it
// with raw TurboJPEG on N threads, with no pipeline, no dataset and no
// writes.
//
//   shoal_turbojpeg_folder_bench DIR [--threads 2] [--passes 1] [--decode-only]
//
// Files: every regular file under DIR whose content starts like a JPEG
// (FF D8 FF), hidden names skipped, like the image folder source. Decode:
// tjDecompressHeader3 + tjDecompress2(TJPF_RGB, TJFLAG_ACCURATEDCT) into one
// reused buffer per thread, as tools/bench_loader.cc's --reference (and the
// ingest's decode check, which decodes into a per-thread scratch with the
// same accurate integer IDCT). Threads take files one at a time from a
// shared counter and read each with pread into a reused buffer.
//
// The timed part of a pass is the listing (a recursive directory walk with
// stat, like the ingest's scan) plus reading and decoding every file.
// --decode-only adds a second figure: the same decodes of files read into
// memory beforehand (untimed), the decode alone. One JSON line per pass on
// stdout. Not a ctest test.
#include <fcntl.h>
#include <turbojpeg.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Listed {
  std::vector<std::string> paths;
  std::vector<uint64_t> sizes;
};

// Regular files under `dir`, hidden entries (".name") skipped, sorted.
Listed List(const std::string& dir) {
  Listed out;
  std::vector<std::pair<std::string, uint64_t>> files;
  auto it = fs::recursive_directory_iterator(dir);
  for (auto end = fs::recursive_directory_iterator(); it != end; ++it) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && name[0] == '.') {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) {
      files.emplace_back(it->path().string(), it->file_size());
    }
  }
  std::sort(files.begin(), files.end());
  for (auto& [p, s] : files) {
    out.paths.push_back(std::move(p));
    out.sizes.push_back(s);
  }
  return out;
}

bool ReadWhole(const std::string& path, uint64_t size,
               std::vector<unsigned char>& out) {
  out.resize(size);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n =
        ::pread(fd, out.data() + done, size - done, static_cast<off_t>(done));
    if (n <= 0) break;
    done += static_cast<uint64_t>(n);
  }
  ::close(fd);
  out.resize(done);
  return done == size;
}

bool IsJpeg(const std::vector<unsigned char>& b) {
  return b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
}

struct Decoder {
  tjhandle tj = tjInitDecompress();
  std::vector<unsigned char> out;
  ~Decoder() { tjDestroy(tj); }
  // False on a TurboJPEG error.
  bool Decode(const unsigned char* src, size_t size) {
    int width = 0, height = 0, subsampling = 0, colorspace = 0;
    if (tjDecompressHeader3(tj, src, size, &width, &height, &subsampling,
                            &colorspace) != 0) {
      return false;
    }
    out.resize(static_cast<size_t>(width) * height * 3);
    return tjDecompress2(tj, src, size, out.data(), width, 0, height, TJPF_RGB,
                         TJFLAG_ACCURATEDCT) == 0;
  }
};

struct PassResult {
  uint64_t images = 0;
  uint64_t bytes = 0;
  uint64_t failed = 0;
  double list_seconds = 0;
  double seconds = 0;  // listing + read + decode
};

PassResult ReadAndDecode(const std::string& dir, int threads) {
  PassResult r;
  const auto start = Clock::now();
  const Listed listed = List(dir);
  r.list_seconds = Since(start);
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> images{0}, bytes{0}, failed{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < threads; ++w) {
    workers.emplace_back([&] {
      Decoder d;
      std::vector<unsigned char> file;
      uint64_t n = 0, b = 0, f = 0;
      for (size_t k = next++; k < listed.paths.size(); k = next++) {
        if (!ReadWhole(listed.paths[k], listed.sizes[k], file)) {
          ++f;
          continue;
        }
        if (!IsJpeg(file)) continue;  // not a JPEG: not counted
        if (!d.Decode(file.data(), file.size())) ++f;
        ++n;
        b += file.size();
      }
      images += n;
      bytes += b;
      failed += f;
    });
  }
  for (auto& w : workers) w.join();
  r.seconds = Since(start);
  r.images = images;
  r.bytes = bytes;
  r.failed = failed;
  return r;
}

// The decode alone: files read beforehand (untimed).
double DecodeOnly(const std::string& dir, int threads, uint64_t* count) {
  const Listed listed = List(dir);
  std::vector<std::vector<unsigned char>> files;
  for (size_t k = 0; k < listed.paths.size(); ++k) {
    std::vector<unsigned char> b;
    if (ReadWhole(listed.paths[k], listed.sizes[k], b) && IsJpeg(b)) {
      files.push_back(std::move(b));
    }
  }
  std::atomic<size_t> next{0};
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < threads; ++w) {
    workers.emplace_back([&] {
      Decoder d;
      for (size_t k = next++; k < files.size(); k = next++) {
        (void)d.Decode(files[k].data(), files[k].size());
      }
    });
  }
  for (auto& w : workers) w.join();
  *count = files.size();
  return Since(start);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Lists a folder, reads every JPEG file and decodes it to RGB with raw "
      "TurboJPEG on N threads: the reference of `shoal ingest images` with "
      "its decode check. One JSON line per pass."};
  std::string dir;
  int threads = 2;
  int passes = 1;
  bool decode_only = false;
  app.add_option("DIR", dir, "The image folder")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--threads", threads, "Decode threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--passes", passes, "Passes (one line each)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_flag("--decode-only", decode_only,
               "Also time the decodes of files read into memory beforehand");
  CLI11_PARSE(app, argc, argv);
  int status = 0;
  for (int p = 0; p < passes; ++p) {
    const PassResult r = ReadAndDecode(dir, threads);
    if (r.images == 0) {
      std::fprintf(stderr, "turbojpeg_folder_bench: no JPEG under %s\n",
                   dir.c_str());
      return 1;
    }
    if (r.failed > 0) status = 1;
    std::printf(
        "{\"pass\": %d, \"threads\": %d, \"images\": %llu, \"bytes\": %llu, "
        "\"failed\": %llu, \"list_seconds\": %.4f, \"seconds\": %.4f, "
        "\"images_per_second\": %.1f",
        p, threads, static_cast<unsigned long long>(r.images),
        static_cast<unsigned long long>(r.bytes),
        static_cast<unsigned long long>(r.failed), r.list_seconds, r.seconds,
        r.images / r.seconds);
    if (decode_only) {
      uint64_t n = 0;
      const double s = DecodeOnly(dir, threads, &n);
      std::printf(
          ", \"decode_only_seconds\": %.4f, \"decode_only_images_per_second\": "
          "%.1f",
          s, n / s);
    }
    std::printf("}\n");
    std::fflush(stdout);
  }
  if (status != 0)
    std::fprintf(stderr, "turbojpeg_folder_bench: some files failed\n");
  return status;
}
