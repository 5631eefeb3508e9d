// Sampler: which samples an epoch reads, in which order, in which batch, on
// which rank. Pure computation over the dataset's chunk layout: no I/O.
//
// The Loader asks for an EpochPlan (a cursor over this rank's batches of
// sample indices in output order, plus when each chunk is first and last
// read) and then fetches and decodes exactly that. The plan
// is a function of (layout, options, epoch) only, never of thread count or
// timing, so the same seed gives the same batches bit for bit, and a saved
// position (EncodeSamplerState) resumes the exact remaining batches.
//
// Shuffle modes:
//  - none:  samples in index order.
//  - chunk: (the default) the chunks are permuted; the samples stream in
//    that chunk order into a seeded shuffle buffer of `shuffle_buffer`
//    samples, each output takes a random slot of the buffer and the slot is
//    refilled from the stream (tf.data / Deep Lake style). Each chunk is read
//    once per epoch and only a few are needed at a time; see EpochPlan's
//    chunk fields for how many.
//  - full:  a uniform random permutation of all samples. Reads are scattered:
//    a chunk is touched by many batches, so the Loader reads samples one by
//    one (or by range) rather than holding chunks.
//
// Sharding and batch counts (n = samples in the epoch = ChunkLayout's
// num_samples, W = world_size, b = batch_size):
//  1. A global order G of all n samples is formed on every rank alike:
//     none: 0..n-1; full: a permutation; chunk: the samples of the permuted
//     chunks, each chunk in index order (the stream, before the buffer).
//  2. G is cut into W contiguous segments, rank r taking the r-th:
//     - drop_last: every rank gets k = floor(n / (W*b)) full batches; the
//       first k*W*b entries of G are used and the rest (fewer than W*b
//       samples) is dropped. n < W*b gives zero batches.
//     - !drop_last: nothing is dropped. Rank r gets m_r = floor(n/W) + (r <
//       n%W ? 1 : 0) samples and every rank gets K = ceil(ceil(n/W) / b)
//       batches; all but the last are full and the last holds
//       m_r - (K-1)*b samples, which is between 0 and b. It is empty on
//       some ranks exactly when the samples left for the final round,
//       R = n - W*(K-1)*b, are fewer than the ranks (for example n < W);
//       the Loader must then hand out an empty final batch (or the caller
//       uses drop_last) so that every rank still takes K steps.
//  3. chunk mode only: the rank's segment passes through the rank's own
//     shuffle buffer (so a rank reads only the chunks of its segment, plus
//     at most two that it shares with its neighbours).
//  Segments are disjoint and, without drop_last, together cover all n
//  samples; every rank has the same number of batches in every epoch.
//
// Randomness (exact, so that other implementations can reproduce plans):
//  - Mix and Bounded are those of SplitMix64 (base/random.h, which
//    specifies them exactly).
//  - Each random stream has a key: k = Mix(seed + 0x9e3779b97f4a7c15);
//    k = Mix(k ^ epoch); k = Mix(k ^ stream); k = Mix(k ^ rank), with
//    stream 1 = chunk permutation, 2 = full permutation (rank 0 for both:
//    they are global) and 3 = the shuffle buffer of `rank`; the stream is
//    a SplitMix64 seeded with k.
//  - Permutations are Fisher–Yates: for i = len-1 down to 1, swap a[i] with
//    a[Bounded(i+1)].
//  - The shuffle buffer has capacity c = min(shuffle_buffer, samples in the
//    rank's segment). The first c stream samples fill slots 0..c-1; then
//    for each further stream sample s: j = Bounded(c), output slot j,
//    slot j = s. Then the buffer drains: while size > 0: j = Bounded(size),
//    output slot j, slot j = slot size-1, size -= 1. c <= 1 means no
//    shuffling within the stream.
// Changing any of this changes every plan and invalidates saved states; the
// golden tests in tests/loader/sampler_test.cc pin it.
//
// Thread-safety: the free functions are pure and may run concurrently.
// EpochPlan is an immutable value once made. A Sampler is a single-owner
// value (no internal locking).
#ifndef SHOAL_LOADER_SAMPLER_H_
#define SHOAL_LOADER_SAMPLER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace shoal {

enum class ShuffleMode : uint8_t {
  kNone = 0,
  kChunk = 1,
  kFull = 2,
};

