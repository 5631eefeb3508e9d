// The oneTBB flow graph behind Pipeline<T>; pipeline.h explains the model.
//
// clang-format off
// Graph, for stages S0 .. Sn-1 (items travel as Slot pointers):
//
//   feeder thread ──try_put──► S0 ──► S1 ──► ... ──► Sn-1 ──► ring ──► Next()
//
// A serial-in-order stage:
//   sequencer_node ──► multifunction_node (serial, rejecting) ──► next stage
//
// A parallel stage:
//   queue_node ──────────┐
//                        ├─► join_node ──► multifunction_node ──┬─► next stage
//   buffer_node<Token> ──┘   (reserving)   (unlimited)          │
//        ▲                                                      │
//        └─────────────────── token returned ───────────────────┘
// clang-format on
//
// A parallel stage's tokens are its worker slots: an item starts only when
// the reserving join pairs it with a token, and the body hands the token back
// when done (the token pattern of oneTBB's fgbzip2 example). TBB fixes a
// function_node's concurrency at construction, so the node itself is
// unlimited and SetConcurrency() adds tokens, or asks for some to be retired:
// a token due for retirement is dropped at its next use, either when its body
// ends or when the join pairs it with an item, which then goes back to the
// stage's queue to wait for another token. Tokens are never taken out of the
// buffer_node directly: its try_get() would take a token the join has
// reserved.
//
// Every queue in the graph (queue_node, sequencer_node, buffer_node, the
// join's reservations, TBB's task queues, the delivery ring) holds either
// items or tokens. Items are bounded by max_in_flight because the feeder
// needs a free Slot to make one and there are exactly max_in_flight Slots;
// a stage's tokens never outnumber the highest concurrency it was given. So
// nothing grows without bound, whatever the relative speeds of the stages.
//
// Items are never taken out of the graph early: after Cancel() or an error
// a dropped item still flows to the end with its bodies skipped. That keeps
// sequencer_nodes free of gaps (a missing sequence number would stall them)
// and makes "every Slot comes back" easy to see.
//
// The hand-offs outside TBB (free Slots to the feeder, finished items to the
// consumer, budget) are lock-free: atomics plus C++20 atomic wait/notify on
// two event counters. A mutex is taken only on the error path and for
// control calls (Start, SetConcurrency, Shutdown).
#include "loader/pipeline.h"

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
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

// TBB's scheduler lives in libtbb.so, which is not built with TSan, so TSan
// cannot see that a task's creation happens before its execution. These
// annotations tell it about the hand-offs this file relies on (setup before
// bodies, a stage's work on an item before the next stage's, one serial body
// before the next, all bodies before teardown). They compile to nothing in
// other builds. TBB's own internal objects still need the suppressions in
// tests/tsan.supp (make test-tsan).
#if defined(__SANITIZE_THREAD__)
#define SHOAL_PIPELINE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHOAL_PIPELINE_TSAN 1
#endif
#endif
#ifdef SHOAL_PIPELINE_TSAN
#include <sanitizer/tsan_interface.h>
#define SHOAL_TSAN_RELEASE(addr) __tsan_release(static_cast<void*>(addr))
#define SHOAL_TSAN_ACQUIRE(addr) __tsan_acquire(static_cast<void*>(addr))
#else
#define SHOAL_TSAN_RELEASE(addr) static_cast<void>(0)
#define SHOAL_TSAN_ACQUIRE(addr) static_cast<void>(0)
#endif

