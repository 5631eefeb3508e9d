// Pins the on-disk format (format/FORMAT.md) with golden files.
//
// A fixed recipe (seeded chunk ids, fixed sample values) builds a small
// dataset covering every object kind: raw, block-compressed (+shuffle) and
// sample-compressed chunks, a tiled sample, ragged tensors, sample info and a
// second commit that rewrites a tail chunk. The test checks that
//  1. the recipe produces exactly the committed golden objects, byte for
//     byte (so any format change is deliberate), and
//  2. the committed golden dataset opens and reads back the recipe's values
//     (so datasets written by this version stay readable).
// SHOAL_UPDATE_GOLDEN=1 rewrites tests/data/golden/v2 (the current version)
// from the recipe; tests/data/golden/v1 (written by format version 1) must
// keep opening and reading back.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "format/dataset.h"
#include "format/internal/mem_store.h"
#include "format/verify.h"

namespace shoal {
namespace {

// The current version's golden set, which the recipe must reproduce, and
// those of earlier versions, which must still open and read back.
const std::string kGoldenDir = std::string(SHOAL_TEST_DATA) + "/golden/v2";
const std::string kGoldenV1Dir = std::string(SHOAL_TEST_DATA) + "/golden/v1";

std::vector<uint8_t> Bytes(int i, size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t k = 0; k < n; ++k)
    v[k] = static_cast<uint8_t>(i * 31 + k * 7 + (k >> 5));
  return v;
}
std::vector<float> Floats(int i, size_t n) {
  std::vector<float> v(n);
  for (size_t k = 0; k < n; ++k)
    v[k] = 0.25f * i + 0.5f * static_cast<float>(k);
  return v;
}
std::vector<int16_t> Shorts(int i, size_t n) {
  std::vector<int16_t> v(n);
  for (size_t k = 0; k < n; ++k)
    v[k] = static_cast<int16_t>(1000 * i - 3 * static_cast<int>(k));
  return v;
}
template <typename T>
ByteSpan AsSpan(const std::vector<T>& v) {
  return std::as_bytes(std::span(v));
}

// The recipe. Writes into `url`.
void BuildGolden(const std::string& url) {
  auto ds = Dataset::Create(url, {.id_seed = 20261121});
  ASSERT_TRUE(ds.ok()) << ds.status();
  auto images = (*ds)->CreateTensor({.name = "images",
                                     .htype = HType::kImage,
                                     .max_chunk_bytes = 4096,
                                     .block_bytes = 4096});
  auto labels = (*ds)->CreateTensor({.name = "labels",
                                     .htype = HType::kClassLabel,
                                     .class_names = {"cat", "dog", "fish"}});
  auto feats = (*ds)->CreateTensor({.name = "group/features",
                                    .dtype = DType::kFloat32,
                                    .chunk_compression = "lz4+shuffle",
                                    .block_bytes = 4096});
  auto ragged = (*ds)->CreateTensor({.name = "ragged",
                                     .dtype = DType::kInt16,
                                     .sample_compression = "zstd:5"});
  ASSERT_TRUE(images.ok() && labels.ok() && feats.ok() && ragged.ok());
  for (int i = 0; i < 12; ++i) {
    const auto img = Bytes(i, 8 * 10 * 3);
    const uint32_t label = i % 3;
    const auto f = Floats(i, 64);
    const std::string info =
        "{\"source\":\"img" + std::to_string(i) + ".png\"}";
    const auto shorts = Shorts(i, (i % 4) * 3);
    const Dataset::RowValue row[] = {
        {"images", Shape{8, 10, 3}, AsSpan(img), info},
        {"labels", Shape{}, std::as_bytes(std::span(&label, 1))},
        {"group/features", Shape{64}, AsSpan(f)},
        {"ragged", Shape{static_cast<uint64_t>(i % 4), 3}, AsSpan(shorts)},
    };
    ASSERT_TRUE((*ds)->Append(row).ok());
  }
  ASSERT_TRUE((*ds)->Flush().ok());
  // Second commit: more samples (the tail chunk of labels is rewritten), a
  // tiled sample, and a ragged tail.
  for (int i = 12; i < 15; ++i) {
    const uint32_t label = i % 3;
    ASSERT_TRUE(
        (*labels)->Append(Shape{}, std::as_bytes(std::span(&label, 1))).ok());
  }
  auto big = (*ds)->CreateTensor({.name = "big",
                                  .dtype = DType::kUInt16,
                                  .chunk_compression = "zstd:1",
                                  .block_bytes = 4096,
                                  .tiling_threshold = 4096});
  ASSERT_TRUE(big.ok());
  std::vector<uint16_t> b(40 * 30 * 2);
  for (size_t k = 0; k < b.size(); ++k) b[k] = static_cast<uint16_t>(k * 3);
  ASSERT_TRUE(
      (*big)->Append(Shape{40, 30, 2}, AsSpan(b), "{\"kind\":\"tiled\"}").ok());
  ASSERT_TRUE((*ds)->Close().ok());
}

// Checks the recipe's values in the dataset at `url`.
void CheckGolden(const std::string& url) {
  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->commit(), 2u);
  EXPECT_EQ((*ds)->len(), 1u);
  EXPECT_EQ((*ds)->max_len(), 15u);
  auto images = (*ds)->tensor("images");
  auto labels = (*ds)->tensor("labels");
  auto feats = (*ds)->tensor("group/features");
  auto ragged = (*ds)->tensor("ragged");
  auto big = (*ds)->tensor("big");
  ASSERT_TRUE(images.ok() && labels.ok() && feats.ok() && ragged.ok() &&
              big.ok());
  EXPECT_EQ((*labels)->spec().class_names,
            (std::vector<std::string>{"cat", "dog", "fish"}));
  for (int i = 0; i < 12; ++i) {
    auto img = (*images)->Read(i);
    ASSERT_TRUE(img.ok()) << img.status();
    EXPECT_EQ(img->shape, (Shape{8, 10, 3}));
    const auto want = Bytes(i, 240);
    EXPECT_EQ(std::memcmp(img->data.data(), want.data(), 240), 0) << i;
    EXPECT_EQ(*(*images)->ReadInfo(i),
              "{\"source\":\"img" + std::to_string(i) + ".png\"}");
    auto f = (*feats)->Read(i);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(std::memcmp(f->data.data(), Floats(i, 64).data(), 256), 0) << i;
    auto r = (*ragged)->Read(i);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->shape, (Shape{static_cast<uint64_t>(i % 4), 3}));
    const auto s = Shorts(i, (i % 4) * 3);
    EXPECT_EQ(r->data.size(), s.size() * 2);
    if (!s.empty()) {
      EXPECT_EQ(std::memcmp(r->data.data(), s.data(), s.size() * 2), 0);
    }
  }
  for (int i = 0; i < 15; ++i) {
    auto l = (*labels)->Read(i);
    ASSERT_TRUE(l.ok());
    uint32_t v;
    std::memcpy(&v, l->data.data(), 4);
    EXPECT_EQ(v, static_cast<uint32_t>(i % 3));
  }
  auto b = (*big)->Read(0);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->shape, (Shape{40, 30, 2}));
  for (size_t k = 0; k < 2400; ++k) {
    uint16_t v;
    std::memcpy(&v, b->data.data() + 2 * k, 2);
    ASSERT_EQ(v, static_cast<uint16_t>(k * 3)) << k;
  }
  EXPECT_GT((*big)->stats().num_chunks, 1u) << "the big sample must be tiled";
}

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(GoldenTest, RecipeProducesTheGoldenBytes) {
  ResetMemStoreForTesting("golden");
  BuildGolden("mem://golden");
  auto store = OpenStore("mem://golden");
  ASSERT_TRUE(store.ok());
  auto keys = (*store)->List("");
  ASSERT_TRUE(keys.ok());
  if (std::getenv("SHOAL_UPDATE_GOLDEN") != nullptr) {
    std::filesystem::remove_all(kGoldenDir);
    for (const auto& key : *keys) {
      const auto path = std::filesystem::path(kGoldenDir) / key;
      std::filesystem::create_directories(path.parent_path());
      std::ofstream(path, std::ios::binary) << (*store)->Read(key)->view();
    }
    GTEST_FAIL() << "golden files rewritten in " << kGoldenDir
                 << "; rerun without SHOAL_UPDATE_GOLDEN";
  }
  std::vector<std::string> golden_keys;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(kGoldenDir)) {
    if (entry.is_regular_file()) {
      golden_keys.push_back(
          std::filesystem::relative(entry.path(), kGoldenDir).string());
    }
  }
  std::sort(golden_keys.begin(), golden_keys.end());
  ASSERT_EQ(*keys, golden_keys)
      << "the recipe writes other objects than the golden set";
  for (const auto& key : *keys) {
    EXPECT_EQ((*store)->Read(key)->view(),
              ReadFile(std::filesystem::path(kGoldenDir) / key))
        << "object " << key
        << " differs from its golden file (a format change?)";
  }
}

TEST(GoldenTest, RecipeReadsBack) {
  ResetMemStoreForTesting("golden-read");
  BuildGolden("mem://golden-read");
  CheckGolden("mem://golden-read");
}

class GoldenVersionTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenVersionTest, GoldenDatasetOpensAndVerifies) {
  // Copy, since opening a file:// store may create its directory and a test
  // must not write into the source tree.
  const auto dir = std::filesystem::temp_directory_path() /
                   ("shoal-golden-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::copy(GetParam(), dir,
                        std::filesystem::copy_options::recursive);
  CheckGolden(dir.string());
  auto report = VerifyDataset(dir.string(), {.decode_samples = true});
  ASSERT_TRUE(report.ok());
  for (const auto& p : report->problems) ADD_FAILURE() << p.ToString();
  EXPECT_GT(report->chunks, 5u);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Versions, GoldenVersionTest, ::testing::Values(kGoldenV1Dir, kGoldenDir),
    [](const auto& info) {
      return std::filesystem::path(info.param).filename().string();
    });

}  // namespace
}  // namespace shoal
