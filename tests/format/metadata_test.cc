// Tests for format/internal/metadata.h: the object envelope, HEAD, chunk
// indexes and dataset metadata, each checked against the byte layout of
// format/FORMAT.md (encoded here by the test, with libxxhash directly), and
// against hostile input: truncations, bit flips, absurd counts and metadata
// JSON of the wrong shape must all be Corruption, fast, without exceptions.
#include "format/internal/metadata.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <xxhash.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "base/random.h"
#include "tests/format/alloc_tracker.h"
#include "tests/format/format_test_util.h"

namespace shoal::internal {
namespace {

using format_test::AllocationWatch;
using format_test::HasCode;
using format_test::Ok;
using format_test::PutLE;
using format_test::PutVarint;
using nlohmann::json;
using ::testing::HasSubstr;

// -------------------------------------------- the spec's encoders, in the test
// --

void PutLpstr(std::string& out, std::string_view s) {
  PutVarint(out, s.size());
  out += s;
}

// FORMAT.md, "The object envelope".
std::string Envelope(std::string_view magic, std::string_view payload,
                     uint16_t version = 1, uint16_t flags = 0,
                     std::optional<uint64_t> length = std::nullopt) {
  std::string out(magic);
  PutLE(out, version, 2);
  PutLE(out, flags, 2);
  PutLE(out, length.value_or(payload.size()), 8);
  out += payload;
  PutLE(out, XXH3_64bits(out.data(), out.size()), 8);
  return out;
}

ByteSpan Bytes(std::string_view s) { return AsBytes(s); }

// Runs `decode` on hostile bytes: it must not throw, must be quick and must
// not allocate much.
template <typename F>
void ExpectCorruptQuickly(F decode, const std::string& what) {
  SCOPED_TRACE(what);
  const auto start = std::chrono::steady_clock::now();
  AllocationWatch watch;
  EXPECT_NO_THROW({
    auto result = decode();
    EXPECT_TRUE(HasCode(result, StatusCode::kCorruption));
  });
  EXPECT_LT(watch.largest_new(), 16u << 20);
  EXPECT_LT(watch.buffer_peak(), 16 << 20);
  EXPECT_LT(std::chrono::steady_clock::now() - start,
            std::chrono::seconds(1) * SHOAL_TEST_TIME_SCALE);
}

// ------------------------------------------------------------- envelope --

TEST(EnvelopeTest, MatchesTheSpecAndRoundTrips) {
  SplitMix64 rng(1);
  for (size_t size : {0, 1, 7, 100, 5000}) {
    std::string payload;
    for (size_t i = 0; i < size; ++i)
      payload.push_back(static_cast<char>(rng.Next()));
    const std::string object = EncodeObject(kIndexMagic, payload);
    EXPECT_EQ(object, Envelope("SHIX", payload)) << size;
    EXPECT_EQ(object.size(), 24 + size);
    auto decoded = DecodeObject(Bytes(object), kIndexMagic, "test object");
    ASSERT_TRUE(Ok(decoded));
    EXPECT_EQ(AsStringView(*decoded), payload);
  }
}

TEST(EnvelopeTest, TruncationsAndBitFlipsAreCorruption) {
  const std::string object =
      EncodeObject(kMetaMagic, "{\"some\": \"payload bytes\"}");
  for (size_t n = 0; n < object.size(); ++n) {
    auto r = DecodeObject(Bytes(std::string_view(object).substr(0, n)),
                          kMetaMagic, "thing");
    EXPECT_TRUE(HasCode(r, StatusCode::kCorruption)) << n;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("thing")) << n;
  }
  for (size_t bit = 0; bit < object.size() * 8; ++bit) {
    std::string flipped = object;
    flipped[bit / 8] ^= static_cast<char>(1u << (bit % 8));
    EXPECT_TRUE(HasCode(DecodeObject(Bytes(flipped), kMetaMagic, "thing"),
                        StatusCode::kCorruption))
        << "bit " << bit;
  }
  EXPECT_TRUE(HasCode(DecodeObject(Bytes(object + "x"), kMetaMagic, "thing"),
                      StatusCode::kCorruption));
  EXPECT_TRUE(HasCode(DecodeObject(Bytes(object), kHeadMagic, "thing"),
                      StatusCode::kCorruption));
}

TEST(EnvelopeTest, LyingFieldsWithValidChecksumAreCorruption) {
  const std::string payload = "abcdef";
  auto decode = [&](const std::string& object) {
    return DecodeObject(Bytes(object), kIndexMagic, "index");
  };
  EXPECT_TRUE(Ok(decode(Envelope("SHIX", payload))));
  EXPECT_TRUE(
      HasCode(decode(Envelope("SHIX", payload, 2)), StatusCode::kCorruption));
  EXPECT_TRUE(
      HasCode(decode(Envelope("SHIX", payload, 0)), StatusCode::kCorruption));
  for (uint64_t length : {uint64_t{0}, uint64_t{5}, uint64_t{7},
                          uint64_t{1} << 62, UINT64_MAX, UINT64_MAX - 15}) {
    ExpectCorruptQuickly(
        [&] { return decode(Envelope("SHIX", payload, 1, 0, length)); },
        "length " + std::to_string(length));
  }
}

// FORMAT.md: "u16 flags = 0", and readers reject what does not match.
TEST(EnvelopeTest, NonZeroFlagsAreRejected) {
  EXPECT_TRUE(HasCode(
      DecodeObject(Bytes(Envelope("SHIX", "abc", 1, 1)), kIndexMagic, "x"),
      StatusCode::kCorruption));
}

// ----------------------------------------------------------------- HEAD --

TEST(HeadTest, MatchesTheSpecAndRoundTrips) {
  for (const Head& head :
       {Head{0, "meta/0-0123456789abcdef"},
        Head{UINT64_MAX, std::string(1024, 'k')}, Head{7, ""}}) {
    std::string payload;
    PutLE(payload, head.commit, 8);
    PutLpstr(payload, head.meta_key);
    const std::string bytes = EncodeHead(head);
    EXPECT_EQ(bytes, Envelope("SHHD", payload));
    auto decoded = DecodeHead(Bytes(bytes));
    ASSERT_TRUE(Ok(decoded));
    EXPECT_EQ(decoded->commit, head.commit);
    EXPECT_EQ(decoded->meta_key, head.meta_key);
  }
}

TEST(HeadTest, HostilePayloads) {
  const std::string good = EncodeHead({3, "meta/3-00000000000000aa"});
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_TRUE(
        HasCode(DecodeHead(Bytes(good.substr(0, n))), StatusCode::kCorruption))
        << n;
  }
  for (size_t bit = 0; bit < good.size() * 8; ++bit) {
    std::string flipped = good;
    flipped[bit / 8] ^= static_cast<char>(1u << (bit % 8));
    EXPECT_TRUE(HasCode(DecodeHead(Bytes(flipped)), StatusCode::kCorruption))
        << bit;
  }
  auto head_payload = [](uint64_t commit, uint64_t key_length,
                         std::string_view key) {
    std::string p;
    PutLE(p, commit, 8);
    PutVarint(p, key_length);
    p += key;
    return p;
  };
  ExpectCorruptQuickly(
      [&] {
        return DecodeHead(Bytes(Envelope("SHHD", head_payload(1, 3, "abcd"))));
      },
      "trailing byte");
  ExpectCorruptQuickly(
      [&] {
        return DecodeHead(Bytes(Envelope("SHHD", head_payload(1, 5, "abcd"))));
      },
      "key longer than the payload");
  ExpectCorruptQuickly(
      [&] {
        return DecodeHead(Bytes(
            Envelope("SHHD", head_payload(1, 1025, std::string(1025, 'k')))));
      },
      "key of 1025 bytes");
  ExpectCorruptQuickly(
      [&] {
        return DecodeHead(
            Bytes(Envelope("SHHD", head_payload(1, 1ull << 62, ""))));
      },
      "key of 2^62 bytes");
  ExpectCorruptQuickly(
      [&] { return DecodeHead(Bytes(Envelope("SHHD", "1234567"))); },
      "no commit");
  ExpectCorruptQuickly(
      [&] {
        return DecodeHead(Bytes(Envelope("SHMD", head_payload(1, 4, "abcd"))));
      },
      "metadata magic");
}

