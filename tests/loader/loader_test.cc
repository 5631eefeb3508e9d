// The Loader's guarantees, each against something independent of the
// loader: batch contents against the format API's own sequential reads
// (Tensor::Read), permutations and shards against set arithmetic, resume
// against an uninterrupted run, determinism across thread counts, memory
// against the budget, prompt destruction against a clock, and corrupt
// chunks against the error's text.
#include "loader/loader.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "codecs/image_codec.h"
#include "format/dataset.h"
#include "format/internal/mem_store.h"

namespace shoal {
namespace {

constexpr uint64_t kSamples = 1000;

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Sample i of "x": [4, 4 + i % 3] uint16 (ragged), of "y": a uint32 label.
Shape XShape(uint64_t i) { return Shape{4, 4 + i % 3}; }
std::vector<uint16_t> XValues(uint64_t i) {
  std::vector<uint16_t> v(XShape(i).num_elements());
  for (size_t k = 0; k < v.size(); ++k)
    v[k] = static_cast<uint16_t>(Mix(i * 131 + k));
  return v;
}

// A dataset with a ragged lz4 tensor in many small chunks, a fixed-shape
// raw tensor and labels sorted by class (for shuffle quality).
std::shared_ptr<const Dataset> MakeDataset(const std::string& url,
                                           uint64_t n = kSamples) {
  auto ds = Dataset::Create(url, {.overwrite = true, .id_seed = 1});
  EXPECT_TRUE(ds.ok()) << ds.status();
  auto x = (*ds)->CreateTensor({.name = "x",
                                .dtype = DType::kUInt16,
                                .chunk_compression = "lz4",
                                .max_chunk_bytes = 4096,
                                .block_bytes = 4096});
  auto f = (*ds)->CreateTensor(
      {.name = "f", .dtype = DType::kUInt8, .max_chunk_bytes = 4096});
  auto y = (*ds)->CreateTensor({.name = "y",
                                .htype = HType::kClassLabel,
                                .dtype = DType::kUInt32,
                                .rank = 0,
                                .chunk_compression = "lz4"});
  EXPECT_TRUE(x.ok() && f.ok() && y.ok());
  for (uint64_t i = 0; i < n; ++i) {
    const auto xv = XValues(i);
    EXPECT_TRUE((*x)->Append(XShape(i), std::as_bytes(std::span(xv))).ok());
    std::vector<uint8_t> fv(12);
    for (size_t k = 0; k < fv.size(); ++k) fv[k] = static_cast<uint8_t>(i + k);
    EXPECT_TRUE((*f)->Append(Shape{12}, std::as_bytes(std::span(fv))).ok());
    const uint32_t label = static_cast<uint32_t>(i * 10 / n);
    EXPECT_TRUE(
        (*y)->Append(Shape{}, std::as_bytes(std::span(&label, 1))).ok());
  }
  EXPECT_TRUE((*ds)->Close().ok());
  auto opened = Dataset::Open(url, {.read_only = true});
  EXPECT_TRUE(opened.ok()) << opened.status();
  return std::shared_ptr<const Dataset>(std::move(*opened));
}

// A batch as plain values: indices and every tensor's bytes, offsets and
// shapes.
struct Flat {
  uint64_t epoch = 0, index = 0;
  std::vector<uint64_t> indices;
  std::vector<std::vector<std::byte>> data;
  std::vector<std::vector<uint64_t>> offsets;
  std::vector<std::vector<Shape>> shapes;
  bool operator==(const Flat&) const = default;
};

Flat Flatten(const Batch& b) {
  Flat f{b.epoch(), b.index(), {b.indices().begin(), b.indices().end()}};
  for (const TensorBatch& t : b.tensors()) {
    f.data.emplace_back(t.data().begin(), t.data().end());
    f.offsets.emplace_back(t.offsets().begin(), t.offsets().end());
    f.shapes.emplace_back(t.shapes().begin(), t.shapes().end());
  }
  return f;
}

// Every batch of the run; epoch ends are marked by an empty Flat with
// index UINT64_MAX.
Result<std::vector<Flat>> RunAll(std::shared_ptr<const Dataset> ds,
                                 const LoaderOptions& options,
                                 std::string_view state = {},
                                 uint64_t max_batches = UINT64_MAX,
                                 std::string* state_out = nullptr) {
  SHOAL_ASSIGN_OR_RETURN(auto loader, Loader::Create(ds, options, state));
  std::vector<Flat> out;
  uint64_t taken = 0;
  while (!loader->done() && taken < max_batches) {
    SHOAL_ASSIGN_OR_RETURN(std::optional<Batch> batch, loader->Next());
    if (!batch) {
      out.push_back({.index = UINT64_MAX});
      continue;
    }
    out.push_back(Flatten(*batch));
    ++taken;
  }
  if (state_out) *state_out = loader->State();
  return out;
}

std::string FreshUrl(const std::string& name) {
  ResetMemStoreForTesting(name);
  return "mem://" + name;
}

TEST(LoaderTest, BatchesHoldExactlyWhatTheFormatReads) {
  auto ds = MakeDataset(FreshUrl("loader-values"));
  for (ShuffleMode mode :
       {ShuffleMode::kNone, ShuffleMode::kChunk, ShuffleMode::kFull}) {
    SCOPED_TRACE(ShuffleModeName(mode));
    LoaderOptions options{.batch_size = 64,
                          .shuffle = mode,
                          .shuffle_buffer = 100,
                          .seed = 5,
                          .threads = 2};
    auto run = RunAll(ds, options);
    ASSERT_TRUE(run.ok()) << run.status();
    std::set<uint64_t> seen;
    for (const Flat& b : *run) {
      if (b.index == UINT64_MAX) continue;
      ASSERT_EQ(b.data.size(), 3u);  // x, f, y in dataset order
      for (size_t k = 0; k < b.indices.size(); ++k) {
        const uint64_t i = b.indices[k];
        EXPECT_TRUE(seen.insert(i).second) << "sample " << i << " twice";
        for (size_t t = 0; t < 3; ++t) {
          const char* names[] = {"x", "f", "y"};
          auto want = (*ds->tensor(names[t]))->Read(i);
          ASSERT_TRUE(want.ok());
          EXPECT_EQ(b.shapes[t][k], want->shape);
          const uint64_t size = b.offsets[t][k + 1] - b.offsets[t][k];
          ASSERT_EQ(size, want->data.size());
          EXPECT_EQ(std::memcmp(b.data[t].data() + b.offsets[t][k],
                                want->data.data(), size),
                    0)
              << names[t] << " sample " << i;
        }
      }
    }
    EXPECT_EQ(seen.size(), kSamples) << "an epoch is a permutation";
    if (mode == ShuffleMode::kNone) {
      EXPECT_EQ((*run)[0].indices[0], 0u);
      EXPECT_EQ((*run)[0].indices[63], 63u);
    }
  }
}

// A full shuffle holds the chunks when they fit the budget and reads sample
// by sample when they do not: the batches are the same either way.
TEST(LoaderTest, FullShuffleGivesTheSameBatchesResidentOrSampleBySample) {
  auto ds = MakeDataset(FreshUrl("loader-full-paths"), 3000);
  // Default budget: the chunks fit and are held; 16 KiB: far less than
  // the chunks, so samples are read one by one.
  std::vector<std::vector<Flat>> runs;
  for (const uint64_t budget : {uint64_t{1} << 30, uint64_t{16} << 10}) {
    LoaderOptions options{.batch_size = 64,
                          .shuffle = ShuffleMode::kFull,
                          .seed = 11,
                          .threads = 2,
                          .memory_budget = budget};
    auto loader = Loader::Create(ds, options);
    ASSERT_TRUE(loader.ok()) << loader.status();
    EXPECT_EQ((*loader)->per_sample_reads(), budget < (1u << 20));
    loader->reset();
    auto run = RunAll(ds, options);
    ASSERT_TRUE(run.ok()) << run.status();
    runs.push_back(std::move(*run));
  }
  EXPECT_TRUE(runs[0] == runs[1]);
  EXPECT_GT(runs[0].size(), 40u);
}

// Under the chunk shuffle the samples in the shuffle buffer keep their
// chunks in memory: a budget that cannot hold them lowers the buffer, and
// the run then stays near the budget (before, the loader kept every chunk
// the plan wanted and ran far past it).
TEST(LoaderTest, ChunkShuffleBufferFitsTheBudget) {
  auto ds = MakeDataset(FreshUrl("loader-shuffle-budget"), 4000);
  LoaderOptions options{.tensors = {"f"},
                        .batch_size = 16,
                        .shuffle = ShuffleMode::kChunk,
                        .shuffle_buffer = 2000,
                        .seed = 4,
                        .threads = 2,
                        .memory_budget = 16 << 10};
  auto loader = Loader::Create(ds, options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  EXPECT_LT((*loader)->shuffle_buffer(), 2000u);
  EXPECT_GE((*loader)->shuffle_buffer(), 1u);
  uint64_t samples = 0;
  while (!(*loader)->done()) {
    auto batch = (*loader)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status();
    if (*batch) samples += (*batch)->size();
  }
  EXPECT_EQ(samples, 4000u);
  // The budget, plus one batch and its chunks admitted alone at most.
  EXPECT_LE((*loader)->metrics().memory_peak, (16u << 10) + 16 * 12 + 2 * 4096);
  options.memory_budget = 1 << 30;
  auto roomy = Loader::Create(ds, options);
  ASSERT_TRUE(roomy.ok());
  EXPECT_EQ((*roomy)->shuffle_buffer(), 2000u);
}

TEST(LoaderTest, ThreadCountsAreCapped) {
  auto ds = MakeDataset(FreshUrl("loader-threads"), 100);
  for (const int threads : {-1, kMaxPipelineThreads + 1, 100000}) {
    auto loader = Loader::Create(ds, {.threads = threads});
    ASSERT_FALSE(loader.ok());
    EXPECT_EQ(loader.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(
        loader.status().message().find("threads must be 0 (all cores) .. 256"),
        std::string::npos)
        << loader.status();
  }
  EXPECT_TRUE(Loader::Create(ds, {.threads = kMaxPipelineThreads}).ok());
}

TEST(LoaderTest, SameSeedSameBatchesAtAnyThreadCount) {
  auto ds = MakeDataset(FreshUrl("loader-determinism"));
  LoaderOptions options{.batch_size = 50,
                        .epochs = 2,
                        .shuffle_buffer = 200,
                        .seed = 11,
                        .threads = 1};
  auto one = RunAll(ds, options);
  ASSERT_TRUE(one.ok()) << one.status();
  for (int threads : {2, 8}) {
    options.threads = threads;
    options.prefetch_batches = threads == 8 ? 3 : 0;
    auto other = RunAll(ds, options);
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_TRUE(*one == *other) << threads << " threads differ from 1";
  }
  // Epochs differ from each other, and another seed differs.
  std::vector<uint64_t> e0, e1;
  for (const Flat& b : *one) {
    if (b.index == UINT64_MAX) continue;
    (b.epoch == 0 ? e0 : e1)
        .insert((b.epoch == 0 ? e0 : e1).end(), b.indices.begin(),
                b.indices.end());
  }
  ASSERT_EQ(e0.size(), kSamples);
  ASSERT_EQ(e1.size(), kSamples);
  EXPECT_NE(e0, e1);
  options.seed = 12;
  auto reseeded = RunAll(ds, options);
  ASSERT_TRUE(reseeded.ok());
  EXPECT_FALSE(*one == *reseeded);
}

TEST(LoaderTest, ShardsAreDisjointCoveringAndEqual) {
  auto ds = MakeDataset(FreshUrl("loader-shards"), 997);
  for (bool drop_last : {false, true}) {
    std::set<uint64_t> all;
    std::vector<size_t> batch_counts;
    uint64_t total = 0;
    for (uint32_t rank = 0; rank < 3; ++rank) {
      LoaderOptions options{.tensors = {"f"},
                            .batch_size = 32,
                            .drop_last = drop_last,
                            .seed = 3,
                            .rank = rank,
                            .world_size = 3,
                            .threads = 2};
      auto run = RunAll(ds, options);
      ASSERT_TRUE(run.ok()) << run.status();
      size_t batches = 0;
      for (const Flat& b : *run) {
        if (b.index == UINT64_MAX) continue;
        ++batches;
        if (drop_last) {
          EXPECT_EQ(b.indices.size(), 32u);
        }
        for (uint64_t i : b.indices) {
          EXPECT_TRUE(all.insert(i).second) << "sample " << i << " twice";
          ++total;
        }
      }
      batch_counts.push_back(batches);
    }
    EXPECT_EQ(batch_counts[0], batch_counts[1]);
    EXPECT_EQ(batch_counts[1], batch_counts[2]);
    if (drop_last) {
      EXPECT_EQ(total, 997u / (3 * 32) * 3 * 32);
    } else {
      EXPECT_EQ(all.size(), 997u) << "shards cover the epoch";
    }
  }
}

TEST(LoaderTest, ResumeYieldsExactlyTheRemainingBatches) {
  auto ds = MakeDataset(FreshUrl("loader-resume"));
  LoaderOptions options{.batch_size = 40,
                        .epochs = 2,
                        .shuffle_buffer = 150,
                        .seed = 9,
                        .threads = 2};
  auto whole = RunAll(ds, options);
  ASSERT_TRUE(whole.ok()) << whole.status();
  std::vector<Flat> want;
  for (const Flat& b : *whole)
    if (b.index != UINT64_MAX) want.push_back(b);
  for (uint64_t k : {0, 1, 7, 24, 25, 26, 49}) {
    SCOPED_TRACE(k);
    std::string state;
    auto first = RunAll(ds, options, {}, k, &state);
    ASSERT_TRUE(first.ok()) << first.status();
    auto rest = RunAll(ds, options, state);
    ASSERT_TRUE(rest.ok()) << rest.status();
    std::vector<Flat> got;
    for (auto* part : {&*first, &*rest})
      for (const Flat& b : *part)
        if (b.index != UINT64_MAX) got.push_back(b);
    EXPECT_TRUE(got == want) << "resumed run differs";
  }
  // A state for other options is refused.
  std::string state;
  ASSERT_TRUE(RunAll(ds, options, {}, 3, &state).ok());
  options.batch_size = 41;
  EXPECT_EQ(Loader::Create(ds, options, state).status().code(),
            StatusCode::kInvalidArgument);
}

// Chunks of 1 MiB and more are decompressed into recycled buffers: across
// epochs, every batch still holds exactly what the format reads.
TEST(LoaderTest, RecycledChunkBuffersHoldTheRightBytes) {
  const std::string url = FreshUrl("loader-pool");
  {
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(ds.ok());
    auto t = (*ds)->CreateTensor({.name = "v",
                                  .dtype = DType::kUInt8,
                                  .chunk_compression = "lz4",
                                  .max_chunk_bytes = 2 << 20});
    ASSERT_TRUE(t.ok());
    std::vector<uint8_t> v(4096);
    for (uint64_t i = 0; i < 3000; ++i) {
      for (size_t k = 0; k < v.size(); ++k)
        v[k] = static_cast<uint8_t>(Mix(i * 7919 + k / 64));
      ASSERT_TRUE((*t)->Append(Shape{4096}, std::as_bytes(std::span(v))).ok());
    }
    ASSERT_TRUE((*ds)->Close().ok());
  }
  auto opened = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(opened.ok());
  std::shared_ptr<const Dataset> ds(std::move(*opened));
  const Tensor* t = *ds->tensor("v");
  ASSERT_GE(t->Extents().size(), 5u);
  LoaderOptions options{.batch_size = 100,
                        .epochs = 3,
                        .shuffle_buffer = 300,
                        .seed = 2,
                        .threads = 2};
  auto loader = Loader::Create(ds, options);
  ASSERT_TRUE(loader.ok());
  uint64_t checked = 0;
  while (!(*loader)->done()) {
    auto b = (*loader)->Next();
    ASSERT_TRUE(b.ok()) << b.status();
    if (!*b) continue;
    const TensorBatch& tb = *(*b)->tensors().begin();
    for (size_t k = 0; k < (*b)->size(); ++k, ++checked) {
      auto want = t->Read((*b)->indices()[k]);
      ASSERT_TRUE(want.ok());
      ASSERT_EQ(std::memcmp(tb.sample(k).data(), want->data.data(), 4096), 0)
          << "epoch " << (*b)->epoch() << " sample " << (*b)->indices()[k];
    }
  }
  EXPECT_EQ(checked, 9000u);
  EXPECT_GT((*loader)->metrics().chunks_read, 15u);
}

TEST(LoaderTest, SetEpochRestartsAtThatEpoch) {
  auto ds = MakeDataset(FreshUrl("loader-set-epoch"), 300);
  LoaderOptions options{.batch_size = 32, .epochs = 3, .seed = 8, .threads = 2};
  auto whole = RunAll(ds, options);
  ASSERT_TRUE(whole.ok()) << whole.status();
  std::vector<Flat> epoch2;
  for (const Flat& b : *whole)
    if (b.index != UINT64_MAX && b.epoch == 2) epoch2.push_back(b);
  ASSERT_FALSE(epoch2.empty());

  auto loader = Loader::Create(ds, options);
  ASSERT_TRUE(loader.ok());
  // Take a few batches of epoch 0, then jump: prefetched work is dropped.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*loader)->Next().ok());
  ASSERT_TRUE((*loader)->SetEpoch(2).ok());
  std::vector<Flat> got;
  while (!(*loader)->done()) {
    auto b = (*loader)->Next();
    ASSERT_TRUE(b.ok()) << b.status();
    if (*b) got.push_back(Flatten(**b));
  }
  EXPECT_TRUE(got == epoch2) << "epoch 2 after SetEpoch differs";
  // Only the buffers the loader keeps for reuse (batch buffers, free chunk
  // buffers) stay charged: the dropped batches' chunks and reservations
  // went back.
  const LoaderMetrics m = (*loader)->metrics();
  EXPECT_GT(m.batch_buffer_bytes, 0u);
  EXPECT_EQ(m.memory_in_use, m.batch_buffer_bytes + m.free_chunk_buffer_bytes)
      << "bytes left charged";
}

// metrics() may be called from any thread (loader.h), also while SetEpoch
// replaces the run. It read the pipeline pointer that SetEpoch resets
// without synchronisation: a data race under TSan (make test-tsan), and a
// use-after-free when the timing is unlucky.
TEST(LoaderTest, MetricsFromAnotherThreadWhileSetEpoch) {
  auto ds = MakeDataset(FreshUrl("loader-metrics-race"), 300);
  LoaderOptions options{
      .batch_size = 16, .epochs = 50, .seed = 3, .threads = 2};
  auto loader = Loader::Create(ds, options);
  ASSERT_TRUE(loader.ok());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0};
  std::thread watcher([&] {
    while (!stop.load()) {
      const LoaderMetrics m = (*loader)->metrics();
      reads.fetch_add(1 + 0 * m.batches);
    }
  });
  for (uint64_t epoch = 0; epoch < 40; ++epoch) {
    ASSERT_TRUE((*loader)->SetEpoch(epoch).ok());
    auto b = (*loader)->Next();
    ASSERT_TRUE(b.ok()) << b.status();
  }
  stop = true;
  watcher.join();
  EXPECT_GT(reads.load(), 0u);
}

TEST(LoaderTest, MemoryStaysUnderTheBudgetWithASlowConsumer) {
  auto ds = MakeDataset(FreshUrl("loader-memory"), 4000);
  const uint64_t budget = 64 << 10;
  LoaderOptions options{.tensors = {"x"},
                        .batch_size = 32,
                        .shuffle_buffer = 64,
                        .seed = 1,
                        .threads = 2,
                        .memory_budget = budget,
                        .prefetch_batches = 16};
  auto loader = Loader::Create(ds, options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  uint64_t batches = 0;
  while (!(*loader)->done()) {
    auto batch = (*loader)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status();
    if (!*batch) continue;
    ++batches;
    if (batches % 10 == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    const LoaderMetrics m = (*loader)->metrics();
    ASSERT_LE(m.memory_in_use, budget);
  }
  const LoaderMetrics m = (*loader)->metrics();
  EXPECT_LE(m.memory_peak, budget);
  EXPECT_GT(m.memory_peak, budget / 4) << "the budget was used";
  EXPECT_EQ(m.samples, 4000u);
  EXPECT_GT(m.chunks_read, 10u);
}

// A budget smaller than one batch: each batch is still made, alone, and the
// accounted peak is that one batch and its chunks, not the prefetch depth.
TEST(LoaderTest, ABatchLargerThanTheBudgetIsMadeAlone) {
  auto ds = MakeDataset(FreshUrl("loader-tiny-budget"), 2000);
  LoaderOptions options{.tensors = {"f"},
                        .batch_size = 500,
                        .shuffle = ShuffleMode::kNone,
                        .threads = 2,
                        .memory_budget = 1024,
                        .prefetch_batches = 8};
  auto loader = Loader::Create(ds, options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  const uint64_t batch_bytes = 500 * 12;
  EXPECT_EQ((*loader)->typical_batch_bytes(), batch_bytes);
  uint64_t samples = 0;
  while (!(*loader)->done()) {
    auto batch = (*loader)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status();
    if (!*batch) continue;
    samples += (*batch)->size();
    const TensorBatch& f = (*batch)->tensors()[0];
    ASSERT_EQ(f.sample(3)[0], std::byte(((*batch)->indices()[3] + 0) & 0xff));
  }
  EXPECT_EQ(samples, 2000u);
  const LoaderMetrics m = (*loader)->metrics();
  // One batch buffer (the items are reused, so no second one is ever made)
  // plus the chunks of the batch being made: "f" has 4 KiB chunks.
  EXPECT_EQ(m.batch_buffer_bytes, batch_bytes);
  EXPECT_LE(m.memory_peak, batch_bytes + 3 * 4096 + 4096);
}

TEST(LoaderTest, DestroyingMidEpochIsPrompt) {
  auto ds = MakeDataset(FreshUrl("loader-destroy"), 4000);
  for (int consumed : {0, 1, 10}) {
    LoaderOptions options{.batch_size = 16, .seed = 2, .threads = 2};
    auto loader = Loader::Create(ds, options);
    ASSERT_TRUE(loader.ok());
    std::optional<Batch> kept;
    for (int i = 0; i < consumed; ++i) {
      auto b = (*loader)->Next();
      ASSERT_TRUE(b.ok());
      kept = std::move(*b);
    }
    const auto start = std::chrono::steady_clock::now();
    loader->reset();
    const double ms = std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - start)
                          .count();
    // 100 ms; more under sanitizers (see tests/loader/CMakeLists.txt).
    EXPECT_LT(ms, 100 * SHOAL_TEST_TIME_SCALE)
        << "after " << consumed << " batches";
    // A batch outlives its loader.
    if (kept) {
      EXPECT_GT(kept->size(), 0u);
    }
  }
}

// Flips a byte in the middle of the chunk object that holds `sample` of
// tensor `name` of a file:// dataset, returning the chunk's key.
std::string CorruptChunkOf(const std::string& dir, const Dataset& ds,
                           const std::string& name, uint64_t sample) {
  const Tensor* t = *ds.tensor(name);
  for (const TensorExtent& e : t->Extents()) {
    if (sample < e.first_sample || sample >= e.first_sample + e.num_samples)
      continue;
    const std::string path = dir + "/" + e.chunk_key;
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0, std::ios::end);
    const auto size = static_cast<std::streamoff>(f.tellg());
    f.seekg(size - 40);
    char c;
    f.read(&c, 1);
    c ^= 0x10;
    f.seekp(size - 40);
    f.write(&c, 1);
    return e.chunk_key;
  }
  return "";
}

TEST(LoaderTest, CorruptChunkIsAnErrorNamingItOrSkippedAndCounted) {
  const std::string dir = std::filesystem::temp_directory_path() /
                          ("shoal_loader_corrupt_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  auto ds = MakeDataset(dir, 600);
  const std::string key = CorruptChunkOf(dir, *ds, "x", 300);
  ASSERT_FALSE(key.empty());
  auto reopened = Dataset::Open(dir, {.read_only = true});
  ASSERT_TRUE(reopened.ok());
  ds = std::shared_ptr<const Dataset>(std::move(*reopened));

  LoaderOptions options{
      .batch_size = 20, .shuffle = ShuffleMode::kNone, .threads = 2};
  auto loader = Loader::Create(ds, options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  uint64_t good = 0;
  Status error;
  while (!(*loader)->done()) {
    auto b = (*loader)->Next();
    if (!b.ok()) {
      error = b.status();
      break;
    }
    if (*b) good += (*b)->size();
  }
  ASSERT_FALSE(error.ok()) << "the corrupt chunk went unnoticed";
  EXPECT_EQ(error.code(), StatusCode::kCorruption) << error;
  const std::string message(error.message());
  EXPECT_NE(message.find("tensor 'x'"), std::string::npos) << message;
  EXPECT_NE(message.find(key), std::string::npos) << message;
  EXPECT_NE(message.find("sample "), std::string::npos) << message;
  EXPECT_GT(good, 0u) << "batches before the damage come first";
  EXPECT_LE(good, 300u);
  // Sticky.
  EXPECT_FALSE((*loader)->Next().ok());

  options.on_error = ErrorPolicy::kSkip;
  auto skipping = RunAll(ds, options);
  ASSERT_TRUE(skipping.ok()) << skipping.status();
  uint64_t samples = 0;
  for (const Flat& b : *skipping) samples += b.indices.size();
  auto again = Loader::Create(ds, options);
  ASSERT_TRUE(again.ok());
  while (!(*again)->done()) ASSERT_TRUE((*again)->Next().ok());
  const LoaderMetrics m = (*again)->metrics();
  EXPECT_GT(m.skipped_samples, 0u);
  EXPECT_EQ(m.samples + m.skipped_samples, 600u);
  EXPECT_EQ(samples, m.samples);
  std::filesystem::remove_all(dir);
}

TEST(LoaderTest, ShuffleQualityOfChunkAndFull) {
  auto ds = MakeDataset(FreshUrl("loader-quality"), 4000);
  std::vector<uint32_t> labels(4000);
  for (uint64_t i = 0; i < 4000; ++i)
    labels[i] = static_cast<uint32_t>(i * 10 / 4000);
  std::map<ShuffleMode, ShuffleQuality> quality;
  for (ShuffleMode mode :
       {ShuffleMode::kNone, ShuffleMode::kChunk, ShuffleMode::kFull}) {
    // x has ~80 chunks and the most bytes, so its chunks drive the plan.
    LoaderOptions options{.tensors = {"x", "y"},
                          .batch_size = 64,
                          .shuffle = mode,
                          .shuffle_buffer = 400,
                          .seed = 4,
                          .threads = 2};
    auto loader = Loader::Create(ds, options);
    ASSERT_TRUE(loader.ok());
    const EpochPlan& plan = (*loader)->plan();
    auto q = MeasureShuffle(plan.AllSamples(), plan.BatchEnds(), labels);
    ASSERT_TRUE(q.ok()) << q.status();
    quality[mode] = *q;
  }
  EXPECT_NEAR(quality[ShuffleMode::kNone].spearman, 1.0, 1e-9);
  EXPECT_LT(std::abs(quality[ShuffleMode::kFull].spearman), 0.05);
  EXPECT_NEAR(quality[ShuffleMode::kFull].mean_displacement, 1.0 / 3, 0.03);
  EXPECT_GT(quality[ShuffleMode::kFull].classes_per_batch, 9.0);
  // Chunk shuffle: much better than none, classes mixed within batches.
  EXPECT_LT(std::abs(quality[ShuffleMode::kChunk].spearman), 0.5);
  EXPECT_GT(quality[ShuffleMode::kChunk].classes_per_batch, 1.5);
}

// JPEG images: a decode transform gives the codec's own full decode, and a
// training transform gives fixed-size crops that do not depend on the
// thread count.
TEST(LoaderTest, ImageTransformsDecodeJpegSamples) {
  const std::string url = FreshUrl("loader-images");
  auto codec = MakeImageCodec("jpeg");
  ASSERT_TRUE(codec.ok());
  {
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(ds.ok());
    auto t = (*ds)->CreateTensor({.name = "images",
                                  .htype = HType::kImage,
                                  .sample_compression = "jpeg",
                                  .max_chunk_bytes = 16 << 10});
    ASSERT_TRUE(t.ok());
    for (uint64_t i = 0; i < 40; ++i) {
      const uint64_t h = 40 + i % 7, w = 50 + i % 5;
      std::vector<uint8_t> px(h * w * 3);
      for (size_t k = 0; k < px.size(); ++k)
        px[k] = static_cast<uint8_t>((k / 3 % w) * 4 + (k / 3 / w) * 2 + i);
      auto jpeg = (*codec)->Encode(Shape{h, w, 3}, DType::kUInt8,
                                   std::as_bytes(std::span(px)), {});
      ASSERT_TRUE(jpeg.ok());
      ASSERT_TRUE((*t)->AppendEncoded(jpeg->span()).ok());
    }
    ASSERT_TRUE((*ds)->Close().ok());
  }
  auto opened = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(opened.ok());
  std::shared_ptr<const Dataset> ds(std::move(*opened));
  const Tensor* images = *ds->tensor("images");

  LoaderOptions decode{.batch_size = 8, .seed = 1, .threads = 2};
  decode.transforms["images"] = {.kind = ImageTransform::Kind::kDecode};
  auto run = RunAll(ds, decode);
  ASSERT_TRUE(run.ok()) << run.status();
  uint64_t seen = 0;
  for (const Flat& b : *run) {
    for (size_t k = 0; k < b.indices.size(); ++k, ++seen) {
      auto stored = images->ReadStored(b.indices[k]);
      ASSERT_TRUE(stored.ok());
      auto info = (*codec)->ReadInfo(stored->span());
      ASSERT_TRUE(info.ok());
      std::vector<std::byte> want(size_t{info->height} * info->width * 3);
      ASSERT_TRUE((*codec)->Decode(stored->span(), {}, want).ok());
      EXPECT_EQ(b.shapes[0][k], (Shape{info->height, info->width, 3}));
      ASSERT_EQ(b.offsets[0][k + 1] - b.offsets[0][k], want.size());
      EXPECT_EQ(std::memcmp(b.data[0].data() + b.offsets[0][k], want.data(),
                            want.size()),
                0)
          << "sample " << b.indices[k];
    }
  }
  EXPECT_EQ(seen, 40u);

  LoaderOptions train{.batch_size = 8, .seed = 3, .threads = 1};
  train.transforms["images"] = ImageTransform::Train(24);
  auto one = RunAll(ds, train);
  train.threads = 4;
  auto four = RunAll(ds, train);
  ASSERT_TRUE(one.ok() && four.ok());
  EXPECT_TRUE(*one == *four);
  auto loader = Loader::Create(ds, train);
  ASSERT_TRUE(loader.ok());
  auto batch = (*loader)->Next();
  ASSERT_TRUE(batch.ok() && batch->has_value());
  auto t = (*batch)->tensor("images");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE((*t)->ragged());
  EXPECT_EQ((*t)->shape(), (Shape{8, 24, 24, 3}));
  EXPECT_EQ((*t)->dtype(), DType::kUInt8);
}

TEST(LoaderTest, BadOptionsAreRefused) {
  auto ds = MakeDataset(FreshUrl("loader-options"), 10);
  EXPECT_EQ(Loader::Create(ds, {.tensors = {"nope"}}).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(Loader::Create(ds, {.tensors = {"_shape/x"}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Loader::Create(ds, {.batch_size = 0}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Loader::Create(ds, {.rank = 2, .world_size = 2}).status().code(),
            StatusCode::kInvalidArgument);
  LoaderOptions transform{.tensors = {"x"}};
  transform.transforms["x"] = {
      .kind = ImageTransform::Kind::kResize, .height = 8, .width = 8};
  EXPECT_EQ(Loader::Create(ds, transform).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Loader::Create(ds, {}, "garbage").status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shoal
