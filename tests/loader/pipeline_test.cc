// Tests of the pipeline core (loader/pipeline.h): ordered delivery at any
// thread count, the byte budget and in-flight bounds, errors, cancellation
// and destruction, run-time concurrency changes, metrics and item reuse.
//
// Every test runs under a watchdog that aborts the binary if the pipeline
// hangs, so a deadlock fails loudly instead of stalling ctest.
#include "loader/pipeline.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace shoal {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Aborts the process when a test takes longer than `limit`: a hung pipeline
// must fail the run, not block it.
class Watchdog {
 public:
  explicit Watchdog(std::chrono::seconds limit = std::chrono::seconds(60))
      : thread_([this, limit] {
          std::unique_lock lock(mu_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr, "watchdog: test hung for %lld s\n",
                         static_cast<long long>(limit.count()));
            std::abort();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// A deterministic pseudo-random number per (seq, salt), so runs at
// different thread counts see the same "random" work.
uint64_t Mix(uint64_t seq, uint64_t salt) {
  uint64_t x = seq * 0x9E3779B97F4A7C15ull + salt * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 29;
  return x;
}

void SleepUs(uint64_t us) {
  std::this_thread::sleep_for(std::chrono::microseconds(us));
}

struct Item {
  uint64_t seq = 0;
  uint64_t cost = 0;
  uint64_t value = 0;
  int uses = 0;  // times the feeder filled this object
};

// A feeder of `n` items (n = 0: endless) costing `cost(seq)` bytes each.
Pipeline<Item>::Feeder CountingFeeder(
    uint64_t n, std::function<uint64_t(uint64_t)> cost = nullptr) {
  return [n, cost](uint64_t seq, Item& item, uint64_t* bytes) -> Result<bool> {
    if (n != 0 && seq == n) return false;
    item.seq = seq;
    item.cost = cost ? cost(seq) : 1;
    item.value = seq;
    ++item.uses;
    *bytes = item.cost;
    return true;
  };
}

// Calls Next() until end of stream or an error; returns the sequence numbers
// delivered and sets `*final` to OK (end) or the error.
std::vector<uint64_t> Drain(Pipeline<Item>& pipeline, Status* final,
                            std::function<void(Item&)> on_item = nullptr) {
  std::vector<uint64_t> seqs;
  while (true) {
    auto next = pipeline.Next();
    if (!next.ok()) {
      *final = next.status();
      return seqs;
    }
    if (!next->has_value()) {
      *final = Status::OK();
      return seqs;
    }
    auto& lease = **next;
    EXPECT_EQ(lease.sequence(), lease->seq);
    seqs.push_back(lease.sequence());
    if (on_item) on_item(*lease);
  }
}

std::vector<uint64_t> Iota(uint64_t n) {
  std::vector<uint64_t> v(n);
  for (uint64_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

// --- Ordering ----------------------------------------------------------------

class OrderingTest : public testing::TestWithParam<int> {};

TEST_P(OrderingTest, DeliversInFeederOrderWithRandomDelays) {
  Watchdog watchdog;
  constexpr uint64_t kItems = 150;
  Pipeline<Item> pipeline({.threads = GetParam(), .max_in_flight = 12});
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "jitter", .concurrency = 4},
                            [](Item& item) {
                              SleepUs(Mix(item.seq, 1) % 1500);
                              item.value = item.value * 3 + 1;
                              return Status::OK();
                            })
                  .ok());
  // A serial-in-order stage must see 0, 1, 2, ... even though the parallel
  // stage before it finishes items out of order.
  uint64_t expected_by_serial = 0;
  bool serial_in_order = true;
  uint64_t running_hash = 0;
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "ordered",
                             .concurrency = StageOptions::kSerialInOrder},
                            [&](Item& item) {
                              if (item.seq != expected_by_serial++) {
                                serial_in_order = false;
                              }
                              running_hash = running_hash * 31 + item.value;
                              item.value = running_hash;
                              return Status::OK();
                            })
                  .ok());
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "jitter2", .concurrency = 3},
                            [](Item& item) {
                              SleepUs(Mix(item.seq, 2) % 1000);
                              return Status::OK();
                            })
                  .ok());
  ASSERT_TRUE(pipeline.Start(CountingFeeder(kItems)).ok());

  // The value of item k depends on all items before it through the serial
  // stage, so it is the same at any thread count only if the order is.
  uint64_t hash = 0;
  std::vector<uint64_t> expected_values;
  for (uint64_t seq = 0; seq < kItems; ++seq) {
    hash = hash * 31 + seq * 3 + 1;
    expected_values.push_back(hash);
  }
  std::vector<uint64_t> values;
  Status final;
  auto seqs = Drain(pipeline, &final,
                    [&](Item& item) { values.push_back(item.value); });
  EXPECT_TRUE(final.ok()) << final;
  EXPECT_EQ(seqs, Iota(kItems));
  EXPECT_EQ(values, expected_values);
  EXPECT_TRUE(serial_in_order);
  // End of stream is sticky.
  auto again = pipeline.Next();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->has_value());
  EXPECT_EQ(pipeline.metrics().threads, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Threads, OrderingTest, testing::Values(1, 2, 8));

TEST(PipelineTest, NoStagesDeliversFeederOutput) {
  Watchdog watchdog;
  Pipeline<Item> pipeline({.threads = 2});
  ASSERT_TRUE(pipeline.Start(CountingFeeder(20)).ok());
  Status final;
  EXPECT_EQ(Drain(pipeline, &final), Iota(20));
  EXPECT_TRUE(final.ok()) << final;
}

