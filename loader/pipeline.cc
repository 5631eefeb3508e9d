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
// control calls (Start, SetConcurrency, Shutdown).#include "loader/pipeline.h"

#include "loader/internal/pipeline_impl.h"

namespace shoal::internal {

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
  if (stage_options.blocking && !stage->ordered) {
    stage->blocking = std::make_unique<BlockingWork>();
  }
  stage->body = std::move(body);
  stages.push_back(std::move(stage));
  return Status::OK();
}

}  // namespace shoal::internal

namespace shoal {
int ResolveThreads(int threads) {
  return threads > 0 ? threads
                     : static_cast<int>(
                           std::max(1u, std::thread::hardware_concurrency()));
}
}  // namespace shoal

namespace shoal::internal {

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
  if (options.threads < 0 || options.threads > kMaxPipelineThreads) {
    return InvalidArgument("pipeline: threads must be 0 (all cores) .. " +
                           std::to_string(kMaxPipelineThreads) + ", got " +
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
            const auto [slot, token] = ReadHandOff(in);
            RunParallel(i, slot, token, ports);
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
  StopBlockingThreads();
  SHOAL_TSAN_ACQUIRE(&teardown_sync);
  DestroyGraph();
  arena.reset();
  parallelism.reset();
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
  for (const auto& stage : stages) {
    if (stage->blocking) m.blocking_threads += stage->blocking->started.load();
  }
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
