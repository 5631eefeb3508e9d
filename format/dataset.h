// Dataset and Tensor: create, open, append to and read a shoal dataset.
//
// A dataset is a set of named tensors (columns) under a Store URL. Each
// tensor is a sequence of samples (n-dimensional arrays of one dtype) kept in
// immutable ~8 MB chunks. Appends go to an open chunk per tensor; full chunks
// are written at once; Flush() commits: it writes the open chunks, then the
// chunk indexes and metadata, then switches the dataset's HEAD to them in one
// atomic step. A reader (or a process that crashed and reopened) always sees
// the last commit, whole.
//
// clang-format off
//   SHOAL_ASSIGN_OR_RETURN(auto ds, Dataset::Create("file:///data/mnist"));
//   SHOAL_ASSIGN_OR_RETURN(Tensor* images, ds->CreateTensor(
//       {.name = "images", .htype = HType::kImage, .chunk_compression = "lz4"}));
//   SHOAL_RETURN_IF_ERROR(images->Append(Shape{28, 28, 1}, bytes));
//   SHOAL_RETURN_IF_ERROR(ds->Flush());
// clang-format on
//
// Each data tensor has two hidden tensors: `_shape/<name>` (every sample's
// shape as uint32 dims) and `_info/<name>` (every sample's info JSON, empty
// when none), so shapes and info are read without touching sample data.
//
// Tensors may have different lengths (ragged). len() is the shortest,
// max_len() the longest; reading past a tensor's end is OutOfRange, unless
// ReadOptions::pad asks for an empty sample instead.
//
// Thread-safety: reads (const methods of Dataset and Tensor) may run
// concurrently with each other. Writes (Append*, CreateTensor, Flush, Close)
// need exclusive access: no other call on the same Dataset may run at the
// same time, except the staged-write calls as documented on them (a writer
// thread appends while a commit thread commits). One process writes a
// dataset at a time; DatasetLock (format/lock.h) enforces it for writers
// that take it.
#ifndef SHOAL_FORMAT_DATASET_H_
#define SHOAL_FORMAT_DATASET_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "base/types.h"
#include "format/chunk.h"
#include "format/schema.h"
#include "format/staged_write.h"
#include "format/store.h"

namespace shoal {

class ImageCodec;

class Dataset;

/// One decoded sample. `data` holds shape.ByteSize(dtype) bytes, C order; it
/// is often a zero-copy slice of a chunk's buffer.
struct Sample {
  DType dtype = DType::kUInt8;
  Shape shape;
  Buffer data;
};

/// One unit of I/O of a tensor: a chunk of consecutive samples, one tiled
/// sample (all its tiles), or the samples appended but not yet flushed.
struct TensorExtent {
  uint64_t first_sample = 0;
  uint64_t num_samples = 0;
  /// Bytes read from the store to load it (0 for unflushed samples).
  uint64_t stored_bytes = 0;
  bool tiled = false;
  /// The chunk object's key, for messages ("" for unflushed samples; the
  /// first tile's for a tiled sample).
  std::string chunk_key;
};

/// The samples of one extent, read at once (Tensor::ReadExtent): slices of
/// one buffer, no per-sample copies. A sample's bytes are as stored — still
/// encoded when encoded() (decode with Tensor::DecodeInto or an image codec
/// from Tensor::ImageCodecFor) — except that a tiled sample comes
/// reassembled and decoded.
class ExtentData {
 public:
  ExtentData() = default;
  ExtentData(uint64_t first_sample, Buffer data, SampleLayout layout,
             bool encoded)
      : first_(first_sample),
        data_(std::move(data)),
        layout_(std::move(layout)),
        encoded_(encoded) {}

