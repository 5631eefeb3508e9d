// The pipeline core's moving parts: the feeder thread (slots, budget,
// the feeder callback) and the stage bodies on the pool threads, up to the
// delivery of a finished item to the consumer's ring. pipeline.cc builds
// and controls the graph.
#include "loader/internal/pipeline_impl.h"

namespace shoal::internal {

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
    // A new item object only while the budget has room: items keep what
    // they allocated (a loader's batch buffers stay charged between
    // batches), so with a full budget the feeder waits for one to come back
    // rather than making another that could only wait for room itself.
    const uint64_t limit = budget->limit();
    if (slots_made < slots.size() &&
        (slots_made == 0 || limit == 0 ||
         budget->in_use() < static_cast<int64_t>(limit))) {
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
  Forward(index, slot, &out);
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
  if (stage.blocking) {
    HandOff(index, slot, token);
    return;
  }
  if (!Skip(slot)) {
    token.free_since_ns = RunBody(index, slot, token.free_since_ns);
  }
  // The slot is free before the item moves on, so the next item can start.
  if (!TakeRetirement(stage)) std::get<1>(ports).try_put(token);
  Forward(index, slot, &std::get<0>(ports));
  SHOAL_TSAN_RELEASE(&teardown_sync);
}

void PipelineCore::Impl::HandOff(size_t index, Slot* slot, Token token) {
  BlockingWork& work = *stages[index]->blocking;
  // wait_for_all() (Shutdown) waits for the item until RunBlocking is done
  // with the graph.
  graph->reserve_wait();
  SHOAL_TSAN_RELEASE(slot);
  bool queued = false;
  {
    std::lock_guard lock(work.mu);
    // A thread for each item not yet taken, up to the stage's concurrency:
    // at that many threads one has finished its item (this one holds a
    // token), and takes this one when it comes back for more. (A new thread
    // waits for the lock, then finds the item.)
    if (work.queue.size() + 1 > work.idle &&
        work.threads.size() <
            static_cast<size_t>(std::max(1, stages[index]->concurrency.load(
                                                std::memory_order_relaxed)))) {
      try {
        work.threads.emplace_back([this, index] { BlockingLoop(index); });
        work.started.fetch_add(1, std::memory_order_relaxed);
      } catch (const std::system_error&) {
        // The threads there are will get to it.
      }
    }
    if (!work.threads.empty()) {
      work.queue.emplace_back(slot, token);
      queued = true;
      // Under the lock: once it is released, a thread may run the item to
      // its end and Shutdown() destroy `work`.
      work.ready.notify_one();
    }
  }
  if (!queued) {
    // No thread could start and none exists: this task runs the item.
    RunBlocking(index, slot, token);
  }
}

void PipelineCore::Impl::BlockingLoop(size_t index) {
  BlockingWork& work = *stages[index]->blocking;
  std::unique_lock lock(work.mu);
  while (true) {
    ++work.idle;
    work.ready.wait(lock, [&] { return work.stop || !work.queue.empty(); });
    --work.idle;
    if (work.queue.empty()) return;  // stopped
    const auto [slot, token] = work.queue.front();
    work.queue.pop_front();
    lock.unlock();
    RunBlocking(index, slot, token);
    lock.lock();
  }
}

void PipelineCore::Impl::RunBlocking(size_t index, Slot* slot, Token token) {
  SHOAL_TSAN_ACQUIRE(&setup_sync);
  SHOAL_TSAN_ACQUIRE(slot);
  Stage& stage = *stages[index];
  if (!Skip(slot)) {
    token.free_since_ns = RunBody(index, slot, token.free_since_ns);
  }
  if (!TakeRetirement(stage)) stage.tokens->try_put(token);
  Forward(index, slot, nullptr);
  SHOAL_TSAN_RELEASE(&teardown_sync);
  graph->release_wait();
}

void PipelineCore::Impl::StopBlockingThreads() {
  for (auto& stage : stages) {
    if (!stage->blocking) continue;
    BlockingWork& work = *stage->blocking;
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(work.mu);
      work.stop = true;
      threads.swap(work.threads);
    }
    work.ready.notify_all();
    for (std::thread& t : threads) t.join();
  }
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

void PipelineCore::Impl::Forward(size_t index, Slot* slot, SlotPort* out) {
  if (index + 1 == stages.size()) {
    Deliver(slot);
    return;
  }
  SHOAL_TSAN_RELEASE(slot);
  if (!(out != nullptr ? out->try_put(slot)
                       : stages[index + 1]->entry->try_put(slot))) {
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

}  // namespace shoal::internal
