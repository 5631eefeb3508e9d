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
#include "loader/loader.h"
#include "loader/sampler.h"
#include "tools/commands.h"

namespace shoal::tools {

struct LoaderBenchOptions {
  /// The loader's own options, bound to the flags in place (tensors, batch,
  /// shuffle, seed, epochs, rank, threads, memory budget, ...).
  LoaderOptions loader = [] {
    LoaderOptions o;
    o.batch_size = 256;
    return o;
  }();
  /// "decode" (images to RGB at their own size) or "train"
  /// (random-resized-crop to `size` + flip), for the first image tensor.
  std::string transform = "decode";
  uint32_t size = 224;
  /// Clip options of every video tensor loaded.
  VideoClipOptions clip;
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