  uint64_t first_sample() const { return first_; }
  uint64_t size() const { return layout_.num_samples(); }
  bool encoded() const { return encoded_; }
  /// `j` counts from first_sample(). Preconditions: j < size().
  Shape shape(uint64_t j) const { return layout_.shape(j); }
  ByteSpan bytes(uint64_t j) const {
    const ByteRange r = layout_.range(j);
    return data_.span().subspan(r.offset, r.size);
  }
  /// The bytes of sample j as a Buffer sharing this extent's storage.
  Buffer slice(uint64_t j) const {
    const ByteRange r = layout_.range(j);
    return data_.Slice(r.offset, r.size);
  }
  /// Bytes held in memory (what a loader charges to its budget): the whole
  /// allocation the extent keeps alive, which may be more than its bytes
  /// (a pooled buffer, a response holding its neighbours).
  uint64_t memory_bytes() const { return data_.capacity(); }

 private:
  uint64_t first_ = 0;
  Buffer data_;
  SampleLayout layout_;
  bool encoded_ = false;
};

/// What Tensor::ReadStoredSamples read; reused from call to call.
struct StoredSamples {
  /// One per index: the sample's stored bytes (a slice of what its read
  /// brought, shared with its neighbours), or its error.
  std::vector<Result<Buffer>> samples;
  /// Ranged reads sent (chunk headers included) and the bytes they brought.
  uint64_t reads = 0;
  uint64_t bytes_read = 0;
};

struct ReadOptions {
  /// Past the tensor's end, return an empty sample (all-zero shape of the
  /// tensor's rank, no data) instead of OutOfRange.
  bool pad = false;
  /// Threads that decompress the blocks of one large sample (one whole
  /// tiled or multi-block sample, or a region of it) in parallel: 0 all of
  /// the calling oneTBB arena's (inside the loader, the loader's threads;
  /// elsewhere oneTBB's default, one per core, or those of a
  /// tbb::task_arena the caller runs the read in), 1 only the caller.
  int max_threads = 0;
};

/// Statistics of a tensor (as of the last append).
struct TensorStats {
  uint64_t num_samples = 0;
  uint64_t num_chunks = 0;    // committed or written chunk objects
  uint64_t raw_bytes = 0;     // decoded sample bytes
  uint64_t stored_bytes = 0;  // chunk object bytes
  Shape min_shape, max_shape;
};

class Tensor {
 public:
  virtual ~Tensor() = default;

  const std::string& name() const;
  /// "dataset '<url>': tensor '<name>'", how its errors start.
  std::string where() const;
  /// The normalized spec (dtype set; rank -1 until the first sample).
  const TensorSpec& spec() const;
  DType dtype() const { return *spec().dtype; }
  HType htype() const { return spec().htype; }
  bool hidden() const;
  /// Number of samples, including appended ones not yet flushed.
  uint64_t size() const;
  TensorStats stats() const;

  // ---- Writes (exclusive access; see the file comment) ----

  /// Appends one sample: `data` holds shape.ByteSize(dtype()) bytes in C
  /// order. `info_json` (a JSON object, or empty) goes to the info tensor.
  Status Append(const Shape& shape, ByteSpan data,
                std::string_view info_json = {});
  /// Appends an image given encoded (JPEG, PNG; the format is read from the
  /// bytes, not trusted from a file name). Bytes already in the tensor's
  /// sample_compression (any format for "image") are stored as they are
  /// after their header is checked (which gives the shape); others are
  /// decoded and re-encoded.
  /// InvalidArgument unless the tensor compresses samples with an image
  /// codec; Corruption when the image cannot be read.
  Status AppendEncoded(ByteSpan encoded, std::string_view info_json = {});
  /// Appends a video file (mp4, mov, mkv, webm ...) stored as it came, to a
  /// video tensor (sample_compression "mp4"). The format cannot read video:
  /// the caller gives its `shape` [frames, height, width, 3] and info (the
  /// frame index from shoal::ProbeVideo, video/video.h, under "video").
  /// Never tiled. InvalidArgument for other tensors or a bad shape.
  Status AppendVideo(ByteSpan file, const Shape& shape,
                     std::string_view info_json = {});
  /// Appends `count` samples of one shape stored back to back in `data`
  /// (the fast path: no per-sample work beyond a copy).
  Status AppendBatch(const Shape& sample_shape, uint64_t count, ByteSpan data);
  /// Appends shapes.size() samples whose bytes are concatenated in `data`.
  Status AppendBatch(std::span<const Shape> shapes, ByteSpan data);

