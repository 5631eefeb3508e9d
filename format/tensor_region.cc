// Tensor: one sample, whole or a region, read into a caller's buffer. Only
// the tiles (or the one chunk) that overlap the region are read, and in each
// only the blocks that hold part of it are checked and decompressed, in
// parallel on oneTBB's threads (format/internal/parallel.h). A block that
// lands in one contiguous run of the output is decompressed straight into
// it; the others go through a block-sized scratch buffer that stays in the
// cache, from which their rows are copied out.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <optional>

#include "base/coding.h"
#include "format/internal/parallel.h"
#include "format/internal/region.h"
#include "format/internal/tensor_impl.h"

namespace shoal {

using internal::BoxRows;
using internal::ChunkRef;

namespace internal {

// A sample in a chunk that the region overlaps: one tile of a tiled sample,
// or an untiled sample.
struct RegionPiece {
  const ChunkRef* ref = nullptr;
  uint64_t index_in_chunk = 0;
  uint64_t origin[Shape::kMaxRank] = {};  // its place in the whole sample
  Shape expect;                           // its shape, as the index says
  std::shared_ptr<const ChunkHeader> header;
  ByteRange range;  // of its bytes in the chunk's data
  std::optional<BoxRows> rows;
  size_t first = 0, last = 0;  // the blocks read: [first, last]
  size_t blocks = 0;           // last - first + 1, or 0 when none are
  Buffer stored;               // their stored bytes
  Status status;
};

}  // namespace internal

namespace {

// The largest block the format allows (schema.cc checks block_bytes).
constexpr uint64_t kMaxBlockBytes = 16ull << 20;

// The first error of a parallel loop, by position, so that the same input
// always fails the same way.
class FirstError {
 public:
  void Set(size_t at, Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (status_.ok() || at < at_) status_ = std::move(s), at_ = at;
  }
  Status Take() { return std::move(status_); }

