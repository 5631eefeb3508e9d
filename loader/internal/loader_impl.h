// Loader internals shared by loader.cc (creating, running and consuming
// the loader) and loader_work.cc (the work of one batch: laying it out,
// fetching its chunks, decoding its samples). Not installed.
#ifndef SHOAL_LOADER_INTERNAL_LOADER_IMPL_H_
#define SHOAL_LOADER_INTERNAL_LOADER_IMPL_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>
#include <unordered_map>
#include <vector>

#include "base/memory.h"
#include "base/random.h"
#include "codecs/image_codec.h"
#include "loader/controller.h"
#include "loader/loader.h"
#include "loader/video_sample.h"
#include "video/video.h"

namespace shoal {
namespace loader_internal {

// Buffers that chunks are read or decompressed into, recycled from chunk to
// chunk. Fresh memory for every chunk made the kernel's page work (mapping,
// zeroing, unmapping 8 MiB per chunk) the largest cost of loading small raw
// samples, and 13 % of loading JPEGs over s3:// (perf: clear_page_erms
// under madvise). Small chunks (below kMinBytes) come from the heap but are
// recycled too: a fresh heap buffer for each one, freed by another thread
// than the one that allocated it, left malloc's arenas fragmented, and a
// long-lived reader's RSS grew with the dataset's chunk count (soak test:
// 190 MiB of arenas for 40 MB ever live). Sizes are rounded up (kGranule,
// kSmallGranule), so that a buffer freed by one chunk fits the next of
// about the same size; a buffer's capacity includes the rounding, so its
// holder charges it. Free buffers are charged to the budget like chunks, so
// the pool is part of the memory budget; it keeps at most `max_free` bytes.
class ChunkBufferPool : public std::enable_shared_from_this<ChunkBufferPool> {
 public:
  static constexpr size_t kMinBytes = 1 << 20;  // mapped from here on
  static constexpr size_t kGranule = 1 << 20;
  static constexpr size_t kSmallGranule = 4 << 10;

  ChunkBufferPool(std::shared_ptr<MemoryBudget> budget, size_t max_free)
      : budget_(std::move(budget)), max_free_(max_free) {}
  ~ChunkBufferPool() {
    for (const Region& r : free_) Release(r);
    budget_->Charge(-static_cast<int64_t>(free_bytes_));
  }

  Result<MutableBuffer> Allocate(size_t bytes) {
    const bool small = bytes < kMinBytes;
    Region region{nullptr, 0, small};
    {
      std::lock_guard<std::mutex> lock(mu_);
      // The smallest free buffer that holds `bytes` without wasting half.
      size_t best = free_.size();
      for (size_t k = 0; k < free_.size(); ++k) {
        const size_t size = free_[k].size;
        if (free_[k].small == small && size >= bytes && size / 2 <= bytes &&
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
      const size_t granule = small ? kSmallGranule : kGranule;
      const size_t size =
          std::max((bytes + granule - 1) / granule * granule, granule);
      std::byte* p =
          small ? static_cast<std::byte*>(::operator new(
                      size, std::align_val_t(kAlignment), std::nothrow))
                : MapPages(size);
      if (p == nullptr) {
        return ResourceExhausted("cannot allocate " + std::to_string(size) +
                                 " bytes for a chunk");
      }
      region = {p, size, small};
    }
    std::weak_ptr<ChunkBufferPool> pool = weak_from_this();
    std::shared_ptr<void> owner(region.data, [pool, region](void*) {
      if (auto live = pool.lock()) {
        live->Return(region);
      } else {
        Release(region);
      }
    });
    return MutableBuffer::Wrap(std::move(owner), region.data, bytes,
                               region.size);
  }
  size_t free_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return free_bytes_;
  }

 private:
  static constexpr size_t kAlignment = 64;  // as MutableBuffer's
  struct Region {
    std::byte* data;
    size_t size;
    bool small;  // from the heap, else mapped
  };

  static void Release(const Region& r) {
    if (r.small) {
      ::operator delete(r.data, std::align_val_t(kAlignment));
    } else {
      UnmapPages(r.data, r.size);
    }
  }

  void Return(Region region) {
    // Kept while the budget has room for it, so free buffers never crowd
    // out chunks being loaded.
    const uint64_t limit = budget_->limit();
    const bool room =
        limit == 0 || budget_->in_use() + static_cast<int64_t>(region.size) <=
                          static_cast<int64_t>(limit);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (room && free_bytes_ + region.size <= max_free_) {
        free_.push_back(region);
        free_bytes_ += region.size;
        region.data = nullptr;
      }
    }
    if (region.data == nullptr) {
      budget_->Charge(static_cast<int64_t>(region.size));
    } else {
      Release(region);
    }
  }

