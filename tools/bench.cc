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
#include "tools/config_flags.h"

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
  ConfigFlags flags{LoaderBenchDefaults()};
  LoaderBenchOptions options;  // json, digests, profile; the rest from flags
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

// The job from --config and the flags; a usage error (exit 2) when wrong.
JobConfig BuildLoaderJob(const ConfigFlags& flags) {
  auto job = flags.Build();
  if (!job.ok())
    throw CLI::ValidationError(std::string(job.status().message()));
  return *std::move(job);
}

Result<int> RunLoaderBenchJob(const JobConfig& job,
                              LoaderBenchOptions options) {
  if (job.loader.dataset.empty()) {
    return InvalidArgument(
        "no dataset: give DS, or loader.dataset in the --config file");
  }
  options.loader = job.loader;
  options.bench = job.bench;
  SHOAL_ASSIGN_OR_RETURN(auto dataset, OpenForReading(job.loader.dataset));
  return RunLoaderBench(std::shared_ptr<const Dataset>(std::move(dataset)),
                        options);
}

// Runs (or with --print-config prints) the job.
void SetLoaderBenchRun(const std::shared_ptr<LoaderBenchCommand>& command,
                       CommandRun* run) {
  const JobConfig job = BuildLoaderJob(command->flags);
  if (command->flags.print_config()) {
    *run = [job]() -> Result<int> {
      std::fputs(JobConfigToYaml(job).c_str(), stdout);
      return kExitOk;
    };
    return;
  }
  *run = [command, job] { return RunLoaderBenchJob(job, command->options); };
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

// --transform decode|train|crop as keys: train is RandomResizedCrop + flip,
// crop RandomCrop + flip, at --size (224 unless given, which comes after
// this flag).
Status ApplyTransformFlag(JobConfig& job, const std::string& value) {
  if (value == "decode") {
    SHOAL_RETURN_IF_ERROR(SetConfigValue(job, "loader.transform.size", "0"));
    return SetConfigValue(job, "loader.transform.kind", "decode");
  }
  if (value == "train" || value == "crop") {
    SHOAL_RETURN_IF_ERROR(SetConfigValue(
        job, "loader.transform.kind",
        value == "train" ? "random_resized_crop" : "random_crop"));
    SHOAL_RETURN_IF_ERROR(SetConfigValue(job, "loader.transform.flip", "true"));
    if (job.loader.transform.height == 0) {
      return SetConfigValue(job, "loader.transform.size", "224");
    }
    return Status::OK();
  }
  return InvalidArgument("want decode, train or crop, got '" + value + "'");
}

// --clip-size HxW.
Status ApplyClipSizeFlag(JobConfig& job, const std::string& value) {
  unsigned h = 0, w = 0;
  char extra = 0;
  if (std::sscanf(value.c_str(), "%ux%u%c", &h, &w, &extra) != 2) {
    return InvalidArgument("expected HxW, e.g. 112x112, got '" + value + "'");
  }
  return SetConfigValue(
      job, "loader.clip.size",
      "[" + std::to_string(h) + ", " + std::to_string(w) + "]");
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
      "and prints loader / reference. Every option is also a key of a job "
      "file (in brackets); --config reads one (configs/), the flags given "
      "override it.\n\n"
      "Examples:\n  shoal bench loader /data/inet --transform train --size "
      "224 --reference\n  shoal bench loader --config "
      "configs/imagefolder-train.yaml --epochs 1 --profile train.json\n"
      "  shoal bench loader /data/fmnist --batch 1024 --json\n"
      "  shoal bench loader DS --threads 1 --digests one.txt && shoal bench "
      "loader DS --threads 2 --digests two.txt && cmp one.txt two.txt");
  cmd->formatter(
      std::make_shared<UsageFormatter>("DS  (or --config FILE [DS])"));
  ConfigFlags& f = command->flags;
  LoaderBenchOptions& o = command->options;
  f.Add(*cmd, "DS", "loader.dataset");
  f.AddJobOptions(*cmd);
  f.Add(*cmd, "--tensors", "loader.tensors");
  f.Add(*cmd, "--seed", "loader.seed");
  f.Add(*cmd, "--batch", "loader.batch_size");
  f.AddSwitch(*cmd, "--drop-last", "loader.drop_last", "true",
              "Drop what does not fill a whole batch");
  f.Add(*cmd, "--threads", "loader.threads");
  f.Add(*cmd, "--shuffle", "loader.shuffle");
  f.Add(*cmd, "--shuffle-buffer", "loader.shuffle_buffer");
  f.Add(*cmd, "--epochs", "loader.epochs");
  f.Add(*cmd, "--rank", "loader.rank");
  f.Add(*cmd, "--world-size", "loader.world_size");
  f.Add(*cmd, "--memory-budget", "loader.memory_budget");
  f.AddCustom(*cmd, "--transform",
              "decode (images to RGB at their own size), train "
              "(random-resized-crop to --size + horizontal flip) or crop "
              "(a random --size box + flip; of pixel tensors only the box "
              "is read) [sets loader.transform.kind, .flip]",
              ApplyTransformFlag,
              {"loader.transform.kind", "loader.transform.flip",
               "loader.transform.size"});
  f.Add(*cmd, "--size", "loader.transform.size");
  f.Add(*cmd, "--clip-frames", "loader.clip.frames");
  f.Add(*cmd, "--clip-step", "loader.clip.step");
  f.Add(*cmd, "--clips-per-video", "loader.clip.clips_per_video");
  f.Add(*cmd, "--clip-sampling", "loader.clip.sampling");
  f.AddCustom(*cmd, "--clip-size",
              "Video tensors: resize frames to HxW (e.g. 112x112) "
              "[sets loader.clip.size]",
              ApplyClipSizeFlag, {"loader.clip.size"});
  f.AddSwitch(*cmd, "--reference", "bench.reference", "true",
              "Also time raw TurboJPEG decoding of the same JPEGs on the "
              "same threads and print the ratio");
  cmd->add_flag("--json", o.json,
                "Print one JSON object (samples_per_s, mb_per_s, "
                "stall_fraction, peak_rss_bytes, stages, ...)");
  cmd->add_option("--digests", o.digests,
                  "Write '<epoch> <batch> <XXH3 of the batch's bytes> "
                  "<sample indices>' per batch to this file");
  cmd->add_option("--profile", o.profile,
                  "Write a JSON timeline (per ~250 ms: samples/s, MB/s, each "
                  "stage's busy and wait, consumer stall, budget, RSS); "
                  "scripts/plot-profile.py draws it");
  cmd->callback([command, run] { SetLoaderBenchRun(command, run); });
}

}  // namespace

