// Tensor: the read path of samples (one, ranges, regions, tiled) through a
// header cache and a decoded-block cache, and the public Tensor methods. The
// bulk reads for loaders are in tensor_bulk.cc, the write path in
// tensor_write.cc.
#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/coding.h"
#include "format/internal/region.h"
#include "format/internal/tensor_impl.h"

namespace shoal {

using internal::ChunkRef;
using internal::TiledSample;

namespace {

// The most sample data ReadRange decodes in one piece.
constexpr uint64_t kMaxDecodeSpan = 8ull << 20;

}  // namespace

Tensor::Impl::Impl(internal::DatasetContext* context, internal::TensorMeta meta,
                   internal::TensorIndex index)
    : context_(context), meta_(std::move(meta)), index_(std::move(index)) {}

Status Tensor::Impl::Init() {
  auto sample_codec = internal::SampleCodec::Make(meta_.spec.sample_compression,
                                                  *meta_.spec.dtype);
  if (!sample_codec.ok()) return sample_codec.status().WithContext(Where());
  sample_codec_ = *sample_codec;
  if (!meta_.spec.chunk_compression.empty()) {
    auto codec = MakeByteCodec(meta_.spec.chunk_compression,
                               {DTypeSize(*meta_.spec.dtype)});
    if (!codec.ok()) return codec.status().WithContext(Where());
    chunk_codec_ = *codec;
  }
  return Status::OK();
}

std::string Tensor::Impl::Where() const {
  return "dataset '" + context_->url + "': tensor '" + meta_.spec.name + "'";
}

std::string Tensor::Impl::ChunkWhere(const ChunkRef& ref) const {
  return Where() + ": chunk '" + internal::ChunkKey(meta_.id, ref.id) + "'";
}

// ----------------------------------------------------------------- reads --

std::shared_ptr<const ChunkHeader> Tensor::Impl::CachedHeader(
    const ChunkRef& ref) const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  auto* hit = headers_.Find(ref.id);
  return hit ? *hit : nullptr;
}

Result<std::shared_ptr<const ChunkHeader>> Tensor::Impl::Header(
    const ChunkRef& ref) const {
  if (auto hit = CachedHeader(ref)) return hit;
  const std::string key = internal::ChunkKey(meta_.id, ref.id);
  SHOAL_ASSIGN_OR_RETURN(Buffer bytes, ChunkRange(key, 0, ref.header_bytes));
  return ParseHeader(ref, bytes.span());
}

Result<std::shared_ptr<const ChunkHeader>> Tensor::Impl::ParseHeader(
    const ChunkRef& ref, ByteSpan bytes) const {
  SHOAL_ASSIGN_OR_RETURN(auto header,
                         ChunkHeader::Decode(bytes, ref.chunk_bytes));
  const ChunkHeader& h = *header;
  SHOAL_RETURN_IF_ERROR(internal::CheckChunkBinding(ref, h.checksum()));
  const ChunkFormat& f = h.format();
  if (h.num_samples() != ref.num_samples || f.dtype != *meta_.spec.dtype ||
      f.rank != rank() || f.sample_codec != meta_.spec.sample_compression ||
      f.chunk_codec != meta_.spec.chunk_compression) {
    return Corruption("header does not match the index (" +
                      std::to_string(h.num_samples()) + " samples of " +
                      std::string(DTypeName(f.dtype)) + ", rank " +
                      std::to_string(f.rank) + ")");
  }
  std::lock_guard<std::mutex> lock(cache_mu_);
  headers_.Insert(ref.id, header, h.header_size() + 256);
  return header;
}

Result<Buffer> Tensor::Impl::ChunkRange(const std::string& key, uint64_t offset,
                                        uint64_t length) const {
  return ChunkReadResult(context_->store->ReadRange(key, offset, length));
}

Result<Buffer> Tensor::Impl::ChunkReadResult(Result<Buffer> bytes) {
  // The index says how long the chunk is: a shorter object is damaged, not
  // a read past some end.
  if (!bytes.ok() && bytes.status().code() == StatusCode::kOutOfRange) {
    return Corruption("chunk shorter than the index says (" +
                      std::string(bytes.status().message()) + ")");
  }
  return bytes;
}

