// Tests for format/chunk.h: SampleLayout run-length encoding, EncodeChunk /
// ChunkHeader::Decode round trips checked against the byte layout of
// format/FORMAT.md (the test has its own header encoder), and hostile
// headers: every truncation, every bit flip, and lying fields behind a valid
// checksum must give Corruption without crashing or allocating in proportion
// to a lying size. DecodeBlocks must name the block that fails.
#include "format/chunk.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <xxhash.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/random.h"
#include "codecs/byte_codec.h"
#include "tests/format/alloc_tracker.h"
#include "tests/format/format_test_util.h"

namespace shoal {
namespace {

using format_test::AllocationWatch;
using format_test::HasCode;
using format_test::Ok;
using format_test::PutLE;
using format_test::PutVarint;
using format_test::SampleBytes;
using ::testing::HasSubstr;

// ------------------------------------------- the spec's encoder, in the test
// --

uint64_t Xxh3(std::string_view bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

// Every field of a chunk header (FORMAT.md, "Chunks"). Counts are taken
// from the vectors unless overridden, so a test can make them lie.
struct HeaderFields {
  std::string magic = "SHCK";
  uint16_t version = 1;
  uint16_t flags = 0;
  uint8_t dtype = 2;
  uint8_t rank = 0;
  std::string sample_codec;
  std::string chunk_codec;
  uint64_t block_bytes = 4096;
  struct ShapeRun {
    uint64_t count;
    std::vector<uint64_t> dims;
  };
  std::vector<ShapeRun> shape_runs;
  struct SizeRun {
    uint64_t count;
    uint64_t size;
  };
  std::vector<SizeRun> size_runs;
  struct Block {
    uint64_t stored_size;
    uint8_t flags;
    uint64_t checksum;
  };
  std::vector<Block> blocks;
  std::optional<uint64_t> num_shape_runs, num_size_runs, num_blocks;
  std::string trailing;  // extra bytes at the end of the body
  std::optional<uint32_t> header_size;
};

std::string EncodeHeader(const HeaderFields& f) {
  std::string out = f.magic;
  PutLE(out, f.version, 2);
  PutLE(out, f.flags, 2);
  PutLE(out, 0, 4);  // header size, below
  out.push_back(static_cast<char>(f.dtype));
  out.push_back(static_cast<char>(f.rank));
  PutVarint(out, f.sample_codec.size());
  out += f.sample_codec;
  PutVarint(out, f.chunk_codec.size());
  out += f.chunk_codec;
  PutVarint(out, f.block_bytes);
  PutVarint(out, f.num_shape_runs.value_or(f.shape_runs.size()));
  for (const auto& run : f.shape_runs) {
    PutVarint(out, run.count);
    for (uint64_t d : run.dims) PutVarint(out, d);
  }
  PutVarint(out, f.num_size_runs.value_or(f.size_runs.size()));
  for (const auto& run : f.size_runs) {
    PutVarint(out, run.count);
    PutVarint(out, run.size);
  }
  PutVarint(out, f.num_blocks.value_or(f.blocks.size()));
  for (const auto& b : f.blocks) {
    PutVarint(out, b.stored_size);
    out.push_back(static_cast<char>(b.flags));
    PutLE(out, b.checksum, 8);
  }
  out += f.trailing;
  const uint32_t size = f.header_size.value_or(out.size() + 8);
  for (int i = 0; i < 4; ++i) out[8 + i] = static_cast<char>(size >> (8 * i));
  PutLE(out, Xxh3(out), 8);
  return out;
}

// The fields of a decoded header, to patch and re-encode.
HeaderFields FieldsOf(const ChunkHeader& h) {
  HeaderFields f;
  f.dtype = static_cast<uint8_t>(h.format().dtype);
  f.rank = h.format().rank;
  f.sample_codec = h.format().sample_codec;
  f.chunk_codec = h.format().chunk_codec;
  f.block_bytes = h.format().block_bytes;
  for (const auto& run : h.layout().shape_runs()) {
    f.shape_runs.push_back(
        {run.count, {run.shape.dims().begin(), run.shape.dims().end()}});
  }
  for (const auto& run : h.layout().size_runs()) {
    f.size_runs.push_back({run.count, run.size});
  }
  for (const auto& b : h.blocks()) {
    f.blocks.push_back(
        {b.stored_size, uint8_t(b.compressed ? 1 : 0), b.checksum});
  }
  return f;
}

ByteSpan Bytes(std::string_view s) { return AsBytes(s); }

// ------------------------------------------------------- sample layouts --

// One sample as the test expects it.
struct Expected {
  Shape shape;
  uint64_t size;
};

struct LayoutCase {
  const char* name;
  DType dtype;
  uint8_t rank;
  std::vector<Expected> samples;
  uint64_t block_bytes;
};

std::vector<Expected> Repeat(const Shape& shape, uint64_t size, uint64_t n) {
  return std::vector<Expected>(n, Expected{shape, size});
}

std::vector<LayoutCase> LayoutCases() {
  std::vector<LayoutCase> out;
  out.push_back(
      {"fixed", DType::kUInt8, 2, Repeat(Shape{3, 4}, 12, 500), 4096});
  {
    LayoutCase c{"varying", DType::kFloat32, 3, {}, 4096};
    for (uint64_t i = 0; i < 300; ++i) {
      const Shape s{i % 4, 3, (i / 7) % 5 + 1};
      c.samples.push_back({s, s[0] * s[1] * s[2] * 4});
    }
    out.push_back(c);
  }
  {
    LayoutCase c{"zero_sizes", DType::kInt16, 2, {}, 4096};
    for (uint64_t i = 0; i < 50; ++i) {
      c.samples.push_back(i % 3 == 0 ? Expected{Shape{0, 5}, 0}
                                     : Expected{Shape{2, 5}, 20});
    }
    out.push_back(c);
  }
  out.push_back({"all_empty", DType::kUInt8, 1, Repeat(Shape{0}, 0, 20), 4096});
  out.push_back(
      {"scalars", DType::kFloat64, 0, Repeat(Shape{}, 8, 2000), 4096});
  {
    // Sample-compressed: stored sizes unrelated to the shapes.
    LayoutCase c{"compressed_sizes", DType::kUInt16, 1, {}, 8192};
    for (uint64_t i = 0; i < 200; ++i) {
      c.samples.push_back({Shape{1000}, 50 + (i * 37) % 300});
    }
    out.push_back(c);
  }
  out.push_back(
      {"one_big", DType::kUInt8, 1, Repeat(Shape{100000}, 100000, 1), 4096});
  out.push_back({"empty_chunk", DType::kUInt8, 1, {}, 4096});
  return out;
}

SampleLayout BuildLayout(const std::vector<Expected>& samples) {
  SampleLayout layout;
  // Use counts > 1 where neighbours repeat, as the fast append path does.
  for (size_t i = 0; i < samples.size();) {
    size_t j = i + 1;
    while (j < samples.size() && j - i < 37 &&
           samples[j].shape == samples[i].shape &&
           samples[j].size == samples[i].size) {
      ++j;
    }
    layout.Add(samples[i].shape, samples[i].size, j - i);
    i = j;
  }
  return layout;
}

size_t NumRuns(const std::vector<Expected>& samples, bool by_shape) {
  size_t runs = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const bool same =
        i > 0 && (by_shape ? samples[i].shape == samples[i - 1].shape
                           : samples[i].size == samples[i - 1].size);
    if (!same) ++runs;
  }
  return runs;
}

void CheckLayout(const SampleLayout& layout,
                 const std::vector<Expected>& samples) {
  ASSERT_EQ(layout.num_samples(), samples.size());
  uint64_t offset = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    ASSERT_EQ(layout.shape(i), samples[i].shape) << "sample " << i;
    const ByteRange r = layout.range(i);
    ASSERT_EQ(r.offset, offset) << "sample " << i;
    ASSERT_EQ(r.size, samples[i].size) << "sample " << i;
    offset += samples[i].size;
  }
  EXPECT_EQ(layout.data_size(), offset);
  EXPECT_EQ(layout.shape_runs().size(), NumRuns(samples, true));
  EXPECT_EQ(layout.size_runs().size(), NumRuns(samples, false));
}

std::vector<std::byte> DataFor(const std::vector<Expected>& samples) {
  std::vector<std::byte> data;
  for (size_t i = 0; i < samples.size(); ++i) {
    auto b = SampleBytes(42, i, samples[i].size);
    data.insert(data.end(), b.begin(), b.end());
  }
  return data;
}

const char* const kChunkCodecs[] = {"", "lz4", "zstd:3+shuffle", "lz4hc:9"};

// lz4 keeps a block compressed only when that saves an eighth of it (a
// block lz4 barely shrinks reads ten times slower than a raw one); zstd
// keeps any saving.
TEST(ChunkTest, Lz4StoresBlocksThatSaveLessThanAnEighthRaw) {
  std::mt19937_64 rng(5);
  std::vector<std::byte> data(3 * 4096);
  for (size_t k = 0; k < data.size(); ++k) {
    const size_t in_block = k % 4096;
    // Block 0 random (nothing to save), block 1 saves about 1/16 with a
    // zero tail, block 2 about 1/2.
    const size_t random_bytes = k < 4096 ? 4096 : k < 8192 ? 3840 : 2048;
    data[k] =
        in_block < random_bytes ? static_cast<std::byte>(rng()) : std::byte{0};
  }
  SampleLayout layout;
  layout.Add(Shape{data.size()}, data.size());
  for (const char* spec : {"lz4", "lz4hc:9", "lz4+shuffle", "zstd:3"}) {
    SCOPED_TRACE(spec);
    auto codec = MakeByteCodec(spec);
    ASSERT_TRUE(Ok(codec));
    auto encoded = EncodeChunk({DType::kUInt8, 1, "", spec, 4096}, layout,
                               format_test::Span(data), codec->get());
    ASSERT_TRUE(Ok(encoded));
    auto header = ChunkHeader::Decode(encoded->bytes.span());
    ASSERT_TRUE(Ok(header));
    const auto& blocks = (*header)->blocks();
    ASSERT_EQ(blocks.size(), 3u);
    const bool lz4 = std::string_view(spec).starts_with("lz4");
    EXPECT_FALSE(blocks[0].compressed);
    EXPECT_EQ(blocks[1].compressed, !lz4);
    EXPECT_TRUE(blocks[2].compressed);
    auto back = DecodeBlocks(
        **header, 0, 2,
        encoded->bytes.Slice((*header)->header_size(),
                             encoded->bytes.size() - (*header)->header_size()),
        codec->get());
    ASSERT_TRUE(Ok(back));
    EXPECT_EQ(back->view(),
              std::string_view(reinterpret_cast<const char*>(data.data()),
                               data.size()));
  }
}

TEST(ChunkTest, LayoutAndChunkRoundTrip) {
  for (const LayoutCase& c : LayoutCases()) {
    for (const char* codec_spec : kChunkCodecs) {
      SCOPED_TRACE(std::string(c.name) + " codec '" + codec_spec + "'");
      const SampleLayout layout = BuildLayout(c.samples);
      CheckLayout(layout, c.samples);
      const std::vector<std::byte> data = DataFor(c.samples);
      std::shared_ptr<const ByteCodec> codec;
      if (*codec_spec) {
        auto made = MakeByteCodec(codec_spec, {DTypeSize(c.dtype)});
        ASSERT_TRUE(Ok(made));
        codec = *made;
      }
      const ChunkFormat format{c.dtype, c.rank, "", codec_spec, c.block_bytes};
      auto encoded =
          EncodeChunk(format, layout, format_test::Span(data), codec.get());
      ASSERT_TRUE(Ok(encoded));
      const Buffer& bytes = encoded->bytes;

      auto peeked =
          ChunkHeader::PeekHeaderSize(bytes.span().first(kChunkPrefixBytes));
      ASSERT_TRUE(Ok(peeked));
      EXPECT_EQ(*peeked, encoded->header_size);
      EXPECT_EQ(std::memcmp(bytes.data(), "SHCK", 4), 0);

      auto decoded = ChunkHeader::Decode(bytes.span(), bytes.size());
      ASSERT_TRUE(Ok(decoded));
      const ChunkHeader& h = **decoded;
      EXPECT_EQ(h.header_size(), encoded->header_size);
      EXPECT_EQ(h.chunk_size(), bytes.size());
      EXPECT_EQ(h.format().dtype, c.dtype);
      EXPECT_EQ(h.format().rank, c.rank);
      EXPECT_EQ(h.format().chunk_codec, codec_spec);
      EXPECT_EQ(h.format().block_bytes, c.block_bytes);
      CheckLayout(h.layout(), c.samples);

      // The block table, as FORMAT.md defines it.
      const uint64_t d = data.size(), bb = c.block_bytes;
      ASSERT_EQ(h.blocks().size(), (d + bb - 1) / bb);
      uint64_t stored_offset = h.header_size();
      for (size_t b = 0; b < h.blocks().size(); ++b) {
        const BlockInfo& block = h.blocks()[b];
        EXPECT_EQ(block.stored_offset, stored_offset) << b;
        EXPECT_EQ(block.raw_offset, b * bb) << b;
        EXPECT_EQ(block.raw_size, std::min(bb, d - b * bb)) << b;
        EXPECT_EQ(
            block.checksum,
            XXH3_64bits(bytes.data() + block.stored_offset, block.stored_size))
            << b;
        if (!block.compressed) {
          EXPECT_EQ(block.stored_size, block.raw_size) << b;
        }
        if (!*codec_spec) {
          EXPECT_FALSE(block.compressed) << b;
        }
        stored_offset += block.stored_size;
      }
      EXPECT_EQ(stored_offset, bytes.size());

      // Without a codec, the test's own encoder gives the same header bytes.
      if (!*codec_spec) {
        HeaderFields f = FieldsOf(h);
        const std::string spec_bytes = EncodeHeader(f);
        EXPECT_EQ(spec_bytes,
                  std::string(bytes.view().substr(0, h.header_size())));
      }

      if (h.blocks().empty()) continue;
      const Buffer stored =
          bytes.Slice(h.header_size(), bytes.size() - h.header_size());
      auto all = DecodeBlocks(h, 0, h.blocks().size() - 1, stored, codec.get());
      ASSERT_TRUE(Ok(all));
      ASSERT_EQ(all->size(), data.size());
      EXPECT_EQ(std::memcmp(all->data(), data.data(), data.size()), 0);

      // Every sample through BlocksFor and a partial DecodeBlocks.
      for (size_t i = 0; i < c.samples.size(); i += 1 + c.samples.size() / 50) {
        const ByteRange r = h.layout().range(i);
        if (r.size == 0) continue;
        const auto [first, last] = h.BlocksFor(r);
        EXPECT_EQ(first, r.offset / bb);
        EXPECT_EQ(last, (r.end() - 1) / bb);
        const BlockInfo& fb = h.blocks()[first];
        const BlockInfo& lb = h.blocks()[last];
        const Buffer part =
            bytes.Slice(fb.stored_offset,
                        lb.stored_offset + lb.stored_size - fb.stored_offset);
        auto raw = DecodeBlocks(h, first, last, part, codec.get());
        ASSERT_TRUE(Ok(raw));
        ASSERT_EQ(raw->size(), lb.raw_offset + lb.raw_size - fb.raw_offset);
        EXPECT_EQ(std::memcmp(raw->data() + (r.offset - fb.raw_offset),
                              data.data() + r.offset, r.size),
                  0)
            << "sample " << i;
      }
    }
  }
}

TEST(ChunkTest, FromRunsRejectsInconsistentRuns) {
  using ShapeRun = SampleLayout::ShapeRun;
  using SizeRun = SampleLayout::SizeRun;
  EXPECT_TRUE(Ok(SampleLayout::FromRuns({ShapeRun{0, 3, Shape{2}}},
                                        {SizeRun{0, 3, 8, 0}})));
  EXPECT_TRUE(HasCode(
      SampleLayout::FromRuns({ShapeRun{0, 3, Shape{2}}}, {SizeRun{0, 2, 8, 0}}),
      StatusCode::kCorruption));
  EXPECT_TRUE(HasCode(SampleLayout::FromRuns({ShapeRun{0, 0, Shape{2}}}, {}),
                      StatusCode::kCorruption));
  EXPECT_TRUE(HasCode(
      SampleLayout::FromRuns({ShapeRun{0, 1, Shape{2}}},
                             {SizeRun{0, 0, 8, 0}, SizeRun{0, 1, 8, 0}}),
      StatusCode::kCorruption));
  EXPECT_TRUE(
      HasCode(SampleLayout::FromRuns({ShapeRun{0, 1ull << 60, Shape{2}}},
                                     {SizeRun{0, 1ull << 60, 8, 0}}),
              StatusCode::kCorruption));
  EXPECT_TRUE(HasCode(SampleLayout::FromRuns({ShapeRun{0, 1024, Shape{2}}},
                                             {SizeRun{0, 1024, 1ull << 50, 0}}),
                      StatusCode::kCorruption));
  // Sizes whose product overflows 64 bits.
  EXPECT_TRUE(
      HasCode(SampleLayout::FromRuns({ShapeRun{0, 1ull << 39, Shape{2}}},
                                     {SizeRun{0, 1ull << 39, 1ull << 40, 0}}),
              StatusCode::kCorruption));
}

// ------------------------------------------------------- hostile headers --

// A real chunk with several runs and compressed blocks.
struct RealChunk {
  EncodedChunk encoded;
  std::shared_ptr<const ByteCodec> codec;
  std::vector<std::byte> data;
};

RealChunk MakeRealChunk() {
  RealChunk c;
  std::vector<Expected> samples;
  for (uint64_t i = 0; i < 60; ++i) {
    const Shape s{i % 3 + 1, 50};
    samples.push_back({s, s[0] * s[1] * 2});
  }
  const SampleLayout layout = BuildLayout(samples);
  c.data = DataFor(samples);
  c.codec = *MakeByteCodec("lz4");
  auto encoded = EncodeChunk({DType::kInt16, 2, "", "lz4", 4096}, layout,
                             format_test::Span(c.data), c.codec.get());
  EXPECT_TRUE(Ok(encoded));
  c.encoded = *encoded;
  return c;
}

TEST(ChunkHostileTest, EveryTruncationIsCorruption) {
  const RealChunk c = MakeRealChunk();
  const Buffer& bytes = c.encoded.bytes;
  const size_t header = c.encoded.header_size;
  ASSERT_GT(header, 100u);
  for (size_t n = 0; n < header; ++n) {
    const ByteSpan cut = bytes.span().first(n);
    EXPECT_TRUE(HasCode(ChunkHeader::Decode(cut), StatusCode::kCorruption))
        << n;
    EXPECT_TRUE(HasCode(ChunkHeader::Decode(cut, bytes.size()),
                        StatusCode::kCorruption))
        << n;
    if (n < kChunkPrefixBytes) {
      EXPECT_TRUE(
          HasCode(ChunkHeader::PeekHeaderSize(cut), StatusCode::kCorruption))
          << n;
    }
  }
  // A whole header, but the object cut short in its blocks.
  for (size_t n = header; n < bytes.size(); n += 97) {
    EXPECT_TRUE(HasCode(ChunkHeader::Decode(bytes.span().first(n), n),
                        StatusCode::kCorruption))
        << n;
  }
  EXPECT_TRUE(HasCode(ChunkHeader::Decode(bytes.span(), bytes.size() + 1),
                      StatusCode::kCorruption));
  EXPECT_TRUE(Ok(ChunkHeader::Decode(bytes.span(), bytes.size())));
}

TEST(ChunkHostileTest, EveryBitFlipInTheHeaderIsCorruption) {
  const RealChunk c = MakeRealChunk();
  const size_t header = c.encoded.header_size;
  std::vector<std::byte> bytes(c.encoded.bytes.data(),
                               c.encoded.bytes.data() + c.encoded.bytes.size());
  for (size_t bit = 0; bit < header * 8; ++bit) {
    bytes[bit / 8] ^= std::byte(1u << (bit % 8));
    auto decoded =
        ChunkHeader::Decode({bytes.data(), bytes.size()}, bytes.size());
    EXPECT_TRUE(HasCode(decoded, StatusCode::kCorruption)) << "bit " << bit;
    bytes[bit / 8] ^= std::byte(1u << (bit % 8));
  }
}

// A header re-encoded by the test from the real chunk's fields decodes like
// the original; then each lie (checksum recomputed) must be Corruption.
class LyingHeaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    chunk_ = MakeRealChunk();
    auto h = ChunkHeader::Decode(chunk_.encoded.bytes.span());
    ASSERT_TRUE(Ok(h));
    header_ = *h;
    base_ = FieldsOf(*header_);
    blocks_ =
        std::string(chunk_.encoded.bytes.view().substr(header_->header_size()));
    ASSERT_EQ(EncodeHeader(base_),
              std::string(chunk_.encoded.bytes.view().substr(
                  0, header_->header_size())));
  }

  // Decodes `f` (as a header alone, and followed by the real blocks) and
  // expects Corruption, with no large allocation on the way.
  void ExpectCorrupt(const HeaderFields& f, const std::string& what) {
    SCOPED_TRACE(what);
    const std::string header = EncodeHeader(f);
    const auto start = std::chrono::steady_clock::now();
    AllocationWatch watch;
    EXPECT_TRUE(
        HasCode(ChunkHeader::Decode(Bytes(header)), StatusCode::kCorruption));
    const std::string object = header + blocks_;
    EXPECT_TRUE(HasCode(ChunkHeader::Decode(Bytes(object), object.size()),
                        StatusCode::kCorruption));
    EXPECT_LT(watch.largest_new(), 16u << 20);
    EXPECT_LT(watch.buffer_peak(), 16 << 20);
    EXPECT_LT(std::chrono::steady_clock::now() - start,
              std::chrono::seconds(1));
  }

  RealChunk chunk_;
  std::shared_ptr<const ChunkHeader> header_;
  HeaderFields base_;
  std::string blocks_;
};

