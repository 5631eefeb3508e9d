// Tensor's bulk reads for loaders: extents (a chunk's samples at once),
// decoding stored bytes in place, and every sample's shape or info in one
// pass over the hidden tensors, so that callers never spell hidden tensor
// names or decode shape records themselves.
#include <algorithm>
#include <cstring>
#include <optional>
#include <tuple>

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
  return std::move(ReadExtents({&i, 1}, allocate).front());
}

Result<ExtentData> Tensor::Impl::ReadExtentAlone(size_t i) const {
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
  SHOAL_ASSIGN_OR_RETURN(const Shape shape, ReadShape(entry.first_sample));
  const uint64_t zero[Shape::kMaxRank] = {};
  SHOAL_ASSIGN_OR_RETURN(
      Sample sample, ReadRegion(entry.first_sample, shape, {zero, shape.rank()},
                                shape.dims(), {}));
  SampleLayout layout;
  layout.Add(shape, sample.data.size());
  return ExtentData(entry.first_sample, std::move(sample.data),
                    std::move(layout), /*encoded=*/false);
}

Result<ExtentData> Tensor::Impl::ExtentFromBlocks(
    const internal::IndexEntry& entry, const ChunkHeader& header,
    const Buffer& stored, const BufferAllocator& allocate) const {
  const auto& blocks = header.blocks();
  Buffer data;
  if (!blocks.empty()) {
    // Decoded at once; not put in the block cache, which is sized for
    // random reads, not whole chunks.
    SHOAL_ASSIGN_OR_RETURN(data,
                           DecodeBlocks(header, 0, blocks.size() - 1, stored,
                                        chunk_codec_.get(), allocate));
  }
  const SampleLayout& layout = header.layout();
  if (layout.data_size() != data.size()) {
    return Corruption("blocks hold " + std::to_string(data.size()) +
                      " bytes, the samples " +
                      std::to_string(layout.data_size()));
  }
  return ExtentData(entry.first_sample, std::move(data), layout,
                    sample_codec_ != nullptr);
}

std::vector<Result<ExtentData>> Tensor::Impl::ReadExtents(
    std::span<const size_t> extents, const BufferAllocator& allocate) const {
  const auto& entries = index_.entries();
  std::vector<std::optional<Result<ExtentData>>> done(extents.size());
  // The chunks to read: each whole (header and blocks in one request)
  // unless its header is cached, then its blocks.
  struct Read {
    size_t k;
    const internal::IndexEntry* entry;
    std::shared_ptr<const ChunkHeader> header;
    std::string key;
  };
  std::vector<Read> reads;
  std::vector<RangeRead> ranges;
  for (size_t k = 0; k < extents.size(); ++k) {
    const size_t i = extents[k];
    if (i >= entries.size() || entries[i].tiled) {
      done[k] = ReadExtentAlone(i);
      continue;
    }
    const internal::IndexEntry& entry = entries[i];
    reads.push_back({k, &entry, CachedHeader(entry.chunk),
                     internal::ChunkKey(meta_.id, entry.chunk.id)});
  }
  for (const Read& r : reads) {
    uint64_t offset = 0;
    if (r.header) {
      offset = r.header->blocks().empty()
                   ? r.entry->chunk.chunk_bytes
                   : r.header->blocks().front().stored_offset;
    }
    ranges.push_back({r.key, offset, r.entry->chunk.chunk_bytes - offset});
  }
  std::vector<Result<Buffer>> bytes;
  if (!ranges.empty()) bytes = context_->store->ReadRanges(ranges, allocate);
  for (size_t j = 0; j < reads.size(); ++j) {
    const Read& r = reads[j];
    const internal::ChunkRef& ref = r.entry->chunk;
    auto extent = [&]() -> Result<ExtentData> {
      SHOAL_ASSIGN_OR_RETURN(Buffer stored,
                             ChunkReadResult(std::move(bytes[j])));
      std::shared_ptr<const ChunkHeader> header = r.header;
      if (header == nullptr) {
        if (stored.size() < ref.header_bytes) {
          return Corruption("chunk shorter than its header");
        }
        SHOAL_ASSIGN_OR_RETURN(
            header,
            ParseHeader(ref, stored.span().subspan(0, ref.header_bytes)));
        // Decode() checked that the blocks end where the object does.
        const uint64_t start = header->blocks().empty()
                                   ? stored.size()
                                   : header->blocks().front().stored_offset;
        stored = stored.Slice(start, stored.size() - start);
      }
      return ExtentFromBlocks(*r.entry, *header, stored, allocate);
    }();
    if (!extent.ok()) extent = extent.status().WithContext(ChunkWhere(ref));
    done[r.k] = std::move(extent);
  }
  std::vector<Result<ExtentData>> out;
  out.reserve(done.size());
  for (auto& d : done) out.push_back(std::move(*d));
  return out;
}

