// Staged (deferred) writes, format/staged_write.h: chunks cut by appends are
// handed out, encoded and written out of line, commits snapshot open chunks,
// and the result is the dataset a plain writer makes from the same samples:
// the same samples, chunk boundaries and chunk bytes, whatever the commits
// and however the writer was interrupted and resumed.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "format/dataset.h"
#include "format/verify.h"
#include "tests/format/fault_store.h"
#include "tests/format/format_test_util.h"

namespace shoal {
namespace {

using format_test::FreshMemUrl;
using format_test::HasCode;
using format_test::Ok;
using format_test::SampleBytes;
using format_test::Span;

constexpr uint64_t kSamples = 700;

// Samples of varying size (so chunks are cut at uneven places) for two
// tensors, one block-compressed and one per-sample compressed, plus labels.
struct Recipe {
  static Shape DataShape(uint64_t i) { return Shape{1 + (i * 7) % 13, 97}; }
  static void CreateTensors(Dataset& ds) {
    ASSERT_TRUE(Ok(ds.CreateTensor({.name = "data",
                                    .dtype = DType::kUInt8,
                                    .chunk_compression = "zstd:1",
                                    .max_chunk_bytes = 16 << 10,
                                    .block_bytes = 4096})));
    ASSERT_TRUE(Ok(ds.CreateTensor({.name = "packed",
                                    .dtype = DType::kUInt8,
                                    .sample_compression = "lz4",
                                    .max_chunk_bytes = 8 << 10})));
    ASSERT_TRUE(Ok(ds.CreateTensor(
        {.name = "labels", .dtype = DType::kUInt32, .max_chunk_bytes = 4096})));
  }
  static Status AppendRow(Dataset& ds, uint64_t i) {
    const auto data = SampleBytes(1, i, DataShape(i).num_elements());
    const auto packed = SampleBytes(2, i, 50 + i % 300);
    std::vector<uint32_t> label(8, static_cast<uint32_t>(i % 10));
    const std::string info = "{\"i\":" + std::to_string(i) + "}";
    const Dataset::RowValue row[] = {
        {"data", DataShape(i), Span(data), info},
        {"packed", Shape{50 + i % 300}, Span(packed)},
        {"labels", Shape{8}, std::as_bytes(std::span(label))},
    };
    return ds.Append(row);
  }
};

// Chunk objects of every tensor (hidden ones too), in index order.
std::vector<std::string> ChunkBytes(const std::string& url) {
  auto ds = Dataset::Open(url, {.read_only = true});
  EXPECT_TRUE(Ok(ds));
  std::vector<std::string> out;
  for (Tensor* t : (*ds)->tensors(/*include_hidden=*/true)) {
    for (const TensorExtent& e : t->Extents()) {
      auto bytes = (*ds)->store()->Read(e.chunk_key);
      EXPECT_TRUE(Ok(bytes)) << e.chunk_key;
      out.push_back(t->name() + ":" + std::string(bytes->view()));
    }
  }
  return out;
}

// The deferred writer's loop, run inline: take, encode, write, report,
// commit every `commit_every` rows; the final commit seals.
class DeferredWriter {
 public:
  explicit DeferredWriter(Dataset& ds) : ds_(ds) {}
  Status Drain() {
    auto chunks = ds_.TakePendingChunks();
    for (PendingChunk& c : chunks) {
      SHOAL_RETURN_IF_ERROR(c.Encode());
      SHOAL_RETURN_IF_ERROR(c.Write(*ds_.store()));
    }
    ds_.ChunksWritten(chunks);
    return Status::OK();
  }
  Status CommitNow(bool final) {
    SHOAL_ASSIGN_OR_RETURN(auto point, ds_.PrepareCommit(final));
    SHOAL_RETURN_IF_ERROR(Drain());
    if (point == nullptr) return Status::OK();
    return ds_.Commit(*point);
  }

