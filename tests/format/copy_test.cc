// CopyDataset (loader/copy.h, format/copy.h): mem:// -> file:// -> mem:// gives
// the same samples and a dataset that verifies; a copy that failed part-way
// opens nowhere and a second run completes it, keeping what was there; a
// damaged chunk fails the copy naming it; a different dataset at the
// destination is not overwritten.
#include "loader/copy.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "format/dataset.h"
#include "format/verify.h"
#include "tests/format/format_test_util.h"

namespace shoal {
namespace {

using format_test::TempDir;

// 300 rows: labels (uint32 scalars, raw) and images (uint8 [32, 32 + i % 5],
// lz4 chunks of 4 KiB, so there are many chunks).
void MakeSource(const std::string& url) {
  auto ds = Dataset::Create(url, {.overwrite = true});
  ASSERT_TRUE(ds.ok()) << ds.status();
  auto images = (*ds)->CreateTensor({.name = "images",
                                     .dtype = DType::kUInt8,
                                     .chunk_compression = "lz4",
                                     .max_chunk_bytes = 4096});
  auto labels = (*ds)->CreateTensor(
      {.name = "labels", .dtype = DType::kUInt32, .max_chunk_bytes = 4096});
  ASSERT_TRUE(images.ok() && labels.ok());
  for (uint32_t i = 0; i < 300; ++i) {
    std::vector<uint8_t> px(32 * (32 + i % 5));
    for (size_t k = 0; k < px.size(); ++k) px[k] = static_cast<uint8_t>(k * i);
    ASSERT_TRUE(
        (*images)
            ->Append(Shape{32, 32 + i % 5}, std::as_bytes(std::span(px)))
            .ok());
    ASSERT_TRUE(
        (*labels)->Append(Shape{}, std::as_bytes(std::span(&i, 1))).ok());
  }
  ASSERT_TRUE((*ds)->Close().ok());
}

void ExpectSameSamples(const std::string& a, const std::string& b) {
  auto x = Dataset::Open(a, {.read_only = true});
  auto y = Dataset::Open(b, {.read_only = true});
  ASSERT_TRUE(x.ok()) << x.status();
  ASSERT_TRUE(y.ok()) << y.status();
  for (const char* name : {"images", "labels"}) {
    auto tx = (*x)->tensor(name);
    auto ty = (*y)->tensor(name);
    ASSERT_TRUE(tx.ok() && ty.ok());
    ASSERT_EQ((*tx)->size(), (*ty)->size());
    for (uint64_t i = 0; i < (*tx)->size(); ++i) {
      auto sx = (*tx)->Read(i);
      auto sy = (*ty)->Read(i);
      ASSERT_TRUE(sx.ok() && sy.ok());
      ASSERT_EQ(sx->data.view(), sy->data.view()) << name << " " << i;
    }
  }
}

TEST(CopyTest, MemToFileToMemKeepsEverySample) {
  TempDir dir;
  MakeSource("mem://copy-src");
  auto first = CopyDataset("mem://copy-src", dir.url("copy"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_GT(first->objects, 20u);  // many chunks
  EXPECT_EQ(first->copied, first->objects);
  auto back = CopyDataset(dir.url("copy"), "mem://copy-back");
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameSamples("mem://copy-src", dir.url("copy"));
  ExpectSameSamples("mem://copy-src", "mem://copy-back");
  auto verified = VerifyDataset(dir.url("copy"));
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_TRUE(verified->ok());
  // Copying again onto the finished copy changes nothing.
  auto again = CopyDataset("mem://copy-src", dir.url("copy"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->copied, 0u);
  EXPECT_EQ(again->kept, again->objects);
}

// A byte budget smaller than any chunk: objects go one at a time, the copy
// is still whole, and progress reports every object once, in order.
TEST(CopyTest, ATinyBudgetStillCopiesEverything) {
  MakeSource("mem://copy-tiny-src");
  std::vector<uint64_t> done;
  CopyOptions options{.threads = 3, .memory_budget = 1};
  options.progress = [&](const CopyProgress& p) {
    done.push_back(p.objects_done);
  };
  auto copied =
      CopyDataset("mem://copy-tiny-src", "mem://copy-tiny-dst", options);
  ASSERT_TRUE(copied.ok()) << copied.status();
  ExpectSameSamples("mem://copy-tiny-src", "mem://copy-tiny-dst");
  ASSERT_EQ(done.size(), copied->objects);
  for (size_t i = 0; i < done.size(); ++i) EXPECT_EQ(done[i], i + 1);
}

// A destination whose writes fail after the first `budget`.
class FailingStore : public ForwardingStore {
 public:
  FailingStore(std::shared_ptr<Store> inner, int budget)
      : ForwardingStore(std::move(inner)), budget_(budget) {}
  Status Write(std::string_view key, ByteSpan data) override {
    if (budget_-- <= 0) return IOError("injected: disk full");
    return ForwardingStore::Write(key, data);
  }

 private:
  std::atomic<int> budget_;
};

TEST(CopyTest, AFailedCopyOpensNowhereAndASecondRunCompletesIt) {
  TempDir dir;
  MakeSource("mem://copy-resume");
  auto src = OpenStore("mem://copy-resume");
  auto dst = OpenStore(dir.url("resumed"));
  ASSERT_TRUE(src.ok() && dst.ok());
  FailingStore failing(*dst, 10);
  auto failed = CopyDataset(**src, failing, {.threads = 2});
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("disk full"), std::string::npos);
  EXPECT_FALSE(*(*dst)->Exists("HEAD"));
  EXPECT_FALSE(Dataset::Open(dir.url("resumed"), {.read_only = true}).ok());
  auto resumed = CopyDataset("mem://copy-resume", dir.url("resumed"));
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_GE(resumed->kept, 10u);
  EXPECT_EQ(resumed->kept + resumed->copied, resumed->objects);
  ExpectSameSamples("mem://copy-resume", dir.url("resumed"));
}

TEST(CopyTest, ADamagedChunkFailsTheCopyNamingIt) {
  TempDir dir;
  MakeSource(dir.url("damaged"));
  auto src = OpenStore(dir.url("damaged"));
  ASSERT_TRUE(src.ok());
  auto keys = (*src)->List("chunks/");
  ASSERT_TRUE(keys.ok() && !keys->empty());
  const std::string victim = keys->back();
  {
    const std::string path = dir.path() + "/damaged/" + victim;
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x5a');
  }
  auto copied = CopyDataset(dir.url("damaged"), dir.url("out"));
  ASSERT_FALSE(copied.ok());
  EXPECT_EQ(copied.status().code(), StatusCode::kCorruption) << copied.status();
  EXPECT_NE(copied.status().message().find(victim), std::string::npos)
      << copied.status();
  auto out = OpenStore(dir.url("out"));
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE(*(*out)->Exists("HEAD"));
}

TEST(CopyTest, AnotherDatasetAtTheDestinationIsNotOverwritten) {
  MakeSource("mem://copy-a");
  MakeSource("mem://copy-b");  // a different dataset: other random ids
  auto copied = CopyDataset("mem://copy-a", "mem://copy-b");
  ASSERT_FALSE(copied.ok());
  EXPECT_EQ(copied.status().code(), StatusCode::kAlreadyExists);
  auto missing = CopyDataset("mem://copy-none", "mem://copy-c");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

// A dataset inside another's folder would be that one's garbage (verify
// --repair deletes unreferenced objects): copies and creations there are
// refused, a sibling folder is fine.
TEST(CopyTest, NoDatasetInsideAnothersFolder) {
  TempDir dir;
  MakeSource("mem://copy-inside-src");
  ASSERT_TRUE(CopyDataset("mem://copy-inside-src", dir.url("outer")).ok());
  auto copied = CopyDataset("mem://copy-inside-src", dir.url("outer/inner"));
  EXPECT_EQ(copied.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(copied.status().message().find("inside the dataset at"),
            std::string::npos)
      << copied.status();
  auto deeper = Dataset::Create(dir.url("outer/a/b"));
  EXPECT_EQ(deeper.status().code(), StatusCode::kFailedPrecondition);
  // Nothing was written inside.
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/outer/inner/HEAD"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/outer/a"));
  EXPECT_TRUE(VerifyDataset(dir.url("outer")).ok());
  EXPECT_TRUE(Dataset::Create(dir.url("sibling")).ok());
}

}  // namespace
}  // namespace shoal
