// Loader: streams shuffled, fixed-size batches of a dataset to a training
// loop, decoding on every core.
//
// clang-format off
//   SHOAL_ASSIGN_OR_RETURN(std::shared_ptr<Dataset> ds,
//       Dataset::Open("file:///data/imagenet", {.read_only = true}));
//   LoaderOptions options{.batch_size = 256, .seed = 7};
//   options.transforms["images"] = {
//       .kind = ImageTransform::Kind::kRandomResizedCrop,
//       .height = 224, .width = 224, .random_flip = true};
//   SHOAL_ASSIGN_OR_RETURN(auto loader, Loader::Create(ds, options));
//   while (!loader->done()) {
//     SHOAL_ASSIGN_OR_RETURN(std::optional<Batch> batch, loader->Next());
//     if (!batch) continue;  // the end of an epoch
//     SHOAL_ASSIGN_OR_RETURN(const TensorBatch* images, batch->tensor("images"));
//     SHOAL_ASSIGN_OR_RETURN(const TensorBatch* labels, batch->tensor("labels"));
//     Train(*images, *labels);  // images: [B, 224, 224, 3] uint8
//   }  // a Batch returns its buffers when it goes
// clang-format on
//
// How it works. A Sampler (sampler.h) makes each epoch's plan: this rank's
// sample indices, in shuffled order, cut into batches, with the chunks each
// batch reads. A Pipeline (pipeline.h) carries one item per batch through
//   feeder ──► fetch (parallel) ──► decode (parallel) ──► Next()
// The feeder lays out the batch's output buffers (shapes are known from the
// hidden shape tensors, so sizes are known before decoding) and waits until
// the memory budget has room; fetch reads each chunk the first time a batch
// needs it (one read and one decompression per chunk per epoch in `none`
// and `chunk` shuffle, into recycled buffers; whichever of two batches
// sharing a chunk claims it first loads it, and a batch's chunks are read
// together, one round trip over a network); `full` reads sample by sample
// when its chunks do not fit the budget (a batch's samples together, the
// neighbours in a chunk in one ranged read). Fetch workers mostly wait on
// the store, so they have threads of their own and their number adapts to
// it (LoaderOptions::fetch_workers). Decode writes every sample straight into
// its slot of the batch buffer (JPEG with DCT-domain scaling and region decode
// when a transform shrinks the image). Batches come out in plan order whatever
// the thread count, so a seed gives the same batches bit for bit on 1 or 64
// threads; random transforms draw from a per-sample seed (seed, epoch, sample
// index).
//
// Memory. Accounted memory — batch buffers (kept from batch to batch and
// charged for as long as they exist, in flight, with the caller or free in
// the loader's pool), chunks held for the batches that still need them, and
// free recycled chunk buffers (at most an eighth of the budget) — is kept
// under `memory_budget` by the pipeline core's one budget (base/memory.h):
// the feeder admits a batch with the bytes it will add (a new buffer, new
// chunks) only while they fit, and makes a new pipeline item only while the
// budget has room. When nothing else is in flight a batch is admitted
// anyway (an epoch must progress), so a budget smaller than one batch plus
// the chunks it reads is exceeded by exactly that (typical_batch_bytes()).
// Under the chunk shuffle the samples in the shuffle buffer keep their
// chunks resident, so the buffer is lowered to what the budget holds (see
// shuffle_buffer()). In steady state no sample causes a heap allocation.
// Decoders charge their memory to the same budget while they hold it: a
// video reader its frames (reference frames included), an image
// transformer its scratch (the decoded crop before resampling, kept at the
// largest size seen). Not charged: the codecs' small fixed state (libjpeg's
// pools, libpng's structs, the resampler's weights).
//
// Errors. Next() returns the first error in plan order (a corrupt chunk, a
// sample that does not decode), naming dataset, tensor, chunk and sample,
// after every batch before it; later Next() calls return it again. With
// ErrorPolicy::kSkip a sample that fails is left out of its batch (which is
// then shorter) and counted in LoaderMetrics::skipped_samples.
//
// Thread-safety: a Loader is used by one thread (Next, SetEpoch, State);
// metrics() may be called from any thread. A Batch may be read and
// destroyed on any thread, also after its Loader is gone.
#ifndef SHOAL_LOADER_LOADER_H_
#define SHOAL_LOADER_LOADER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "format/dataset.h"
#include "loader/controller.h"
#include "loader/image_transform.h"
#include "loader/pipeline.h"
#include "loader/sampler.h"

