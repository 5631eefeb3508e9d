// PendingChunk: encoding and storing a chunk cut by a deferred writer.
#include "format/staged_write.h"

#include "base/coding.h"

namespace shoal {

Status PendingChunk::EncodeFrom(ByteSpan samples) {
  auto encoded = EncodeChunk(format_, layout_, samples, codec_.get());
  if (!encoded.ok()) return encoded.status().WithContext(where_);
  encoded_ = std::move(*encoded);
  return Status::OK();
}

Status PendingChunk::Encode() {
  SHOAL_RETURN_IF_ERROR(EncodeFrom(data_));
  data_ = {};  // the samples are in the chunk object now
  return Status::OK();
}

Status PendingChunk::Write(Store& store) const {
  if (!encoded()) return Internal(where_ + ": written before it was encoded");
  Status s = store.Write(key_, encoded_.bytes.span());
  return s.ok() ? s : s.WithContext(where_);
}

uint64_t PendingChunk::header_checksum() const {
  return DecodeU64(encoded_.bytes.data() + encoded_.header_size - 8);
}

Status PendingChunk::EncodeAndWrite(Store& store,
                                    std::vector<std::byte>* unwritten) {
  if (unwritten == nullptr) {
    SHOAL_RETURN_IF_ERROR(Encode());
    return Write(store);
  }
  // The samples are dropped only once the chunk object is stored.
  std::vector<std::byte> samples = std::move(data_);
  Status s = EncodeFrom(samples);
  if (s.ok()) s = Write(store);
  if (!s.ok()) *unwritten = std::move(samples);
  return s;
}

Status PendingChunk::EncodeAndWriteAll(std::span<PendingChunk> chunks,
                                       Store& store) {
  std::vector<ObjectWrite> writes;
  writes.reserve(chunks.size());
  for (PendingChunk& c : chunks) {
    if (!c.encoded()) SHOAL_RETURN_IF_ERROR(c.Encode());
    writes.push_back({c.key_, c.encoded_.bytes.span()});
  }
  const std::vector<Status> written = store.WriteMany(writes);
  for (size_t i = 0; i < written.size(); ++i) {
    if (!written[i].ok()) return written[i].WithContext(chunks[i].where_);
  }
  return Status::OK();
}

}  // namespace shoal