Result<Buffer> Tensor::Impl::Blocks(const ChunkRef& ref,
                                    const ChunkHeader& header, size_t first,
                                    size_t last) const {
  if (first == last) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto* hit = blocks_.Find({ref.id, first})) return *hit;
  }
  const auto& blocks = header.blocks();
  const uint64_t offset = blocks[first].stored_offset;
  const uint64_t length =
      blocks[last].stored_offset + blocks[last].stored_size - offset;
  const std::string key = internal::ChunkKey(meta_.id, ref.id);
  SHOAL_ASSIGN_OR_RETURN(Buffer stored, ChunkRange(key, offset, length));
  SHOAL_ASSIGN_OR_RETURN(
      Buffer decoded,
      DecodeBlocks(header, first, last, stored, chunk_codec_.get()));
  if (first == last) {
    // Charged by size: a zero-copy slice of a mem:// object has the whole
    // chunk as capacity, which would never fit the budget.
    std::lock_guard<std::mutex> lock(cache_mu_);
    blocks_.Insert({ref.id, first}, decoded, decoded.size());
  }
  return decoded;
}

Result<Tensor::Impl::Stored> Tensor::Impl::StoredSample(uint64_t index) const {
  const uint64_t committed = index_.num_samples();
  if (index >= committed) {
    const uint64_t j = index - committed;
    const ByteRange range = open_layout_.range(j);
    return Stored{
        Buffer::CopyOf(ByteSpan(open_data_.data() + range.offset, range.size)),
        open_layout_.shape(j), nullptr};
  }
  const internal::IndexEntry& entry = index_.entries()[index_.Find(index)];
  if (entry.tiled) {
    return InvalidArgument(Where() + ": sample " + std::to_string(index) +
                           " is tiled; it has no single stored form");
  }
  // The context string is built only on error: this is the per-sample path.
  auto fail = [&](const Status& s) {
    return s.WithContext(ChunkWhere(entry.chunk) + ": sample " +
                         std::to_string(index));
  };
  auto header = Header(entry.chunk);
  if (!header.ok()) return fail(header.status());
  const SampleLayout& layout = (*header)->layout();
  const uint64_t j = index - entry.first_sample;
  const ByteRange range = layout.range(j);
  if (range.size == 0) return Stored{Buffer(), layout.shape(j), &entry.chunk};
  const auto [first, last] = (*header)->BlocksFor(range);
  const auto& blocks = (*header)->blocks();
  if (last == first + 1) {
    // A small sample across one block boundary: both blocks through the
    // cache (their neighbours want them too), the sample copied out of them.
    auto a = Blocks(entry.chunk, **header, first, first);
    if (!a.ok()) return fail(a.status());
    auto b = Blocks(entry.chunk, **header, last, last);
    if (!b.ok()) return fail(b.status());
    auto out = MutableBuffer::Allocate(range.size);
    if (!out.ok()) return fail(out.status());
    const uint64_t head = blocks[last].raw_offset - range.offset;
    std::memcpy(out->data(),
                a->data() + (range.offset - blocks[first].raw_offset), head);
    std::memcpy(out->data() + head, b->data(), range.size - head);
    return Stored{std::move(*out).Freeze(), layout.shape(j), &entry.chunk};
  }
  auto decoded = Blocks(entry.chunk, **header, first, last);
  if (!decoded.ok()) return fail(decoded.status());
  const uint64_t base = blocks[first].raw_offset;
  return Stored{decoded->Slice(range.offset - base, range.size),
                layout.shape(j), &entry.chunk};
}

Result<Sample> Tensor::Impl::DecodeSample(Buffer stored,
                                          const Shape& shape) const {
  const DType dtype = *meta_.spec.dtype;
  if (sample_codec_ && sample_codec_->video()) {
    return sample_codec_->Decode(stored.span(), shape, {});
  }
  auto bytes = shape.ByteSize(dtype);
  if (!bytes.ok() || *bytes > internal::MaxDecodedSampleBytes(meta_.spec)) {
    return Corruption("stored shape " + shape.ToString() +
                      " exceeds the tensor's sample size limit");
  }
  if (!sample_codec_) {
    if (stored.size() != *bytes) {
      return Corruption("sample of shape " + shape.ToString() + " has " +
                        std::to_string(stored.size()) + " bytes, expected " +
                        std::to_string(*bytes));
    }
    return Sample{dtype, shape, std::move(stored)};
  }
  SHOAL_ASSIGN_OR_RETURN(MutableBuffer out, MutableBuffer::Allocate(*bytes));
  SHOAL_RETURN_IF_ERROR(
      sample_codec_->Decode(stored.span(), shape, out.span()));
  return Sample{dtype, shape, std::move(out).Freeze()};
}