void AddBenchCommand(CLI::App& app, CommandRun* run) {
  CLI::App* bench = app.add_subcommand(
      "bench", "Measure how fast samples are read and decoded");
  // `shoal bench --config F` runs the loader bench of a job file.
  auto command = std::make_shared<LoaderBenchCommand>();
  command->flags.AddJobOptions(*bench);
  bench->add_flag("--json", command->options.json,
                  "With --config: print the loader bench's report as JSON");
  bench->add_option("--profile", command->options.profile,
                    "With --config: write the loader bench's JSON timeline");
  bench->require_subcommand(0, 1);
  bench->callback([bench, command, run] {
    if (!bench->get_subcommands().empty()) return;
    if (!command->flags.has_config()) {
      throw CLI::ValidationError(
          "bench: give a subcommand (loader, read) or --config FILE");
    }
    SetLoaderBenchRun(command, run);
  });
  bench->footer(
      "  shoal bench --config F      the loader bench of a job file "
      "(configs/)\n  shoal bench loader DS ...   through the Loader (shuffle, "
      "decode, "
      "transforms, all cores)\n  shoal bench read DS ...     through the "
      "format API on one thread\nSee `shoal bench loader --help`, `shoal "
      "bench read --help`.");
  AddLoaderBenchCommand(*bench, run);
  AddReadBenchCommand(*bench, run);
}

}  // namespace shoal::tools