TEST_F(LyingHeaderTest, BlockCountMismatch) {
  HeaderFields f = base_;
  f.blocks.pop_back();
  ExpectCorrupt(f, "one block fewer");
  f = base_;
  f.blocks.push_back(f.blocks.back());
  ExpectCorrupt(f, "one block more");
  f = base_;
  f.num_blocks = 1ull << 40;
  ExpectCorrupt(f, "block count 2^40");
}

TEST_F(LyingHeaderTest, SampleCountsOfRunsDisagree) {
  HeaderFields f = base_;
  f.shape_runs.back().count += 1;
  ExpectCorrupt(f, "one more sample in the shape runs");
  f = base_;
  f.size_runs.back().count -= 1;
  ExpectCorrupt(f, "one fewer sample in the size runs");
  f = base_;
  f.shape_runs.back().count = 0;
  ExpectCorrupt(f, "an empty shape run");
  f = base_;
  f.size_runs.push_back({0, 4});
  ExpectCorrupt(f, "an empty size run");
}

TEST_F(LyingHeaderTest, AbsurdSizes) {
  HeaderFields f = base_;
  f.shape_runs = {{1ull << 60, {1, 50}}};
  f.size_runs = {{1ull << 60, 100}};
  ExpectCorrupt(f, "2^60 samples");
  f = base_;
  f.shape_runs = {{1ull << 20, {1, 50}}};
  f.size_runs = {{1ull << 20, 1ull << 30}};
  ExpectCorrupt(f, "2^50 data bytes");
  f = base_;
  f.shape_runs = {{1ull << 30, {1, 50}}};
  f.size_runs = {{1ull << 30, 1ull << 14}};
  ExpectCorrupt(f, "2^44 data bytes, so 2^32 blocks claimed by a short table");
  f = base_;
  f.num_shape_runs = 1ull << 40;
  ExpectCorrupt(f, "2^40 shape runs");
  f = base_;
  f.num_size_runs = 1ull << 40;
  ExpectCorrupt(f, "2^40 size runs");
  f = base_;
  f.num_shape_runs = UINT64_MAX;
  ExpectCorrupt(f, "2^64-1 shape runs");
}

