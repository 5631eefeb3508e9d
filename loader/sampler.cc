#include "loader/sampler.h"

#include <algorithm>
#include <numeric>
#include <string>
#include <utility>

#include "base/buffer.h"
#include "base/coding.h"
#include "base/random.h"

namespace shoal {
namespace {

constexpr std::string_view kStateMagic = "SHSS";
constexpr uint8_t kStateVersion = 1;
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

// Chunks that hold samples below num_samples; the rest do not exist for the
// sampler.
uint64_t UsedChunks(const ChunkLayout& layout) {
  return layout.num_samples == 0 ? 0
                                 : layout.ChunkOf(layout.num_samples - 1) + 1;
}

uint64_t ChunkBegin(const ChunkLayout& layout, uint64_t chunk) {
  return chunk == 0 ? 0 : layout.chunk_ends[chunk - 1];
}

uint64_t ChunkEnd(const ChunkLayout& layout, uint64_t chunk) {
  return std::min(layout.chunk_ends[chunk], layout.num_samples);
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

// The samples of G in `segment` for kChunk: permuted chunks, each in index
// order, produced one at a time (so that the stream is never held whole:
// it would cost 8 bytes a sample on top of the order).
class ChunkStream {
 public:
  ChunkStream(const ChunkLayout& layout, Segment segment, SplitMix64& rng)
      : layout_(layout), segment_(segment), chunks_(UsedChunks(layout)) {
    std::iota(chunks_.begin(), chunks_.end(), 0u);
    FisherYates(std::span<uint32_t>(chunks_), rng);
    Advance();
  }
  uint64_t size() const { return segment_.end - segment_.begin; }
  // The next sample; precondition: fewer than size() taken.
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
    begin_ = ChunkBegin(layout_, chunks_[k_]);
    chunk_size_ = ChunkEnd(layout_, chunks_[k_]) - begin_;
    p_ = std::max(position_, segment_.begin);
    to_ = std::min(position_ + chunk_size_, segment_.end);
  }

  const ChunkLayout& layout_;
  const Segment segment_;
  std::vector<uint32_t> chunks_;
  size_t k_ = 0;
  uint64_t position_ = 0, begin_ = 0, chunk_size_ = 0, p_ = 0, to_ = 0;
};

// The shuffle buffer of the file comment, from `stream` into `out`.
void ShuffleBuffer(ChunkStream& stream, uint64_t capacity, SplitMix64& rng,
                   std::vector<uint64_t>& out) {
  const uint64_t n = stream.size();
  out.clear();
  out.reserve(n);
  capacity = std::min<uint64_t>(capacity, n);
  if (capacity <= 1) {
    for (uint64_t s = 0; s < n; ++s) out.push_back(stream.Next());
    return;
  }
  std::vector<uint64_t> slots(capacity);
  for (uint64_t& slot : slots) slot = stream.Next();
  for (uint64_t s = capacity; s < n; ++s) {
    uint64_t& slot = slots[rng.Bounded(capacity)];
    out.push_back(slot);
    slot = stream.Next();
  }
  for (uint64_t size = capacity; size > 0; --size) {
    uint64_t& slot = slots[rng.Bounded(size)];
    out.push_back(slot);
    slot = slots[size - 1];
  }
}

// This rank's samples for the whole epoch, in output order.
std::vector<uint64_t> RankOrder(const ChunkLayout& layout,
                                const SamplerOptions& options, uint64_t epoch) {
  const Segment segment = RankSegment(layout.num_samples, options);
  std::vector<uint64_t> order;
  switch (options.shuffle) {
    case ShuffleMode::kNone:
      order.resize(segment.end - segment.begin);
      std::iota(order.begin(), order.end(), segment.begin);
      break;
    case ShuffleMode::kFull: {
      // Every rank draws the same global permutation and keeps its part.
      std::vector<uint64_t> all(layout.num_samples);
      std::iota(all.begin(), all.end(), uint64_t{0});
      SplitMix64 rng(StreamKey(options.seed, epoch, kFullPermutation, 0));
      FisherYates(std::span<uint64_t>(all), rng);
      all.resize(segment.end);
      all.erase(all.begin(), all.begin() + segment.begin);
      order = std::move(all);
      break;
    }
    case ShuffleMode::kChunk: {
      SplitMix64 chunk_rng(
          StreamKey(options.seed, epoch, kChunkPermutation, 0));
      ChunkStream stream(layout, segment, chunk_rng);
      SplitMix64 buffer_rng(
          StreamKey(options.seed, epoch, kShuffleBuffer, options.rank));
      ShuffleBuffer(stream, options.shuffle_buffer, buffer_rng, order);
      break;
    }
  }
  return order;
}

// Per chunk (of the layout): the first and last batch of a plan that read
// it, and how many of the plan's samples it holds.
struct ChunkReads {
  std::vector<uint64_t> first, last, count;
};

// Fills plan.batch_chunks and plan.batch_chunk_ends.
ChunkReads ListBatchChunks(const ChunkLayout& layout, EpochPlan& plan,
                           bool full_permutation) {
  const uint64_t num_chunks = UsedChunks(layout);
  ChunkReads reads{std::vector<uint64_t>(num_chunks, kNoBatch),
                   std::vector<uint64_t>(num_chunks, kNoBatch),
                   std::vector<uint64_t>(num_chunks, 0)};
  // The chunk of each sample. Orders of the none and chunk shuffles run
  // through a chunk's samples together, so the chunk of the sample before
  // nearly always answers; otherwise a binary search. A full permutation
  // jumps every time, and a binary search per sample took most of the time
  // of its plan: it gets a sample-to-chunk table (4 bytes a sample, while
  // the plan is made).
  std::vector<uint32_t> chunk_of;
  if (full_permutation) {
    chunk_of.resize(layout.num_samples);
    for (uint32_t c = 0; c < num_chunks; ++c) {
      std::fill(chunk_of.begin() + ChunkBegin(layout, c),
                chunk_of.begin() + ChunkEnd(layout, c), c);
    }
  }
  uint32_t recent = 0;
  auto chunk_of_sample = [&](uint64_t sample) -> uint32_t {
    if (!chunk_of.empty()) return chunk_of[sample];
    if (sample >= ChunkBegin(layout, recent) &&
        sample < ChunkEnd(layout, recent)) {
      return recent;
    }
    recent = layout.ChunkOf(sample);
    return recent;
  };
  plan.batch_chunks.clear();
  plan.batch_chunk_ends.clear();
  plan.batch_chunk_ends.reserve(plan.num_batches());
  for (uint64_t j = 0; j < plan.num_batches(); ++j) {
    const auto batch_begin =
        static_cast<std::ptrdiff_t>(plan.batch_chunks.size());
    for (uint64_t sample : plan.batch(j)) {
      const uint32_t chunk = chunk_of_sample(sample);
      ++reads.count[chunk];
      if (reads.last[chunk] == j) continue;  // seen in this batch
      if (reads.first[chunk] == kNoBatch) reads.first[chunk] = j;
      reads.last[chunk] = j;
      plan.batch_chunks.push_back(chunk);
    }
    std::sort(plan.batch_chunks.begin() + batch_begin, plan.batch_chunks.end());
    plan.batch_chunk_ends.push_back(plan.batch_chunks.size());
  }
  plan.batch_chunks.shrink_to_fit();
  return reads;
}

// Fills plan.chunk_uses and the plan's maxima from `reads`.
void PlanChunkLifetimes(const ChunkLayout& layout, const ChunkReads& reads,
                        EpochPlan& plan) {
  const uint64_t num_batches = plan.num_batches();
  // Per batch: chunks and bytes that become live (and, one past their last
  // batch, stop being live), samples fetched. Unsigned deltas wrap, and
  // their prefix sums are still exact.
  std::vector<uint64_t> live_delta(num_batches + 1, 0);
  std::vector<uint64_t> bytes_delta(num_batches + 1, 0);
  std::vector<uint64_t> fetched_samples(num_batches + 1, 0);
  // Walking batches in order and taking each chunk at its first batch gives
  // the (first_batch, chunk) order, since a batch's chunks are ascending.
  plan.chunk_uses.clear();
  for (uint64_t j = 0; j < num_batches; ++j) {
    for (uint32_t chunk : plan.chunks_of_batch(j)) {
      if (reads.first[chunk] != j) continue;
      const uint64_t last = reads.last[chunk];
      plan.chunk_uses.push_back({chunk, j, last, reads.count[chunk]});
      const uint64_t bytes =
          layout.chunk_bytes.empty() ? 0 : layout.chunk_bytes[chunk];
      ++live_delta[j];
      --live_delta[last + 1];
      bytes_delta[j] += bytes;
      bytes_delta[last + 1] -= bytes;
      fetched_samples[j] += reads.count[chunk];
    }
  }
  uint64_t live = 0, live_bytes = 0, fetched = 0;
  plan.max_live_chunks = plan.max_live_bytes = plan.max_decoded_samples = 0;
  for (uint64_t j = 0; j < num_batches; ++j) {
    live += live_delta[j];
    live_bytes += bytes_delta[j];
    fetched += fetched_samples[j];
    const uint64_t emitted = j == 0 ? 0 : plan.batch_ends[j - 1];
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
  std::vector<uint64_t> order = RankOrder(layout, options, epoch);
  // Batch j ends at min((j+1)*b, m_r): full batches, then the short (or
  // empty) last one; the file comment shows that fits the count.
  // (j+1)*b is only formed when it does not pass m_r, so it cannot overflow.
  const uint64_t b = options.batch_size;
  const uint64_t m = order.size();
  auto end_of = [&](uint64_t batches) {
    return batches > m / b ? m : batches * b;
  };
  const uint64_t start = end_of(first_batch);
  order.erase(order.begin(), order.begin() + start);
  plan.samples = std::move(order);
  plan.batch_ends.reserve(plan.epoch_batches - first_batch);
  for (uint64_t j = first_batch; j < plan.epoch_batches; ++j) {
    plan.batch_ends.push_back(end_of(j + 1) - start);
  }
  const ChunkReads reads =
      ListBatchChunks(layout, plan, options.shuffle == ShuffleMode::kFull);
  PlanChunkLifetimes(layout, reads, plan);
  return plan;
}

uint64_t LayoutFingerprint(const ChunkLayout& layout) {
  ByteWriter writer;
  const uint64_t chunks = UsedChunks(layout);
  for (uint64_t c = 0; c < chunks; ++c) writer.PutVarint(ChunkEnd(layout, c));
  return Checksum64(AsBytes(writer.bytes()));
}

Status Mismatch(std::string_view field, uint64_t saved, uint64_t current) {
  return InvalidArgument("sampler state was saved with " + std::string(field) +
                         " " + std::to_string(saved) +
                         ", but this sampler has " + std::to_string(current));
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

std::span<const uint64_t> EpochPlan::batch(uint64_t j) const {
  const uint64_t begin = j == 0 ? 0 : batch_ends[j - 1];
  return std::span<const uint64_t>(samples).subspan(begin,
                                                    batch_ends[j] - begin);
}

std::span<const uint32_t> EpochPlan::chunks_of_batch(uint64_t j) const {
  const uint64_t begin = j == 0 ? 0 : batch_chunk_ends[j - 1];
  return std::span<const uint32_t>(batch_chunks)
      .subspan(begin, batch_chunk_ends[j] - begin);
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

std::string EncodeSamplerState(const ChunkLayout& layout,
                               const SamplerOptions& options,
                               const SamplerPosition& position) {
  ByteWriter writer;
  writer.PutBytes(kStateMagic);
  writer.PutU8(kStateVersion);
  writer.PutVarint(position.epoch);
  writer.PutVarint(position.batch);
  writer.PutVarint(options.seed);
  writer.PutVarint(layout.num_samples);
  writer.PutU64(LayoutFingerprint(layout));
  writer.PutVarint(options.batch_size);
  writer.PutU8(options.drop_last ? 1 : 0);
  writer.PutU8(static_cast<uint8_t>(options.shuffle));
  writer.PutVarint(options.shuffle_buffer);
  writer.PutVarint(options.world_size);
  writer.PutU64(Checksum64(AsBytes(writer.bytes())));
  return std::move(writer).Release();
}

Result<SamplerPosition> DecodeSamplerState(std::string_view state,
                                           const ChunkLayout& layout,
                                           const SamplerOptions& options) {
  SHOAL_RETURN_IF_ERROR(ValidateSampler(layout, options));
  if (!state.starts_with(kStateMagic)) {
    return InvalidArgument("not a shoal sampler state (bad magic)");
  }
  constexpr size_t kHeader = 5;  // magic + version
  if (state.size() < kHeader + 8) {
    return Corruption("sampler state: truncated (" +
                      std::to_string(state.size()) + " bytes)");
  }
  const auto version = static_cast<uint8_t>(state[4]);
  if (version > kStateVersion) {
    return Unimplemented("sampler state version " + std::to_string(version) +
                         " is newer than this build reads (" +
                         std::to_string(kStateVersion) + ")");
  }
  const std::string_view body = state.substr(0, state.size() - 8);
  if (!ChecksumMatches(AsBytes(body),
                       DecodeU64(AsBytes(state.substr(body.size())).data()))) {
    return Corruption("sampler state: checksum mismatch");
  }
  if (version != kStateVersion) {
    return Corruption("sampler state: bad version " + std::to_string(version));
  }

  ByteReader reader(AsBytes(body.substr(kHeader)), "sampler state");
  SamplerPosition position;
  SHOAL_ASSIGN_OR_RETURN(position.epoch, reader.GetVarint());
  SHOAL_ASSIGN_OR_RETURN(position.batch, reader.GetVarint());
  SHOAL_ASSIGN_OR_RETURN(const uint64_t seed, reader.GetVarint());
  SHOAL_ASSIGN_OR_RETURN(const uint64_t num_samples, reader.GetVarint());
  SHOAL_ASSIGN_OR_RETURN(const uint64_t fingerprint, reader.GetU64());
  SHOAL_ASSIGN_OR_RETURN(const uint64_t batch_size, reader.GetVarint());
  SHOAL_ASSIGN_OR_RETURN(const uint8_t drop_last, reader.GetU8());
  SHOAL_ASSIGN_OR_RETURN(const uint8_t shuffle, reader.GetU8());
  SHOAL_ASSIGN_OR_RETURN(const uint64_t shuffle_buffer, reader.GetVarint());
  SHOAL_ASSIGN_OR_RETURN(const uint64_t world_size, reader.GetVarint());
  if (reader.remaining() != 0) {
    return reader.Error(std::to_string(reader.remaining()) + " trailing bytes");
  }
  if (drop_last > 1) return reader.Error("drop_last is not 0 or 1");
  if (shuffle > 2) return reader.Error("unknown shuffle mode");

  if (num_samples != layout.num_samples) {
    return Mismatch("a dataset of num_samples", num_samples,
                    layout.num_samples);
  }
  if (fingerprint != LayoutFingerprint(layout)) {
    return InvalidArgument(
        "sampler state was saved for another chunk layout of the dataset "
        "(the chunk boundaries differ)");
  }
  if (seed != options.seed) return Mismatch("seed", seed, options.seed);
  if (batch_size != options.batch_size) {
    return Mismatch("batch_size", batch_size, options.batch_size);
  }
  if ((drop_last == 1) != options.drop_last) {
    return Mismatch("drop_last", drop_last, options.drop_last ? 1 : 0);
  }
  if (shuffle != static_cast<uint8_t>(options.shuffle)) {
    return InvalidArgument(
        "sampler state was saved with shuffle " +
        std::string(ShuffleModeName(static_cast<ShuffleMode>(shuffle))) +
        ", but this sampler has " +
        std::string(ShuffleModeName(options.shuffle)));
  }
  if (shuffle_buffer != options.shuffle_buffer) {
    return Mismatch("shuffle_buffer", shuffle_buffer, options.shuffle_buffer);
  }
  if (world_size != options.world_size) {
    return Mismatch("world_size", world_size, options.world_size);
  }
  const uint64_t batches = BatchesPerEpoch(num_samples, options);
  if (position.batch > batches) {
    return InvalidArgument("sampler state: batch " +
                           std::to_string(position.batch) +
                           " is past the end of the epoch (" +
                           std::to_string(batches) + " batches)");
  }
  return position;
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

std::string Sampler::State() const {
  return EncodeSamplerState(layout_, options_, position_);
}

Status Sampler::Restore(std::string_view state) {
  SHOAL_ASSIGN_OR_RETURN(SamplerPosition position,
                         DecodeSamplerState(state, layout_, options_));
  position_ = position;
  return Status::OK();
}

}  // namespace shoal
