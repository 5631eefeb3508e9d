// Tensor::Impl: one tensor's writer (the open chunk, sealing, tiling) and
// reader (chunk headers and decoded blocks behind small caches). Private to
// format/.
//
// Thread-safety: as Tensor (reads concurrent, writes exclusive). The caches
// are guarded by cache_mu_.
#ifndef SHOAL_FORMAT_INTERNAL_TENSOR_IMPL_H_
#define SHOAL_FORMAT_INTERNAL_TENSOR_IMPL_H_

#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "base/random.h"
#include "codecs/byte_codec.h"
#include "format/chunk.h"
#include "format/dataset.h"
#include "format/internal/metadata.h"
#include "format/internal/sample_codec.h"
#include "format/staged_write.h"

namespace shoal {
namespace internal {

struct RegionPiece;  // tensor_region.cc

/// What every tensor of one open dataset shares.
struct DatasetContext {
  std::shared_ptr<Store> store;
  std::string url;
  bool read_only = false;
  /// Chunks are handed out as PendingChunks instead of being encoded and
  /// stored by the appending thread (format/staged_write.h).
  bool deferred = false;
  /// Chunks cut and not yet taken (deferred mode), in the order cut.
  std::vector<PendingChunk> pending;

  std::mutex id_mu;
  SplitMix64 id_rng{0};
  uint64_t NewId() {
    std::lock_guard<std::mutex> lock(id_mu);
    uint64_t id;
    do id = id_rng.Next();
    while (id == 0);
    return id;
  }
};

/// A least-recently-used map with a byte budget. Not thread-safe: callers
/// hold their own lock.
template <typename Key, typename Value>
class LruCache {
 public:
  explicit LruCache(size_t capacity_bytes) : capacity_(capacity_bytes) {}
  const Value* Find(const Key& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->value;
  }
  void Insert(const Key& key, Value value, size_t bytes) {
    if (bytes > capacity_ || map_.count(key)) return;
    order_.push_front({key, std::move(value), bytes});
    map_[key] = order_.begin();
    used_ += bytes;
    while (used_ > capacity_) {
      used_ -= order_.back().bytes;
      map_.erase(order_.back().key);
      order_.pop_back();
    }
  }

 private:
  struct Entry {
    Key key;
    Value value;
    size_t bytes;
  };
  size_t capacity_;
  size_t used_ = 0;
  std::list<Entry> order_;  // most recently used first
  std::map<Key, typename std::list<Entry>::iterator> map_;
};

}  // namespace internal

class Tensor::Impl {
 public:
  Impl(internal::DatasetContext* context, internal::TensorMeta meta,
       internal::TensorIndex index);
  /// Creates the codecs; Corruption/InvalidArgument for unknown specs.
  Status Init();

  internal::TensorMeta& meta() { return meta_; }
  const internal::TensorMeta& meta() const { return meta_; }
  const std::shared_ptr<const internal::SampleCodec>& sample_codec() const {
    return sample_codec_;
  }
  const internal::TensorIndex& index() const { return index_; }
  /// Bytes of samples in the open chunk.
  uint64_t open_bytes() const { return open_data_.size(); }
  internal::TensorIndex& mutable_index() { return index_; }
  /// Sets the chunk statistics from the index (after deferred writes, whose
  /// sizes arrive late).
  void RecountChunks();
  uint64_t size() const { return meta_.length; }
  void set_hidden_tensors(Tensor* shape, Tensor* info) {
    shape_tensor_ = shape;
    info_tensor_ = info;
  }

