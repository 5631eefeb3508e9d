// Tensor's bulk reads for loaders: extents (a chunk's samples at once),
// decoding stored bytes in place, and every sample's shape or info in one
// pass over the hidden tensors, so that callers never spell hidden tensor
// names or decode shape records themselves.
#include <algorithm>
#include <cstring>

#include "base/coding.h"
#include "format/internal/tensor_impl.h"

namespace shoal {

using internal::ChunkRef;

std::vector<TensorExtent> Tensor::Impl::Extents() const {
  std::vector<TensorExtent> out;
  out.reserve(index_.entries().size() + 1);
  for (const internal::IndexEntry& e : index_.entries()) {
    TensorExtent extent{e.first_sample, e.num_samples(), 0, e.tiled != nullptr,
                        ""};
    if (e.tiled) {
      for (const ChunkRef& tile : e.tiled->tiles)
        extent.stored_bytes += tile.chunk_bytes;
      if (!e.tiled->tiles.empty())
        extent.chunk_key = internal::ChunkKey(meta_.id, e.tiled->tiles[0].id);
    } else {
      extent.stored_bytes = e.chunk.chunk_bytes;
      extent.chunk_key = internal::ChunkKey(meta_.id, e.chunk.id);
    }
    out.push_back(extent);
  }
  if (size() > index_.num_samples()) {
    out.push_back(
        {index_.num_samples(), size() - index_.num_samples(), 0, false, ""});
  }
  return out;
}

Result<ExtentData> Tensor::Impl::ReadExtent(
    size_t i, const BufferAllocator& allocate) const {
  const auto& entries = index_.entries();
  if (i > entries.size() ||
      (i == entries.size() && size() == index_.num_samples())) {
    return OutOfRange(Where() + ": extent " + std::to_string(i) +
                      " does not exist");
  }
  if (i == entries.size()) {
    // The open chunk: a copy, since appends may move its storage.
    return ExtentData(index_.num_samples(),
                      Buffer::CopyOf(ByteSpan(open_data_)), open_layout_,
                      sample_codec_ != nullptr);
  }
  const internal::IndexEntry& entry = entries[i];
  if (entry.tiled) {
    const Shape& shape = entry.tiled->shape;
    const uint64_t zero[Shape::kMaxRank] = {};
    auto sample = ReadTiled(*entry.tiled, {zero, shape.rank()}, shape.dims());
    if (!sample.ok()) {
      return sample.status().WithContext("sample " +
                                         std::to_string(entry.first_sample));
    }
    SampleLayout layout;
    layout.Add(shape, sample->data.size());
    return ExtentData(entry.first_sample, std::move(sample->data),
                      std::move(layout), /*encoded=*/false);
  }
  auto fail = [&](const Status& s) {
    return s.WithContext(ChunkWhere(entry.chunk));
  };
  auto header = Header(entry.chunk);
  if (!header.ok()) return fail(header.status());
  const auto& blocks = (*header)->blocks();
  Buffer data;
  if (!blocks.empty()) {
    // One range read of every block, decoded at once; not put in the block
    // cache, which is sized for random reads, not whole chunks.
    const uint64_t offset = blocks.front().stored_offset;
    const uint64_t length =
        blocks.back().stored_offset + blocks.back().stored_size - offset;
    auto stored = ChunkRange(internal::ChunkKey(meta_.id, entry.chunk.id),
                             offset, length);
    if (!stored.ok()) return fail(stored.status());
    auto decoded = DecodeBlocks(**header, 0, blocks.size() - 1, *stored,
                                chunk_codec_.get(), allocate);
    if (!decoded.ok()) return fail(decoded.status());
    data = std::move(*decoded);
  }
  const SampleLayout& layout = (*header)->layout();
  if (layout.data_size() != data.size()) {
    return fail(Corruption("blocks hold " + std::to_string(data.size()) +
                           " bytes, the samples " +
                           std::to_string(layout.data_size())));
  }
  return ExtentData(entry.first_sample, std::move(data), layout,
                    sample_codec_ != nullptr);
}

Status Tensor::Impl::DecodeInto(ByteSpan stored, const Shape& shape,
                                MutableByteSpan out) const {
  auto bytes = shape.ByteSize(*meta_.spec.dtype);
  if (!bytes.ok() || *bytes != out.size()) {
    return InvalidArgument(Where() + ": output of " +
                           std::to_string(out.size()) +
                           " bytes for a sample of shape " + shape.ToString());
  }
  if (!sample_codec_) {
    if (stored.size() != out.size()) {
      return Corruption("sample of shape " + shape.ToString() + " has " +
                        std::to_string(stored.size()) + " bytes, expected " +
                        std::to_string(out.size()));
    }
    if (!out.empty()) std::memcpy(out.data(), stored.data(), out.size());
    return Status::OK();
  }
  return sample_codec_->Decode(stored, shape, out);
}

Result<bool> Tensor::Impl::IsTiled(uint64_t index) const {
  if (index >= size()) {
    return OutOfRange(Where() + ": sample " + std::to_string(index) +
                      " is past the end (length " + std::to_string(size()) +
                      ")");
  }
  if (index >= index_.num_samples()) return false;  // in the open chunk
  return index_.entries()[index_.Find(index)].tiled != nullptr;
}

Status Tensor::Impl::ReadShapes(uint64_t n, std::span<uint32_t> dims) const {
  const uint64_t rank = std::max(meta_.spec.rank, 0);
  if (n > size() || dims.size() != n * rank) {
    return InvalidArgument(Where() + ": ReadShapes of " + std::to_string(n) +
                           " samples needs " + std::to_string(n * rank) +
                           " dimensions");
  }
  if (shape_tensor_ == nullptr) {
    return InvalidArgument(Where() + ": hidden tensors have no shape records");
  }
  const std::vector<TensorExtent> extents = shape_tensor_->impl_->Extents();
  for (size_t e = 0; e < extents.size(); ++e) {
    if (extents[e].first_sample >= n) break;
    SHOAL_ASSIGN_OR_RETURN(ExtentData data,
                           shape_tensor_->impl_->ReadExtent(e, {}));
    for (uint64_t j = 0; j < data.size(); ++j) {
      const uint64_t i = data.first_sample() + j;
      if (i >= n) break;
      const ByteSpan b = data.bytes(j);
      if (b.size() != 4 * rank) {
        return Corruption(Where() + ": the shape record of sample " +
                          std::to_string(i) + " has " +
                          std::to_string(b.size()) + " bytes, not " +
                          std::to_string(4 * rank));
      }
      for (uint64_t d = 0; d < rank; ++d) {
        dims[i * rank + d] = DecodeU32(b.data() + 4 * d);
      }
    }
  }
  return Status::OK();
}

Status Tensor::Impl::ForEachInfo(
    uint64_t n,
    const std::function<Status(uint64_t, std::string_view)>& fn) const {
  if (info_tensor_ == nullptr) {
    return NotFound(Where() + ": hidden tensors have no sample info");
  }
  if (n > size()) {
    return OutOfRange(Where() + ": " + std::to_string(n) + " infos asked of " +
                      std::to_string(size()) + " samples");
  }
  const Tensor::Impl& infos = *info_tensor_->impl_;
  std::vector<std::byte> raw;
  const std::vector<TensorExtent> extents = infos.Extents();
  uint64_t seen = 0;
  for (size_t e = 0; e < extents.size(); ++e) {
    if (extents[e].first_sample >= n) break;
    SHOAL_ASSIGN_OR_RETURN(ExtentData data, infos.ReadExtent(e, {}));
    for (uint64_t j = 0; j < data.size(); ++j) {
      const uint64_t i = data.first_sample() + j;
      if (i >= n) break;
      std::string_view json = AsStringView(data.bytes(j));
      if (data.encoded()) {
        raw.resize(data.shape(j).num_elements());
        SHOAL_RETURN_IF_ERROR(
            infos.DecodeInto(data.bytes(j), data.shape(j), raw));
        json = AsStringView(ByteSpan(raw));
      }
      SHOAL_RETURN_IF_ERROR(fn(i, json));
      ++seen;
    }
  }
  if (seen != n) {
    return Corruption(Where() + ": the info tensor holds " +
                      std::to_string(seen) + " of " + std::to_string(n) +
                      " samples' infos");
  }
  return Status::OK();
}

Result<bool> Tensor::IsTiled(uint64_t index) const {
  return impl_->IsTiled(index);
}
Status Tensor::ReadShapes(uint64_t n, std::span<uint32_t> dims) const {
  return impl_->ReadShapes(n, dims);
}
Status Tensor::ForEachInfo(
    uint64_t n,
    const std::function<Status(uint64_t, std::string_view)>& fn) const {
  return impl_->ForEachInfo(n, fn);
}

}  // namespace shoal
