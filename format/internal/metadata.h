// Encoding of the dataset's non-chunk objects: the commit pointer (HEAD),
// the dataset metadata and the per-tensor chunk indexes, each wrapped in the
// common object envelope (magic, version, length, XXH3 checksum). Byte
// layouts are in format/FORMAT.md.
//
// Thread-safety: plain values and pure functions.
#ifndef SHOAL_FORMAT_INTERNAL_METADATA_H_
#define SHOAL_FORMAT_INTERNAL_METADATA_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "base/types.h"
#include "format/schema.h"

namespace shoal::internal {

/// Envelope versions: HEAD and commit objects are at 1; metadata at 1, or 2
/// when it has writer segments (a dataset written by several writers);
/// chunk indexes at 2, which adds each chunk's header checksum (version 1
/// indexes still read).
inline constexpr uint16_t kObjectVersion = 1;
inline constexpr uint16_t kSegmentedMetaVersion = 2;
inline constexpr uint16_t kIndexVersion = 2;
inline constexpr std::string_view kHeadMagic = "SHHD";
inline constexpr std::string_view kMetaMagic = "SHMD";
inline constexpr std::string_view kIndexMagic = "SHIX";
inline constexpr std::string_view kHeadKey = "HEAD";

/// Wraps `payload` in the object envelope.
std::string EncodeObject(std::string_view magic, std::string_view payload,
                         uint16_t version = kObjectVersion);
/// Checks the envelope of `bytes` (which must be exactly one object, of a
/// version from 1 to `max_version`, stored in `version` when given) and
/// returns the payload. Corruption names `what` on any mismatch.
Result<ByteSpan> DecodeObject(ByteSpan bytes, std::string_view magic,
                              std::string_view what,
                              uint16_t max_version = kObjectVersion,
                              uint16_t* version = nullptr);

/// The payload of HEAD and of the commit objects (commits/<n>).
struct Head {
  uint64_t commit = 0;
  std::string meta_key;
};
std::string EncodeHead(const Head& head);
Result<Head> DecodeHead(ByteSpan bytes);

/// One chunk as the index knows it: enough to read its header and blocks
/// without asking the store for sizes.
struct ChunkRef {
  uint64_t id = 0;  // names the object chunks/<tensor id>/<16 hex digits>
  uint64_t num_samples = 0;
  uint64_t chunk_bytes = 0;
  uint32_t header_bytes = 0;
  /// The chunk header's checksum, binding the object to this place; 0 when
  /// not recorded (indexes of format version 1).
  uint64_t header_checksum = 0;
};

/// Corruption unless the chunk `header` (read from the object `ref` names)
/// is the one the index recorded there: a chunk copied or swapped from
/// elsewhere has another checksum.
Status CheckChunkBinding(const ChunkRef& ref, uint64_t header_checksum);

/// A sample stored as tiles, one chunk (of one sample) per tile, in
/// row-major order of the tile grid.
struct TiledSample {
  Shape shape;
  Shape tile_shape;
  std::vector<ChunkRef> tiles;

  /// Number of tiles along each dimension.
  Shape Grid() const;
};

/// One entry of a tensor's chunk index: a chunk of consecutive samples, or
/// one tiled sample.
struct IndexEntry {
  uint64_t first_sample = 0;
  ChunkRef chunk;                            // when tiled == nullptr
  std::shared_ptr<const TiledSample> tiled;  // one sample, many chunks
  uint64_t num_samples() const { return tiled ? 1 : chunk.num_samples; }
};

/// The ordered chunks of one tensor.
class TensorIndex {
 public:
  const std::vector<IndexEntry>& entries() const { return entries_; }
  uint64_t num_samples() const { return num_samples_; }

  void AddChunk(const ChunkRef& chunk);
  void AddTiled(std::shared_ptr<const TiledSample> tiled);
  /// Adds `other`'s entries after these (the next writer's segment).
  void Append(const TensorIndex& other);
  /// Removes the last entry (a partly filled chunk about to be rewritten).
  void PopBack();
  /// Calls `update` on every chunk ref (tiles too), in order; stops at the
  /// first error.
  Status UpdateRefs(const std::function<Status(ChunkRef&)>& update);
  /// Sums the bytes and counts the chunk objects (tiles too) referenced.
  void CountChunks(uint64_t* stored_bytes, uint64_t* num_chunks) const;