  std::shared_ptr<MemoryBudget> budget_;
  const size_t max_free_;
  std::mutex mu_;
  std::vector<Region> free_;
  size_t free_bytes_ = 0;
};

// Batch buffers not in use, per loaded tensor. A batch's buffers come back
// here when the caller lets go of it (~Batch), not when its pipeline item
// is next reused: an item can sit idle while the feeder fills another, and
// a buffer kept by an idle item would make the other allocate its own. The
// buffers stay charged to the loader's budget (they are its memory) and
// are reused best-fit. Shared by the loader and its batches, which may
// outlive it. Locked per batch, not per sample.
class BatchBufferPool {
 public:
  explicit BatchBufferPool(size_t tensors)
      : free_(tensors), alive_(tensors, 0) {}

  void Put(size_t t, MutableBuffer buffer) {
    if (buffer.size() == 0) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      free_[t].push_back(std::move(buffer));
      ++puts_;
    }
    returned_.notify_all();
  }
  // The smallest free buffer of tensor t holding `bytes`, or none. With
  // `drop_smaller`, when none does, the largest smaller one is freed, since
  // the buffer the caller will allocate instead takes its place.
  std::optional<MutableBuffer> Take(size_t t, uint64_t bytes,
                                    bool drop_smaller) {
    // Destroyed after the lock is released: freeing a buffer calls Freed().
    MutableBuffer dropped;
    std::lock_guard<std::mutex> lock(mu_);
    auto& list = free_[t];
    size_t best = list.size(), largest = list.size();
    for (size_t k = 0; k < list.size(); ++k) {
      const size_t size = list[k].size();
      if (size >= bytes) {
        if (best == list.size() || size < list[best].size()) best = k;
      } else if (largest == list.size() || size > list[largest].size()) {
        largest = k;
      }
    }
    const size_t pick =
        best != list.size() ? best : (drop_smaller ? largest : list.size());
    if (pick == list.size()) return std::nullopt;
    MutableBuffer out = std::move(list[pick]);
    list[pick] = std::move(list.back());
    list.pop_back();
    if (pick != best) {
      dropped = std::move(out);  // too small: freed
      return std::nullopt;
    }
    return out;
  }
  // Buffers of tensor t that exist but are not free: in batches being made
  // or with the caller, so they come back.
  size_t Outstanding(size_t t) {
    std::lock_guard<std::mutex> lock(mu_);
    return alive_[t] - free_[t].size();
  }
  void Made(size_t t) {
    std::lock_guard<std::mutex> lock(mu_);
    ++alive_[t];
  }
  void Freed(size_t t) {
    std::lock_guard<std::mutex> lock(mu_);
    --alive_[t];
  }
  // Waits until a buffer is put back, Stop(), or `timeout`; false unless a
  // buffer came back.
  bool WaitForReturn(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t seen = puts_;
    return returned_.wait_for(lock, timeout, [&] {
      return stop_ || puts_ != seen;
    }) && !stop_;
  }
  void Stop(bool stop) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = stop;
    }
    returned_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable returned_;
  std::vector<std::vector<MutableBuffer>> free_;
  std::vector<size_t> alive_;
  uint64_t puts_ = 0;
  bool stop_ = false;
};