/// "none", "chunk", "full".
std::string_view ShuffleModeName(ShuffleMode mode);
/// The inverse of ShuffleModeName; InvalidArgument for anything else.
Result<ShuffleMode> ParseShuffleMode(std::string_view name);

/// Default shuffle buffer, in samples. Memory grows with it (see
/// EpochPlan::max_decoded_samples and max_live_chunks); 2048 mixes the
/// samples of dozens of ImageNet-size chunks while holding about 300 MB of
/// decoded 224x224 images.
inline constexpr uint64_t kDefaultShuffleBuffer = 2048;

struct SamplerOptions {
  /// Samples per batch; at least 1.
  uint64_t batch_size = 32;
  /// Drop what does not fill whole batches on every rank (see the file
  /// comment for the exact rule).
  bool drop_last = false;
  ShuffleMode shuffle = ShuffleMode::kChunk;
  /// Shuffle buffer capacity in samples (kChunk only; <= 1: chunk order only).
  uint64_t shuffle_buffer = kDefaultShuffleBuffer;
  uint64_t seed = 0;
  /// This process's rank among `world_size`; rank < world_size.
  uint32_t rank = 0;
  uint32_t world_size = 1;
};

/// How the samples of the dataset fall into chunks: the chunk boundaries of
/// one tensor (the Loader picks the one with the most bytes, whose chunk
/// reads dominate) and the number of samples an epoch covers (the dataset's
/// len(); other tensors may have other boundaries, which only costs them
/// locality). A "chunk" here is a run of consecutive samples fetched
/// together; a tiled tensor maps each tiled sample to one such run.
struct ChunkLayout {
  /// Samples in an epoch: indices 0..num_samples-1.
  uint64_t num_samples = 0;
  /// Cumulative sample counts: chunk i holds [chunk_ends[i-1], chunk_ends[i])
  /// (chunk 0 starts at 0). Strictly increasing; the last is >= num_samples
  /// (a tensor longer than the dataset's len() is cut there). Empty only
  /// when num_samples is 0.
  std::vector<uint64_t> chunk_ends;
  /// Stored bytes of each chunk (same size as chunk_ends), or empty when
  /// unknown (max_live_bytes is then 0).
  std::vector<uint64_t> chunk_bytes;

  /// The chunk holding `sample`. Precondition: sample < chunk_ends.back().
  uint32_t ChunkOf(uint64_t sample) const;
  /// Chunks holding samples below num_samples (the rest do not exist for
  /// the sampler).
  uint64_t UsedChunks() const;
  /// The first sample of `chunk`, and one past its last below num_samples.
  uint64_t ChunkBegin(uint64_t chunk) const;
  uint64_t ChunkEnd(uint64_t chunk) const;
};

/// `num_samples` samples in chunks of `samples_per_chunk` (the last may be
/// shorter), each `chunk_bytes` bytes. For tests, benchmarks and tensors of
/// fixed-size samples.
ChunkLayout UniformChunkLayout(uint64_t num_samples, uint64_t samples_per_chunk,
                               uint64_t chunk_bytes = 0);

/// OK when MakeEpochPlan accepts the pair; otherwise InvalidArgument naming
/// the offending field.
Status ValidateSampler(const ChunkLayout& layout,
                       const SamplerOptions& options);

/// Batches every rank gets in every epoch (K or k in the file comment).
/// Precondition: options are valid (batch_size, world_size >= 1).
uint64_t BatchesPerEpoch(uint64_t num_samples, const SamplerOptions& options);

/// One chunk as used by a plan: the Loader fetches chunks in the order of
/// EpochPlan::chunk_uses and may release a chunk once batch `last_batch` has
/// been assembled.
struct ChunkUse {
  uint32_t chunk = 0;        // index into ChunkLayout::chunk_ends
  uint64_t first_batch = 0;  // first batch of the plan that reads it
  uint64_t last_batch = 0;   // last batch of the plan that reads it
  uint64_t num_samples = 0;  // samples of the plan that it holds
  bool operator==(const ChunkUse&) const = default;
};

namespace sampler_internal {
struct PlanOrder;
struct CursorState;
}  // namespace sampler_internal

