// Tests for format/dataset.h: round trips of every dtype and compression on
// mem:// and file://, seeded property tests of random shapes, chunk sizes,
// append kinds and flush points, ragged tensors, tiling (whole reads, region
// reads and which tiles a region read touches), the cost of reading one
// sample, appending after reopening, and the schema rules.
//
// Expected values come from formulas in the test (SampleBytes), from
// format/FORMAT.md (tile shapes, canonical codec specs) or from listing the
// store, never from the code under test's own output.
#include "format/dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/random.h"
#include "format/verify.h"
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
using format_test::TempDir;
using ::testing::HasSubstr;

// Element sizes from FORMAT.md, independent of DTypeSize().
size_t ItemSize(DType dtype) {
  switch (dtype) {
    case DType::kBool:
    case DType::kUInt8:
    case DType::kInt8:
      return 1;
    case DType::kUInt16:
    case DType::kInt16:
    case DType::kFloat16:
      return 2;
    case DType::kUInt32:
    case DType::kInt32:
    case DType::kFloat32:
      return 4;
    case DType::kUInt64:
    case DType::kInt64:
    case DType::kFloat64:
      return 8;
  }
  return 0;
}

uint64_t Elements(const Shape& shape) {
  uint64_t n = 1;
  for (uint64_t d : shape.dims()) n *= d;
  return n;
}

// The bytes of sample `index` of a tensor: a pure function of its arguments.
std::vector<std::byte> Content(DType dtype, const Shape& shape, uint64_t salt,
                               uint64_t index) {
  auto bytes = SampleBytes(salt, index, Elements(shape) * ItemSize(dtype));
  if (dtype == DType::kBool) {
    for (auto& b : bytes) b &= std::byte{1};
  }
  return bytes;
}

::testing::AssertionResult SameSample(const Result<Sample>& got, DType dtype,
                                      const Shape& shape,
                                      const std::vector<std::byte>& want) {
  if (!got.ok()) return ::testing::AssertionFailure() << got.status();
  if (got->dtype != dtype) {
    return ::testing::AssertionFailure() << "dtype " << DTypeName(got->dtype)
                                         << ", want " << DTypeName(dtype);
  }
  if (got->shape != shape) {
    return ::testing::AssertionFailure() << "shape " << got->shape.ToString()
                                         << ", want " << shape.ToString();
  }
  if (got->data.size() != want.size()) {
    return ::testing::AssertionFailure()
           << got->data.size() << " bytes, want " << want.size();
  }
  for (size_t k = 0; k < want.size(); ++k) {
    if (got->data.data()[k] != want[k]) {
      return ::testing::AssertionFailure() << "byte " << k << " differs";
    }
  }
  return ::testing::AssertionSuccess();
}

std::string InfoFor(uint64_t i) {
  return i % 5 == 0 ? "{\"i\": " + std::to_string(i) + "}" : "";
}

// What a test wrote to one tensor.
struct Model {
  DType dtype = DType::kUInt8;
  uint64_t salt = 0;
  std::vector<Shape> shapes;
  std::vector<std::string> infos;

  std::vector<std::byte> Bytes(uint64_t i) const {
    return Content(dtype, shapes[i], salt, i);
  }
};

// Checks every sample of `t` (Read, ReadShape, ReadInfo) and a few ranges.
void CheckTensor(const Tensor& t, const Model& m) {
  ASSERT_EQ(t.size(), m.shapes.size()) << t.name();
  for (uint64_t i = 0; i < m.shapes.size(); ++i) {
    ASSERT_TRUE(SameSample(t.Read(i), m.dtype, m.shapes[i], m.Bytes(i)))
        << t.name() << " sample " << i;
    auto shape = t.ReadShape(i);
    ASSERT_TRUE(Ok(shape));
    EXPECT_EQ(*shape, m.shapes[i]) << "sample " << i;
    if (!m.infos.empty()) {
      auto info = t.ReadInfo(i);
      ASSERT_TRUE(Ok(info));
      EXPECT_EQ(*info, m.infos[i]) << "sample " << i;
    }
  }
  const uint64_t n = m.shapes.size();
  const std::pair<uint64_t, uint64_t> ranges[] = {
      {0, n}, {n / 3, 2 * n / 3}, {n ? n - 1 : 0, n}, {n / 2, n / 2}};
  for (auto [b, e] : ranges) {
    auto got = t.ReadRange(b, e);
    ASSERT_TRUE(Ok(got)) << "[" << b << ", " << e << ")";
    ASSERT_EQ(got->size(), e - b);
    for (uint64_t i = b; i < e; ++i) {
      ASSERT_TRUE(SameSample((*got)[i - b], m.dtype, m.shapes[i], m.Bytes(i)))
          << "ReadRange [" << b << ", " << e << ") sample " << i;
    }
  }
  EXPECT_TRUE(HasCode(t.Read(n), StatusCode::kOutOfRange));
  EXPECT_TRUE(HasCode(t.ReadRange(0, n + 1), StatusCode::kOutOfRange));
}

// The statistics of a tensor, computed from the model.
void CheckStats(const Tensor& t, const Model& m) {
  const TensorStats stats = t.stats();
  EXPECT_EQ(stats.num_samples, m.shapes.size());
  uint64_t raw = 0;
  for (const auto& s : m.shapes) raw += Elements(s) * ItemSize(m.dtype);
  EXPECT_EQ(stats.raw_bytes, raw);
  if (!m.shapes.empty()) {
    Shape lo = m.shapes[0], hi = m.shapes[0];
    for (const auto& s : m.shapes) {
      for (size_t d = 0; d < s.rank(); ++d) {
        lo[d] = std::min(lo[d], s[d]);
        hi[d] = std::max(hi[d], s[d]);
      }
    }
    EXPECT_EQ(stats.min_shape, lo);
    EXPECT_EQ(stats.max_shape, hi);
  }
}

// Chunk counts and bytes of all tensors agree with the chunk objects that
// the store holds (so superseded chunks were deleted).
void CheckChunkObjects(const Dataset& ds) {
  uint64_t chunks = 0, bytes = 0;
  for (Tensor* t : ds.tensors(/*include_hidden=*/true)) {
    chunks += t->stats().num_chunks;
    bytes += t->stats().stored_bytes;
  }
  auto keys = ds.store()->List("chunks/");
  ASSERT_TRUE(Ok(keys));
  uint64_t listed_bytes = 0;
  for (const auto& key : *keys) {
    auto size = ds.store()->Size(key);
    ASSERT_TRUE(Ok(size));
    listed_bytes += *size;
  }
  EXPECT_EQ(keys->size(), chunks);
  EXPECT_EQ(listed_bytes, bytes);
}

// ------------------------------------------------------------ round trip --

struct Compression {
  const char* name;
  const char* sample;
  const char* chunk;
  // The canonical specs FORMAT.md says are stored.
  const char* stored_sample;
  const char* stored_chunk;
};

constexpr Compression kCompressions[] = {
    {"none", "", "", "", ""},
    {"sample_lz4", "lz4", "", "lz4", ""},
    {"sample_zstd", "zstd", "", "zstd:3", ""},
    {"chunk_lz4", "", "lz4", "", "lz4"},
    {"chunk_lz4hc", "", "lz4hc", "", "lz4hc:9"},
    {"chunk_zstd", "", "zstd", "", "zstd:3"},
    {"chunk_zstd_shuffle", "", "zstd+shuffle", "", "zstd:3+shuffle"},
};

constexpr DType kDTypes[] = {
    DType::kBool,   DType::kUInt8,   DType::kUInt16,  DType::kUInt32,
    DType::kUInt64, DType::kInt8,    DType::kInt16,   DType::kInt32,
    DType::kInt64,  DType::kFloat16, DType::kFloat32, DType::kFloat64,
};

struct RoundTripParam {
  DType dtype;
  Compression compression;
  bool file;
};

std::string RoundTripName(
    const ::testing::TestParamInfo<RoundTripParam>& info) {
  return std::string(DTypeName(info.param.dtype)) + "_" +
         info.param.compression.name + (info.param.file ? "_file" : "_mem");
}

std::vector<RoundTripParam> AllRoundTrips() {
  std::vector<RoundTripParam> out;
  for (DType dtype : kDTypes) {
    for (const auto& c : kCompressions) {
      for (bool file : {false, true}) out.push_back({dtype, c, file});
    }
  }
  return out;
}

class RoundTripTest : public ::testing::TestWithParam<RoundTripParam> {};

// Shapes with zero-size dims, one-block and multi-block samples, and samples
// larger than a chunk.
Shape RoundTripShape(uint64_t i) {
  if (i % 13 == 12) return Shape{40, 30};
  return Shape{i % 6, (i * 7) % 11 + 1};
}

