#include "loader/loader.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "base/memory.h"
#include "base/random.h"
#include "codecs/image_codec.h"
#include "loader/video_sample.h"
#include "video/video.h"

namespace shoal {
namespace {

// The seed of a sample's random transform: a function of the run's seed,
// the epoch and the sample only, so any thread count draws the same crops.
uint64_t SampleSeed(uint64_t seed, uint64_t epoch, uint64_t sample) {
  return SplitMix64::Mix(
      SplitMix64::Mix(SplitMix64::Mix(seed + SplitMix64::kGolden) ^ epoch) ^
      sample);
}

// Buffers that chunks are decompressed into, recycled from chunk to chunk.
// Fresh memory for every chunk made the kernel's page work (mapping, zeroing,
// unmapping 8 MiB per chunk) the largest cost of loading small raw samples.
// Free buffers are charged to the budget like chunks, so the pool is part of
// the memory budget; it keeps at most `max_free` bytes.
class ChunkBufferPool : public std::enable_shared_from_this<ChunkBufferPool> {
 public:
  // Smaller buffers come from the heap, which recycles them well already.
  static constexpr size_t kMinBytes = 1 << 20;

  ChunkBufferPool(std::shared_ptr<MemoryBudget> budget, size_t max_free)
      : budget_(std::move(budget)), max_free_(max_free) {}
  ~ChunkBufferPool() {
    for (const Region& r : free_) munmap(r.data, r.size);
    budget_->Charge(-static_cast<int64_t>(free_bytes_));
  }

  Result<MutableBuffer> Allocate(size_t bytes) {
    if (bytes < kMinBytes) return MutableBuffer::Allocate(bytes);
    Region region{nullptr, 0};
    {
      std::lock_guard<std::mutex> lock(mu_);
      // The smallest free buffer that holds `bytes` without wasting half.
      size_t best = free_.size();
      for (size_t k = 0; k < free_.size(); ++k) {
        const size_t size = free_[k].size;
        if (size >= bytes && size / 2 <= bytes &&
            (best == free_.size() || size < free_[best].size)) {
          best = k;
        }
      }
      if (best != free_.size()) {
        region = free_[best];
        free_[best] = free_.back();
        free_.pop_back();
        free_bytes_ -= region.size;
      }
    }
    if (region.data != nullptr) {
      budget_->Charge(-static_cast<int64_t>(region.size));
    } else {
      void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
      if (p == MAP_FAILED) {
        return ResourceExhausted("cannot map " + std::to_string(bytes) +
                                 " bytes for a chunk");
      }
      region = {static_cast<std::byte*>(p), bytes};
    }
    std::weak_ptr<ChunkBufferPool> pool = weak_from_this();
    std::shared_ptr<void> owner(region.data, [pool, region](void*) {
      if (auto live = pool.lock()) {
        live->Return(region);
      } else {
        munmap(region.data, region.size);
      }
    });
    return MutableBuffer::Wrap(std::move(owner), region.data, bytes);
  }

 private:
  struct Region {
    std::byte* data;
    size_t size;
  };

  void Return(Region region) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (free_bytes_ + region.size <= max_free_) {
        free_.push_back(region);
        free_bytes_ += region.size;
        region.data = nullptr;
      }
    }
    if (region.data == nullptr) {
      budget_->Charge(static_cast<int64_t>(region.size));
    } else {
      munmap(region.data, region.size);
    }
  }

  std::shared_ptr<MemoryBudget> budget_;
  const size_t max_free_;
  std::mutex mu_;
  std::vector<Region> free_;
  size_t free_bytes_ = 0;
};

// One extent (chunk) of one tensor, loaded by the fetch stage for the first
// batch that reads it and shared by every batch that does; freed (and its
// bytes returned) when the last of them is decoded.
//
// Fetch runs in parallel, so the batch that first needs a chunk may find its
// fetch not yet run (or running) when another batch gets to it: whichever
// gets there first loads it (std::call_once) and the other waits for that
// running load, which never waits on anything else.
struct ExtentSlot {
  size_t extent = 0;
  std::once_flag once;
  ExtentData data;  // written once, under `once`
  Status status;
  // Charged to the loader's budget from the batch that first reads the
  // extent until the last one is decoded (outside any one batch's cost).
  std::shared_ptr<MemoryBudget> budget;
  uint64_t charged = 0;
  ~ExtentSlot() {
    if (budget) budget->Charge(-static_cast<int64_t>(charged));
  }
};

}  // namespace