  // ---- Reads (thread-safe) ----

  Result<Sample> Read(uint64_t index, const ReadOptions& options = {}) const;
  /// Read() into the caller's `out`, which holds exactly the sample's bytes
  /// (ReadShape(index) of dtype()). InvalidArgument for another size.
  Status ReadInto(uint64_t index, MutableByteSpan out,
                  const ReadOptions& options = {}) const;
  /// Samples [begin, end) in order; chunks are fetched once each.
  Result<std::vector<Sample>> ReadRange(uint64_t begin, uint64_t end) const;
  /// The part [lo, hi) of a sample (per dimension). Only the tiles that
  /// overlap the region are read and, in each (and in an untiled sample's
  /// chunk), only the blocks that hold part of it, checked and decompressed
  /// in parallel (ReadOptions::max_threads). A tensor that compresses
  /// samples one by one (sample_compression) decodes the whole sample, or
  /// each overlapping tile, first.
  Result<Sample> ReadRegion(uint64_t index, std::span<const uint64_t> lo,
                            std::span<const uint64_t> hi,
                            const ReadOptions& options = {}) const;
  /// ReadRegion() into the caller's `out`, which holds exactly the region's
  /// bytes. InvalidArgument for another size.
  Status ReadRegionInto(uint64_t index, std::span<const uint64_t> lo,
                        std::span<const uint64_t> hi, MutableByteSpan out,
                        const ReadOptions& options = {}) const;
  /// The sample's shape, from the hidden shape tensor (no data is read).
  Result<Shape> ReadShape(uint64_t index) const;
  /// The sample's info JSON ("" when none).
  Result<std::string> ReadInfo(uint64_t index) const;
  /// The sample's bytes as stored: compressed when the tensor compresses
  /// samples, else the raw array. InvalidArgument for a tiled sample.
  Result<Buffer> ReadStored(uint64_t index) const;
  /// The image codec that decodes `stored` (bytes from ReadStored) of an
  /// image tensor: the tensor's codec, or for sample_compression "image"
  /// the one whose signature the bytes carry. Callers decode with their own
  /// options (scale, region, channels). InvalidArgument for tensors without
  /// an image sample_compression; Corruption for unknown bytes.
  Result<const ImageCodec*> ImageCodecFor(ByteSpan stored) const;

  // ---- Bulk reads for loaders (thread-safe) ----

  /// The tensor's extents in sample order; together they cover [0, size()).
  std::vector<TensorExtent> Extents() const;
  /// Every sample of extent `i` of Extents(), with one read of the chunk
  /// object (its blocks decompressed at once, into a buffer from `allocate`
  /// when given). Errors name the chunk.
  Result<ExtentData> ReadExtent(size_t i,
                                const BufferAllocator& allocate = {}) const;
  /// ReadExtent() of each of `extents`, their chunk objects read together
  /// (Store::ReadRanges: over a network, one round trip for all), each in
  /// one read with its header unless that is cached. One result per entry.
  std::vector<Result<ExtentData>> ReadExtents(
      std::span<const size_t> extents,
      const BufferAllocator& allocate = {}) const;
  /// ReadStored() of each of `indices`, into `out`, with few requests: the
  /// headers of the chunks not cached are read together, then per chunk the
  /// blocks its samples need, where two samples' blocks less than
  /// `coalesce_gap` stored bytes apart come in one ranged read (the bytes
  /// between are read and checked too), all reads sent together. Every
  /// block read is verified, as ReadStored() verifies. A tiled sample is
  /// InvalidArgument (Read it whole); errors name chunk and sample.
  void ReadStoredSamples(std::span<const uint64_t> indices,
                         uint64_t coalesce_gap, StoredSamples* out) const;
  /// Whether sample `index` is tiled (stored as tiles in chunks of their
  /// own, so ReadStored has no single form for it: Read it whole).
  Result<bool> IsTiled(uint64_t index) const;
  /// The shapes of samples [0, n), rank() dimensions each, into `dims`
  /// (n * rank values), read from the shape records chunk by chunk: no
  /// per-sample allocation. For a tensor whose shapes differ (stats()
  /// min_shape != max_shape); a fixed shape is stats().min_shape.
  Status ReadShapes(uint64_t n, std::span<uint32_t> dims) const;
  /// Calls `fn(index, info_json)` for samples 0 .. n-1 in order, reading the
  /// infos chunk by chunk (the view lives for the call). Stops at the first
  /// error `fn` returns.
  Status ForEachInfo(
      uint64_t n,
      const std::function<Status(uint64_t, std::string_view)>& fn) const;
  /// Decodes stored bytes of one sample (ExtentData::bytes, ReadStored)
  /// into `out`, which holds exactly shape.ByteSize(dtype()) bytes; a copy
  /// when the tensor does not compress samples. Corruption when the bytes
  /// do not decode to `shape`.
  Status DecodeInto(ByteSpan stored, const Shape& shape,
                    MutableByteSpan out) const;