void Tensor::Impl::ReadStoredSamples(std::span<const uint64_t> indices,
                                     uint64_t coalesce_gap,
                                     StoredSamples* out) const {
  out->samples.clear();
  out->reads = out->bytes_read = 0;
  for (size_t k = 0; k < indices.size(); ++k) {
    out->samples.push_back(Buffer());
  }
  // The samples in chunk objects, by chunk and block; the others (past the
  // end, in the open chunk, tiled) are read alone, which says what is wrong.
  struct Want {
    size_t k;
    const internal::IndexEntry* entry;
    std::shared_ptr<const ChunkHeader> header;
    size_t first, last;  // blocks
  };
  std::vector<Want> wants;
  const auto& entries = index_.entries();
  for (size_t k = 0; k < indices.size(); ++k) {
    const uint64_t index = indices[k];
    if (index >= index_.num_samples() || entries[index_.Find(index)].tiled) {
      out->samples[k] = ReadStored(index);
      continue;
    }
    const internal::IndexEntry& entry = entries[index_.Find(index)];
    wants.push_back({k, &entry, CachedHeader(entry.chunk), 0, 0});
  }
  auto fail = [&](const Want& w, const Status& s) {
    out->samples[w.k] = s.WithContext(ChunkWhere(w.entry->chunk) + ": sample " +
                                      std::to_string(indices[w.k]));
  };
  // The headers not cached, all at once.
  std::sort(wants.begin(), wants.end(),
            [](const Want& a, const Want& b) { return a.entry < b.entry; });
  std::vector<std::string> keys;
  keys.reserve(wants.size());  // never reallocated: `ranges` views them
  std::vector<RangeRead> ranges;
  for (size_t w = 0; w < wants.size(); ++w) {
    if (wants[w].header || (w > 0 && wants[w - 1].entry == wants[w].entry)) {
      continue;
    }
    keys.push_back(internal::ChunkKey(meta_.id, wants[w].entry->chunk.id));
    ranges.push_back({keys.back(), 0, wants[w].entry->chunk.header_bytes});
  }
  std::vector<Result<Buffer>> headers;
  if (!ranges.empty()) headers = context_->store->ReadRanges(ranges);
  out->reads += ranges.size();
  Status header_status;
  for (size_t w = 0, h = 0; w < wants.size(); ++w) {
    Want& want = wants[w];
    if (!want.header && w > 0 && wants[w - 1].entry == want.entry) {
      want.header = wants[w - 1].header;
      if (!want.header) fail(want, header_status);
      continue;
    }
    if (want.header) continue;
    Result<Buffer> bytes = ChunkReadResult(std::move(headers[h++]));
    if (bytes.ok()) out->bytes_read += bytes->size();
    auto header =
        bytes.ok() ? ParseHeader(want.entry->chunk, bytes->span())
                   : Result<std::shared_ptr<const ChunkHeader>>(bytes.status());
    header_status = header.ok() ? Status::OK() : header.status();
    if (header.ok())
      want.header = *header;
    else
      fail(want, header_status);
  }
  // Each sample's blocks; runs of them within the gap, per chunk.
  std::erase_if(wants, [](const Want& w) { return w.header == nullptr; });
  for (Want& w : wants) {
    const ByteRange range =
        w.header->layout().range(indices[w.k] - w.entry->first_sample);
    std::tie(w.first, w.last) = w.header->BlocksFor(range);
  }
  std::sort(wants.begin(), wants.end(), [](const Want& a, const Want& b) {
    return a.entry != b.entry ? a.entry < b.entry : a.first < b.first;
  });
  struct Run {
    size_t begin, end;   // in wants
    size_t first, last;  // blocks
    size_t key;          // in keys
  };
  std::vector<Run> runs;
  keys.clear();
  for (size_t w = 0; w < wants.size(); ++w) {
    const Want& want = wants[w];
    if (want.header->layout()
            .range(indices[want.k] - want.entry->first_sample)
            .size == 0) {
      continue;  // an empty sample has no blocks
    }
    const auto& blocks = want.header->blocks();
    if (!runs.empty() && wants[runs.back().begin].entry == want.entry) {
      Run& run = runs.back();
      const auto& last = blocks[run.last];
      if (blocks[want.first].stored_offset <=
          last.stored_offset + last.stored_size + coalesce_gap) {
        run.last = std::max(run.last, want.last);
        run.end = w + 1;
        continue;
      }
    }
    if (runs.empty() || wants[runs.back().begin].entry != want.entry) {
      keys.push_back(internal::ChunkKey(meta_.id, want.entry->chunk.id));
    }
    runs.push_back({w, w + 1, want.first, want.last, keys.size() - 1});
  }
  ranges.clear();
  for (const Run& run : runs) {
    const auto& blocks = wants[run.begin].header->blocks();
    const uint64_t offset = blocks[run.first].stored_offset;
    ranges.push_back({keys[run.key], offset,
                      blocks[run.last].stored_offset +
                          blocks[run.last].stored_size - offset});
  }
  std::vector<Result<Buffer>> stored;
  if (!ranges.empty()) stored = context_->store->ReadRanges(ranges);
  out->reads += ranges.size();
  for (size_t r = 0; r < runs.size(); ++r) {
    const Run& run = runs[r];
    const ChunkHeader& header = *wants[run.begin].header;
    Result<Buffer> decoded = ChunkReadResult(std::move(stored[r]));
    if (decoded.ok()) {
      out->bytes_read += decoded->size();
      decoded = DecodeBlocks(header, run.first, run.last, *decoded,
                             chunk_codec_.get());
    }
    const uint64_t base = header.blocks()[run.first].raw_offset;
    for (size_t w = run.begin; w < run.end; ++w) {
      const Want& want = wants[w];
      if (!decoded.ok()) {
        fail(want, decoded.status());
        continue;
      }
      const ByteRange range =
          header.layout().range(indices[want.k] - want.entry->first_sample);
      out->samples[want.k] = decoded->Slice(range.offset - base, range.size);
    }
  }
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
  return shape_tensor_->impl_->ForEachExtent(n, [&](const ExtentData& data) {
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
    return Status::OK();
  });
}