TEST(PipelineTest, EmptyStreamEndsAtOnce) {
  Watchdog watchdog;
  Pipeline<Item> pipeline({.threads = 2});
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "never"},
                            [](Item&) {
                              ADD_FAILURE() << "body ran on empty stream";
                              return Status::OK();
                            })
                  .ok());
  ASSERT_TRUE(pipeline
                  .Start([](uint64_t, Item&, uint64_t*) -> Result<bool> {
                    return false;
                  })
                  .ok());
  auto next = pipeline.Next();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_FALSE(next->has_value());
}

TEST(PipelineTest, RejectsMisuse) {
  Watchdog watchdog;
  {
    Pipeline<Item> pipeline;
    EXPECT_EQ(pipeline.Next().status().code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(pipeline
                  .AddStage({.name = "x", .concurrency = -1},
                            [](Item&) { return Status::OK(); })
                  .code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(pipeline.AddStage({.name = "x"}, nullptr).code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(pipeline.Start(nullptr).code(), StatusCode::kInvalidArgument);
    ASSERT_TRUE(pipeline
                    .AddStage({.name = "serial",
                               .concurrency = StageOptions::kSerialInOrder},
                              [](Item&) { return Status::OK(); })
                    .ok());
    ASSERT_TRUE(pipeline.Start(CountingFeeder(3)).ok());
    EXPECT_EQ(pipeline.Start(CountingFeeder(3)).code(),
              StatusCode::kFailedPrecondition);
    EXPECT_EQ(
        pipeline.AddStage({.name = "late"}, [](Item&) { return Status::OK(); })
            .code(),
        StatusCode::kFailedPrecondition);
    EXPECT_EQ(pipeline.SetConcurrency(0, 2).code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(pipeline.SetConcurrency(1, 2).code(),
              StatusCode::kInvalidArgument);
  }
  {
    Pipeline<Item> pipeline({.max_in_flight = 0});
    EXPECT_EQ(pipeline.Start(CountingFeeder(3)).code(),
              StatusCode::kInvalidArgument);
  }
  {
    Pipeline<Item> pipeline({.threads = -1});
    EXPECT_EQ(pipeline.Start(CountingFeeder(3)).code(),
              StatusCode::kInvalidArgument);
  }
}

// --- Budget, in-flight bound, recycling --------------------------------------

TEST(PipelineTest, ByteBudgetIsNeverExceeded) {
  Watchdog watchdog;
  constexpr uint64_t kBudget = 1000;
  constexpr uint64_t kItems = 60;
  auto cost = [](uint64_t seq) { return 100 + Mix(seq, 3) % 301; };
  std::atomic<uint64_t> held{0};
  std::atomic<uint64_t> max_held{0};
  Pipeline<Item> pipeline(
      {.threads = 4, .budget_bytes = kBudget, .max_in_flight = 16});
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "hold", .concurrency = 4},
                            [&](Item& item) {
                              uint64_t now = held += item.cost;
                              uint64_t old = max_held.load();
                              while (
                                  now > old &&
                                  !max_held.compare_exchange_weak(old, now)) {
                              }
                              return Status::OK();
                            })
                  .ok());
  ASSERT_TRUE(pipeline.Start(CountingFeeder(kItems, cost)).ok());
  uint64_t peak_seen_by_consumer = 0;
  Status final;
  auto seqs = Drain(pipeline, &final, [&](Item& item) {
    peak_seen_by_consumer =
        std::max(peak_seen_by_consumer, pipeline.metrics().budget_in_use);
    std::this_thread::sleep_for(milliseconds(2));  // a slow consumer
    held -= item.cost;                             // before the lease goes back
  });
  EXPECT_TRUE(final.ok()) << final;
  EXPECT_EQ(seqs, Iota(kItems));
  EXPECT_LE(max_held.load(), kBudget);
  // The slow consumer lets the feeder fill the budget: the bound is what
  // held the items back, not something else.
  EXPECT_GT(max_held.load(), kBudget - 400);
  auto metrics = pipeline.metrics();
  EXPECT_LE(metrics.budget_peak, kBudget);
  EXPECT_LE(peak_seen_by_consumer, kBudget);
  EXPECT_GT(metrics.budget_peak, kBudget - 400);
  EXPECT_EQ(metrics.budget_in_use, 0u);
  EXPECT_EQ(metrics.budget_bytes, kBudget);
  EXPECT_GT(metrics.feeder_budget_wait_seconds, 0.0);
  EXPECT_EQ(metrics.items_in_flight, 0u);
}

TEST(PipelineTest, OversizeItemIsAdmittedAlone) {
  Watchdog watchdog;
  constexpr uint64_t kBudget = 1000;
  constexpr uint64_t kHuge = 5000;
  // Items 0-2 and 4-6 fit three at a time; item 3 is bigger than the whole
  // budget.
  auto cost = [](uint64_t seq) { return seq == 3 ? kHuge : 300; };
  std::atomic<uint64_t> held{0};
  std::atomic<bool> huge_released{false};
  bool huge_alone = false;
  bool after_huge_waited = true;
  Pipeline<Item> pipeline(
      {.threads = 2, .budget_bytes = kBudget, .max_in_flight = 8});
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "check", .concurrency = 1},
                            [&](Item& item) {
                              uint64_t before = held.fetch_add(item.cost);
                              if (item.seq == 3) huge_alone = before == 0;
                              if (item.seq > 3 && !huge_released.load()) {
                                after_huge_waited = false;
                              }
                              return Status::OK();
                            })
                  .ok());
  ASSERT_TRUE(pipeline.Start(CountingFeeder(7, cost)).ok());
  Status final;
  auto seqs = Drain(pipeline, &final, [&](Item& item) {
    std::this_thread::sleep_for(milliseconds(3));
    held -= item.cost;
    if (item.seq == 3) huge_released = true;
  });
  EXPECT_TRUE(final.ok()) << final;
  EXPECT_EQ(seqs, Iota(7));
  EXPECT_TRUE(huge_alone);
  EXPECT_TRUE(after_huge_waited);
  EXPECT_EQ(pipeline.metrics().budget_peak, kHuge);
}

