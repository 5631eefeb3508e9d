// The pipeline core's internals, shared by pipeline.cc (building and
// controlling the graph, the consumer side) and pipeline_workers.cc (the
// feeder thread and the stage bodies on the pool threads). Not installed.
#ifndef SHOAL_LOADER_INTERNAL_PIPELINE_IMPL_H_
#define SHOAL_LOADER_INTERNAL_PIPELINE_IMPL_H_

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <limits>
#include <mutex>
#include <new>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>

#include "base/tsan.h"
#include "loader/pipeline.h"

// TSan cannot see the hand-offs through TBB's scheduler (base/tsan.h):
// annotations mark those this file relies on (setup before bodies, a
// stage's work on an item before the next stage's, one serial body before
// the next, all bodies before teardown). TBB's own internal objects still
// need the suppressions in tests/tsan.supp (make test-tsan).

namespace shoal::internal {

namespace flow = oneapi::tbb::flow;

inline constexpr uint64_t kNoSeq = std::numeric_limits<uint64_t>::max();

inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline double Seconds(int64_t ns) { return static_cast<double>(ns) * 1e-9; }

// One item object and its trip through the pipeline. The Slot, not the
// graph, owns the item; the graph passes Slot pointers around.
struct Slot {
  void* item = nullptr;
  uint32_t index = 0;
  uint64_t seq = 0;
  uint64_t cost = 0;
  // When the item last became ready for its next step (put by the feeder or
  // finished by a stage); the start of the blocked-output time.
  int64_t ready_ns = 0;
  // Link in the free list.
  Slot* next_free = nullptr;
};

// A worker slot of a parallel stage, carrying since when it has been free
// (for the wait-for-input metric).
struct Token {
  int64_t free_since_ns = 0;
};

using SerialNode =
    flow::multifunction_node<Slot*, std::tuple<Slot*>, flow::rejecting>;
using GatedItem = std::tuple<Slot*, Token>;
using GateJoin = flow::join_node<GatedItem, flow::reserving>;
using ParallelNode =
    flow::multifunction_node<GatedItem, std::tuple<Slot*, Token>>;
// The item output port (the same type for serial and parallel stages).
using SlotPort = std::tuple_element_t<0, ParallelNode::output_ports_type>;

// Reads a parallel node's input. TBB hands it to the task that runs the body
// through task memory, which libtbb.so (not built with TSan) synchronizes
// out of TSan's sight; this read, kept out of line, has a frame of its own
// that tests/tsan.supp names, so races in the bodies are still reported.
[[gnu::noinline]] inline GatedItem ReadHandOff(const GatedItem& in) {
  return in;
}

// Relaxed atomics: each counter is read alone, for metrics.
struct Counters {
  std::atomic<uint64_t> items{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<int64_t> busy_ns{0};
  std::atomic<int64_t> wait_input_ns{0};
  std::atomic<int64_t> blocked_output_ns{0};

  void Add(std::atomic<int64_t>& counter, int64_t ns) {
    counter.fetch_add(ns, std::memory_order_relaxed);
  }
  StageMetrics Snapshot(std::string name, int concurrency) const {
    StageMetrics m;
    m.name = std::move(name);
    m.concurrency = concurrency;
    m.items = items.load(std::memory_order_relaxed);
    m.bytes = bytes.load(std::memory_order_relaxed);
    m.busy_seconds = Seconds(busy_ns.load(std::memory_order_relaxed));
    m.wait_input_seconds =
        Seconds(wait_input_ns.load(std::memory_order_relaxed));
    m.blocked_output_seconds =
        Seconds(blocked_output_ns.load(std::memory_order_relaxed));
    return m;
  }
};

// The threads of a blocking stage (StageOptions::blocking) and the items
// handed to them. An item waits here only while it holds one of the stage's
// tokens, so the queue never holds more than the stage's concurrency, and
// there are never more threads than the highest concurrency it was given.
// Locked once per item, which is a batch or a chunk, not a sample.
struct BlockingWork {
  std::mutex mu;
  std::condition_variable ready;
  std::deque<std::pair<Slot*, Token>> queue;  // under mu
  std::vector<std::thread> threads;           // under mu
  size_t idle = 0;                            // under mu: threads waiting
  bool stop = false;                          // under mu
  std::atomic<int> started{0};                // threads.size(), for metrics
};

struct Stage {
  std::string name;
  bool ordered = false;
  std::unique_ptr<BlockingWork> blocking;  // null unless a blocking stage
  PipelineCore::Body body;
  // The concurrency asked for. Once started, live tokens minus
  // retire_pending equal it.
  std::atomic<int> concurrency{1};
  // Tokens to drop at their next use (see the top of this file).
  std::atomic<int> retire_pending{0};
  // Serial-in-order stages have one implicit worker slot; since when it has
  // been free. Touched only by the stage's (serialized) body.
  std::atomic<int64_t> serial_free_since_ns{0};
  Counters counters;