// ---------------------------------------------------------- chunk index --

std::shared_ptr<TiledSample> Tiled(const Shape& shape, const Shape& tile,
                                   uint64_t id0) {
  auto t = std::make_shared<TiledSample>();
  t->shape = shape;
  t->tile_shape = tile;
  uint64_t n = 1;
  for (size_t d = 0; d < shape.rank(); ++d)
    n *= (shape[d] + tile[d] - 1) / tile[d];
  for (uint64_t i = 0; i < n; ++i) {
    t->tiles.push_back(
        {id0 + i, 1, 1000 + i, static_cast<uint32_t>(100 + i), 0x77 * (i + 1)});
  }
  return t;
}

// FORMAT.md, "Chunk index payload".
// FORMAT.md's chunk index payload: version 2 records header checksums,
// version 1 does not.
std::string SpecIndexPayload(const TensorIndex& index, uint8_t rank,
                             int version = 2) {
  std::string p;
  PutVarint(p, index.entries().size());
  for (const auto& e : index.entries()) {
    if (!e.tiled) {
      p.push_back(0);
      PutLE(p, e.chunk.id, 8);
      PutVarint(p, e.chunk.num_samples);
      PutVarint(p, e.chunk.chunk_bytes);
      PutVarint(p, e.chunk.header_bytes);
      if (version >= 2) PutLE(p, e.chunk.header_checksum, 8);
      continue;
    }
    p.push_back(1);
    for (size_t d = 0; d < rank; ++d) PutVarint(p, e.tiled->shape[d]);
    for (size_t d = 0; d < rank; ++d) PutVarint(p, e.tiled->tile_shape[d]);
    PutVarint(p, e.tiled->tiles.size());
    for (const auto& t : e.tiled->tiles) {
      PutLE(p, t.id, 8);
      PutVarint(p, t.chunk_bytes);
      PutVarint(p, t.header_bytes);
      if (version >= 2) PutLE(p, t.header_checksum, 8);
    }
  }
  return p;
}

