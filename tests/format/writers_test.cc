// Several writers on one dataset (format/FORMAT.md, "Commits" and "Several
// writers"): commits are created only if absent, a writer that loses a race
// merges its segment into the winner's commit, readers see the segments in
// rank order and only whole commits. Checked on mem:// and on file://, where
// the race is decided by the kernel (renameat2 RENAME_NOREPLACE / link).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "fault_store.h"
#include "format/dataset.h"
#include "format/internal/commit_log.h"
#include "format/internal/metadata.h"
#include "format/verify.h"
#include "format_test_util.h"
#include "loader/copy.h"

namespace shoal {
namespace {

using format_test::HasCode;
using format_test::Ok;

// Writer `w` of a job: creates the dataset or joins it, with tensor "x".
std::unique_ptr<Dataset> Writer(const std::string& url, uint32_t w) {
  auto ds = Dataset::Create(url, {.id_seed = 7, .writer = w, .join = true});
  EXPECT_TRUE(Ok(ds));
  if (!ds.ok()) return nullptr;
  if (!(*ds)->tensor("x").ok()) {
    EXPECT_TRUE(
        Ok((*ds)->CreateTensor({.name = "x", .dtype = DType::kUInt32})));
  }
  return std::move(*ds);
}

Status AppendValues(Dataset& ds, uint32_t first, uint32_t n) {
  SHOAL_ASSIGN_OR_RETURN(Tensor * t, ds.tensor("x"));
  for (uint32_t v = first; v < first + n; ++v) {
    SHOAL_RETURN_IF_ERROR(t->Append(
        Shape{1}, ByteSpan(reinterpret_cast<const std::byte*>(&v), sizeof(v))));
  }
  return Status::OK();
}

// The values a reader sees, in order. A writer deletes what its commit
// replaced (the previous copy of a chunk it keeps filling) as soon as the
// commit is in, so a reader of an older commit may find such a chunk gone:
// it opens the dataset again, as a reader of a dataset being written must.
std::vector<uint32_t> Values(const std::string& url) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::vector<uint32_t> out;
    auto ds = Dataset::Open(url, {.read_only = true});
    EXPECT_TRUE(Ok(ds));
    if (!ds.ok()) return out;
    auto t = (*ds)->tensor("x");
    if (!t.ok()) return out;
    Status failed;
    for (uint64_t i = 0; i < (*t)->size() && failed.ok(); ++i) {
      auto s = (*t)->Read(i);
      if (!s.ok()) {
        failed = s.status();
        break;
      }
      uint32_t v = 0;
      std::memcpy(&v, s->data.data(), sizeof(v));
      out.push_back(v);
    }
    if (failed.ok()) return out;
    if (failed.code() != StatusCode::kNotFound) {
      ADD_FAILURE() << failed;
      return out;
    }
  }
  ADD_FAILURE() << "chunks kept vanishing under the reader";
  return {};
}

std::vector<uint32_t> Range(uint32_t first, uint32_t n) {
  std::vector<uint32_t> out;
  for (uint32_t v = first; v < first + n; ++v) out.push_back(v);
  return out;
}

class WritersTest : public ::testing::TestWithParam<bool> {
 protected:
  std::string Url() {
    return GetParam() ? dir_.url("ds") : format_test::FreshMemUrl();
  }
  format_test::TempDir dir_;
};

TEST_P(WritersTest, SegmentsReadInRankOrderWhoeverCommitsFirst) {
  const std::string url = Url();
  auto w0 = Writer(url, 0);
  auto w1 = Writer(url, 1);
  ASSERT_TRUE(w0 && w1);
  // Writer 1 commits first; writer 0's basis is then stale, so its commit
  // loses the race for the number and merges into writer 1's.
  ASSERT_TRUE(Ok(AppendValues(*w1, 100, 10)));
  ASSERT_TRUE(Ok(w1->Flush()));
  ASSERT_TRUE(Ok(AppendValues(*w0, 0, 10)));
  ASSERT_TRUE(Ok(w0->Flush()));
  std::vector<uint32_t> want = Range(0, 10);
  for (uint32_t v : Range(100, 10)) want.push_back(v);
  EXPECT_EQ(Values(url), want);
  // More from writer 1 goes to the end of its segment, after writer 0's.
  ASSERT_TRUE(Ok(AppendValues(*w1, 110, 5)));
  ASSERT_TRUE(Ok(w1->Close()));
  ASSERT_TRUE(Ok(w0->Close()));
  for (uint32_t v : Range(110, 5)) want.push_back(v);
  EXPECT_EQ(Values(url), want);

  auto reader = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(reader));
  EXPECT_EQ((*reader)->writers(), (std::vector<uint32_t>{0, 1}));
  // A writer's own view is its segment.
  auto own = Dataset::Open(url, {.read_only = true, .writer = 1});
  ASSERT_TRUE(Ok(own));
  EXPECT_EQ((*own)->len(), 15u);
  // Clean, and copied whole.
  auto report = VerifyDataset(url, {.decode_samples = true});
  ASSERT_TRUE(Ok(report));
  EXPECT_TRUE(report->ok()) << report->problems[0].ToString();
  const std::string copy = format_test::FreshMemUrl("copy");
  ASSERT_TRUE(Ok(CopyDataset(url, copy)));
  EXPECT_EQ(Values(copy), want);
}

