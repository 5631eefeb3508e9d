// The Loader: creating it (checking options, reading shapes and video
// probes), running its pipeline (one run per SetEpoch) and handing batches
// out. The work of each batch is in loader_work.cc.
#include "loader/loader.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <thread>

#include "loader/internal/loader_impl.h"

namespace shoal {
namespace {

Status ValidateClipOptions(const VideoClipOptions& o,
                           const std::string& where) {
  if (o.frames == 0 || o.frames > 4096 || o.step == 0 || o.step > 4096 ||
      o.clips_per_video == 0 || o.clips_per_video > 1024) {
    return InvalidArgument(where +
                           ": clips need 1..4096 frames, a step of 1..4096 "
                           "and 1..1024 clips per video");
  }
  if ((o.height == 0) != (o.width == 0) || o.height > 16384 ||
      o.width > 16384) {
    return InvalidArgument(where +
                           ": a clip's height and width are given together "
                           "(at most 16384) or not at all");
  }
  return Status::OK();
}

// Reads every video's probe from the sample infos.
Status ReadProbes(LoadedTensor& t, uint64_t n) {
  t.probes.assign(n, nullptr);
  return t.tensor->ForEachInfo(
      n, [&t](uint64_t i, std::string_view json) -> Status {
        SHOAL_ASSIGN_OR_RETURN(
            VideoProbe probe,
            VideoProbeFromInfo(json, VideoSampleName(*t.tensor, i)));
        t.probes[i] = std::make_shared<const VideoProbe>(std::move(probe));
        return Status::OK();
      });
}

// All sample shapes of `t`, in one pass over the shape records.
Status ReadShapes(LoadedTensor& t, uint64_t n) {
  const TensorStats stats = t.tensor->stats();
  t.rank = static_cast<uint8_t>(std::max(t.tensor->spec().rank, 0));
  if (stats.min_shape == stats.max_shape) {
    t.fixed_shape = true;
    t.shape = stats.min_shape;
    return Status::OK();
  }
  t.dims.assign(n * t.rank, 0);
  return t.tensor->ReadShapes(n, t.dims);
}

// The shuffle buffer a chunk-shuffled run can afford. The samples waiting
// in the buffer keep their chunks resident (a chunk goes when its last
// sample is output), about 1 + B * H(C) / C chunks for a buffer of B
// samples and C samples per chunk, and those chunks are charged to the
// budget. When the first epoch's plan would hold more than `room` bytes of
// them (stored bytes times `expansion`), the buffer is lowered until it
// fits, down to 1 (chunk order only): the budget is what the caller asked
// for, and a buffer it cannot hold would only run past it. A pure function
// of its inputs, so saved states still match on resume.
uint64_t FitShuffleBuffer(const ChunkLayout& layout, SamplerOptions options,
                          uint64_t first_epoch, double expansion, double room) {
  const uint64_t asked = options.shuffle_buffer;
  if (options.shuffle != ShuffleMode::kChunk || asked <= 1 ||
      layout.num_samples == 0) {
    return asked;
  }
  double all = 0;  // every chunk at once: then any buffer fits
  for (uint64_t b : layout.chunk_bytes) all += static_cast<double>(b);
  if (all * expansion <= room) return asked;
  uint64_t& buffer = options.shuffle_buffer;
  for (int round = 0; round < 32 && buffer > 1; ++round) {
    auto plan = MakeEpochPlan(layout, options, first_epoch);
    if (!plan.ok()) return asked;  // Create reports it
    const double held = static_cast<double>(plan->max_live_bytes) * expansion;
    if (held <= room) break;
    // Resident chunks grow about linearly with the buffer: scale it down,
    // by at least one sample, and check again.
    const auto scaled =
        static_cast<uint64_t>(static_cast<double>(buffer) * room / held * 0.9);
    buffer = std::min(buffer - 1, std::max<uint64_t>(scaled, 1));
  }
  return buffer;
}

}  // namespace

// ----------------------------------------------------------------- Batch --

Batch::Batch(Pipeline<LoaderBatchWork>::Lease lease)
    : lease_(std::make_unique<Pipeline<LoaderBatchWork>::Lease>(
          std::move(lease))) {}
Batch::Batch(Batch&&) noexcept = default;
Batch& Batch::operator=(Batch&&) noexcept = default;
Batch::~Batch() {
  // The buffers go back to the loader's pool (see BatchBufferPool) before
  // the lease gives the item back.
  if (lease_ == nullptr) return;  // moved from
  LoaderBatchWork& work = **lease_;
  for (size_t t = 0; t < work.tensors.size(); ++t) {
    work.buffers->Put(t, std::move(work.tensors[t].data_));
    work.tensors[t].data_ = MutableBuffer();
  }
}
uint64_t Batch::epoch() const { return (*lease_)->epoch; }
uint64_t Batch::index() const { return (*lease_)->index; }
size_t Batch::size() const { return (*lease_)->indices.size(); }
std::span<const uint64_t> Batch::indices() const { return (*lease_)->indices; }
std::span<const uint32_t> Batch::clips() const { return (*lease_)->clips; }
std::span<const TensorBatch> Batch::tensors() const {
  return (*lease_)->tensors;
}
Result<const TensorBatch*> Batch::tensor(std::string_view name) const {
  for (const TensorBatch& t : (*lease_)->tensors) {
    if (t.name() == name) return &t;
  }
  return NotFound("the loader does not load tensor '" + std::string(name) +
                  "'");
}

// ----------------------------------------------------------------- Loader --

void Loader::Impl::PlanEpoch(uint64_t epoch, uint64_t first_batch) {
  auto plan =
      MakeEpochPlan(sampler->layout(), sampler->options(), epoch, first_batch);
  // Options were validated when the sampler was made.
  feed.plan = std::make_shared<const EpochPlan>(std::move(*plan));
  feed.next = {epoch, first_batch};
  feed.cursor = feed.plan->Batches();
  for (auto& open : feed.shares) open.clear();
  // When each extent is read for the last time in this plan: a walk
  // through the plan, whose memory is O(extents).
  if (per_sample_reads) return;
  feed.last_use.resize(tensors.size());
  for (size_t t = 0; t < tensors.size(); ++t) {
    feed.last_use[t].assign(tensors[t].extents.size(), UINT64_MAX);
  }
  EpochPlan::Cursor walk = feed.plan->Batches();
  for (uint64_t j = 0; walk.Next(feed.samples); ++j) {
    for (size_t t = 0; t < tensors.size(); ++t) {
      auto& last = feed.last_use[t];
      for (uint64_t v : feed.samples) {
        last[tensors[t].ExtentOf(v / clips_per_video)] = j;
      }
    }
  }
}

Status Loader::Impl::StartRun(SamplerPosition from) {
  StopRun();
  if (budget == nullptr) {
    budget = std::make_shared<MemoryBudget>("loader", options.memory_budget);
    batch_budget = std::make_shared<MemoryBudget>("loader batches");
    buffers = std::make_shared<BatchBufferPool>(tensors.size());
  }
  // Free buffers for the chunks being loaded while others are released: up
  // to a quarter of the budget, so that the chunks an epoch lets go of in
  // one go serve the next epoch's (fresh memory costs a page fault and a
  // zeroing per page: 13 % of loading JPEGs over s3://).
  auto fresh = std::make_shared<ChunkBufferPool>(
      budget,
      options.memory_budget == 0 ? 256ull << 20 : options.memory_budget / 4);
  {
    std::lock_guard<std::mutex> lock(run_mu);  // metrics() reads it
    pool = std::move(fresh);
  }
  buffers->Stop(false);
  feed.resident.assign(tensors.size(), {});
  PlanEpoch(from.epoch, from.batch);
  consumer_plan = feed.plan;
  position = from;
  done = from.epoch >= end_epoch;

  const int threads = ResolveThreads(options.threads);
  const int prefetch =
      options.prefetch_batches > 0 ? options.prefetch_batches : 2 * threads + 2;
  // Fetch workers mostly wait on the store. They get threads of their own
  // beside the decoders' (measured on s3:// with 20 ms per request, fetches
  // sharing the decoders' 2 threads held them a third of the time), outside
  // the task arena (a blocking stage): an arena sized for 64 fetches had 64
  // TBB workers, whose idle spinning took the decoders' cores.
  const bool adaptive = options.fetch_workers == 0;
  const int fetch_max =
      adaptive ? std::clamp(dataset->store()->useful_reads_in_flight(), 1,
                            kMaxFetchWorkers)
               : options.fetch_workers;
  if (!adaptive) {
    fetch_workers = fetch_max;
  } else if (fetch_workers == 0) {
    fetch_workers = threads;  // as many as the decoders, to start with
  }
  // Items cost their batch buffers; the chunks they load are charged to the
  // same budget outside the items (they outlive batches).
  auto next = std::make_unique<Pipeline<LoaderBatchWork>>(
      PipelineOptions{
          .threads = threads, .budget = budget, .max_in_flight = prefetch},
      [this] {
        auto item = std::make_unique<LoaderBatchWork>();
        item->tensors.resize(tensors.size());
        for (size_t t = 0; t < tensors.size(); ++t) {
          item->tensors[t].name_ = tensors[t].tensor->name();
          item->tensors[t].dtype_ = tensors[t].dtype;
        }
        item->budget = budget;
        item->buffers = buffers;
        item->reads.resize(tensors.size());
        item->stored.resize(tensors.size());
        return item;
      });
  SHOAL_RETURN_IF_ERROR(next->AddStage(
      {.name = "fetch", .concurrency = fetch_workers, .blocking = true},
      [this](LoaderBatchWork& item) { return Fetch(item); }));
  SHOAL_RETURN_IF_ERROR(
      next->AddStage({.name = "decode", .concurrency = threads},
                     [this](LoaderBatchWork& item) { return Decode(item); }));
  feed.pipeline = next.get();
  SHOAL_RETURN_IF_ERROR(next->Start(
      [this](uint64_t, LoaderBatchWork& item, uint64_t* cost) -> Result<bool> {
        // Everything a batch holds is charged as it is made (its buffers
        // for their lifetime, its chunks until their last reader), and
        // admitted with it through AdmitWithItem: no per-item cost.
        *cost = 0;
        return Fill(item);
      }));
  // The fetch stage grows while batches come faster (a store's latency is
  // covered by reads in flight) and backs off when its reads slow down as
  // it grows (the store pushes back, e.g. S3's SlowDown, retried in the
  // store). Decoders are fixed at `threads`, counted in the total.
  control.reset();
  if (adaptive) {
    ControllerOptions co;
    co.stages = {{.stage = 0,
                  .min_concurrency = 1,
                  .max_concurrency = fetch_max,
                  .io = true}};
    co.max_threads_total = threads + fetch_max;
    // Fetch workers hold no memory of their own (the feeder admits every
    // batch's buffers and chunks), so a full budget is no reason not to
    // grow them: it is the usual state of a loader.
    co.memory_cap = HUGE_VAL;
    // Batches are big items: a few make an interval worth judging.
    co.min_items = 4;
    control.emplace(std::move(co));
  }
  run_start = std::chrono::steady_clock::now();
  last_adapt = 0;
  std::lock_guard<std::mutex> lock(run_mu);
  pipeline = std::move(next);
  return Status::OK();
}

void Loader::Impl::Adapt() {
  if (!control) return;
  const double t = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - run_start)
                       .count();
  // A snapshot of the metrics per call would cost more than the batch's
  // bookkeeping; the controller extends intervals this short anyway.
  const double kInterval = ControllerOptions{}.interval_seconds;
  if (t - last_adapt < kInterval / 2) return;
  last_adapt = t;
  for (Decision& d : control->Update(pipeline->metrics(), t)) {
    // Refused only while the pipeline stops.
    if (!pipeline->SetConcurrency(d.stage, d.to).ok()) continue;
    fetch_workers = d.to;
    std::lock_guard<std::mutex> lock(run_mu);
    decisions.push_back(std::move(d));
  }
}

