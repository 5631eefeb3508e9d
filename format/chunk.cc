#include "format/chunk.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "base/coding.h"

namespace shoal {
namespace {

// Sample counts and data sizes beyond these are corrupt, not big: they keep
// arithmetic on decoded values far from overflow.
constexpr uint64_t kMaxChunkSamples = 1ull << 40;
constexpr uint64_t kMaxChunkDataBytes = 1ull << 46;

}  // namespace

void SampleLayout::Add(const Shape& shape, uint64_t stored_size,
                       uint64_t count) {
  if (count == 0) return;
  if (!shape_runs_.empty() && shape_runs_.back().shape == shape) {
    shape_runs_.back().count += count;
  } else {
    shape_runs_.push_back({num_samples_, count, shape});
  }
  if (!size_runs_.empty() && size_runs_.back().size == stored_size) {
    size_runs_.back().count += count;
  } else {
    size_runs_.push_back({num_samples_, count, stored_size, data_size_});
  }
  num_samples_ += count;
  data_size_ += stored_size * count;
}

void SampleLayout::Clear() { *this = SampleLayout(); }

template <typename Run>
static const Run& FindRun(const std::vector<Run>& runs, uint64_t index) {
  // The last run whose first sample is <= index.
  auto it = std::upper_bound(
      runs.begin(), runs.end(), index,
      [](uint64_t i, const Run& run) { return i < run.first; });
  return *(it - 1);
}

Shape SampleLayout::shape(uint64_t index) const {
  return FindRun(shape_runs_, index).shape;
}

ByteRange SampleLayout::range(uint64_t index) const {
  const SizeRun& run = FindRun(size_runs_, index);
  return {run.offset + (index - run.first) * run.size, run.size};
}

Result<SampleLayout> SampleLayout::FromRuns(std::vector<ShapeRun> shape_runs,
                                            std::vector<SizeRun> size_runs) {
  SampleLayout layout;
  uint64_t n = 0;
  for (auto& run : shape_runs) {
    if (run.count == 0 || run.count > kMaxChunkSamples) {
      return Corruption("bad shape run length");
    }
    run.first = n;
    n += run.count;
    if (n > kMaxChunkSamples) return Corruption("too many samples");
  }
  uint64_t m = 0, bytes = 0;
  for (auto& run : size_runs) {
    if (run.count == 0) return Corruption("empty size run");
    run.first = m;
    run.offset = bytes;
    m += run.count;
    if (m > kMaxChunkSamples || run.size > kMaxChunkDataBytes ||
        run.count > kMaxChunkDataBytes / std::max<uint64_t>(run.size, 1) ||
        bytes + run.size * run.count > kMaxChunkDataBytes) {
      return Corruption("sample sizes add up past the limit");
    }
    bytes += run.size * run.count;
  }
  if (n != m) {
    return Corruption("shape runs count " + std::to_string(n) +
                      " samples, size runs " + std::to_string(m));
  }
  layout.shape_runs_ = std::move(shape_runs);
  layout.size_runs_ = std::move(size_runs);
  layout.num_samples_ = n;
  layout.data_size_ = bytes;
  return layout;
}

Result<EncodedChunk> EncodeChunk(const ChunkFormat& format,
                                 const SampleLayout& layout, ByteSpan data,
                                 const ByteCodec* codec) {
  if (data.size() != layout.data_size()) {
    return Internal("chunk data has " + std::to_string(data.size()) +
                    " bytes, layout says " +
                    std::to_string(layout.data_size()));
  }
  const uint64_t block_bytes = format.block_bytes;
  const size_t num_blocks = (data.size() + block_bytes - 1) / block_bytes;

  // Compress every block into one scratch allocation; keep a block raw when
  // compression does not save enough (ByteCodec::WorthKeeping).
  struct Stored {
    const std::byte* bytes;
    uint64_t size;
    bool compressed;
  };
  std::vector<Stored> stored(num_blocks);
  MutableBuffer scratch;
  if (codec != nullptr && num_blocks > 0) {
    SHOAL_ASSIGN_OR_RETURN(
        scratch, MutableBuffer::Allocate(
                     num_blocks * codec->MaxCompressedSize(block_bytes)));
  }
  uint64_t scratch_used = 0;
  uint64_t stored_total = 0;
  for (size_t b = 0; b < num_blocks; ++b) {
    const uint64_t offset = b * block_bytes;
    const ByteSpan raw = data.subspan(
        offset, std::min<uint64_t>(block_bytes, data.size() - offset));
    stored[b] = {raw.data(), raw.size(), false};
    if (codec != nullptr) {
      MutableByteSpan dst = scratch.span().subspan(
          scratch_used, codec->MaxCompressedSize(raw.size()));
      SHOAL_ASSIGN_OR_RETURN(size_t n, codec->Compress(raw, dst));
      if (codec->WorthKeeping(raw.size(), n)) {
        stored[b] = {dst.data(), n, true};
        scratch_used += n;
      }
    }
    stored_total += stored[b].size;
  }

  ByteWriter w;
  w.PutBytes(std::string_view(kChunkMagic, 4));
  w.PutU16(kChunkVersion);
  w.PutU16(0);  // flags
  w.PutU32(0);  // header size, patched below
  w.PutU8(static_cast<uint8_t>(format.dtype));
  w.PutU8(format.rank);
  w.PutLengthPrefixed(format.sample_codec);
  w.PutLengthPrefixed(format.chunk_codec);
  w.PutVarint(block_bytes);
  w.PutVarint(layout.shape_runs().size());
  for (const auto& run : layout.shape_runs()) {
    if (run.shape.rank() != format.rank) {
      return Internal("sample shape " + run.shape.ToString() +
                      " does not have the tensor's rank");
    }
    w.PutVarint(run.count);
    for (uint64_t d : run.shape.dims()) w.PutVarint(d);
  }
  w.PutVarint(layout.size_runs().size());
  for (const auto& run : layout.size_runs()) {
    w.PutVarint(run.count);
    w.PutVarint(run.size);
  }
  w.PutVarint(num_blocks);
  for (size_t b = 0; b < num_blocks; ++b) {
    w.PutVarint(stored[b].size);
    w.PutU8(stored[b].compressed ? 1 : 0);
    w.PutU64(Checksum64({stored[b].bytes, stored[b].size}));
  }
  const uint64_t header_size = w.size() + 8;
  if (header_size > kMaxChunkHeaderBytes) {
    return ResourceExhausted("chunk header of " + std::to_string(header_size) +
                             " bytes exceeds the limit");
  }
  w.PatchU32(8, static_cast<uint32_t>(header_size));
  w.PutU64(Checksum64(AsBytes(w.bytes())));

  SHOAL_ASSIGN_OR_RETURN(MutableBuffer out,
                         MutableBuffer::Allocate(header_size + stored_total));
  std::byte* p = out.data();
  std::memcpy(p, w.bytes().data(), header_size);
  p += header_size;
  for (const auto& s : stored) {
    if (s.size) std::memcpy(p, s.bytes, s.size);
    p += s.size;
  }
  return EncodedChunk{std::move(out).Freeze(),
                      static_cast<uint32_t>(header_size)};
}

Result<uint32_t> ChunkHeader::PeekHeaderSize(ByteSpan prefix) {
  if (prefix.size() < kChunkPrefixBytes) {
    return Corruption("chunk shorter than its " +
                      std::to_string(kChunkPrefixBytes) + "-byte prefix");
  }
  if (std::memcmp(prefix.data(), kChunkMagic, 4) != 0) {
    return Corruption("not a chunk (bad magic)");
  }
  ByteReader r(prefix.subspan(4), "chunk prefix");
  SHOAL_ASSIGN_OR_RETURN(uint16_t version, r.GetU16());
  if (version != kChunkVersion) {
    return Corruption("unsupported chunk version " + std::to_string(version));
  }
  SHOAL_ASSIGN_OR_RETURN(uint16_t flags, r.GetU16());
  if (flags != 0) {
    return Corruption("unsupported chunk flags " + std::to_string(flags));
  }
  SHOAL_ASSIGN_OR_RETURN(uint32_t header_size, r.GetU32());
  if (header_size < kChunkPrefixBytes + 8 ||
      header_size > kMaxChunkHeaderBytes) {
    return Corruption("chunk header size " + std::to_string(header_size) +
                      " out of bounds");
  }
  return header_size;
}

Result<std::shared_ptr<const ChunkHeader>> ChunkHeader::Decode(
    ByteSpan bytes, std::optional<uint64_t> chunk_size) {
  SHOAL_ASSIGN_OR_RETURN(uint32_t header_size, PeekHeaderSize(bytes));
  if (bytes.size() < header_size) {
    return Corruption(
        "chunk header truncated: " + std::to_string(bytes.size()) + " of " +
        std::to_string(header_size) + " bytes");
  }
  const uint64_t want = DecodeU64(bytes.data() + header_size - 8);
  if (!ChecksumMatches(bytes.first(header_size - 8), want)) {
    return Corruption("chunk header checksum mismatch");
  }

  auto header = std::make_shared<ChunkHeader>();
  header->header_size_ = header_size;
  header->checksum_ = want;
  ByteReader r(
      bytes.subspan(kChunkPrefixBytes, header_size - kChunkPrefixBytes - 8),
      "chunk header");
  ChunkFormat& f = header->format_;
  SHOAL_ASSIGN_OR_RETURN(uint8_t dtype_code, r.GetU8());
  SHOAL_ASSIGN_OR_RETURN(f.dtype, DTypeFromCode(dtype_code));
  SHOAL_ASSIGN_OR_RETURN(f.rank, r.GetU8());
  if (f.rank > Shape::kMaxRank) return r.Error("rank above the maximum");
  SHOAL_ASSIGN_OR_RETURN(std::string_view sample_codec,
                         r.GetLengthPrefixed(256));
  SHOAL_ASSIGN_OR_RETURN(std::string_view chunk_codec,
                         r.GetLengthPrefixed(256));
  f.sample_codec = sample_codec;
  f.chunk_codec = chunk_codec;
  SHOAL_ASSIGN_OR_RETURN(f.block_bytes,
                         r.GetVarintAtMost(1ull << 30, "block size"));
  if (f.block_bytes == 0) return r.Error("block size 0");

  // Every run takes at least one byte per varint, which bounds the counts by
  // the header's own size before anything is allocated.
  SHOAL_ASSIGN_OR_RETURN(uint64_t num_shape_runs,
                         r.GetVarintAtMost(r.remaining(), "shape run count"));
  std::vector<SampleLayout::ShapeRun> shape_runs(num_shape_runs);
  for (auto& run : shape_runs) {
    SHOAL_ASSIGN_OR_RETURN(run.count, r.GetVarint());
    uint64_t dims[Shape::kMaxRank];
    for (size_t d = 0; d < f.rank; ++d) {
      SHOAL_ASSIGN_OR_RETURN(dims[d], r.GetVarint());
    }
    run.shape = Shape(std::span<const uint64_t>(dims, f.rank));
  }
  SHOAL_ASSIGN_OR_RETURN(uint64_t num_size_runs,
                         r.GetVarintAtMost(r.remaining(), "size run count"));
  std::vector<SampleLayout::SizeRun> size_runs(num_size_runs);
  for (auto& run : size_runs) {
    SHOAL_ASSIGN_OR_RETURN(run.count, r.GetVarint());
    SHOAL_ASSIGN_OR_RETURN(run.size, r.GetVarint());
  }
  auto layout =
      SampleLayout::FromRuns(std::move(shape_runs), std::move(size_runs));
  if (!layout.ok()) return layout.status().WithContext("chunk header");
  header->layout_ = std::move(*layout);

  const uint64_t data_size = header->layout_.data_size();
  const uint64_t expected_blocks =
      (data_size + f.block_bytes - 1) / f.block_bytes;
  SHOAL_ASSIGN_OR_RETURN(uint64_t num_blocks,
                         r.GetVarintAtMost(r.remaining(), "block count"));
  if (num_blocks != expected_blocks) {
    return r.Error("block count " + std::to_string(num_blocks) + ", expected " +
                   std::to_string(expected_blocks));
  }
  header->blocks_.resize(num_blocks);
  uint64_t stored_offset = header_size;
  for (uint64_t b = 0; b < num_blocks; ++b) {
    BlockInfo& block = header->blocks_[b];
    SHOAL_ASSIGN_OR_RETURN(block.stored_size,
                           r.GetVarintAtMost(kMaxChunkDataBytes, "block size"));
    SHOAL_ASSIGN_OR_RETURN(uint8_t flags, r.GetU8());
    if (flags > 1) return r.Error("unknown block flags");
    block.compressed = flags == 1;
    SHOAL_ASSIGN_OR_RETURN(block.checksum, r.GetU64());
    block.stored_offset = stored_offset;
    block.raw_offset = b * f.block_bytes;
    block.raw_size = std::min(f.block_bytes, data_size - block.raw_offset);
    if (!block.compressed && block.stored_size != block.raw_size) {
      return r.Error("raw block " + std::to_string(b) + " has " +
                     std::to_string(block.stored_size) + " bytes, expected " +
                     std::to_string(block.raw_size));
    }
    if (block.compressed && f.chunk_codec.empty()) {
      return r.Error("compressed block in a chunk without a codec");
    }
    // No codec expands a block by more than this, and the bound keeps the
    // running offset far from overflow.
    if (block.stored_size > 2 * block.raw_size + 1024) {
      return r.Error("block " + std::to_string(b) + " claims " +
                     std::to_string(block.stored_size) + " stored bytes for " +
                     std::to_string(block.raw_size) + " raw bytes");
    }
    stored_offset += block.stored_size;
  }
  if (r.remaining() != 0) return r.Error("trailing bytes in header");
  header->chunk_size_ = stored_offset;
  if (chunk_size && *chunk_size != stored_offset) {
    return Corruption("chunk is " + std::to_string(*chunk_size) +
                      " bytes, its header accounts for " +
                      std::to_string(stored_offset));
  }
  return std::shared_ptr<const ChunkHeader>(std::move(header));
}

std::pair<size_t, size_t> ChunkHeader::BlocksFor(ByteRange range) const {
  const uint64_t bb = format_.block_bytes;
  const size_t first = range.offset / bb;
  const size_t last = range.size == 0 ? first : (range.end() - 1) / bb;
  return {first, last};
}

Result<Buffer> DecodeBlocks(const ChunkHeader& header, size_t first,
                            size_t last, const Buffer& stored,
                            const ByteCodec* codec,
                            const BufferAllocator& allocate) {
  const auto& blocks = header.blocks();
  if (first > last || last >= blocks.size()) {
    return Internal("block range out of bounds");
  }
  const uint64_t base = blocks[first].stored_offset;
  const uint64_t stored_size =
      blocks[last].stored_offset + blocks[last].stored_size - base;
  if (stored.size() != stored_size) {
    return Corruption("blocks " + std::to_string(first) + ".." +
                      std::to_string(last) + " read as " +
                      std::to_string(stored.size()) + " bytes, expected " +
                      std::to_string(stored_size));
  }
  bool all_raw = true;
  for (size_t b = first; b <= last; ++b) {
    const BlockInfo& block = blocks[b];
    const ByteSpan bytes =
        stored.span().subspan(block.stored_offset - base, block.stored_size);
    if (!ChecksumMatches(bytes, block.checksum)) {
      return Corruption("block " + std::to_string(b) + " checksum mismatch");
    }
    all_raw = all_raw && !block.compressed;
  }
  if (all_raw) return stored;

  if (codec == nullptr) return Internal("compressed blocks need a codec");
  const uint64_t raw_base = blocks[first].raw_offset;
  const uint64_t raw_size =
      blocks[last].raw_offset + blocks[last].raw_size - raw_base;
  SHOAL_ASSIGN_OR_RETURN(
      MutableBuffer out,
      allocate ? allocate(raw_size) : MutableBuffer::Allocate(raw_size));
  if (out.size() != raw_size) return Internal("allocator gave a wrong size");
  for (size_t b = first; b <= last; ++b) {
    const BlockInfo& block = blocks[b];
    const ByteSpan src =
        stored.span().subspan(block.stored_offset - base, block.stored_size);
    MutableByteSpan dst =
        out.span().subspan(block.raw_offset - raw_base, block.raw_size);
    if (block.compressed) {
      Status s = codec->Decompress(src, dst);
      if (!s.ok()) return s.WithContext("block " + std::to_string(b));
    } else {
      std::memcpy(dst.data(), src.data(), src.size());
    }
  }
  return std::move(out).Freeze();
}

}  // namespace shoal