 private:
  Dataset& ds_;
};

std::string PlainDataset() {
  const std::string url = FreshMemUrl("plain");
  auto ds = Dataset::Create(url);
  EXPECT_TRUE(Ok(ds));
  Recipe::CreateTensors(**ds);
  for (uint64_t i = 0; i < kSamples; ++i) {
    EXPECT_TRUE(Ok(Recipe::AppendRow(**ds, i)));
  }
  EXPECT_TRUE(Ok((*ds)->Close()));
  return url;
}

TEST(StagedWriteTest, DeferredWriterMakesThePlainWritersChunks) {
  const auto expected = ChunkBytes(PlainDataset());
  for (uint64_t commit_every : {1, 37, 250, 100000}) {
    const std::string url = FreshMemUrl("deferred");
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(Ok(ds));
    ASSERT_TRUE(Ok((*ds)->DeferChunkWrites()));
    Recipe::CreateTensors(**ds);
    DeferredWriter writer(**ds);
    for (uint64_t i = 0; i < kSamples; ++i) {
      ASSERT_TRUE(Ok(Recipe::AppendRow(**ds, i)));
      if ((i + 1) % commit_every == 0) {
        ASSERT_TRUE(Ok(writer.CommitNow(/*final=*/false)));
        // A reader sees exactly the rows committed, whole.
        auto reader = Dataset::Open(url, {.read_only = true});
        ASSERT_TRUE(Ok(reader));
        ASSERT_EQ((*reader)->len(), i + 1);
        auto packed = (*(*reader)->tensor("packed"))->Read(i);
        ASSERT_TRUE(Ok(packed));
        EXPECT_EQ(packed->data.view(),
                  std::string_view(reinterpret_cast<const char*>(
                                       SampleBytes(2, i, 50 + i % 300).data()),
                                   50 + i % 300));
      }
    }
    ASSERT_TRUE(Ok(writer.CommitNow(/*final=*/true)));
    ASSERT_TRUE(Ok((*ds)->FinishDeferredWrites()));
    EXPECT_EQ((*(*ds)->tensor("data"))->stats().num_chunks,
              (*(*ds)->tensor("data"))->Extents().size());
    ASSERT_TRUE(Ok((*ds)->Close()));
    EXPECT_EQ(ChunkBytes(url), expected) << "commit every " << commit_every;
    // The copies of open chunks that later commits superseded are gone.
    auto report = VerifyDataset(url);
    ASSERT_TRUE(Ok(report));
    EXPECT_TRUE(report->ok())
        << report->problems.size()
        << " problems, first: " << report->problems[0].message;
  }
}

TEST(StagedWriteTest, ResumedWriterMakesTheUninterruptedChunks) {
  const auto expected = ChunkBytes(PlainDataset());
  for (uint64_t stop_at : {1, 100, 333, 699}) {
    const std::string url = FreshMemUrl("resumed");
    {
      auto ds = Dataset::Create(url);
      ASSERT_TRUE(Ok(ds));
      ASSERT_TRUE(Ok((*ds)->DeferChunkWrites()));
      Recipe::CreateTensors(**ds);
      DeferredWriter writer(**ds);
      for (uint64_t i = 0; i < stop_at; ++i) {
        ASSERT_TRUE(Ok(Recipe::AppendRow(**ds, i)));
      }
      ASSERT_TRUE(Ok(writer.CommitNow(/*final=*/false)));
      // More rows that never get committed: a kill loses them.
      for (uint64_t i = stop_at; i < stop_at + 20 && i < kSamples; ++i) {
        ASSERT_TRUE(Ok(Recipe::AppendRow(**ds, i)));
      }
      ASSERT_TRUE(Ok(writer.Drain()));  // written, never committed: orphans
    }                                   // destroyed without a final commit
    auto ds = Dataset::Open(url);
    ASSERT_TRUE(Ok(ds));
    ASSERT_EQ((*ds)->len(), stop_at);
    ASSERT_TRUE(Ok((*ds)->DeferChunkWrites()));
    DeferredWriter writer(**ds);
    for (uint64_t i = stop_at; i < kSamples; ++i) {
      ASSERT_TRUE(Ok(Recipe::AppendRow(**ds, i)));
    }
    ASSERT_TRUE(Ok(writer.CommitNow(/*final=*/true)));
    ASSERT_TRUE(Ok((*ds)->FinishDeferredWrites()));
    ASSERT_TRUE(Ok((*ds)->Close()));
    EXPECT_EQ(ChunkBytes(url), expected) << "stopped at " << stop_at;
  }
}

// A dataset at `url` whose chunk writes are deferred, holding the recipe's
// first `rows` rows.
std::unique_ptr<Dataset> DeferredDataset(const std::string& url,
                                         uint64_t rows) {
  auto ds = Dataset::Create(url);
  EXPECT_TRUE(Ok(ds));
  if (!ds.ok()) return nullptr;
  EXPECT_TRUE(Ok((*ds)->DeferChunkWrites()));
  Recipe::CreateTensors(**ds);
  for (uint64_t i = 0; i < rows; ++i) {
    EXPECT_TRUE(Ok(Recipe::AppendRow(**ds, i)));
  }
  return std::move(*ds);
}

TEST(StagedWriteTest, CommitNeedsEveryChunkWritten) {
  const std::string url = FreshMemUrl("unwritten");
  auto ds = DeferredDataset(url, 50);
  ASSERT_NE(ds, nullptr);
  auto point = ds->PrepareCommit();
  ASSERT_TRUE(Ok(point));
  auto chunks = ds->TakePendingChunks();
  ASSERT_FALSE(chunks.empty());
  EXPECT_TRUE(HasCode(ds->Commit(**point), StatusCode::kInternal));
  EXPECT_EQ(ds->commit(), 0u);
  EXPECT_TRUE(HasCode(ds->Flush(), StatusCode::kFailedPrecondition));
  // Closing does not commit what the writer never committed.
  ASSERT_TRUE(Ok(ds->Close()));
  auto reopened = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(reopened));
  EXPECT_EQ((*reopened)->len(), 0u);
}

// A writer prepares the next commit while the previous one is being
// committed. When that one fails, the next must not go in as prepared: it
// was prepared with the failed one's indexes marked committed, and would
// commit metadata over indexes that lack the failed one's samples.
TEST(StagedWriteTest, APointPreparedBeforeAFailedCommitIsRefused) {
  using fault_store::Fault;
  using fault_store::Op;
  fault_store::Register();
  fault_store::Arm(Op::kWrite, Fault::kEio, 0);
  const std::string url = "faultmem://" + format_test::FreshMemName("refused");
  auto ds = DeferredDataset(url, 50);
  ASSERT_NE(ds, nullptr);
  DeferredWriter writer(*ds);
  auto first = ds->PrepareCommit(false, R"({"step":1})");
  ASSERT_TRUE(Ok(first));
  ASSERT_TRUE(Ok(writer.Drain()));
  // Nothing appended since; only the writer's state changed.
  auto second = ds->PrepareCommit(false, R"({"step":2})");
  ASSERT_TRUE(Ok(second));
  ASSERT_NE(*second, nullptr);
  ASSERT_TRUE(Ok(writer.Drain()));

  fault_store::Arm(Op::kWrite, Fault::kEio, 1);
  EXPECT_FALSE(ds->Commit(**first).ok());
  ASSERT_TRUE(fault_store::Fired());
  fault_store::Disarm();
  EXPECT_TRUE(HasCode(ds->Commit(**second), StatusCode::kFailedPrecondition));
  EXPECT_EQ(ds->commit(), 0u);

  // Prepared again, the commit holds every sample.
  ASSERT_TRUE(Ok(writer.CommitNow(/*final=*/true)));
  ASSERT_TRUE(Ok(ds->FinishDeferredWrites()));
  ASSERT_TRUE(Ok(ds->Close()));
  auto reopened = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(reopened));
  ASSERT_EQ((*reopened)->len(), 50u);
  auto data = (*reopened)->tensor("data");
  ASSERT_TRUE(Ok(data));
  for (uint64_t i = 0; i < 50; ++i) {
    auto sample = (*data)->Read(i);
    ASSERT_TRUE(Ok(sample)) << i;
    const auto want = SampleBytes(1, i, Recipe::DataShape(i).num_elements());
    ASSERT_EQ(
        std::string(sample->data.view()),
        std::string(reinterpret_cast<const char*>(want.data()), want.size()))
        << i;
  }
  // What the failed commits wrote before failing is left as orphans, which
  // a repair removes; nothing else is wrong.
  auto verify = VerifyDataset(url);
  ASSERT_TRUE(Ok(verify));
  for (const VerifyProblem& p : verify->problems) {
    EXPECT_EQ(p.kind, VerifyProblem::Kind::kOrphan) << p.ToString();
  }
  ASSERT_TRUE(Ok(VerifyDataset(url, {.repair = true})));
  verify = VerifyDataset(url);
  ASSERT_TRUE(Ok(verify));
  EXPECT_TRUE(verify->ok());
}

}  // namespace
}  // namespace shoal