// The work item of one batch, recycled through the pipeline.
struct LoaderBatchWork {
  std::shared_ptr<const EpochPlan> plan;
  uint64_t epoch = 0;
  uint64_t index = 0;
  std::vector<uint64_t> indices;  // dataset indices
  std::vector<uint32_t> clips;    // clip of each sample's video
  std::vector<TensorBatch> tensors;
  // Per tensor: the extents the batch reads (sorted by extent), and those of
  // them it is the first to read (the fetch stage loads these).
  std::vector<std::vector<std::shared_ptr<ExtentSlot>>> reads;
  std::vector<std::vector<ExtentSlot*>> loads;
  uint64_t cost = 0;  // its buffers, the pipeline item's cost
  // Scratch of the decode stage.
  std::vector<uint8_t> failed;
};

namespace {

// The shape a transform gives an image stored as `stored` ([H, W, C]),
// without reading its header: the channel count follows the stored one.
Shape TransformedShape(const Shape& stored, const ImageTransform& t) {
  if (auto fixed = FixedImageTransformShape(t)) return *fixed;
  const uint64_t c = stored.rank() == 3 ? stored[2] : 1;
  using Channels = ImageDecodeOptions::Channels;
  const uint64_t channels = t.channels == Channels::kRgb    ? 3
                            : t.channels == Channels::kGray ? 1
                            : c <= 2                        ? 1
                                                            : 3;
  if (t.kind == ImageTransform::Kind::kDecode && stored.rank() >= 2) {
    return Shape{stored[0], stored[1], channels};
  }
  return Shape{t.height, t.width, channels};
}

// What the loader knows of one tensor it loads.
struct LoadedTensor {
  const Tensor* tensor = nullptr;
  std::string where;  // "dataset 'URL': tensor 'NAME'"
  DType dtype = DType::kUInt8;
  size_t item_size = 1;
  std::vector<TensorExtent> extents;
  std::vector<uint64_t> extent_ends;  // cumulative sample counts
  std::optional<ImageTransform> transform;
  // Video tensors: clip options and every video's probe (from the info).
  std::optional<VideoClipOptions> clip;
  std::vector<std::shared_ptr<const VideoProbe>> probes;
  // Stored shapes: one for all, or rank dims per sample.
  bool fixed_shape = false;
  Shape shape;
  uint8_t rank = 0;
  std::vector<uint32_t> dims;
  // Estimated bytes in memory per stored byte of a chunk (decompression).
  double expansion = 1;

  size_t ExtentOf(uint64_t sample) const {
    return static_cast<size_t>(
        std::upper_bound(extent_ends.begin(), extent_ends.end(), sample) -
        extent_ends.begin());
  }
  Shape StoredShape(uint64_t sample) const {
    if (fixed_shape) return shape;
    Shape s = Shape::Zeros(rank);
    for (size_t d = 0; d < rank; ++d) s[d] = dims[sample * rank + d];
    return s;
  }
  // The shape a sample has in a batch.
  Shape OutputShape(uint64_t sample) const {
    Shape s = StoredShape(sample);
    if (clip) {
      const uint64_t h = clip->height ? clip->height : s.rank() == 4 ? s[1] : 0;
      const uint64_t w = clip->width ? clip->width : s.rank() == 4 ? s[2] : 0;
      return Shape{clip->frames, h, w, 3};
    }
    if (!transform) return s;
    return TransformedShape(s, *transform);
  }
};

// The frames of clip `c` of a video of `count` frames: `frames` frames
// `step` apart from a start that is random (from `seed`) or spread evenly
// over the video for the clips of an epoch. A video shorter than a clip
// repeats its last frame.
void ClipFrames(const VideoClipOptions& o, uint64_t count, uint32_t c,
                uint64_t seed, std::vector<uint64_t>& out) {
  const uint64_t span = static_cast<uint64_t>(o.frames - 1) * o.step + 1;
  const uint64_t room = count > span ? count - span : 0;  // last start
  uint64_t start = 0;
  if (o.sampling == VideoClipOptions::Sampling::kRandom) {
    // Lemire's multiply-shift: uniform enough for 2^64 >> room.
    start = static_cast<uint64_t>(
        (static_cast<unsigned __int128>(seed) * (room + 1)) >> 64);
  } else if (o.clips_per_video == 1) {
    start = room / 2;
  } else {
    start = room * c / (o.clips_per_video - 1);
  }
  out.clear();
  for (uint32_t i = 0; i < o.frames; ++i) {
    out.push_back(
        std::min(start + static_cast<uint64_t>(i) * o.step, count - 1));
  }
}

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

// A new batch buffer (made once per pipeline item, then reused). Huge pages
// were tried for these large buffers: with the kernel's synchronous
// compaction on madvise they made single-thread decoding slower.
std::unique_ptr<std::byte[], TensorBatch::BufferFree> AllocateBatchBuffer(
    uint64_t bytes) {
  auto* p = static_cast<std::byte*>(std::malloc(std::max<uint64_t>(bytes, 1)));
  // Fault the pages in here, on the feeder thread, rather than one by one
  // in the decoders' first pass over a new buffer. A store per page, not
  // memset(0): compilers turn malloc + memset(0) into calloc, which skips
  // fresh mapped pages and so faults nothing in.
  if (p != nullptr) {
    volatile std::byte* v = p;
    for (uint64_t i = 0; i < bytes; i += 4096) v[i] = std::byte{0};
  }
  return std::unique_ptr<std::byte[], TensorBatch::BufferFree>(p);
}

// Capacity for a batch needing `bytes`: ragged batches (images of varying
// size) differ from one to the next, so a buffer grows with 1/8 headroom
// rather than being replaced whenever a batch is a little larger.
uint64_t BatchCapacity(uint64_t bytes) { return bytes + bytes / 8; }

}  // namespace