Result<Sample> Tensor::Impl::Read(uint64_t index,
                                  const ReadOptions& options) const {
  if (index >= size()) {
    if (options.pad) {
      return Sample{*meta_.spec.dtype,
                    Shape::Zeros(std::max(meta_.spec.rank, 0)), Buffer()};
    }
    return OutOfRange(Where() + ": sample " + std::to_string(index) +
                      " is past the end (length " + std::to_string(size()) +
                      ")");
  }
  if (index < index_.num_samples()) {
    const internal::IndexEntry& entry = index_.entries()[index_.Find(index)];
    bool whole = entry.tiled != nullptr;
    if (!whole && chunk_codec_ != nullptr && sample_codec_ == nullptr) {
      // A failed header read falls through to StoredSample, which says so.
      if (auto header = Header(entry.chunk); header.ok()) {
        whole = ReadsInParallel(
            **header, (*header)->layout().range(index - entry.first_sample));
      }
    }
    if (whole) {
      SHOAL_ASSIGN_OR_RETURN(Shape shape, ReadShape(index));
      const uint64_t zero[Shape::kMaxRank] = {};
      return ReadRegion(index, shape, {zero, shape.rank()}, shape.dims(),
                        options);
    }
  }
  SHOAL_ASSIGN_OR_RETURN(Stored stored, StoredSample(index));
  auto sample = DecodeSample(std::move(stored.bytes), stored.shape);
  if (!sample.ok()) {
    const std::string where =
        stored.chunk ? ChunkWhere(*stored.chunk) : Where();
    return sample.status().WithContext(where + ": sample " +
                                       std::to_string(index));
  }
  return sample;
}

Result<std::vector<Sample>> Tensor::Impl::ReadRange(uint64_t begin,
                                                    uint64_t end) const {
  if (begin > end || end > size()) {
    return OutOfRange(Where() + ": range [" + std::to_string(begin) + ", " +
                      std::to_string(end) + ") outside the tensor (length " +
                      std::to_string(size()) + ")");
  }
  std::vector<Sample> out;
  out.reserve(end - begin);
  uint64_t i = begin;
  while (i < end) {
    if (i >= index_.num_samples()) {
      SHOAL_ASSIGN_OR_RETURN(Sample s, Read(i, {}));
      out.push_back(std::move(s));
      ++i;
      continue;
    }
    const internal::IndexEntry& entry = index_.entries()[index_.Find(i)];
    if (entry.tiled) {
      SHOAL_ASSIGN_OR_RETURN(Sample s, Read(i, {}));
      out.push_back(std::move(s));
      ++i;
      continue;
    }
    // All requested samples of this chunk with one range read.
    auto header_or = Header(entry.chunk);
    if (!header_or.ok())
      return header_or.status().WithContext(ChunkWhere(entry.chunk));
    const auto& header = *header_or;
    uint64_t stop = std::min(end, entry.first_sample + entry.chunk.num_samples);
    const SampleLayout& layout = header->layout();
    const ByteRange first_range = layout.range(i - entry.first_sample);
    // At most kMaxDecodeSpan bytes are decoded at once (at least one
    // sample): a bigger buffer would come fresh from mmap each time and cost
    // more in page faults than the decompression itself.
    if (layout.range(stop - 1 - entry.first_sample).end() - first_range.offset >
        kMaxDecodeSpan) {
      uint64_t lo = i + 1, hi = stop;  // the answer lies in [lo, hi]
      while (lo < hi) {
        const uint64_t mid = lo + (hi - lo + 1) / 2;
        const uint64_t bytes =
            layout.range(mid - 1 - entry.first_sample).end() -
            first_range.offset;
        if (bytes <= kMaxDecodeSpan)
          lo = mid;
        else
          hi = mid - 1;
      }
      stop = lo;
    }
    const ByteRange last_range = layout.range(stop - 1 - entry.first_sample);
    const ByteRange span{first_range.offset,
                         last_range.end() - first_range.offset};
    Buffer blocks;
    uint64_t base = 0;
    if (span.size > 0) {
      const auto [fb, lb] = header->BlocksFor(span);
      auto read = Blocks(entry.chunk, *header, fb, lb);
      if (!read.ok()) return read.status().WithContext(ChunkWhere(entry.chunk));
      blocks = std::move(*read);
      base = header->blocks()[fb].raw_offset;
    }
    for (; i < stop; ++i) {
      const uint64_t j = i - entry.first_sample;
      const ByteRange r = layout.range(j);
      Buffer stored = r.size ? blocks.Slice(r.offset - base, r.size) : Buffer();
      auto sample = DecodeSample(std::move(stored), layout.shape(j));
      if (!sample.ok()) {
        return sample.status().WithContext(ChunkWhere(entry.chunk) +
                                           ": sample " + std::to_string(i));
      }
      out.push_back(std::move(*sample));
    }
  }
  return out;
}