TEST_P(WritersTest, RacingWritersNeverLoseACommit) {
  const std::string url = Url();
  constexpr uint32_t kWriters = 4, kRounds = 15, kRows = 3;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (uint32_t w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      auto ds = Writer(url, w);
      if (!ds) {
        ++failures;
        return;
      }
      for (uint32_t r = 0; r < kRounds; ++r) {
        Status s = AppendValues(*ds, w * 1000 + r * kRows, kRows);
        if (s.ok()) s = ds->Flush();
        if (!s.ok()) {
          ADD_FAILURE() << "writer " << w << ": " << s;
          ++failures;
          return;
        }
      }
      if (!ds->Close().ok()) ++failures;
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  std::vector<uint32_t> want;
  for (uint32_t w = 0; w < kWriters; ++w) {
    for (uint32_t v : Range(w * 1000, kRounds * kRows)) want.push_back(v);
  }
  EXPECT_EQ(Values(url), want);
  // Every commit number was taken exactly once: commit objects 0..n, no
  // gaps, one per Flush that changed something plus the creation and the
  // tensors' (the writers that created "x" before it was committed).
  auto store = OpenStore(url);
  ASSERT_TRUE(Ok(store));
  auto head = internal::LatestHead(**store);
  ASSERT_TRUE(Ok(head));
  auto commits = (*store)->List("commits/");
  ASSERT_TRUE(Ok(commits));
  ASSERT_EQ(commits->size(), head->commit + 1);
  for (uint64_t n = 0; n <= head->commit; ++n) {
    EXPECT_EQ((*commits)[n], internal::CommitKey(n));
  }
  EXPECT_GE(head->commit, uint64_t{kWriters * kRounds});
  auto report = VerifyDataset(url);
  ASSERT_TRUE(Ok(report));
  EXPECT_TRUE(report->ok()) << report->problems[0].ToString();
}

TEST_P(WritersTest, ReadersSeeOnlyWholeCommitsWhileWritersRace) {
  const std::string url = Url();
  { auto created = Writer(url, 0); }
  std::atomic<bool> done{false};
  std::vector<std::thread> writers;
  for (uint32_t w = 0; w < 2; ++w) {
    writers.emplace_back([&, w] {
      auto ds = Writer(url, w);
      for (uint32_t r = 0; ds && r < 20; ++r) {
        ASSERT_TRUE(Ok(AppendValues(*ds, w * 1000 + r * 2, 2)));
        ASSERT_TRUE(Ok(ds->Flush()));
      }
    });
  }
  std::thread closer([&] {
    for (std::thread& t : writers) t.join();
    done = true;
  });
  int opens = 0;
  while (!done) {
    // Each segment is a prefix of its writer's values: whole commits only.
    const std::vector<uint32_t> seen = Values(url);
    size_t k = 0;
    for (uint32_t w = 0; w < 2; ++w) {
      uint32_t expect = w * 1000;
      while (k < seen.size() && seen[k] / 1000 == w) {
        ASSERT_EQ(seen[k], expect) << "open " << opens;
        ++expect;
        ++k;
      }
      ASSERT_EQ((expect - w * 1000) % 2, 0u) << "half a commit";
    }
    ASSERT_EQ(k, seen.size());
    ++opens;
  }
  closer.join();
  EXPECT_GT(opens, 0);
  EXPECT_EQ(Values(url).size(), 80u);
}

TEST_P(WritersTest, JoiningCreatorsMakeOneDataset) {
  const std::string url = Url();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (uint32_t w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      auto ds = Dataset::Create(url, {.writer = w, .join = true});
      if (ds.ok()) ++ok;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 4);
  auto store = OpenStore(url);
  ASSERT_TRUE(Ok(store));
  auto commits = (*store)->List("commits/");
  ASSERT_TRUE(Ok(commits));
  EXPECT_EQ(commits->size(), 1u) << "one commit 0";
  // Without join, a second creator is refused.
  EXPECT_TRUE(HasCode(Dataset::Create(url), StatusCode::kAlreadyExists));
}

TEST_P(WritersTest, AJoiningWriterSeesTheTensorsAndMustMatchThem) {
  const std::string url = Url();
  auto w0 = Writer(url, 0);
  ASSERT_TRUE(w0);
  ASSERT_TRUE(Ok(AppendValues(*w0, 0, 3)));
  ASSERT_TRUE(Ok(w0->Flush()));
  auto w1 = Dataset::Create(url, {.writer = 1, .join = true});
  ASSERT_TRUE(Ok(w1));
  // Writer 1 joins and sees writer 0's tensor "x", with none of its rows.
  auto x = (*w1)->tensor("x");
  ASSERT_TRUE(Ok(x));
  EXPECT_EQ((*w1)->len(), 0u) << "writer 1's segment is empty";
  ASSERT_TRUE(Ok(AppendValues(**w1, 50, 2)));
  ASSERT_TRUE(Ok((*w1)->Flush()));
  EXPECT_EQ(Values(url), (std::vector<uint32_t>{0, 1, 2, 50, 51}));
  // A writer that made another tensor under the same id is refused.
  internal::DatasetMeta mine;
  internal::TensorMeta tm;
  tm.id = 0;
  tm.spec = {.name = "x", .dtype = DType::kUInt8};
  mine.tensors.push_back(tm);
  internal::DatasetMeta theirs;
  internal::TensorMeta t0;
  t0.id = 0;
  t0.spec = {.name = "x", .dtype = DType::kUInt32};
  theirs.tensors.push_back(t0);
  auto merged = internal::MergeWriter(theirs, mine, 2);
  EXPECT_TRUE(HasCode(merged, StatusCode::kFailedPrecondition));
  EXPECT_NE(merged.status().message().find("writer 2's tensor 'x'"),
            std::string_view::npos)
      << merged.status();
}

INSTANTIATE_TEST_SUITE_P(Stores, WritersTest, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "file" : "mem";
                         });