void TensorBatch::BufferFree::operator()(std::byte* p) const { std::free(p); }

// ----------------------------------------------------------------- Batch --

Batch::Batch(Pipeline<LoaderBatchWork>::Lease lease)
    : lease_(std::make_unique<Pipeline<LoaderBatchWork>::Lease>(
          std::move(lease))) {}
Batch::Batch(Batch&&) noexcept = default;
Batch& Batch::operator=(Batch&&) noexcept = default;
Batch::~Batch() = default;
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

struct Loader::Impl {
  std::shared_ptr<const Dataset> dataset;
  LoaderOptions options;
  std::vector<LoadedTensor> tensors;
  size_t primary = 0;
  // Samples of the dataset, and clips of each video per epoch: the sampler
  // plans over n * clips_per_video entries; entry v is sample v % n, clip
  // v / n.
  uint64_t n = 0;
  uint32_t clips_per_video = 1;
  std::optional<Sampler> sampler;
  uint64_t end_epoch = 0;

  // Consumer side.
  SamplerPosition position;  // after the last batch returned
  std::optional<Pipeline<LoaderBatchWork>::Lease> held;  // next epoch's first
  bool done = false;
  std::shared_ptr<const EpochPlan> consumer_plan;

  // The memory budget of every run: batches in flight (the pipeline's item
  // costs) and the chunks they share. Batches and chunks may outlive the
  // loader, so they hold it too.
  std::shared_ptr<MemoryBudget> budget;
  // The current run (rebuilt by SetEpoch). `pipeline` is replaced under
  // run_mu, which metrics() takes to read it from other threads.
  std::shared_ptr<ChunkBufferPool> pool;
  std::unique_ptr<Pipeline<LoaderBatchWork>> pipeline;
  mutable std::mutex run_mu;

  // Feeder state (feeder thread only while a run is live).
  struct Feed {
    Pipeline<LoaderBatchWork>* pipeline = nullptr;  // the run being fed
    SamplerPosition next;                           // the batch to lay out next
    std::shared_ptr<const EpochPlan> plan;
    std::vector<std::unordered_map<size_t, std::shared_ptr<ExtentSlot>>>
        resident;
    std::vector<std::vector<uint64_t>> last_use;  // per tensor, per extent
    std::vector<size_t> scratch;
  } feed;

  // Counters.
  std::atomic<uint64_t> batches{0}, samples{0}, sample_bytes{0}, skipped{0},
      chunks_read{0}, bytes_read{0};

  ~Impl() { StopRun(); }

  void StopRun() {
    held.reset();
    std::unique_ptr<Pipeline<LoaderBatchWork>> old;
    {
      std::lock_guard<std::mutex> lock(run_mu);
      old = std::move(pipeline);
    }
    old.reset();  // cancels and waits for its work, outside run_mu
  }

