// The loader over stores with latency: sample-by-sample reads coalesced
// per chunk (requests counted by a store wrapper of their own, batches
// against the resident-chunk path's), and the fetch workers adapted by the
// controller: grown when reads wait on the store's latency, backed off when
// the store slows down as more reads come (as S3's SlowDown, retried, does).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "format/dataset.h"
#include "loader/loader.h"
#include "tests/format/format_test_util.h"

namespace shoal {
namespace {

using format_test::CountingStore;
using format_test::FreshMemName;

// How the "slowmem" store answers: every read (a round trip: ReadRange or
// a whole ReadRanges call) waits this long, given the round trips in
// flight, including itself.
std::atomic<int> slow_mode{0};
std::chrono::microseconds Latency(int in_flight) {
  if (slow_mode.load() == 0) return std::chrono::milliseconds(20);
  // Pushes back: each read in flight slows every other.
  return std::chrono::milliseconds(10) * in_flight * in_flight;
}

class SlowStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  int useful_reads_in_flight() const override { return kMaxFetchWorkers; }
  Result<Buffer> ReadRange(std::string_view key, uint64_t offset,
                           uint64_t length) const override {
    Wait();
    return ForwardingStore::ReadRange(key, offset, length);
  }
  std::vector<Result<Buffer>> ReadRanges(
      std::span<const RangeRead> ranges,
      const BufferAllocator& allocate = {}) const override {
    Wait();
    return ForwardingStore::ReadRanges(ranges, allocate);
  }