Loader::Loader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Loader::~Loader() = default;

Result<std::unique_ptr<Loader>> Loader::Create(
    std::shared_ptr<const Dataset> dataset, LoaderOptions options,
    std::string_view state) {
  if (dataset == nullptr) return InvalidArgument("loader: no dataset");
  if (options.threads < 0 || options.threads > kMaxPipelineThreads) {
    return InvalidArgument("loader: threads must be 0 (all cores) .. " +
                           std::to_string(kMaxPipelineThreads) + ", got " +
                           std::to_string(options.threads));
  }
  if (options.fetch_workers < 0 || options.fetch_workers > kMaxFetchWorkers) {
    return InvalidArgument("loader: fetch_workers must be 0 (adaptive) .. " +
                           std::to_string(kMaxFetchWorkers) + ", got " +
                           std::to_string(options.fetch_workers));
  }
  auto impl = std::make_unique<Impl>();
  impl->dataset = dataset;
  if (options.tensors.empty()) {
    for (const Tensor* t : dataset->tensors()) {
      options.tensors.push_back(t->name());
    }
  }
  if (options.tensors.empty()) {
    return InvalidArgument("dataset '" + dataset->url() +
                           "' has no tensors to load");
  }
  for (const auto& [name, transform] : options.transforms) {
    if (std::find(options.tensors.begin(), options.tensors.end(), name) ==
        options.tensors.end()) {
      return InvalidArgument("loader: a transform is given for tensor '" +
                             name + "', which is not loaded");
    }
  }
  uint64_t n = UINT64_MAX;
  uint64_t most_bytes = 0;
  for (const std::string& name : options.tensors) {
    auto tensor = dataset->tensor(name);
    if (!tensor.ok()) return tensor.status();
    LoadedTensor lt;
    lt.tensor = *tensor;
    lt.where = "dataset '" + dataset->url() + "': tensor '" + name + "'";
    if (lt.tensor->hidden()) {
      return InvalidArgument(lt.where + " is hidden; load its parent");
    }
    lt.dtype = lt.tensor->dtype();
    lt.item_size = DTypeSize(lt.dtype);
    lt.extents = lt.tensor->Extents();
    uint64_t end = 0;
    for (const TensorExtent& e : lt.extents) {
      end = e.first_sample + e.num_samples;
      lt.extent_ends.push_back(end);
    }
    const TensorStats stats = lt.tensor->stats();
    if (!lt.tensor->spec().chunk_compression.empty() &&
        stats.stored_bytes > 0) {
      lt.expansion = static_cast<double>(stats.raw_bytes) /
                     static_cast<double>(stats.stored_bytes);
    }
    if (auto it = options.transforms.find(name);
        it != options.transforms.end()) {
      const std::string& codec = lt.tensor->spec().sample_compression;
      lt.pixels = codec.empty() &&
                  (lt.dtype == DType::kUInt8 || lt.dtype == DType::kUInt16);
      if (lt.tensor->htype() != HType::kImage ||
          (codec != "jpeg" && codec != "png" && codec != "image" &&
           !lt.pixels)) {
        return InvalidArgument(lt.where +
                               ": image transforms need an image tensor "
                               "stored as JPEG or PNG (sample_compression "
                               "jpeg, png or image) or as uint8 or uint16 "
                               "pixels ([H, W] or [H, W, C])");
      }
      SHOAL_RETURN_IF_ERROR(ValidateImageTransform(it->second));
      // A crop of a sample of a block or more is cheaper read alone than
      // cut from its chunk, which decompresses the chunk whole.
      lt.regions = lt.pixels && stats.max_shape.num_elements() * lt.item_size >=
                                    lt.tensor->spec().block_bytes;
      lt.dtype = DType::kUInt8;  // transforms write 8-bit pixels
      lt.item_size = 1;
      lt.transform = it->second;
    }
    if (lt.tensor->htype() == HType::kVideo &&
        lt.tensor->spec().sample_compression == "mp4") {
      auto it = options.clips.find(name);
      lt.clip = it != options.clips.end() ? it->second : VideoClipOptions{};
      SHOAL_RETURN_IF_ERROR(ValidateClipOptions(*lt.clip, lt.where));
    } else if (options.clips.count(name) != 0) {
      return InvalidArgument(lt.where +
                             ": clip options are for video tensors (htype "
                             "video, sample_compression mp4)");
    }
    n = std::min(n, lt.tensor->size());
    if (stats.stored_bytes >= most_bytes) {
      most_bytes = stats.stored_bytes;
      impl->primary = impl->tensors.size();
    }
    impl->tensors.push_back(std::move(lt));
  }
  for (const auto& [name, clip] : options.clips) {
    if (std::find(options.tensors.begin(), options.tensors.end(), name) ==
        options.tensors.end()) {
      return InvalidArgument("loader: clip options are given for tensor '" +
                             name + "', which is not loaded");
    }
  }
  std::optional<uint32_t> clips_per_video;
  for (LoadedTensor& lt : impl->tensors) {
    SHOAL_RETURN_IF_ERROR(ReadShapes(lt, n));
    if (!lt.clip) continue;
    SHOAL_RETURN_IF_ERROR(ReadProbes(lt, n));
    if (clips_per_video && *clips_per_video != lt.clip->clips_per_video) {
      return InvalidArgument(lt.where +
                             ": video tensors must agree on clips_per_video");
    }
    clips_per_video = lt.clip->clips_per_video;
  }
  impl->n = n;
  impl->clips_per_video = clips_per_video.value_or(1);
  // A full batch of samples of mean output size, from up to 4096 samples
  // spread over the dataset (all of them for fixed shapes, which are equal).
  double sample_bytes = 0;
  if (n > 0) {
    const uint64_t probes = std::min<uint64_t>(n, 4096);
    for (const LoadedTensor& lt : impl->tensors) {
      double sum = 0;
      for (uint64_t k = 0; k < probes; ++k) {
        const uint64_t i = k * (n / probes);
        sum += static_cast<double>(lt.OutputShape(i).num_elements() *
                                   lt.item_size);
      }
      sample_bytes += sum / static_cast<double>(probes);
    }
  }
  impl->typical_batch_bytes = static_cast<uint64_t>(
      sample_bytes * static_cast<double>(options.batch_size));

  // With several clips per video the plan covers each sample that many
  // times, the clips of a sample side by side (see Impl::n).
  ChunkLayout layout;
  const uint64_t clips = impl->clips_per_video;
  layout.num_samples = n * clips;
  const LoadedTensor& primary = impl->tensors[impl->primary];
  for (size_t e = 0; e < primary.extents.size(); ++e) {
    if (primary.extents[e].first_sample >= n) break;
    layout.chunk_ends.push_back(std::min(primary.extent_ends[e], n) * clips);
    layout.chunk_bytes.push_back(primary.extents[e].stored_bytes);
  }
  if (n == 0) layout.chunk_ends.clear(), layout.chunk_bytes.clear();
  // What the budget leaves for resident chunks beside threads + 2 batch
  // buffers (one being decoded per thread, one being laid out, the one the
  // caller holds: fewer would leave threads idle). Unlimited without a
  // budget.
  const double budget = options.memory_budget == 0
                            ? HUGE_VAL
                            : static_cast<double>(options.memory_budget);
  const double chunk_room =
      budget - static_cast<double>(ResolveThreads(options.threads) + 2) *
                   static_cast<double>(impl->typical_batch_bytes);
  SamplerOptions sampler_options{.batch_size = options.batch_size,
                                 .drop_last = options.drop_last,
                                 .shuffle = options.shuffle,
                                 .shuffle_buffer = options.shuffle_buffer,
                                 .seed = options.seed,
                                 .rank = options.rank,
                                 .world_size = options.world_size};
  // Half of that room for the plan's chunks: batches being made read their
  // chunks ahead of the plan's count (which holds a chunk from its first
  // batch to its last), and a budget filled to the brim makes every new
  // chunk wait for the pipeline to drain.
  sampler_options.shuffle_buffer = FitShuffleBuffer(
      layout, sampler_options, options.first_epoch,
      std::max(primary.expansion, 1.0), std::max(chunk_room / 2, budget / 8));
  impl->shuffle_buffer = sampler_options.shuffle_buffer;
  impl->small_samples = true;
  for (const LoadedTensor& lt : impl->tensors) {
    if (lt.transform || lt.clip ||
        !lt.tensor->spec().sample_compression.empty() ||
        static_cast<double>(impl->typical_batch_bytes) /
                static_cast<double>(std::max<uint64_t>(options.batch_size, 1)) >
            4096) {
      impl->small_samples = false;
    }
  }
  // A full shuffle touches nearly every chunk in every batch. When the
  // loaded tensors' chunks, decompressed, fit in what the budget leaves
  // beside the batches, they are held from the first batch that reads each
  // to the last (as for the chunk shuffle), so each is read and
  // decompressed once per epoch. Otherwise samples are read one by one,
  // each costing a block decompression (see per_sample_reads()).
  if (options.shuffle == ShuffleMode::kFull) {
    double chunks = 0;
    for (const LoadedTensor& lt : impl->tensors) {
      if (lt.regions) continue;  // read by region, never by chunk
      for (const TensorExtent& e : lt.extents) {
        chunks +=
            static_cast<double>(e.stored_bytes) * std::max(lt.expansion, 1.0);
      }
    }
    impl->per_sample_reads = chunks > chunk_room;
  }
  auto sampler = Sampler::Create(std::move(layout), sampler_options);
  if (!sampler.ok()) return sampler.status().WithContext("loader");
  impl->sampler = std::move(*sampler);
  impl->end_epoch = options.first_epoch + options.epochs;
  SamplerPosition from{options.first_epoch, 0};
  if (!state.empty()) {
    SHOAL_RETURN_IF_ERROR(impl->sampler->Restore(state));
    from = impl->sampler->position();
  }
  impl->options = std::move(options);
  SHOAL_RETURN_IF_ERROR(impl->StartRun(from));
  return std::unique_ptr<Loader>(new Loader(std::move(impl)));
}