TEST_P(RoundTripTest, WriteFlushReopenRead) {
  const RoundTripParam& p = GetParam();
  TempDir dir;
  const std::string url = p.file ? dir.url() : FreshMemUrl();

  auto ds = Dataset::Create(url);
  ASSERT_TRUE(Ok(ds));
  auto t = (*ds)->CreateTensor({.name = "x",
                                .dtype = p.dtype,
                                .sample_compression = p.compression.sample,
                                .chunk_compression = p.compression.chunk,
                                .max_chunk_bytes = 8192,
                                .block_bytes = 4096,
                                .tiling_threshold = kNoTiling});
  ASSERT_TRUE(Ok(t));
  Model m{p.dtype, 7, {}, {}};

  // One sample at a time, with info on some.
  for (uint64_t i = 0; i < 60; ++i) {
    const Shape shape = RoundTripShape(i);
    m.shapes.push_back(shape);
    m.infos.push_back(InfoFor(i));
    ASSERT_TRUE(Ok((*t)->Append(shape, Span(m.Bytes(i)), m.infos.back())));
  }
  // A fixed-shape batch.
  {
    std::vector<std::byte> data;
    for (uint64_t i = 60; i < 70; ++i) {
      m.shapes.push_back(Shape{3, 4});
      m.infos.push_back("");
      auto b = m.Bytes(i);
      data.insert(data.end(), b.begin(), b.end());
    }
    ASSERT_TRUE(Ok((*t)->AppendBatch(Shape{3, 4}, 10, Span(data))));
  }
  // A batch of varied shapes.
  {
    std::vector<std::byte> data;
    std::vector<Shape> shapes;
    for (uint64_t i = 70; i < 76; ++i) {
      shapes.push_back(RoundTripShape(i * 5 + 2));
      m.shapes.push_back(shapes.back());
      m.infos.push_back("");
      auto b = m.Bytes(i);
      data.insert(data.end(), b.begin(), b.end());
    }
    ASSERT_TRUE(Ok((*t)->AppendBatch(shapes, Span(data))));
  }

  {
    SCOPED_TRACE("writable, before Flush");
    CheckTensor(**t, m);
  }
  ASSERT_TRUE(Ok((*ds)->Flush()));
  {
    SCOPED_TRACE("writable, after Flush");
    CheckTensor(**t, m);
  }
  ASSERT_TRUE(Ok((*ds)->Close()));
  ds->reset();

  auto ro = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ro));
  EXPECT_TRUE((*ro)->read_only());
  auto rt = (*ro)->tensor("x");
  ASSERT_TRUE(Ok(rt));
  EXPECT_EQ((*rt)->dtype(), p.dtype);
  EXPECT_EQ((*rt)->spec().rank, 2);
  EXPECT_EQ((*rt)->spec().sample_compression, p.compression.stored_sample);
  EXPECT_EQ((*rt)->spec().chunk_compression, p.compression.stored_chunk);
  {
    SCOPED_TRACE("read-only, after reopen");
    CheckTensor(**rt, m);
  }
  CheckStats(**rt, m);
  CheckChunkObjects(**ro);
  EXPECT_EQ((*ro)->len(), m.shapes.size());
  EXPECT_EQ((*ro)->tensors().size(), 1u);
  EXPECT_EQ((*ro)->tensors(true).size(), 3u);

  auto report = VerifyDataset(url, {.decode_samples = true});
  ASSERT_TRUE(Ok(report));
  for (const auto& problem : report->problems)
    ADD_FAILURE() << problem.ToString();
}

INSTANTIATE_TEST_SUITE_P(All, RoundTripTest,
                         ::testing::ValuesIn(AllRoundTrips()), RoundTripName);

// Chunk compression must really compress: a compressible column stores far
// fewer bytes than it holds.
TEST(CompressionTest, ChunkCodecsShrinkCompressibleData) {
  for (const char* codec : {"lz4", "lz4hc", "zstd", "zstd+shuffle"}) {
    SCOPED_TRACE(codec);
    const std::string url = FreshMemUrl();
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(Ok(ds));
    auto t = (*ds)->CreateTensor(
        {.name = "x", .dtype = DType::kUInt32, .chunk_compression = codec});
    ASSERT_TRUE(Ok(t));
    std::vector<uint32_t> values(256 * 1024);
    for (size_t k = 0; k < values.size(); ++k) values[k] = k / 100;
    ASSERT_TRUE(Ok((*t)->AppendBatch(
        Shape{1024}, 256,
        ByteSpan(reinterpret_cast<const std::byte*>(values.data()),
                 values.size() * 4))));
    ASSERT_TRUE(Ok((*ds)->Flush()));
    EXPECT_EQ((*t)->stats().raw_bytes, values.size() * 4);
    EXPECT_LT((*t)->stats().stored_bytes, values.size() * 4 / 8);
  }
}

// -------------------------------------------------------- property tests --

const char* const kCodecChoices[][2] = {
    {"", ""},      {"lz4", ""},  {"zstd", ""},           {"", "lz4"},
    {"", "lz4hc"}, {"", "zstd"}, {"", "zstd:1+shuffle"},
};

uint64_t LogUniform(SplitMix64& rng, uint64_t lo, uint64_t hi) {
  const double e = rng.Uniform(std::log2(double(lo)), std::log2(double(hi)));
  return std::clamp<uint64_t>(uint64_t(std::exp2(e)), lo, hi);
}

// Dims 0..40; the largest dims are halved until the sample has at most
// `max_elements` elements.
Shape RandomShape(SplitMix64& rng, int rank, uint64_t max_elements) {
  Shape s = Shape::Zeros(rank);
  for (int d = 0; d < rank; ++d) s[d] = rng.Bounded(41);
  if (rank > 0 && rng.Bounded(8) == 0) s[rng.Bounded(rank)] = 0;
  while (Elements(s) > max_elements) {
    size_t big = 0;
    for (int d = 1; d < rank; ++d) {
      if (s[d] > s[big]) big = d;
    }
    s[big] /= 2;
  }
  return s;
}

struct PropertyTensor {
  std::string name;
  Model model;
  int rank;
  Tensor* tensor = nullptr;
};

void RunPropertySeed(uint64_t seed) {
  SplitMix64 rng(seed);
  TempDir dir;
  const std::string url = seed % 3 == 0 ? dir.url() : FreshMemUrl();
  auto created = Dataset::Create(url, {.id_seed = seed + 1});
  ASSERT_TRUE(Ok(created));
  std::unique_ptr<Dataset> ds = std::move(*created);

  std::vector<PropertyTensor> tensors(2);
  for (size_t k = 0; k < tensors.size(); ++k) {
    PropertyTensor& pt = tensors[k];
    pt.name = "t" + std::to_string(k);
    pt.model.dtype = kDTypes[rng.Bounded(std::size(kDTypes))];
    pt.model.salt = seed * 10 + k;
    pt.rank = static_cast<int>(rng.Bounded(5));
    const auto* codec = kCodecChoices[rng.Bounded(std::size(kCodecChoices))];
    TensorSpec spec{.name = pt.name,
                    .dtype = pt.model.dtype,
                    .sample_compression = codec[0],
                    .chunk_compression = codec[1],
                    .max_chunk_bytes = LogUniform(rng, 4096, 1 << 20),
                    .block_bytes = LogUniform(rng, 4096, 64 << 10)};
    // A third of the tensors tile often (threshold below the chunk size).
    if (rng.Bounded(3) == 0)
      spec.tiling_threshold = LogUniform(rng, 1024, 8192);
    SCOPED_TRACE("tensor " + pt.name + " dtype " +
                 std::string(DTypeName(pt.model.dtype)) + " rank " +
                 std::to_string(pt.rank) + " codecs '" + codec[0] + "' '" +
                 codec[1] + "' chunk " + std::to_string(spec.max_chunk_bytes) +
                 " block " + std::to_string(spec.block_bytes) + " tiling " +
                 std::to_string(spec.tiling_threshold));
    auto t = ds->CreateTensor(spec);
    ASSERT_TRUE(Ok(t));
    pt.tensor = *t;
  }

  auto reopen = [&](bool read_only) -> bool {
    if (!Ok(ds->Close())) return false;
    ds.reset();
    auto opened = Dataset::Open(url, {.read_only = read_only});
    if (!opened.ok()) {
      ADD_FAILURE() << opened.status();
      return false;
    }
    ds = std::move(*opened);
    for (auto& pt : tensors) {
      auto t = ds->tensor(pt.name);
      if (!t.ok()) {
        ADD_FAILURE() << t.status();
        return false;
      }
      pt.tensor = *t;
    }
    return true;
  };

  const int steps = 60 + static_cast<int>(rng.Bounded(60));
  for (int step = 0; step < steps; ++step) {
    PropertyTensor& pt = tensors[rng.Bounded(tensors.size())];
    Model& m = pt.model;
    const uint64_t max_elements = 12000 / ItemSize(m.dtype) + 1;
    const uint64_t first = m.shapes.size();
    const unsigned op = rng.Bounded(100);
    SCOPED_TRACE("step " + std::to_string(step) + " op " + std::to_string(op) +
                 " tensor " + pt.name + " at sample " + std::to_string(first));
    if (op < 45) {
      const Shape s = RandomShape(rng, pt.rank, max_elements);
      m.shapes.push_back(s);
      ASSERT_TRUE(Ok(pt.tensor->Append(s, Span(m.Bytes(first)))));
    } else if (op < 65) {
      const Shape s = RandomShape(rng, pt.rank, max_elements);
      const uint64_t count = 1 + rng.Bounded(20);
      std::vector<std::byte> data;
      for (uint64_t i = 0; i < count; ++i) {
        m.shapes.push_back(s);
        auto b = m.Bytes(first + i);
        data.insert(data.end(), b.begin(), b.end());
      }
      ASSERT_TRUE(Ok(pt.tensor->AppendBatch(s, count, Span(data))));
    } else if (op < 85) {
      const uint64_t count = 1 + rng.Bounded(10);
      std::vector<Shape> shapes;
      std::vector<std::byte> data;
      for (uint64_t i = 0; i < count; ++i) {
        shapes.push_back(RandomShape(rng, pt.rank, max_elements));
        m.shapes.push_back(shapes.back());
        auto b = m.Bytes(first + i);
        data.insert(data.end(), b.begin(), b.end());
      }
      ASSERT_TRUE(Ok(pt.tensor->AppendBatch(shapes, Span(data))));
    } else if (op < 95) {
      ASSERT_TRUE(Ok(ds->Flush()));
    } else {
      ASSERT_TRUE(reopen(/*read_only=*/false));
    }
    // Spot-check a random sample, flushed or not.
    if (!m.shapes.empty() && rng.Bounded(4) == 0) {
      const uint64_t i = rng.Bounded(m.shapes.size());
      ASSERT_TRUE(
          SameSample(pt.tensor->Read(i), m.dtype, m.shapes[i], m.Bytes(i)))
          << "sample " << i;
    }
  }
  for (auto& pt : tensors) {
    SCOPED_TRACE("writable, unflushed: " + pt.name);
    CheckTensor(*pt.tensor, pt.model);
  }
  ASSERT_TRUE(reopen(/*read_only=*/true));
  for (auto& pt : tensors) {
    SCOPED_TRACE("read-only: " + pt.name);
    CheckTensor(*pt.tensor, pt.model);
    CheckStats(*pt.tensor, pt.model);
    for (int k = 0; k < 5 && !pt.model.shapes.empty(); ++k) {
      const uint64_t n = pt.model.shapes.size();
      const uint64_t b = rng.Bounded(n), e = b + rng.Bounded(n - b + 1);
      auto got = pt.tensor->ReadRange(b, e);
      ASSERT_TRUE(Ok(got));
      for (uint64_t i = b; i < e; ++i) {
        ASSERT_TRUE(SameSample((*got)[i - b], pt.model.dtype,
                               pt.model.shapes[i], pt.model.Bytes(i)))
            << "ReadRange [" << b << ", " << e << ") sample " << i;
      }
    }
  }
  const uint64_t n0 = tensors[0].model.shapes.size();
  const uint64_t n1 = tensors[1].model.shapes.size();
  EXPECT_EQ(ds->len(), std::min(n0, n1));
  EXPECT_EQ(ds->max_len(), std::max(n0, n1));
  CheckChunkObjects(*ds);
  auto report = VerifyDataset(url, {.decode_samples = true});
  ASSERT_TRUE(Ok(report));
  for (const auto& problem : report->problems)
    ADD_FAILURE() << problem.ToString();
}