 private:
  void Wait() const {
    const int n = ++in_flight_;
    std::this_thread::sleep_for(Latency(n));
    --in_flight_;
  }
  mutable std::atomic<int> in_flight_{0};
};

void RegisterSlowStore() {
  static const bool registered = [] {
    StoreRegistry::Register(
        "slowmem",
        [](std::string_view location,
           const StoreOptions& options) -> Result<std::shared_ptr<Store>> {
          SHOAL_ASSIGN_OR_RETURN(
              auto inner, OpenStore("mem://" + std::string(location), options));
          return std::shared_ptr<Store>(std::make_shared<SlowStore>(inner));
        });
    return true;
  }();
  (void)registered;
}

// `n` samples of `bytes` bytes each in tensor "x" (raw uint8), chunks of
// `chunk_bytes`, 4 KiB blocks; written through mem://NAME.
void MakeDataset(const std::string& name, uint64_t n, uint64_t bytes,
                 uint64_t chunk_bytes) {
  auto ds = Dataset::Create("mem://" + name, {.id_seed = 3});
  ASSERT_TRUE(ds.ok()) << ds.status();
  auto x = (*ds)->CreateTensor({.name = "x",
                                .dtype = DType::kUInt8,
                                .max_chunk_bytes = chunk_bytes,
                                .block_bytes = 4096});
  ASSERT_TRUE(x.ok()) << x.status();
  for (uint64_t i = 0; i < n; ++i) {
    const auto v = format_test::SampleBytes(9, i, bytes);
    ASSERT_TRUE((*x)->Append(Shape{bytes}, format_test::Span(v)).ok());
  }
  ASSERT_TRUE((*ds)->Close().ok());
}

std::shared_ptr<const Dataset> Open(const std::string& url) {
  auto ds = Dataset::Open(url, {.read_only = true});
  EXPECT_TRUE(ds.ok()) << ds.status();
  return ds.ok() ? std::shared_ptr<const Dataset>(std::move(*ds)) : nullptr;
}

// Every batch's indices and bytes.
struct Loaded {
  std::vector<std::vector<uint64_t>> indices;
  std::vector<std::vector<std::byte>> bytes;
  LoaderMetrics metrics;
};
Loaded Load(std::shared_ptr<const Dataset> ds, const LoaderOptions& options) {
  Loaded run;
  auto loader = Loader::Create(ds, options);
  EXPECT_TRUE(loader.ok()) << loader.status();
  if (!loader.ok()) return run;
  while (!(*loader)->done()) {
    auto batch = (*loader)->Next();
    EXPECT_TRUE(batch.ok()) << batch.status();
    if (!batch.ok()) break;
    if (!*batch) continue;
    const ByteSpan data = (*batch)->tensors()[0].data();
    run.indices.emplace_back((*batch)->indices().begin(),
                             (*batch)->indices().end());
    run.bytes.emplace_back(data.begin(), data.end());
  }
  run.metrics = (*loader)->metrics();
  return run;
}

// Under a full shuffle whose chunks do not fit the budget, a batch's
// samples are read per chunk, neighbours together: far fewer requests than
// samples (counted by the store), and the same batches as the resident
// path, which reads whole chunks.
TEST(LoaderNetworkTest, SampleReadsAreCoalescedPerChunk) {
  format_test::RegisterCountingStore();
  const std::string name = FreshMemName("coalesce");
  constexpr uint64_t kSamples = 3000;
  MakeDataset(name, kSamples, 100, 32 << 10);
  LoaderOptions options{.batch_size = 64,
                        .shuffle = ShuffleMode::kFull,
                        .seed = 4,
                        .threads = 2,
                        .memory_budget = 16 << 10};
  auto counted = Open("countmem://" + name);
  auto* store = dynamic_cast<CountingStore*>(counted->store().get());
  store->Reset();
  const Loaded sampled = Load(counted, options);
  options.memory_budget = 1 << 30;
  const Loaded resident = Load(Open("mem://" + name), options);

  EXPECT_EQ(sampled.metrics.samples, kSamples);
  EXPECT_EQ(sampled.metrics.chunks_read, 0u) << "read sample by sample";
  EXPECT_EQ(resident.metrics.sample_reads, 0u) << "read chunk by chunk";
  EXPECT_TRUE(sampled.indices == resident.indices);
  EXPECT_TRUE(sampled.bytes == resident.bytes);
  uint64_t requests = 0;
  for (const auto& [key, reads] : store->ReadsUnder("chunks/")) {
    requests += reads.ranges + reads.whole;
  }
  EXPECT_EQ(requests, sampled.metrics.sample_reads);
  // About one request per chunk a batch touches (10 chunks; headers once):
  // a request per sample would be 3000.
  EXPECT_LE(requests, kSamples / 4);
  EXPECT_GE(requests, sampled.indices.size());
}

int FetchWorkers(const LoaderMetrics& m) {
  return m.pipeline.stages.empty() ? 0 : m.pipeline.stages[0].concurrency;
}

// The dataset "slowmem://NAME" of `batches` batches of 16 samples of 1000
// bytes, 16 per chunk (each batch needs one new chunk), and the options
// that load it in order on 2 decode threads.
LoaderOptions SlowDataset(const std::string& name, uint64_t batches) {
  RegisterSlowStore();
  MakeDataset(name, 16 * batches, 1000, 16 << 10);
  return {.batch_size = 16, .shuffle = ShuffleMode::kNone, .threads = 2};
}

// Each batch needs one new chunk, so the loader waits on the store: the
// fetch workers double while that raises throughput, and every change is
// in the metrics with its reason.
TEST(LoaderNetworkTest, FetchWorkersGrowUnderLatency) {
  const std::string name = FreshMemName("latency");
  LoaderOptions options = SlowDataset(name, 300);
  slow_mode = 0;
  const Loaded run = Load(Open("slowmem://" + name), options);
  const auto& decisions = run.metrics.decisions;
  ASSERT_FALSE(decisions.empty());
  EXPECT_EQ(decisions.front().stage, 0u);
  EXPECT_EQ(decisions.front().from, 2);
  EXPECT_GT(decisions.front().to, 2);
  EXPECT_NE(decisions.front().reason.find("fetch 2->"), std::string::npos)
      << decisions.front().reason;
  EXPECT_GT(FetchWorkers(run.metrics), 2);
  // Pinned workers stay as they are.
  options.fetch_workers = 2;
  const Loaded pinned = Load(Open("slowmem://" + name), options);
  EXPECT_TRUE(pinned.metrics.decisions.empty());
  EXPECT_EQ(FetchWorkers(pinned.metrics), 2);
}

// A store whose reads slow down steeply with more of them in flight: a
// step up is undone because the store pushes back, and no step up is kept
// (but the last, which the run may end before judging).
TEST(LoaderNetworkTest, FetchWorkersBackOffWhenTheStorePushesBack) {
  const std::string name = FreshMemName("pushback");
  const LoaderOptions options = SlowDataset(name, 120);
  slow_mode = 1;
  const Loaded run = Load(Open("slowmem://" + name), options);
  slow_mode = 0;
  bool backed_off = false;
  int ups = 0, undone = 0;
  for (const Decision& d : run.metrics.decisions) {
    const bool undo = d.reason.find("undo") != std::string::npos;
    if (undo && d.reason.find("pushes back") != std::string::npos) {
      backed_off = true;
    }
    if (d.to > d.from && !undo) ++ups;
    if (d.to < d.from && undo) ++undone;
  }
  EXPECT_TRUE(backed_off);
  EXPECT_GE(undone, ups - 1);
}

}  // namespace
}  // namespace shoal