TEST(TensorIndexTest, MatchesTheSpecRoundTripsAndFinds) {
  TensorIndex index;
  std::vector<uint64_t> counts = {1, 500, 3, 1ull << 40, 7};
  index.AddChunk({0x1111, 1, 50, 40, 0xabcdef0123456789});
  index.AddTiled(Tiled(Shape{300, 200, 3}, Shape{38, 25, 3}, 0x5000));
  index.AddChunk({0x2222, 500, 1 << 20, 700});
  index.AddChunk({0xffffffffffffffff, 3, 1ull << 40, UINT32_MAX});
  index.AddTiled(Tiled(Shape{10, 1, 4}, Shape{3, 1, 4}, 0x6000));
  index.AddChunk({0x3333, 7, 99, 98, 1});
  EXPECT_EQ(index.num_samples(), 1 + 1 + 500 + 3 + 1 + 7);

  const std::string encoded = index.Encode(3);
  EXPECT_EQ(encoded, Envelope("SHIX", SpecIndexPayload(index, 3), 2));
  // Version 1 (no checksums) still decodes, its chunks unbound (0).
  auto v1 = TensorIndex::Decode(
      Bytes(Envelope("SHIX", SpecIndexPayload(index, 3, 1), 1)), 3);
  ASSERT_TRUE(Ok(v1));
  ASSERT_EQ(v1->entries().size(), index.entries().size());
  EXPECT_EQ(v1->entries()[0].chunk.header_checksum, 0u);
  EXPECT_EQ(v1->entries()[5].chunk.id, 0x3333u);
  EXPECT_TRUE(
      HasCode(TensorIndex::Decode(
                  Bytes(Envelope("SHIX", SpecIndexPayload(index, 3), 3)), 3),
              StatusCode::kCorruption))
      << "a version from the future";
  auto decoded = TensorIndex::Decode(Bytes(encoded), 3);
  ASSERT_TRUE(Ok(decoded));
  ASSERT_EQ(decoded->entries().size(), index.entries().size());
  EXPECT_EQ(decoded->num_samples(), index.num_samples());
  uint64_t first = 0;
  for (size_t k = 0; k < index.entries().size(); ++k) {
    const IndexEntry& a = index.entries()[k];
    const IndexEntry& b = decoded->entries()[k];
    EXPECT_EQ(b.first_sample, first) << k;
    first += a.num_samples();
    ASSERT_EQ(!a.tiled, !b.tiled) << k;
    if (!a.tiled) {
      EXPECT_EQ(b.chunk.id, a.chunk.id);
      EXPECT_EQ(b.chunk.num_samples, a.chunk.num_samples);
      EXPECT_EQ(b.chunk.chunk_bytes, a.chunk.chunk_bytes);
      EXPECT_EQ(b.chunk.header_bytes, a.chunk.header_bytes);
      EXPECT_EQ(b.chunk.header_checksum, a.chunk.header_checksum);
      continue;
    }
    EXPECT_EQ(b.tiled->shape, a.tiled->shape);
    EXPECT_EQ(b.tiled->tile_shape, a.tiled->tile_shape);
    ASSERT_EQ(b.tiled->tiles.size(), a.tiled->tiles.size());
    for (size_t t = 0; t < a.tiled->tiles.size(); ++t) {
      EXPECT_EQ(b.tiled->tiles[t].id, a.tiled->tiles[t].id);
      EXPECT_EQ(b.tiled->tiles[t].chunk_bytes, a.tiled->tiles[t].chunk_bytes);
      EXPECT_EQ(b.tiled->tiles[t].header_bytes, a.tiled->tiles[t].header_bytes);
      EXPECT_EQ(b.tiled->tiles[t].header_checksum,
                a.tiled->tiles[t].header_checksum);
    }
  }
  EXPECT_EQ(index.entries()[1].tiled->Grid(), Shape({8, 8, 1}));

  // Find, against the entries' sample counts.
  const uint64_t entry_sizes[] = {1, 1, 500, 3, 1, 7};
  uint64_t sample = 0;
  for (size_t k = 0; k < std::size(entry_sizes); ++k) {
    for (uint64_t i = 0; i < entry_sizes[k]; ++i, ++sample) {
      ASSERT_EQ(decoded->Find(sample), k) << "sample " << sample;
    }
  }

  // PopBack removes the last entry's samples.
  TensorIndex copy = *decoded;
  copy.PopBack();
  EXPECT_EQ(copy.num_samples(), index.num_samples() - 7);
  EXPECT_EQ(copy.entries().size(), index.entries().size() - 1);

  TensorIndex empty;
  auto empty_decoded = TensorIndex::Decode(Bytes(empty.Encode(2)), 2);
  ASSERT_TRUE(Ok(empty_decoded));
  EXPECT_EQ(empty_decoded->num_samples(), 0u);
}

