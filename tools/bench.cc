// `shoal bench`: how fast samples come out of a dataset. Each mode is one
// way of reading (a function in the kModes table); modes share the options
// that choose tensors, sample count and seed, and one report format, so a
// new mode (e.g. the loader's multi-threaded pipeline) is a new function, a
// table row and its own options.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tools/commands.h"

namespace shoal::tools {
namespace {

struct BenchOptions {
  std::string dataset;
  std::vector<std::string> tensors;  // empty: every visible tensor
  std::string mode = "sequential";
  std::optional<uint64_t> samples;
  uint64_t seed = 0;
  bool json = false;
};

// What a mode reads: `rows` samples of each of `tensors`, row i being sample
// i of every tensor, indices below `length` (the shortest tensor's length).
struct BenchPlan {
  std::vector<const Tensor*> tensors;
  uint64_t length = 0;
  uint64_t rows = 0;
  uint64_t seed = 0;
};

struct BenchResult {
  uint64_t rows = 0;
  uint64_t bytes = 0;  // decoded sample bytes of all tensors
  double seconds = 0;
};

// Rows per read for the sequential mode: about one chunk of the tensor with
// the most bytes per sample (fewest samples per chunk), so each ReadRange
// fetches about one chunk of it.
uint64_t ChunkSizedBatch(const BenchPlan& plan) {
  uint64_t batch = UINT64_MAX;
  for (const Tensor* t : plan.tensors) {
    const TensorStats stats = t->stats();
    const uint64_t sample_bytes = std::max<uint64_t>(
        1, stats.raw_bytes / std::max<uint64_t>(1, stats.num_samples));
    batch = std::min(
        batch, std::max<uint64_t>(1, t->spec().max_chunk_bytes / sample_bytes));
  }
  return batch;
}

// Reads rows in order with Tensor::ReadRange in chunk-sized batches, starting
// over at row 0 when more rows than the length are asked for.
Result<BenchResult> RunSequential(const BenchPlan& plan) {
  const uint64_t batch = ChunkSizedBatch(plan);
  Progress progress("bench", "samples");
  BenchResult result;
  const Stopwatch clock;
  uint64_t position = 0;
  while (result.rows < plan.rows) {
    const uint64_t n =
        std::min({batch, plan.rows - result.rows, plan.length - position});
    for (const Tensor* t : plan.tensors) {
      SHOAL_ASSIGN_OR_RETURN(auto samples,
                             t->ReadRange(position, position + n));
      for (const Sample& s : samples) result.bytes += s.data.size();
    }
    result.rows += n;
    position = (position + n) % plan.length;
    progress.Update(result.rows, plan.rows, result.bytes);
  }
  result.seconds = clock.seconds();
  return result;
}

// Reads rows one at a time with Tensor::Read, in the order of seeded random
// permutations of [0, length): like the epochs of a shuffling loader.
Result<BenchResult> RunRandom(const BenchPlan& plan) {
  std::mt19937_64 rng(plan.seed);
  std::vector<uint64_t> order(plan.length);
  Progress progress("bench", "samples");
  BenchResult result;
  const Stopwatch clock;
  uint64_t next = plan.length;  // position in `order`; past the end: reshuffle
  while (result.rows < plan.rows) {
    if (next == plan.length) {
      std::iota(order.begin(), order.end(), uint64_t{0});
      std::shuffle(order.begin(), order.end(), rng);
      next = 0;
    }
    const uint64_t index = order[next++];
    for (const Tensor* t : plan.tensors) {
      SHOAL_ASSIGN_OR_RETURN(Sample s, t->Read(index));
      result.bytes += s.data.size();
    }
    ++result.rows;
    progress.Update(result.rows, plan.rows, result.bytes);
  }
  result.seconds = clock.seconds();
  return result;
}

struct BenchMode {
  const char* name;
  const char* description;
  Result<BenchResult> (*run)(const BenchPlan&);
};

constexpr BenchMode kModes[] = {
    {"sequential", "rows in order, Tensor::ReadRange of about a chunk",
     RunSequential},
    {"random", "rows in seeded random order, one Tensor::Read per sample",
     RunRandom},
};

const BenchMode& FindMode(const std::string& name) {
  for (const BenchMode& mode : kModes) {
    if (name == mode.name) return mode;
  }
  return kModes[0];  // unreachable: --mode is checked against kModes
}

Result<BenchPlan> MakePlan(const Dataset& dataset,
                           const BenchOptions& options) {
  BenchPlan plan;
  plan.seed = options.seed;
  if (options.tensors.empty()) {
    for (const Tensor* t : dataset.tensors()) plan.tensors.push_back(t);
  }
  for (const std::string& name : options.tensors) {
    SHOAL_ASSIGN_OR_RETURN(const Tensor* t, FindTensor(dataset, name));
    plan.tensors.push_back(t);
  }
  if (plan.tensors.empty()) {
    return InvalidArgument("dataset '" + dataset.url() +
                           "' has no tensors to read");
  }
  plan.length = UINT64_MAX;
  for (const Tensor* t : plan.tensors) {
    plan.length = std::min(plan.length, t->size());
  }
  if (plan.length == 0) {
    return InvalidArgument("nothing to read: a chosen tensor of '" +
                           dataset.url() + "' is empty");
  }
  plan.rows = options.samples.value_or(plan.length);
  return plan;
}

void PrintResult(const BenchOptions& options, const BenchPlan& plan,
                 const BenchResult& result) {
  const double seconds = std::max(result.seconds, 1e-9);
  const double rows_per_s = result.rows / seconds;
  const double mb_per_s = result.bytes / seconds / 1e6;
  if (options.json) {
    nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
    for (const Tensor* t : plan.tensors) tensors.push_back(t->name());
    const nlohmann::ordered_json out = {
        {"mode", options.mode},      {"tensors", tensors},
        {"samples", result.rows},    {"bytes", result.bytes},
        {"seconds", result.seconds}, {"samples_per_s", rows_per_s},
        {"mb_per_s", mb_per_s},
    };
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  std::string names;
  for (const Tensor* t : plan.tensors) {
    names += (names.empty() ? "" : ", ") + t->name();
  }
  std::printf(
      "bench: %s read of %llu samples (%s): %s in %.3f s: %.0f samples/s, "
      "%.1f MB/s\n",
      options.mode.c_str(), static_cast<unsigned long long>(result.rows),
      names.c_str(), FormatBytes(result.bytes).c_str(), result.seconds,
      rows_per_s, mb_per_s);
}

Result<int> RunBench(const BenchOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(auto dataset, OpenForReading(options.dataset));
  SHOAL_ASSIGN_OR_RETURN(BenchPlan plan, MakePlan(*dataset, options));
  SHOAL_ASSIGN_OR_RETURN(BenchResult result, FindMode(options.mode).run(plan));
  PrintResult(options, plan, result);
  return kExitOk;
}

}  // namespace

void AddBenchCommand(CLI::App& app, CommandRun* run) {
  auto options = std::make_shared<BenchOptions>();
  std::string mode_help = "How to read:";
  std::vector<std::string> mode_names;
  for (const BenchMode& mode : kModes) {
    mode_help += std::string("\n  ") + mode.name + ": " + mode.description;
    mode_names.push_back(mode.name);
  }
  CLI::App* cmd = app.add_subcommand(
      "bench", "Measure how fast samples are read and decoded");
  cmd->footer(
      "Reads through the format API on one thread. A sample here is a row: "
      "one sample of each chosen tensor; MB/s counts the decoded bytes of "
      "all of them. Time covers the reads only, not opening the dataset.");
  cmd->add_option("DS", options->dataset, "The dataset (path or URL)")
      ->required();
  cmd->add_option("--tensors", options->tensors,
                  "Comma-separated tensors to read (default: all visible)")
      ->delimiter(',');
  cmd->add_option("--mode", options->mode, mode_help)
      ->check(CLI::IsMember(mode_names))
      ->capture_default_str();
  cmd->add_option("--samples", options->samples,
                  "Rows to read (default: the length of the shortest chosen "
                  "tensor); more than that starts over at the beginning "
                  "(sequential) or with a new permutation (random)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", options->seed,
                  "Seed of the random order (random mode)")
      ->capture_default_str();
  cmd->add_flag("--json", options->json,
                "Print one JSON object: mode, tensors, samples, bytes, "
                "seconds, samples_per_s, mb_per_s");
  cmd->callback(
      [options, run] { *run = [options] { return RunBench(*options); }; });
}

}  // namespace shoal::tools