  // Writes.
  Status Append(const Shape& shape, ByteSpan data, std::string_view info);
  Status AppendEncoded(ByteSpan encoded, std::string_view info);
  Status AppendVideo(ByteSpan file, const Shape& shape, std::string_view info);
  Status AppendBatch(const Shape& shape, uint64_t count, ByteSpan data);
  Status AppendBatch(std::span<const Shape> shapes, ByteSpan data);
  /// Checks a sample against the spec without appending (sets nothing).
  Status Validate(const Shape& shape, ByteSpan data) const;
  Status ValidateInfo(std::string_view info) const;
  /// The checks of Validate() that need no data (rank, htype rules).
  Status ValidateShape(const Shape& shape) const;
  /// Checks a whole batch, so that a bad sample appends nothing.
  Status ValidateBatch(const Shape& shape, uint64_t count, ByteSpan data) const;
  Status ValidateBatch(std::span<const Shape> shapes, ByteSpan data) const;
  /// Seals the open chunk (if any): writes it, or hands it out when the
  /// dataset defers chunk writes.
  Status SealOpenChunk();
  /// For a commit that keeps the open chunk open (deferred mode): a
  /// reference to a copy of the open chunk, handed out as a PendingChunk
  /// (none when nothing is open; the previous copy again when nothing was
  /// appended since).
  std::optional<internal::ChunkRef> SnapshotOpenChunk();
  /// Forgets the last copy of the open chunk (superseded from the next
  /// commit on).
  void DropOpenSnapshot();
  /// True when the tensor changed since the last commit was prepared.
  bool dirty() const { return dirty_; }
  /// Called when a commit is prepared: forgets (and returns, for deletion
  /// once the commit is in) the chunks that appends superseded since the
  /// last one. Unless deferred, the next append may rewrite the tail chunk.
  std::vector<std::string> OnCommitPrepared();

  // Reads.
  Result<Sample> Read(uint64_t index, const ReadOptions& options) const;
  Result<std::vector<Sample>> ReadRange(uint64_t begin, uint64_t end) const;
  /// The shape of region [lo, hi) of sample `index` of `shape`;
  /// InvalidArgument when it does not fit.
  Result<Shape> RegionShape(uint64_t index, const Shape& shape,
                            std::span<const uint64_t> lo,
                            std::span<const uint64_t> hi) const;
  /// Region [lo, hi) of sample `index`, whose shape (from ReadShape) is
  /// `shape`.
  Result<Sample> ReadRegion(uint64_t index, const Shape& shape,
                            std::span<const uint64_t> lo,
                            std::span<const uint64_t> hi,
                            const ReadOptions& options) const;
  /// ReadRegion() into `out`. Precondition: `out_shape` is
  /// RegionShape(index, shape, lo, hi).
  Status ReadRegionInto(uint64_t index, const Shape& shape,
                        const Shape& out_shape, std::span<const uint64_t> lo,
                        std::span<const uint64_t> hi, MutableByteSpan out,
                        const ReadOptions& options) const;
  Result<Shape> ReadShape(uint64_t index) const;
  Result<std::string> ReadInfo(uint64_t index) const;
  Result<Buffer> ReadStored(uint64_t index) const;
  std::vector<TensorExtent> Extents() const;
  Result<bool> IsTiled(uint64_t index) const;
  Status ReadShapes(uint64_t n, std::span<uint32_t> dims) const;
  Status ForEachInfo(
      uint64_t n,
      const std::function<Status(uint64_t, std::string_view)>& fn) const;
  Result<ExtentData> ReadExtent(size_t i,
                                const BufferAllocator& allocate) const;
  std::vector<Result<ExtentData>> ReadExtents(
      std::span<const size_t> extents, const BufferAllocator& allocate) const;
  void ReadStoredSamples(std::span<const uint64_t> indices,
                         uint64_t coalesce_gap, StoredSamples* out) const;
  Status DecodeInto(ByteSpan stored, const Shape& shape,
                    MutableByteSpan out) const;

  /// "dataset 'URL': tensor 'NAME'".
  std::string Where() const;

 private:
  uint8_t rank() const { return static_cast<uint8_t>(meta_.spec.rank); }
  internal::ChunkRef LastChunkRef() const;
  Status AppendStored(const Shape& shape, ByteSpan stored, uint64_t raw_size,
                      uint64_t count);
  Status AppendTiled(const Shape& shape, ByteSpan data);
  Status AppendHidden(const Shape& shape, uint64_t count,
                      std::string_view info);
  /// Considers the tail chunk for continuing, before the first append of a
  /// sample of `next_sample_bytes` stored bytes.
  Status LoadTailChunk(uint64_t next_sample_bytes);
  /// Cuts a chunk of `layout` from `data` (taken over): encoded and stored
  /// now, or queued as a PendingChunk in deferred mode (the ref's sizes are
  /// then 0 until the commit fills them in). When storing fails, the
  /// samples go back to `*unwritten` (when given) and nothing is counted.
  Result<internal::ChunkRef> WriteChunk(
      const SampleLayout& layout, std::vector<std::byte> data,
      std::vector<std::byte>* unwritten = nullptr);
  void UpdateShapeStats(const Shape& shape);