 private:
  std::mutex mu_;
  Status status_;
  size_t at_ = 0;
};

}  // namespace

Result<Shape> Tensor::Impl::RegionShape(uint64_t index, const Shape& shape,
                                        std::span<const uint64_t> lo,
                                        std::span<const uint64_t> hi) const {
  const size_t rank = shape.rank();
  if (lo.size() != rank || hi.size() != rank) {
    return InvalidArgument(Where() +
                           ": region rank does not match sample shape " +
                           shape.ToString());
  }
  Shape out_shape = shape;
  for (size_t d = 0; d < rank; ++d) {
    if (lo[d] > hi[d] || hi[d] > shape[d]) {
      return InvalidArgument(Where() + ": region outside sample " +
                             std::to_string(index) + " of shape " +
                             shape.ToString());
    }
    out_shape[d] = hi[d] - lo[d];
  }
  return out_shape;
}

Result<Sample> Tensor::Impl::ReadRegion(uint64_t index, const Shape& shape,
                                        std::span<const uint64_t> lo,
                                        std::span<const uint64_t> hi,
                                        const ReadOptions& options) const {
  SHOAL_ASSIGN_OR_RETURN(Shape out_shape, RegionShape(index, shape, lo, hi));
  SHOAL_ASSIGN_OR_RETURN(uint64_t bytes, out_shape.ByteSize(*meta_.spec.dtype));
  SHOAL_ASSIGN_OR_RETURN(MutableBuffer out, MutableBuffer::Allocate(bytes));
  SHOAL_RETURN_IF_ERROR(
      ReadRegionInto(index, shape, out_shape, lo, hi, out.span(), options));
  return Sample{*meta_.spec.dtype, out_shape, std::move(out).Freeze()};
}

Status Tensor::Impl::ReadRegionInto(uint64_t index, const Shape& shape,
                                    const Shape& out_shape,
                                    std::span<const uint64_t> lo,
                                    std::span<const uint64_t> hi,
                                    MutableByteSpan out,
                                    const ReadOptions& options) const {
  const size_t rank = shape.rank();
  const DType dtype = *meta_.spec.dtype;
  const size_t item = DTypeSize(dtype);
  SHOAL_ASSIGN_OR_RETURN(uint64_t out_bytes, out_shape.ByteSize(dtype));
  if (out.size() != out_bytes) {
    return InvalidArgument(Where() + ": region of sample " +
                           std::to_string(index) + " has " +
                           std::to_string(out_bytes) + " bytes, the buffer " +
                           std::to_string(out.size()));
  }
  const std::string sample_where = "sample " + std::to_string(index);
  const internal::IndexEntry* entry =
      index < index_.num_samples() ? &index_.entries()[index_.Find(index)]
                                   : nullptr;
  // Samples still in the open chunk, and untiled samples the tensor
  // compresses one by one: decoded whole, then cropped.
  if (entry == nullptr || (!entry->tiled && sample_codec_)) {
    SHOAL_ASSIGN_OR_RETURN(Sample whole, Read(index, {}));
    if (whole.shape != shape) {
      return Corruption(Where() + ": " + sample_where + " has shape " +
                        whole.shape.ToString() + " in its chunk but " +
                        shape.ToString() + " in its shape tensor");
    }
    const uint64_t zero[Shape::kMaxRank] = {};
    internal::CopyBox(whole.data.data(), shape, lo.data(), out.data(),
                      out_shape, zero, out_shape, item);
    return Status::OK();
  }
  if (out_bytes == 0) return Status::OK();

  // The pieces that overlap [lo, hi).
  std::vector<internal::RegionPiece> pieces;
  if (!entry->tiled) {
    internal::RegionPiece& p = pieces.emplace_back();
    p.ref = &entry->chunk;
    p.index_in_chunk = index - entry->first_sample;
    p.expect = shape;
  } else {
    const internal::TiledSample& tiled = *entry->tiled;
    if (tiled.shape != shape) {
      return Corruption(Where() + ": " + sample_where + " has shape " +
                        tiled.shape.ToString() + " in the index but " +
                        shape.ToString() + " in its shape tensor");
    }
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
        return Corruption(Where() + ": " + sample_where +
                          ": tile grid larger than its tile list");
      }
      internal::RegionPiece& p = pieces.emplace_back();
      p.ref = &tiled.tiles[t];
      p.expect = tiled.tile_shape;
      for (size_t d = 0; d < rank; ++d) {
        p.origin[d] = pos[d] * tiled.tile_shape[d];
        p.expect[d] = std::min(tiled.tile_shape[d], shape[d] - p.origin[d]);
      }
      size_t d = rank;
      while (d-- > 0) {
        if (++pos[d] < t_hi[d]) break;
        pos[d] = t_lo[d];
      }
      if (d == static_cast<size_t>(-1)) break;
    }
  }

  // Each piece: its header, the blocks under the region, their stored
  // bytes. (Tiles the tensor compresses one by one are decoded here.)
  const int threads = options.max_threads;
  internal::ParallelFor(pieces.size(), threads, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      internal::RegionPiece& p = pieces[i];
      p.status =
          PreparePiece(entry->tiled != nullptr, lo, hi, out_shape, out, p);
      if (p.status.ok() && p.rows && p.rows->rows() > 0 && !p.stored.empty()) {
        p.blocks = p.last - p.first + 1;
      }
    }
  });
  std::vector<size_t> ends;  // of each piece's tasks, one per block
  ends.reserve(pieces.size());
  size_t tasks = 0;
  for (const internal::RegionPiece& p : pieces) {
    if (!p.status.ok()) {
      return p.status.WithContext(ChunkWhere(*p.ref) + ": " + sample_where);
    }
    ends.push_back(tasks += p.blocks);
  }

  FirstError error;
  const ByteCodec* codec = chunk_codec_.get();
  internal::ParallelFor(tasks, threads, [&](size_t begin, size_t end) {
    // Decompressed blocks that do not land whole in one run of the output.
    thread_local std::vector<std::byte> scratch;
    size_t i = std::upper_bound(ends.begin(), ends.end(), begin) - ends.begin();
    for (size_t task = begin; task < end; ++task) {
      while (task >= ends[i]) ++i;
      const internal::RegionPiece& p = pieces[i];
      const size_t b = p.first + (task - (ends[i] - p.blocks));
      const auto& blocks = p.header->blocks();
      const BlockInfo& block = blocks[b];
      // The block's part of the piece's bytes, relative to the piece.
      const uint64_t a = std::max(block.raw_offset, p.range.offset);
      const uint64_t e =
          std::min(block.raw_offset + block.raw_size, p.range.end());
      const uint64_t begin_in_piece = a - p.range.offset;
      const uint64_t end_in_piece = e - p.range.offset;
      const BoxRows& rows = *p.rows;
      const uint64_t k = rows.FirstRowEndingAfter(begin_in_piece);
      if (k >= rows.rows() || rows.SrcOffset(k) >= end_in_piece) continue;
      auto fail = [&](Status s) {
        error.Set(task, s.WithContext(ChunkWhere(*p.ref) + ": " + sample_where +
                                      ": block " + std::to_string(b)));
      };
      const ByteSpan stored = p.stored.span().subspan(
          block.stored_offset - blocks[p.first].stored_offset,
          block.stored_size);
      if (!ChecksumMatches(stored, block.checksum)) {
        fail(Corruption("checksum mismatch"));
        continue;
      }
      if (!block.compressed) {
        rows.CopyRange(stored.data() + (a - block.raw_offset), begin_in_piece,
                       end_in_piece, out.data());
        continue;
      }
      // Straight into the output when the whole block is one run of it.
      const uint64_t s = rows.SrcOffset(k);
      if (a == block.raw_offset && e == block.raw_offset + block.raw_size &&
          s <= begin_in_piece && end_in_piece <= s + rows.row_bytes()) {
        Status st = codec->Decompress(
            stored, out.subspan(rows.DstOffset(k) + (begin_in_piece - s),
                                block.raw_size));
        if (!st.ok()) fail(st);
        continue;
      }
      if (block.raw_size > kMaxBlockBytes) {
        fail(Corruption("block of " + std::to_string(block.raw_size) +
                        " bytes, more than blocks can hold"));
        continue;
      }
      if (scratch.size() < block.raw_size) scratch.resize(block.raw_size);
      Status st = codec->Decompress(
          stored, MutableByteSpan(scratch.data(), block.raw_size));
      if (!st.ok()) {
        fail(st);
        continue;
      }
      rows.CopyRange(scratch.data() + (a - block.raw_offset), begin_in_piece,
                     end_in_piece, out.data());
    }
  });
  return error.Take();
}

