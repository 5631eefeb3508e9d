// verify --repair under store faults (issue 18): for every k, the k-th
// delete of a repair fails, or the k-th list leaves out its last key. A
// repair removes only objects no commit references: whatever fails, every
// referenced object is still there and the dataset reads back as before;
// a failed delete is reported (naming the object) and a second repair
// finishes the job.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "format/dataset.h"
#include "format/internal/metadata.h"
#include "format/verify.h"
#include "tests/format/fault_store.h"
#include "tests/format/format_test_util.h"

namespace shoal {
namespace {

using fault_store::Fault;
using fault_store::Op;
using format_test::Ok;

// A dataset of two tensors over a few commits, plus `strays` objects named
// as the dataset names its own (so orphans, not foreign files).
struct Fixture {
  std::string url;
  std::vector<std::string> strays;
  std::set<std::string> referenced;  // every key but the strays
};

Fixture Make() {
  Fixture f;
  const std::string name = format_test::FreshMemName("repair-fault");
  f.url = "faultmem://" + name;
  auto ds = Dataset::Create(f.url, {.overwrite = true, .id_seed = 4});
  EXPECT_TRUE(Ok(ds.status()));
  auto data = (*ds)->CreateTensor({.name = "data",
                                   .dtype = DType::kUInt8,
                                   .rank = 1,
                                   .chunk_compression = "lz4",
                                   .max_chunk_bytes = 4096});
  EXPECT_TRUE(Ok(data.status()));
  for (uint64_t i = 0; i < 60; ++i) {
    const auto bytes = format_test::SampleBytes(3, i, 200 + 3 * i);
    EXPECT_TRUE(Ok((*data)->Append(Shape{bytes.size()}, bytes)));
    if (i % 20 == 19) {
      EXPECT_TRUE(Ok((*ds)->Flush()));
    }
  }
  EXPECT_TRUE(Ok((*ds)->Close()));
  auto store = OpenStore(f.url);
  EXPECT_TRUE(Ok(store.status()));
  auto keys = (*store)->List("");
  EXPECT_TRUE(Ok(keys.status()));
  for (const std::string& k : *keys) {
    if (!k.starts_with("LOCK")) f.referenced.insert(k);
  }
  f.strays = {"chunks/0/00000000deadbeef", "chunks/0/00000000deadbeee",
              "index/1/99-00000000000000ff", "meta/99-0000000000000001"};
  for (const std::string& k : f.strays) {
    EXPECT_TRUE(Ok((*store)->Write(k, AsBytes(std::string("stray")))));
  }
  return f;
}

std::vector<std::vector<std::byte>> ReadAll(const std::string& url) {
  std::vector<std::vector<std::byte>> out;
  auto ds = Dataset::Open(url, {.read_only = true});
  EXPECT_TRUE(Ok(ds.status()));
  if (!ds.ok()) return out;
  Tensor* data = *(*ds)->tensor("data");
  for (uint64_t i = 0; i < (*ds)->len(); ++i) {
    auto s = data->Read(i);
    EXPECT_TRUE(Ok(s.status())) << i;
    if (s.ok()) out.emplace_back(s->data.span().begin(), s->data.span().end());
  }
  return out;
}

std::set<std::string> Keys(const std::string& url) {
  auto store = OpenStore(url);
  auto keys = (*store)->List("");
  std::set<std::string> out;
  for (const std::string& k : *keys) {
    if (!k.starts_with("LOCK")) out.insert(k);
  }
  return out;
}

TEST(RepairFaultTest, AFailingRepairRemovesOnlyOrphans) {
  fault_store::Register();
  // How many deletes and lists a repair makes.
  int64_t deletes = 0, lists = 0;
  {
    const Fixture f = Make();
    fault_store::Arm(Op::kDelete, Fault::kEio, 0);
    auto report = VerifyDataset(f.url, {.repair = true});
    ASSERT_TRUE(Ok(report.status()));
    EXPECT_EQ(report->orphans_removed, f.strays.size());
    EXPECT_EQ(Keys(f.url), f.referenced);
    deletes = fault_store::Count(Op::kDelete);
    lists = fault_store::Count(Op::kList);
    ASSERT_GE(deletes, static_cast<int64_t>(f.strays.size()));
    ASSERT_GT(lists, 0);
  }
  struct Case {
    Op op;
    Fault fault;
    int64_t count;
  };
  for (const Case& c : {Case{Op::kDelete, Fault::kEio, deletes},
                        Case{Op::kList, Fault::kEio, lists},
                        Case{Op::kList, Fault::kStaleList, lists}}) {
    for (int64_t k = 1; k <= c.count; ++k) {
      SCOPED_TRACE(std::string(c.op == Op::kDelete ? "delete " : "list ") +
                   std::to_string(k) + ", " + fault_store::FaultName(c.fault));
      const Fixture f = Make();
      fault_store::Disarm();
      const auto before = ReadAll(f.url);
      fault_store::Arm(c.op, c.fault, k);
      auto report = VerifyDataset(f.url, {.repair = true});
      fault_store::Disarm();
      // Nothing referenced is gone, and the data reads as before.
      const std::set<std::string> left = Keys(f.url);
      for (const std::string& key : f.referenced) {
        EXPECT_TRUE(left.count(key)) << key << " was removed";
      }
      EXPECT_TRUE(ReadAll(f.url) == before);
      if (c.fault == Fault::kEio && fault_store::Fired()) {
        // The failure is told, naming what failed.
        const std::string& key = fault_store::plan().fired_key;
        std::string told = report.ok() ? "" : report.status().ToString();
        if (report.ok()) {
          for (const auto& p : report->problems) told += p.ToString() + "\n";
        }
        EXPECT_NE(told.find("Input/output error"), std::string::npos)
            << "told: " << told;
        if (!key.empty()) {
          EXPECT_NE(told.find(key), std::string::npos) << told;
        }
      }
      // A second repair finishes: only referenced objects are left.
      auto again = VerifyDataset(f.url, {.repair = true});
      ASSERT_TRUE(Ok(again.status()));
      EXPECT_EQ(Keys(f.url), f.referenced);
      auto clean = VerifyDataset(f.url);
      ASSERT_TRUE(Ok(clean.status()));
      EXPECT_TRUE(clean->ok())
          << (clean->problems.empty() ? "" : clean->problems[0].ToString());
    }
  }
}

// A damaged commit object (torn by a store that broke WriteIfAbsent's
// atomicity, or rotted) stops the dataset from opening, naming it; verify
// --repair mends it from the metadata it names, or removes it when there
// is none (nothing was committed under it), and refuses when the metadata
// cannot be told. The bytes expected are the commit object as first
// written (read before damaging it), not re-encoded by the code under test.
TEST(RepairFaultTest, ADamagedCommitObjectIsMendedFromItsMetadata) {
  fault_store::Register();
  const Fixture f = Make();
  fault_store::Disarm();
  const auto before = ReadAll(f.url);
  auto store = OpenStore(f.url);
  ASSERT_TRUE(Ok(store.status()));
  const std::string last = internal::CommitKey(3);  // 3 flushes after 0
  auto original = (*store)->Read(last);
  ASSERT_TRUE(Ok(original.status()));
  ASSERT_FALSE(Ok((*store)->Read(internal::CommitKey(4)).status()));
  const std::string whole(original->view());
  auto previous = (*store)->Read(internal::CommitKey(2));
  ASSERT_TRUE(Ok(previous.status()));
  // As a writer that failed at its commit leaves it: HEAD still names the
  // commit before (HEAD is written after the commit object).
  auto damage = [&](const std::string& key, const std::string& bytes) {
    ASSERT_TRUE(Ok((*store)->Delete(key)));
    ASSERT_TRUE(Ok((*store)->Write(key, AsBytes(bytes))));
    ASSERT_TRUE(Ok((*store)->Write("HEAD", previous->span())));
    auto refused = Dataset::Open(f.url, {.read_only = true});
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), StatusCode::kCorruption);
    EXPECT_NE(refused.status().message().find(key), std::string::npos)
        << refused.status();
    EXPECT_NE(refused.status().message().find("verify --repair"),
              std::string::npos)
        << refused.status();
    auto report = VerifyDataset(f.url);
    ASSERT_TRUE(Ok(report.status()));
    ASSERT_FALSE(report->ok());
    EXPECT_EQ(report->problems[0].kind, VerifyProblem::Kind::kCorrupt);
  };
  auto mend = [&](const std::string& said) {
    auto report = VerifyDataset(f.url, {.repair = true});
    ASSERT_TRUE(Ok(report.status()));
    EXPECT_NE(report->commit_repair.find(said), std::string::npos)
        << report->commit_repair;
    EXPECT_TRUE(report->ok())
        << (report->problems.empty() ? "" : report->problems[0].ToString());
    EXPECT_TRUE(ReadAll(f.url) == before);
  };
  // Torn: its first half.
  damage(last, whole.substr(0, whole.size() / 2));
  mend("rewrote the damaged '" + last + "'");
  EXPECT_EQ((*store)->Read(last)->view(), whole);
  // Rotted: one byte flipped.
  std::string rotted = whole;
  rotted[rotted.size() - 3] ^= 0x20;
  damage(last, rotted);
  mend("rewrote the damaged '" + last + "'");
  EXPECT_EQ((*store)->Read(last)->view(), whole);
  // Rotted under a sound HEAD, which opening trusts: verify still finds it.
  ASSERT_EQ((*store)->Read("HEAD")->view(), whole);  // the repair's hint
  ASSERT_TRUE(Ok((*store)->Delete(last)));
  ASSERT_TRUE(Ok((*store)->Write(last, AsBytes(rotted))));
  {
    auto opened = Dataset::Open(f.url, {.read_only = true});
    EXPECT_TRUE(opened.ok()) << opened.status();
    auto report = VerifyDataset(f.url);
    ASSERT_TRUE(Ok(report.status()));
    ASSERT_EQ(report->problems.size(), 1u);
    EXPECT_EQ(report->problems[0].kind, VerifyProblem::Kind::kCorrupt);
    EXPECT_EQ(report->problems[0].object, last);
  }
  mend("rewrote the damaged '" + last + "'");
  EXPECT_EQ((*store)->Read(last)->view(), whole);
  // A commit that names no metadata at all: nothing was committed there.
  const std::string next = internal::CommitKey(4);
  ASSERT_TRUE(Ok((*store)->Write(next, AsBytes(std::string("garbage")))));
  {
    auto refused = Dataset::Open(f.url, {.read_only = true});
    EXPECT_FALSE(refused.ok());
  }
  mend("removed the damaged '" + next + "'");
  EXPECT_FALSE((*store)->Exists(next).value());
  // Two metadata objects of commit 3 that a few torn bytes both fit: which
  // one the commit named cannot be told, so nothing is changed.
  auto keys = (*store)->List("meta/3-");
  ASSERT_TRUE(Ok(keys.status()));
  ASSERT_EQ(keys->size(), 1u);
  const std::string twin = "meta/3-00000000000000ab";
  ASSERT_TRUE(Ok((*store)->Write(twin, (*store)->Read((*keys)[0])->span())));
  damage(last, whole.substr(0, 8));
  auto refused = VerifyDataset(f.url, {.repair = true});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find(twin), std::string::npos)
      << refused.status();
  EXPECT_EQ(std::string((*store)->Read(last)->view()), whole.substr(0, 8));
}

