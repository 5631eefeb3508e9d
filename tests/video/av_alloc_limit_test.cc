// FFmpeg's demuxers trust some size fields: a 1 KiB MOV found by the video
// fuzz target (tests/data/video_hostile/mov_lying_table.mov) makes
// libavformat ask for 898 MB in one block while probing. shoal caps
// FFmpeg's single allocations (av_max_alloc, video/internal/av.cc), so the
// probe fails with an error instead.
//
// The test sees the blocks FFmpeg asks for by interposing posix_memalign
// (which av_malloc calls): the executable's definition wins over libc's for
// every library. Not built under the sanitizers, which interpose it too.
#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "video/video.h"

namespace {
std::atomic<size_t> largest{0};
}  // namespace

extern "C" int posix_memalign(void** out, size_t alignment, size_t size) {
  using Fn = int (*)(void**, size_t, size_t);
  static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "posix_memalign"));
  size_t seen = largest.load();
  while (size > seen && !largest.compare_exchange_weak(seen, size)) {
  }
  return real(out, alignment, size);
}

int main() {
  const std::string path =
      std::string(SHOAL_TEST_DATA) + "/video_hostile/mov_lying_table.mov";
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)),
                          std::istreambuf_iterator<char>());
  if (bytes.empty()) {
    std::fprintf(stderr, "FAIL: cannot read %s\n", path.c_str());
    return 1;
  }
  largest = 0;
  auto probe = shoal::ProbeVideo(shoal::Buffer::CopyOf(bytes),
                                 "mov_lying_table.mov", {});
  const size_t cap = size_t{256} << 20;
  std::printf("probe: %s; largest block FFmpeg asked for: %zu bytes\n",
              probe.ok() ? "ok" : probe.status().ToString().c_str(),
              largest.load());
  if (largest.load() > cap) {
    std::fprintf(
        stderr,
        "FAIL: a %zu-byte file made FFmpeg allocate %zu bytes at once\n",
        bytes.size(), largest.load());
    return 1;
  }
  if (probe.ok()) {
    std::fprintf(stderr, "FAIL: the probe of a damaged file succeeded\n");
    return 1;
  }
  if (probe.status().ToString().find("mov_lying_table.mov") ==
      std::string::npos) {
    std::fprintf(stderr, "FAIL: the error does not name the file\n");
    return 1;
  }
  std::printf("av_alloc_limit_test: passed\n");
  return 0;
}
