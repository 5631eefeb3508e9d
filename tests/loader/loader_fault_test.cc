// The loader under store faults (issue 18): for every k, the k-th read of
// a run fails (EIO), comes back one byte short, or comes back with a byte
// flipped. Each run either gives exactly the batches of a run without
// faults or stops with an error that names the object; a batch is never
// wrong, and nothing hangs (ctest's timeout would catch it). The same for
// whole-chunk reads and sample-by-sample reads.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "format/dataset.h"
#include "loader/loader.h"
#include "tests/format/fault_store.h"
#include "tests/format/format_test_util.h"

namespace shoal {
namespace {

using fault_store::Fault;
using fault_store::Op;
using format_test::Ok;

constexpr uint64_t kSamples = 150;

// Samples of 64..319 bytes (ragged) in lz4 chunks of about 4 KiB, and a
// label each.
std::string MakeDataset() {
  const std::string name = format_test::FreshMemName("loader-fault");
  auto ds = Dataset::Create("mem://" + name, {.overwrite = true, .id_seed = 9});
  EXPECT_TRUE(Ok(ds.status()));
  auto data = (*ds)->CreateTensor({.name = "data",
                                   .dtype = DType::kUInt8,
                                   .rank = 1,
                                   .chunk_compression = "lz4",
                                   .max_chunk_bytes = 4096});
  auto labels = (*ds)->CreateTensor({.name = "labels",
                                     .htype = HType::kClassLabel,
                                     .dtype = DType::kUInt32,
                                     .rank = 0});
  EXPECT_TRUE(data.ok() && labels.ok());
  for (uint64_t i = 0; i < kSamples; ++i) {
    const auto bytes = format_test::SampleBytes(7, i, 64 + (i * 37) % 256);
    EXPECT_TRUE(Ok((*data)->Append(Shape{bytes.size()}, bytes)));
    const uint32_t label = static_cast<uint32_t>(i % 10);
    EXPECT_TRUE(
        Ok((*labels)->Append(Shape{}, std::as_bytes(std::span(&label, 1)))));
  }
  EXPECT_TRUE(Ok((*ds)->Close()));
  return "faultmem://" + name;
}

struct LoadRun {
  std::vector<std::vector<std::byte>> batches;  // data then labels
  Status error;
};

// Loads one epoch; the fault (if armed) may hit the loader's creation too.
// The ways the loader reads: whole chunks (chunk shuffle; full shuffle
// when the chunks fit the budget) or sample by sample (full shuffle over a
// budget smaller than the chunks).
enum class Reads { kChunkShuffle, kFullHeld, kFullSampleBySample };

LoadRun Load(const std::shared_ptr<const Dataset>& ds, Reads reads) {
  LoadRun run;
  LoaderOptions options{.batch_size = 16,
                        .shuffle = reads == Reads::kChunkShuffle
                                       ? ShuffleMode::kChunk
                                       : ShuffleMode::kFull,
                        .seed = 3,
                        .threads = 2};
  if (reads == Reads::kFullSampleBySample) options.memory_budget = 24 << 10;
  auto loader = Loader::Create(ds, options);
  if (!loader.ok()) {
    run.error = loader.status();
    return run;
  }
  while (!(*loader)->done()) {
    auto batch = (*loader)->Next();
    if (!batch.ok()) {
      run.error = batch.status();
      return run;
    }
    if (!*batch) continue;
    std::vector<std::byte> bytes;
    for (const TensorBatch& t : (*batch)->tensors()) {
      bytes.insert(bytes.end(), t.data().begin(), t.data().end());
    }
    run.batches.push_back(std::move(bytes));
  }
  if (reads == Reads::kFullSampleBySample) {
    EXPECT_TRUE((*loader)->per_sample_reads());
  }
  return run;
}

class LoaderFaultTest : public testing::TestWithParam<Reads> {};

TEST_P(LoaderFaultTest, EveryReadFaultIsAnErrorOrTheSameBatches) {
  fault_store::Register();
  const std::string url = MakeDataset();
  auto opened = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(opened.status()));
  const std::shared_ptr<const Dataset> ds(std::move(*opened));

  fault_store::Arm(Op::kRead, Fault::kEio, 0);
  const LoadRun reference = Load(ds, GetParam());
  ASSERT_TRUE(Ok(reference.error));
  ASSERT_EQ(reference.batches.size(), (kSamples + 15) / 16);
  const int64_t reads = fault_store::Count(Op::kRead);
  ASSERT_GT(reads, 5);
  std::printf("[ measured ] %lld reads\n", static_cast<long long>(reads));

  for (Fault fault : {Fault::kEio, Fault::kShortRead, Fault::kFlipByte}) {
    int errors = 0, fires = 0;
    for (int64_t k = 1; k <= reads; ++k) {
      SCOPED_TRACE(std::string(fault_store::FaultName(fault)) + " at read " +
                   std::to_string(k) + " of " + std::to_string(reads));
      fault_store::Arm(Op::kRead, fault, k);
      const LoadRun run = Load(ds, GetParam());
      fault_store::Disarm();
      // Sample-by-sample runs coalesce neighbouring reads as the fetch
      // workers find them, so a run may make fewer reads than k: then no
      // fault happened and the run must be whole.
      const bool fired = fault_store::Fired();
      fires += fired;
      if (!fired) {
        EXPECT_TRUE(Ok(run.error));
        EXPECT_TRUE(run.batches == reference.batches);
        continue;
      }
      // Whatever came out is what a run without faults gives.
      ASSERT_LE(run.batches.size(), reference.batches.size());
      for (size_t b = 0; b < run.batches.size(); ++b) {
        ASSERT_TRUE(run.batches[b] == reference.batches[b]) << "batch " << b;
      }
      if (run.error.ok()) {
        // A damaged read that went unnoticed would have changed a batch;
        // every batch came out, equal.
        EXPECT_EQ(run.batches.size(), reference.batches.size());
        continue;
      }
      ++errors;
      const std::string message(run.error.message());
      const std::string& key = fault_store::plan().fired_key;
      if (fault == Fault::kEio) {
        EXPECT_NE(message.find(key), std::string::npos)
            << "the error does not name '" << key << "': " << message;
      } else {
        EXPECT_EQ(run.error.code(), StatusCode::kCorruption) << run.error;
      }
      EXPECT_NE(message.find("loader-fault"), std::string::npos)
          << "the error does not name the dataset: " << message;
    }
    // A mem:// store has no retries: every fault reached the caller.
    EXPECT_EQ(errors, fires) << fault_store::FaultName(fault);
    EXPECT_GT(fires, reads / 2) << fault_store::FaultName(fault);
  }
}

std::string ReadsName(const testing::TestParamInfo<Reads>& info) {
  switch (info.param) {
    case Reads::kChunkShuffle:
      return "chunk_shuffle";
    case Reads::kFullHeld:
      return "full_held";
    case Reads::kFullSampleBySample:
      return "full_sample_by_sample";
  }
  return "?";
}

INSTANTIATE_TEST_SUITE_P(Reads, LoaderFaultTest,
                         testing::Values(Reads::kChunkShuffle, Reads::kFullHeld,
                                         Reads::kFullSampleBySample),
                         ReadsName);

}  // namespace
}  // namespace shoal
