#include "loader/sampler.h"

#include <algorithm>
#include <memory>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "base/random.h"

namespace shoal {
namespace {

constexpr uint64_t kNoBatch = ~uint64_t{0};

// Stream numbers of StreamKey; stored plans depend on them.
enum RandomStream : uint64_t {
  kChunkPermutation = 1,
  kFullPermutation = 2,
  kShuffleBuffer = 3,
};

// Each step is a bijection of k, so changing any one of (seed, epoch,
// stream, rank) changes the key, and SplitMix64 streams from different keys
// are, for shuffling, independent.
uint64_t StreamKey(uint64_t seed, uint64_t epoch, RandomStream stream,
                   uint64_t rank) {
  uint64_t k = SplitMix64::Mix(seed + SplitMix64::kGolden);
  k = SplitMix64::Mix(k ^ epoch);
  k = SplitMix64::Mix(k ^ stream);
  return SplitMix64::Mix(k ^ rank);
}

template <typename T>
void FisherYates(std::span<T> items, SplitMix64& rng) {
  for (size_t i = items.size(); i > 1; --i) {
    std::swap(items[i - 1], items[rng.Bounded(i)]);
  }
}

// Rank `rank`'s part [begin, end) of the global order G (file comment, 2).
struct Segment {
  uint64_t begin = 0;
  uint64_t end = 0;
};

Segment RankSegment(uint64_t n, const SamplerOptions& options) {
  const uint64_t world = options.world_size;
  const uint64_t rank = options.rank;
  if (options.drop_last) {
    const uint64_t per_rank =
        n / world / options.batch_size * options.batch_size;
    return {rank * per_rank, (rank + 1) * per_rank};
  }
  const uint64_t quotient = n / world;
  const uint64_t remainder = n % world;
  const uint64_t begin = rank * quotient + std::min(rank, remainder);
  return {begin, begin + quotient + (rank < remainder ? 1 : 0)};
}

// The samples of G in `segment` for kChunk: the permuted chunks, each in
// index order, produced one at a time (so that the stream is never held
// whole: it would cost 8 bytes a sample).
class ChunkStream {
 public:
  ChunkStream(const ChunkLayout& layout, std::span<const uint32_t> chunks,
              Segment segment)
      : layout_(&layout), chunks_(chunks), segment_(segment) {
    Advance();
  }
  // The next sample; precondition: fewer than the segment's size taken.
  uint64_t Next() {
    while (p_ >= to_) {
      position_ += chunk_size_;
      ++k_;
      Advance();
    }
    return begin_ + (p_++) - position_;
  }

 private:
  // Sets up chunk k_ (whose first sample sits at position_ in G).
  void Advance() {
    if (k_ >= chunks_.size()) return;
    begin_ = layout_->ChunkBegin(chunks_[k_]);
    chunk_size_ = layout_->ChunkEnd(chunks_[k_]) - begin_;
    p_ = std::max(position_, segment_.begin);
    to_ = std::min(position_ + chunk_size_, segment_.end);
  }

  const ChunkLayout* layout_;
  std::span<const uint32_t> chunks_;
  Segment segment_;
  size_t k_ = 0;
  uint64_t position_ = 0, begin_ = 0, chunk_size_ = 0, p_ = 0, to_ = 0;
};

}  // namespace

namespace sampler_internal {

// Everything a cursor needs to produce a plan's order (file comment):
// positions count the rank's order from its start, the plan covers
// positions [start, end) and batch k of the epoch ends at EndOf(k + 1).
struct PlanOrder {
  ShuffleMode mode = ShuffleMode::kNone;
  ChunkLayout layout;  // the chunks holding samples below num_samples
  Segment segment;
  uint64_t batch_size = 1;
  uint64_t first_batch = 0;
  uint64_t epoch_batches = 0;
  uint64_t start = 0;
  // kFull: the plan's samples, 32-bit while the dataset allows.
  std::vector<uint32_t> permutation32;
  std::vector<uint64_t> permutation64;
  // kChunk: the permuted chunks, the buffer's capacity and its stream key.
  std::vector<uint32_t> chunk_order;
  uint64_t capacity = 0;
  uint64_t buffer_key = 0;