bool Tensor::Impl::ReadsInParallel(const ChunkHeader& header,
                                   ByteRange range) const {
  // A sample of a few blocks decompresses faster on its own than the tasks
  // take to start; raw blocks are a zero-copy slice of the stored bytes.
  constexpr uint64_t kMinBlocks = 8;
  return chunk_codec_ != nullptr && sample_codec_ == nullptr &&
         range.size >= kMinBlocks * header.format().block_bytes;
}

Result<Shape> Tensor::Impl::ReadShape(uint64_t index) const {
  if (index >= size()) {
    return OutOfRange(Where() + ": sample " + std::to_string(index) +
                      " is past the end (length " + std::to_string(size()) +
                      ")");
  }
  if (shape_tensor_ == nullptr) {
    // Hidden tensors describe themselves through their chunk headers.
    SHOAL_ASSIGN_OR_RETURN(Stored stored, StoredSample(index));
    return stored.shape;
  }
  SHOAL_ASSIGN_OR_RETURN(Sample dims, shape_tensor_->impl_->Read(index, {}));
  if (dims.shape.rank() != 1 ||
      dims.shape[0] != static_cast<uint64_t>(std::max(meta_.spec.rank, 0)) ||
      dims.data.size() != dims.shape[0] * 4) {
    return Corruption(Where() + ": shape record of sample " +
                      std::to_string(index) +
                      " does not match the tensor's rank");
  }
  uint64_t out[Shape::kMaxRank];
  for (size_t d = 0; d < dims.shape[0]; ++d)
    out[d] = DecodeU32(dims.data.data() + 4 * d);
  return Shape(std::span<const uint64_t>(out, dims.shape[0]));
}

Result<std::string> Tensor::Impl::ReadInfo(uint64_t index) const {
  if (info_tensor_ == nullptr) {
    return NotFound(Where() + ": hidden tensors have no sample info");
  }
  SHOAL_ASSIGN_OR_RETURN(Sample info, info_tensor_->impl_->Read(index, {}));
  return std::string(info.data.view());
}

Result<Buffer> Tensor::Impl::ReadStored(uint64_t index) const {
  if (index >= size()) {
    return OutOfRange(Where() + ": sample " + std::to_string(index) +
                      " is past the end (length " + std::to_string(size()) +
                      ")");
  }
  SHOAL_ASSIGN_OR_RETURN(Stored stored, StoredSample(index));
  return std::move(stored.bytes);
}

// ------------------------------------------------------------ the facade --