namespace shoal {

enum class ErrorPolicy : uint8_t {
  kFail,  // the first bad sample ends the stream with its error
  kSkip,  // bad samples are left out of their batch and counted
};

/// How a video tensor (htype video, sample_compression mp4) is loaded: each
/// sample of a batch is a clip of `frames` frames, `step` apart, decoded to
/// RGB (resized to height x width when given) as [frames, H, W, 3] uint8.
struct VideoClipOptions {
  enum class Sampling : uint8_t {
    kRandom,   // seeded random starts (per seed, epoch, sample and clip)
    kUniform,  // starts evenly spread over the video (evaluation)
  };
  uint32_t frames = 16;
  uint32_t step = 1;
  /// Clips of each video per epoch: an epoch has this many samples per
  /// video (the dataset's other tensors repeat theirs with it). The plan
  /// keeps a video's clips together until the shuffle buffer spreads them,
  /// and the first batch to need one decodes them all in one forward pass,
  /// holding the others (charged to the memory budget) for their batches.
  uint32_t clips_per_video = 1;
  Sampling sampling = Sampling::kRandom;
  /// Output frame size; 0 keeps each video's own size (both or neither).
  uint32_t height = 0;
  uint32_t width = 0;
};

struct LoaderOptions {
  /// Tensors to load; empty = every visible tensor.
  std::vector<std::string> tensors;
  uint64_t batch_size = 32;
  /// Drop samples that do not fill a whole batch on every rank.
  bool drop_last = false;
  /// Epochs to run, starting at `first_epoch` (done() after them).
  uint64_t epochs = 1;
  uint64_t first_epoch = 0;
  ShuffleMode shuffle = ShuffleMode::kChunk;
  /// Shuffle buffer in samples (kChunk).
  uint64_t shuffle_buffer = kDefaultShuffleBuffer;
  uint64_t seed = 0;
  uint32_t rank = 0;
  uint32_t world_size = 1;
  /// Decode threads, at most kMaxPipelineThreads (256); 0 = all cores.
  int threads = 0;
  /// Bytes of chunks and batch buffers held at once (see the file comment).
  uint64_t memory_budget = 1ull << 30;
  /// Batches prepared ahead of the consumer; 0 = 2 * threads + 2.
  int prefetch_batches = 0;
  /// Chunk reads in flight (fetch workers, which mostly wait on the store
  /// and have threads of their own besides `threads`), 1 ..
  /// kMaxFetchWorkers; 0 = adapted to the store while the loader runs: more
  /// while throughput rises, fewer when the store pushes back (see
  /// LoaderMetrics::decisions).
  int fetch_workers = 0;
  /// Per image tensor: how to decode (default: as stored, ragged). Image
  /// tensors stored as pixels ([H, W] or [H, W, C] uint8/uint16) take
  /// transforms too: each sample's crop is read alone (only the tiles and
  /// blocks under it) when samples span a block or more, else cut from its
  /// chunk in memory.
  std::map<std::string, ImageTransform, std::less<>> transforms;
  /// Per video tensor: its clips (a video tensor without an entry gets
  /// VideoClipOptions{}). Video tensors must agree on clips_per_video.
  std::map<std::string, VideoClipOptions, std::less<>> clips;
  ErrorPolicy on_error = ErrorPolicy::kFail;
};

/// One tensor's part of a batch: its samples back to back in one buffer.
class TensorBatch {
 public:
  const std::string& name() const { return name_; }
  DType dtype() const { return dtype_; }
  /// Number of samples (the batch's size).
  size_t size() const { return shapes_.size(); }
  /// True when the samples' shapes differ; then shape() is not defined and
  /// samples are found through offsets() and shapes().
  bool ragged() const { return ragged_; }
  /// [B, ...sample shape] when !ragged().
  const Shape& shape() const { return batch_shape_; }
  /// Every sample's bytes, C order, back to back.
  ByteSpan data() const { return {data_.data(), bytes_}; }
  /// Sample k is data()[offsets()[k], offsets()[k + 1]); size() + 1 entries.
  std::span<const uint64_t> offsets() const { return offsets_; }
  std::span<const Shape> shapes() const { return shapes_; }
  ByteSpan sample(size_t k) const {
    return data().subspan(offsets_[k], offsets_[k + 1] - offsets_[k]);
  }