TEST(PipelineTest, ItemsInFlightAreBoundedAndRecycled) {
  Watchdog watchdog;
  constexpr int kDepth = 3;
  constexpr uint64_t kItems = 50;
  std::atomic<int> constructed{0};
  std::atomic<int> alive{0};  // filled by the feeder, not yet released
  std::atomic<int> max_alive{0};
  Pipeline<Item> pipeline(
      {.threads = 4, .budget_bytes = 0, .max_in_flight = kDepth}, [&] {
        ++constructed;
        return std::make_unique<Item>();
      });
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "a", .concurrency = 4},
                            [](Item&) { return Status::OK(); })
                  .ok());
  auto feed = CountingFeeder(kItems);
  ASSERT_TRUE(
      pipeline
          .Start([&](uint64_t seq, Item& item, uint64_t* cost) -> Result<bool> {
            auto more = feed(seq, item, cost);
            if (more.ok() && *more) {
              int now = ++alive;
              int old = max_alive.load();
              while (now > old && !max_alive.compare_exchange_weak(old, now)) {
              }
            }
            return more;
          })
          .ok());
  std::set<Item*> objects;
  int max_uses = 0;
  std::vector<uint64_t> seqs;
  // Hold two leases at a time, to see that leases count against the bound.
  std::optional<Pipeline<Item>::Lease> held;
  while (true) {
    auto next = pipeline.Next();
    ASSERT_TRUE(next.ok()) << next.status();
    if (!next->has_value()) break;
    auto& lease = **next;
    seqs.push_back(lease.sequence());
    objects.insert(lease.item());
    max_uses = std::max(max_uses, lease->uses);
    std::this_thread::sleep_for(milliseconds(1));
    if (held) {
      --alive;
      held->Release();
    }
    held = std::move(lease);
  }
  if (held) {
    --alive;
    held->Release();
  }
  EXPECT_EQ(seqs, Iota(kItems));
  EXPECT_LE(max_alive.load(), kDepth);
  EXPECT_EQ(max_alive.load(), kDepth);  // the slow consumer fills the depth
  auto metrics = pipeline.metrics();
  EXPECT_LE(metrics.items_in_flight_peak, static_cast<uint64_t>(kDepth));
  EXPECT_EQ(metrics.items_in_flight, 0u);
  // Item objects are made once per slot and then reused.
  EXPECT_LE(constructed.load(), kDepth);
  EXPECT_EQ(static_cast<int>(objects.size()), constructed.load());
  EXPECT_GE(max_uses, static_cast<int>(kItems) / kDepth);
}

// --- Errors ------------------------------------------------------------------

TEST(PipelineTest, FeederErrorComesAfterEarlierItems) {
  Watchdog watchdog;
  std::atomic<uint64_t> max_fed{0};
  Pipeline<Item> pipeline({.threads = 4, .max_in_flight = 6});
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "slow", .concurrency = 3},
                            [](Item& item) {
                              SleepUs(Mix(item.seq, 4) % 2000);
                              return Status::OK();
                            })
                  .ok());
  auto feed = CountingFeeder(0);
  ASSERT_TRUE(
      pipeline
          .Start([&](uint64_t seq, Item& item, uint64_t* cost) -> Result<bool> {
            max_fed = seq;
            if (seq == 7) return Corruption("bad plan for batch 7");
            return feed(seq, item, cost);
          })
          .ok());
  Status final;
  auto seqs = Drain(pipeline, &final);
  EXPECT_EQ(seqs, Iota(7));
  EXPECT_EQ(final.code(), StatusCode::kCorruption);
  EXPECT_EQ(final.message(), "bad plan for batch 7");
  EXPECT_EQ(pipeline.Next().status(), final);  // sticky
  EXPECT_EQ(max_fed.load(), 7u);               // the feeder stopped
}

// A stage's error reaches the caller after every item before the failed
// one, from a stage on the task arena and from a blocking stage alike.
class StageErrorTest : public testing::TestWithParam<bool> {};

TEST_P(StageErrorTest, StageErrorComesAfterEarlierItems) {
  Watchdog watchdog;
  const bool blocking = GetParam();
  std::atomic<int> last_stage_saw_failed{0};
  Pipeline<Item> pipeline({.threads = 4, .max_in_flight = 8});
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "first", .concurrency = 2},
                            [](Item& item) {
                              SleepUs(Mix(item.seq, 5) % 1000);
                              return Status::OK();
                            })
                  .ok());
  ASSERT_TRUE(
      pipeline
          .AddStage({.name = "middle", .concurrency = 3, .blocking = blocking},
                    [](Item& item) {
                      SleepUs(Mix(item.seq, 6) % 1000);
                      if (item.seq == 10) {
                        return IOError("disk gone at 10");
                      }
                      return Status::OK();
                    })
          .ok());
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "last",
                             .concurrency = StageOptions::kSerialInOrder},
                            [&](Item& item) {
                              if (item.seq == 10) ++last_stage_saw_failed;
                              return Status::OK();
                            })
                  .ok());
  ASSERT_TRUE(pipeline.Start(CountingFeeder(0)).ok());
  Status final;
  auto seqs = Drain(pipeline, &final);
  EXPECT_EQ(seqs, Iota(10));
  EXPECT_EQ(final.code(), StatusCode::kIOError);
  EXPECT_EQ(final.message(), "disk gone at 10");
  EXPECT_EQ(pipeline.Next().status(), final);
  EXPECT_EQ(last_stage_saw_failed.load(),
            0);  // the failed item went no further
}