// "metafail://NAME" forwards to mem://NAME; while `fail_meta` is set, writes
// of metadata objects fail as a full disk would.
std::atomic<bool> fail_meta{false};

class MetaFailStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Status Write(std::string_view key, ByteSpan data) override {
    if (fail_meta && key.starts_with("meta/")) {
      return IOError("injected: no space for " + std::string(key));
    }
    return ForwardingStore::Write(key, data);
  }
};

TEST(CommitLogTest, AFailedCommitIsMadeWholeByTheNextAndKeepsOtherWriters) {
  static const bool registered = StoreRegistry::Register(
      "metafail",
      [](std::string_view location,
         const StoreOptions& options) -> Result<std::shared_ptr<Store>> {
        SHOAL_ASSIGN_OR_RETURN(
            auto inner, OpenStore("mem://" + std::string(location), options));
        return std::shared_ptr<Store>(std::make_shared<MetaFailStore>(inner));
      });
  ASSERT_TRUE(registered);
  const std::string url = "metafail://" + format_test::FreshMemName();
  auto w0 = Writer(url, 0);
  auto w1 = Writer(url, 1);
  ASSERT_TRUE(w0 && w1);
  ASSERT_TRUE(Ok(AppendValues(*w0, 0, 3)));
  ASSERT_TRUE(Ok(w0->Flush()));
  ASSERT_TRUE(Ok(AppendValues(*w1, 100, 2)));
  ASSERT_TRUE(Ok(w1->Flush()));  // merges into writer 0's commit
  ASSERT_TRUE(Ok(AppendValues(*w1, 102, 2)));
  fail_meta = true;
  EXPECT_TRUE(HasCode(w1->Flush(), StatusCode::kIOError));
  fail_meta = false;
  // The next commit commits what the failed one held (rows 102 and 103
  // were no longer marked as changed), merged into everything there is.
  ASSERT_TRUE(Ok(w1->Flush()));
  EXPECT_EQ(Values(url), (std::vector<uint32_t>{0, 1, 2, 100, 101, 102, 103}));
}

