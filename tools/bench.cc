// `shoal bench loader` and `shoal bench read`: how fast samples come out of
// a dataset, through the multithreaded Loader (bench_loader.cc) or through
// the format API on one thread (here: rows in order or in seeded random
// order). Each has its own options and --help.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "base/random.h"
#include "loader/pipeline.h"
#include "tools/bench_loader.h"
#include "tools/commands.h"

namespace shoal::tools {
namespace {

struct ReadBenchOptions {
  std::string dataset;
  std::vector<std::string> tensors;  // empty: every visible tensor
  std::string order = "sequential";
  std::optional<uint64_t> samples;
  uint64_t seed = 0;
  bool json = false;
};

struct LoaderBenchCommand {
  std::string dataset;
  LoaderBenchOptions options;
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
  SplitMix64 rng(plan.seed);
  std::vector<uint64_t> order(plan.length);
  Progress progress("bench", "samples");
  BenchResult result;
  const Stopwatch clock;
  uint64_t next = plan.length;  // position in `order`; past the end: reshuffle
  while (result.rows < plan.rows) {
    if (next == plan.length) {
      std::iota(order.begin(), order.end(), uint64_t{0});
      for (uint64_t i = plan.length; i > 1; --i) {  // Fisher-Yates
        std::swap(order[i - 1], order[rng.Bounded(i)]);
      }
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

Result<BenchPlan> MakePlan(const Dataset& dataset,
                           const ReadBenchOptions& options) {
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

void PrintResult(const ReadBenchOptions& options, const BenchPlan& plan,
                 const BenchResult& result) {
  const double seconds = std::max(result.seconds, 1e-9);
  const double rows_per_s = result.rows / seconds;
  const double mb_per_s = result.bytes / seconds / 1e6;
  if (options.json) {
    nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
    for (const Tensor* t : plan.tensors) tensors.push_back(t->name());
    const nlohmann::ordered_json out = {
        {"order", options.order},    {"tensors", tensors},
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
      options.order.c_str(), static_cast<unsigned long long>(result.rows),
      names.c_str(), FormatBytes(result.bytes).c_str(), result.seconds,
      rows_per_s, mb_per_s);
}

Result<int> RunReadBench(const ReadBenchOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(auto dataset, OpenForReading(options.dataset));
  SHOAL_ASSIGN_OR_RETURN(BenchPlan plan, MakePlan(*dataset, options));
  SHOAL_ASSIGN_OR_RETURN(BenchResult result, options.order == "random"
                                                 ? RunRandom(plan)
                                                 : RunSequential(plan));
  PrintResult(options, plan, result);
  return kExitOk;
}

Result<int> RunLoaderBenchCommand(const LoaderBenchCommand& command) {
  SHOAL_ASSIGN_OR_RETURN(auto dataset, OpenForReading(command.dataset));
  return RunLoaderBench(std::shared_ptr<const Dataset>(std::move(dataset)),
                        command.options);
}

void AddReadBenchCommand(CLI::App& bench, CommandRun* run) {
  auto options = std::make_shared<ReadBenchOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "read", "Read rows through the format API on one thread");
  cmd->footer(
      "A row is one sample of each chosen tensor. sequential: rows in order, "
      "Tensor::ReadRange of about a chunk at a time; random: rows in seeded "
      "random permutations, one Tensor::Read per sample (a shuffling "
      "reader without a loader).\n\n"
      "Examples:\n  shoal bench read /data/fmnist\n"
      "  shoal bench read /data/inet --order random --samples 2000 --json");
  cmd->add_option("DS", options->dataset, "The dataset (path or URL)")
      ->required();
  cmd->add_option("--order", options->order, "sequential or random")
      ->check(CLI::IsMember({"sequential", "random"}))
      ->capture_default_str();
  cmd->add_option("--tensors", options->tensors,
                  "Comma-separated tensors to read (default: all visible)")
      ->delimiter(',');
  cmd->add_option("--samples", options->samples,
                  "Rows to read (default: the length of the shortest chosen "
                  "tensor); more than that starts over at the beginning "
                  "(sequential) or with a new permutation (random)")
      ->check(WholeNumberIn(1, int64_t{1} << 40));
  cmd->add_option("--seed", options->seed, "Seed of the random order")
      ->capture_default_str();
  cmd->add_flag("--json", options->json,
                "Print one JSON object: order, tensors, samples, bytes, "
                "seconds, samples_per_s, mb_per_s");
  cmd->callback(
      [options, run] { *run = [options] { return RunReadBench(*options); }; });
}

void AddLoaderBenchCommand(CLI::App& bench, CommandRun* run) {
  auto command = std::make_shared<LoaderBenchCommand>();
  CLI::App* cmd = bench.add_subcommand(
      "loader",
      "Batches through the multithreaded Loader, as training takes them");
  cmd->footer(
      "Reports samples/s and MB/s of decoded output, the consumer's stall "
      "share (time waiting in Next()), per-stage busy/wait/blocked times, "
      "accounted and RSS peak memory. --reference also decodes the same "
      "JPEGs with raw TurboJPEG on as many threads, without the pipeline, "
      "and prints loader / reference.\n\n"
      "Examples:\n  shoal bench loader /data/inet --transform train --size "
      "224 --reference\n  shoal bench loader /data/fmnist --batch 1024 "
      "--json\n  shoal bench loader DS --threads 1 --digests one.txt && "
      "shoal bench loader DS --threads 2 --digests two.txt && cmp one.txt "
      "two.txt");
  cmd->add_option("DS", command->dataset, "The dataset (path or URL)")
      ->required();
  LoaderBenchOptions& lo = command->options;
  cmd->add_option("--tensors", lo.loader.tensors,
                  "Comma-separated tensors to load (default: all visible)")
      ->delimiter(',');
  cmd->add_option("--seed", lo.loader.seed,
                  "Seed of the shuffle and of random transforms")
      ->capture_default_str();
  cmd->add_flag("--json", lo.json,
                "Print one JSON object (samples_per_s, mb_per_s, "
                "stall_fraction, peak_rss_bytes, stages, ...)");
  auto clip_size = std::make_shared<std::string>();
  cmd->add_option("--batch", lo.loader.batch_size, "Loader: samples per batch")
      ->check(WholeNumberIn(1, int64_t{1} << 24))
      ->capture_default_str();
  cmd->add_flag("--drop-last", lo.loader.drop_last,
                "Loader: drop what does not fill a whole batch");
  cmd->add_option("--threads", lo.loader.threads,
                  "Loader: threads (0 = all cores)")
      ->check(WholeNumberIn(0, kMaxPipelineThreads))
      ->capture_default_str();
  cmd->add_option("--shuffle", lo.loader.shuffle,
                  "Loader: none, chunk (chunk order + shuffle buffer) or full")
      ->transform(CLI::CheckedTransformer(std::map<std::string, ShuffleMode>{
                                              {"none", ShuffleMode::kNone},
                                              {"chunk", ShuffleMode::kChunk},
                                              {"full", ShuffleMode::kFull}})
                      .description("none|chunk|full"))
      ->default_str("chunk");
  cmd->add_option("--shuffle-buffer", lo.loader.shuffle_buffer,
                  "Loader: shuffle buffer in samples (chunk shuffle)")
      ->check(WholeNumberIn(0, int64_t{1} << 32))
      ->capture_default_str();
  cmd->add_option("--epochs", lo.loader.epochs, "Loader: epochs to run")
      ->check(WholeNumberIn(1, 1'000'000))
      ->capture_default_str();
  cmd->add_option("--rank", lo.loader.rank, "Loader: this rank")
      ->check(WholeNumberIn(0, 65535))
      ->capture_default_str();
  cmd->add_option("--world-size", lo.loader.world_size,
                  "Loader: number of ranks")
      ->check(WholeNumberIn(1, 65536))
      ->capture_default_str();
  cmd->add_option("--transform", lo.transform,
                  "Loader: decode (images to RGB at their own size) or "
                  "train (random-resized-crop to --size + horizontal flip)")
      ->check(CLI::IsMember({"decode", "train"}))
      ->capture_default_str();
  cmd->add_option("--size", lo.size, "Loader: output side for train")
      ->check(CLI::Range(1, 65500))
      ->capture_default_str();
  cmd->add_option("--clip-frames", lo.clip.frames,
                  "Loader, video tensors: frames per clip")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--clip-step", lo.clip.step,
                  "Loader, video tensors: frame step within a clip")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--clips-per-video", lo.clip.clips_per_video,
                  "Loader, video tensors: clips of each video per epoch")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--clip-sampling", lo.clip.sampling,
                  "Loader, video tensors: random (seeded) or uniform starts")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, VideoClipOptions::Sampling>{
              {"random", VideoClipOptions::Sampling::kRandom},
              {"uniform", VideoClipOptions::Sampling::kUniform}}))
      ->default_str("random");
  cmd->add_option("--clip-size", *clip_size,
                  "Loader, video tensors: resize frames to HxW (e.g. 112x112); "
                  "default the videos' own size");
  cmd->add_option("--memory-budget", lo.loader.memory_budget,
                  "Loader: bytes of chunks and batches held at once "
                  "(suffixes k, M, G, KiB, MiB, GiB are powers of 1024), "
                  "1 MiB .. 1 TiB")
      ->transform(CLI::AsSizeValue(/*kb_is_1000=*/false))
      ->check(WholeNumberIn(int64_t{1} << 20, int64_t{1} << 40))
      ->capture_default_str();
  cmd->add_option("--digests", lo.digests,
                  "Loader: write '<epoch> <batch> <XXH3 of the batch's "
                  "bytes> <sample indices>' per batch to this file");
  cmd->add_flag("--reference", lo.reference,
                "Loader: also time raw TurboJPEG decoding of the same JPEGs "
                "on the same threads and print the ratio");
  cmd->callback([command, run, clip_size] {
    LoaderBenchOptions& options = command->options;
    if (!clip_size->empty()) {
      unsigned h = 0, w = 0;
      char extra = 0;
      if (std::sscanf(clip_size->c_str(), "%ux%u%c", &h, &w, &extra) != 2 ||
          h == 0 || w == 0 || h > 16384 || w > 16384) {
        throw CLI::ValidationError(
            "--clip-size",
            "expected HxW, e.g. 112x112, got '" + *clip_size + "'");
      }
      options.clip.height = h;
      options.clip.width = w;
    }
    if (options.loader.rank >= options.loader.world_size) {
      throw CLI::ValidationError("--rank", "must be below --world-size");
    }
    *run = [command] { return RunLoaderBenchCommand(*command); };
  });
}

}  // namespace

void AddBenchCommand(CLI::App& app, CommandRun* run) {
  CLI::App* bench = app.add_subcommand(
      "bench", "Measure how fast samples are read and decoded");
  bench->require_subcommand(1);
  bench->footer(
      "  shoal bench loader DS ...   through the Loader (shuffle, decode, "
      "transforms, all cores)\n  shoal bench read DS ...     through the "
      "format API on one thread\nSee `shoal bench loader --help`, `shoal "
      "bench read --help`.");
  AddLoaderBenchCommand(*bench, run);
  AddReadBenchCommand(*bench, run);
}

}  // namespace shoal::tools