namespace shoal::internal {
namespace {

namespace flow = oneapi::tbb::flow;

constexpr uint64_t kNoSeq = std::numeric_limits<uint64_t>::max();

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Seconds(int64_t ns) { return static_cast<double>(ns) * 1e-9; }

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

struct Stage {
  std::string name;
  bool ordered = false;
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

}  // namespace

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
  void Forward(size_t index, Slot* slot, SlotPort& out);
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

// ---------------------------------------------------------------------------
// Control

Status PipelineCore::Impl::AddStage(StageOptions stage_options, Body body) {
  std::lock_guard lock(control_mu);
  if (start_called || shut_down) {
    return FailedPrecondition("pipeline: AddStage() after Start()");
  }
  if (stage_options.concurrency < 0) {
    return InvalidArgument("pipeline stage '" + stage_options.name +
                           "': concurrency must be >= 0, got " +
                           std::to_string(stage_options.concurrency));
  }
  auto stage = std::make_unique<Stage>();
  stage->name = std::move(stage_options.name);
  stage->ordered = stage_options.concurrency == StageOptions::kSerialInOrder;
  stage->concurrency.store(stage->ordered ? 1 : stage_options.concurrency);
  stage->body = std::move(body);
  stages.push_back(std::move(stage));
  return Status::OK();
}

Status PipelineCore::Impl::Start(Feeder new_feeder) {
  std::lock_guard lock(control_mu);
  if (start_called || shut_down) {
    return FailedPrecondition("pipeline: Start() called twice");
  }
  // Even a failed Start() may have built part of the graph; Shutdown()
  // tears down whatever exists.
  start_called = true;
  if (options.max_in_flight < 1) {
    return InvalidArgument("pipeline: max_in_flight must be >= 1, got " +
                           std::to_string(options.max_in_flight));
  }
  if (options.threads < 0) {
    return InvalidArgument("pipeline: threads must be >= 0, got " +
                           std::to_string(options.threads));
  }
  feeder = std::move(new_feeder);
  start_ns = NowNs();
  try {
    const auto n = static_cast<size_t>(options.max_in_flight);
    slots.resize(n);
    for (size_t i = 0; i < n; ++i) slots[i].index = static_cast<uint32_t>(i);
    ring = std::make_unique<std::atomic<Slot*>[]>(n);
    parallelism =
        std::make_unique<ParallelismRequest>(static_cast<size_t>(threads) + 1);
    // No slot reserved for an external thread: nobody joins the arena to
    // run tasks, so all of it goes to workers.
    arena = std::make_unique<oneapi::tbb::task_arena>(threads, 0);
    // A graph runs its tasks in the arena it was constructed in.
    arena->execute([this] { BuildGraph(); });
    SHOAL_TSAN_RELEASE(&setup_sync);
    feeder_thread = std::thread([this] { FeedLoop(); });
  } catch (const std::bad_alloc& e) {
    return ResourceExhausted(std::string("pipeline: cannot start: ") +
                             e.what());
  } catch (const std::system_error& e) {
    return ResourceExhausted(std::string("pipeline: cannot start: ") +
                             e.what());
  } catch (const std::exception& e) {
    return Internal(std::string("pipeline: cannot start: ") + e.what());
  }
  started.store(true, std::memory_order_release);
  return Status::OK();
}

void PipelineCore::Impl::BuildGraph() {
  graph = std::make_unique<flow::graph>();
  flow::graph& g = *graph;
  for (size_t i = 0; i < stages.size(); ++i) {
    Stage& stage = *stages[i];
    if (stage.ordered) {
      stage.sequencer = std::make_unique<flow::sequencer_node<Slot*>>(
          g, [](Slot* const& slot) { return slot->seq; });
      // Rejecting: while the body runs, items stay in the sequencer (in
      // order) instead of a second queue inside the node.
      stage.serial = std::make_unique<SerialNode>(
          g, flow::serial,
          [this, i](Slot* slot, SerialNode::output_ports_type& ports) {
            RunSerial(i, slot, std::get<0>(ports));
          });
      stage.serial_free_since_ns.store(start_ns);
      flow::make_edge(*stage.sequencer, *stage.serial);
      stage.entry = stage.sequencer.get();
    } else {
      stage.queue = std::make_unique<flow::queue_node<Slot*>>(g);
      stage.tokens = std::make_unique<flow::buffer_node<Token>>(g);
      stage.join = std::make_unique<GateJoin>(g);
      // Unlimited: the tokens are the limit.
      stage.parallel = std::make_unique<ParallelNode>(
          g, flow::unlimited,
          [this, i](const GatedItem& in,
                    ParallelNode::output_ports_type& ports) {
            RunParallel(i, std::get<0>(in), std::get<1>(in), ports);
          });
      flow::make_edge(*stage.queue, flow::input_port<0>(*stage.join));
      flow::make_edge(*stage.tokens, flow::input_port<1>(*stage.join));
      flow::make_edge(*stage.join, *stage.parallel);
      flow::make_edge(flow::output_port<1>(*stage.parallel), *stage.tokens);
      for (int t = 0; t < stage.concurrency.load(); ++t) {
        stage.tokens->try_put(Token{start_ns});
      }
      stage.entry = stage.queue.get();
    }
  }
  for (size_t i = 0; i + 1 < stages.size(); ++i) {
    Stage& stage = *stages[i];
    flow::receiver<Slot*>& next = *stages[i + 1]->entry;
    if (stage.ordered) {
      flow::make_edge(flow::output_port<0>(*stage.serial), next);
    } else {
      flow::make_edge(flow::output_port<0>(*stage.parallel), next);
    }
  }
}

void PipelineCore::Impl::DestroyGraph() {
  // Nodes unregister from their graph when destroyed, so they go first.
  for (auto& stage : stages) stage->DestroyNodes();
  graph.reset();
}

Status PipelineCore::Impl::SetConcurrency(size_t index, int n) {
  std::lock_guard lock(control_mu);
  if (index >= stages.size()) {
    return InvalidArgument("pipeline: no stage " + std::to_string(index) +
                           " (have " + std::to_string(stages.size()) + ")");
  }
  Stage& stage = *stages[index];
  if (stage.ordered) {
    return InvalidArgument("pipeline stage '" + stage.name +
                           "' is serial in order; its concurrency is fixed");
  }
  if (n < 1) {
    return InvalidArgument("pipeline stage '" + stage.name +
                           "': concurrency must be >= 1, got " +
                           std::to_string(n));
  }
  int delta = n - stage.concurrency.exchange(n);
  if (!started.load() || shut_down) return Status::OK();
  // Raise: first take back retirements that have not happened yet, then
  // add tokens.
  while (delta > 0) {
    int pending = stage.retire_pending.load();
    if (pending == 0) break;
    if (stage.retire_pending.compare_exchange_weak(pending, pending - 1)) {
      --delta;
    }
  }
  for (; delta > 0; --delta) stage.tokens->try_put(Token{NowNs()});
  // Lower: tokens go away at their next use, so no body starts while
  // more are due to go.
  if (delta < 0) stage.retire_pending.fetch_add(-delta);
  return Status::OK();
}

void PipelineCore::Impl::Shutdown() {
  Cancel();
  {
    // From here on SetConcurrency() leaves the nodes alone, so the rest
    // needs no lock.
    std::lock_guard lock(control_mu);
    if (shut_down) return;
    shut_down = true;
  }
  if (feeder_thread.joinable()) feeder_thread.join();
  // The feeder is gone, so no item enters any more; the ones inside drain
  // through with their bodies skipped.
  if (graph != nullptr) graph->wait_for_all();
  SHOAL_TSAN_ACQUIRE(&teardown_sync);
  DestroyGraph();
  arena.reset();
  parallelism.reset();
}

// ---------------------------------------------------------------------------
// Feeder thread

void PipelineCore::Impl::FeedLoop() {
  for (uint64_t seq = 0;; ++seq) {
    Slot* slot = AcquireSlot(seq);
    if (slot == nullptr) return;
    uint64_t cost = 0;
    const int64_t start = NowNs();
    lasting = 0;
    Result<bool> more = CallFeeder(seq, slot, &cost);
    feeder_counters.Add(feeder_counters.busy_ns, NowNs() - start);
    if (!more.ok() || !*more) {
      ChargeLasting();
      PushFree(slot);
      if (!more.ok()) {
        LatchError(seq, more.status());
      } else {
        end_seq.store(seq, std::memory_order_release);
        Wake(consumer_events);
      }
      return;
    }
    // The item's cost goes back when it is released; `lasting` (see
    // AdmitWithItem) stays with whoever owns it.
    if (!AcquireBudget(cost + lasting)) {
      ChargeLasting();
      PushFree(slot);
      return;
    }
    lasting = 0;
    Max(in_flight_peak, in_flight.fetch_add(1, std::memory_order_relaxed) + 1);
    slot->seq = seq;
    slot->cost = cost;
    feeder_counters.items.fetch_add(1, std::memory_order_relaxed);
    feeder_counters.bytes.fetch_add(cost, std::memory_order_relaxed);
    slot->ready_ns = NowNs();
    SHOAL_TSAN_RELEASE(slot);
    if (stages.empty()) {
      Deliver(slot);
    } else if (!stages[0]->entry->try_put(slot)) {
      // Queues and sequencers always accept; this is a broken invariant.
      LatchError(seq, Internal("pipeline: first stage refused an item"));
      Recycle(slot);
      return;
    }
  }
}

Slot* PipelineCore::Impl::AcquireSlot(uint64_t seq) {
  int64_t wait_start = 0;
  Slot* slot = nullptr;
  while (true) {
    const uint32_t events = feeder_events.load(std::memory_order_acquire);
    if (Stopping()) break;
    if (feeder_free == nullptr) {
      feeder_free = free_head.exchange(nullptr, std::memory_order_acquire);
    }
    if (feeder_free != nullptr) {
      slot = feeder_free;
      feeder_free = slot->next_free;
      break;
    }
    if (slots_made < slots.size()) {
      Slot* fresh = &slots[slots_made];
      Status status;
      try {
        fresh->item = make_item();
        if (fresh->item == nullptr) {
          status = Internal("pipeline: item factory returned null");
        }
      } catch (const std::exception& e) {
        status =
            Internal(std::string("pipeline: item factory threw: ") + e.what());
      } catch (...) {
        status = Internal("pipeline: item factory threw");
      }
      if (!status.ok()) {
        LatchError(seq, std::move(status));
        break;
      }
      ++slots_made;
      slot = fresh;
      break;
    }
    if (wait_start == 0) wait_start = NowNs();
    feeder_events.wait(events, std::memory_order_acquire);
  }
  if (wait_start != 0) {
    slot_wait_ns.fetch_add(NowNs() - wait_start, std::memory_order_relaxed);
  }
  return slot;
}

bool PipelineCore::Impl::AcquireBudget(uint64_t cost) {
  int64_t wait_start = 0;
  bool admitted = false;
  while (true) {
    // Releases (items recycled, Charge(-n), others sharing the budget) and
    // Cancel() bump the budget's events.
    const uint32_t events = budget->events();
    if (Stopping()) break;
    // An item that fits is admitted; so is one while no other item is in
    // flight: an item bigger than the whole budget then runs alone rather
    // than waiting forever for room that can never exist, and so does every
    // item while memory charged outside items (Charge(), e.g. a writer's
    // open chunks or a loader's resident chunks) fills the budget.
    if (budget->TryAdmit(cost,
                         in_flight.load(std::memory_order_acquire) == 0)) {
      admitted = true;
      break;
    }
    if (wait_start == 0) wait_start = NowNs();
    budget->Wait(events);
  }
  if (wait_start != 0) {
    budget_wait_ns.fetch_add(NowNs() - wait_start, std::memory_order_relaxed);
  }
  return admitted;
}

Result<bool> PipelineCore::Impl::CallFeeder(uint64_t seq, Slot* slot,
                                            uint64_t* cost) {
  try {
    return feeder(seq, slot->item, cost);
  } catch (const std::exception& e) {
    return Internal(std::string("pipeline feeder threw: ") + e.what());
  } catch (...) {
    return Internal("pipeline feeder threw a non-standard exception");
  }
}

// ---------------------------------------------------------------------------
// Pool threads

void PipelineCore::Impl::RunSerial(size_t index, Slot* slot, SlotPort& out) {
  SHOAL_TSAN_ACQUIRE(&setup_sync);
  SHOAL_TSAN_ACQUIRE(slot);
  Stage& stage = *stages[index];
  SHOAL_TSAN_ACQUIRE(&stage);  // the previous body of this stage
  if (!Skip(slot)) {
    const int64_t end =
        RunBody(index, slot,
                stage.serial_free_since_ns.load(std::memory_order_relaxed));
    stage.serial_free_since_ns.store(end, std::memory_order_relaxed);
  }
  SHOAL_TSAN_RELEASE(&stage);
  Forward(index, slot, out);
  SHOAL_TSAN_RELEASE(&teardown_sync);
}

void PipelineCore::Impl::RunParallel(size_t index, Slot* slot, Token token,
                                     ParallelNode::output_ports_type& ports) {
  SHOAL_TSAN_ACQUIRE(&setup_sync);
  SHOAL_TSAN_ACQUIRE(slot);
  Stage& stage = *stages[index];
  if (TakeRetirement(stage)) {
    // SetConcurrency() lowered the limit: this token goes away and the item
    // waits in the queue for one that stays.
    SHOAL_TSAN_RELEASE(slot);
    if (!stage.queue->try_put(slot)) {
      LatchError(slot->seq, Internal("pipeline stage '" + stage.name +
                                     "' refused an item"));
      Recycle(slot);
    }
    SHOAL_TSAN_RELEASE(&teardown_sync);
    return;
  }
  if (!Skip(slot)) {
    token.free_since_ns = RunBody(index, slot, token.free_since_ns);
  }
  // The slot is free before the item moves on, so the next item can start.
  if (!TakeRetirement(stage)) std::get<1>(ports).try_put(token);
  Forward(index, slot, std::get<0>(ports));
  SHOAL_TSAN_RELEASE(&teardown_sync);
}

int64_t PipelineCore::Impl::RunBody(size_t index, Slot* slot,
                                    int64_t free_since_ns) {
  Stage& stage = *stages[index];
  Counters& previous =
      index == 0 ? feeder_counters : stages[index - 1]->counters;
  const int64_t start = NowNs();
  previous.Add(previous.blocked_output_ns, start - slot->ready_ns);
  stage.counters.Add(stage.counters.wait_input_ns,
                     std::max<int64_t>(0, slot->ready_ns - free_since_ns));
  Status status;
  try {
    status = stage.body(slot->item);
  } catch (const std::exception& e) {
    status = Internal("pipeline stage '" + stage.name + "' threw: " + e.what());
  } catch (...) {
    status = Internal("pipeline stage '" + stage.name +
                      "' threw a non-standard exception");
  }
  const int64_t end = NowNs();
  stage.counters.Add(stage.counters.busy_ns, end - start);
  stage.counters.items.fetch_add(1, std::memory_order_relaxed);
  stage.counters.bytes.fetch_add(slot->cost, std::memory_order_relaxed);
  slot->ready_ns = end;
  if (!status.ok()) {
    LatchError(slot->seq, std::move(status));
  }
  return end;
}

void PipelineCore::Impl::Forward(size_t index, Slot* slot, SlotPort& out) {
  if (index + 1 == stages.size()) {
    Deliver(slot);
    return;
  }
  SHOAL_TSAN_RELEASE(slot);
  if (!out.try_put(slot)) {
    // Queues and sequencers always accept; this is a broken invariant.
    LatchError(slot->seq,
               Internal("pipeline stage '" + stages[index + 1]->name +
                        "' refused an item"));
    Recycle(slot);
  }
}

bool PipelineCore::Impl::TakeRetirement(Stage& stage) {
  int pending = stage.retire_pending.load(std::memory_order_relaxed);
  while (pending > 0) {
    if (stage.retire_pending.compare_exchange_weak(pending, pending - 1,
                                                   std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

void PipelineCore::Impl::Deliver(Slot* slot) {
  if (Skip(slot)) {
    Recycle(slot);  // never handed out
    return;
  }
  std::atomic<Slot*>& cell = ring[slot->seq % slots.size()];
  cell.store(slot, std::memory_order_seq_cst);
  // Cancel() sets the flag, then sweeps the ring; this stores, then checks
  // the flag. With seq_cst one of the two sees the other, and exchange()
  // makes exactly one of them recycle the item.
  if (cancelled.load(std::memory_order_seq_cst)) {
    if (Slot* mine = cell.exchange(nullptr, std::memory_order_acq_rel)) {
      Recycle(mine);
    }
    return;
  }
  Wake(consumer_events);
}

// ---------------------------------------------------------------------------
// Consumer and any thread

Result<std::optional<PipelineCore::Delivered>> PipelineCore::Impl::Next() {
  if (!started.load(std::memory_order_acquire)) {
    return FailedPrecondition("pipeline: Next() before Start()");
  }
  const uint64_t seq = next_seq;
  int64_t wait_start = 0;
  Result<std::optional<Delivered>> result = std::optional<Delivered>();
  while (true) {
    const uint32_t events = consumer_events.load(std::memory_order_acquire);
    if (cancelled.load(std::memory_order_acquire)) {
      result = Cancelled("pipeline cancelled");
      break;
    }
    if (seq >= error_seq.load(std::memory_order_acquire)) {
      std::lock_guard lock(error_mu);
      result = error;
      break;
    }
    Slot* slot =
        ring[seq % slots.size()].exchange(nullptr, std::memory_order_acquire);
    if (slot != nullptr) {
      if (slot->seq != seq) {  // a broken invariant; do not hand out
        result = Internal("pipeline: item " + std::to_string(slot->seq) +
                          " delivered in place of " + std::to_string(seq));
        break;
      }
      Counters& last =
          stages.empty() ? feeder_counters : stages.back()->counters;
      last.Add(last.blocked_output_ns, NowNs() - slot->ready_ns);
      ++next_seq;
      delivered.fetch_add(1, std::memory_order_relaxed);
      result = std::optional<Delivered>(
          Delivered{slot->item, slot->seq, slot->cost, slot->index});
      break;
    }
    if (seq >= end_seq.load(std::memory_order_acquire)) break;  // end
    if (wait_start == 0) wait_start = NowNs();
    consumer_events.wait(events, std::memory_order_acquire);
  }
  if (wait_start != 0) {
    consumer_wait_ns.fetch_add(NowNs() - wait_start, std::memory_order_relaxed);
  }
  return result;
}

void PipelineCore::Impl::Cancel() {
  cancelled.store(true, std::memory_order_seq_cst);
  WakeFeeder();
  Wake(consumer_events);
  // Finished items that Next() will no longer return give their budget and
  // Slot back now rather than at destruction.
  if (!started.load(std::memory_order_acquire)) return;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (Slot* slot = ring[i].exchange(nullptr, std::memory_order_acq_rel)) {
      Recycle(slot);
    }
  }
}

void PipelineCore::Charge(int64_t bytes) { impl_->budget->Charge(bytes); }

void PipelineCore::AdmitWithItem(uint64_t bytes) { impl_->lasting += bytes; }

void PipelineCore::Impl::Recycle(Slot* slot) {
  // The bytes go back before the item stops counting as in flight: the
  // feeder admits an item past the budget only when none is in flight, and
  // must not do so while this one's bytes are still counted. The feeder may
  // be waiting for exactly that (room, or no item in flight): wake it.
  budget->Charge(-static_cast<int64_t>(slot->cost));
  in_flight.fetch_sub(1, std::memory_order_release);
  budget->Wake();
  PushFree(slot);
  Wake(feeder_events);
}

void PipelineCore::Impl::PushFree(Slot* slot) {
  // Treiber push. The feeder takes the whole list at once with exchange(),
  // so there is no pop and no ABA problem.
  Slot* head = free_head.load(std::memory_order_relaxed);
  do {
    slot->next_free = head;
  } while (!free_head.compare_exchange_weak(
      head, slot, std::memory_order_release, std::memory_order_relaxed));
}

void PipelineCore::Impl::LatchError(uint64_t seq, Status status) {
  {
    std::lock_guard lock(error_mu);
    if (seq < error_seq.load(std::memory_order_relaxed)) {
      error = std::move(status);
      error_seq.store(seq, std::memory_order_release);
    }
  }
  WakeFeeder();
  Wake(consumer_events);
}

PipelineMetrics PipelineCore::Impl::Metrics() const {
  PipelineMetrics m;
  m.feeder = feeder_counters.Snapshot("feeder", 1);
  for (const auto& stage : stages) {
    m.stages.push_back(stage->counters.Snapshot(
        stage->name, stage->ordered
                         ? StageOptions::kSerialInOrder
                         : stage->concurrency.load(std::memory_order_relaxed)));
  }
  m.feeder_slot_wait_seconds =
      Seconds(slot_wait_ns.load(std::memory_order_relaxed));
  m.feeder_budget_wait_seconds =
      Seconds(budget_wait_ns.load(std::memory_order_relaxed));
  m.consumer_wait_seconds =
      Seconds(consumer_wait_ns.load(std::memory_order_relaxed));
  m.budget_bytes = budget->limit();
  m.budget_in_use =
      static_cast<uint64_t>(std::max<int64_t>(0, budget->in_use()));
  m.budget_peak = static_cast<uint64_t>(std::max<int64_t>(0, budget->peak()));
  m.items_in_flight = in_flight.load(std::memory_order_relaxed);
  m.items_in_flight_peak = in_flight_peak.load(std::memory_order_relaxed);
  m.items_delivered = delivered.load(std::memory_order_relaxed);
  m.threads = threads;
  return m;
}

// ---------------------------------------------------------------------------
// PipelineCore

PipelineCore::PipelineCore(PipelineOptions options, MakeItem make_item,
                           DestroyItem destroy_item)
    : impl_(std::make_unique<Impl>(options, std::move(make_item),
                                   destroy_item)) {}

PipelineCore::~PipelineCore() {
  impl_->Shutdown();
  // Whoever released an item last pushed it here with release order; take
  // the list so its writes happen before the delete below.
  impl_->free_head.exchange(nullptr, std::memory_order_acquire);
  for (Slot& slot : impl_->slots) {
    if (slot.item != nullptr) impl_->destroy_item(slot.item);
  }
}

Status PipelineCore::AddStage(StageOptions options, Body body) {
  return impl_->AddStage(std::move(options), std::move(body));
}
Status PipelineCore::Start(Feeder feeder) {
  return impl_->Start(std::move(feeder));
}
Result<std::optional<PipelineCore::Delivered>> PipelineCore::Next() {
  return impl_->Next();
}
void PipelineCore::Release(uint32_t slot) {
  impl_->Recycle(&impl_->slots[slot]);
}
void PipelineCore::Cancel() { impl_->Cancel(); }
void PipelineCore::Shutdown() { impl_->Shutdown(); }
Status PipelineCore::SetConcurrency(size_t stage, int concurrency) {
  return impl_->SetConcurrency(stage, concurrency);
}
PipelineMetrics PipelineCore::metrics() const { return impl_->Metrics(); }

}  // namespace shoal::internal