/// What one rank reads in (the rest of) one epoch. Batch numbers in the
/// chunk fields count from the plan's first batch (0 = batch `first_batch`
/// of the epoch).
///
/// The order is not held sample by sample: a Cursor produces the batches in
/// order. What a plan holds grows with the chunks, not with the samples:
/// O(chunks) for the none and chunk shuffles (each cursor adds the shuffle
/// buffer), and for a full permutation the rank's part of the permutation,
/// 4 bytes a sample (8 past 2^32 samples). Making a plan walks its order
/// once (to find the chunk fields); so does each cursor.
struct EpochPlan {
  uint64_t epoch = 0;
  /// Batches of the epoch before this plan (non-zero when resumed).
  uint64_t first_batch = 0;
  /// Batches per epoch for every rank; the plan holds the last
  /// epoch_batches - first_batch of them.
  uint64_t epoch_batches = 0;
  /// Samples in the plan's batches.
  uint64_t num_samples = 0;

  /// Every chunk the plan reads, by (first_batch, chunk): the fetch order.
  std::vector<ChunkUse> chunk_uses;
  /// Most chunks live at once when each chunk is held from its first_batch
  /// through its last_batch (both inclusive), and the most bytes they take
  /// (0 without ChunkLayout::chunk_bytes). For kChunk this is about
  /// 1 + shuffle_buffer * H(C) / C chunks for C samples per chunk (H the
  /// harmonic number: the last sample of a chunk stays in the buffer that
  /// long); for kFull it approaches all chunks.
  uint64_t max_live_chunks = 0;
  uint64_t max_live_bytes = 0;
  /// The other strategy: fetch each chunk at its first_batch, decode all of
  /// its samples of the plan at once, release the chunk and keep the decoded
  /// samples until they are output. This is the most samples held at once
  /// (those of batch j included, counted while batch j is assembled); about
  /// shuffle_buffer + C + batch_size for kChunk, nearly all for kFull.
  uint64_t max_decoded_samples = 0;

  uint64_t num_batches() const { return epoch_batches - first_batch; }

  /// Reads a plan's batches in order. A single-owner value; the plan's
  /// order is shared, so a cursor may outlive its EpochPlan.
  class Cursor {
   public:
    Cursor();  // at the end of an empty plan
    Cursor(Cursor&&) noexcept;
    Cursor& operator=(Cursor&&) noexcept;
    ~Cursor();
    /// The samples of batch batch() into `out` (replacing its contents),
    /// then moves to the next batch; false (and `out` empty) after the last.
    bool Next(std::vector<uint64_t>& out);
    /// The batch Next() produces, counted from the plan's first batch.
    uint64_t batch() const;

   private:
    friend struct EpochPlan;
    std::unique_ptr<sampler_internal::CursorState> state_;
  };
  /// A cursor at the plan's first batch. Costs O(shuffle_buffer) memory and,
  /// for a resumed kChunk plan, a walk past the batches before it.
  Cursor Batches() const;

  /// The whole order, sample by sample (O(samples) memory): for tests and
  /// shuffle-quality reports, not for loading.
  std::vector<uint64_t> AllSamples() const;
  /// Batch j is AllSamples()[ends[j-1], ends[j]) (from 0 for j = 0).
  std::vector<uint64_t> BatchEnds() const;

  /// How the order is made (sampler.cc); null for an empty default plan.
  std::shared_ptr<const sampler_internal::PlanOrder> order;
};

/// This rank's plan for `epoch`, from batch `first_batch` of the epoch
/// (0 = the whole epoch; epoch_batches = an empty plan). The samples of the
/// resumed plan are exactly those of the full plan's batches from
/// `first_batch` on. InvalidArgument for invalid inputs or first_batch past
/// the epoch's end. Time O(num_samples + chunks); memory as EpochPlan says
/// (while a full permutation's plan is made it holds the permutation of
/// every rank's samples, 4 bytes a sample of the dataset).
Result<EpochPlan> MakeEpochPlan(const ChunkLayout& layout,
                                const SamplerOptions& options, uint64_t epoch,
                                uint64_t first_batch = 0);

/// A position in training: `batch` batches of `epoch` have been consumed.
/// All ranks of a job are at the same position (they take the same number
/// of steps), so one rank's saved state resumes every rank.
struct SamplerPosition {
  uint64_t epoch = 0;
  uint64_t batch = 0;
  bool operator==(const SamplerPosition&) const = default;
};

