// Bulk reads for loaders: Tensor::Extents, ReadExtent(s), ReadStoredSamples
// and DecodeInto must give exactly what per-sample Read() and ReadStored()
// give, for every storage kind (raw, chunk-compressed, sample-compressed,
// images, tiled, unflushed, ragged); the batched reads with the requests a
// counting store sees.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <set>

#include "codecs/image_codec.h"
#include "format/dataset.h"
#include "tests/format/format_test_util.h"

namespace shoal {
namespace {

using format_test::CountingStore;
using format_test::FreshMemName;
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

// A dataset of small samples (4 KiB blocks, ~32 KiB chunks) under
// countmem://, reopened with cold caches; "x" raw, "z" lz4 chunks.
std::unique_ptr<Dataset> MakeCounted(const std::string& name, uint64_t n) {
  format_test::RegisterCountingStore();
  const std::string url = "countmem://" + name;
  {
    auto ds = Dataset::Create(url);
    EXPECT_TRUE(Ok(ds));
    for (const char* codec : {"", "lz4"}) {
      auto t = (*ds)->CreateTensor({.name = *codec ? "z" : "x",
                                    .dtype = DType::kUInt8,
                                    .chunk_compression = codec,
                                    .max_chunk_bytes = 32768,
                                    .block_bytes = 4096});
      EXPECT_TRUE(Ok(t));
      for (uint64_t i = 0; i < n; ++i) {
        const auto bytes = SampleBytes(7, i, 100 + i % 50);
        EXPECT_TRUE(Ok((*t)->Append(Shape{100 + i % 50}, Span(bytes))));
      }
    }
    EXPECT_TRUE(Ok((*ds)->Close()));
  }
  auto ds = Dataset::Open(url, {.read_only = true});
  EXPECT_TRUE(Ok(ds));
  dynamic_cast<CountingStore*>((*ds)->store().get())->Reset();
  return std::move(*ds);
}

// Every chunk in one request (header and blocks), all in one round trip,
// each sample as Read() gives it.
TEST(ExtentTest, ReadExtentsReadsEachChunkOnceInOneRoundTrip) {
  auto ds = MakeCounted(FreshMemName("extents"), 2000);
  auto* counting = dynamic_cast<CountingStore*>(ds->store().get());
  for (const char* name : {"x", "z"}) {
    SCOPED_TRACE(name);
    const Tensor& t = **ds->tensor(name);
    const auto extents = t.Extents();
    ASSERT_GT(extents.size(), 5u);
    std::vector<size_t> all(extents.size());
    for (size_t e = 0; e < all.size(); ++e) all[e] = e;
    counting->Reset();
    auto data = t.ReadExtents(all);
    EXPECT_EQ(counting->round_trips(), 1u);
    const auto reads = counting->ReadsUnder("chunks/");
    EXPECT_EQ(reads.size(), extents.size());
    for (const auto& [key, r] : reads) {
      EXPECT_EQ(r.ranges + r.whole, 1u) << key;
    }
    ASSERT_EQ(data.size(), extents.size());
    for (size_t e = 0; e < data.size(); ++e) {
      ASSERT_TRUE(Ok(data[e]));
      ASSERT_EQ(data[e]->first_sample(), extents[e].first_sample);
      for (uint64_t j = 0; j < data[e]->size(); ++j) {
        auto want = t.Read(extents[e].first_sample + j);
        ASSERT_TRUE(Ok(want));
        EXPECT_EQ(data[e]->bytes(j).size(), want->data.size());
        EXPECT_EQ(std::memcmp(data[e]->bytes(j).data(), want->data.data(),
                              want->data.size()),
                  0);
      }
    }
    // With the headers cached, a chunk is its blocks: still one request.
    counting->Reset();
    ASSERT_TRUE(Ok(t.ReadExtent(2)));
    EXPECT_EQ(counting->ReadsUnder("chunks/").begin()->second.ranges, 1u);
  }
}

// A shuffled set of samples comes in two round trips (headers, then
// blocks), one request per chunk header and per run of blocks that are
// within the gap; each sample as ReadStored() of another open gives it.
TEST(ExtentTest, ReadStoredSamplesCoalescesNeighboursOfAChunk) {
  const std::string name = FreshMemName("stored-samples");
  auto ds = MakeCounted(name, 2000);
  auto reference = Dataset::Open("mem://" + name, {.read_only = true});
  ASSERT_TRUE(Ok(reference));
  auto* counting = dynamic_cast<CountingStore*>(ds->store().get());
  // 40 samples ~50 apart (blocks hold ~32), in a shuffled order, one twice.
  std::vector<uint64_t> indices;
  for (uint64_t k = 0; k < 40; ++k)
    indices.push_back((k * 17 % 40) * 50 + k % 7);
  indices.push_back(indices.front());
  for (const char* tensor : {"x", "z"}) {
    SCOPED_TRACE(tensor);
    const Tensor& t = **ds->tensor(tensor);
    const Tensor& want = **(*reference)->tensor(tensor);
    const auto extents = t.Extents();
    std::set<std::string> chunks;
    for (uint64_t i : indices) {
      auto it = std::upper_bound(
          extents.begin(), extents.end(), i,
          [](uint64_t v, const TensorExtent& e) { return v < e.first_sample; });
      chunks.insert(std::prev(it)->chunk_key);
    }
    uint64_t reads_apart = 0;
    for (const uint64_t gap : {uint64_t{1} << 30, uint64_t{0}}) {
      SCOPED_TRACE(gap);
      StoredSamples out;
      counting->Reset();
      t.ReadStoredSamples(indices, gap, &out);
      ASSERT_EQ(out.samples.size(), indices.size());
      for (size_t k = 0; k < indices.size(); ++k) {
        ASSERT_TRUE(Ok(out.samples[k]));
        auto stored = want.ReadStored(indices[k]);
        ASSERT_TRUE(Ok(stored));
        EXPECT_EQ(out.samples[k]->view(), stored->view()) << indices[k];
      }
      uint64_t requests = 0, bytes = 0;
      for (const auto& [key, r] : counting->ReadsUnder("chunks/")) {
        requests += r.ranges + r.whole;
        bytes += r.bytes;
      }
      EXPECT_EQ(requests, out.reads);
      EXPECT_EQ(bytes, out.bytes_read);
      if (gap > 0) {
        // Headers were read cold once: then one request per chunk.
        EXPECT_EQ(counting->round_trips(), 2u);
        EXPECT_EQ(out.reads, 2 * chunks.size());
      } else {
        // Headers are cached now; samples in blocks apart need reads of
        // their own.
        EXPECT_EQ(counting->round_trips(), 1u);
        reads_apart = out.reads;
        EXPECT_GT(reads_apart, chunks.size());
        EXPECT_LE(reads_apart, indices.size());
      }
    }
  }
}

// Errors stay with their samples: a tiled one and one past the end are
// refused alone; a damaged block fails the samples read with it, naming
// the chunk and the sample.
TEST(ExtentTest, ReadStoredSamplesKeepsErrorsPerSample) {
  auto ds = Dataset::Create(FreshMemUrl("stored-errors"));
  ASSERT_TRUE(Ok(ds));
  auto t = (*ds)->CreateTensor({.name = "x",
                                .dtype = DType::kUInt8,
                                .max_chunk_bytes = 4096,
                                .block_bytes = 4096,
                                .tiling_threshold = 2048});
  ASSERT_TRUE(Ok(t));
  for (uint64_t i = 0; i < 40; ++i) {
    const uint64_t size = i == 5 ? 3000 : 200;  // sample 5 is tiled
    ASSERT_TRUE(Ok((*t)->Append(Shape{size}, Span(SampleBytes(3, i, size)))));
  }
  ASSERT_TRUE(Ok((*ds)->Flush()));
  // Damage the chunk of sample 30.
  const auto extents = (*t)->Extents();
  const TensorExtent& damaged = extents[(*t)->Extents().size() - 1];
  ASSERT_LE(damaged.first_sample, 30u);
  auto bytes = (*ds)->store()->Read(damaged.chunk_key);
  ASSERT_TRUE(Ok(bytes));
  std::vector<std::byte> copy(bytes->span().begin(), bytes->span().end());
  copy.back() ^= std::byte{1};
  ASSERT_TRUE(Ok((*ds)->store()->Write(damaged.chunk_key, Span(copy))));
  StoredSamples out;
  const uint64_t indices[] = {1, 5, 30, 400, 2};
  (*t)->ReadStoredSamples(indices, 0, &out);
  EXPECT_TRUE(Ok(out.samples[0]));
  EXPECT_TRUE(HasCode(out.samples[1], StatusCode::kInvalidArgument));
  EXPECT_TRUE(HasCode(out.samples[2], StatusCode::kCorruption));
  EXPECT_NE(out.samples[2].status().message().find(damaged.chunk_key),
            std::string_view::npos)
      << out.samples[2].status();
  EXPECT_NE(out.samples[2].status().message().find("sample 30"),
            std::string_view::npos)
      << out.samples[2].status();
  EXPECT_TRUE(HasCode(out.samples[3], StatusCode::kOutOfRange));
  EXPECT_TRUE(Ok(out.samples[4]));
  EXPECT_EQ(out.samples[4]->view(), (*(*t)->ReadStored(2)).view());
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