  Status StartRun(SamplerPosition from);
  Result<bool> Fill(LoaderBatchWork& item);
  Status Fetch(LoaderBatchWork& item);
  void Load(size_t t, ExtentSlot& slot);
  Status Decode(LoaderBatchWork& item);
  Status DecodeSample(LoaderBatchWork& item, size_t k, size_t t,
                      ImageTransformer& transformer);
  void PlanEpoch(uint64_t epoch, uint64_t first_batch);
};

void Loader::Impl::PlanEpoch(uint64_t epoch, uint64_t first_batch) {
  auto plan =
      MakeEpochPlan(sampler->layout(), sampler->options(), epoch, first_batch);
  // Options were validated when the sampler was made.
  feed.plan = std::make_shared<const EpochPlan>(std::move(*plan));
  feed.next = {epoch, first_batch};
  // When each extent is read for the last time in this plan.
  if (options.shuffle == ShuffleMode::kFull) return;
  feed.last_use.resize(tensors.size());
  for (size_t t = 0; t < tensors.size(); ++t) {
    auto& last = feed.last_use[t];
    last.assign(tensors[t].extents.size(), UINT64_MAX);
    const EpochPlan& p = *feed.plan;
    for (uint64_t j = 0; j < p.num_batches(); ++j) {
      for (uint64_t v : p.batch(j)) last[tensors[t].ExtentOf(v % n)] = j;
    }
  }
}

Status Loader::Impl::StartRun(SamplerPosition from) {
  StopRun();
  if (budget == nullptr) {
    budget = std::make_shared<MemoryBudget>("loader", options.memory_budget);
  }
  // A few chunks' worth of free buffers: enough for the chunks being loaded
  // while others are released, a small share of the budget.
  pool = std::make_shared<ChunkBufferPool>(
      budget, std::min<uint64_t>(options.memory_budget / 8, 64ull << 20));
  feed.resident.assign(tensors.size(), {});
  PlanEpoch(from.epoch, from.batch);
  consumer_plan = feed.plan;
  position = from;
  done = from.epoch >= end_epoch;

  const int threads =
      options.threads > 0
          ? options.threads
          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int prefetch =
      options.prefetch_batches > 0 ? options.prefetch_batches : 2 * threads + 2;
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
        item->reads.resize(tensors.size());
        item->loads.resize(tensors.size());
        return item;
      });
  SHOAL_RETURN_IF_ERROR(
      next->AddStage({.name = "fetch", .concurrency = threads},
                     [this](LoaderBatchWork& item) { return Fetch(item); }));
  SHOAL_RETURN_IF_ERROR(
      next->AddStage({.name = "decode", .concurrency = threads},
                     [this](LoaderBatchWork& item) { return Decode(item); }));
  feed.pipeline = next.get();
  SHOAL_RETURN_IF_ERROR(next->Start(
      [this](uint64_t, LoaderBatchWork& item, uint64_t* cost) -> Result<bool> {
        SHOAL_ASSIGN_OR_RETURN(const bool more, Fill(item));
        *cost = item.cost;
        return more;
      }));
  std::lock_guard<std::mutex> lock(run_mu);
  pipeline = std::move(next);
  return Status::OK();
}

