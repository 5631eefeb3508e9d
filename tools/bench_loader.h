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
#include "loader/config.h"
#include "loader/loader.h"
#include "loader/sampler.h"
#include "tools/commands.h"

namespace shoal::tools {

struct LoaderBenchOptions {
  /// The job's loader (its transform goes to every image tensor loaded,
  /// its clip options to every video tensor) and bench sections.
  LoaderConfig loader;
  BenchConfig bench;
  bool json = false;
  std::string digests;  // file for per-batch digests, "" for none
  std::string profile;  // file for the JSON timeline, "" for none
};

/// The bench's job before flags: the library's defaults, but batches of 256.
JobConfig LoaderBenchDefaults();

/// Runs the loader over `dataset` and prints the report.
Result<int> RunLoaderBench(std::shared_ptr<const Dataset> dataset,
                           const LoaderBenchOptions& options);

}  // namespace shoal::tools

#endif  // SHOAL_TOOLS_BENCH_LOADER_H_