  /// The position in entries() of the entry holding `sample`.
  /// Precondition: sample < num_samples().
  size_t Find(uint64_t sample) const;

  std::string Encode(uint8_t rank) const;
  static Result<TensorIndex> Decode(ByteSpan payload, uint8_t rank);

 private:
  std::vector<IndexEntry> entries_;
  uint64_t num_samples_ = 0;
};

/// The samples of one tensor that one writer added: a dataset's tensor is
/// the concatenation of its segments in the order of their writers' ranks.
/// A dataset with one writer has one segment, writer 0.
struct Segment {
  uint32_t writer = 0;
  std::string index_key;  // "" while it has no chunks
  uint64_t length = 0;
  uint64_t raw_bytes = 0;
  uint64_t stored_bytes = 0;
  uint64_t num_chunks = 0;
  Shape min_shape, max_shape;
};

/// A tensor as the metadata records it.
struct TensorMeta {
  uint32_t id = 0;
  TensorSpec spec;  // normalized; rank -1 until the first sample
  bool hidden = false;
  /// For data tensors: ids of their hidden shape and info tensors.
  /// For hidden tensors: the id of the tensor they describe.
  int64_t shape_tensor = -1;
  int64_t info_tensor = -1;
  int64_t parent = -1;
  // Length and statistics (for `shoal info`): of the whole tensor as
  // decoded, of one segment in a writer's view (see SegmentView).
  uint64_t length = 0;
  std::string index_key;      // a writer's view: its segment's index
  uint64_t raw_bytes = 0;     // bytes of the decoded samples
  uint64_t stored_bytes = 0;  // bytes of the chunk objects
  uint64_t num_chunks = 0;
  Shape min_shape, max_shape;  // elementwise over all samples
  /// As stored: by writer rank, ascending; the totals above are over them.
  std::vector<Segment> segments;

  /// The segment of `writer`, or nullptr.
  const Segment* FindSegment(uint32_t writer) const;
  /// Recomputes the totals (length, statistics) from `segments`.
  void SumSegments();
  /// The length, statistics and index_key above as `writer`'s segment.
  Segment AsSegment(uint32_t writer) const;
};

/// Widens [lo, hi] elementwise to hold `s`; `first` starts them at `s`.
void ElementwiseMinMax(const Shape& s, Shape& lo, Shape& hi, bool first);

/// `meta` as one writer sees it: length, statistics and index_key of its
/// own segment (zero and "" when it has none).
TensorMeta SegmentView(const TensorMeta& meta, uint32_t writer);

struct DatasetMeta {
  uint64_t commit = 0;
  uint32_t next_tensor_id = 0;
  std::vector<TensorMeta> tensors;
  /// Each writer's own state at this commit (a JSON object; writers
  /// without one are absent): an ingestion's position, so that it can
  /// resume.
  std::map<uint32_t, std::string> writers;
};

/// Folds one writer's view of a commit into the latest commit's metadata:
/// the writer's segment of every tensor in `mine` replaces its segment in
/// `latest` (tensors `latest` lacks are added), and its writer state
/// replaces its state. Tensors must agree in id, name and type; a conflict
/// is FailedPrecondition naming the tensor.
Result<DatasetMeta> MergeWriter(DatasetMeta latest, const DatasetMeta& mine,
                                uint32_t writer);

std::string EncodeDatasetMeta(const DatasetMeta& meta);
Result<DatasetMeta> DecodeDatasetMeta(ByteSpan bytes);

/// Object keys.
// The most bytes one decoded sample of a tensor may hold; a stored shape
// that claims more is corrupt. A raw sample above the tiling threshold would
// have been tiled, so the threshold bounds it; an encoded one (an image
// stored as it came, never tiled) and a tensor that never tiles have only
// the fixed cap, 2 GiB.
uint64_t MaxDecodedSampleBytes(const TensorSpec& spec);

std::string ChunkKey(uint32_t tensor_id, uint64_t chunk_id);
std::string IndexKey(uint32_t tensor_id, uint64_t commit, uint64_t nonce);
std::string MetaKey(uint64_t commit, uint64_t nonce);
/// "commits/" + the commit number in 20 digits, so that keys sort by number.
std::string CommitKey(uint64_t commit);

}  // namespace shoal::internal

#endif  // SHOAL_FORMAT_INTERNAL_METADATA_H_