// Lays out the next batch of the plan in `item` (a recycled one) and waits
// for its memory. False after the last epoch.
Result<bool> Loader::Impl::Fill(LoaderBatchWork& item) {
  while (feed.next.batch >= feed.plan->epoch_batches) {
    if (feed.next.epoch + 1 >= end_epoch) return false;
    PlanEpoch(feed.next.epoch + 1, 0);
  }
  const EpochPlan& plan = *feed.plan;
  const uint64_t j = feed.next.batch - plan.first_batch;
  item.plan = feed.plan;
  item.epoch = feed.next.epoch;
  item.index = feed.next.batch;
  const auto samples = plan.batch(j);
  item.indices.resize(samples.size());
  item.clips.resize(samples.size());
  for (size_t k = 0; k < samples.size(); ++k) {
    item.indices[k] = samples[k] % n;
    item.clips[k] = static_cast<uint32_t>(samples[k] / n);
  }
  uint64_t cost = 0;
  for (size_t t = 0; t < tensors.size(); ++t) {
    const LoadedTensor& lt = tensors[t];
    TensorBatch& out = item.tensors[t];
    out.shapes_.resize(samples.size());
    out.offsets_.resize(samples.size() + 1);
    out.offsets_[0] = 0;
    out.ragged_ = false;
    for (size_t k = 0; k < samples.size(); ++k) {
      out.shapes_[k] = lt.OutputShape(item.indices[k]);
      if (k > 0 && out.shapes_[k] != out.shapes_[0]) out.ragged_ = true;
      out.offsets_[k + 1] =
          out.offsets_[k] + out.shapes_[k].num_elements() * lt.item_size;
    }
    out.bytes_ = out.offsets_.back();
    if (out.capacity_ < out.bytes_) {
      const uint64_t capacity =
          out.ragged_ ? BatchCapacity(out.bytes_) : out.bytes_;
      out.data_.reset();  // before the new one: keep the peak down
      out.data_ = AllocateBatchBuffer(capacity);
      out.capacity_ = out.data_ ? capacity : 0;
      if (!out.data_) {
        return ResourceExhausted(lt.where + ": no memory for a batch of " +
                                 std::to_string(out.bytes_) + " bytes");
      }
    }
    cost += out.capacity_;  // what the batch holds, headroom too

    auto& reads = item.reads[t];
    auto& loads = item.loads[t];
    reads.clear();
    loads.clear();
    if (options.shuffle == ShuffleMode::kFull) continue;
    auto& extents = feed.scratch;
    extents.clear();
    for (uint64_t s : item.indices) extents.push_back(lt.ExtentOf(s));
    std::sort(extents.begin(), extents.end());
    extents.erase(std::unique(extents.begin(), extents.end()), extents.end());
    auto& resident = feed.resident[t];
    for (size_t e : extents) {
      auto it = resident.find(e);
      std::shared_ptr<ExtentSlot> slot;
      if (it != resident.end()) {
        slot = it->second;
      } else {
        slot = std::make_shared<ExtentSlot>();
        slot->extent = e;
        slot->budget = budget;
        slot->charged = static_cast<uint64_t>(
            static_cast<double>(lt.extents[e].stored_bytes) * lt.expansion);
        // Admitted with this batch, held until the extent's last reader.
        feed.pipeline->AdmitWithItem(slot->charged);
        loads.push_back(slot.get());
        if (feed.last_use[t][e] != j) resident.emplace(e, slot);
      }
      if (feed.last_use[t][e] == j && it != resident.end()) resident.erase(it);
      reads.push_back(std::move(slot));
    }
  }
  item.cost = cost;
  ++feed.next.batch;
  return true;
}

// Loads the chunks this batch is the first to read (unless a later batch
// already did; see ExtentSlot).
Status Loader::Impl::Fetch(LoaderBatchWork& item) {
  for (size_t t = 0; t < tensors.size(); ++t) {
    for (ExtentSlot* slot : item.loads[t]) Load(t, *slot);
  }
  return Status::OK();
}

void Loader::Impl::Load(size_t t, ExtentSlot& slot) {
  std::call_once(slot.once, [&] {
    auto data = tensors[t].tensor->ReadExtent(
        slot.extent, [this](size_t bytes) { return pool->Allocate(bytes); });
    if (!data.ok()) {
      slot.status = data.status();
      return;
    }
    slot.data = std::move(*data);
    chunks_read.fetch_add(1, std::memory_order_relaxed);
    bytes_read.fetch_add(tensors[t].extents[slot.extent].stored_bytes,
                         std::memory_order_relaxed);
    const uint64_t actual = slot.data.memory_bytes();
    slot.budget->Charge(static_cast<int64_t>(actual) -
                        static_cast<int64_t>(slot.charged));
    slot.charged = actual;
  });
}