// One extent (chunk) of one tensor, loaded by the fetch stage for the first
// batch that reads it and shared by every batch that does; freed (and its
// bytes returned) when the last of them is decoded.
//
// Fetch runs in parallel, so the batch that first needs a chunk may find its
// fetch not yet run (or running) when another batch gets to it: whichever
// fetch claims it first loads it, together with the other chunks it
// claimed (one round trip over a network), and the others wait for that
// running load, which never waits on anything else.
struct ExtentSlot {
  size_t extent = 0;
  ExtentData data;  // written once, by the fetch that claimed the slot
  Status status;
  // Charged to the loader's budget from the batch that first reads the
  // extent until the last one is decoded (outside any one batch's cost).
  std::shared_ptr<MemoryBudget> budget;
  uint64_t charged = 0;
  ~ExtentSlot() {
    if (budget) budget->Charge(-static_cast<int64_t>(charged));
  }
  // True for the one caller that is to load the extent.
  bool Claim() {
    int empty = kEmpty;
    return state_.compare_exchange_strong(empty, kLoading,
                                          std::memory_order_acq_rel);
  }
  // After `data` and `status` are written, by the claimer.
  void Publish() {
    state_.store(kReady, std::memory_order_release);
    state_.notify_all();
  }
  // Until Publish(); `data` and `status` may be read after.
  void Wait() const {
    for (int s = state_.load(std::memory_order_acquire); s != kReady;
         s = state_.load(std::memory_order_acquire)) {
      state_.wait(s, std::memory_order_acquire);
    }
  }

 private:
  enum : int { kEmpty, kLoading, kReady };
  std::atomic<int> state_{kEmpty};
};

// The shape a transform gives an image stored as `stored` ([H, W, C]),
// without reading its header: the channel count follows the stored one.
inline Shape TransformedShape(const Shape& stored, const ImageTransform& t) {
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
  // An image tensor of pixels under a transform. With `regions` (samples
  // of a block or more) each sample's crop is read on its own
  // (Tensor::ReadRegionInto) and no chunk is held; small samples are cut
  // from their chunk in memory.
  bool pixels = false;
  bool regions = false;
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

}  // namespace loader_internal

using loader_internal::BatchBufferPool;
using loader_internal::ChunkBufferPool;
using loader_internal::ExtentSlot;
using loader_internal::LoadedTensor;

// The seed of a sample's random transform: a function of the run's seed,
// the epoch and the sample only, so any thread count draws the same crops.
inline uint64_t SampleSeed(uint64_t seed, uint64_t epoch, uint64_t sample) {
  return SplitMix64::Mix(
      SplitMix64::Mix(SplitMix64::Mix(seed + SplitMix64::kGolden) ^ epoch) ^
      sample);
}

// The clips of one video in one epoch when it gives several
// (clips_per_video > 1). The first batch to decode any of them decodes
// them all in one forward pass, the clip it holds straight into its batch
// and the others into `clips`, so the decoder goes through the video once
// rather than once per clip (from the keyframe before each). The batches
// holding the others copy theirs out. Every path gives the same bytes (the
// decode is frame-exact), so who decodes what never changes a batch.
//
// The feeder hands a share to every batch that holds a clip of the video;
// the share is freed with its last holder. States: kIdle (nobody has
// decoded), kDecoding (a batch is decoding: it never waits on anything, so
// others may wait for it), kReady (`clips` holds every clip but
// `producer_clip`), kAbsent (the decode failed: each batch decodes its own
// clip and gets its own error).
struct ClipShare {
  enum State : uint32_t { kIdle, kDecoding, kReady, kAbsent };
  std::atomic<uint32_t> state{kIdle};
  uint32_t producer_clip = 0;
  uint64_t clip_bytes = 0;
  // Charged to the loader's budget while it exists. Allocated per video,
  // not pooled: a pool would hold memory the budget no longer sees.
  MutableBuffer clips;
  // Where clip c is in `clips` (c != producer_clip).
  uint64_t Offset(uint32_t c) const {
    return (c < producer_clip ? c : c - 1) * clip_bytes;
  }
};

