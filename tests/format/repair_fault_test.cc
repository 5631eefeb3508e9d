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
    if (i % 20 == 19) EXPECT_TRUE(Ok((*ds)->Flush()));
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
        if (!key.empty()) EXPECT_NE(told.find(key), std::string::npos) << told;
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

}  // namespace
}  // namespace shoal