Status Loader::Impl::DecodeSample(LoaderBatchWork& item, size_t k, size_t t,
                                  ImageTransformer& transformer) {
  const LoadedTensor& lt = tensors[t];
  TensorBatch& out = item.tensors[t];
  const uint64_t sample = item.indices[k];
  const MutableByteSpan dest(out.data_.get() + out.offsets_[k],
                             out.offsets_[k + 1] - out.offsets_[k]);
  ByteSpan bytes;
  Shape shape;
  bool encoded = false;
  Buffer owned;  // kFull: the sample read on its own; a video's file
  const std::string* chunk_key = nullptr;  // for messages; built on error
  if (options.shuffle == ShuffleMode::kFull) {
    SHOAL_ASSIGN_OR_RETURN(const bool tiled, lt.tensor->IsTiled(sample));
    if (tiled) {
      // A tiled sample has no single stored form: read it whole.
      SHOAL_ASSIGN_OR_RETURN(Sample whole, lt.tensor->Read(sample));
      owned = std::move(whole.data);
      bytes = owned.span();
      shape = whole.shape;
    } else {
      SHOAL_ASSIGN_OR_RETURN(owned, lt.tensor->ReadStored(sample));
      bytes = owned.span();
      shape = lt.StoredShape(sample);
      encoded = !lt.tensor->spec().sample_compression.empty();
    }
  } else {
    const size_t e = lt.ExtentOf(sample);
    const auto& reads = item.reads[t];
    auto it = std::lower_bound(reads.begin(), reads.end(), e,
                               [](const std::shared_ptr<ExtentSlot>& s,
                                  size_t x) { return s->extent < x; });
    if (it == reads.end() || (*it)->extent != e) {
      return Internal("batch does not hold the chunk of sample " +
                      std::to_string(sample));
    }
    ExtentSlot& slot = **it;
    Load(t, slot);
    const std::string& key = lt.extents[e].chunk_key;
    if (!slot.status.ok()) {
      return slot.status.WithContext("sample " + std::to_string(sample));
    }
    const uint64_t j = sample - slot.data.first_sample();
    if (lt.clip) owned = slot.data.slice(j);  // the reader keeps it
    bytes = slot.data.bytes(j);
    shape = slot.data.shape(j);
    encoded = slot.data.encoded();
    if (!key.empty()) chunk_key = &key;
  }
  Status s;
  const uint64_t seed =
      SampleSeed(options.seed, item.epoch, item.clips[k] * n + sample);
  if (lt.clip) {
    std::string name = lt.where;
    if (chunk_key != nullptr) name += ": chunk '" + *chunk_key + "'";
    name += ": sample " + std::to_string(sample);
    // Errors of the reader carry the name already.
    thread_local std::vector<uint64_t> frames;
    const auto& probe = lt.probes[sample];
    ClipFrames(*lt.clip, probe->index.pts.size(), item.clips[k], seed, frames);
    auto reader = VideoReader::Open(std::move(owned), probe, std::move(name));
    if (!reader.ok()) return reader.status();
    return (*reader)->ReadFrames(
        frames, {.height = lt.clip->height, .width = lt.clip->width}, dest);
  }
  if (lt.transform) {
    if (!encoded) {
      s = Unimplemented(
          "image transforms decode stored images; this sample is stored as "
          "pixels (raw or tiled)");
    } else {
      auto codec = lt.tensor->ImageCodecFor(bytes);
      s = codec.ok()
              ? transformer.Apply(**codec, bytes, *lt.transform, seed, dest)
              : codec.status();
    }
  } else if (encoded) {
    s = lt.tensor->DecodeInto(bytes, shape, dest);
  } else if (bytes.size() != dest.size()) {
    s = Corruption("sample has " + std::to_string(bytes.size()) +
                   " bytes, its shape " + shape.ToString() + " needs " +
                   std::to_string(dest.size()));
  } else if (!dest.empty()) {
    std::memcpy(dest.data(), bytes.data(), dest.size());
  }
  if (s.ok()) return s;
  std::string context = lt.where;
  if (chunk_key != nullptr) context += ": chunk '" + *chunk_key + "'";
  return s.WithContext(context + ": sample " + std::to_string(sample));
}