TEST(TensorIndexTest, TruncationsAndBitFlipsAreCorruption) {
  TensorIndex index;
  index.AddChunk({1, 10, 1000, 100});
  index.AddTiled(Tiled(Shape{5, 4}, Shape{2, 4}, 10));
  const std::string good = index.Encode(2);
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_TRUE(HasCode(TensorIndex::Decode(Bytes(good.substr(0, n)), 2),
                        StatusCode::kCorruption))
        << n;
  }
  for (size_t bit = 0; bit < good.size() * 8; ++bit) {
    std::string flipped = good;
    flipped[bit / 8] ^= static_cast<char>(1u << (bit % 8));
    EXPECT_TRUE(HasCode(TensorIndex::Decode(Bytes(flipped), 2),
                        StatusCode::kCorruption))
        << bit;
  }
}

TEST(TensorIndexTest, AbsurdCountsAreCorruptionFast) {
  auto decode = [](const std::string& payload, uint8_t rank = 2) {
    return [payload, rank] {
      return TensorIndex::Decode(Bytes(Envelope("SHIX", payload)), rank);
    };
  };
  auto chunk_entry = [](uint64_t id, uint64_t n, uint64_t bytes,
                        uint64_t header) {
    std::string p(1, '\0');
    PutLE(p, id, 8);
    PutVarint(p, n);
    PutVarint(p, bytes);
    PutVarint(p, header);
    return p;
  };
  std::string p;
  PutVarint(p, 1ull << 60);
  ExpectCorruptQuickly(decode(p), "2^60 entries");
  p.clear();
  PutVarint(p, UINT64_MAX);
  ExpectCorruptQuickly(decode(p), "2^64-1 entries");
  p.clear();
  PutVarint(p, 2);
  p += chunk_entry(1, 10, 100, 10);
  ExpectCorruptQuickly(decode(p), "entry count larger than the entries");

  auto one = [&](const std::string& entry) {
    std::string q;
    PutVarint(q, 1);
    return q + entry;
  };
  EXPECT_TRUE(Ok(decode(one(chunk_entry(1, 10, 100, 10)))()));
  ExpectCorruptQuickly(decode(one(chunk_entry(1, 0, 100, 10))), "empty chunk");
  ExpectCorruptQuickly(decode(one(chunk_entry(1, (1ull << 40) + 1, 100, 10))),
                       "2^40+1 samples in a chunk");
  ExpectCorruptQuickly(decode(one(chunk_entry(1, 10, 100, 101))),
                       "header > chunk");
  ExpectCorruptQuickly(decode(one(chunk_entry(1, 10, 1ull << 40, 1ull << 32))),
                       "header size above 2^32-1");
  ExpectCorruptQuickly(decode(one(chunk_entry(1, 10, 100, 10) + "x")),
                       "trailing byte");
  ExpectCorruptQuickly(
      decode(one(std::string(1, '\2') + chunk_entry(1, 1, 1, 1).substr(1))),
      "unknown entry kind");

  auto tiled_entry = [](std::vector<uint64_t> shape, std::vector<uint64_t> tile,
                        uint64_t declared_tiles, uint64_t real_tiles) {
    std::string e(1, '\1');
    for (uint64_t d : shape) PutVarint(e, d);
    for (uint64_t d : tile) PutVarint(e, d);
    PutVarint(e, declared_tiles);
    for (uint64_t t = 0; t < real_tiles; ++t) {
      PutLE(e, t + 1, 8);
      PutVarint(e, 100);
      PutVarint(e, 10);
    }
    return e;
  };
  EXPECT_TRUE(Ok(decode(one(tiled_entry({5, 4}, {2, 4}, 3, 3)))()));
  ExpectCorruptQuickly(decode(one(tiled_entry({5, 4}, {2, 4}, 2, 2))),
                       "too few tiles");
  ExpectCorruptQuickly(decode(one(tiled_entry({5, 4}, {2, 4}, 4, 4))),
                       "too many tiles");
  ExpectCorruptQuickly(decode(one(tiled_entry({5, 4}, {0, 4}, 0, 0))),
                       "tile dim 0");
  ExpectCorruptQuickly(decode(one(tiled_entry({5, 4}, {6, 4}, 1, 1))),
                       "tile above dim");
  ExpectCorruptQuickly(
      decode(one(tiled_entry({1ull << 40, 1ull << 40}, {1, 1}, 1ull << 40, 0))),
      "2^80 tiles claimed");
  ExpectCorruptQuickly(
      decode(one(tiled_entry({1ull << 40, 1ull << 40}, {1, 1}, 1, 1))),
      "2^80-tile grid with one tile");
  ExpectCorruptQuickly(decode(one(tiled_entry({5, 4}, {2, 4}, 3, 2))),
                       "truncated tiles");
  // A tile whose header is larger than its chunk.
  std::string bad_tile(1, '\1');
  PutVarint(bad_tile, 2);
  PutVarint(bad_tile, 2);
  PutVarint(bad_tile, 2);
  PutVarint(bad_tile, 2);
  PutVarint(bad_tile, 1);
  PutLE(bad_tile, 9, 8);
  PutVarint(bad_tile, 10);
  PutVarint(bad_tile, 11);
  ExpectCorruptQuickly(decode(one(bad_tile)), "tile header > tile chunk");
}