Tensor::Tensor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
const std::string& Tensor::name() const { return impl_->meta().spec.name; }
const TensorSpec& Tensor::spec() const { return impl_->meta().spec; }
bool Tensor::hidden() const { return impl_->meta().hidden; }
uint64_t Tensor::size() const { return impl_->size(); }
TensorStats Tensor::stats() const {
  const auto& m = impl_->meta();
  return {m.length,       m.num_chunks, m.raw_bytes,
          m.stored_bytes, m.min_shape,  m.max_shape};
}
std::string Tensor::where() const { return impl_->Where(); }
Status Tensor::Append(const Shape& shape, ByteSpan data,
                      std::string_view info_json) {
  if (hidden())
    return InvalidArgument(impl_->Where() +
                           ": hidden tensors are written by their parent");
  return impl_->Append(shape, data, info_json);
}
Status Tensor::AppendEncoded(ByteSpan encoded, std::string_view info_json) {
  if (hidden())
    return InvalidArgument(impl_->Where() +
                           ": hidden tensors are written by their parent");
  return impl_->AppendEncoded(encoded, info_json);
}
Status Tensor::AppendVideo(ByteSpan file, const Shape& shape,
                           std::string_view info_json) {
  return impl_->AppendVideo(file, shape, info_json);
}
Status Tensor::AppendBatch(const Shape& sample_shape, uint64_t count,
                           ByteSpan data) {
  if (hidden())
    return InvalidArgument(impl_->Where() +
                           ": hidden tensors are written by their parent");
  return impl_->AppendBatch(sample_shape, count, data);
}
Status Tensor::AppendBatch(std::span<const Shape> shapes, ByteSpan data) {
  if (hidden())
    return InvalidArgument(impl_->Where() +
                           ": hidden tensors are written by their parent");
  return impl_->AppendBatch(shapes, data);
}
Result<Sample> Tensor::Read(uint64_t index, const ReadOptions& options) const {
  return impl_->Read(index, options);
}
Result<std::vector<Sample>> Tensor::ReadRange(uint64_t begin,
                                              uint64_t end) const {
  return impl_->ReadRange(begin, end);
}
Status Tensor::ReadInto(uint64_t index, MutableByteSpan out,
                        const ReadOptions& options) const {
  if (index >= size() && options.pad && out.empty()) return Status::OK();
  SHOAL_ASSIGN_OR_RETURN(Shape shape, impl_->ReadShape(index));
  const uint64_t zero[Shape::kMaxRank] = {};
  return impl_->ReadRegionInto(index, shape, shape, {zero, shape.rank()},
                               shape.dims(), out, options);
}
Result<Sample> Tensor::ReadRegion(uint64_t index, std::span<const uint64_t> lo,
                                  std::span<const uint64_t> hi,
                                  const ReadOptions& options) const {
  SHOAL_ASSIGN_OR_RETURN(Shape shape, impl_->ReadShape(index));
  return impl_->ReadRegion(index, shape, lo, hi, options);
}
Status Tensor::ReadRegionInto(uint64_t index, std::span<const uint64_t> lo,
                              std::span<const uint64_t> hi, MutableByteSpan out,
                              const ReadOptions& options) const {
  SHOAL_ASSIGN_OR_RETURN(Shape shape, impl_->ReadShape(index));
  SHOAL_ASSIGN_OR_RETURN(Shape out_shape,
                         impl_->RegionShape(index, shape, lo, hi));
  return impl_->ReadRegionInto(index, shape, out_shape, lo, hi, out, options);
}
Result<Shape> Tensor::ReadShape(uint64_t index) const {
  return impl_->ReadShape(index);
}
Result<std::string> Tensor::ReadInfo(uint64_t index) const {
  return impl_->ReadInfo(index);
}
Result<Buffer> Tensor::ReadStored(uint64_t index) const {
  return impl_->ReadStored(index);
}
std::vector<TensorExtent> Tensor::Extents() const { return impl_->Extents(); }
Result<ExtentData> Tensor::ReadExtent(size_t i,
                                      const BufferAllocator& allocate) const {
  return impl_->ReadExtent(i, allocate);
}
Status Tensor::DecodeInto(ByteSpan stored, const Shape& shape,
                          MutableByteSpan out) const {
  return impl_->DecodeInto(stored, shape, out);
}
Result<const ImageCodec*> Tensor::ImageCodecFor(ByteSpan stored) const {
  const auto& codec = impl_->sample_codec();
  if (codec == nullptr || codec->image() == nullptr) {
    return InvalidArgument(impl_->Where() +
                           ": samples are not stored as images");
  }
  auto image = codec->ImageFor(stored);
  if (!image.ok()) return image.status().WithContext(impl_->Where());
  return image;
}

}  // namespace shoal