  // The receiver the previous stage (or the feeder) puts items into.
  flow::receiver<Slot*>* entry = nullptr;
  std::unique_ptr<flow::sequencer_node<Slot*>> sequencer;
  std::unique_ptr<SerialNode> serial;
  std::unique_ptr<flow::queue_node<Slot*>> queue;
  std::unique_ptr<flow::buffer_node<Token>> tokens;
  std::unique_ptr<GateJoin> join;
  std::unique_ptr<ParallelNode> parallel;

  void DestroyNodes() {
    parallel.reset();
    join.reset();
    tokens.reset();
    queue.reset();
    serial.reset();
    sequencer.reset();
    entry = nullptr;
  }
};

// TBB keeps at most max_allowed_parallelism - 1 worker threads for the whole
// process (cores - 1 by default), because it counts on the thread that waits
// for the work to run tasks too. A pipeline's consumer is the training loop
// and never runs tasks, so an arena of N threads gets N workers only if the
// process limit is at least N + 1. While pipelines live, the limit is raised
// to what the largest of them needs. It is only ever raised: when the process
// already allows enough (by default or through the application's own
// global_control) nothing is added, and since TBB applies the smallest active
// max_allowed_parallelism, an application's lower cap still wins.
class ParallelismRegistry {
 public:
  static ParallelismRegistry& Get() {
    // Never destroyed: pipelines may be torn down during static destruction.
    static auto* registry = new ParallelismRegistry;
    return *registry;
  }
  void Add(size_t n) {
    std::lock_guard lock(mu_);
    wanted_.insert(n);
    Update();
  }
  void Remove(size_t n) {
    std::lock_guard lock(mu_);
    wanted_.erase(wanted_.find(n));
    Update();
  }

 private:
  using Control = oneapi::tbb::global_control;

  void Update() {
    size_t want = wanted_.empty() ? 0 : *wanted_.rbegin();
    if (want == value_) return;
    control_.reset();
    value_ = 0;
    if (want == 0 ||
        Control::active_value(Control::max_allowed_parallelism) >= want) {
      return;
    }
    control_ =
        std::make_unique<Control>(Control::max_allowed_parallelism, want);
    value_ = want;
  }

  std::mutex mu_;
  std::multiset<size_t> wanted_;
  std::unique_ptr<Control> control_;
  size_t value_ = 0;
};

class ParallelismRequest {
 public:
  explicit ParallelismRequest(size_t n) : n_(n) {
    ParallelismRegistry::Get().Add(n_);
  }
  ~ParallelismRequest() { ParallelismRegistry::Get().Remove(n_); }
  ParallelismRequest(const ParallelismRequest&) = delete;
  ParallelismRequest& operator=(const ParallelismRequest&) = delete;

 private:
  size_t n_;
};

struct PipelineCore::Impl {
  Impl(PipelineOptions options, MakeItem make_item, DestroyItem destroy_item)
      : options(options),
        budget(options.budget != nullptr
                   ? options.budget
                   : std::make_shared<MemoryBudget>("pipeline",
                                                    options.budget_bytes)),
        make_item(std::move(make_item)),
        destroy_item(destroy_item),
        threads(options.threads > 0
                    ? options.threads
                    : oneapi::tbb::info::default_concurrency()) {}

  // --- Control --------------------------------------------------------------
  Status AddStage(StageOptions stage_options, Body body);
  Status Start(Feeder new_feeder);
  Status SetConcurrency(size_t index, int n);
  void Shutdown();
  void BuildGraph();
  void DestroyGraph();

  // --- Feeder thread ---------------------------------------------------------
  void FeedLoop();
  Slot* AcquireSlot(uint64_t seq);
  bool AcquireBudget(uint64_t cost);
  Result<bool> CallFeeder(uint64_t seq, Slot* slot, uint64_t* cost);

  // --- Pool threads ----------------------------------------------------------
  // Whether to pass `slot` on without running bodies: after Cancel(), or
  // when it is at or after the failing item (an item that fails latches its
  // own sequence number, so it is skipped from then on too).
  bool Skip(const Slot* slot) const {
    return cancelled.load(std::memory_order_acquire) ||
           slot->seq >= error_seq.load(std::memory_order_acquire);
  }
  void RunSerial(size_t index, Slot* slot, SlotPort& out);
  void RunParallel(size_t index, Slot* slot, Token token,
                   ParallelNode::output_ports_type& ports);
  int64_t RunBody(size_t index, Slot* slot, int64_t free_since_ns);
  // `out`: the stage's output port, or null from a blocking stage's thread
  // (outside TBB), which puts into the next stage's entry itself.
  void Forward(size_t index, Slot* slot, SlotPort* out);
  // Blocking stages: the TBB task hands the item to the stage's threads
  // (HandOff) and returns; a thread runs it (RunBlocking) and passes it on.
  void HandOff(size_t index, Slot* slot, Token token);
  void BlockingLoop(size_t index);
  void RunBlocking(size_t index, Slot* slot, Token token);
  void StopBlockingThreads();
  // Claims one pending retirement of a token of `stage`, if any.
  static bool TakeRetirement(Stage& stage);
  void Deliver(Slot* slot);