// ------------------------------------------------------------- metadata --

DatasetMeta SampleMeta() {
  DatasetMeta meta;
  meta.commit = 42;
  meta.next_tensor_id = 9;
  TensorMeta images;
  images.id = 0;
  images.spec = {.name = "group/images",
                 .htype = HType::kImage,
                 .dtype = DType::kUInt16,
                 .rank = 3,
                 .sample_compression = "",
                 .chunk_compression = "zstd:3+shuffle",
                 .max_chunk_bytes = 1 << 20,
                 .block_bytes = 64 << 10,
                 .tiling_threshold = 10240,
                 .class_names = {}};
  images.shape_tensor = 1;
  images.info_tensor = 2;
  images.length = 1234;
  images.index_key = "index/0/42-00000000deadbeef";
  images.raw_bytes = 1ull << 40;
  images.stored_bytes = 123456789;
  images.num_chunks = 77;
  images.min_shape = Shape{1, 2, 3};
  images.max_shape = Shape{300, 200, 3};
  TensorMeta shape;
  shape.id = 1;
  shape.hidden = true;
  shape.parent = 0;
  shape.spec = {.name = "_shape/group/images",
                .dtype = DType::kUInt32,
                .rank = 1,
                .chunk_compression = "lz4",
                .tiling_threshold = kNoTiling};
  shape.length = 1234;
  TensorMeta labels;
  labels.id = 5;
  labels.spec = {.name = "labels",
                 .htype = HType::kClassLabel,
                 .dtype = DType::kInt8,
                 .rank = -1,
                 .sample_compression = "lz4",
                 .class_names = {"cat", "dog", "\xc3\xa9l\xc3\xa8ve", ""}};
  meta.tensors = {images, shape, labels};
  return meta;
}

