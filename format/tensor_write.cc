// Tensor's write path: validation, the open chunk, sealing chunks (encoded
// and stored at once, or handed out as PendingChunks when the dataset defers
// chunk writes, format/staged_write.h), tiling and the hidden tensors.
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

// The tile shape for a sample: halve the largest splittable dimension until a
// tile's raw bytes fit the threshold. Splittable are the leading (spatial)
// dimensions: all but the last for rank >= 3 (channels stay whole, or are
// one per tile when planar), all otherwise.
Shape ChooseTileShape(const Shape& shape, size_t item, uint64_t threshold,
                      bool planar) {
  Shape tile = shape;
  const size_t splittable = shape.rank() >= 3 ? shape.rank() - 1 : shape.rank();
  if (planar && shape.rank() >= 3) tile[shape.rank() - 1] = 1;
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
  // Pass-through: the bytes are stored as they came, whatever the size of
  // the pixels (the tiling threshold is about stored samples, and encoded
  // images are not tiled); a file larger than a chunk gets a chunk of its
  // own.
  SHOAL_ASSIGN_OR_RETURN(uint64_t raw_size, shape.ByteSize(*meta_.spec.dtype));
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
  // The fast path: fill chunks with as many whole samples as fit. The tail
  // chunk is considered first, so that chunks are cut where one Append per
  // sample would cut them.
  if (!tail_checked_) SHOAL_RETURN_IF_ERROR(LoadTailChunk(bytes));
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
  if (!tail_checked_)
    SHOAL_RETURN_IF_ERROR(LoadTailChunk(stored.size() / count));
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
  snapshot_current_ = false;
  return Status::OK();
}