INSTANTIATE_TEST_SUITE_P(ArenaOrBlocking, StageErrorTest, testing::Bool());

TEST(PipelineTest, LowestFailingItemWinsOverFirstFailure) {
  Watchdog watchdog;
  Pipeline<Item> pipeline({.threads = 4, .max_in_flight = 12});
  // Item 10 fails at once; item 5 fails later in time. A serial run would
  // have stopped at 5, so Next() must report 5.
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "fail", .concurrency = 8},
                            [](Item& item) {
                              if (item.seq == 5) {
                                std::this_thread::sleep_for(milliseconds(40));
                                return Corruption("sample 5");
                              }
                              if (item.seq == 10)
                                return Corruption("sample 10");
                              return Status::OK();
                            })
                  .ok());
  ASSERT_TRUE(pipeline.Start(CountingFeeder(0)).ok());
  Status final;
  auto seqs = Drain(pipeline, &final);
  EXPECT_EQ(seqs, Iota(5));
  EXPECT_EQ(final.message(), "sample 5");
}

TEST(PipelineTest, ExceptionsBecomeInternal) {
  Watchdog watchdog;
  {
    Pipeline<Item> pipeline({.threads = 2});
    ASSERT_TRUE(pipeline
                    .AddStage({.name = "thrower", .concurrency = 2},
                              [](Item& item) -> Status {
                                if (item.seq == 3) {
                                  throw std::runtime_error("boom");
                                }
                                return Status::OK();
                              })
                    .ok());
    ASSERT_TRUE(pipeline.Start(CountingFeeder(0)).ok());
    Status final;
    EXPECT_EQ(Drain(pipeline, &final), Iota(3));
    EXPECT_EQ(final.code(), StatusCode::kInternal);
    EXPECT_NE(final.message().find("boom"), std::string_view::npos) << final;
    EXPECT_NE(final.message().find("thrower"), std::string_view::npos) << final;
  }
  {
    Pipeline<Item> pipeline({.threads = 2});
    ASSERT_TRUE(pipeline
                    .AddStage({.name = "odd",
                               .concurrency = StageOptions::kSerialInOrder},
                              [](Item& item) -> Status {
                                if (item.seq == 2) throw 42;
                                return Status::OK();
                              })
                    .ok());
    ASSERT_TRUE(pipeline.Start(CountingFeeder(0)).ok());
    Status final;
    EXPECT_EQ(Drain(pipeline, &final), Iota(2));
    EXPECT_EQ(final.code(), StatusCode::kInternal);
  }
  {
    Pipeline<Item> pipeline({.threads = 2});
    auto feed = CountingFeeder(0);
    ASSERT_TRUE(pipeline
                    .Start([&](uint64_t seq, Item& item,
                               uint64_t* cost) -> Result<bool> {
                      if (seq == 4) throw std::logic_error("feeder bug");
                      return feed(seq, item, cost);
                    })
                    .ok());
    Status final;
    EXPECT_EQ(Drain(pipeline, &final), Iota(4));
    EXPECT_EQ(final.code(), StatusCode::kInternal);
    EXPECT_NE(final.message().find("feeder bug"), std::string_view::npos);
  }
  {
    Pipeline<Item> pipeline({.threads = 2}, []() -> std::unique_ptr<Item> {
      throw std::bad_alloc();
    });
    ASSERT_TRUE(pipeline.Start(CountingFeeder(0)).ok());
    EXPECT_EQ(pipeline.Next().status().code(), StatusCode::kInternal);
  }
}

// --- Cancellation and destruction --------------------------------------------

// Builds an endless pipeline with short bodies, for the destruction tests.
std::unique_ptr<Pipeline<Item>> EndlessPipeline(PipelineOptions options) {
  auto pipeline = std::make_unique<Pipeline<Item>>(options);
  EXPECT_TRUE(pipeline
                  ->AddStage({.name = "short", .concurrency = 3},
                             [](Item& item) {
                               SleepUs(Mix(item.seq, 7) % 1000);
                               return Status::OK();
                             })
                  .ok());
  EXPECT_TRUE(pipeline
                  ->AddStage({.name = "ordered",
                              .concurrency = StageOptions::kSerialInOrder},
                             [](Item&) { return Status::OK(); })
                  .ok());
  EXPECT_TRUE(pipeline->Start(CountingFeeder(0)).ok());
  return pipeline;
}

TEST(PipelineTest, DestroyMidStreamWhileConsumerIdleIsPrompt) {
  Watchdog watchdog;
  auto pipeline = EndlessPipeline({.threads = 4, .max_in_flight = 16});
  for (int i = 0; i < 5; ++i) {
    auto next = pipeline->Next();
    ASSERT_TRUE(next.ok() && next->has_value());
  }
  // Let the pipeline fill up: items queued in every stage and waiting for
  // the consumer.
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(pipeline->metrics().items_in_flight, 16u);
  auto start = Clock::now();
  pipeline.reset();
  EXPECT_LT(SecondsSince(start), 0.100 * SHOAL_TEST_TIME_SCALE);
}