TEST_F(LyingHeaderTest, StoredBlockTooLarge) {
  HeaderFields f = base_;
  // Two blocks the codec kept compressed.
  std::vector<size_t> compressed;
  for (size_t b = 0; b < f.blocks.size(); ++b) {
    if (f.blocks[b].flags & 1) compressed.push_back(b);
  }
  ASSERT_GE(compressed.size(), 2u);
  const size_t a = compressed[0], c = compressed[1];
  f.blocks[a].stored_size = 2 * 4096 + 1025;
  ExpectCorrupt(f, "stored block of 2*raw+1025 bytes");
  f.blocks[a].stored_size = 1ull << 50;
  ExpectCorrupt(f, "stored block of 2^50 bytes");
  f = base_;
  f.blocks[c].flags = 0;  // raw, but stored size != raw size
  ExpectCorrupt(f, "raw block of the wrong size");
  f = base_;
  f.blocks[c].flags = 2;
  ExpectCorrupt(f, "unknown block flags");
  f = base_;
  f.chunk_codec = "";
  ExpectCorrupt(f, "compressed blocks without a codec");
}

TEST_F(LyingHeaderTest, BadFixedFields) {
  HeaderFields f = base_;
  f.rank = 9;
  ExpectCorrupt(f, "rank 9");
  f = base_;
  f.rank = 255;
  ExpectCorrupt(f, "rank 255");
  f = base_;
  f.rank = 3;  // the dims no longer line up with the runs
  ExpectCorrupt(f, "rank 3 for rank-2 runs");
  for (uint8_t dtype : {0, 13, 255}) {
    f = base_;
    f.dtype = dtype;
    ExpectCorrupt(f, "dtype " + std::to_string(dtype));
  }
  f = base_;
  f.block_bytes = 0;
  ExpectCorrupt(f, "block size 0");
  f = base_;
  f.block_bytes = (1ull << 30) + 1;
  ExpectCorrupt(f, "block size above 1 GiB");
  f = base_;
  f.block_bytes = 2048;  // the block table no longer fits the data
  ExpectCorrupt(f, "block size changed");
  f = base_;
  f.sample_codec = std::string(300, 'z');
  ExpectCorrupt(f, "codec spec of 300 bytes");
  f = base_;
  f.trailing = "x";
  ExpectCorrupt(f, "trailing byte");
  f = base_;
  f.version = 2;
  ExpectCorrupt(f, "version 2");
  f = base_;
  f.magic = "SHCX";
  ExpectCorrupt(f, "magic");
  f = base_;
  f.header_size = 19;
  ExpectCorrupt(f, "header size 19");
  f = base_;
  f.header_size = (64u << 20) + 1;
  ExpectCorrupt(f, "header size above 64 MiB");
  f = base_;
  f.header_size = EncodeHeader(base_).size() - 10;
  ExpectCorrupt(f, "header size 10 bytes short");
}