Status Tensor::Impl::ForEachExtent(
    uint64_t n, const std::function<Status(const ExtentData&)>& fn) const {
  // A group at a time, read together: one round trip each over a network,
  // a bounded number of chunks in memory.
  constexpr size_t kGroup = 64;
  const std::vector<TensorExtent> extents = Extents();
  std::vector<size_t> group;
  for (size_t e = 0; e < extents.size() && extents[e].first_sample < n;) {
    group.clear();
    for (; e < extents.size() && extents[e].first_sample < n &&
           group.size() < kGroup;
         ++e) {
      group.push_back(e);
    }
    for (Result<ExtentData>& data : ReadExtents(group, {})) {
      if (!data.ok()) return data.status();
      SHOAL_RETURN_IF_ERROR(fn(*data));
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
  uint64_t seen = 0;
  SHOAL_RETURN_IF_ERROR(infos.ForEachExtent(n, [&](const ExtentData& data) {
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
    return Status::OK();
  }));
  if (seen != n) {
    return Corruption(Where() + ": the info tensor holds " +
                      std::to_string(seen) + " of " + std::to_string(n) +
                      " samples' infos");
  }
  return Status::OK();
}

std::vector<Result<ExtentData>> Tensor::ReadExtents(
    std::span<const size_t> extents, const BufferAllocator& allocate) const {
  return impl_->ReadExtents(extents, allocate);
}
void Tensor::ReadStoredSamples(std::span<const uint64_t> indices,
                               uint64_t coalesce_gap,
                               StoredSamples* out) const {
  impl_->ReadStoredSamples(indices, coalesce_gap, out);
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