 private:
  friend class Batch;
  friend class Loader;
  friend struct LoaderBatchWork;
  std::string name_;
  DType dtype_ = DType::kUInt8;
  bool ragged_ = false;
  Shape batch_shape_;
  // Capacity reused from batch to batch (every byte up to bytes_ is written
  // by a decode before the batch is handed out), charged to the loader's
  // budget for as long as it exists, idle or not.
  MutableBuffer data_;
  // What the next batch needs, when more than data_ holds: the fetch stage
  // allocates it (after the pipeline admitted its bytes).
  uint64_t want_capacity_ = 0;
  uint64_t bytes_ = 0;
  std::vector<uint64_t> offsets_;
  std::vector<Shape> shapes_;
};

struct LoaderBatchWork;

/// A batch on loan from the Loader; its buffers go back for reuse when it
/// is destroyed. Move-only.
class Batch {
 public:
  Batch(Batch&&) noexcept;
  Batch& operator=(Batch&&) noexcept;
  ~Batch();

  uint64_t epoch() const;
  /// Its number within the epoch, from 0.
  uint64_t index() const;
  /// Samples in the batch (usually batch_size; the last batch of an epoch
  /// without drop_last, and batches that lost samples under kSkip, hold
  /// fewer).
  size_t size() const;
  /// The dataset indices of its samples, in batch order.
  std::span<const uint64_t> indices() const;
  /// Which clip of its video each sample is (0 .. clips_per_video - 1; all
  /// 0 without video tensors), in batch order.
  std::span<const uint32_t> clips() const;
  /// In LoaderOptions::tensors order.
  std::span<const TensorBatch> tensors() const;
  /// NotFound for a tensor the loader does not load.
  Result<const TensorBatch*> tensor(std::string_view name) const;