// A store that fails to read or list (EIO here; an S3 500 after its
// retries is the same IOError) is not damage: verify says "unreadable",
// never "corrupt", names what failed, and removes nothing; verifying again
// once the store is well finds the dataset sound.
TEST(RepairFaultTest, AStoreFailureIsUnreadableNotCorrupt) {
  fault_store::Register();
  const Fixture f = Make();
  {
    auto repaired = VerifyDataset(f.url, {.repair = true});
    ASSERT_TRUE(Ok(repaired.status()));
  }
  fault_store::Arm(Op::kRead, Fault::kEio, 0);
  ASSERT_TRUE(Ok(VerifyDataset(f.url).status()));
  const int64_t reads = fault_store::Count(Op::kRead);
  fault_store::Arm(Op::kList, Fault::kEio, 0);
  ASSERT_TRUE(Ok(VerifyDataset(f.url).status()));
  const int64_t lists = fault_store::Count(Op::kList);
  ASSERT_GT(reads, 3);
  ASSERT_GT(lists, 2);
  int unreadable_seen = 0;
  for (const Op op : {Op::kRead, Op::kList}) {
    for (int64_t k = 1; k <= (op == Op::kRead ? reads : lists); ++k) {
      SCOPED_TRACE(std::string(op == Op::kRead ? "read " : "list ") +
                   std::to_string(k));
      fault_store::Arm(op, Fault::kEio, k);
      auto report = VerifyDataset(f.url, {.repair = true});
      fault_store::Disarm();
      ASSERT_TRUE(fault_store::Fired());
      // A failure to list everything (the first listing finds the latest
      // commit) is an error of its own; otherwise a problem of its kind.
      if (!report.ok()) {
        EXPECT_EQ(report.status().code(), StatusCode::kIOError)
            << report.status().ToString();
        continue;
      }
      const std::string& key = fault_store::plan().fired_key;
      bool named = false;
      for (const VerifyProblem& p : report->problems) {
        EXPECT_NE(p.kind, VerifyProblem::Kind::kCorrupt) << p.ToString();
        EXPECT_NE(p.kind, VerifyProblem::Kind::kMissing) << p.ToString();
        if (p.kind == VerifyProblem::Kind::kUnreadable) {
          ++unreadable_seen;
          EXPECT_TRUE(p.ToString().starts_with("unreadable: ")) << p.ToString();
          EXPECT_NE(p.message.find("Input/output error"), std::string::npos)
              << p.ToString();
          named = named || key.empty() || p.object == key ||
                  key.starts_with(p.object);
        }
      }
      // A read the verify could do without (the HEAD hint) may fail
      // unreported; the data it checked must still be all there.
      if (!report->problems.empty()) {
        EXPECT_TRUE(named) << key;
      }
      EXPECT_EQ(report->orphans_removed, 0u);
      EXPECT_EQ(Keys(f.url), f.referenced);
    }
  }
  EXPECT_GT(unreadable_seen, reads / 2);
  auto clean = VerifyDataset(f.url);
  ASSERT_TRUE(Ok(clean.status()));
  EXPECT_TRUE(clean->ok());
}

}  // namespace
}  // namespace shoal