TEST(PipelineTest, DestroyWhileFeederWaitsForBudgetIsPrompt) {
  Watchdog watchdog;
  auto pipeline = std::make_unique<Pipeline<Item>>(
      PipelineOptions{.threads = 2, .budget_bytes = 100, .max_in_flight = 8});
  ASSERT_TRUE(
      pipeline->AddStage({.name = "pass"}, [](Item&) { return Status::OK(); })
          .ok());
  ASSERT_TRUE(
      pipeline->Start(CountingFeeder(0, [](uint64_t) { return 60; })).ok());
  // The consumer keeps the only item that fits; the feeder then waits for
  // budget that will not come back before the pipeline is destroyed. The
  // lease outlives the pipeline.
  auto next = pipeline->Next();
  ASSERT_TRUE(next.ok() && next->has_value());
  Pipeline<Item>::Lease lease = std::move(**next);
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (pipeline->metrics().feeder.items < 1 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  std::this_thread::sleep_for(milliseconds(20));
  auto metrics = pipeline->metrics();
  EXPECT_EQ(metrics.feeder.items, 1u);  // the second item is not admitted
  EXPECT_EQ(metrics.budget_in_use, 60u);
  auto start = Clock::now();
  pipeline.reset();
  EXPECT_LT(SecondsSince(start), 0.100 * SHOAL_TEST_TIME_SCALE);
  // The lease still owns a live item after its pipeline is gone.
  EXPECT_EQ(lease->seq, 0u);
  lease->value = 7;
  lease.Release();
}

TEST(PipelineTest, DestroyBeforeStartAndRightAfterStart) {
  Watchdog watchdog;
  { Pipeline<Item> pipeline; }
  for (int i = 0; i < 20; ++i) {
    auto pipeline = EndlessPipeline({.threads = 2, .max_in_flight = 4});
    auto start = Clock::now();
    pipeline.reset();
    EXPECT_LT(SecondsSince(start), 0.100 * SHOAL_TEST_TIME_SCALE);
  }
}

TEST(PipelineTest, CancelWakesBlockedNext) {
  Watchdog watchdog;
  std::mutex mu;
  std::condition_variable cv;
  bool let_feeder_go = false;
  Pipeline<Item> pipeline({.threads = 2});
  ASSERT_TRUE(
      pipeline.AddStage({.name = "pass"}, [](Item&) { return Status::OK(); })
          .ok());
  // A feeder that is stuck (e.g. on a slow store) until the test lets it go.
  ASSERT_TRUE(pipeline
                  .Start([&](uint64_t, Item&, uint64_t*) -> Result<bool> {
                    std::unique_lock lock(mu);
                    cv.wait_for(lock, std::chrono::seconds(20),
                                [&] { return let_feeder_go; });
                    return false;
                  })
                  .ok());
  std::atomic<bool> returned{false};
  Status status;
  Clock::time_point returned_at;
  std::thread consumer([&] {
    auto next = pipeline.Next();
    status = next.status();
    returned_at = Clock::now();
    returned = true;
  });
  std::this_thread::sleep_for(milliseconds(30));
  EXPECT_FALSE(returned.load());  // Next() really is blocked
  auto cancelled_at = Clock::now();
  pipeline.Cancel();
  consumer.join();
  EXPECT_EQ(status.code(), StatusCode::kCancelled);
  EXPECT_LT(std::chrono::duration<double>(returned_at - cancelled_at).count(),
            0.100 * SHOAL_TEST_TIME_SCALE);
  EXPECT_EQ(pipeline.Next().status().code(), StatusCode::kCancelled);
  {
    std::lock_guard lock(mu);
    let_feeder_go = true;
  }
  cv.notify_all();
}

TEST(PipelineTest, CancelDropsQueuedItems) {
  Watchdog watchdog;
  std::atomic<int> ran{0};
  Pipeline<Item> pipeline({.threads = 2, .max_in_flight = 16});
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "slow", .concurrency = 1},
                            [&](Item&) {
                              ++ran;
                              std::this_thread::sleep_for(milliseconds(20));
                              return Status::OK();
                            })
                  .ok());
  ASSERT_TRUE(pipeline.Start(CountingFeeder(0)).ok());
  std::this_thread::sleep_for(milliseconds(30));  // 16 items queued
  pipeline.Cancel();
  int ran_at_cancel = ran.load();
  auto start = Clock::now();
  while (pipeline.metrics().items_in_flight > 0 && SecondsSince(start) < 5.0) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  // At most the running body finishes; the queued items never run.
  EXPECT_EQ(pipeline.metrics().items_in_flight, 0u);
  EXPECT_LE(ran.load(), ran_at_cancel + 1);
  EXPECT_LT(SecondsSince(start), 0.100 * SHOAL_TEST_TIME_SCALE);
}