  /// A range of a chunk object; a chunk shorter than the range is Corruption.
  Result<Buffer> ChunkRange(const std::string& key, uint64_t offset,
                            uint64_t length) const;
  /// A range read of a chunk object as ChunkRange() returns it.
  static Result<Buffer> ChunkReadResult(Result<Buffer> bytes);
  Result<std::shared_ptr<const ChunkHeader>> Header(
      const internal::ChunkRef& ref) const;
  /// The header from the cache, or null.
  std::shared_ptr<const ChunkHeader> CachedHeader(
      const internal::ChunkRef& ref) const;
  /// Decodes and checks the header of `ref` from its `bytes` (exactly
  /// ref.header_bytes) and caches it.
  Result<std::shared_ptr<const ChunkHeader>> ParseHeader(
      const internal::ChunkRef& ref, ByteSpan bytes) const;
  /// Calls `fn` on every extent holding samples below `n`, in order.
  Status ForEachExtent(
      uint64_t n, const std::function<Status(const ExtentData&)>& fn) const;
  /// ReadExtent() of a tiled extent (reassembled into a buffer of its own)
  /// or of the open chunk (a copy).
  Result<ExtentData> ReadExtentAlone(size_t i) const;
  /// The samples of a chunk from its header and its blocks' stored bytes.
  Result<ExtentData> ExtentFromBlocks(const internal::IndexEntry& entry,
                                      const ChunkHeader& header,
                                      const Buffer& stored,
                                      const BufferAllocator& allocate) const;
  /// Uncompressed bytes of blocks [first, last] of a chunk.
  Result<Buffer> Blocks(const internal::ChunkRef& ref,
                        const ChunkHeader& header, size_t first,
                        size_t last) const;
  /// Sample `index` as stored, with its shape and chunk (null while the
  /// sample is in the open chunk). Errors name the chunk and sample.
  struct Stored {
    Buffer bytes;
    Shape shape;
    const internal::ChunkRef* chunk;
  };
  Result<Stored> StoredSample(uint64_t index) const;
  Result<Sample> DecodeSample(Buffer stored, const Shape& shape) const;
  /// Whether Read() of a sample of `range` in a chunk with `header` goes
  /// through ReadRegionInto(): big enough for its blocks to be decompressed
  /// in parallel.
  bool ReadsInParallel(const ChunkHeader& header, ByteRange range) const;
  /// ReadRegionInto()'s first step for one piece: its header checked, the
  /// stored bytes of the blocks under the region read (tensor_region.cc).
  Status PreparePiece(bool tiled, std::span<const uint64_t> lo,
                      std::span<const uint64_t> hi, const Shape& out_shape,
                      MutableByteSpan out, internal::RegionPiece& piece) const;
  std::string ChunkWhere(const internal::ChunkRef& ref) const;

  internal::DatasetContext* context_;
  internal::TensorMeta meta_;
  internal::TensorIndex index_;
  std::shared_ptr<const internal::SampleCodec> sample_codec_;
  std::shared_ptr<const ByteCodec> chunk_codec_;
  Tensor* shape_tensor_ = nullptr;
  Tensor* info_tensor_ = nullptr;

  // The open chunk: samples appended but not yet in a chunk object.
  std::vector<std::byte> open_data_;
  SampleLayout open_layout_;
  bool tail_checked_ = false;  // the tail chunk was considered for rewrite
  // The copy of the open chunk made for the last commit (deferred mode),
  // while nothing has been appended since.
  std::optional<internal::ChunkRef> open_snapshot_;
  bool snapshot_current_ = false;
  std::vector<uint64_t> superseded_;  // chunk ids replaced since the commit
  bool dirty_ = false;
  std::vector<std::byte> scratch_;  // sample compression output, reused

  mutable std::mutex cache_mu_;
  mutable internal::LruCache<uint64_t, std::shared_ptr<const ChunkHeader>>
      headers_{4 << 20};
  mutable internal::LruCache<std::pair<uint64_t, size_t>, Buffer> blocks_{
      8 << 20};
};

}  // namespace shoal

#endif  // SHOAL_FORMAT_INTERNAL_TENSOR_IMPL_H_