Status Loader::Impl::Decode(LoaderBatchWork& item) {
  // One transformer per worker thread: its scratch buffers and scaler are
  // reused from sample to sample.
  thread_local ImageTransformer transformer;
  const size_t n = item.indices.size();
  item.failed.assign(n, 0);
  size_t failures = 0;
  for (size_t k = 0; k < n; ++k) {
    for (size_t t = 0; t < tensors.size(); ++t) {
      Status s = DecodeSample(item, k, t, transformer);
      if (s.ok()) continue;
      if (options.on_error == ErrorPolicy::kFail) {
        for (auto& reads : item.reads) reads.clear();
        return s;
      }
      item.failed[k] = 1;
      ++failures;
      break;
    }
  }
  // The chunks go as soon as no batch needs them.
  for (auto& reads : item.reads) reads.clear();
  if (failures > 0) {
    // kSkip: the batch closes ranks over the samples that failed.
    skipped.fetch_add(failures, std::memory_order_relaxed);
    for (TensorBatch& out : item.tensors) {
      size_t w = 0;
      uint64_t offset = 0;
      for (size_t k = 0; k < n; ++k) {
        if (item.failed[k]) continue;
        const uint64_t size = out.offsets_[k + 1] - out.offsets_[k];
        std::memmove(out.data_.get() + offset,
                     out.data_.get() + out.offsets_[k], size);
        out.shapes_[w] = out.shapes_[k];
        out.offsets_[w] = offset;
        offset += size;
        ++w;
      }
      out.shapes_.resize(w);
      out.offsets_.resize(w + 1);
      out.offsets_[w] = offset;
      out.bytes_ = offset;
      out.ragged_ = false;
      for (size_t k = 1; k < w; ++k)
        if (out.shapes_[k] != out.shapes_[0]) out.ragged_ = true;
    }
    size_t w = 0;
    for (size_t k = 0; k < n; ++k) {
      if (item.failed[k]) continue;
      item.indices[w] = item.indices[k];
      item.clips[w++] = item.clips[k];
    }
    item.indices.resize(w);
    item.clips.resize(w);
  }
  for (TensorBatch& out : item.tensors) {
    if (out.ragged_ || out.shapes_.empty()) {
      out.batch_shape_ = Shape{out.shapes_.size()};
      continue;
    }
    uint64_t dims[Shape::kMaxRank] = {out.shapes_.size()};
    const Shape& s = out.shapes_[0];
    const size_t rank = std::min<size_t>(s.rank(), Shape::kMaxRank - 1);
    for (size_t d = 0; d < rank; ++d) dims[d + 1] = s[d];
    out.batch_shape_ = Shape(std::span<const uint64_t>(dims, rank + 1));
  }
  return Status::OK();
}

Loader::Loader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Loader::~Loader() = default;

Result<std::unique_ptr<Loader>> Loader::Create(
    std::shared_ptr<const Dataset> dataset, LoaderOptions options,
    std::string_view state) {
  if (dataset == nullptr) return InvalidArgument("loader: no dataset");
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
      if (lt.tensor->htype() != HType::kImage ||
          (codec != "jpeg" && codec != "png" && codec != "image")) {
        return InvalidArgument(lt.where +
                               ": image transforms need an image tensor "
                               "stored as JPEG or PNG (sample_compression "
                               "jpeg, png or image)");
      }
      SHOAL_RETURN_IF_ERROR(ValidateImageTransform(it->second));
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

  // With several clips per video the plan covers the samples that many
  // times over, each round with the primary tensor's chunks.
  ChunkLayout layout;
  layout.num_samples = n * impl->clips_per_video;
  const LoadedTensor& primary = impl->tensors[impl->primary];
  for (uint64_t round = 0; round < impl->clips_per_video; ++round) {
    for (size_t e = 0; e < primary.extents.size(); ++e) {
      if (primary.extents[e].first_sample >= n) break;
      layout.chunk_ends.push_back(round * n +
                                  std::min(primary.extent_ends[e], n));
      layout.chunk_bytes.push_back(primary.extents[e].stored_bytes);
    }
  }
  if (n == 0) layout.chunk_ends.clear(), layout.chunk_bytes.clear();
  SamplerOptions sampler_options{.batch_size = options.batch_size,
                                 .drop_last = options.drop_last,
                                 .shuffle = options.shuffle,
                                 .shuffle_buffer = options.shuffle_buffer,
                                 .seed = options.seed,
                                 .rank = options.rank,
                                 .world_size = options.world_size};
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
  }
  m.batches = s.batches.load(std::memory_order_relaxed);
  m.samples = s.samples.load(std::memory_order_relaxed);
  m.sample_bytes = s.sample_bytes.load(std::memory_order_relaxed);
  m.skipped_samples = s.skipped.load(std::memory_order_relaxed);
  m.chunks_read = s.chunks_read.load(std::memory_order_relaxed);
  m.bytes_read = s.bytes_read.load(std::memory_order_relaxed);
  m.memory_budget = s.options.memory_budget;
  if (s.budget) {
    m.memory_in_use =
        static_cast<uint64_t>(std::max<int64_t>(0, s.budget->in_use()));
    m.memory_peak =
        static_cast<uint64_t>(std::max<int64_t>(0, s.budget->peak()));
  }
  return m;
}

}  // namespace shoal