// Stop() returns only once no body runs: what bodies write can then be read
// without a race (Cancel() alone returns while they still run).
TEST(PipelineTest, StopWaitsForRunningBodies) {
  Watchdog watchdog;
  std::atomic<int> entered{0};
  std::atomic<int> left{0};
  Pipeline<Item> pipeline({.threads = 2, .max_in_flight = 8});
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "slow", .concurrency = 2},
                            [&](Item&) {
                              ++entered;
                              std::this_thread::sleep_for(milliseconds(100));
                              ++left;
                              return Status::OK();
                            })
                  .ok());
  ASSERT_TRUE(pipeline.Start(CountingFeeder(0)).ok());
  const auto start = Clock::now();
  while (entered.load() == 0 && SecondsSince(start) < 5.0) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  ASSERT_GT(entered.load(), 0);
  pipeline.Stop();
  EXPECT_EQ(left.load(), entered.load());
  EXPECT_EQ(pipeline.Next().status().code(), StatusCode::kCancelled);
  // Idempotent, and the destructor after it is fine.
  pipeline.Stop();
}

// --- Run-time concurrency ----------------------------------------------------

TEST(PipelineTest, SetConcurrencyChangesParallelismWhileRunning) {
  Watchdog watchdog;
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  std::atomic<uint64_t> done{0};
  Pipeline<Item> pipeline({.threads = 8, .max_in_flight = 16});
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "work", .concurrency = 1},
                            [&](Item&) {
                              int now = ++running;
                              int old = peak.load();
                              while (now > old &&
                                     !peak.compare_exchange_weak(old, now)) {
                              }
                              std::this_thread::sleep_for(milliseconds(4));
                              --running;
                              ++done;
                              return Status::OK();
                            })
                  .ok());
  ASSERT_TRUE(pipeline.Start(CountingFeeder(0)).ok());
  std::atomic<bool> stop{false};
  std::thread consumer([&] {
    while (!stop.load()) {
      auto next = pipeline.Next();
      if (!next.ok() || !next->has_value()) return;
    }
  });
  auto run_items = [&](uint64_t n) {
    uint64_t target = done.load() + n;
    while (done.load() < target) std::this_thread::sleep_for(milliseconds(1));
  };
  // Lets bodies started under the old setting finish, then measures afresh.
  auto settle_at = [&](int n) {
    while (running.load() > n) std::this_thread::sleep_for(milliseconds(1));
    peak = running.load();
  };

  run_items(20);
  EXPECT_EQ(peak.load(), 1);

  ASSERT_TRUE(pipeline.SetConcurrency(0, 4).ok());
  EXPECT_EQ(pipeline.metrics().stages[0].concurrency, 4);
  settle_at(4);
  run_items(60);
  EXPECT_EQ(peak.load(), 4);

  ASSERT_TRUE(pipeline.SetConcurrency(0, 2).ok());
  settle_at(2);
  run_items(30);
  EXPECT_EQ(peak.load(), 2);

  // Down and up again before the retirements have all happened.
  ASSERT_TRUE(pipeline.SetConcurrency(0, 1).ok());
  ASSERT_TRUE(pipeline.SetConcurrency(0, 3).ok());
  settle_at(3);
  run_items(45);
  EXPECT_EQ(peak.load(), 3);

  stop = true;
  pipeline.Cancel();
  consumer.join();
}

// Changes of a parallel stage's concurrency racing with its tokens being
// reserved, used and returned, on the arena's workers or (blocking) on the
// stage's own threads.
void CheckConcurrencyUnderRapidChanges(bool blocking) {
  Watchdog watchdog;
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  std::atomic<uint64_t> done{0};
  Pipeline<Item> pipeline({.threads = 8, .max_in_flight = 16});
  ASSERT_TRUE(
      pipeline
          .AddStage({.name = "work", .concurrency = 3, .blocking = blocking},
                    [&](Item& item) {
                      int now = ++running;
                      int old = peak.load();
                      while (now > old &&
                             !peak.compare_exchange_weak(old, now)) {
                      }
                      SleepUs(Mix(item.seq, 8) % 60);
                      --running;
                      ++done;
                      return Status::OK();
                    })
          .ok());
  ASSERT_TRUE(pipeline.Start(CountingFeeder(0)).ok());
  std::thread consumer([&] {
    while (true) {
      auto next = pipeline.Next();
      if (!next.ok() || !next->has_value()) return;
    }
  });
  // Changes race with tokens being reserved, used and returned; afterwards
  // the stage must hold exactly the last setting, no token lost or gained.
  for (int i = 0; i < 3000; ++i) {
    ASSERT_TRUE(
        pipeline.SetConcurrency(0, 1 + static_cast<int>(Mix(i, 9) % 6)).ok());
    if (i % 8 == 0) SleepUs(Mix(i, 10) % 100);
  }
  ASSERT_TRUE(pipeline.SetConcurrency(0, 2).ok());
  // Tokens taken under an older, larger setting retire as their items end.
  // `running` alone cannot tell when they all have (a worker may hold a
  // token and not have entered the body yet, so running once read 2 with a
  // third item about to start), so the count starts after 200 items and
  // 50 ms at the new setting.
  const auto settled = std::chrono::steady_clock::now() + milliseconds(50);
  const uint64_t retired = done.load() + 200;
  while (done.load() < retired || std::chrono::steady_clock::now() < settled) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  peak = 0;
  uint64_t target = done.load() + 150;
  while (done.load() < target) std::this_thread::sleep_for(milliseconds(1));
  EXPECT_EQ(peak.load(), 2);
  EXPECT_EQ(pipeline.metrics().stages[0].concurrency, 2);
  // A blocking stage has a thread per body that ran at once, at most the
  // highest setting (6); an arena stage none.
  const int blocking_threads = pipeline.metrics().blocking_threads;
  if (blocking) {
    EXPECT_GE(blocking_threads, 2);
    EXPECT_LE(blocking_threads, 6);
  } else {
    EXPECT_EQ(blocking_threads, 0);
  }
  pipeline.Cancel();
  consumer.join();
}