void Tensor::Impl::UpdateShapeStats(const Shape& shape) {
  const bool first = meta_.min_shape.rank() != shape.rank();
  internal::ElementwiseMinMax(shape, meta_.min_shape, meta_.max_shape, first);
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

Status Tensor::Impl::LoadTailChunk(uint64_t next_sample_bytes) {
  tail_checked_ = true;
  if (index_.entries().empty() || index_.entries().back().tiled)
    return Status::OK();
  const ChunkRef ref = index_.entries().back().chunk;
  // A partly filled chunk from an earlier commit: its samples move into the
  // open chunk, which will be written as a new chunk replacing it. Unless
  // deferred, that is for a chunk under half full, so that frequent flushes
  // do not leave many small chunks. A deferred writer (ingestion) continues
  // any tail the next sample fits in, exactly as if it had never stopped, so
  // that a resumed ingestion cuts the chunks an uninterrupted one cuts.
  if (!context_->deferred && ref.chunk_bytes >= meta_.spec.max_chunk_bytes / 2)
    return Status::OK();
  const std::string key = internal::ChunkKey(meta_.id, ref.id);
  auto bytes = context_->store->Read(key);
  if (!bytes.ok()) return bytes.status().WithContext(ChunkWhere(ref));
  auto header = ChunkHeader::Decode(bytes->span(), bytes->size());
  if (!header.ok()) return header.status().WithContext(ChunkWhere(ref));
  const ChunkHeader& h = **header;
  if (h.data_size() > meta_.spec.max_chunk_bytes) return Status::OK();
  if (context_->deferred &&
      next_sample_bytes > meta_.spec.max_chunk_bytes - h.data_size()) {
    return Status::OK();
  }
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
                                          std::vector<std::byte> data,
                                          std::vector<std::byte>* unwritten) {
  ChunkFormat format;
  format.dtype = *meta_.spec.dtype;
  format.rank = rank();
  format.sample_codec = meta_.spec.sample_compression;
  format.chunk_codec = meta_.spec.chunk_compression;
  format.block_bytes = meta_.spec.block_bytes;
  ChunkRef ref;
  ref.id = context_->NewId();
  ref.num_samples = layout.num_samples();
  PendingChunk chunk(internal::ChunkKey(meta_.id, ref.id), ref.id,
                     ChunkWhere(ref), std::move(format), chunk_codec_, layout,
                     std::move(data));
  if (context_->deferred) {
    meta_.num_chunks += 1;
    dirty_ = true;
    // Sizes are known once encoded; the commit fills them in.
    context_->pending.push_back(std::move(chunk));
    return ref;
  }
  SHOAL_RETURN_IF_ERROR(chunk.EncodeAndWrite(*context_->store, unwritten));
  meta_.num_chunks += 1;
  dirty_ = true;
  ref.chunk_bytes = chunk.chunk_bytes();
  ref.header_bytes = chunk.header_bytes();
  ref.header_checksum = chunk.header_checksum();
  meta_.stored_bytes += ref.chunk_bytes;
  return ref;
}

Status Tensor::Impl::SealOpenChunk() {
  if (open_layout_.num_samples() == 0) return Status::OK();
  // A chunk that could not be stored stays open, for the next try.
  SHOAL_ASSIGN_OR_RETURN(
      ChunkRef ref,
      WriteChunk(open_layout_, std::move(open_data_), &open_data_));
  index_.AddChunk(ref);
  open_data_ = {};
  open_layout_.Clear();
  snapshot_current_ = false;
  return Status::OK();
}

std::optional<ChunkRef> Tensor::Impl::SnapshotOpenChunk() {
  if (snapshot_current_) return open_snapshot_;
  // The copy made for the commit before is superseded by this one (or by
  // the sealed chunk that now holds its samples).
  DropOpenSnapshot();
  snapshot_current_ = true;
  if (open_layout_.num_samples() == 0) return std::nullopt;
  // WriteChunk counts a chunk; a snapshot is not one of the tensor's own.
  auto ref = WriteChunk(open_layout_, open_data_);
  meta_.num_chunks -= 1;
  open_snapshot_ = *ref;  // deferred mode: cannot fail
  return open_snapshot_;
}

Status Tensor::Impl::AppendTiled(const Shape& shape, ByteSpan data) {
  if (!tail_checked_) SHOAL_RETURN_IF_ERROR(LoadTailChunk(UINT64_MAX));
  // Keep the index in sample order: the samples before this one go first.
  SHOAL_RETURN_IF_ERROR(SealOpenChunk());
  const size_t item = DTypeSize(*meta_.spec.dtype);
  auto tiled = std::make_shared<TiledSample>();
  tiled->shape = shape;
  tiled->tile_shape = ChooseTileShape(shape, item, meta_.spec.tiling_threshold,
                                      meta_.spec.planar);
  // Tiles that cannot get under the threshold (channels alone above it, or a
  // rank-0 sample) could be written but never read back: readers cap a
  // stored sample at the threshold.
  if (tiled->tile_shape.num_elements() * item > meta_.spec.tiling_threshold) {
    return InvalidArgument(
        Where() + ": sample shape " + shape.ToString() +
        " cannot be tiled under tiling_threshold " +
        std::to_string(meta_.spec.tiling_threshold) +
        " bytes: its smallest "
        "tile " +
        tiled->tile_shape.ToString() +
        " (channels stay whole unless planar) "
        "takes " +
        std::to_string(tiled->tile_shape.num_elements() * item) +
        " bytes; raise tiling_threshold");
  }
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
    SHOAL_ASSIGN_OR_RETURN(
        ChunkRef ref, WriteChunk(layout, std::vector<std::byte>(stored.begin(),
                                                                stored.end())));
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

void Tensor::Impl::RecountChunks() {
  index_.CountChunks(&meta_.stored_bytes, &meta_.num_chunks);
}

void Tensor::Impl::DropOpenSnapshot() {
  if (open_snapshot_) superseded_.push_back(open_snapshot_->id);
  open_snapshot_.reset();
  snapshot_current_ = false;
}

std::vector<std::string> Tensor::Impl::OnCommitPrepared() {
  std::vector<std::string> garbage;
  for (uint64_t id : superseded_)
    garbage.push_back(internal::ChunkKey(meta_.id, id));
  superseded_.clear();
  // A deferred writer keeps its open chunk open across commits.
  if (!context_->deferred) tail_checked_ = false;
  dirty_ = false;
  return garbage;
}

}  // namespace shoal