// FORMAT.md: "u16 flags = 0", and readers reject anything that does not
// match the document.
TEST_F(LyingHeaderTest, NonZeroFlagsAreRejected) {
  HeaderFields f = base_;
  f.flags = 1;
  ExpectCorrupt(f, "flags 1");
}

TEST(ChunkHostileTest, FlippedDataByteNamesTheBlock) {
  const RealChunk c = MakeRealChunk();
  auto h = ChunkHeader::Decode(c.encoded.bytes.span(), c.encoded.bytes.size());
  ASSERT_TRUE(Ok(h));
  const ChunkHeader& header = **h;
  const size_t n = header.blocks().size();
  ASSERT_GE(n, 3u);
  const Buffer original = c.encoded.bytes.Slice(
      header.header_size(), header.chunk_size() - header.header_size());
  for (size_t k = 0; k < n; ++k) {
    SCOPED_TRACE("block " + std::to_string(k));
    std::vector<std::byte> stored(original.data(),
                                  original.data() + original.size());
    const BlockInfo& block = header.blocks()[k];
    stored[block.stored_offset - header.header_size() +
           block.stored_size / 2] ^= std::byte{0x10};
    const Buffer bad = Buffer::CopyOf(ByteSpan(stored.data(), stored.size()));
    auto all = DecodeBlocks(header, 0, n - 1, bad, c.codec.get());
    EXPECT_TRUE(HasCode(all, StatusCode::kCorruption));
    EXPECT_THAT(std::string(all.status().message()),
                HasSubstr("block " + std::to_string(k)));
    // The other blocks still decode, alone.
    for (size_t j = 0; j < n; ++j) {
      const BlockInfo& other = header.blocks()[j];
      const Buffer one = bad.Slice(other.stored_offset - header.header_size(),
                                   other.stored_size);
      auto decoded = DecodeBlocks(header, j, j, one, c.codec.get());
      if (j == k) {
        EXPECT_TRUE(HasCode(decoded, StatusCode::kCorruption));
      } else {
        ASSERT_TRUE(Ok(decoded)) << "block " << j;
        EXPECT_EQ(std::memcmp(decoded->data(), c.data.data() + other.raw_offset,
                              other.raw_size),
                  0);
      }
    }
  }
  // The stored bytes of a different length than the block table says.
  EXPECT_TRUE(HasCode(
      DecodeBlocks(header, 0, n - 1, original.Slice(0, original.size() - 1),
                   c.codec.get()),
      StatusCode::kCorruption));
}

