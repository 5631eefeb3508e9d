// The long-lived reader of the soak test (soak_test.sh): trains from a
// dataset that writers keep appending to (and that they are killed while
// writing), epoch after epoch, until a deadline, and checks every sample it
// is given against its source.
//
//   soak_reader DS EXPECTED SECONDS [THREADS [FETCH_WORKERS]]
//
// EXPECTED has one line per source image, in the order the writers append
// them, for one cycle of the sources (the writers append the same folders
// again and again): the CRC-32 (zlib) of its pixels, as NumPy decoded them,
// in hex. Each epoch opens the dataset's latest commit (a reader sees only
// whole commits, so its samples are a prefix of that order), runs one
// shuffled epoch through the Loader (PNGs decoded: lossless, so the pixels
// are the source's exactly) and compares sample i's CRC with line
// i % lines of EXPECTED. It runs at least one epoch, then more until
// SECONDS have passed, printing after each:
//
//   epoch E len L samples S rss_kib R heap_kib H arena_kib A mmap_kib M
//
// and at the end `checked N restarts R` (samples compared in all; epochs
// cut short because a chunk of the commit they read was deleted by a
// newer commit that replaced it, after which the next epoch reads the
// newer commit, as a training loop that reopens would). The first mismatch
// or other error ends it with exit 1 and a message naming the sample.
// RSS is VmRSS from /proc/self/status; the soak compares early and late
// epochs to see that a reader's memory does not grow over the run. H, A
// and M are malloc's (mallinfo2: bytes in use, heap obtained from the
// system, mmapped blocks), which tell live memory from what malloc keeps.
#include <malloc.h>
#include <zlib.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "shoal.h"

namespace {

uint64_t RssKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0)
      return std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "soak_reader: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4)
    return Fail(
        "usage: soak_reader DS EXPECTED SECONDS [THREADS [FETCH_WORKERS]]");
  // As README advises a long-lived training program that wants its memory
  // budget to bound RSS: freed large blocks go back to the system.
  shoal::LimitHeapRetention();
  const std::string url = argv[1];
  std::vector<uint32_t> expected;
  {
    std::ifstream in(argv[2]);
    std::string line;
    while (std::getline(in, line)) {
      expected.push_back(
          static_cast<uint32_t>(std::strtoul(line.c_str(), nullptr, 16)));
    }
  }
  if (expected.empty()) return Fail(std::string("no CRCs in ") + argv[2]);
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::seconds(std::strtoull(argv[3], nullptr, 10));
  const int threads = argc > 4 ? std::atoi(argv[4]) : 2;
  const int fetch_workers = argc > 5 ? std::atoi(argv[5]) : 0;

  uint64_t checked = 0, restarts = 0;
  for (uint64_t epoch = 0;
       epoch == 0 || std::chrono::steady_clock::now() < deadline; ++epoch) {
    auto opened = shoal::Dataset::Open(url, {.read_only = true});
    if (!opened.ok()) {
      // Before the writers' first commit there is no dataset yet.
      if (opened.status().code() == shoal::StatusCode::kNotFound) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      return Fail(opened.status().ToString());
    }
    std::shared_ptr<const shoal::Dataset> dataset(std::move(*opened));
    const uint64_t len = dataset->len();
    uint64_t samples = 0;
    const uint64_t restarted = restarts;
    if (len > 0) {
      shoal::LoaderOptions options{.tensors = {"images"},
                                   .batch_size = 64,
                                   .shuffle = shoal::ShuffleMode::kChunk,
                                   .seed = epoch,
                                   .threads = threads,
                                   .memory_budget = 64ull << 20,
                                   .fetch_workers = fetch_workers};
      auto loader = shoal::Loader::Create(dataset, options);
      if (!loader.ok()) return Fail(loader.status().ToString());
      while (true) {
        auto batch = (*loader)->Next();
        if (!batch.ok() &&
            batch.status().code() == shoal::StatusCode::kNotFound) {
          // A chunk of this commit is gone: a writer's newer commit
          // replaced it (the copy of an open chunk) and deleted it. A
          // training loop reopens and starts the epoch again; anything else
          // (no newer commit) is a lost chunk.
          auto newer = shoal::Dataset::Open(url, {.read_only = true});
          if (newer.ok() && (*newer)->commit() > dataset->commit()) {
            ++restarts;
            break;
          }
        }
        if (!batch.ok()) return Fail(url + ": " + batch.status().ToString());
        if (!batch->has_value()) break;
        const shoal::TensorBatch& images = (*batch)->tensors()[0];
        const auto indices = (*batch)->indices();
        for (size_t k = 0; k < indices.size(); ++k) {
          const shoal::ByteSpan pixels = images.sample(k);
          const uint32_t crc = static_cast<uint32_t>(crc32(
              0, reinterpret_cast<const Bytef*>(pixels.data()), pixels.size()));
          if (crc != expected[indices[k] % expected.size()]) {
            char message[256];
            std::snprintf(message, sizeof message,
                          "commit %" PRIu64 " sample %" PRIu64
                          ": pixels' CRC %08x, its source's %08x",
                          dataset->commit(), indices[k], crc,
                          expected[indices[k] % expected.size()]);
            return Fail(url + " " + message);
          }
        }
        samples += indices.size();
      }
      if (samples != len && restarted == restarts) {
        return Fail(url + ": an epoch gave " + std::to_string(samples) +
                    " samples of " + std::to_string(len));
      }
    }
    checked += samples;
    const struct mallinfo2 heap = mallinfo2();
    std::printf(
        "epoch %" PRIu64 " len %" PRIu64 " samples %" PRIu64 " rss_kib %" PRIu64
        " heap_kib %zu arena_kib %zu mmap_kib %zu restarts %" PRIu64 "\n",
        epoch, len, samples, RssKib(), heap.uordblks >> 10, heap.arena >> 10,
        heap.hblkhd >> 10, restarts);
    std::fflush(stdout);
  }
  std::printf("checked %" PRIu64 " restarts %" PRIu64 "\n", checked, restarts);
  return 0;
}