void ExpectSameMeta(const DatasetMeta& a, const DatasetMeta& b) {
  EXPECT_EQ(a.commit, b.commit);
  EXPECT_EQ(a.next_tensor_id, b.next_tensor_id);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t k = 0; k < a.tensors.size(); ++k) {
    SCOPED_TRACE("tensor " + std::to_string(k));
    const TensorMeta& x = a.tensors[k];
    const TensorMeta& y = b.tensors[k];
    EXPECT_EQ(x.id, y.id);
    EXPECT_EQ(x.spec.name, y.spec.name);
    EXPECT_EQ(x.spec.htype, y.spec.htype);
    EXPECT_EQ(x.spec.dtype, y.spec.dtype);
    EXPECT_EQ(x.spec.rank, y.spec.rank);
    EXPECT_EQ(x.spec.sample_compression, y.spec.sample_compression);
    EXPECT_EQ(x.spec.chunk_compression, y.spec.chunk_compression);
    EXPECT_EQ(x.spec.max_chunk_bytes, y.spec.max_chunk_bytes);
    EXPECT_EQ(x.spec.block_bytes, y.spec.block_bytes);
    EXPECT_EQ(x.spec.tiling_threshold, y.spec.tiling_threshold);
    EXPECT_EQ(x.spec.class_names, y.spec.class_names);
    EXPECT_EQ(x.spec.planar, y.spec.planar);
    EXPECT_EQ(x.hidden, y.hidden);
    EXPECT_EQ(x.shape_tensor, y.shape_tensor);
    EXPECT_EQ(x.info_tensor, y.info_tensor);
    EXPECT_EQ(x.parent, y.parent);
    EXPECT_EQ(x.length, y.length);
    EXPECT_EQ(x.index_key, y.index_key);
    EXPECT_EQ(x.raw_bytes, y.raw_bytes);
    EXPECT_EQ(x.stored_bytes, y.stored_bytes);
    EXPECT_EQ(x.num_chunks, y.num_chunks);
    EXPECT_EQ(x.min_shape, y.min_shape);
    EXPECT_EQ(x.max_shape, y.max_shape);
  }
}

TEST(DatasetMetaTest, RoundTripsAndHasTheSpecKeys) {
  const DatasetMeta meta = SampleMeta();
  const std::string bytes = EncodeDatasetMeta(meta);
  auto decoded = DecodeDatasetMeta(Bytes(bytes));
  ASSERT_TRUE(Ok(decoded));
  ExpectSameMeta(meta, *decoded);

  // The payload is the JSON object FORMAT.md describes.
  auto payload = DecodeObject(Bytes(bytes), kMetaMagic, "meta");
  ASSERT_TRUE(Ok(payload));
  const json root = json::parse(AsStringView(*payload));
  EXPECT_EQ(root.at("format"), "shoal");
  EXPECT_EQ(root.at("commit"), 42);
  EXPECT_EQ(root.at("next_tensor_id"), 9);
  ASSERT_EQ(root.at("tensors").size(), 3u);
  const std::set<std::string> keys = {"id",
                                      "name",
                                      "htype",
                                      "dtype",
                                      "rank",
                                      "sample_compression",
                                      "chunk_compression",
                                      "max_chunk_bytes",
                                      "block_bytes",
                                      "tiling_threshold",
                                      "class_names",
                                      "hidden",
                                      "shape_tensor",
                                      "info_tensor",
                                      "parent",
                                      "length",
                                      "index",
                                      "raw_bytes",
                                      "stored_bytes",
                                      "num_chunks",
                                      "min_shape",
                                      "max_shape"};
  for (const json& t : root.at("tensors")) {
    std::set<std::string> have;
    for (const auto& [k, v] : t.items()) have.insert(k);
    EXPECT_EQ(have, keys);
  }
  const json& img = root.at("tensors")[0];
  EXPECT_EQ(img.at("htype"), "image");
  EXPECT_EQ(img.at("dtype"), "uint16");
  EXPECT_EQ(img.at("min_shape"), json::array({1, 2, 3}));
  EXPECT_EQ(root.at("tensors")[1].at("tiling_threshold").get<uint64_t>(),
            UINT64_MAX);
  EXPECT_EQ(root.at("tensors")[2].at("dtype"), "int8");
}

// Re-encodes `root` in a valid envelope.
std::string MetaObject(const json& root) {
  return Envelope("SHMD", root.dump());
}