 private:
  friend class Dataset;
  class Impl;
  explicit Tensor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct CreateOptions {
  /// Replace an existing dataset at the URL. The old one stays whole (and
  /// is what readers open) until the new one's first commit, which deletes
  /// its objects. Also allows creating in a location that holds other
  /// objects but no dataset (they are left alone).
  bool overwrite = false;
  /// Seed of the generator that names chunks; 0 picks a random seed. Tests
  /// set it to get byte-identical datasets.
  uint64_t id_seed = 0;
  /// The writer (rank) this dataset object writes as: its samples form the
  /// writer's segment, placed after lower ranks' (format/FORMAT.md,
  /// "Several writers").
  uint32_t writer = 0;
  /// When a dataset is there already, open it for writing as `writer`
  /// instead of failing: the writers of one job create it together,
  /// whoever comes first. Not with `overwrite`.
  bool join = false;
};

struct OpenOptions {
  bool read_only = false;
  uint64_t id_seed = 0;
  /// For writing: the writer (rank) whose segment this object reads and
  /// appends to; by default the last segment, so that appends go at the
  /// end. A reader (read_only) sees every segment, in rank order.
  std::optional<uint32_t> writer;
};

class Dataset {
 public:
  /// Creates an empty dataset (committed at once, so it opens right away;
  /// when replacing one, at the first Flush). AlreadyExists when one is
  /// there and !options.overwrite; FailedPrecondition when the location
  /// holds other objects and !options.overwrite.
  static Result<std::unique_ptr<Dataset>> Create(
      std::string_view url, const CreateOptions& options = {});
  /// Opens the last commit. NotFound when there is no dataset at `url`.
  static Result<std::unique_ptr<Dataset>> Open(std::string_view url,
                                               const OpenOptions& options = {});
  /// Deletes the dataset at `url`: HEAD first, so that it stops opening at
  /// once, then its other objects. NotFound when there is none. No Dataset
  /// object may be open on it.
  static Status Remove(std::string_view url);

  /// Flushes and closes when still open, silently: call Close() first to
  /// see whether that worked.
  ~Dataset();
  Dataset(const Dataset&) = delete;
  Dataset& operator=(const Dataset&) = delete;

  const std::string& url() const;
  bool read_only() const;
  /// The number of the commit this dataset was opened at or last wrote
  /// (any thread).
  uint64_t commit() const;
  /// The writer state the opened commit recorded for this object's writer
  /// (a JSON object, or "" when none): where an ingestion was when it
  /// committed.
  const std::string& writer_state() const;
  /// The writer (rank) this object writes as; 0 for a reader.
  uint32_t writer() const;
  /// Writers with a segment or a state in the opened commit, ascending.
  std::vector<uint32_t> writers() const;
  const std::shared_ptr<Store>& store() const;