TEST(PropertyTest, RandomShapesChunkSizesAppendsAndFlushes) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    RunPropertySeed(seed);
    if (HasFatalFailure()) {
      ADD_FAILURE() << "stopped at seed " << seed;
      return;
    }
  }
}

// ----------------------------------------------------------------- ragged --

TEST(RaggedTest, LengthsPaddingAndOutOfRange) {
  const std::string url = FreshMemUrl();
  {
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(Ok(ds));
    EXPECT_EQ((*ds)->len(), 0u);
    EXPECT_EQ((*ds)->max_len(), 0u);
    auto a = (*ds)->CreateTensor({.name = "a", .dtype = DType::kInt16});
    auto b = (*ds)->CreateTensor(
        {.name = "grp/b", .dtype = DType::kFloat32, .rank = 2});
    ASSERT_TRUE(Ok(a));
    ASSERT_TRUE(Ok(b));
    for (uint64_t i = 0; i < 5; ++i) {
      ASSERT_TRUE(Ok((*a)->Append(
          Shape{i + 1}, Span(Content(DType::kInt16, Shape{i + 1}, 1, i)))));
    }
    for (uint64_t i = 0; i < 3; ++i) {
      ASSERT_TRUE(Ok((*b)->Append(
          Shape{2, i}, Span(Content(DType::kFloat32, Shape{2, i}, 2, i)))));
    }
    EXPECT_EQ((*ds)->len(), 3u);
    EXPECT_EQ((*ds)->max_len(), 5u);
    ASSERT_TRUE(Ok((*ds)->Flush()));
  }
  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  EXPECT_EQ((*ds)->len(), 3u);
  EXPECT_EQ((*ds)->max_len(), 5u);
  auto b = (*ds)->tensor("grp/b");
  ASSERT_TRUE(Ok(b));
  EXPECT_EQ((*b)->size(), 3u);
  for (uint64_t i : {3u, 4u, 100u}) {
    auto padded = (*b)->Read(i, {.pad = true});
    ASSERT_TRUE(Ok(padded));
    EXPECT_EQ(padded->shape, Shape({0, 0}));
    EXPECT_EQ(padded->dtype, DType::kFloat32);
    EXPECT_EQ(padded->data.size(), 0u);
    auto plain = (*b)->Read(i);
    EXPECT_TRUE(HasCode(plain, StatusCode::kOutOfRange));
    EXPECT_THAT(std::string(plain.status().message()), HasSubstr("'grp/b'"));
  }
  // Inside the tensor, pad changes nothing.
  EXPECT_TRUE(SameSample((*b)->Read(2, {.pad = true}), DType::kFloat32,
                         Shape{2, 2},
                         Content(DType::kFloat32, Shape{2, 2}, 2, 2)));
  auto a = (*ds)->tensor("a");
  ASSERT_TRUE(Ok(a));
  EXPECT_TRUE(SameSample((*a)->Read(4), DType::kInt16, Shape{5},
                         Content(DType::kInt16, Shape{5}, 1, 4)));
  EXPECT_TRUE(HasCode((*a)->ReadShape(5), StatusCode::kOutOfRange));
  EXPECT_TRUE(HasCode((*b)->ReadRange(2, 4), StatusCode::kOutOfRange));
}

// ----------------------------------------------------------------- tiling --

// The tile shape FORMAT.md prescribes ("Tiling").
Shape SpecTileShape(const Shape& shape, size_t item, uint64_t threshold) {
  Shape tile = shape;
  const size_t splittable = shape.rank() >= 3 ? shape.rank() - 1 : shape.rank();
  while (Elements(tile) * item > threshold) {
    size_t best = 0;
    for (size_t d = 1; d < splittable; ++d) {
      if (tile[d] > tile[best]) best = d;
    }
    if (splittable == 0 || tile[best] <= 1) break;
    tile[best] = (tile[best] + 1) / 2;
  }
  return tile;
}

// The crop [lo, hi) of a C-order array, element by element.
std::vector<std::byte> Crop(const std::vector<std::byte>& src,
                            const Shape& shape, const std::vector<uint64_t>& lo,
                            const std::vector<uint64_t>& hi, size_t item) {
  const size_t rank = shape.rank();
  std::vector<std::byte> out;
  for (size_t d = 0; d < rank; ++d) {
    if (lo[d] == hi[d]) return out;
  }
  std::vector<uint64_t> pos(lo);
  while (true) {
    uint64_t linear = 0;
    for (size_t d = 0; d < rank; ++d) linear = linear * shape[d] + pos[d];
    out.insert(out.end(), src.begin() + linear * item,
               src.begin() + (linear + 1) * item);
    size_t d = rank;
    while (d > 0) {
      --d;
      if (++pos[d] < hi[d]) break;
      pos[d] = lo[d];
      if (d == 0) return out;
    }
    if (rank == 0) return out;
  }
}

struct TiledCase {
  const char* name;
  Shape shape;
  const char* sample_codec;
  const char* chunk_codec;
};

class TiledTest : public ::testing::TestWithParam<TiledCase> {};

constexpr uint64_t kTileThreshold = 10 << 10;