  uint64_t size() const { return segment.end - segment.begin; }
  // Batch ends are min(k * b, m): full batches, then the short (or empty)
  // last one; the file comment shows that fits the count. k * b is only
  // formed when it does not pass m, so it cannot overflow.
  uint64_t EndOf(uint64_t batches) const {
    return batches > size() / batch_size ? size() : batches * batch_size;
  }
};

// A cursor's position in the order, with the shuffle buffer for kChunk.
struct CursorState {
  explicit CursorState(std::shared_ptr<const PlanOrder> o)
      : order(std::move(o)),
        position(order->start),
        batch(order->first_batch),
        rng(order->buffer_key) {
    if (order->mode != ShuffleMode::kChunk) return;
    stream.emplace(order->layout, order->chunk_order, order->segment);
    if (order->capacity > 1) {
      slots.resize(order->capacity);
      for (uint64_t& slot : slots) slot = stream->Next();
    }
    // A resumed plan replays the buffer up to its first sample.
    for (uint64_t p = 0; p < order->start; ++p) BufferNext(p);
  }

  // The shuffle buffer's output at rank-order position p (taken in order).
  uint64_t BufferNext(uint64_t p) {
    const uint64_t n = order->size();
    const uint64_t c = order->capacity;
    if (c <= 1) return stream->Next();
    if (p < n - c) {
      uint64_t& slot = slots[rng.Bounded(c)];
      const uint64_t out = slot;
      slot = stream->Next();
      return out;
    }
    const uint64_t size = n - p;
    uint64_t& slot = slots[rng.Bounded(size)];
    const uint64_t out = slot;
    slot = slots[size - 1];
    return out;
  }

  uint64_t Next() {
    const uint64_t p = position++;
    switch (order->mode) {
      case ShuffleMode::kNone:
        return order->segment.begin + p;
      case ShuffleMode::kFull:
        return order->permutation64.empty()
                   ? order->permutation32[p - order->start]
                   : order->permutation64[p - order->start];
      case ShuffleMode::kChunk:
        return BufferNext(p);
    }
    return 0;
  }