TEST(PipelineTest, ConcurrencyStaysExactUnderRapidChanges) {
  CheckConcurrencyUnderRapidChanges(false);
}

TEST(PipelineTest, BlockingStageConcurrencyStaysExactUnderRapidChanges) {
  CheckConcurrencyUnderRapidChanges(true);
}

// --- Blocking stages
// -----------------------------------------------------------

// Bodies that wait run on the stage's own threads: with one arena worker,
// 8 of them wait at once, and the computing stages after them still see
// every item, in order at the serial one.
TEST(PipelineTest, BlockingStageWaitsBesideAOneThreadArena) {
  Watchdog watchdog;
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  std::vector<uint64_t> serial_seen;
  Pipeline<Item> pipeline({.threads = 1, .max_in_flight = 16});
  ASSERT_TRUE(
      pipeline
          .AddStage({.name = "wait", .concurrency = 8, .blocking = true},
                    [&](Item& item) {
                      int now = ++running;
                      int old = peak.load();
                      while (now > old &&
                             !peak.compare_exchange_weak(old, now)) {
                      }
                      std::this_thread::sleep_for(milliseconds(20));
                      --running;
                      item.value = item.seq * 3;
                      return Status::OK();
                    })
          .ok());
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "compute", .concurrency = 2},
                            [](Item& item) {
                              item.value += 1;
                              return Status::OK();
                            })
                  .ok());
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "in order",
                             .concurrency = StageOptions::kSerialInOrder},
                            [&](Item& item) {
                              serial_seen.push_back(item.seq);
                              return Status::OK();
                            })
                  .ok());
  ASSERT_TRUE(pipeline.Start(CountingFeeder(96)).ok());
  Status final;
  auto seqs = Drain(pipeline, &final, [](Item& item) {
    EXPECT_EQ(item.value, item.seq * 3 + 1);
  });
  EXPECT_TRUE(final.ok()) << final;
  EXPECT_EQ(seqs, Iota(96));
  EXPECT_EQ(serial_seen, Iota(96));
  // One arena worker could run one body at a time.
  EXPECT_EQ(peak.load(), 8);
  const PipelineMetrics m = pipeline.metrics();
  EXPECT_EQ(m.threads, 1);
  EXPECT_EQ(m.blocking_threads, 8);
  EXPECT_EQ(m.stages[0].items, 96u);
}

// Destroying the pipeline waits for the bodies that are waiting (they end
// on their own) and stops the stage's threads; nothing waits for items
// that never started.
TEST(PipelineTest, DestroyWithBlockingBodiesWaitingIsPrompt) {
  Watchdog watchdog;
  std::atomic<int> started{0};
  auto pipeline = std::make_unique<Pipeline<Item>>(
      PipelineOptions{.threads = 2, .max_in_flight = 16});
  ASSERT_TRUE(
      pipeline
          ->AddStage({.name = "fetch", .concurrency = 6, .blocking = true},
                     [&](Item&) {
                       ++started;
                       std::this_thread::sleep_for(milliseconds(30));
                       return Status::OK();
                     })
          .ok());
  ASSERT_TRUE(pipeline->Start(CountingFeeder(0)).ok());
  while (started.load() < 6) std::this_thread::sleep_for(milliseconds(1));
  const auto start = Clock::now();
  pipeline.reset();
  // One body's wait (30 ms), not the queue's.
  EXPECT_LT(SecondsSince(start), 0.200 * SHOAL_TEST_TIME_SCALE);
}

TEST(PipelineTest, ControlCallsFromInsideThePipelineDoNotDeadlock) {
  Watchdog watchdog;
  // The adaptive write path may tune concurrency from the feeder or a body;
  // that must not deadlock with destruction.
  auto pipeline = std::make_unique<Pipeline<Item>>(
      PipelineOptions{.threads = 4, .max_in_flight = 8});
  Pipeline<Item>* p = pipeline.get();
  ASSERT_TRUE(pipeline
                  ->AddStage({.name = "tuner", .concurrency = 2},
                             [p](Item& item) {
                               SleepUs(200);
                               (void)p->metrics();
                               return p->SetConcurrency(0, 1 + item.seq % 4);
                             })
                  .ok());
  auto feed = CountingFeeder(0);
  ASSERT_TRUE(pipeline
                  ->Start([&, p](uint64_t seq, Item& item,
                                 uint64_t* cost) -> Result<bool> {
                    SHOAL_RETURN_IF_ERROR(p->SetConcurrency(0, 4 - seq % 4));
                    return feed(seq, item, cost);
                  })
                  .ok());
  for (int i = 0; i < 30; ++i) {
    auto next = pipeline->Next();
    ASSERT_TRUE(next.ok() && next->has_value()) << next.status();
  }
  auto start = Clock::now();
  pipeline.reset();
  EXPECT_LT(SecondsSince(start), 0.100 * SHOAL_TEST_TIME_SCALE);
}

// --- Metrics -----------------------------------------------------------------

