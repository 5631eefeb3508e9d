// Tensor: appends into an open chunk, seals full chunks, tiles big samples,
// and reads samples back through a header cache and a decoded-block cache.
#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "format/base/coding.h"
#include "format/internal/region.h"
#include "format/internal/tensor_impl.h"

namespace shoal {

using internal::ChunkRef;
using internal::TiledSample;

namespace {

// The cap on a decoded sample when a tensor does not tile (so no smaller
// bound follows from its spec): a stored shape claiming more is corrupt.
constexpr uint64_t kMaxUntiledSampleBytes = 1ull << 31;

// The most sample data ReadRange decodes in one piece.
constexpr uint64_t kMaxDecodeSpan = 8ull << 20;

void ElementwiseMinMax(const Shape& s, Shape& lo, Shape& hi, bool first) {
  if (first) {
    lo = hi = s;
    return;
  }
  for (size_t d = 0; d < s.rank(); ++d) {
    lo[d] = std::min(lo[d], s[d]);
    hi[d] = std::max(hi[d], s[d]);
  }
}

// The tile shape for a sample: halve the largest splittable dimension until a
// tile's raw bytes fit the threshold. Splittable are the leading (spatial)
// dimensions: all but the last for rank >= 3 (channels stay whole), all
// otherwise.
Shape ChooseTileShape(const Shape& shape, size_t item, uint64_t threshold) {
  Shape tile = shape;
  const size_t splittable = shape.rank() >= 3 ? shape.rank() - 1 : shape.rank();
  while (tile.num_elements() * item > threshold) {
    size_t best = 0;
    for (size_t d = 1; d < splittable; ++d) {
      if (tile[d] > tile[best]) best = d;
    }
    if (splittable == 0 || tile[best] <= 1) break;
    tile[best] = (tile[best] + 1) / 2;
  }
  return tile;
}

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

uint64_t Tensor::Impl::MaxSampleBytes() const {
  const uint64_t t = meta_.spec.tiling_threshold;
  return t == kNoTiling ? kMaxUntiledSampleBytes : t;
}

// ---------------------------------------------------------------- writes --

Status Tensor::Impl::ValidateShape(const Shape& shape) const {
  const TensorSpec& spec = meta_.spec;
  if (context_->read_only) {
    return FailedPrecondition(Where() + ": the dataset is open read-only");
  }
  if (spec.rank >= 0 && shape.rank() != static_cast<size_t>(spec.rank)) {
    return InvalidArgument(Where() + ": sample shape " + shape.ToString() +
                           " has rank " + std::to_string(shape.rank()) +
                           ", the tensor has rank " +
                           std::to_string(spec.rank));
  }
  if (spec.htype == HType::kImage && (shape[2] < 1 || shape[2] > 4)) {
    return InvalidArgument(Where() + ": image shape " + shape.ToString() +
                           " must have 1 to 4 channels");
  }
  return Status::OK();
}

Status Tensor::Impl::Validate(const Shape& shape, ByteSpan data) const {
  SHOAL_RETURN_IF_ERROR(ValidateShape(shape));
  const TensorSpec& spec = meta_.spec;
  SHOAL_ASSIGN_OR_RETURN(uint64_t bytes, shape.ByteSize(*spec.dtype));
  if (bytes != data.size()) {
    return InvalidArgument(Where() + ": sample of shape " + shape.ToString() +
                           " and dtype " + std::string(DTypeName(*spec.dtype)) +
                           " needs " + std::to_string(bytes) + " bytes, got " +
                           std::to_string(data.size()));
  }
  if (spec.htype == HType::kClassLabel && !spec.class_names.empty()) {
    const size_t item = DTypeSize(*spec.dtype);
    const bool is_signed =
        *spec.dtype == DType::kInt8 || *spec.dtype == DType::kInt16 ||
        *spec.dtype == DType::kInt32 || *spec.dtype == DType::kInt64;
    for (size_t i = 0; i < data.size(); i += item) {
      uint64_t v = 0;
      std::memcpy(&v, data.data() + i, item);
      const bool negative = is_signed && (v >> (item * 8 - 1)) & 1;
      if (negative || v >= spec.class_names.size()) {
        return InvalidArgument(Where() + ": label value out of range for " +
                               std::to_string(spec.class_names.size()) +
                               " class names");
      }
    }
  }
  return Status::OK();
}

Status Tensor::Impl::ValidateInfo(std::string_view info) const {
  if (info.empty()) return Status::OK();
  const auto parsed =
      nlohmann::json::parse(info, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return InvalidArgument(Where() + ": sample info must be a JSON object");
  }
  return Status::OK();
}

Status Tensor::Impl::Append(const Shape& shape, ByteSpan data,
                            std::string_view info) {
  SHOAL_RETURN_IF_ERROR(Validate(shape, data));
  SHOAL_RETURN_IF_ERROR(ValidateInfo(info));
  if (meta_.spec.rank < 0) meta_.spec.rank = static_cast<int>(shape.rank());
  if (data.size() > meta_.spec.tiling_threshold) {
    SHOAL_RETURN_IF_ERROR(AppendTiled(shape, data));
  } else if (sample_codec_) {
    Status s = sample_codec_->Encode(shape, data, &scratch_);
    if (!s.ok()) return s.WithContext(Where());
    SHOAL_RETURN_IF_ERROR(AppendStored(shape, scratch_, data.size(), 1));
  } else {
    SHOAL_RETURN_IF_ERROR(AppendStored(shape, data, data.size(), 1));
  }
  return AppendHidden(shape, 1, info);
}

Status Tensor::Impl::AppendEncoded(ByteSpan encoded, std::string_view info) {
  const ImageCodec* target = sample_codec_ ? sample_codec_->image() : nullptr;
  if (target == nullptr) {
    return InvalidArgument(Where() +
                           ": encoded images need an image "
                           "sample_compression (jpeg, png or image)");
  }
  SHOAL_ASSIGN_OR_RETURN(auto source, SniffImageCodec(encoded));
  auto header = source->ReadInfo(encoded);
  if (!header.ok()) return header.status().WithContext(Where());
  SHOAL_ASSIGN_OR_RETURN(Shape shape, source->OutputShape(*header, {}));
  if (header->dtype != *meta_.spec.dtype) {
    return InvalidArgument(
        Where() + ": a " + std::string(DTypeName(header->dtype)) +
        " image does not fit a " + std::string(DTypeName(*meta_.spec.dtype)) +
        " tensor");
  }
  if (!sample_codec_->StoresAsIs(source->name())) {
    // Another format: decode, then append as pixels, which encodes with the
    // tensor's codec.
    SHOAL_ASSIGN_OR_RETURN(uint64_t bytes, shape.ByteSize(header->dtype));
    SHOAL_ASSIGN_OR_RETURN(MutableBuffer pixels,
                           MutableBuffer::Allocate(bytes));
    Status s = source->Decode(encoded, {}, pixels.span());
    if (!s.ok()) return s.WithContext(Where());
    return Append(shape, pixels.span(), info);
  }
  // Pass-through: the bytes are stored as they came.
  SHOAL_ASSIGN_OR_RETURN(uint64_t raw_size, shape.ByteSize(*meta_.spec.dtype));
  if (raw_size > meta_.spec.tiling_threshold) {
    return InvalidArgument(Where() + ": image " + shape.ToString() +
                           " exceeds the tiling threshold; append it as pixels "
                           "to have it tiled");
  }
  SHOAL_RETURN_IF_ERROR(ValidateShape(shape));
  SHOAL_RETURN_IF_ERROR(ValidateInfo(info));
  if (meta_.spec.rank < 0) meta_.spec.rank = static_cast<int>(shape.rank());
  SHOAL_RETURN_IF_ERROR(AppendStored(shape, encoded, raw_size, 1));
  return AppendHidden(shape, 1, info);
}

Status Tensor::Impl::AppendVideo(ByteSpan file, const Shape& shape,
                                 std::string_view info) {
  if (!sample_codec_ || !sample_codec_->video()) {
    return InvalidArgument(Where() +
                           ": video files go to video tensors "
                           "(htype video, sample_compression mp4)");
  }
  if (shape.rank() != 4 || shape[3] != 3 || shape[0] == 0 || shape[1] == 0 ||
      shape[2] == 0) {
    return InvalidArgument(Where() +
                           ": a video's shape is [frames, H, W, 3], not " +
                           shape.ToString());
  }
  if (file.empty()) return InvalidArgument(Where() + ": empty video file");
  SHOAL_ASSIGN_OR_RETURN(uint64_t raw_size, shape.ByteSize(DType::kUInt8));
  SHOAL_RETURN_IF_ERROR(ValidateShape(shape));
  SHOAL_RETURN_IF_ERROR(ValidateInfo(info));
  if (meta_.spec.rank < 0) meta_.spec.rank = 4;
  SHOAL_RETURN_IF_ERROR(AppendStored(shape, file, raw_size, 1));
  return AppendHidden(shape, 1, info);
}

Status Tensor::Impl::ValidateBatch(const Shape& shape, uint64_t count,
                                   ByteSpan data) const {
  SHOAL_ASSIGN_OR_RETURN(uint64_t bytes, shape.ByteSize(*meta_.spec.dtype));
  if ((bytes != 0 && count > UINT64_MAX / bytes) ||
      data.size() != bytes * count) {
    return InvalidArgument(Where() + ": batch of " + std::to_string(count) +
                           " samples of shape " + shape.ToString() +
                           " does not match its " +
                           std::to_string(data.size()) + " data bytes");
  }
  if (count == 0) return Status::OK();
  // Shape checks hold for all samples at once; label values are per sample.
  SHOAL_RETURN_IF_ERROR(Validate(shape, data.first(bytes)));
  if (meta_.spec.htype == HType::kClassLabel &&
      !meta_.spec.class_names.empty()) {
    for (uint64_t i = 1; i < count; ++i) {
      SHOAL_RETURN_IF_ERROR(Validate(shape, data.subspan(i * bytes, bytes)));
    }
  }
  return Status::OK();
}

Status Tensor::Impl::ValidateBatch(std::span<const Shape> shapes,
                                   ByteSpan data) const {
  uint64_t offset = 0;
  for (const Shape& shape : shapes) {
    SHOAL_ASSIGN_OR_RETURN(uint64_t bytes, shape.ByteSize(*meta_.spec.dtype));
    if (bytes > data.size() - offset) {
      return InvalidArgument(Where() +
                             ": batch data is shorter than its shapes need");
    }
    // A tensor without a rank yet takes the first sample's: all must agree.
    if (shape.rank() != shapes[0].rank()) {
      return InvalidArgument(Where() + ": batch mixes ranks " +
                             std::to_string(shapes[0].rank()) + " and " +
                             std::to_string(shape.rank()));
    }
    SHOAL_RETURN_IF_ERROR(Validate(shape, data.subspan(offset, bytes)));
    offset += bytes;
  }
  if (offset != data.size()) {
    return InvalidArgument(Where() + ": batch data has " +
                           std::to_string(data.size()) +
                           " bytes, its shapes need " + std::to_string(offset));
  }
  return Status::OK();
}

Status Tensor::Impl::AppendBatch(const Shape& shape, uint64_t count,
                                 ByteSpan data) {
  SHOAL_RETURN_IF_ERROR(ValidateBatch(shape, count, data));
  if (count == 0) return Status::OK();
  const uint64_t bytes = data.size() / count;
  if (meta_.spec.rank < 0) meta_.spec.rank = static_cast<int>(shape.rank());
  if (sample_codec_ || bytes > meta_.spec.tiling_threshold) {
    for (uint64_t i = 0; i < count; ++i) {
      SHOAL_RETURN_IF_ERROR(Append(shape, data.subspan(i * bytes, bytes), {}));
    }
    return Status::OK();
  }
  // The fast path: fill chunks with as many whole samples as fit.
  uint64_t done = 0;
  while (done < count) {
    const uint64_t room =
        bytes == 0 ? count - done
        : meta_.spec.max_chunk_bytes > open_data_.size()
            ? (meta_.spec.max_chunk_bytes - open_data_.size()) / bytes
            : 0;
    uint64_t n = std::min(count - done, std::max<uint64_t>(room, 1));
    if (room == 0 && open_layout_.num_samples() > 0) {
      SHOAL_RETURN_IF_ERROR(SealOpenChunk());
      continue;
    }
    SHOAL_RETURN_IF_ERROR(AppendStored(
        shape, data.subspan(done * bytes, n * bytes), bytes * n, n));
    done += n;
  }
  return AppendHidden(shape, count, {});
}

Status Tensor::Impl::AppendBatch(std::span<const Shape> shapes, ByteSpan data) {
  SHOAL_RETURN_IF_ERROR(ValidateBatch(shapes, data));
  uint64_t offset = 0;
  for (const Shape& shape : shapes) {
    const uint64_t bytes = *shape.ByteSize(*meta_.spec.dtype);
    SHOAL_RETURN_IF_ERROR(Append(shape, data.subspan(offset, bytes), {}));
    offset += bytes;
  }
  return Status::OK();
}

// Appends `count` samples of `shape` whose stored bytes (all `count` of
// them, each stored.size() / count bytes) are `stored`.
Status Tensor::Impl::AppendStored(const Shape& shape, ByteSpan stored,
                                  uint64_t raw_size, uint64_t count) {
  if (!tail_checked_) SHOAL_RETURN_IF_ERROR(LoadTailChunk());
  if (open_layout_.num_samples() > 0 &&
      open_data_.size() + stored.size() > meta_.spec.max_chunk_bytes) {
    SHOAL_RETURN_IF_ERROR(SealOpenChunk());
  }
  if (open_data_.capacity() < meta_.spec.max_chunk_bytes && !meta_.hidden) {
    // One allocation per chunk instead of a chain of doublings (each of which
    // copies the chunk so far). Untouched pages cost nothing.
    open_data_.reserve(meta_.spec.max_chunk_bytes);
  }
  open_data_.insert(open_data_.end(), stored.begin(), stored.end());
  open_layout_.Add(shape, stored.size() / count, count);
  meta_.raw_bytes += raw_size;
  UpdateShapeStats(shape);
  meta_.length += count;
  dirty_ = true;
  return Status::OK();
}

void Tensor::Impl::UpdateShapeStats(const Shape& shape) {
  const bool first = meta_.min_shape.rank() != shape.rank();
  ElementwiseMinMax(shape, meta_.min_shape, meta_.max_shape, first);
}

Status Tensor::Impl::AppendHidden(const Shape& shape, uint64_t count,
                                  std::string_view info) {
  if (shape_tensor_ != nullptr) {
    uint32_t dims[Shape::kMaxRank];
    for (size_t d = 0; d < shape.rank(); ++d) {
      if (shape[d] > UINT32_MAX) {
        return InvalidArgument(Where() + ": dimension " +
                               std::to_string(shape[d]) + " exceeds 2^32-1");
      }
      dims[d] = static_cast<uint32_t>(shape[d]);
    }
    const ByteSpan bytes(reinterpret_cast<const std::byte*>(dims),
                         shape.rank() * 4);
    Tensor::Impl& s = *shape_tensor_->impl_;
    if (s.meta_.spec.rank < 0) s.meta_.spec.rank = 1;
    for (uint64_t i = 0; i < count; ++i) {
      SHOAL_RETURN_IF_ERROR(
          s.AppendStored(Shape{shape.rank()}, bytes, bytes.size(), 1));
    }
  }
  if (info_tensor_ != nullptr) {
    Tensor::Impl& t = *info_tensor_->impl_;
    if (t.meta_.spec.rank < 0) t.meta_.spec.rank = 1;
    if (info.empty()) {
      SHOAL_RETURN_IF_ERROR(t.AppendStored(Shape{0}, {}, 0, count));
    } else {
      SHOAL_RETURN_IF_ERROR(
          t.AppendStored(Shape{info.size()}, AsBytes(info), info.size(), 1));
    }
  }
  return Status::OK();
}

Status Tensor::Impl::LoadTailChunk() {
  tail_checked_ = true;
  if (index_.entries().empty() || index_.entries().back().tiled)
    return Status::OK();
  const ChunkRef ref = index_.entries().back().chunk;
  if (ref.chunk_bytes >= meta_.spec.max_chunk_bytes / 2) return Status::OK();
  // A partly filled chunk from an earlier commit: its samples move into the
  // open chunk, which will be written as a new chunk replacing it, so
  // frequent flushes do not leave many small chunks.
  const std::string key = internal::ChunkKey(meta_.id, ref.id);
  auto bytes = context_->store->Read(key);
  if (!bytes.ok()) return bytes.status().WithContext(ChunkWhere(ref));
  auto header = ChunkHeader::Decode(bytes->span(), bytes->size());
  if (!header.ok()) return header.status().WithContext(ChunkWhere(ref));
  const ChunkHeader& h = **header;
  if (h.data_size() > meta_.spec.max_chunk_bytes) return Status::OK();
  Buffer data;
  if (!h.blocks().empty()) {
    auto decoded = DecodeBlocks(
        h, 0, h.blocks().size() - 1,
        bytes->Slice(h.header_size(), h.chunk_size() - h.header_size()),
        chunk_codec_.get());
    if (!decoded.ok()) return decoded.status().WithContext(ChunkWhere(ref));
    data = *decoded;
  }
  open_data_.assign(data.data(), data.data() + data.size());
  open_layout_ = h.layout();
  index_.PopBack();
  superseded_.push_back(ref.id);
  meta_.stored_bytes -= ref.chunk_bytes;
  meta_.num_chunks -= 1;
  dirty_ = true;
  return Status::OK();
}

Result<ChunkRef> Tensor::Impl::WriteChunk(const SampleLayout& layout,
                                          ByteSpan data) {
  ChunkFormat format;
  format.dtype = *meta_.spec.dtype;
  format.rank = rank();
  format.sample_codec = meta_.spec.sample_compression;
  format.chunk_codec = meta_.spec.chunk_compression;
  format.block_bytes = meta_.spec.block_bytes;
  auto encoded = EncodeChunk(format, layout, data, chunk_codec_.get());
  if (!encoded.ok()) return encoded.status().WithContext(Where());
  ChunkRef ref;
  ref.id = context_->NewId();
  ref.num_samples = layout.num_samples();
  ref.chunk_bytes = encoded->bytes.size();
  ref.header_bytes = encoded->header_size;
  Status s = context_->store->Write(internal::ChunkKey(meta_.id, ref.id),
                                    encoded->bytes.span());
  if (!s.ok()) return s.WithContext(ChunkWhere(ref));
  meta_.stored_bytes += ref.chunk_bytes;
  meta_.num_chunks += 1;
  dirty_ = true;
  return ref;
}

Status Tensor::Impl::SealOpenChunk() {
  if (open_layout_.num_samples() == 0) return Status::OK();
  SHOAL_ASSIGN_OR_RETURN(ChunkRef ref, WriteChunk(open_layout_, open_data_));
  index_.AddChunk(ref);
  open_data_.clear();
  open_layout_.Clear();
  return Status::OK();
}

Status Tensor::Impl::AppendTiled(const Shape& shape, ByteSpan data) {
  if (!tail_checked_) SHOAL_RETURN_IF_ERROR(LoadTailChunk());
  // Keep the index in sample order: the samples before this one go first.
  SHOAL_RETURN_IF_ERROR(SealOpenChunk());
  const size_t item = DTypeSize(*meta_.spec.dtype);
  auto tiled = std::make_shared<TiledSample>();
  tiled->shape = shape;
  tiled->tile_shape = ChooseTileShape(shape, item, meta_.spec.tiling_threshold);
  const Shape grid = tiled->Grid();
  const size_t rank = shape.rank();
  std::vector<std::byte> tile_bytes;
  uint64_t pos[Shape::kMaxRank] = {};  // tile coordinates in the grid
  const uint64_t zero[Shape::kMaxRank] = {};
  for (uint64_t t = 0; t < grid.num_elements(); ++t) {
    uint64_t origin[Shape::kMaxRank];
    Shape extent = tiled->tile_shape;
    for (size_t d = 0; d < rank; ++d) {
      origin[d] = pos[d] * tiled->tile_shape[d];
      extent[d] = std::min(tiled->tile_shape[d], shape[d] - origin[d]);
    }
    tile_bytes.resize(extent.num_elements() * item);
    internal::CopyBox(data.data(), shape, origin, tile_bytes.data(), extent,
                      zero, extent, item);
    ByteSpan stored(tile_bytes.data(), tile_bytes.size());
    if (sample_codec_) {
      Status s = sample_codec_->Encode(extent, stored, &scratch_);
      if (!s.ok()) return s.WithContext(Where());
      stored = scratch_;
    }
    SampleLayout layout;
    layout.Add(extent, stored.size());
    SHOAL_ASSIGN_OR_RETURN(ChunkRef ref, WriteChunk(layout, stored));
    tiled->tiles.push_back(ref);
    for (size_t d = rank; d-- > 0;) {  // next tile, row-major
      if (++pos[d] < grid[d]) break;
      pos[d] = 0;
    }
  }
  index_.AddTiled(std::move(tiled));
  meta_.raw_bytes += data.size();
  UpdateShapeStats(shape);
  meta_.length += 1;
  dirty_ = true;
  return Status::OK();
}

std::vector<std::string> Tensor::Impl::OnCommitted() {
  std::vector<std::string> garbage;
  for (uint64_t id : superseded_)
    garbage.push_back(internal::ChunkKey(meta_.id, id));
  superseded_.clear();
  tail_checked_ = false;
  dirty_ = false;
  return garbage;
}

// ----------------------------------------------------------------- reads --

Result<std::shared_ptr<const ChunkHeader>> Tensor::Impl::Header(
    const ChunkRef& ref) const {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto* hit = headers_.Find(ref.id)) return *hit;
  }
  const std::string key = internal::ChunkKey(meta_.id, ref.id);
  SHOAL_ASSIGN_OR_RETURN(Buffer bytes, ChunkRange(key, 0, ref.header_bytes));
  SHOAL_ASSIGN_OR_RETURN(auto header,
                         ChunkHeader::Decode(bytes.span(), ref.chunk_bytes));
  const ChunkHeader& h = *header;
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
  auto bytes = context_->store->ReadRange(key, offset, length);
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
  if (!bytes.ok() || *bytes > MaxSampleBytes()) {
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
    if (entry.tiled) {
      const Shape& s = entry.tiled->shape;
      const uint64_t zero[Shape::kMaxRank] = {};
      auto sample = ReadTiled(*entry.tiled, {zero, s.rank()}, s.dims());
      if (!sample.ok()) {
        return sample.status().WithContext("sample " + std::to_string(index));
      }
      return sample;
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

Result<Sample> Tensor::Impl::ReadTiled(const TiledSample& tiled,
                                       std::span<const uint64_t> lo,
                                       std::span<const uint64_t> hi) const {
  const size_t rank = tiled.shape.rank();
  const size_t item = DTypeSize(*meta_.spec.dtype);
  if (lo.size() != rank || hi.size() != rank) {
    return Internal("region rank differs from the tiled sample's");
  }
  for (size_t d = 0; d < rank; ++d) {
    if (lo[d] > hi[d] || hi[d] > tiled.shape[d]) {
      return Internal("region outside the tiled sample");
    }
  }
  Shape out_shape = tiled.shape;
  for (size_t d = 0; d < rank; ++d) out_shape[d] = hi[d] - lo[d];
  SHOAL_ASSIGN_OR_RETURN(uint64_t out_bytes,
                         out_shape.ByteSize(*meta_.spec.dtype));
  if (tiled.shape.num_elements() * item > (1ull << 40)) {
    return Corruption("tiled sample shape " + tiled.shape.ToString() +
                      " is implausible");
  }
  SHOAL_ASSIGN_OR_RETURN(MutableBuffer out, MutableBuffer::Allocate(out_bytes));
  if (out_bytes == 0)
    return Sample{*meta_.spec.dtype, out_shape, std::move(out).Freeze()};
  // The range of tile coordinates that overlap [lo, hi).
  const Shape grid = tiled.Grid();
  uint64_t t_lo[Shape::kMaxRank], t_hi[Shape::kMaxRank], pos[Shape::kMaxRank];
  for (size_t d = 0; d < rank; ++d) {
    t_lo[d] = lo[d] / tiled.tile_shape[d];
    t_hi[d] = (hi[d] - 1) / tiled.tile_shape[d] + 1;
    pos[d] = t_lo[d];
  }
  while (true) {
    uint64_t t = 0;
    for (size_t d = 0; d < rank; ++d) t = t * grid[d] + pos[d];
    if (t >= tiled.tiles.size()) {
      return Corruption("tile grid larger than its tile list");
    }
    const ChunkRef& ref = tiled.tiles[t];
    auto header_or = Header(ref);
    if (!header_or.ok()) return header_or.status().WithContext(ChunkWhere(ref));
    const auto& header = *header_or;
    if (header->num_samples() != 1)
      return Corruption(ChunkWhere(ref) + ": a tile chunk holds one sample");
    Shape expect = tiled.tile_shape;
    uint64_t tile_origin[Shape::kMaxRank];
    for (size_t d = 0; d < rank; ++d) {
      tile_origin[d] = pos[d] * tiled.tile_shape[d];
      expect[d] =
          std::min(tiled.tile_shape[d], tiled.shape[d] - tile_origin[d]);
    }
    const Shape tile_shape = header->layout().shape(0);
    if (tile_shape != expect) {
      return Corruption(ChunkWhere(ref) + ": tile shape " +
                        tile_shape.ToString() + ", expected " +
                        expect.ToString());
    }
    const ByteRange range = header->layout().range(0);
    Buffer stored;
    if (range.size > 0) {
      auto blocks = Blocks(ref, *header, 0, header->blocks().size() - 1);
      if (!blocks.ok()) return blocks.status().WithContext(ChunkWhere(ref));
      stored = std::move(*blocks);
    }
    auto tile = DecodeSample(std::move(stored), tile_shape);
    if (!tile.ok()) return tile.status().WithContext(ChunkWhere(ref));
    // Intersect the tile with the region.
    uint64_t src_origin[Shape::kMaxRank], dst_origin[Shape::kMaxRank];
    Shape extent = tile_shape;
    for (size_t d = 0; d < rank; ++d) {
      const uint64_t a = std::max(lo[d], tile_origin[d]);
      const uint64_t b = std::min(hi[d], tile_origin[d] + tile_shape[d]);
      src_origin[d] = a - tile_origin[d];
      dst_origin[d] = a - lo[d];
      extent[d] = b - a;
    }
    internal::CopyBox(tile->data.data(), tile_shape, src_origin, out.data(),
                      out_shape, dst_origin, extent, item);
    size_t d = rank;
    while (d-- > 0) {
      if (++pos[d] < t_hi[d]) break;
      pos[d] = t_lo[d];
    }
    if (d == static_cast<size_t>(-1)) break;
  }
  return Sample{*meta_.spec.dtype, out_shape, std::move(out).Freeze()};
}

Result<Sample> Tensor::Impl::ReadRegion(uint64_t index,
                                        std::span<const uint64_t> lo,
                                        std::span<const uint64_t> hi) const {
  SHOAL_ASSIGN_OR_RETURN(Shape shape, ReadShape(index));
  if (lo.size() != shape.rank() || hi.size() != shape.rank()) {
    return InvalidArgument(Where() +
                           ": region rank does not match sample shape " +
                           shape.ToString());
  }
  for (size_t d = 0; d < shape.rank(); ++d) {
    if (lo[d] > hi[d] || hi[d] > shape[d]) {
      return InvalidArgument(Where() + ": region outside sample " +
                             std::to_string(index) + " of shape " +
                             shape.ToString());
    }
  }
  if (index < index_.num_samples()) {
    const internal::IndexEntry& entry = index_.entries()[index_.Find(index)];
    if (entry.tiled) {
      if (entry.tiled->shape != shape) {
        return Corruption(Where() + ": sample " + std::to_string(index) +
                          " has shape " + entry.tiled->shape.ToString() +
                          " in the index but " + shape.ToString() +
                          " in its shape tensor");
      }
      auto sample = ReadTiled(*entry.tiled, lo, hi);
      if (!sample.ok()) {
        return sample.status().WithContext("sample " + std::to_string(index));
      }
      return sample;
    }
  }
  SHOAL_ASSIGN_OR_RETURN(Sample whole, Read(index, {}));
  if (whole.shape != shape) {
    return Corruption(Where() + ": sample " + std::to_string(index) +
                      " has shape " + whole.shape.ToString() +
                      " in its chunk but " + shape.ToString() +
                      " in its shape tensor");
  }
  Shape out_shape = shape;
  for (size_t d = 0; d < shape.rank(); ++d) out_shape[d] = hi[d] - lo[d];
  SHOAL_ASSIGN_OR_RETURN(uint64_t bytes, out_shape.ByteSize(whole.dtype));
  SHOAL_ASSIGN_OR_RETURN(MutableBuffer out, MutableBuffer::Allocate(bytes));
  const uint64_t zero[Shape::kMaxRank] = {};
  internal::CopyBox(whole.data.data(), whole.shape, lo.data(), out.data(),
                    out_shape, zero, out_shape, DTypeSize(whole.dtype));
  return Sample{whole.dtype, out_shape, std::move(out).Freeze()};
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
Result<Sample> Tensor::ReadRegion(uint64_t index, std::span<const uint64_t> lo,
                                  std::span<const uint64_t> hi) const {
  return impl_->ReadRegion(index, lo, hi);
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