  std::shared_ptr<const PlanOrder> order;
  uint64_t position;  // in the rank's order
  uint64_t batch;     // of the epoch
  SplitMix64 rng;
  std::optional<ChunkStream> stream;
  std::vector<uint64_t> slots;
};

}  // namespace sampler_internal

namespace {

using sampler_internal::PlanOrder;

// The order of a plan of `epoch` from batch `first_batch` (file comment).
std::shared_ptr<const PlanOrder> MakeOrder(const ChunkLayout& layout,
                                           const SamplerOptions& options,
                                           uint64_t epoch,
                                           uint64_t first_batch) {
  auto order = std::make_shared<PlanOrder>();
  order->mode = options.shuffle;
  order->layout.num_samples = layout.num_samples;
  const uint64_t chunks = layout.UsedChunks();
  order->layout.chunk_ends.assign(layout.chunk_ends.begin(),
                                  layout.chunk_ends.begin() + chunks);
  order->segment = RankSegment(layout.num_samples, options);
  order->batch_size = options.batch_size;
  order->first_batch = first_batch;
  order->epoch_batches = BatchesPerEpoch(layout.num_samples, options);
  order->start = order->EndOf(first_batch);
  const Segment& segment = order->segment;
  const uint64_t n = layout.num_samples;
  // Every rank draws the same global permutation and keeps its part.
  auto full = [&]<typename T>(std::vector<T>& kept) {
    std::vector<T> all(n);
    std::iota(all.begin(), all.end(), T{0});
    SplitMix64 rng(StreamKey(options.seed, epoch, kFullPermutation, 0));
    FisherYates(std::span<T>(all), rng);
    all.resize(segment.end);
    all.erase(all.begin(), all.begin() + segment.begin + order->start);
    all.shrink_to_fit();
    kept = std::move(all);
  };
  switch (options.shuffle) {
    case ShuffleMode::kNone:
      break;
    case ShuffleMode::kFull:
      if (n <= uint64_t{UINT32_MAX}) {
        full(order->permutation32);
      } else {
        full(order->permutation64);
      }
      break;
    case ShuffleMode::kChunk: {
      order->chunk_order.resize(chunks);
      std::iota(order->chunk_order.begin(), order->chunk_order.end(), 0u);
      SplitMix64 rng(StreamKey(options.seed, epoch, kChunkPermutation, 0));
      FisherYates(std::span<uint32_t>(order->chunk_order), rng);
      order->capacity = std::min(options.shuffle_buffer, order->size());
      order->buffer_key =
          StreamKey(options.seed, epoch, kShuffleBuffer, options.rank);
      break;
    }
  }
  return order;
}

// Fills plan.chunk_uses (but their last_batch and num_samples) by walking
// the plan; returns each chunk's last batch and sample count.
struct ChunkReads {
  std::vector<uint64_t> last, count;
};

ChunkReads ListChunkUses(const ChunkLayout& layout, EpochPlan& plan) {
  const uint64_t num_chunks = layout.UsedChunks();
  ChunkReads reads{std::vector<uint64_t>(num_chunks, kNoBatch),
                   std::vector<uint64_t>(num_chunks, 0)};
  std::vector<uint8_t> seen(num_chunks, 0);
  // The chunk of each sample. A binary search per sample took most of the
  // time of a full permutation's plan (it jumps every time, missing the
  // cache) and a sample-to-chunk table costs 4 bytes a sample: instead, the
  // chunk at the start of every 2^shift samples, with buckets about half a
  // mean chunk long (O(chunks) entries), and a step or two forward from it.
  const uint64_t n = layout.num_samples;
  int shift = 0;
  while (num_chunks > 0 && (n >> (shift + 1)) >= 2 * num_chunks) ++shift;
  std::vector<uint32_t> bucket_chunk(n == 0 ? 0 : ((n - 1) >> shift) + 1);
  for (uint64_t b = 0, c = 0; b < bucket_chunk.size(); ++b) {
    while (layout.chunk_ends[c] <= (b << shift)) ++c;
    bucket_chunk[b] = static_cast<uint32_t>(c);
  }
  auto chunk_of_sample = [&](uint64_t sample) -> uint32_t {
    uint32_t c = bucket_chunk[sample >> shift];
    while (layout.chunk_ends[c] <= sample) ++c;
    return c;
  };
  plan.chunk_uses.clear();
  EpochPlan::Cursor cursor = plan.Batches();
  std::vector<uint64_t> batch;
  std::vector<uint32_t> fresh;
  for (uint64_t j = 0; cursor.Next(batch); ++j) {
    fresh.clear();
    for (uint64_t sample : batch) {
      const uint32_t chunk = chunk_of_sample(sample);
      ++reads.count[chunk];
      if (reads.last[chunk] == j) continue;  // seen in this batch
      if (!seen[chunk]) fresh.push_back(chunk), seen[chunk] = 1;
      reads.last[chunk] = j;
    }
    // (first_batch, chunk) order: the chunks new in a batch, ascending.
    std::sort(fresh.begin(), fresh.end());
    for (uint32_t chunk : fresh) plan.chunk_uses.push_back({chunk, j, 0, 0});
  }
  return reads;
}

// Completes plan.chunk_uses and sets the plan's maxima. Live chunks only
// grow at a chunk's first batch and decoded samples only grow there (they
// shrink as batches go out), so the maxima are found at first batches.
void PlanChunkLifetimes(const ChunkLayout& layout, const ChunkReads& reads,
                        EpochPlan& plan) {
  std::vector<std::pair<uint64_t, uint64_t>> ends;  // (last batch, bytes)
  ends.reserve(plan.chunk_uses.size());
  auto bytes_of = [&](uint32_t chunk) {
    return layout.chunk_bytes.empty() ? 0 : layout.chunk_bytes[chunk];
  };
  for (ChunkUse& use : plan.chunk_uses) {
    use.last_batch = reads.last[use.chunk];
    use.num_samples = reads.count[use.chunk];
    ends.emplace_back(use.last_batch, bytes_of(use.chunk));
  }
  std::sort(ends.begin(), ends.end());
  const PlanOrder& order = *plan.order;
  uint64_t live = 0, live_bytes = 0, fetched = 0;
  size_t next_end = 0;
  plan.max_live_chunks = plan.max_live_bytes = plan.max_decoded_samples = 0;
  for (size_t i = 0; i < plan.chunk_uses.size();) {
    const uint64_t j = plan.chunk_uses[i].first_batch;
    for (; i < plan.chunk_uses.size() && plan.chunk_uses[i].first_batch == j;
         ++i) {
      ++live;
      live_bytes += bytes_of(plan.chunk_uses[i].chunk);
      fetched += plan.chunk_uses[i].num_samples;
    }
    for (; next_end < ends.size() && ends[next_end].first < j; ++next_end) {
      --live;
      live_bytes -= ends[next_end].second;
    }
    const uint64_t emitted = order.EndOf(order.first_batch + j) - order.start;
    plan.max_live_chunks = std::max(plan.max_live_chunks, live);
    plan.max_live_bytes = std::max(plan.max_live_bytes, live_bytes);
    plan.max_decoded_samples =
        std::max(plan.max_decoded_samples, fetched - emitted);
  }
}

// MakeEpochPlan on validated inputs.
EpochPlan BuildPlan(const ChunkLayout& layout, const SamplerOptions& options,
                    uint64_t epoch, uint64_t first_batch) {
  EpochPlan plan;
  plan.epoch = epoch;
  plan.first_batch = first_batch;
  plan.epoch_batches = BatchesPerEpoch(layout.num_samples, options);
  plan.order = MakeOrder(layout, options, epoch, first_batch);
  plan.num_samples = plan.order->size() - plan.order->start;
  const ChunkReads reads = ListChunkUses(layout, plan);
  PlanChunkLifetimes(layout, reads, plan);
  return plan;
}

}  // namespace

std::string_view ShuffleModeName(ShuffleMode mode) {
  switch (mode) {
    case ShuffleMode::kNone:
      return "none";
    case ShuffleMode::kChunk:
      return "chunk";
    case ShuffleMode::kFull:
      return "full";
  }
  return "unknown";
}

Result<ShuffleMode> ParseShuffleMode(std::string_view name) {
  for (ShuffleMode mode :
       {ShuffleMode::kNone, ShuffleMode::kChunk, ShuffleMode::kFull}) {
    if (name == ShuffleModeName(mode)) return mode;
  }
  return InvalidArgument("unknown shuffle mode '" + std::string(name) +
                         "' (expected none, chunk or full)");
}

uint64_t ChunkLayout::UsedChunks() const {
  return num_samples == 0 ? 0 : ChunkOf(num_samples - 1) + 1;
}

uint64_t ChunkLayout::ChunkBegin(uint64_t chunk) const {
  return chunk == 0 ? 0 : chunk_ends[chunk - 1];
}

uint64_t ChunkLayout::ChunkEnd(uint64_t chunk) const {
  return std::min(chunk_ends[chunk], num_samples);
}

uint32_t ChunkLayout::ChunkOf(uint64_t sample) const {
  return static_cast<uint32_t>(
      std::upper_bound(chunk_ends.begin(), chunk_ends.end(), sample) -
      chunk_ends.begin());
}

ChunkLayout UniformChunkLayout(uint64_t num_samples, uint64_t samples_per_chunk,
                               uint64_t chunk_bytes) {
  ChunkLayout layout;
  layout.num_samples = num_samples;
  for (uint64_t end = 0; end < num_samples;) {
    end = std::min(end + samples_per_chunk, num_samples);
    layout.chunk_ends.push_back(end);
    if (chunk_bytes != 0) layout.chunk_bytes.push_back(chunk_bytes);
  }
  return layout;
}

Status ValidateSampler(const ChunkLayout& layout,
                       const SamplerOptions& options) {
  if (options.batch_size == 0) {
    return InvalidArgument("sampler: batch_size must be at least 1");
  }
  if (options.world_size == 0 || options.rank >= options.world_size) {
    return InvalidArgument("sampler: rank " + std::to_string(options.rank) +
                           " is not below world_size " +
                           std::to_string(options.world_size));
  }
  if (static_cast<uint8_t>(options.shuffle) > 2) {
    return InvalidArgument("sampler: unknown shuffle mode " +
                           std::to_string(static_cast<int>(options.shuffle)));
  }
  const auto& ends = layout.chunk_ends;
  if (ends.size() > uint64_t{UINT32_MAX}) {
    return InvalidArgument("sampler: more than 2^32-1 chunks");
  }
  if (!layout.chunk_bytes.empty() && layout.chunk_bytes.size() != ends.size()) {
    return InvalidArgument(
        "sampler: " + std::to_string(layout.chunk_bytes.size()) +
        " chunk sizes for " + std::to_string(ends.size()) + " chunks");
  }
  for (size_t i = 0; i < ends.size(); ++i) {
    if (ends[i] <= (i == 0 ? 0 : ends[i - 1])) {
      return InvalidArgument("sampler: chunk " + std::to_string(i) +
                             " ends at sample " + std::to_string(ends[i]) +
                             ", not after the previous chunk");
    }
  }
  if (layout.num_samples > (ends.empty() ? 0 : ends.back())) {
    return InvalidArgument("sampler: the chunks hold " +
                           std::to_string(ends.empty() ? 0 : ends.back()) +
                           " samples, fewer than the dataset's " +
                           std::to_string(layout.num_samples));
  }
  return Status::OK();
}

uint64_t BatchesPerEpoch(uint64_t num_samples, const SamplerOptions& options) {
  const uint64_t world = options.world_size;
  const uint64_t b = options.batch_size;
  if (options.drop_last) return num_samples / world / b;
  const uint64_t most = num_samples / world + (num_samples % world ? 1 : 0);
  return most / b + (most % b ? 1 : 0);
}

EpochPlan::Cursor::Cursor() = default;
EpochPlan::Cursor::Cursor(Cursor&&) noexcept = default;
EpochPlan::Cursor& EpochPlan::Cursor::operator=(Cursor&&) noexcept = default;
EpochPlan::Cursor::~Cursor() = default;

bool EpochPlan::Cursor::Next(std::vector<uint64_t>& out) {
  out.clear();
  if (state_ == nullptr) return false;
  const PlanOrder& order = *state_->order;
  if (state_->batch >= order.epoch_batches) return false;
  const uint64_t end = order.EndOf(++state_->batch);
  out.reserve(end - state_->position);
  while (state_->position < end) out.push_back(state_->Next());
  return true;
}

uint64_t EpochPlan::Cursor::batch() const {
  return state_ == nullptr ? 0 : state_->batch - state_->order->first_batch;
}

EpochPlan::Cursor EpochPlan::Batches() const {
  Cursor cursor;
  if (order != nullptr) {
    cursor.state_ = std::make_unique<sampler_internal::CursorState>(order);
  }
  return cursor;
}

std::vector<uint64_t> EpochPlan::AllSamples() const {
  std::vector<uint64_t> all, batch;
  all.reserve(num_samples);
  for (Cursor cursor = Batches(); cursor.Next(batch);) {
    all.insert(all.end(), batch.begin(), batch.end());
  }
  return all;
}

std::vector<uint64_t> EpochPlan::BatchEnds() const {
  std::vector<uint64_t> ends;
  if (order == nullptr) return ends;
  ends.reserve(num_batches());
  for (uint64_t k = first_batch; k < epoch_batches; ++k) {
    ends.push_back(order->EndOf(k + 1) - order->start);
  }
  return ends;
}

Result<EpochPlan> MakeEpochPlan(const ChunkLayout& layout,
                                const SamplerOptions& options, uint64_t epoch,
                                uint64_t first_batch) {
  SHOAL_RETURN_IF_ERROR(ValidateSampler(layout, options));
  const uint64_t batches = BatchesPerEpoch(layout.num_samples, options);
  if (first_batch > batches) {
    return InvalidArgument("sampler: first batch " +
                           std::to_string(first_batch) +
                           " is past the end of the epoch (" +
                           std::to_string(batches) + " batches)");
  }
  return BuildPlan(layout, options, epoch, first_batch);
}

Sampler::Sampler(ChunkLayout layout, SamplerOptions options)
    : layout_(std::move(layout)),
      options_(options),
      batches_per_epoch_(BatchesPerEpoch(layout_.num_samples, options_)) {}

Result<Sampler> Sampler::Create(ChunkLayout layout, SamplerOptions options) {
  SHOAL_RETURN_IF_ERROR(ValidateSampler(layout, options));
  return Sampler(std::move(layout), options);
}

Status Sampler::Advance(uint64_t count) {
  if (count > batches_per_epoch_ - position_.batch) {
    return OutOfRange("sampler: advancing " + std::to_string(count) +
                      " batches from batch " + std::to_string(position_.batch) +
                      " passes the end of the epoch (" +
                      std::to_string(batches_per_epoch_) + " batches)");
  }
  position_.batch += count;
  return Status::OK();
}

EpochPlan Sampler::MakePlan() const {
  return BuildPlan(layout_, options_, position_.epoch, position_.batch);
}

}  // namespace shoal