// Two writers take turns to flush; for every k, write k (of either) fails
// with EIO or ENOSPC, is torn, or goes through and reports EIO. (A failed
// chunk write once lost the open chunk's samples: the retry failed with
// "chunk data has 0 bytes".) The other writer's commits are never broken:
// after every step every value committed so far reads back in rank order,
// and when the failed writer flushes again the dataset holds every value,
// as without the fault.
TEST(CommitLogTest, AWriterFailingAtAnyWriteNeverBreaksAnothersCommit) {
  using fault_store::Fault;
  using fault_store::Op;
  fault_store::Register();
  // The steps: (writer, first value, count), each then flushed.
  const struct Step {
    uint32_t writer, first, count;
  } steps[] = {{0, 0, 3}, {1, 100, 2}, {0, 3, 2}, {1, 102, 3}, {0, 5, 1}};
  auto expected_after = [&](size_t done) {
    std::vector<uint32_t> w0, w1;
    for (size_t i = 0; i < done; ++i) {
      auto& v = steps[i].writer == 0 ? w0 : w1;
      for (uint32_t x = 0; x < steps[i].count; ++x) {
        v.push_back(steps[i].first + x);
      }
    }
    w0.insert(w0.end(), w1.begin(), w1.end());
    return w0;
  };
  fault_store::Arm(Op::kWrite, Fault::kEio, 0);
  int64_t total = 0;
  {
    const std::string url = "faultmem://" + format_test::FreshMemName("mw");
    auto w0 = Writer(url, 0);
    auto w1 = Writer(url, 1);
    ASSERT_TRUE(w0 && w1);
    const int64_t setup = fault_store::Count(Op::kWrite);
    for (const Step& s : steps) {
      Dataset& w = s.writer == 0 ? *w0 : *w1;
      ASSERT_TRUE(Ok(AppendValues(w, s.first, s.count)));
      ASSERT_TRUE(Ok(w.Flush()));
    }
    total = fault_store::Count(Op::kWrite) - setup;
    EXPECT_EQ(Values(url), expected_after(std::size(steps)));
  }
  ASSERT_GT(total, 8);
  for (Fault fault :
       {Fault::kEio, Fault::kEnospc, Fault::kTornWrite, Fault::kLostAnswer}) {
    for (int64_t k = 1; k <= total; ++k) {
      SCOPED_TRACE(std::string(fault_store::FaultName(fault)) + " at write " +
                   std::to_string(k) + " of " + std::to_string(total));
      const std::string url = "faultmem://" + format_test::FreshMemName("mw");
      fault_store::Disarm();
      auto w0 = Writer(url, 0);
      auto w1 = Writer(url, 1);
      ASSERT_TRUE(w0 && w1);
      fault_store::Arm(Op::kWrite, fault, k);
      size_t committed = 0;  // steps whose flush succeeded, in order
      bool failed = false;
      for (size_t i = 0; i < std::size(steps); ++i) {
        const Step& s = steps[i];
        Dataset& w = s.writer == 0 ? *w0 : *w1;
        ASSERT_TRUE(Ok(AppendValues(w, s.first, s.count)));
        Status flushed = w.Flush();
        if (!flushed.ok()) {
          failed = true;
          fault_store::Disarm();
          const std::string key = fault_store::plan().fired_key;
          if (fault == Fault::kTornWrite && key.starts_with("commits/")) {
            // A torn commit object (a store breaking WriteIfAbsent): the
            // dataset refuses to open, naming it, until verify --repair
            // rewrites it from the metadata it names; then it shows what
            // was committed before and this flush's step (whose every
            // object was written before the commit). (A commit number
            // another writer had taken tears nothing.)
            auto ds = Dataset::Open(url, {.read_only = true});
            size_t in = committed;
            if (!ds.ok()) {
              EXPECT_NE(ds.status().message().find(key), std::string::npos)
                  << ds.status();
              w0.reset();
              w1.reset();
              auto mended = VerifyDataset(url, {.repair = true});
              ASSERT_TRUE(Ok(mended.status()));
              EXPECT_NE(mended->commit_repair.find("rewrote"),
                        std::string::npos)
                  << mended->commit_repair;
              in = i + 1;
            }
            if (ds.ok()) ds->reset();
            EXPECT_EQ(Values(url), expected_after(in));
            auto clean = VerifyDataset(url);
            ASSERT_TRUE(Ok(clean.status()));
            for (const auto& p : clean->problems) {
              EXPECT_EQ(p.kind, VerifyProblem::Kind::kOrphan) << p.ToString();
            }
            break;
          }
          // What the others committed is all there.
          EXPECT_EQ(Values(url), expected_after(committed)) << flushed;
          // The failed writer flushes again and gets everything in.
          flushed = w.Flush();
          ASSERT_TRUE(Ok(flushed));
        }
        committed = i + 1;
        EXPECT_EQ(Values(url), expected_after(committed));
      }
      fault_store::Disarm();
      // Only a failed HEAD (a hint) goes unreported, and a commit whose
      // write went in though it said it failed (the flush reads it back).
      EXPECT_TRUE(failed || !fault_store::Fired() ||
                  fault_store::plan().fired_key == "HEAD" ||
                  (fault == Fault::kLostAnswer &&
                   fault_store::plan().fired_key.starts_with("commits/")))
          << fault_store::plan().fired_key;
    }
  }
}