/// A compact binary state (about 40 bytes) holding the position and what
/// the plan depends on, so that a state is only accepted by a sampler that
/// would make the same plans. Layout (varints are unsigned LEB128, fixed
/// widths little-endian):
///   "SHSS" | u8 version = 1 | varint epoch | varint batch | varint seed |
///   varint num_samples | u64 layout fingerprint (XXH3-64 of the chunk ends
///   up to num_samples, as varints) | varint batch_size | u8 drop_last |
///   u8 shuffle mode | varint shuffle_buffer | varint world_size |
///   u64 XXH3-64 of all the preceding bytes.
/// The rank is not stored: see SamplerPosition.
std::string EncodeSamplerState(const ChunkLayout& layout,
                               const SamplerOptions& options,
                               const SamplerPosition& position);

/// The position saved in `state`, checked against the sampler it is meant
/// for. InvalidArgument for invalid layout/options, bytes that do not start
/// with the magic, or a state saved for other options or another dataset
/// (the message names the field and both values); Corruption for damaged
/// bytes (truncated, checksum mismatch, bad fields, trailing bytes);
/// Unimplemented for a newer version.
Result<SamplerPosition> DecodeSamplerState(std::string_view state,
                                           const ChunkLayout& layout,
                                           const SamplerOptions& options);

/// A rank's sampler with its position: the object a Loader keeps.
///
///   SHOAL_ASSIGN_OR_RETURN(Sampler sampler, Sampler::Create(layout, opts));
///   sampler.SetEpoch(3);
///   EpochPlan plan = sampler.MakePlan();
///   ... for each batch handed to the training loop: sampler.Advance(1);
///   std::string state = sampler.State();
class Sampler {
 public:
  /// InvalidArgument for invalid inputs (see ValidateSampler).
  static Result<Sampler> Create(ChunkLayout layout, SamplerOptions options);

  const ChunkLayout& layout() const { return layout_; }
  const SamplerOptions& options() const { return options_; }
  const SamplerPosition& position() const { return position_; }
  uint64_t batches_per_epoch() const { return batches_per_epoch_; }

  /// Moves to the start of `epoch`.
  void SetEpoch(uint64_t epoch) { position_ = {epoch, 0}; }
  /// Records `count` more consumed batches of the current epoch;
  /// OutOfRange (position unchanged) past the epoch's end.
  Status Advance(uint64_t count = 1);

  /// The plan of the current epoch from the current position.
  EpochPlan MakePlan() const;

  /// EncodeSamplerState of the current position.
  std::string State() const;
  /// Moves to the position saved in `state` (DecodeSamplerState's errors;
  /// the position is unchanged on error).
  Status Restore(std::string_view state);

 private:
  Sampler(ChunkLayout layout, SamplerOptions options);

  ChunkLayout layout_;
  SamplerOptions options_;
  uint64_t batches_per_epoch_ = 0;
  SamplerPosition position_;
};

/// How well an order is shuffled (reported by `shoal bench`).
struct ShuffleQuality {
  /// Mean of |position - rank of the sample| / n, the rank being the
  /// sample's place among the order's samples sorted by index. 0 for the
  /// identity; (n^2 - 1) / (3 n^2), about 1/3, expected for a uniform
  /// permutation.
  double mean_displacement = 0;
  /// Spearman rank correlation between position and sample index: 1 for
  /// the identity, about 0 (+-1/sqrt(n)) for a uniform permutation. 0 for
  /// fewer than 2 samples.
  double spearman = 0;
  /// Mean number of distinct labels per batch (0 without labels). On a
  /// dataset sorted by class it shows whether batches mix classes.
  double classes_per_batch = 0;
};

/// Measures `samples` (distinct sample indices in output order) cut into
/// batches by `batch_ends` (as EpochPlan::BatchEnds()), with `labels[sample]`
/// the class of each sample, or no labels. InvalidArgument for repeated
/// samples, batch ends that do not cut `samples`, or a sample without a label.
Result<ShuffleQuality> MeasureShuffle(std::span<const uint64_t> samples,
                                      std::span<const uint64_t> batch_ends,
                                      std::span<const uint32_t> labels = {});

}  // namespace shoal

#endif  // SHOAL_LOADER_SAMPLER_H_