  // --- Consumer and any thread -----------------------------------------------
  Result<std::optional<Delivered>> Next();
  void Recycle(Slot* slot);
  void PushFree(Slot* slot);
  void LatchError(uint64_t seq, Status status);
  void Cancel();
  bool Stopping() const {
    return cancelled.load(std::memory_order_acquire) ||
           error_seq.load(std::memory_order_acquire) != kNoSeq;
  }
  static void Wake(std::atomic<uint32_t>& events) {
    events.fetch_add(1, std::memory_order_release);
    events.notify_all();
  }
  // The feeder waits on its events for a slot and on the budget's for room.
  void WakeFeeder() {
    Wake(feeder_events);
    budget->Wake();
  }
  static void Max(std::atomic<uint64_t>& peak, uint64_t value) {
    uint64_t old = peak.load(std::memory_order_relaxed);
    while (value > old &&
           !peak.compare_exchange_weak(old, value, std::memory_order_relaxed)) {
    }
  }
  PipelineMetrics Metrics() const;

  const PipelineOptions options;
  const std::shared_ptr<MemoryBudget> budget;
  const MakeItem make_item;
  const DestroyItem destroy_item;

  const int threads;

  // Held only briefly (never while waiting for the feeder or the graph), so
  // a feeder or a body may call SetConcurrency() without deadlocking
  // Shutdown().
  std::mutex control_mu;
  bool start_called = false;                   // under control_mu
  bool shut_down = false;                      // under control_mu
  std::atomic<bool> started{false};            // set under control_mu
  std::vector<std::unique_ptr<Stage>> stages;  // fixed once started
  Feeder feeder;
  int64_t start_ns = 0;

  // Items. `slots` is sized once at Start(); its items are made lazily by the
  // feeder and live until the core is destroyed.
  std::vector<Slot> slots;
  size_t slots_made = 0;                  // feeder thread only
  Slot* feeder_free = nullptr;            // feeder thread only
  std::atomic<Slot*> free_head{nullptr};  // pushed by anyone, taken by feeder
  // Finished items waiting for Next(), at seq % max_in_flight. Items not yet
  // returned by Next() always have distinct sequence numbers within
  // max_in_flight of each other (each holds one of max_in_flight Slots and
  // sequence numbers are handed out consecutively), so positions never
  // collide.
  std::unique_ptr<std::atomic<Slot*>[]> ring;
  uint64_t next_seq = 0;  // consumer only

  // Run state. Event counters are bumped (and waiters woken) after every
  // change a waiter may be waiting for.
  std::atomic<bool> cancelled{false};
  std::atomic<uint64_t> error_seq{kNoSeq};  // only ever decreases
  std::atomic<uint64_t> end_seq{kNoSeq};
  std::mutex error_mu;
  Status error;  // under error_mu; the error at error_seq
  std::atomic<uint32_t> feeder_events{0};
  std::atomic<uint32_t> consumer_events{0};

  // Feeder thread: bytes to admit with the item being fed, not its cost.
  uint64_t lasting = 0;
  // Lasting bytes are charged whatever happens to their item (their owner
  // gives them back): without admission when the item is not fed.
  void ChargeLasting() {
    if (lasting != 0) budget->Charge(static_cast<int64_t>(lasting));
    lasting = 0;
  }
  // Budget and metrics. Only the feeder adds to in_flight.
  std::atomic<uint64_t> in_flight{0};
  std::atomic<uint64_t> in_flight_peak{0};
  std::atomic<uint64_t> delivered{0};
  Counters feeder_counters;
  std::atomic<int64_t> slot_wait_ns{0};
  std::atomic<int64_t> budget_wait_ns{0};
  std::atomic<int64_t> consumer_wait_ns{0};

  // TBB. Declared last so it is torn down first (Shutdown() does it
  // explicitly anyway).
  std::unique_ptr<ParallelismRequest> parallelism;
  std::unique_ptr<oneapi::tbb::task_arena> arena;
  std::unique_ptr<flow::graph> graph;
  std::thread feeder_thread;

  // Addresses for the TSan annotations (see the top of this file).
  char setup_sync = 0;
  char teardown_sync = 0;
};

}  // namespace shoal::internal

#endif  // SHOAL_LOADER_INTERNAL_PIPELINE_IMPL_H_
