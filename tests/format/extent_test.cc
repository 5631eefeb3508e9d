// Bulk reads for loaders: Tensor::Extents, ReadExtent and DecodeInto must
// give exactly what per-sample Read() gives, for every storage kind (raw,
// chunk-compressed, sample-compressed, images, tiled, unflushed, ragged).
#include <gtest/gtest.h>

#include <cstring>

#include "codecs/image_codec.h"
#include "format/dataset.h"
#include "tests/format/format_test_util.h"

namespace shoal {
namespace {

using format_test::FreshMemUrl;
using format_test::HasCode;
using format_test::Ok;
using format_test::SampleBytes;
using format_test::Span;

struct Case {
  const char* name;
  TensorSpec spec;
};

Shape ShapeOf(uint64_t i) { return Shape{3 + i % 4, 5, 3}; }

// Reads every sample of `t` through the extents and compares with Read().
void ExpectExtentsMatchReads(const Tensor& t) {
  const auto extents = t.Extents();
  uint64_t next = 0;
  for (size_t e = 0; e < extents.size(); ++e) {
    SCOPED_TRACE("extent " + std::to_string(e));
    ASSERT_EQ(extents[e].first_sample, next);
    ASSERT_GT(extents[e].num_samples, 0u);
    EXPECT_EQ(extents[e].chunk_key.empty(), extents[e].stored_bytes == 0);
    if (!extents[e].chunk_key.empty()) {
      EXPECT_TRUE(extents[e].chunk_key.starts_with("chunks/"))
          << extents[e].chunk_key;
    }
    auto data = t.ReadExtent(e);
    ASSERT_TRUE(Ok(data));
    ASSERT_EQ(data->first_sample(), next);
    ASSERT_EQ(data->size(), extents[e].num_samples);
    for (uint64_t j = 0; j < data->size(); ++j) {
      const uint64_t i = next + j;
      auto want = t.Read(i);
      ASSERT_TRUE(Ok(want));
      ASSERT_EQ(data->shape(j), want->shape) << i;
      std::vector<std::byte> got(want->data.size());
      if (data->encoded()) {
        ASSERT_TRUE(Ok(t.DecodeInto(data->bytes(j), data->shape(j), got)));
      } else {
        ASSERT_EQ(data->bytes(j).size(), got.size()) << i;
        std::memcpy(got.data(), data->bytes(j).data(), got.size());
      }
      EXPECT_EQ(std::memcmp(got.data(), want->data.data(), got.size()), 0)
          << "sample " << i;
    }
    next += data->size();
  }
  EXPECT_EQ(next, t.size());
  EXPECT_TRUE(HasCode(t.ReadExtent(extents.size()), StatusCode::kOutOfRange));
}

TEST(ExtentTest, EveryStorageKindMatchesRead) {
  const Case cases[] = {
      {"raw", {.name = "x", .dtype = DType::kUInt8, .max_chunk_bytes = 4096}},
      {"lz4",
       {.name = "x",
        .dtype = DType::kUInt8,
        .chunk_compression = "lz4",
        .max_chunk_bytes = 8192,
        .block_bytes = 4096}},
      {"zstd_samples",
       {.name = "x",
        .dtype = DType::kUInt8,
        .sample_compression = "zstd",
        .max_chunk_bytes = 4096}},
      {"png",
       {.name = "x",
        .htype = HType::kImage,
        .sample_compression = "png",
        .max_chunk_bytes = 4096}},
      {"tiled_lz4",
       {.name = "x",
        .dtype = DType::kUInt8,
        .chunk_compression = "lz4",
        .max_chunk_bytes = 4096,
        .tiling_threshold = 64}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto ds = Dataset::Create(FreshMemUrl(c.name));
    ASSERT_TRUE(Ok(ds));
    auto t = (*ds)->CreateTensor(c.spec);
    ASSERT_TRUE(Ok(t));
    for (uint64_t i = 0; i < 120; ++i) {
      const auto bytes = SampleBytes(5, i, *ShapeOf(i).ByteSize(DType::kUInt8));
      ASSERT_TRUE(Ok((*t)->Append(ShapeOf(i), Span(bytes))));
      if (i == 99) {
        ASSERT_TRUE(Ok((*ds)->Flush()));
      }
    }
    // 20 samples are still unflushed: the small ones form the last extent
    // (tiled samples are written as they are appended).
    const auto extents = (*t)->Extents();
    ASSERT_GE(extents.size(), 2u);
    if (std::string(c.name) != "tiled_lz4") {
      EXPECT_EQ(extents.back().stored_bytes, 0u);
      EXPECT_EQ(extents.back().num_samples, 20u);
    }
    ExpectExtentsMatchReads(**t);
    ASSERT_TRUE(Ok((*ds)->Flush()));
    ExpectExtentsMatchReads(**t);
    uint64_t tiled = 0;
    for (const auto& e : (*t)->Extents()) tiled += e.tiled;
    if (std::string(c.name) == "tiled_lz4") {
      EXPECT_GT(tiled, 50u) << "3 of 4 samples exceed the threshold";
    } else {
      EXPECT_EQ(tiled, 0u);
      uint64_t stored = 0;
      for (const auto& e : (*t)->Extents()) stored += e.stored_bytes;
      EXPECT_EQ(stored, (*t)->stats().stored_bytes);
    }
  }
}

TEST(ExtentTest, DecodeIntoChecksSizes) {
  auto ds = Dataset::Create(FreshMemUrl("decode-into"));
  ASSERT_TRUE(Ok(ds));
  auto t = (*ds)->CreateTensor({.name = "x", .dtype = DType::kUInt16});
  ASSERT_TRUE(Ok(t));
  std::vector<std::byte> out(12), stored(12);
  EXPECT_TRUE(Ok((*t)->DecodeInto(Span(stored), Shape{2, 3}, out)));
  EXPECT_TRUE(HasCode((*t)->DecodeInto(Span(stored), Shape{2, 2}, out),
                      StatusCode::kInvalidArgument));
  stored.resize(10);
  EXPECT_TRUE(HasCode((*t)->DecodeInto(Span(stored), Shape{2, 3}, out),
                      StatusCode::kCorruption));
}

}  // namespace
}  // namespace shoal