Result<std::optional<Batch>> Loader::Next() {
  Impl& s = *impl_;
  if (s.done) return std::optional<Batch>();
  std::optional<Pipeline<LoaderBatchWork>::Lease> lease;
  if (s.held) {
    lease = std::move(s.held);
    s.held.reset();
  } else {
    SHOAL_ASSIGN_OR_RETURN(lease, s.pipeline->Next());
  }
  if (!lease) {
    // The last epoch ended.
    s.done = true;
    s.position = {s.end_epoch, 0};
    return std::optional<Batch>();
  }
  if ((*lease)->epoch != s.position.epoch) {
    // The first batch of the next epoch: keep it for the next call.
    s.position = {(*lease)->epoch, 0};
    s.consumer_plan = (*lease)->plan;
    s.held = std::move(lease);
    return std::optional<Batch>();
  }
  s.Adapt();
  LoaderBatchWork& work = **lease;
  s.position.batch = work.index + 1;
  s.batches.fetch_add(1, std::memory_order_relaxed);
  s.samples.fetch_add(work.indices.size(), std::memory_order_relaxed);
  uint64_t bytes = 0;
  for (const TensorBatch& t : work.tensors) bytes += t.bytes_;
  s.sample_bytes.fetch_add(bytes, std::memory_order_relaxed);
  // The batch's bytes go back to the budget with the lease, when the caller
  // lets go of the batch.
  return std::optional<Batch>(Batch(std::move(*lease)));
}