// The work item of one batch, recycled through the pipeline.
struct LoaderBatchWork {
  std::shared_ptr<const EpochPlan> plan;
  uint64_t epoch = 0;
  uint64_t index = 0;
  std::vector<uint64_t> indices;  // dataset indices
  std::vector<uint32_t> clips;    // clip of each sample's video
  // Per tensor, per sample: the share of the sample's video (clip tensors
  // with clips_per_video > 1; see ClipShare), else empty.
  std::vector<std::vector<std::shared_ptr<ClipShare>>> shares;
  // (sample, tensor) of clips whose share another batch was decoding: the
  // decode stage comes back to them after the rest of the batch.
  std::vector<std::pair<size_t, size_t>> deferred;
  std::vector<TensorBatch> tensors;
  // Per tensor: the extents the batch reads (sorted by extent).
  std::vector<std::vector<std::shared_ptr<ExtentSlot>>> reads;
  // Per tensor, per_sample_reads only: the samples' stored bytes, read by
  // the fetch stage and charged to the budget until decoded.
  std::vector<StoredSamples> stored;
  uint64_t stored_charged = 0;
  void ReleaseStored() {
    for (StoredSamples& s : stored) s.samples.clear();
    if (stored_charged == 0) return;
    budget->Charge(-static_cast<int64_t>(stored_charged));
    stored_charged = 0;
  }
  // Budget bytes admitted with this batch for the buffers the fetch stage
  // is about to allocate (TensorBatch::want_capacity_). The buffers charge
  // the budget themselves for as long as they exist, so the reservation is
  // handed back once they do, or when the item is reused or destroyed
  // without having made them (a run stopped in between).
  std::shared_ptr<MemoryBudget> budget;
  uint64_t reserved = 0;
  std::shared_ptr<BatchBufferPool> buffers;  // where ~Batch puts them back
  void Unreserve() {
    if (reserved == 0) return;
    budget->Charge(-static_cast<int64_t>(reserved));
    reserved = 0;
  }
  LoaderBatchWork() = default;
  LoaderBatchWork(const LoaderBatchWork&) = delete;
  LoaderBatchWork& operator=(const LoaderBatchWork&) = delete;
  ~LoaderBatchWork() {
    Unreserve();
    ReleaseStored();
  }
  // What the decode stage reads from: chunks, stored samples and shares.
  void ReleaseInputs() {
    for (auto& r : reads) r.clear();
    for (auto& s : shares) s.clear();
    ReleaseStored();
  }
  // Scratch of the fetch and decode stages.
  std::vector<ExtentSlot*> claimed;
  std::vector<size_t> extents;
  std::vector<uint8_t> failed;
};

