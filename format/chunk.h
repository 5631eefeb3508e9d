// Chunks: the immutable objects that hold a tensor's samples.
//
// A chunk is a header followed by data blocks (layout in format/FORMAT.md).
// The header records every sample's byte range and shape (run-length
// encoded), and a block table: the sample data is cut into blocks of
// `block_bytes` that are compressed (or stored) independently, each with its
// own checksum. So one sample is read with one header read plus one range
// read of the blocks it overlaps, only those blocks are decompressed, and the
// blocks of a chunk can be decompressed in parallel.
//
// ChunkBuilder collects samples (already sample-compressed, if the tensor
// compresses samples) and encodes a chunk. ChunkHeader decodes and checks a
// header read from the store. DecodeBlocks turns stored blocks back into
// sample data.
//
// Thread-safety: ChunkBuilder has one owner. A decoded ChunkHeader is
// immutable and may be shared between threads.
#ifndef SHOAL_FORMAT_CHUNK_H_
#define SHOAL_FORMAT_CHUNK_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "base/types.h"
#include "codecs/byte_codec.h"

namespace shoal {

inline constexpr char kChunkMagic[4] = {'S', 'H', 'C', 'K'};
inline constexpr uint16_t kChunkVersion = 1;
/// Bytes of a chunk's fixed prefix: magic, version, flags, header size.
inline constexpr size_t kChunkPrefixBytes = 12;
/// A chunk header larger than this is rejected as corrupt before it is read.
inline constexpr uint32_t kMaxChunkHeaderBytes = 64u << 20;

/// A half-open byte range [offset, offset + size).
struct ByteRange {
  uint64_t offset = 0;
  uint64_t size = 0;
  uint64_t end() const { return offset + size; }
};

/// How one block is stored.
struct BlockInfo {
  uint64_t stored_offset = 0;  // from the start of the chunk object
  uint64_t stored_size = 0;
  uint64_t raw_offset = 0;  // in the chunk's uncompressed sample data
  uint64_t raw_size = 0;
  bool compressed = false;  // false: stored as is (incompressible or "raw")
  uint64_t checksum = 0;    // XXH3-64 of the stored bytes
};

/// The samples a chunk builder holds so far, in append order. Shapes and
/// sizes are run-length encoded, so appending a fixed-shape sample costs no
/// allocation.
class SampleLayout {
 public:
  void Add(const Shape& shape, uint64_t stored_size, uint64_t count = 1);
  void Clear();

  uint64_t num_samples() const { return num_samples_; }
  uint64_t data_size() const { return data_size_; }
  /// Preconditions: index < num_samples().
  Shape shape(uint64_t index) const;
  ByteRange range(uint64_t index) const;

  struct ShapeRun {
    uint64_t first;  // index of the run's first sample
    uint64_t count;
    Shape shape;
  };
  struct SizeRun {
    uint64_t first;
    uint64_t count;
    uint64_t size;
    uint64_t offset;  // data offset of the run's first sample
  };
  const std::vector<ShapeRun>& shape_runs() const { return shape_runs_; }
  const std::vector<SizeRun>& size_runs() const { return size_runs_; }

  /// Rebuilds from decoded runs; Corruption if they are inconsistent.
  static Result<SampleLayout> FromRuns(std::vector<ShapeRun> shape_runs,
                                       std::vector<SizeRun> size_runs);

 private:
  std::vector<ShapeRun> shape_runs_;
  std::vector<SizeRun> size_runs_;
  uint64_t num_samples_ = 0;
  uint64_t data_size_ = 0;
};

/// What a chunk stores besides its samples: fixed per tensor.
struct ChunkFormat {
  DType dtype = DType::kUInt8;
  uint8_t rank = 0;
  /// Spec of the per-sample codec ("" = samples stored raw).
  std::string sample_codec;
  /// Spec of the block codec ("" = blocks stored raw).
  std::string chunk_codec;
  uint64_t block_bytes = 128 << 10;
};

/// An encoded chunk, ready to write.
struct EncodedChunk {
  Buffer bytes;
  uint32_t header_size = 0;
};

/// Encodes a chunk from its samples' stored bytes (contiguous, in order) and
/// their layout. `codec` compresses the blocks (null: stored raw).
Result<EncodedChunk> EncodeChunk(const ChunkFormat& format,
                                 const SampleLayout& layout, ByteSpan data,
                                 const ByteCodec* codec);

class ChunkHeader {
 public:
  /// The header size recorded in a chunk's first kChunkPrefixBytes bytes;
  /// Corruption when the magic or version is wrong.
  static Result<uint32_t> PeekHeaderSize(ByteSpan prefix);
  /// Decodes and checks (magic, version, checksum, internal consistency)
  /// the header at the start of `bytes`. `chunk_size`, when known, is the
  /// size of the whole object; the block table must fit it exactly.
  static Result<std::shared_ptr<const ChunkHeader>> Decode(
      ByteSpan bytes, std::optional<uint64_t> chunk_size = std::nullopt);

  const ChunkFormat& format() const { return format_; }
  uint32_t header_size() const { return header_size_; }
  /// The header's checksum (its last 8 bytes). It covers the block table,
  /// whose checksums cover the blocks, so it identifies the whole chunk: the
  /// chunk index records it to bind each chunk to its place.
  uint64_t checksum() const { return checksum_; }
  uint64_t num_samples() const { return layout_.num_samples(); }
  uint64_t data_size() const { return layout_.data_size(); }
  /// Total bytes of the chunk object (header + stored blocks).
  uint64_t chunk_size() const { return chunk_size_; }
  const SampleLayout& layout() const { return layout_; }
  const std::vector<BlockInfo>& blocks() const { return blocks_; }

  /// The blocks [first, last] that hold `range` of the sample data.
  std::pair<size_t, size_t> BlocksFor(ByteRange range) const;

 private:
  ChunkFormat format_;
  uint32_t header_size_ = 0;
  uint64_t checksum_ = 0;
  uint64_t chunk_size_ = 0;
  SampleLayout layout_;
  std::vector<BlockInfo> blocks_;
};

/// Checks and decodes blocks [first, last] of a chunk. `stored` holds the
/// stored bytes of exactly those blocks, contiguous (as one range read
/// returns them). Returns their uncompressed bytes, contiguous; when every
/// block is stored raw the result is a zero-copy slice of `stored`.
/// `codec` must be the chunk's block codec (null when chunk_codec is "").
Result<Buffer> DecodeBlocks(const ChunkHeader& header, size_t first,
                            size_t last, const Buffer& stored,
                            const ByteCodec* codec,
                            const BufferAllocator& allocate = nullptr);

}  // namespace shoal

#endif  // SHOAL_FORMAT_CHUNK_H_