 private:
  friend class Loader;
  // The lease returns the batch's buffers and budget bytes when destroyed.
  explicit Batch(Pipeline<LoaderBatchWork>::Lease lease);
  std::unique_ptr<Pipeline<LoaderBatchWork>::Lease> lease_;
};

struct LoaderMetrics {
  /// The pipeline's stages (feeder, fetch, decode) and the consumer's wait.
  PipelineMetrics pipeline;
  uint64_t batches = 0;  // returned by Next()
  uint64_t samples = 0;
  uint64_t sample_bytes = 0;  // output bytes of those samples
  uint64_t skipped_samples = 0;
  uint64_t chunks_read = 0;
  uint64_t bytes_read = 0;  // stored bytes fetched
  /// Ranged reads of samples under per_sample_reads(): the requests, chunk
  /// headers included; the samples of a batch that are neighbours in a
  /// chunk share one.
  uint64_t sample_reads = 0;
  /// Video clips: frames the decoders output, frames they skipped (non-
  /// reference frames before a wanted one; see VideoReadStats), frames put
  /// in batches. decoded ÷ returned is the decoding spent per clip frame.
  uint64_t video_frames_decoded = 0;
  uint64_t video_frames_skipped = 0;
  uint64_t video_frames_returned = 0;
  /// Clips copied from the decode of another clip of their video (clips
  /// per video > 1: one forward decode serves all the clips of a video; see
  /// VideoClipOptions::clips_per_video). Their frames count as returned,
  /// not decoded.
  uint64_t video_clips_shared = 0;
  /// Decodes of a video split among threads by GOP, because fewer videos
  /// than threads were being decoded (a video's GOPs decode independently).
  uint64_t video_split_decodes = 0;
  /// Accounted memory (chunks, free chunk buffers, batch buffers) now and
  /// at most.
  uint64_t memory_budget = 0;
  uint64_t memory_in_use = 0;
  uint64_t memory_peak = 0;
  /// Of memory_in_use: the batch buffers, which the loader keeps (charged)
  /// from batch to batch, in flight or idle, until it is destroyed.
  uint64_t batch_buffer_bytes = 0;
  /// Of memory_in_use: free chunk buffers kept for the next chunks.
  uint64_t free_chunk_buffer_bytes = 0;
  /// Every change the controller made to the fetch workers (stage 0 of
  /// `pipeline`), in order, with when (Decision::t, seconds since the run
  /// started) and why.
  std::vector<Decision> decisions;
};

/// The most fetch workers (chunk reads in flight) a loader runs: enough to
/// cover a store's latency at a decode rate far above one machine's (64
/// reads of 100 ms in flight is 640 chunks a second).
inline constexpr int kMaxFetchWorkers = 64;

class Loader {
 public:
  /// A loader over `dataset` (opened read-only; shared, since batches may
  /// outlive the loader). `state` (from State()) resumes a run: the loader
  /// yields exactly the batches that remained. InvalidArgument for bad
  /// options (unknown tensors, a transform on a non-image tensor, a state
  /// saved for other options).
  static Result<std::unique_ptr<Loader>> Create(
      std::shared_ptr<const Dataset> dataset, LoaderOptions options,
      std::string_view state = {});
  /// Stops at once: queued work is dropped, running decodes finish their
  /// sample batch; never waits for the consumer.
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  /// The next batch; an empty optional at the end of each epoch (the next
  /// call starts the following epoch) and, after the last epoch, from then
  /// on. The first error in plan order is returned after the batches before
  /// it, and again on every later call.
  Result<std::optional<Batch>> Next();
  /// True once the last epoch's end was returned.
  bool done() const;

  /// Restarts at the start of `epoch` (prefetched batches are dropped);
  /// the run then goes on through first_epoch + epochs - 1.
  Status SetEpoch(uint64_t epoch);
  /// The position after the last batch Next() returned, as a small
  /// serializable string (see EncodeSamplerState).
  std::string State() const;

  uint64_t batches_per_epoch() const;
  /// The output bytes of a full batch of samples of mean size (exact for
  /// fixed shapes). With a memory_budget below it, batches are made one at
  /// a time and each alone goes past the budget: callers should warn, as
  /// `shoal bench loader` does.
  uint64_t typical_batch_bytes() const;
  /// The shuffle buffer in effect. Under ShuffleMode::kChunk the samples in
  /// the buffer keep their chunks in memory, so when the options' buffer
  /// would hold more chunks than memory_budget leaves beside two batches,
  /// the loader lowers it until they fit (down to 1: chunk order only).
  /// Smaller chunks mix better at a given budget.
  uint64_t shuffle_buffer() const;
  /// True when a full shuffle reads its samples one by one (each costing a
  /// block read and decompression, however small the sample): the loaded
  /// tensors' chunks, decompressed, do not fit in what memory_budget leaves
  /// beside threads + 2 batches. When they fit, a full shuffle holds each
  /// chunk from the first batch that reads it to the last and runs near the
  /// speed of the others. False for the other shuffles.
  bool per_sample_reads() const;
  /// The plan of the epoch being read (for shuffle-quality reports).
  const EpochPlan& plan() const;
  LoaderMetrics metrics() const;

 private:
  struct Impl;
  explicit Loader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal

#endif  // SHOAL_LOADER_LOADER_H_