bool Loader::done() const { return impl_->done; }

Status Loader::SetEpoch(uint64_t epoch) {
  if (epoch >= impl_->end_epoch) {
    impl_->end_epoch = epoch + 1;
  }
  return impl_->StartRun({epoch, 0});
}

std::string Loader::State() const {
  SamplerPosition p = impl_->position;
  if (p.batch >= impl_->sampler->batches_per_epoch()) p = {p.epoch + 1, 0};
  return EncodeSamplerState(impl_->sampler->layout(), impl_->sampler->options(),
                            p);
}

uint64_t Loader::shuffle_buffer() const { return impl_->shuffle_buffer; }

bool Loader::per_sample_reads() const { return impl_->per_sample_reads; }

uint64_t Loader::typical_batch_bytes() const {
  return impl_->typical_batch_bytes;
}

uint64_t Loader::batches_per_epoch() const {
  return impl_->sampler->batches_per_epoch();
}

const EpochPlan& Loader::plan() const { return *impl_->consumer_plan; }

LoaderMetrics Loader::metrics() const {
  const Impl& s = *impl_;
  LoaderMetrics m;
  {
    std::lock_guard<std::mutex> lock(s.run_mu);
    if (s.pipeline) m.pipeline = s.pipeline->metrics();
    m.decisions = s.decisions;
    if (s.pool) m.free_chunk_buffer_bytes = s.pool->free_bytes();
  }
  m.batches = s.batches.load(std::memory_order_relaxed);
  m.samples = s.samples.load(std::memory_order_relaxed);
  m.sample_bytes = s.sample_bytes.load(std::memory_order_relaxed);
  m.skipped_samples = s.skipped.load(std::memory_order_relaxed);
  m.chunks_read = s.chunks_read.load(std::memory_order_relaxed);
  m.bytes_read = s.bytes_read.load(std::memory_order_relaxed);
  m.sample_reads = s.sample_reads.load(std::memory_order_relaxed);
  m.video_frames_decoded = s.frames_decoded.load(std::memory_order_relaxed);
  m.video_frames_skipped = s.frames_skipped.load(std::memory_order_relaxed);
  m.video_frames_returned = s.frames_returned.load(std::memory_order_relaxed);
  m.video_clips_shared = s.clips_shared.load(std::memory_order_relaxed);
  m.video_split_decodes = s.split_decodes.load(std::memory_order_relaxed);
  m.memory_budget = s.options.memory_budget;
  if (s.budget) {
    m.memory_in_use =
        static_cast<uint64_t>(std::max<int64_t>(0, s.budget->in_use()));
    m.memory_peak =
        static_cast<uint64_t>(std::max<int64_t>(0, s.budget->peak()));
    m.batch_buffer_bytes =
        static_cast<uint64_t>(std::max<int64_t>(0, s.batch_budget->in_use()));
  }
  return m;
}

}  // namespace shoal