// "planar" is optional: written only when set (so other tensors keep their
// bytes), read back, and false when absent.
TEST(DatasetMetaTest, PlanarIsWrittenOnlyWhenSet) {
  DatasetMeta meta = SampleMeta();
  meta.tensors[0].spec.planar = true;
  const std::string bytes = EncodeDatasetMeta(meta);
  auto decoded = DecodeDatasetMeta(Bytes(bytes));
  ASSERT_TRUE(Ok(decoded));
  EXPECT_TRUE(decoded->tensors[0].spec.planar);
  EXPECT_FALSE(decoded->tensors[1].spec.planar);
  auto payload = DecodeObject(Bytes(bytes), kMetaMagic, "meta");
  ASSERT_TRUE(Ok(payload));
  const json root = json::parse(AsStringView(*payload));
  EXPECT_EQ(root.at("tensors")[0].at("planar"), true);
  EXPECT_FALSE(root.at("tensors")[1].contains("planar"));
  EXPECT_EQ(EncodeDatasetMeta(SampleMeta()).find("planar"), std::string::npos);
  // A value that is not a boolean is Corruption, not an exception.
  json changed = root;
  changed["tensors"][0]["planar"] = 1;
  EXPECT_TRUE(HasCode(DecodeDatasetMeta(Bytes(MetaObject(changed))),
                      StatusCode::kCorruption));
}

TEST(DatasetMetaTest, WrongJsonIsCorruptionWithoutExceptions) {
  const std::string good = EncodeDatasetMeta(SampleMeta());
  auto payload = DecodeObject(Bytes(good), kMetaMagic, "meta");
  ASSERT_TRUE(Ok(payload));
  const json base = json::parse(AsStringView(*payload));
  ASSERT_TRUE(Ok(DecodeDatasetMeta(Bytes(MetaObject(base)))));

  auto expect_corrupt = [](const std::string& object, const std::string& what) {
    ExpectCorruptQuickly([&] { return DecodeDatasetMeta(Bytes(object)); },
                         what);
  };

  // Every key of a tensor: missing, and of each wrong JSON type.
  const json wrong_values[] = {json("text"),
                               json(-3),
                               json(1.5),
                               json(true),
                               json::array({1, "a"}),
                               json::object({{"a", 1}}),
                               json(nullptr)};
  for (const auto& [key, value] : base.at("tensors")[0].items()) {
    json missing = base;
    missing["tensors"][0].erase(key);
    expect_corrupt(MetaObject(missing), "tensor key '" + key + "' missing");
    for (const json& wrong : wrong_values) {
      if (wrong.type() == value.type()) continue;
      // Numbers of another numeric kind convert; they are not type errors.
      // (Booleans and negative numbers for counts: see the next test.)
      if (wrong.is_number() && value.is_number()) continue;
      if (wrong.is_boolean() && value.is_number()) continue;
      json changed = base;
      changed["tensors"][0][key] = wrong;
      expect_corrupt(MetaObject(changed),
                     "tensor key '" + key + "' = " + wrong.dump());
    }
  }
  for (const char* key : {"format", "commit", "next_tensor_id", "tensors"}) {
    json missing = base;
    missing.erase(key);
    expect_corrupt(MetaObject(missing),
                   std::string("root key '") + key + "' missing");
  }
  json changed = base;
  changed["format"] = "not-shoal";
  expect_corrupt(MetaObject(changed), "format not-shoal");
  changed = base;
  changed["commit"] = "1";
  expect_corrupt(MetaObject(changed), "commit as a string");
  changed = base;
  changed["tensors"] = 5;
  expect_corrupt(MetaObject(changed), "tensors a number");
  changed = base;
  changed["tensors"] = json::array({1, 2});
  expect_corrupt(MetaObject(changed), "tensors of numbers");
  changed = base;
  changed["tensors"][0]["rank"] = 9;
  expect_corrupt(MetaObject(changed), "rank 9");
  changed = base;
  changed["tensors"][0]["rank"] = -2;
  expect_corrupt(MetaObject(changed), "rank -2");
  changed = base;
  changed["tensors"][0]["min_shape"] = json::array({1, 2, 3, 4, 5, 6, 7, 8, 9});
  expect_corrupt(MetaObject(changed), "min_shape of rank 9");
  changed = base;
  changed["tensors"][0]["max_shape"] = json::array({"a"});
  expect_corrupt(MetaObject(changed), "max_shape of strings");
  changed = base;
  changed["tensors"][0]["class_names"] = json::array({1});
  expect_corrupt(MetaObject(changed), "class names of numbers");

  for (const char* text : {"", "{", "[]", "42", "null", "\"shoal\"",
                           "{\"format\": \"shoal\"", "{} {}",
                           "{\"format\": \"shoal\", \"commit\": 1e400, "
                           "\"next_tensor_id\": 1, \"tensors\": []}",
                           "{\"format\": \"sh\xff\xfeoal\"}"}) {
    expect_corrupt(Envelope("SHMD", text), std::string("payload ") + text);
  }
  // Deep nesting must neither overflow the stack nor be accepted.
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  expect_corrupt(Envelope("SHMD", deep), "200000 nested arrays");
  const std::string deep_objects =
      "{\"format\": \"shoal\", \"x\": " + std::string(100000, '[') +
      std::string(100000, ']') + "}";
  expect_corrupt(Envelope("SHMD", deep_objects), "nested arrays in a key");
}