  /// Adds a tensor (and its hidden tensors). Allowed on a dataset with data;
  /// the new tensor starts empty. AlreadyExists for a taken name.
  Result<Tensor*> CreateTensor(TensorSpec spec);
  /// The tensor named `name` (hidden ones too); NotFound otherwise.
  Result<Tensor*> tensor(std::string_view name) const;
  /// Visible tensors in creation order; hidden ones too when asked.
  std::vector<Tensor*> tensors(bool include_hidden = false) const;

  /// Length of the shortest / longest visible tensor (0 with no tensors).
  uint64_t len() const;
  uint64_t max_len() const;

  /// A row: one sample for each visible tensor.
  struct RowValue {
    std::string_view tensor;
    Shape shape;
    ByteSpan data;
    std::string_view info_json = {};
  };
  /// Appends one sample to every visible tensor. All values are checked
  /// before any is appended.
  Status Append(std::span<const RowValue> row);

  /// A column of a columnar batch: `count` samples for one tensor, either of
  /// one shape (`sample_shape`, `shapes` empty) or of per-sample `shapes`.
  struct Column {
    std::string_view tensor;
    uint64_t count = 0;
    Shape sample_shape;
    std::span<const Shape> shapes = {};
    ByteSpan data;
  };
  /// Appends the same number of samples to every visible tensor.
  Status AppendColumns(std::span<const Column> columns);

  /// Commits everything appended so far (see the file comment).
  /// FailedPrecondition while chunk writes are deferred.
  Status Flush();
  /// Flush() (when writable, unless chunk writes are deferred: a deferred
  /// writer's last Commit() is what is in) and release the dataset; later
  /// writes fail.
  Status Close();

  // ---- Staged writes (format/staged_write.h), for a parallel writer ----

  /// From now on, chunks that appends cut are handed out by
  /// TakePendingChunks() instead of being encoded and stored at once, and
  /// commits go through PrepareCommit() and Commit(); Flush() is refused.
  /// Reads of samples appended meanwhile are not allowed until
  /// FinishDeferredWrites(). Call before appending.
  Status DeferChunkWrites();
  /// The chunks cut since the last call, in the order cut (writer thread).
  std::vector<PendingChunk> TakePendingChunks();
  /// Bytes of samples held in open chunks, not yet cut (writer thread): with
  /// the pending chunks' memory_bytes(), what a writer's budget must count.
  uint64_t OpenChunkBytes() const;
  /// Snapshots the dataset as appended so far for a commit (writer thread):
  /// copies of the open chunks become further pending chunks (take them
  /// after this call) and the open chunks stay open, so chunk boundaries do
  /// not depend on commits. `final` seals the open chunks instead, as the
  /// end of a writer's work. `writer_state` (a JSON object, or "") is kept
  /// in the commit for the writer (Dataset::writer_state). Null when nothing
  /// changed since the last call.
  Result<CommitPointPtr> PrepareCommit(bool final = false,
                                       std::string writer_state = {});
  /// Records that `chunks` (encoded) are stored (commit thread, in order).
  void ChunksWritten(std::span<const PendingChunk> chunks);
  /// Commits `point` (commit thread; commits in the order prepared). Every
  /// chunk taken before `point` was prepared must have been reported by
  /// ChunksWritten(); Internal otherwise. May run while the writer thread
  /// appends. On error nothing of `point` is in; the previous commit stands,
  /// and points prepared before the error are refused (FailedPrecondition:
  /// they miss what the failed one held); the next one prepared holds it.
  Status Commit(CommitPoint& point);
  /// Ends deferred writes once every commit is done and no other thread
  /// uses the dataset: reads and stats() are whole again.
  Status FinishDeferredWrites();

 private:
  class Impl;
  explicit Dataset(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// FailedPrecondition when `url` (file:// or a plain path) lies inside
/// another dataset's folder, where that dataset's `verify --repair` would
/// delete it as garbage and copies of it would carry it. Dataset::Create and
/// CopyDataset check it before making the folder; other stores pass.
Status NotInsideADataset(const std::string& url);

}  // namespace shoal

#endif  // SHOAL_FORMAT_DATASET_H_
