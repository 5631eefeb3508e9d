// Staged writes: the steps of a dataset's write path, taken apart so that a
// parallel write graph (loader/ingestor.h) can overlap them.
//
// A Dataset normally encodes and stores each chunk on the appending thread
// when it fills, and Flush() commits. With deferred chunk writes
// (Dataset::DeferChunkWrites) the steps are separate:
//
//   append (one writer thread, in order)
//     -> Dataset::TakePendingChunks()    chunks cut, not yet encoded
//     -> PendingChunk::Encode()          block compression (any thread)
//     -> PendingChunk::Write(store)      one object each (any thread)
//     -> Dataset::ChunksWritten(chunks)  in order, on the commit thread
//     -> Dataset::Commit(point)          on the commit thread
//
// Dataset::PrepareCommit(), called on the writer thread, snapshots the
// dataset as appended so far: sealed chunks plus a copy of every open
// (partly filled) chunk as a further PendingChunk. The commit thread applies
// the snapshot once every chunk taken before it has been reported written;
// the open chunks go on filling meanwhile, so where chunks are cut never
// depends on when commits happen. A later commit supersedes (and deletes)
// the partial copies of the one before.
//
// Thread-safety: Encode() and Write() of different PendingChunks may run at
// once, with each other and with appends. One PendingChunk is used by one
// thread at a time. CommitPoint is immutable once made.
#ifndef SHOAL_FORMAT_STAGED_WRITE_H_
#define SHOAL_FORMAT_STAGED_WRITE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "codecs/byte_codec.h"
#include "format/chunk.h"
#include "format/store.h"

namespace shoal {

/// A chunk cut from appended samples, not yet encoded or stored. Move-only.
class PendingChunk {
 public:
  PendingChunk() = default;
  PendingChunk(std::string key, uint64_t id, std::string where,
               ChunkFormat format, std::shared_ptr<const ByteCodec> codec,
               SampleLayout layout, std::vector<std::byte> data)
      : key_(std::move(key)),
        id_(id),
        where_(std::move(where)),
        format_(std::move(format)),
        codec_(std::move(codec)),
        layout_(std::move(layout)),
        data_(std::move(data)) {}
  PendingChunk(PendingChunk&&) noexcept = default;
  PendingChunk& operator=(PendingChunk&&) noexcept = default;

  /// The store key the chunk is written under, and its id in the index.
  const std::string& key() const { return key_; }
  uint64_t id() const { return id_; }
  uint64_t num_samples() const { return layout_.num_samples(); }
  /// Bytes held in memory now: the samples before Encode(), the chunk object
  /// after. (Capacity reserved past the samples was never touched, so it
  /// costs no memory.)
  uint64_t memory_bytes() const {
    return encoded_.bytes.empty() ? data_.size() : encoded_.bytes.size();
  }
  bool encoded() const { return !encoded_.bytes.empty(); }
  /// Size of the chunk object and of its header. Preconditions: encoded().
  uint64_t chunk_bytes() const { return encoded_.bytes.size(); }
  uint32_t header_bytes() const { return encoded_.header_size; }
  /// The header's checksum (ChunkHeader::checksum()).
  uint64_t header_checksum() const;

  /// Encodes the samples into the chunk object (block-wise compression),
  /// then frees them. Errors name the tensor and chunk.
  Status Encode();
  /// Stores the chunk object. Preconditions: encoded().
  Status Write(Store& store) const;
  /// Encode() then Write(), as the non-deferred write path does. The
  /// samples are kept until the write succeeds: on an error they go back
  /// to `*unwritten` (when given), so the caller can try again.
  Status EncodeAndWrite(Store& store,
                        std::vector<std::byte>* unwritten = nullptr);
  /// Encodes every chunk not yet encoded, then writes them together
  /// (Store::WriteMany: in flight at once on s3://). The first error, naming
  /// its chunk.
  static Status EncodeAndWriteAll(std::span<PendingChunk> chunks, Store& store);

 private:
  // Encodes `samples` (data_ or the caller's) into encoded_.
  Status EncodeFrom(ByteSpan samples);

  std::string key_;
  uint64_t id_ = 0;
  std::string where_;
  ChunkFormat format_;
  std::shared_ptr<const ByteCodec> codec_;
  SampleLayout layout_;
  std::vector<std::byte> data_;
  EncodedChunk encoded_;
};

/// A snapshot of a dataset for one commit (Dataset::PrepareCommit). Opaque;
/// defined in dataset.cc.
class CommitPoint;
struct CommitPointDeleter {
  void operator()(CommitPoint* point) const;
};
using CommitPointPtr = std::unique_ptr<CommitPoint, CommitPointDeleter>;

}  // namespace shoal

#endif  // SHOAL_FORMAT_STAGED_WRITE_H_