TEST(CommitLogTest, DatasetsFromBeforeCommitObjectsOpenAndGoOn) {
  format_test::TempDir dir;
  const std::string url = dir.url("ds");
  {
    auto ds = Writer(url, 0);
    ASSERT_TRUE(ds);
    ASSERT_TRUE(Ok(AppendValues(*ds, 0, 4)));
    ASSERT_TRUE(Ok(ds->Close()));
  }
  // A dataset written before commit objects: HEAD only.
  std::filesystem::remove_all(dir.path() + "/ds/commits");
  EXPECT_EQ(Values(url), Range(0, 4));
  {
    auto ds = Dataset::Open(url);
    ASSERT_TRUE(Ok(ds));
    const uint64_t before = (*ds)->commit();
    ASSERT_TRUE(Ok(AppendValues(**ds, 4, 2)));
    ASSERT_TRUE(Ok((*ds)->Close()));
    EXPECT_TRUE(std::filesystem::exists(dir.path() + "/ds/" +
                                        internal::CommitKey(before + 1)));
  }
  EXPECT_EQ(Values(url), Range(0, 6));
}

TEST(CommitLogTest, AStaleHeadIsOnlyAStartingPoint) {
  const std::string url = format_test::FreshMemUrl();
  auto store = OpenStore(url);
  ASSERT_TRUE(Ok(store));
  std::string old_head;
  {
    auto ds = Writer(url, 0);
    ASSERT_TRUE(ds);
    ASSERT_TRUE(Ok(ds->Flush()));
    auto bytes = (*store)->Read(internal::kHeadKey);
    ASSERT_TRUE(Ok(bytes));
    old_head = std::string(bytes->view());
    ASSERT_TRUE(Ok(AppendValues(*ds, 0, 3)));
    ASSERT_TRUE(Ok(ds->Flush()));
    ASSERT_TRUE(Ok(AppendValues(*ds, 3, 3)));
    ASSERT_TRUE(Ok(ds->Close()));
  }
  // HEAD put back two commits (as a writer whose HEAD update came late
  // would leave it): readers still find the newest commit.
  ASSERT_TRUE(Ok((*store)->WriteAtomic(internal::kHeadKey, AsBytes(old_head))));
  EXPECT_EQ(Values(url), Range(0, 6));
  // And a writer continues after it, not from HEAD.
  auto ds = Dataset::Open(url);
  ASSERT_TRUE(Ok(ds));
  ASSERT_TRUE(Ok(AppendValues(**ds, 6, 1)));
  ASSERT_TRUE(Ok((*ds)->Close()));
  EXPECT_EQ(Values(url), Range(0, 7));
}

// A reader that keeps losing races to writers: the first 8 retries go at
// once, later ones wait 1, 2, 3... ms (leaving the writers the cores).
TEST(CommitLogTest, SupersededRetryWaitsOnlyAfterEightLosses) {
  internal::SupersededRetry retry;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(retry.Again());
  EXPECT_LT(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(20));
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(retry.Again());
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10));
}

}  // namespace
}  // namespace shoal