TEST_P(TiledTest, ReadAndRegionsTouchOnlyOverlappingTiles) {
  format_test::RegisterCountingStore();
  const TiledCase& c = GetParam();
  const DType dtype = DType::kUInt16;
  const size_t item = 2;
  const std::string url = "countmem://" + FreshMemName();
  const std::vector<std::byte> source = Content(dtype, c.shape, 99, 0);
  {
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(Ok(ds));
    auto t = (*ds)->CreateTensor({.name = "big",
                                  .dtype = dtype,
                                  .sample_compression = c.sample_codec,
                                  .chunk_compression = c.chunk_codec,
                                  .max_chunk_bytes = 1 << 20,
                                  .block_bytes = 4096,
                                  .tiling_threshold = kTileThreshold});
    ASSERT_TRUE(Ok(t));
    ASSERT_TRUE(Ok((*t)->Append(c.shape, Span(source))));
    // Readable before the flush too.
    EXPECT_TRUE(SameSample((*t)->Read(0), dtype, c.shape, source));
    ASSERT_TRUE(Ok((*ds)->Flush()));
  }

  const Shape tile = SpecTileShape(c.shape, item, kTileThreshold);
  uint64_t num_tiles = 1;
  for (size_t d = 0; d < c.shape.rank(); ++d) {
    num_tiles *= (c.shape[d] + tile[d] - 1) / tile[d];
  }
  ASSERT_GT(num_tiles, 1u);

  // The data tensor's chunk folder is the one holding one object per tile
  // (the hidden tensors hold one chunk each).
  std::string folder;
  {
    auto store = OpenStore(url);
    ASSERT_TRUE(Ok(store));
    auto keys = (*store)->List("chunks/");
    ASSERT_TRUE(Ok(keys));
    std::map<std::string, uint64_t> per_folder;
    for (const auto& key : *keys) {
      per_folder[key.substr(0, key.rfind('/') + 1)] += 1;
    }
    for (const auto& [f, n] : per_folder) {
      if (n == num_tiles) folder = f;
    }
    ASSERT_FALSE(folder.empty()) << "no chunk folder holds the " << num_tiles
                                 << " tiles of tile shape " << tile.ToString();
  }

  auto open = [&]() {
    auto ds = Dataset::Open(url, {.read_only = true});
    EXPECT_TRUE(Ok(ds));
    return std::move(*ds);
  };
  {
    auto ds = open();
    auto t = ds->tensor("big");
    ASSERT_TRUE(Ok(t));
    EXPECT_TRUE(SameSample((*t)->Read(0), dtype, c.shape, source));
    auto range = (*t)->ReadRange(0, 1);
    ASSERT_TRUE(Ok(range));
    EXPECT_TRUE(SameSample((*range)[0], dtype, c.shape, source));
    EXPECT_EQ((*t)->stats().num_chunks, num_tiles);
    EXPECT_TRUE(HasCode((*t)->ReadStored(0), StatusCode::kInvalidArgument));
  }

  SplitMix64 rng(static_cast<uint64_t>(c.shape.rank()) * 7919 + c.shape[0]);
  const size_t rank = c.shape.rank();
  for (int box = 0; box < 40; ++box) {
    std::vector<uint64_t> lo(rank), hi(rank);
    for (size_t d = 0; d < rank; ++d) {
      if (box == 0) {  // the whole sample
        lo[d] = 0, hi[d] = c.shape[d];
      } else if (box == 1) {  // one element in the last tile
        lo[d] = c.shape[d] - 1, hi[d] = c.shape[d];
      } else if (box == 2 && d == 0) {  // empty
        lo[d] = hi[d] = c.shape[d] / 2;
      } else {
        lo[d] = rng.Bounded(c.shape[d] + 1);
        hi[d] = lo[d] + rng.Bounded(c.shape[d] - lo[d] + 1);
        if (box % 3 == 0 && hi[d] == lo[d] && lo[d] < c.shape[d]) ++hi[d];
      }
    }
    uint64_t overlapping = 1;
    Shape out_shape = Shape::Zeros(rank);
    for (size_t d = 0; d < rank; ++d) {
      out_shape[d] = hi[d] - lo[d];
      overlapping *=
          hi[d] == lo[d] ? 0 : (hi[d] - 1) / tile[d] - lo[d] / tile[d] + 1;
    }
    std::string box_text;
    for (size_t d = 0; d < rank; ++d) {
      box_text +=
          "[" + std::to_string(lo[d]) + "," + std::to_string(hi[d]) + ")";
    }
    SCOPED_TRACE("box " + box_text);

    auto ds = open();  // cold caches
    auto* counting = dynamic_cast<CountingStore*>(ds->store().get());
    ASSERT_NE(counting, nullptr);
    auto t = ds->tensor("big");
    ASSERT_TRUE(Ok(t));
    counting->Reset();
    auto region = (*t)->ReadRegion(0, lo, hi);
    ASSERT_TRUE(SameSample(region, dtype, out_shape,
                           Crop(source, c.shape, lo, hi, item)));
    const auto reads = counting->ReadsUnder(folder);
    EXPECT_EQ(reads.size(), overlapping);
    for (const auto& [key, r] : reads) {
      EXPECT_EQ(r.whole, 0u) << key << " was read whole";
    }
  }

  // Regions outside the sample or of the wrong rank.
  auto ds = open();
  auto t = ds->tensor("big");
  ASSERT_TRUE(Ok(t));
  std::vector<uint64_t> lo(rank, 0),
      hi(c.shape.dims().begin(), c.shape.dims().end());
  hi[0] += 1;
  EXPECT_TRUE(
      HasCode((*t)->ReadRegion(0, lo, hi), StatusCode::kInvalidArgument));
  hi[0] -= 1;
  lo[0] = hi[0] / 2 + 1;
  hi[0] = lo[0] - 1;
  EXPECT_TRUE(
      HasCode((*t)->ReadRegion(0, lo, hi), StatusCode::kInvalidArgument));
  std::vector<uint64_t> short_lo(rank + 1, 0), short_hi(rank + 1, 1);
  EXPECT_TRUE(HasCode((*t)->ReadRegion(0, short_lo, short_hi),
                      StatusCode::kInvalidArgument));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, TiledTest,
    ::testing::Values(
        TiledCase{"rank1_raw", Shape{100003}, "", ""},
        TiledCase{"rank2_sample_lz4", Shape{301, 199}, "lz4", ""},
        TiledCase{"rank2_chunk_zstd", Shape{301, 199}, "", "zstd"},
        TiledCase{"rank3_raw", Shape{300, 200, 3}, "", ""},
        TiledCase{"rank3_sample_zstd", Shape{300, 200, 3}, "zstd", ""},
        TiledCase{"rank3_chunk_lz4", Shape{300, 200, 3}, "", "lz4"},
        TiledCase{"rank4_chunk_zstd", Shape{5, 37, 41, 3}, "", "zstd+shuffle"},
        TiledCase{"rank4_sample_lz4", Shape{5, 37, 41, 3}, "lz4", ""}),
    [](const auto& info) { return std::string(info.param.name); });

// Tiled samples between ordinary ones keep their order, and regions of
// ordinary samples are crops too.
// A sample whose tiles cannot get under the threshold (here the channels
// alone: 6 bytes against 4) used to be written, then failed every read
// ("exceeds the tensor's sample size limit"). Refused at Append instead,
// and what was appended before stays readable.
TEST(TiledTest, ASampleThatCannotBeTiledSmallEnoughIsRefused) {
  const std::string url = FreshMemUrl();
  auto ds = Dataset::Create(url);
  ASSERT_TRUE(Ok(ds));
  auto t = (*ds)->CreateTensor(
      {.name = "x", .dtype = DType::kUInt8, .tiling_threshold = 4});
  ASSERT_TRUE(Ok(t));
  const std::vector<std::byte> small(2, std::byte{1}), big(24, std::byte{7});
  ASSERT_TRUE(Ok((*t)->Append(Shape{1, 1, 2}, Span(small))));
  const Status s = (*t)->Append(Shape{2, 2, 6}, Span(big));
  EXPECT_TRUE(HasCode(s, StatusCode::kInvalidArgument)) << s;
  EXPECT_NE(s.message().find("raise tiling_threshold"), std::string_view::npos)
      << s;
  ASSERT_TRUE(Ok((*ds)->Flush()));
  EXPECT_EQ((*t)->size(), 1u);
  auto back = (*t)->Read(0);
  ASSERT_TRUE(Ok(back));
  EXPECT_EQ(back->shape, (Shape{1, 1, 2}));
}

TEST(TiledTest, MixedWithSmallSamples) {
  const std::string url = FreshMemUrl();
  const DType dtype = DType::kUInt8;
  std::vector<Shape> shapes = {Shape{10, 10, 3}, Shape{100, 90, 3},
                               Shape{7, 5, 1},   Shape{64, 64, 4},
                               Shape{0, 3, 2},   Shape{2, 2, 2}};
  {
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(Ok(ds));
    auto t = (*ds)->CreateTensor({.name = "img",
                                  .htype = HType::kImage,
                                  .chunk_compression = "lz4",
                                  .max_chunk_bytes = 8192,
                                  .block_bytes = 4096});
    ASSERT_TRUE(Ok(t));
    for (size_t i = 0; i < shapes.size(); ++i) {
      ASSERT_TRUE(
          Ok((*t)->Append(shapes[i], Span(Content(dtype, shapes[i], 5, i)))));
    }
    ASSERT_TRUE(Ok((*ds)->Flush()));
  }
  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  auto t = (*ds)->tensor("img");
  ASSERT_TRUE(Ok(t));
  auto all = (*t)->ReadRange(0, shapes.size());
  ASSERT_TRUE(Ok(all));
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto want = Content(dtype, shapes[i], 5, i);
    EXPECT_TRUE(SameSample((*all)[i], dtype, shapes[i], want)) << i;
    EXPECT_TRUE(SameSample((*t)->Read(i), dtype, shapes[i], want)) << i;
    std::vector<uint64_t> lo = {shapes[i][0] / 3, shapes[i][1] / 2, 0};
    std::vector<uint64_t> hi = {shapes[i][0], shapes[i][1] - shapes[i][1] / 4,
                                shapes[i][2]};
    Shape out{hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]};
    EXPECT_TRUE(SameSample((*t)->ReadRegion(i, lo, hi), dtype, out,
                           Crop(want, shapes[i], lo, hi, 1)))
        << i;
  }
}

// ------------------------------------------------------------- read cost --

TEST(ReadCostTest, OneSampleReadsHeaderAndItsBlocksOnly) {
  format_test::RegisterCountingStore();
  const std::string url = "countmem://" + FreshMemName();
  const uint64_t n = 1000, size = 1000, block = 16 << 10;
  {
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(Ok(ds));
    auto t = (*ds)->CreateTensor({.name = "x",
                                  .dtype = DType::kUInt8,
                                  .chunk_compression = "lz4",
                                  .max_chunk_bytes = 1 << 20,
                                  .block_bytes = block});
    ASSERT_TRUE(Ok(t));
    std::vector<std::byte> data;
    for (uint64_t i = 0; i < n; ++i) {
      auto b = SampleBytes(3, i, size);
      data.insert(data.end(), b.begin(), b.end());
    }
    ASSERT_TRUE(Ok((*t)->AppendBatch(Shape{size}, n, Span(data))));
    ASSERT_TRUE(Ok((*ds)->Flush()));
  }
  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  auto* counting = dynamic_cast<CountingStore*>((*ds)->store().get());
  ASSERT_NE(counting, nullptr);
  auto t = (*ds)->tensor("x");
  ASSERT_TRUE(Ok(t));
  ASSERT_EQ((*t)->stats().num_chunks, 1u);
  const uint64_t chunk_size = (*t)->stats().stored_bytes;
  ASSERT_GT(chunk_size, n * size / 2);

  // The shape comes from the hidden tensor: the data chunk is not read.
  counting->Reset();
  auto shape = (*t)->ReadShape(500);
  ASSERT_TRUE(Ok(shape));
  EXPECT_EQ(*shape, Shape{size});
  std::set<std::string> shape_keys;
  for (const auto& [key, r] : counting->ReadsUnder("chunks/"))
    shape_keys.insert(key);

  counting->Reset();
  EXPECT_TRUE(SameSample((*t)->Read(500), DType::kUInt8, Shape{size},
                         SampleBytes(3, 500, size)));
  const auto reads = counting->ReadsUnder("chunks/");
  ASSERT_EQ(reads.size(), 1u) << "one sample should touch one chunk";
  const auto& [key, r] = *reads.begin();
  EXPECT_EQ(shape_keys.count(key), 0u) << "ReadShape read the data chunk";
  EXPECT_EQ(r.whole, 0u);
  EXPECT_EQ(r.ranges, 2u) << "the header, then one range of blocks";
  // Sample 500 lies in at most two 16 KiB blocks; the header of ~62 blocks
  // is about 1 KiB.
  EXPECT_LE(r.bytes, 2 * (block + 1024) + 4096);
  EXPECT_LT(r.bytes * 20, chunk_size);

  // Sample 16 ([16000, 17000)) crosses the first block boundary: still only
  // the header and its two blocks.
  auto cold = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(cold));
  counting = dynamic_cast<CountingStore*>((*cold)->store().get());
  auto ct = (*cold)->tensor("x");
  ASSERT_TRUE(Ok(ct));
  counting->Reset();
  EXPECT_TRUE(SameSample((*ct)->Read(16), DType::kUInt8, Shape{size},
                         SampleBytes(3, 16, size)));
  const auto cross = counting->ReadsUnder("chunks/");
  ASSERT_EQ(cross.size(), 1u);
  EXPECT_EQ(cross.begin()->second.whole, 0u);
  EXPECT_LE(cross.begin()->second.ranges, 3u);
  EXPECT_LE(cross.begin()->second.bytes, 2 * (block + 1024) + 4096);
}

