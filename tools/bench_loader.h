// `shoal bench loader` (tools/bench_loader.cc), apart from `shoal bench
// read` (bench.cc) because it has its own options and report.
//
// Thread-safety: none needed; the CLI is single-threaded.
#ifndef SHOAL_TOOLS_BENCH_LOADER_H_
#define SHOAL_TOOLS_BENCH_LOADER_H_

#include <memory>
#include <string>
#include <vector>

#include "format/dataset.h"
#include "loader/sampler.h"
#include "tools/commands.h"

namespace shoal::tools {

struct LoaderBenchOptions {
  std::vector<std::string> tensors;
  uint64_t batch = 256;
  bool drop_last = false;
  int threads = 0;
  ShuffleMode shuffle = ShuffleMode::kChunk;
  uint64_t shuffle_buffer = kDefaultShuffleBuffer;
  uint64_t seed = 0;
  uint64_t epochs = 1;
  uint32_t rank = 0;
  uint32_t world_size = 1;
  /// "decode" (images to RGB at their own size) or "train"
  /// (random-resized-crop to `size` + flip).
  std::string transform = "decode";
  uint32_t size = 224;
  uint64_t memory_budget = 1ull << 30;
  /// Video tensors: clips of `clip_frames` frames `clip_step` apart,
  /// `clips_per_video` per epoch, "random" or "uniform" starts, resized to
  /// clip_height x clip_width (0 x 0 = the videos' own size).
  uint32_t clip_frames = 16;
  uint32_t clip_step = 1;
  uint32_t clips_per_video = 1;
  std::string clip_sampling = "random";
  uint32_t clip_height = 0;
  uint32_t clip_width = 0;
  bool json = false;
  std::string digests;  // file for per-batch digests, "" for none
  bool reference = false;
  uint64_t reference_samples = 5000;
};

/// Runs the loader over `dataset` and prints the report.
Result<int> RunLoaderBench(std::shared_ptr<const Dataset> dataset,
                           const LoaderBenchOptions& options);

}  // namespace shoal::tools

#endif  // SHOAL_TOOLS_BENCH_LOADER_H_