// Reads the header of one piece, checks it against the index, and reads
// the stored bytes of the blocks that hold the region's part of it. A tile
// the tensor compresses on its own is decoded and copied out here (rows
// stays empty).
Status Tensor::Impl::PreparePiece(bool tiled, std::span<const uint64_t> lo,
                                  std::span<const uint64_t> hi,
                                  const Shape& out_shape, MutableByteSpan out,
                                  internal::RegionPiece& p) const {
  const ChunkRef* ref = p.ref;
  const uint64_t j = p.index_in_chunk;
  const uint64_t* origin = p.origin;
  const Shape& expect = p.expect;
  SHOAL_ASSIGN_OR_RETURN(auto header, Header(*ref));
  if (tiled && header->num_samples() != 1) {
    return Corruption("a tile chunk holds one sample");
  }
  const SampleLayout& layout = header->layout();
  if (j >= layout.num_samples()) return Corruption("sample not in its chunk");
  const Shape piece_shape = layout.shape(j);
  if (piece_shape != expect) {
    return Corruption(std::string(tiled ? "tile" : "sample") + " shape " +
                      piece_shape.ToString() + ", expected " +
                      expect.ToString());
  }
  const ByteRange range = layout.range(j);
  const size_t rank = expect.rank();
  // The region's part of the piece, and where it goes in the output.
  uint64_t src_origin[Shape::kMaxRank], dst_origin[Shape::kMaxRank];
  Shape extent = expect;
  for (size_t d = 0; d < rank; ++d) {
    const uint64_t a = std::max(lo[d], origin[d]);
    const uint64_t b = std::min(hi[d], origin[d] + expect[d]);
    src_origin[d] = a - origin[d];
    dst_origin[d] = a - lo[d];
    extent[d] = b - a;
  }
  if (sample_codec_) {
    Buffer bytes;
    if (range.size > 0) {
      const auto [f, l] = header->BlocksFor(range);
      SHOAL_ASSIGN_OR_RETURN(bytes, Blocks(*ref, *header, f, l));
      bytes = bytes.Slice(range.offset - header->blocks()[f].raw_offset,
                          range.size);
    }
    SHOAL_ASSIGN_OR_RETURN(Sample piece,
                           DecodeSample(std::move(bytes), expect));
    internal::CopyBox(piece.data.data(), expect, src_origin, out.data(),
                      out_shape, dst_origin, extent,
                      DTypeSize(*meta_.spec.dtype));
    return Status::OK();
  }
  SHOAL_ASSIGN_OR_RETURN(uint64_t bytes, expect.ByteSize(*meta_.spec.dtype));
  if (range.size != bytes) {
    return Corruption(std::string(tiled ? "tile" : "sample") + " of shape " +
                      expect.ToString() + " has " + std::to_string(range.size) +
                      " bytes, expected " + std::to_string(bytes));
  }
  const BoxRows& rows =
      p.rows.emplace(expect, src_origin, out_shape, dst_origin, extent,
                     DTypeSize(*meta_.spec.dtype));
  if (rows.rows() == 0) return Status::OK();
  // The blocks from the region's first byte in the piece to its last.
  const uint64_t begin = rows.SrcOffset(0);
  const uint64_t end = rows.SrcOffset(rows.rows() - 1) + rows.row_bytes();
  std::tie(p.first, p.last) =
      header->BlocksFor({range.offset + begin, end - begin});
  if (chunk_codec_ == nullptr) {
    for (size_t b = p.first; b <= p.last; ++b) {
      if (header->blocks()[b].compressed) {
        return Corruption("compressed blocks in a tensor without a codec");
      }
    }
  }
  const auto& blocks = header->blocks();
  const uint64_t offset = blocks[p.first].stored_offset;
  SHOAL_ASSIGN_OR_RETURN(
      p.stored, ChunkRange(internal::ChunkKey(meta_.id, ref->id), offset,
                           blocks[p.last].stored_offset +
                               blocks[p.last].stored_size - offset));
  p.header = std::move(header);
  p.range = range;
  return Status::OK();
}

}  // namespace shoal