struct Loader::Impl {
  std::shared_ptr<const Dataset> dataset;
  LoaderOptions options;
  std::vector<LoadedTensor> tensors;
  size_t primary = 0;
  // Samples of the dataset, and clips of each video per epoch: the sampler
  // plans over n * clips_per_video entries; entry v is sample
  // v / clips_per_video, clip v % clips_per_video, so the clips of a video
  // are neighbours in its chunk and meet in the shuffle buffer (ClipShare
  // lets one decode serve them).
  uint64_t n = 0;
  uint64_t typical_batch_bytes = 0;
  uint64_t shuffle_buffer = 0;    // in effect (see FitShuffleBuffer)
  bool per_sample_reads = false;  // see Loader::per_sample_reads()
  // Every loaded tensor's samples are copied, not decoded, and are small
  // (Decode prefetches their bytes).
  bool small_samples = false;
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
  // Batch buffers are counted here too (for metrics); their charge to
  // `budget` is the reservation they were admitted with (GrowBatchBuffer).
  std::shared_ptr<MemoryBudget> batch_budget;
  std::shared_ptr<BatchBufferPool> buffers;
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
    EpochPlan::Cursor cursor;       // at batch next.batch of `plan`
    std::vector<uint64_t> samples;  // the batch being laid out
    std::vector<std::unordered_map<size_t, std::shared_ptr<ExtentSlot>>>
        resident;
    std::vector<std::vector<uint64_t>> last_use;  // per tensor, per extent
    std::vector<size_t> scratch;
    // The shares of the videos of this epoch with clips still to lay out,
    // by tensor and sample, with how many clips were laid out. Cleared
    // with each epoch (a video whose other clips fall to another rank
    // would hold its share until then).
    struct OpenShare {
      std::shared_ptr<ClipShare> share;
      uint32_t seen = 0;
    };
    std::vector<std::unordered_map<uint64_t, OpenShare>> shares;
  } feed;

  // Counters.
  std::atomic<uint64_t> batches{0}, samples{0}, sample_bytes{0}, skipped{0},
      chunks_read{0}, bytes_read{0}, sample_reads{0}, frames_decoded{0},
      frames_skipped{0}, frames_returned{0}, clips_shared{0}, split_decodes{0};
  // Video decodes running now (see DecodeFrames).
  std::atomic<int> active_decodes{0};

  // The fetch workers: pinned (LoaderOptions::fetch_workers) or adapted by
  // `control` from the consumer's thread (Adapt), between batches, so the
  // controller needs no thread of its own. The count carries over to the
  // next run (SetEpoch): the store is the same.
  int fetch_workers = 0;
  std::optional<ConcurrencyController> control;
  std::chrono::steady_clock::time_point run_start;
  double last_adapt = 0;
  std::vector<Decision> decisions;  // under run_mu

  ~Impl() {
    StopRun();
    // Decoders kept for the next clip hold frame pools charged to `budget`;
    // nothing else would ever reuse them.
    ReleaseIdleDecoders(budget.get());
  }

  void StopRun() {
    if (buffers) buffers->Stop(true);  // a feeder waiting for one gives up
    held.reset();
    std::unique_ptr<Pipeline<LoaderBatchWork>> old;
    {
      std::lock_guard<std::mutex> lock(run_mu);
      old = std::move(pipeline);
    }
    old.reset();  // cancels and waits for its work, outside run_mu
  }

  Status StartRun(SamplerPosition from);
  void Adapt();
  Result<bool> Fill(LoaderBatchWork& item);
  Status Fetch(LoaderBatchWork& item);
  Status GrowBatchBuffer(LoaderBatchWork& item, size_t t);
  void Load(LoaderBatchWork& item, size_t t);
  Status ReadSamples(LoaderBatchWork& item);
  Status Decode(LoaderBatchWork& item);
  void Prefetch(LoaderBatchWork& item, size_t k);
  ExtentSlot* HeldSlot(LoaderBatchWork& item, size_t t, uint64_t sample);
  // A clip of a video tensor into `dest`, through the item's share of the
  // video when it has one. When another batch is decoding the share, the
  // clip is put on item.deferred unless `wait`.
  Status DecodeClip(LoaderBatchWork& item, size_t k, size_t t, Buffer file,
                    std::string name, MutableByteSpan dest, bool wait);
  void ShareClips(LoaderBatchWork& item);
  Status DecodeFrames(Buffer file,
                      const std::shared_ptr<const VideoProbe>& probe,
                      const std::string& name,
                      const VideoReadOptions& read_options,
                      std::span<const uint64_t> frames, size_t per_clip,
                      MutableByteSpan first, MutableByteSpan rest);
  // `wait`: see DecodeClip.
  Status DecodeSample(LoaderBatchWork& item, size_t k, size_t t,
                      ImageTransformer& transformer, bool wait);
  Status CropPixels(const LoadedTensor& lt, uint64_t sample, const Shape& shape,
                    ByteSpan held, uint64_t seed, ImageTransformer& transformer,
                    MutableByteSpan dest);
  void PlanEpoch(uint64_t epoch, uint64_t first_batch);
};

}  // namespace shoal

#endif  // SHOAL_LOADER_INTERNAL_LOADER_IMPL_H_