// ----------------------------------------------------- append after reopen --

// Lists the chunk objects per tensor folder.
std::map<std::string, uint64_t> ChunkFolders(Store& store) {
  std::map<std::string, uint64_t> out;
  auto keys = store.List("chunks/");
  EXPECT_TRUE(Ok(keys));
  if (keys.ok()) {
    for (const auto& key : *keys) out[key.substr(0, key.rfind('/') + 1)] += 1;
  }
  return out;
}

void CheckFewChunksAfterManyFlushes(bool reopen_each_time) {
  TempDir dir;
  const std::string url = dir.url();
  const uint64_t per_flush = 10, flushes = 100, size = 100;
  Model m{DType::kUInt8, 11, {}, {}};
  std::unique_ptr<Dataset> ds;
  {
    auto created = Dataset::Create(url);
    ASSERT_TRUE(Ok(created));
    ds = std::move(*created);
    ASSERT_TRUE(Ok(ds->CreateTensor({.name = "x",
                                     .dtype = DType::kUInt8,
                                     .chunk_compression = "zstd",
                                     .max_chunk_bytes = 64 << 10,
                                     .block_bytes = 4096})));
  }
  for (uint64_t f = 0; f < flushes; ++f) {
    if (reopen_each_time && f > 0) {
      ASSERT_TRUE(Ok(ds->Close()));
      ds.reset();
      auto opened = Dataset::Open(url);
      ASSERT_TRUE(Ok(opened));
      ds = std::move(*opened);
    }
    auto t = ds->tensor("x");
    ASSERT_TRUE(Ok(t));
    std::vector<std::byte> data;
    for (uint64_t i = 0; i < per_flush; ++i) {
      m.shapes.push_back(Shape{size});
      auto b = m.Bytes(m.shapes.size() - 1);
      data.insert(data.end(), b.begin(), b.end());
    }
    ASSERT_TRUE(Ok((*t)->AppendBatch(Shape{size}, per_flush, Span(data))));
    ASSERT_TRUE(Ok(ds->Flush()));
  }
  auto t = ds->tensor("x");
  ASSERT_TRUE(Ok(t));
  CheckTensor(**t, m);
  CheckStats(**t, m);
  CheckChunkObjects(*ds);
  // 100 KB of samples in 64 KiB chunks: a handful of chunks, not 100.
  EXPECT_LE((*t)->stats().num_chunks, 4u);
  for (const auto& [folder, n] : ChunkFolders(*ds->store())) {
    EXPECT_LE(n, 4u) << folder;
  }
  // Old metadata and indexes are gone too.
  auto metas = ds->store()->List("meta/");
  ASSERT_TRUE(Ok(metas));
  EXPECT_EQ(metas->size(), 1u);
  auto indexes = ds->store()->List("index/");
  ASSERT_TRUE(Ok(indexes));
  EXPECT_EQ(indexes->size(), 3u);  // x, _shape/x, _info/x
  auto report = VerifyDataset(url);
  ASSERT_TRUE(Ok(report));
  for (const auto& problem : report->problems)
    ADD_FAILURE() << problem.ToString();
}

TEST(AppendAfterReopenTest, TinyFlushesRewriteTheTailChunk) {
  CheckFewChunksAfterManyFlushes(/*reopen_each_time=*/false);
}

TEST(AppendAfterReopenTest, TinyFlushesAcrossReopensRewriteTheTailChunk) {
  CheckFewChunksAfterManyFlushes(/*reopen_each_time=*/true);
}

TEST(AppendAfterReopenTest, AppendToEveryKindOfTail) {
  // The tail is a tiled sample, then a sample-compressed chunk, then empty
  // samples; each reopen appends behind it.
  const std::string url = FreshMemUrl();
  Model m{DType::kUInt16, 4, {}, {}};
  const std::vector<std::vector<Shape>> rounds = {
      {Shape{3, 3}, Shape{80, 70}},  // ends with a tiled sample
      {Shape{2, 5}},
      {Shape{0, 4}, Shape{4, 0}},
      {Shape{90, 90}, Shape{1, 1}},
  };
  for (size_t r = 0; r < rounds.size(); ++r) {
    auto ds = r == 0 ? Dataset::Create(url) : Dataset::Open(url);
    ASSERT_TRUE(Ok(ds));
    if (r == 0) {
      ASSERT_TRUE(Ok((*ds)->CreateTensor({.name = "x",
                                          .dtype = DType::kUInt16,
                                          .sample_compression = "zstd",
                                          .max_chunk_bytes = 8192})));
    }
    auto t = (*ds)->tensor("x");
    ASSERT_TRUE(Ok(t));
    for (const Shape& s : rounds[r]) {
      m.shapes.push_back(s);
      ASSERT_TRUE(Ok((*t)->Append(s, Span(m.Bytes(m.shapes.size() - 1)))));
    }
    ASSERT_TRUE(Ok((*ds)->Close()));
  }
  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  auto t = (*ds)->tensor("x");
  ASSERT_TRUE(Ok(t));
  CheckTensor(**t, m);
  CheckStats(**t, m);
  CheckChunkObjects(**ds);
}

TEST(DatasetTest, DestructorCommits) {
  const std::string url = FreshMemUrl();
  {
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(Ok(ds));
    auto t = (*ds)->CreateTensor({.name = "x", .dtype = DType::kInt32});
    ASSERT_TRUE(Ok(t));
    ASSERT_TRUE(Ok(
        (*t)->Append(Shape{2}, Span(Content(DType::kInt32, Shape{2}, 1, 0)))));
  }
  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  auto t = (*ds)->tensor("x");
  ASSERT_TRUE(Ok(t));
  EXPECT_TRUE(SameSample((*t)->Read(0), DType::kInt32, Shape{2},
                         Content(DType::kInt32, Shape{2}, 1, 0)));
}

TEST(DatasetTest, FlushWithoutChangesMakesNoCommit) {
  const std::string url = FreshMemUrl();
  auto ds = Dataset::Create(url);
  ASSERT_TRUE(Ok(ds));
  EXPECT_EQ((*ds)->commit(), 0u);
  ASSERT_TRUE(Ok((*ds)->CreateTensor({.name = "x", .dtype = DType::kInt32})));
  ASSERT_TRUE(Ok((*ds)->Flush()));
  EXPECT_EQ((*ds)->commit(), 1u);
  ASSERT_TRUE(Ok((*ds)->Flush()));
  EXPECT_EQ((*ds)->commit(), 1u);
  auto metas = (*ds)->store()->List("meta/");
  ASSERT_TRUE(Ok(metas));
  EXPECT_EQ(metas->size(), 1u);
}