// Garbage compressed bytes behind a valid checksum: the codec must refuse
// them, and the error must name the block.
TEST(ChunkHostileTest, UndecodableBlockWithValidChecksumNamesTheBlock) {
  const RealChunk c = MakeRealChunk();
  auto h = ChunkHeader::Decode(c.encoded.bytes.span());
  ASSERT_TRUE(Ok(h));
  const size_t n = (*h)->blocks().size();
  SplitMix64 rng(5);
  for (size_t k = 0; k < n; ++k) {
    if (!(*h)->blocks()[k].compressed) continue;
    for (int variant = 0; variant < 3; ++variant) {
      SCOPED_TRACE("block " + std::to_string(k) + " variant " +
                   std::to_string(variant));
      HeaderFields f = FieldsOf(**h);
      std::string stored(c.encoded.bytes.view().substr((*h)->header_size()));
      const BlockInfo& block = (*h)->blocks()[k];
      std::string garbage;
      if (variant == 0) {  // random bytes
        for (uint64_t i = 0; i < block.stored_size; ++i)
          garbage.push_back(char(rng.Next()));
      } else if (variant == 1) {  // a valid stream of the wrong length
        std::vector<std::byte> small(block.raw_size / 2, std::byte{7});
        std::vector<std::byte> out(c.codec->MaxCompressedSize(small.size()));
        auto size = c.codec->Compress({small.data(), small.size()}, out);
        ASSERT_TRUE(Ok(size));
        garbage.assign(reinterpret_cast<const char*>(out.data()), *size);
      } else {  // the original, cut short
        garbage = stored.substr(block.stored_offset - (*h)->header_size(),
                                block.stored_size / 2);
      }
      stored.replace(block.stored_offset - (*h)->header_size(),
                     block.stored_size, garbage);
      f.blocks[k].stored_size = garbage.size();
      f.blocks[k].checksum = Xxh3(garbage);
      const std::string object = EncodeHeader(f) + stored;
      auto lying = ChunkHeader::Decode(Bytes(object), object.size());
      ASSERT_TRUE(Ok(lying));
      const ChunkHeader& lh = **lying;
      const Buffer blocks =
          Buffer::CopyOf(std::string_view(object).substr(lh.header_size()));
      auto decoded = DecodeBlocks(lh, 0, n - 1, blocks, c.codec.get());
      EXPECT_TRUE(HasCode(decoded, StatusCode::kCorruption));
      EXPECT_THAT(std::string(decoded.status().message()),
                  HasSubstr("block " + std::to_string(k)));
    }
  }
}

}  // namespace
}  // namespace shoal