TEST(PipelineTest, MetricsCountItemsAndBusyTime) {
  Watchdog watchdog;
  constexpr uint64_t kItems = 40;
  Pipeline<Item> pipeline({.threads = 4, .max_in_flight = 8});
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "decode", .concurrency = 2},
                            [](Item&) {
                              std::this_thread::sleep_for(milliseconds(2));
                              return Status::OK();
                            })
                  .ok());
  ASSERT_TRUE(pipeline
                  .AddStage({.name = "collate",
                             .concurrency = StageOptions::kSerialInOrder},
                            [](Item&) {
                              std::this_thread::sleep_for(milliseconds(1));
                              return Status::OK();
                            })
                  .ok());
  ASSERT_TRUE(
      pipeline.Start(CountingFeeder(kItems, [](uint64_t) { return 10; })).ok());
  // metrics() while running, from another thread (TSan checks it).
  std::atomic<bool> stop{false};
  std::thread poller([&] {
    while (!stop.load()) {
      auto m = pipeline.metrics();
      EXPECT_LE(m.items_delivered, kItems);
      std::this_thread::sleep_for(milliseconds(1));
    }
  });
  Status final;
  EXPECT_EQ(Drain(pipeline, &final).size(), kItems);
  stop = true;
  poller.join();

  auto m = pipeline.metrics();
  ASSERT_EQ(m.stages.size(), 2u);
  EXPECT_EQ(m.stages[0].name, "decode");
  EXPECT_EQ(m.stages[0].concurrency, 2);
  EXPECT_EQ(m.stages[1].name, "collate");
  EXPECT_EQ(m.stages[1].concurrency, StageOptions::kSerialInOrder);
  EXPECT_EQ(m.feeder.items, kItems);
  EXPECT_EQ(m.feeder.bytes, kItems * 10);
  for (const auto& stage : m.stages) {
    EXPECT_EQ(stage.items, kItems) << stage.name;
    EXPECT_EQ(stage.bytes, kItems * 10) << stage.name;
  }
  EXPECT_EQ(m.items_delivered, kItems);
  // Busy time is the sleeps, plus scheduling slack.
  EXPECT_GE(m.stages[0].busy_seconds, kItems * 0.002);
  EXPECT_LT(m.stages[0].busy_seconds, kItems * 0.002 * 4);
  EXPECT_GE(m.stages[1].busy_seconds, kItems * 0.001);
  EXPECT_LT(m.stages[1].busy_seconds, kItems * 0.001 * 6);
  EXPECT_EQ(m.budget_in_use, 0u);
  EXPECT_EQ(m.budget_peak, 80u);  // 8 items in flight at most, 10 bytes each
  EXPECT_EQ(m.items_in_flight, 0u);
  EXPECT_EQ(m.items_in_flight_peak, 8u);
  EXPECT_GT(m.consumer_wait_seconds, 0.0);
}

TEST(PipelineTest, MetricsAttributeWaitsToTheRightStage) {
  Watchdog watchdog;
  constexpr uint64_t kItems = 30;
  // The time unit of the waits; longer in sanitizer builds, whose overheads
  // would otherwise be as long as the waits measured.
  constexpr int kStepMs = 3 * SHOAL_TEST_TIME_SCALE;
  constexpr double kStep = kStepMs / 1000.0;
  {
    // A slow feeder starves the stage: its worker waits for input.
    Pipeline<Item> pipeline({.threads = 2});
    ASSERT_TRUE(pipeline
                    .AddStage({.name = "fast", .concurrency = 1},
                              [](Item&) { return Status::OK(); })
                    .ok());
    auto feed = CountingFeeder(kItems);
    ASSERT_TRUE(pipeline
                    .Start([&](uint64_t seq, Item& item,
                               uint64_t* cost) -> Result<bool> {
                      std::this_thread::sleep_for(milliseconds(kStepMs));
                      return feed(seq, item, cost);
                    })
                    .ok());
    Status final;
    EXPECT_EQ(Drain(pipeline, &final).size(), kItems);
    auto m = pipeline.metrics();
    EXPECT_GE(m.feeder.busy_seconds, kItems * kStep);
    // An item that arrives while the worker is not yet free (descheduled on
    // a loaded machine) adds no wait: the bound leaves room for that; the
    // slow-consumer case below stays far from it.
    EXPECT_GE(m.stages[0].wait_input_seconds, kItems * kStep * 0.4);
    EXPECT_LT(m.stages[0].blocked_output_seconds,
              m.stages[0].wait_input_seconds);
    EXPECT_GE(m.consumer_wait_seconds, kItems * kStep * 0.8);
  }
  {
    // A slow consumer: items wait after the last stage; the stage does not
    // wait for input, and Next() does not wait.
    Pipeline<Item> pipeline({.threads = 2, .max_in_flight = 8});
    ASSERT_TRUE(pipeline
                    .AddStage({.name = "fast", .concurrency = 1},
                              [](Item&) { return Status::OK(); })
                    .ok());
    ASSERT_TRUE(pipeline.Start(CountingFeeder(kItems)).ok());
    std::this_thread::sleep_for(milliseconds(20 * SHOAL_TEST_TIME_SCALE));
    Status final;
    EXPECT_EQ(Drain(pipeline, &final,
                    [&](Item&) {
                      std::this_thread::sleep_for(milliseconds(kStepMs));
                    })
                  .size(),
              kItems);
    auto m = pipeline.metrics();
    // Each item waits behind ~7 others at 3 ms each; the stage waits ~3 ms
    // for each new item, which comes when the consumer frees a slot.
    EXPECT_GE(m.stages[0].blocked_output_seconds, kItems * kStep * 3);
    EXPECT_LT(m.stages[0].wait_input_seconds,
              m.stages[0].blocked_output_seconds / 3);
    EXPECT_GE(m.feeder_slot_wait_seconds, kItems * kStep * 0.5);
    EXPECT_LT(m.consumer_wait_seconds, 0.02 * SHOAL_TEST_TIME_SCALE);
  }
}

}  // namespace
}  // namespace shoal
