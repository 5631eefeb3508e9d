// `shoal bench loader DS`: batches through the Loader
// as a training loop would take them, with the pipeline's per-stage profile,
// the consumer's stall share and peak memory; optionally per-batch digests
// (to compare runs) and a reference: the same JPEGs decoded by raw
// TurboJPEG on the same number of threads, with no pipeline.
#include "tools/bench_loader.h"

#include <sys/resource.h>
#include <turbojpeg.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/coding.h"
#include "base/memory.h"
#include "loader/controller.h"
#include "loader/loader.h"
#include "tools/commands.h"

namespace shoal::tools {
namespace {

// Peak resident set size of this process, in bytes.
uint64_t PeakRssBytes() {
  struct rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // Linux: KiB
}

// XXH3 of each tensor's bytes, combined in tensor order.
uint64_t BatchDigest(const Batch& batch) {
  uint64_t digest = 0;
  for (const TensorBatch& t : batch.tensors()) {
    const uint64_t parts[2] = {digest, Checksum64(t.data())};
    digest = Checksum64(std::as_bytes(std::span(parts)));
  }
  return digest;
}

struct ReferenceResult {
  uint64_t samples = 0;
  double seconds = 0;
};

// Decodes the stored JPEGs of `indices` (at most `limit` of them) with
// TurboJPEG (accurate integer IDCT, RGB, full size) on `threads` threads.
// The bytes are read first and not timed: this is the decode alone.
Result<ReferenceResult> RunReference(const Tensor& tensor,
                                     const std::vector<uint64_t>& indices,
                                     int threads) {
  std::vector<Buffer> files;
  files.reserve(indices.size());
  for (uint64_t i : indices) {
    SHOAL_ASSIGN_OR_RETURN(Buffer stored, tensor.ReadStored(i));
    auto codec = tensor.ImageCodecFor(stored.span());
    if (!codec.ok() || (*codec)->name() != "jpeg") continue;
    files.push_back(std::move(stored));
  }
  if (files.empty()) {
    return InvalidArgument("--reference decodes JPEGs; tensor '" +
                           tensor.name() + "' has none among these samples");
  }
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  const Stopwatch clock;
  std::vector<std::thread> workers;
  for (int w = 0; w < threads; ++w) {
    workers.emplace_back([&] {
      tjhandle tj = tjInitDecompress();
      std::vector<unsigned char> out;
      for (size_t k = next++; k < files.size(); k = next++) {
        const auto* src =
            reinterpret_cast<const unsigned char*>(files[k].data());
        int width = 0, height = 0, subsampling = 0, colorspace = 0;
        if (tjDecompressHeader3(tj, src, files[k].size(), &width, &height,
                                &subsampling, &colorspace) != 0) {
          failed = true;
          continue;
        }
        out.resize(static_cast<size_t>(width) * height * 3);
        if (tjDecompress2(tj, src, files[k].size(), out.data(), width, 0,
                          height, TJPF_RGB, TJFLAG_ACCURATEDCT) != 0) {
          failed = true;
        }
      }
      tjDestroy(tj);
    });
  }
  for (auto& w : workers) w.join();
  const double seconds = clock.seconds();
  if (failed) return Corruption("TurboJPEG failed on a reference sample");
  return ReferenceResult{files.size(), seconds};
}

// The labels of a class_label tensor among `dataset`'s (the first), one
// per sample, for the classes-per-batch measure; empty when there is none.
Result<std::vector<uint32_t>> ReadLabels(const Dataset& dataset) {
  std::vector<uint32_t> labels;
  for (const Tensor* t : dataset.tensors()) {
    if (t->htype() != HType::kClassLabel || t->spec().rank != 0) continue;
    const size_t width = DTypeSize(t->dtype());
    if (width > 4) continue;
    labels.resize(t->size());
    const auto extents = t->Extents();
    for (size_t e = 0; e < extents.size(); ++e) {
      SHOAL_ASSIGN_OR_RETURN(ExtentData data, t->ReadExtent(e));
      for (uint64_t j = 0; j < data.size(); ++j) {
        uint32_t v = 0;
        std::memcpy(&v, data.bytes(j).data(),
                    std::min<size_t>(width, data.bytes(j).size()));
        labels[data.first_sample() + j] = v;
      }
    }
    return labels;
  }
  return labels;
}

nlohmann::ordered_json StageJson(const StageMetrics& s) {
  return {{"name", s.name},
          {"concurrency", s.concurrency},
          {"items", s.items},
          {"busy_s", s.busy_seconds},
          {"wait_input_s", s.wait_input_seconds},
          {"blocked_output_s", s.blocked_output_seconds}};
}

}  // namespace

JobConfig LoaderBenchDefaults() {
  JobConfig job;
  job.has_loader = true;
  job.has_bench = true;
  job.loader.options.batch_size = 256;
  return job;
}

Result<int> RunLoaderBench(std::shared_ptr<const Dataset> dataset,
                           const LoaderBenchOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(LoaderOptions lo,
                         ResolveLoaderOptions(options.loader, *dataset));
  // The first image tensor loaded, whose JPEGs the reference decodes.
  const Tensor* image_tensor = nullptr;
  for (const Tensor* t : dataset->tensors()) {
    if (lo.transforms.count(t->name())) {
      image_tensor = t;
      break;
    }
  }
  if (options.loader.transform.kind != ImageTransform::Kind::kDecode &&
      image_tensor == nullptr) {
    return InvalidArgument(
        "the transform (--transform, loader.transform.kind) needs an image "
        "tensor (JPEG, PNG or pixels) among the loaded tensors");
  }
  SHOAL_ASSIGN_OR_RETURN(auto loader, Loader::Create(dataset, lo));
  if (loader->shuffle_buffer() < lo.shuffle_buffer) {
    std::fprintf(stderr,
                 "shoal: note: shuffle buffer lowered from %llu to %llu "
                 "samples: the chunks its samples keep in memory must fit "
                 "--memory-budget (%s); raise the budget, or store smaller "
                 "chunks, to mix more\n",
                 static_cast<unsigned long long>(lo.shuffle_buffer),
                 static_cast<unsigned long long>(loader->shuffle_buffer()),
                 FormatBytes(lo.memory_budget).c_str());
  }
  if (loader->per_sample_reads()) {
    std::fprintf(stderr,
                 "shoal: note: --shuffle full reads sample by sample (a block "
                 "decompression each): the dataset's chunks, decompressed, do "
                 "not fit --memory-budget (%s); --shuffle chunk reads each "
                 "chunk once\n",
                 FormatBytes(lo.memory_budget).c_str());
  }
  if (loader->typical_batch_bytes() > lo.memory_budget) {
    std::fprintf(stderr,
                 "shoal: warning: a batch of %llu samples takes about %s, more "
                 "than --memory-budget (%s): batches are made one at a time "
                 "and each goes past the budget; lower --batch or raise "
                 "--memory-budget\n",
                 static_cast<unsigned long long>(lo.batch_size),
                 FormatBytes(loader->typical_batch_bytes()).c_str(),
                 FormatBytes(lo.memory_budget).c_str());
  }
  std::ofstream digests;
  if (!options.digests.empty()) {
    digests.open(options.digests, std::ios::trunc);
    if (!digests) return IOError("cannot write " + options.digests);
  }

  const uint64_t total_batches = loader->batches_per_epoch() * lo.epochs;
  Progress progress("bench", "batches");
  std::vector<uint64_t> first_epoch_samples;
  std::optional<uint64_t> first_epoch;
  double first_batch_seconds = 0;  // the wait before training can start
  const Stopwatch clock;
  // --profile: an interval about every 250 ms, taken between batches.
  std::optional<ProfileRecorder> profile;
  if (!options.profile.empty()) profile.emplace("loader");
  LoaderMetrics last = loader->metrics();
  double last_t = 0;
  auto record = [&](bool final) {
    const double t = clock.seconds();
    if (!profile || t - last_t < (final ? 1e-3 : 0.25)) return;
    const LoaderMetrics now = loader->metrics();
    const double dt = t - last_t;
    PipelineInterval interval =
        MeasureInterval(last.pipeline, now.pipeline, t, dt);
    interval.samples_per_s = (now.samples - last.samples) / dt;
    interval.bytes_per_s = (now.sample_bytes - last.sample_bytes) / dt;
    const double stall = (now.pipeline.consumer_wait_seconds -
                          last.pipeline.consumer_wait_seconds) /
                         dt;
    // The fetch workers' changes since the last interval.
    const std::vector<Decision> decisions(
        now.decisions.begin() +
            static_cast<std::ptrdiff_t>(last.decisions.size()),
        now.decisions.end());
    profile->Add(interval, decisions, ResidentSetBytes(), stall);
    last = now;
    last_t = t;
  };
  uint64_t batches = 0;
  while (!loader->done()) {
    SHOAL_ASSIGN_OR_RETURN(std::optional<Batch> batch, loader->Next());
    record(false);
    if (!batch) continue;
    ++batches;
    if (digests.is_open()) {
      digests << batch->epoch() << ' ' << batch->index() << ' '
              << Hex64(BatchDigest(*batch)) << ' ';
      const auto indices = batch->indices();
      for (size_t k = 0; k < indices.size(); ++k) {
        digests << (k ? "," : "") << indices[k];
      }
      digests << '\n';
    }
    if (!first_epoch) {
      first_epoch = batch->epoch();
      first_batch_seconds = clock.seconds();
    }
    if (options.bench.reference && batch->epoch() == *first_epoch) {
      first_epoch_samples.insert(first_epoch_samples.end(),
                                 batch->indices().begin(),
                                 batch->indices().end());
    }
    progress.Update(batches, total_batches, loader->metrics().sample_bytes);
  }
  record(true);
  const double seconds = std::max(clock.seconds(), 1e-9);
  progress.Finish();
  if (profile) SHOAL_RETURN_IF_ERROR(profile->WriteFile(options.profile));
  const LoaderMetrics m = loader->metrics();
  // Before the reference, which holds every file it decodes in memory.
  const uint64_t peak_rss = PeakRssBytes();
  // Shuffle quality of the last epoch's order (this rank's samples).
  SHOAL_ASSIGN_OR_RETURN(std::vector<uint32_t> labels, ReadLabels(*dataset));
  const EpochPlan& plan = loader->plan();
  auto quality =
      MeasureShuffle(plan.AllSamples(), plan.BatchEnds(),
                     labels.size() >= plan.num_samples ? std::span(labels)
                                                       : std::span<uint32_t>());
  if (!quality.ok()) return quality.status();
  loader.reset();

  std::optional<ReferenceResult> reference;
  if (options.bench.reference) {
    if (image_tensor == nullptr) {
      return InvalidArgument(
          "--reference decodes JPEGs: no image tensor is loaded");
    }
    if (first_epoch_samples.size() > options.bench.reference_samples) {
      first_epoch_samples.resize(options.bench.reference_samples);
    }
    SHOAL_ASSIGN_OR_RETURN(reference,
                           RunReference(*image_tensor, first_epoch_samples,
                                        ResolveThreads(lo.threads)));
  }

  const double samples_per_s = m.samples / seconds;
  const double mb_per_s = m.sample_bytes / seconds / 1e6;
  const double stall = m.pipeline.consumer_wait_seconds / seconds;
  const double reference_rate =
      reference ? reference->samples / std::max(reference->seconds, 1e-9) : 0;
  // "T s: fetch A->B: why", as ingestion reports its workers' changes.
  std::vector<std::string> decisions;
  for (const Decision& d : m.decisions) {
    char when[32];
    std::snprintf(when, sizeof(when), "%.2f s: ", d.t);
    decisions.push_back(when + d.reason);
  }
  if (options.json) {
    nlohmann::ordered_json stages = nlohmann::ordered_json::array();
    stages.push_back(StageJson(m.pipeline.feeder));
    for (const StageMetrics& s : m.pipeline.stages)
      stages.push_back(StageJson(s));
    nlohmann::ordered_json out = {
        {"mode", "loader"},
        {"samples", m.samples},
        {"batches", m.batches},
        {"bytes", m.sample_bytes},
        {"seconds", seconds},
        {"first_batch_s", first_batch_seconds},
        {"samples_per_s", samples_per_s},
        {"mb_per_s", mb_per_s},
        {"stall_fraction", stall},
        {"consumer_wait_s", m.pipeline.consumer_wait_seconds},
        {"threads", m.pipeline.threads},
        {"fetch_threads", m.pipeline.blocking_threads},
        {"peak_rss_bytes", peak_rss},
        {"memory_budget_bytes", m.memory_budget},
        {"memory_peak_bytes", m.memory_peak},
        {"skipped_samples", m.skipped_samples},
        {"chunks_read", m.chunks_read},
        {"bytes_read", m.bytes_read},
        {"sample_reads", m.sample_reads},
        {"video_frames",
         {{"decoded", m.video_frames_decoded},
          {"skipped", m.video_frames_skipped},
          {"returned", m.video_frames_returned},
          {"clips_shared", m.video_clips_shared},
          {"split_decodes", m.video_split_decodes}}},
        {"stages", stages},
        {"decisions", decisions},
        {"shuffle",
         {{"mode", std::string(ShuffleModeName(lo.shuffle))},
          {"mean_displacement", quality->mean_displacement},
          {"spearman", quality->spearman},
          {"classes_per_batch", quality->classes_per_batch}}},
    };
    if (reference) {
      out["reference_samples_per_s"] = reference_rate;
      out["ratio_to_reference"] = samples_per_s / reference_rate;
    }
    std::printf("%s\n", out.dump().c_str());
    return kExitOk;
  }
  std::printf(
      "bench: loader, %llu samples in %llu batches on %d decode threads in "
      "%.3f s: %.0f samples/s, %.1f MB/s\n",
      static_cast<unsigned long long>(m.samples),
      static_cast<unsigned long long>(m.batches), ResolveThreads(lo.threads),
      seconds, samples_per_s, mb_per_s);
  std::printf(
      "  consumer stalled %.1f%% of the time; memory: peak %s accounted "
      "(budget %s), peak RSS %s; read %s in %llu chunks\n",
      100 * stall, FormatBytes(m.memory_peak).c_str(),
      FormatBytes(m.memory_budget).c_str(), FormatBytes(peak_rss).c_str(),
      FormatBytes(m.bytes_read).c_str(),
      static_cast<unsigned long long>(m.chunks_read));
  if (m.sample_reads > 0) {
    std::printf("  sample by sample: %llu ranged reads, %.3f per sample\n",
                static_cast<unsigned long long>(m.sample_reads),
                static_cast<double>(m.sample_reads) /
                    static_cast<double>(std::max<uint64_t>(m.samples, 1)));
  }
  if (m.video_frames_returned > 0) {
    std::printf(
        "  video: %llu frames decoded, %llu skipped, %llu returned: %.2f "
        "decoded per returned frame; %llu clips shared a decode, %llu "
        "decodes split by GOP\n",
        static_cast<unsigned long long>(m.video_frames_decoded),
        static_cast<unsigned long long>(m.video_frames_skipped),
        static_cast<unsigned long long>(m.video_frames_returned),
        static_cast<double>(m.video_frames_decoded) /
            static_cast<double>(m.video_frames_returned),
        static_cast<unsigned long long>(m.video_clips_shared),
        static_cast<unsigned long long>(m.video_split_decodes));
  }
  std::printf("  %-8s %5s %8s %9s %10s %12s\n", "stage", "conc", "items",
              "busy s", "wait in s", "blocked out s");
  auto row = [](const StageMetrics& s) {
    std::printf("  %-8s %5d %8llu %9.3f %10.3f %12.3f\n", s.name.c_str(),
                s.concurrency, static_cast<unsigned long long>(s.items),
                s.busy_seconds, s.wait_input_seconds, s.blocked_output_seconds);
  };
  row(m.pipeline.feeder);
  for (const StageMetrics& s : m.pipeline.stages) row(s);
  for (const std::string& d : decisions)
    std::printf("  workers: %s\n", d.c_str());
  std::printf(
      "  shuffle %s: mean displacement %.3f (uniform: 0.333), rank "
      "correlation %.3f (uniform: 0)",
      std::string(ShuffleModeName(lo.shuffle)).c_str(),
      quality->mean_displacement, quality->spearman);
  if (quality->classes_per_batch > 0) {
    std::printf(", %.1f classes per batch", quality->classes_per_batch);
  }
  std::printf("\n");
  if (m.skipped_samples > 0) {
    std::printf("  skipped %llu samples\n",
                static_cast<unsigned long long>(m.skipped_samples));
  }
  if (reference) {
    std::printf(
        "  reference: raw TurboJPEG full decode of %llu of these JPEGs on %d "
        "threads: %.0f samples/s; loader / reference = %.3f\n",
        static_cast<unsigned long long>(reference->samples),
        ResolveThreads(lo.threads), reference_rate,
        samples_per_s / reference_rate);
  }
  return kExitOk;
}

}  // namespace shoal::tools