// Reads are thread-safe: threads sharing one read-only dataset (and its
// header and block caches) all see the right bytes.
TEST(DatasetTest, ConcurrentReads) {
  const std::string url = FreshMemUrl();
  Model m{DType::kInt32, 21, {}, {}};
  {
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(Ok(ds));
    auto t = (*ds)->CreateTensor({.name = "x",
                                  .dtype = DType::kInt32,
                                  .chunk_compression = "lz4",
                                  .max_chunk_bytes = 16384,
                                  .block_bytes = 4096,
                                  .tiling_threshold = 8192});
    ASSERT_TRUE(Ok(t));
    for (uint64_t i = 0; i < 400; ++i) {
      m.shapes.push_back(i % 40 == 0 ? Shape{50, 60} : Shape{i % 9, 7});
      ASSERT_TRUE(Ok((*t)->Append(m.shapes.back(), Span(m.Bytes(i)))));
    }
    ASSERT_TRUE(Ok((*ds)->Flush()));
  }
  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  auto t = (*ds)->tensor("x");
  ASSERT_TRUE(Ok(t));
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      SplitMix64 rng(k);
      for (int n = 0; n < 400; ++n) {
        const uint64_t i = rng.Bounded(m.shapes.size());
        if (!SameSample((*t)->Read(i), m.dtype, m.shapes[i], m.Bytes(i))) ++bad;
        if (n % 10 == 0) {
          const uint64_t e =
              std::min<uint64_t>(m.shapes.size(), i + rng.Bounded(30));
          auto range = (*t)->ReadRange(i, e);
          if (!range.ok()) {
            ++bad;
            continue;
          }
          for (uint64_t j = i; j < e; ++j) {
            if (!SameSample((*range)[j - i], m.dtype, m.shapes[j], m.Bytes(j)))
              ++bad;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

// ----------------------------------------------------------------- schema --

TEST(SchemaTest, AddTensorToDatasetWithData) {
  const std::string url = FreshMemUrl();
  {
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(Ok(ds));
    auto a = (*ds)->CreateTensor({.name = "a", .dtype = DType::kUInt8});
    ASSERT_TRUE(Ok(a));
    ASSERT_TRUE(
        Ok((*a)->AppendBatch(Shape{4}, 5, Span(SampleBytes(1, 0, 20)))));
    ASSERT_TRUE(Ok((*ds)->Flush()));
  }
  {
    auto ds = Dataset::Open(url);
    ASSERT_TRUE(Ok(ds));
    auto b = (*ds)->CreateTensor({.name = "b", .htype = HType::kClassLabel});
    ASSERT_TRUE(Ok(b));
    EXPECT_EQ((*b)->size(), 0u);
    EXPECT_EQ((*b)->dtype(), DType::kUInt32);
    EXPECT_EQ((*ds)->len(), 0u);
    EXPECT_EQ((*ds)->max_len(), 5u);
    const uint32_t label = 7;
    ASSERT_TRUE(Ok((*b)->Append(
        Shape{}, ByteSpan(reinterpret_cast<const std::byte*>(&label), 4))));
    ASSERT_TRUE(Ok((*ds)->Flush()));
  }
  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  ASSERT_EQ((*ds)->tensors().size(), 2u);
  EXPECT_EQ((*ds)->tensors()[0]->name(), "a");
  EXPECT_EQ((*ds)->tensors()[1]->name(), "b");
  EXPECT_EQ((*ds)->len(), 1u);
  auto b = (*ds)->tensor("b");
  ASSERT_TRUE(Ok(b));
  auto s = (*b)->Read(0);
  ASSERT_TRUE(Ok(s));
  ASSERT_EQ(s->data.size(), 4u);
  uint32_t got;
  std::memcpy(&got, s->data.data(), 4);
  EXPECT_EQ(got, 7u);
  auto a = (*ds)->tensor("a");
  ASSERT_TRUE(Ok(a));
  auto sample = (*a)->Read(4);
  ASSERT_TRUE(Ok(sample));
  EXPECT_EQ(
      sample->data.view(),
      std::string_view(
          reinterpret_cast<const char*>(SampleBytes(1, 0, 20).data()) + 16, 4));
}

TEST(SchemaTest, TensorNames) {
  auto ds = Dataset::Create(FreshMemUrl());
  ASSERT_TRUE(Ok(ds));
  const std::string bad[] = {
      "",      "/a",   "a/",   "a//b", "..",
      ".",     "_x",   "a/_b", "a b",  ".a",
      "a/./b", "a\\b", "é",    "a\n",  std::string(256, 'n')};
  for (const auto& name : bad) {
    EXPECT_TRUE(HasCode(ValidateTensorName(name), StatusCode::kInvalidArgument))
        << "'" << name << "'";
    EXPECT_TRUE(
        HasCode((*ds)->CreateTensor({.name = name, .dtype = DType::kUInt8}),
                StatusCode::kInvalidArgument))
        << "'" << name << "'";
  }
  EXPECT_TRUE((*ds)->tensors(true).empty());
  const std::string good[] = {"a", "A-b_c.d", "g/h/i", "x1",
                              std::string(255, 'n')};
  for (const auto& name : good) {
    EXPECT_TRUE(Ok((*ds)->CreateTensor({.name = name, .dtype = DType::kUInt8})))
        << "'" << name << "'";
  }
  // Hidden names cannot be taken by users, but hidden tensors can be looked
  // up.
  EXPECT_TRUE(Ok((*ds)->tensor("_shape/a")));
  EXPECT_TRUE(HasCode((*ds)->tensor("nope"), StatusCode::kNotFound));
}

TEST(SchemaTest, GroupClashesAndDuplicates) {
  auto ds = Dataset::Create(FreshMemUrl());
  ASSERT_TRUE(Ok(ds));
  ASSERT_TRUE(Ok((*ds)->CreateTensor({.name = "a", .dtype = DType::kUInt8})));
  EXPECT_TRUE(
      HasCode((*ds)->CreateTensor({.name = "a", .dtype = DType::kUInt8}),
              StatusCode::kAlreadyExists));
  auto clash = (*ds)->CreateTensor({.name = "a/b", .dtype = DType::kUInt8});
  EXPECT_FALSE(clash.ok());
  EXPECT_TRUE(clash.status().code() == StatusCode::kInvalidArgument ||
              clash.status().code() == StatusCode::kAlreadyExists)
      << clash.status();
  ASSERT_TRUE(Ok((*ds)->CreateTensor({.name = "g/b", .dtype = DType::kUInt8})));
  EXPECT_FALSE((*ds)->CreateTensor({.name = "g", .dtype = DType::kUInt8}).ok());
  EXPECT_FALSE(
      (*ds)->CreateTensor({.name = "g/b/c", .dtype = DType::kUInt8}).ok());
  EXPECT_TRUE(Ok((*ds)->CreateTensor({.name = "g/c", .dtype = DType::kUInt8})));
  EXPECT_TRUE(Ok((*ds)->CreateTensor({.name = "ab", .dtype = DType::kUInt8})));
  EXPECT_EQ((*ds)->tensors().size(), 4u);
  EXPECT_EQ((*ds)->tensors(true).size(), 12u);
}

TEST(SchemaTest, ReadOnlyRefusesWrites) {
  const std::string url = FreshMemUrl();
  {
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(Ok(ds));
    ASSERT_TRUE(Ok((*ds)->CreateTensor({.name = "a", .dtype = DType::kUInt8})));
  }
  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  const auto bytes = SampleBytes(1, 1, 4);
  EXPECT_TRUE(
      HasCode((*ds)->CreateTensor({.name = "b", .dtype = DType::kUInt8}),
              StatusCode::kFailedPrecondition));
  auto a = (*ds)->tensor("a");
  ASSERT_TRUE(Ok(a));
  EXPECT_TRUE(HasCode((*a)->Append(Shape{4}, Span(bytes)),
                      StatusCode::kFailedPrecondition));
  EXPECT_TRUE(HasCode((*a)->AppendBatch(Shape{2}, 2, Span(bytes)),
                      StatusCode::kFailedPrecondition));
  const Shape shapes[] = {Shape{4}};
  EXPECT_TRUE(HasCode((*a)->AppendBatch(shapes, Span(bytes)),
                      StatusCode::kFailedPrecondition));
  const Dataset::RowValue row[] = {{"a", Shape{4}, Span(bytes)}};
  EXPECT_TRUE(HasCode((*ds)->Append(row), StatusCode::kFailedPrecondition));
  const Dataset::Column col[] = {{"a", 1, Shape{4}, {}, Span(bytes)}};
  EXPECT_TRUE(
      HasCode((*ds)->AppendColumns(col), StatusCode::kFailedPrecondition));
  EXPECT_TRUE(HasCode((*ds)->Flush(), StatusCode::kFailedPrecondition));
  EXPECT_EQ((*a)->size(), 0u);
  EXPECT_TRUE(Ok((*ds)->Close()));
  auto keys = (*ds)->store()->List("");
  ASSERT_TRUE(Ok(keys));
  EXPECT_EQ(keys->size(), 4u) << "HEAD, commits 0 and 1, one metadata object";
}

TEST(SchemaTest, ClosedDatasetRefusesWrites) {
  auto ds = Dataset::Create(FreshMemUrl());
  ASSERT_TRUE(Ok(ds));
  ASSERT_TRUE(Ok((*ds)->Close()));
  EXPECT_TRUE(
      HasCode((*ds)->CreateTensor({.name = "b", .dtype = DType::kUInt8}),
              StatusCode::kFailedPrecondition));
  EXPECT_TRUE(HasCode((*ds)->Flush(), StatusCode::kFailedPrecondition));
}

TEST(SchemaTest, CreateOverExistingAndOpenMissing) {
  TempDir dir;
  for (const std::string& url : {FreshMemUrl(), dir.url()}) {
    SCOPED_TRACE(url);
    EXPECT_TRUE(HasCode(Dataset::Open(url), StatusCode::kNotFound));
    EXPECT_TRUE(HasCode(Dataset::Open(url, {.read_only = true}),
                        StatusCode::kNotFound));
    // Looking for a dataset leaves no trace.
    EXPECT_FALSE(std::filesystem::exists(dir.path() + "/ds"));
    {
      auto ds = Dataset::Create(url);
      ASSERT_TRUE(Ok(ds));
      auto t = (*ds)->CreateTensor({.name = "a", .dtype = DType::kUInt8});
      ASSERT_TRUE(Ok(t));
      ASSERT_TRUE(
          Ok((*t)->AppendBatch(Shape{8}, 4, Span(SampleBytes(1, 2, 32)))));
      ASSERT_TRUE(Ok((*ds)->Flush()));
    }
    EXPECT_TRUE(HasCode(Dataset::Create(url), StatusCode::kAlreadyExists));
    {
      auto ds = Dataset::Open(url);
      ASSERT_TRUE(Ok(ds));
      EXPECT_EQ((*ds)->len(), 4u) << "a refused Create must not touch the data";
    }
    auto ds = Dataset::Create(url, {.overwrite = true});
    ASSERT_TRUE(Ok(ds));
    EXPECT_TRUE((*ds)->tensors(true).empty());
    EXPECT_EQ((*ds)->len(), 0u);
    {
      // Until the new dataset commits, the old one is what opens, whole.
      auto old = Dataset::Open(url, {.read_only = true});
      ASSERT_TRUE(Ok(old));
      EXPECT_EQ((*old)->len(), 4u);
    }
    ASSERT_TRUE(Ok((*ds)->Flush()));
    auto chunks = (*ds)->store()->List("chunks/");
    ASSERT_TRUE(Ok(chunks));
    EXPECT_TRUE(chunks->empty()) << "the old dataset's chunks are deleted";
    auto reopened = Dataset::Open(url, {.read_only = true});
    ASSERT_TRUE(Ok(reopened));
    EXPECT_TRUE((*reopened)->tensors(true).empty());
    auto report = VerifyDataset(url);
    ASSERT_TRUE(Ok(report));
    for (const auto& problem : report->problems)
      ADD_FAILURE() << problem.ToString();
  }
}

TEST(SchemaTest, RemoveDeletesEveryObject) {
  TempDir dir;
  for (const std::string& url : {FreshMemUrl(), dir.url()}) {
    SCOPED_TRACE(url);
    EXPECT_TRUE(HasCode(Dataset::Remove(url), StatusCode::kNotFound));
    std::shared_ptr<Store> store;
    {
      auto ds = Dataset::Create(url);
      ASSERT_TRUE(Ok(ds));
      store = (*ds)->store();
      auto t = (*ds)->CreateTensor({.name = "a", .dtype = DType::kUInt8});
      ASSERT_TRUE(Ok(t));
      ASSERT_TRUE(
          Ok((*t)->AppendBatch(Shape{8}, 4, Span(SampleBytes(1, 2, 32)))));
      ASSERT_TRUE(Ok((*ds)->Close()));
    }
    ASSERT_TRUE(Ok(Dataset::Remove(url)));
    EXPECT_TRUE(HasCode(Dataset::Open(url), StatusCode::kNotFound));
    auto left = store->List("");
    ASSERT_TRUE(Ok(left));
    EXPECT_TRUE(left->empty()) << left->front();
    // The place can take a new dataset without overwrite.
    EXPECT_TRUE(Ok(Dataset::Create(url)));
  }
}

TEST(SchemaTest, ClassLabelsMustNameAClass) {
  auto ds = Dataset::Create(FreshMemUrl());
  ASSERT_TRUE(Ok(ds));
  auto u8 = (*ds)->CreateTensor({.name = "u8",
                                 .htype = HType::kClassLabel,
                                 .dtype = DType::kUInt8,
                                 .class_names = {"cat", "dog", "eel"}});
  ASSERT_TRUE(Ok(u8));
  auto bytes = [](std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int x : v) out.push_back(static_cast<std::byte>(x));
    return out;
  };
  EXPECT_TRUE(Ok((*u8)->Append(Shape{}, Span(bytes({2})))));
  EXPECT_TRUE(HasCode((*u8)->Append(Shape{}, Span(bytes({3}))),
                      StatusCode::kInvalidArgument));
  EXPECT_TRUE(HasCode((*u8)->Append(Shape{3}, Span(bytes({0, 1, 255}))),
                      StatusCode::kInvalidArgument));
  // One bad label in a batch refuses the whole batch.
  EXPECT_TRUE(HasCode((*u8)->AppendBatch(Shape{}, 4, Span(bytes({0, 1, 2, 3}))),
                      StatusCode::kInvalidArgument));
  EXPECT_EQ((*u8)->size(), 1u);

  auto i32 = (*ds)->CreateTensor({.name = "i32",
                                  .htype = HType::kClassLabel,
                                  .dtype = DType::kInt32,
                                  .class_names = {"a", "b"}});
  ASSERT_TRUE(Ok(i32));
  const int32_t minus_one = -1, one = 1, two = 2;
  auto as_bytes = [](const int32_t& v) {
    return ByteSpan(reinterpret_cast<const std::byte*>(&v), 4);
  };
  EXPECT_TRUE(Ok((*i32)->Append(Shape{}, as_bytes(one))));
  EXPECT_TRUE(HasCode((*i32)->Append(Shape{}, as_bytes(minus_one)),
                      StatusCode::kInvalidArgument));
  EXPECT_TRUE(HasCode((*i32)->Append(Shape{}, as_bytes(two)),
                      StatusCode::kInvalidArgument));
  EXPECT_EQ((*i32)->size(), 1u);

  EXPECT_TRUE(HasCode(
      (*ds)->CreateTensor(
          {.name = "f", .htype = HType::kClassLabel, .dtype = DType::kFloat32}),
      StatusCode::kInvalidArgument));
  EXPECT_TRUE(
      HasCode((*ds)->CreateTensor(
                  {.name = "g", .dtype = DType::kUInt8, .class_names = {"x"}}),
              StatusCode::kInvalidArgument));
  // Without names any value goes.
  auto free =
      (*ds)->CreateTensor({.name = "free", .htype = HType::kClassLabel});
  ASSERT_TRUE(Ok(free));
  const uint32_t big = 1u << 31;
  EXPECT_TRUE(Ok((*free)->Append(
      Shape{}, ByteSpan(reinterpret_cast<const std::byte*>(&big), 4))));
}

TEST(SchemaTest, ImagesAreRank3With1To4Channels) {
  auto ds = Dataset::Create(FreshMemUrl());
  ASSERT_TRUE(Ok(ds));
  EXPECT_TRUE(HasCode(
      (*ds)->CreateTensor({.name = "r2", .htype = HType::kImage, .rank = 2}),
      StatusCode::kInvalidArgument));
  EXPECT_TRUE(HasCode(
      (*ds)->CreateTensor(
          {.name = "f", .htype = HType::kImage, .dtype = DType::kFloat32}),
      StatusCode::kInvalidArgument));
  auto img = (*ds)->CreateTensor({.name = "img", .htype = HType::kImage});
  ASSERT_TRUE(Ok(img));
  EXPECT_EQ((*img)->spec().rank, 3);
  EXPECT_EQ((*img)->dtype(), DType::kUInt8);
  for (uint64_t c = 0; c <= 5; ++c) {
    const Shape s{4, 3, c};
    const Status status = (*img)->Append(s, Span(SampleBytes(1, c, 12 * c)));
    if (c >= 1 && c <= 4) {
      EXPECT_TRUE(Ok(status)) << c << " channels";
    } else {
      EXPECT_TRUE(HasCode(status, StatusCode::kInvalidArgument))
          << c << " channels";
    }
  }
  EXPECT_TRUE(HasCode((*img)->Append(Shape{4, 3}, Span(SampleBytes(1, 1, 12))),
                      StatusCode::kInvalidArgument));
  EXPECT_EQ((*img)->size(), 4u);
  auto img16 = (*ds)->CreateTensor(
      {.name = "img16", .htype = HType::kImage, .dtype = DType::kUInt16});
  EXPECT_TRUE(Ok(img16));
}

TEST(SchemaTest, SampleInfoRoundTripAndValidation) {
  const std::string url = FreshMemUrl();
  const std::string infos[] = {"{\"file\": \"a.png\", \"n\": 1}", "", "{}",
                               "{\"nested\": {\"x\": [1, 2, 3]}}"};
  {
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(Ok(ds));
    auto t = (*ds)->CreateTensor({.name = "x", .dtype = DType::kUInt8});
    ASSERT_TRUE(Ok(t));
    for (size_t i = 0; i < std::size(infos); ++i) {
      ASSERT_TRUE(
          Ok((*t)->Append(Shape{2}, Span(SampleBytes(1, i, 2)), infos[i])));
    }
    for (const char* bad :
         {"{", "[1, 2]", "42", "\"s\"", "{\"a\": }", "null"}) {
      EXPECT_TRUE(
          HasCode((*t)->Append(Shape{2}, Span(SampleBytes(1, 9, 2)), bad),
                  StatusCode::kInvalidArgument))
          << bad;
    }
    EXPECT_EQ((*t)->size(), std::size(infos));
    auto info = (*ds)->tensor("_info/x");
    ASSERT_TRUE(Ok(info));
    EXPECT_EQ((*info)->size(), std::size(infos));
    auto shapes = (*ds)->tensor("_shape/x");
    ASSERT_TRUE(Ok(shapes));
    EXPECT_EQ((*shapes)->size(), std::size(infos));
    // Hidden tensors are written only by their parent.
    EXPECT_TRUE(HasCode((*info)->Append(Shape{2}, Span(SampleBytes(1, 1, 2))),
                        StatusCode::kInvalidArgument));
  }
  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  auto t = (*ds)->tensor("x");
  ASSERT_TRUE(Ok(t));
  for (size_t i = 0; i < std::size(infos); ++i) {
    auto info = (*t)->ReadInfo(i);
    ASSERT_TRUE(Ok(info));
    EXPECT_EQ(*info, infos[i]);
  }
  // The hidden shape tensor holds the dims as uint32.
  auto shapes = (*ds)->tensor("_shape/x");
  ASSERT_TRUE(Ok(shapes));
  auto dims = (*shapes)->Read(0);
  ASSERT_TRUE(Ok(dims));
  EXPECT_EQ(dims->dtype, DType::kUInt32);
  EXPECT_EQ(dims->shape, Shape{1});
  uint32_t d0;
  std::memcpy(&d0, dims->data.data(), 4);
  EXPECT_EQ(d0, 2u);
}

TEST(SchemaTest, RowsNeedEveryVisibleTensorOnce) {
  auto ds = Dataset::Create(FreshMemUrl());
  ASSERT_TRUE(Ok(ds));
  auto a = (*ds)->CreateTensor({.name = "a", .dtype = DType::kUInt8});
  auto b =
      (*ds)->CreateTensor({.name = "b", .dtype = DType::kUInt16, .rank = 1});
  ASSERT_TRUE(Ok(a));
  ASSERT_TRUE(Ok(b));
  const auto a_bytes = SampleBytes(1, 0, 3);
  const auto b_bytes = SampleBytes(2, 0, 4);
  {
    const Dataset::RowValue row[] = {{"a", Shape{3}, Span(a_bytes)}};
    EXPECT_TRUE(HasCode((*ds)->Append(row), StatusCode::kInvalidArgument));
  }
  {
    const Dataset::RowValue row[] = {{"a", Shape{3}, Span(a_bytes)},
                                     {"a", Shape{3}, Span(a_bytes)}};
    EXPECT_TRUE(HasCode((*ds)->Append(row), StatusCode::kInvalidArgument));
  }
  {
    const Dataset::RowValue row[] = {{"a", Shape{3}, Span(a_bytes)},
                                     {"_shape/a", Shape{1}, Span(b_bytes)}};
    EXPECT_FALSE((*ds)->Append(row).ok());
  }
  {
    const Dataset::RowValue row[] = {{"a", Shape{3}, Span(a_bytes)},
                                     {"zzz", Shape{2}, Span(b_bytes)}};
    EXPECT_FALSE((*ds)->Append(row).ok());
  }
  {
    // The second value is invalid (wrong rank): nothing is appended.
    const Dataset::RowValue row[] = {{"a", Shape{3}, Span(a_bytes)},
                                     {"b", Shape{1, 2}, Span(b_bytes)}};
    EXPECT_TRUE(HasCode((*ds)->Append(row), StatusCode::kInvalidArgument));
  }
  {
    const Dataset::RowValue row[] = {{"a", Shape{3}, Span(a_bytes)},
                                     {"b", Shape{2}, Span(b_bytes), "{oops"}};
    EXPECT_TRUE(HasCode((*ds)->Append(row), StatusCode::kInvalidArgument));
  }
  EXPECT_EQ((*a)->size(), 0u);
  EXPECT_EQ((*b)->size(), 0u);
  const Dataset::RowValue row[] = {{"b", Shape{2}, Span(b_bytes), "{\"k\": 1}"},
                                   {"a", Shape{3}, Span(a_bytes)}};
  ASSERT_TRUE(Ok((*ds)->Append(row)));
  EXPECT_EQ((*ds)->len(), 1u);
  EXPECT_TRUE(SameSample((*a)->Read(0), DType::kUInt8, Shape{3}, a_bytes));
  EXPECT_TRUE(SameSample((*b)->Read(0), DType::kUInt16, Shape{2}, b_bytes));
  auto info = (*b)->ReadInfo(0);
  ASSERT_TRUE(Ok(info));
  EXPECT_EQ(*info, "{\"k\": 1}");
}

TEST(SchemaTest, ColumnsMustHaveEqualCounts) {
  auto ds = Dataset::Create(FreshMemUrl());
  ASSERT_TRUE(Ok(ds));
  auto a = (*ds)->CreateTensor({.name = "a", .dtype = DType::kUInt8});
  auto b = (*ds)->CreateTensor({.name = "b", .dtype = DType::kInt64});
  ASSERT_TRUE(Ok(a));
  ASSERT_TRUE(Ok(b));
  const auto a_bytes = SampleBytes(1, 0, 6);   // 3 samples of [2]
  const auto b_bytes = SampleBytes(2, 0, 48);  // 3 samples of [2] int64
  const auto b_short = SampleBytes(2, 0, 32);  // 2 samples
  {
    const Dataset::Column cols[] = {{"a", 3, Shape{2}, {}, Span(a_bytes)},
                                    {"b", 2, Shape{2}, {}, Span(b_short)}};
    EXPECT_TRUE(
        HasCode((*ds)->AppendColumns(cols), StatusCode::kInvalidArgument));
  }
  {
    const Dataset::Column cols[] = {{"a", 3, Shape{2}, {}, Span(a_bytes)}};
    EXPECT_TRUE(
        HasCode((*ds)->AppendColumns(cols), StatusCode::kInvalidArgument));
  }
  EXPECT_EQ((*a)->size(), 0u);
  EXPECT_EQ((*b)->size(), 0u);
  const Shape b_shapes[] = {Shape{1}, Shape{2}, Shape{3}};
  const Dataset::Column cols[] = {{"a", 3, Shape{2}, {}, Span(a_bytes)},
                                  {"b", 0, Shape{}, b_shapes, Span(b_bytes)}};
  ASSERT_TRUE(Ok((*ds)->AppendColumns(cols)));
  EXPECT_EQ((*ds)->len(), 3u);
  uint64_t offset = 0;
  for (uint64_t i = 0; i < 3; ++i) {
    const std::vector<std::byte> want(b_bytes.begin() + offset,
                                      b_bytes.begin() + offset + 8 * (i + 1));
    offset += 8 * (i + 1);
    EXPECT_TRUE(SameSample((*b)->Read(i), DType::kInt64, b_shapes[i], want))
        << i;
    const std::vector<std::byte> want_a(a_bytes.begin() + 2 * i,
                                        a_bytes.begin() + 2 * i + 2);
    EXPECT_TRUE(SameSample((*a)->Read(i), DType::kUInt8, Shape{2}, want_a))
        << i;
  }
}

// A column whose data does not match its shape must not leave the columns
// before it appended: the dataset would become ragged by accident.
TEST(SchemaTest, BadColumnAppendsNothing) {
  auto ds = Dataset::Create(FreshMemUrl());
  ASSERT_TRUE(Ok(ds));
  auto a = (*ds)->CreateTensor({.name = "a", .dtype = DType::kUInt8});
  auto b = (*ds)->CreateTensor({.name = "b", .dtype = DType::kInt64});
  ASSERT_TRUE(Ok(a));
  ASSERT_TRUE(Ok(b));
  const auto a_bytes = SampleBytes(1, 0, 6);
  const auto b_bad = SampleBytes(2, 0, 47);  // 3 samples of [2] need 48
  const Dataset::Column cols[] = {{"a", 3, Shape{2}, {}, Span(a_bytes)},
                                  {"b", 3, Shape{2}, {}, Span(b_bad)}};
  EXPECT_TRUE(
      HasCode((*ds)->AppendColumns(cols), StatusCode::kInvalidArgument));
  EXPECT_EQ((*a)->size(), 0u);
  EXPECT_EQ((*b)->size(), 0u);
}

// A batch of shapes with one invalid shape must not append the samples
// before it.
TEST(SchemaTest, BadShapeInBatchAppendsNothing) {
  auto ds = Dataset::Create(FreshMemUrl());
  ASSERT_TRUE(Ok(ds));
  auto img = (*ds)->CreateTensor({.name = "img", .htype = HType::kImage});
  ASSERT_TRUE(Ok(img));
  const Shape shapes[] = {Shape{2, 2, 3}, Shape{2, 2, 5}};  // 5 channels
  const auto bytes = SampleBytes(1, 0, 12 + 20);
  EXPECT_TRUE(HasCode((*img)->AppendBatch(shapes, Span(bytes)),
                      StatusCode::kInvalidArgument));
  EXPECT_EQ((*img)->size(), 0u);
}

TEST(SchemaTest, AppendChecksSizesAndRank) {
  auto ds = Dataset::Create(FreshMemUrl());
  ASSERT_TRUE(Ok(ds));
  auto t = (*ds)->CreateTensor({.name = "t", .dtype = DType::kFloat32});
  ASSERT_TRUE(Ok(t));
  EXPECT_EQ((*t)->spec().rank, -1);
  EXPECT_TRUE(HasCode((*t)->Append(Shape{3}, Span(SampleBytes(1, 0, 11))),
                      StatusCode::kInvalidArgument));
  ASSERT_TRUE(Ok((*t)->Append(Shape{3}, Span(SampleBytes(1, 0, 12)))));
  EXPECT_EQ((*t)->spec().rank, 1);
  EXPECT_TRUE(HasCode((*t)->Append(Shape{1, 3}, Span(SampleBytes(1, 0, 12))),
                      StatusCode::kInvalidArgument));
  EXPECT_TRUE(
      HasCode((*t)->AppendBatch(Shape{3}, 2, Span(SampleBytes(1, 0, 23))),
              StatusCode::kInvalidArgument));
  const Shape shapes[] = {Shape{1}, Shape{2}};
  EXPECT_TRUE(HasCode((*t)->AppendBatch(shapes, Span(SampleBytes(1, 0, 16))),
                      StatusCode::kInvalidArgument));
  EXPECT_TRUE(HasCode((*t)->AppendBatch(shapes, Span(SampleBytes(1, 0, 8))),
                      StatusCode::kInvalidArgument));
  EXPECT_EQ((*t)->size(), 1u);
  EXPECT_TRUE(HasCode((*ds)->CreateTensor({.name = "nodtype"}),
                      StatusCode::kInvalidArgument));
  EXPECT_TRUE(HasCode((*ds)->CreateTensor({.name = "both",
                                           .dtype = DType::kUInt8,
                                           .sample_compression = "lz4",
                                           .chunk_compression = "lz4"}),
                      StatusCode::kInvalidArgument));
  EXPECT_TRUE(HasCode((*ds)->CreateTensor({.name = "codec",
                                           .dtype = DType::kUInt8,
                                           .chunk_compression = "lzma"}),
                      StatusCode::kInvalidArgument));
  EXPECT_TRUE(HasCode(
      (*ds)->CreateTensor(
          {.name = "small", .dtype = DType::kUInt8, .block_bytes = 1024}),
      StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace shoal