// A stored name that no dtype or htype has is damage (or a newer format),
// not a caller's invalid argument.
TEST(DatasetMetaTest, UnknownDTypeOrHTypeIsCorruption) {
  const std::string good = EncodeDatasetMeta(SampleMeta());
  auto payload = DecodeObject(Bytes(good), kMetaMagic, "meta");
  ASSERT_TRUE(Ok(payload));
  const json base = json::parse(AsStringView(*payload));
  json changed = base;
  changed["tensors"][0]["dtype"] = "float128";
  EXPECT_TRUE(HasCode(DecodeDatasetMeta(Bytes(MetaObject(changed))),
                      StatusCode::kCorruption));
  changed = base;
  changed["tensors"][0]["htype"] = "hologram";
  EXPECT_TRUE(HasCode(DecodeDatasetMeta(Bytes(MetaObject(changed))),
                      StatusCode::kCorruption));
}

// A boolean or a negative number where FORMAT.md wants a non-negative
// integer is the wrong type too; nlohmann::json converts both silently
// (true -> 1, -1 -> 2^64-1) unless the decoder checks.
TEST(DatasetMetaTest, BooleansAndNegativeNumbersForCountsAreCorruption) {
  const std::string good = EncodeDatasetMeta(SampleMeta());
  auto payload = DecodeObject(Bytes(good), kMetaMagic, "meta");
  ASSERT_TRUE(Ok(payload));
  const json base = json::parse(AsStringView(*payload));
  for (const char* key :
       {"id", "max_chunk_bytes", "block_bytes", "length", "raw_bytes",
        "stored_bytes", "num_chunks", "tiling_threshold"}) {
    for (const json& wrong : {json(true), json(-1)}) {
      json changed = base;
      changed["tensors"][0][key] = wrong;
      EXPECT_TRUE(HasCode(DecodeDatasetMeta(Bytes(MetaObject(changed))),
                          StatusCode::kCorruption))
          << key << " = " << wrong.dump();
    }
  }
  for (const char* key : {"commit", "next_tensor_id"}) {
    json changed = base;
    changed[key] = -1;
    EXPECT_TRUE(HasCode(DecodeDatasetMeta(Bytes(MetaObject(changed))),
                        StatusCode::kCorruption))
        << key << " = -1";
  }
}

TEST(DatasetMetaTest, ObjectLevelDamageIsCorruption) {
  const std::string good = EncodeDatasetMeta(SampleMeta());
  for (size_t n = 0; n < good.size(); n += 7) {
    EXPECT_TRUE(HasCode(DecodeDatasetMeta(Bytes(good.substr(0, n))),
                        StatusCode::kCorruption))
        << n;
  }
  SplitMix64 rng(3);
  for (int k = 0; k < 500; ++k) {
    std::string flipped = good;
    const size_t bit = rng.Next() % (good.size() * 8);
    flipped[bit / 8] ^= static_cast<char>(1u << (bit % 8));
    EXPECT_TRUE(
        HasCode(DecodeDatasetMeta(Bytes(flipped)), StatusCode::kCorruption))
        << bit;
  }
}

TEST(KeysTest, MatchTheSpec) {
  EXPECT_EQ(ChunkKey(3, 0x1f2e3d4c5b6a7988), "chunks/3/1f2e3d4c5b6a7988");
  EXPECT_EQ(ChunkKey(0, 1), "chunks/0/0000000000000001");
  EXPECT_EQ(IndexKey(12, 7, 0xab), "index/12/7-00000000000000ab");
  EXPECT_EQ(MetaKey(0, UINT64_MAX), "meta/0-ffffffffffffffff");
}

}  // namespace
}  // namespace shoal::internal
