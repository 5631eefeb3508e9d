// Pipeline<T>: the bounded, ordered, multithreaded pipeline core that the
// Loader (read graph) and Ingest() (write graph, loader/ingestor.h) are
// built on.
//
// The model
// ---------
//   feeder ──► stage 0 ──► stage 1 ──► ... ──► stage n-1 ──► Next() ──► Release
//   (thread)   (TBB flow graph nodes in the pipeline's own task arena;
//              a blocking stage's bodies on threads of the stage's own)
//
// - Items. A pipeline moves objects of one type T ("batch k: fetch these
//   chunks, decode these samples into this buffer"). At most
//   `max_in_flight` item objects ever exist; an item the consumer releases
//   goes back to the feeder, which refills it, so batch buffers are reused
//   instead of reallocated (no allocation per item in steady state).
// - Feeder. A callback on a dedicated thread fills item number `seq`
//   (0, 1, 2, ...) and says what it will cost in bytes, or says the stream
//   has ended. It may block (e.g. on a store) without stalling a worker. It
//   runs before the item's bytes are taken from the budget, so it should
//   only plan; the cost stands for the memory the stages will fill in.
// - Stages. Each stage runs a body on every item. A stage is either serial in
//   order (kSerialInOrder: one item at a time, in sequence order) or parallel
//   with a concurrency of N bodies at once in any order; N can be changed
//   while running (SetConcurrency) for the adaptive write path.
// - Ordered delivery. Next() returns items in feeder order, whatever the
//   thread count and however parallel stages reordered them, so a seeded run
//   gives the same batches on 1 or 64 threads.
// - Memory. Before an item enters the graph the feeder takes its cost from
//   a byte budget; the bytes come back only when the consumer releases the
//   finished item. Together with the `max_in_flight` item limit this bounds
//   both the memory and every queue inside the pipeline (each queue holds
//   items, and there are never more than `max_in_flight` of them). An item
//   costing more than the whole budget is admitted when nothing else holds
//   budget, so it runs alone instead of deadlocking the feeder; the budget is
//   then exceeded by that one item, which is the least memory it can take.
// - Errors. Bodies and the feeder return Status; an exception that escapes
//   them anyway becomes Internal. The error at the lowest sequence number
//   wins: Next() still returns every item before the failing one, then the
//   error, exactly as a serial run would; later items are never returned and
//   their work is skipped. The error is sticky.
// - End of stream is not an error: Next() returns an empty optional.
// - Cancel() (and the destructor) stop promptly: the feeder wakes from any
//   budget wait, queued items are dropped without running their bodies, and
//   running bodies finish their current item. Next() then returns Cancelled.
//
// Usage:
//   Pipeline<Batch> pipeline({.threads = 8, .budget_bytes = 1 << 30});
//   pipeline.AddStage({.name = "fetch", .concurrency = 4}, Fetch);
//   pipeline.AddStage({.name = "decode", .concurrency = 8}, Decode);
//   pipeline.Start([&](uint64_t seq, Batch& b, uint64_t* cost)
//                      -> Result<bool> {
//     if (seq == num_batches) return false;  // end of stream
//     b.Plan(seq);
//     *cost = b.ByteSize();
//     return true;
//   });
//   while (true) {
//     SHOAL_ASSIGN_OR_RETURN(auto batch, pipeline.Next());
//     if (!batch) break;  // end of stream
//     Train(**batch);     // the lease returns the item when it goes away
//   }
//
// Thread-safety: AddStage() and Start() are called by one thread before
// anything else. Next() is called by one consumer thread at a time. Once
// Start() has returned, Cancel(), SetConcurrency() and metrics() may be
// called from any thread, including the feeder and stage bodies (which must
// not call Next() or destroy the pipeline). A Lease may be released or
// destroyed on any thread, also after its Pipeline is gone (it keeps the
// item memory alive). A body has exclusive access to its item, and
// everything done to an item by the feeder and earlier stages happens before
// a later stage's body sees it. Bodies of a parallel stage run concurrently;
// bodies of a serial-in-order stage run one after the other, each happening
// before the next, so state the body keeps for itself needs no lock.
#ifndef SHOAL_LOADER_PIPELINE_H_
#define SHOAL_LOADER_PIPELINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/memory.h"
#include "base/result.h"
#include "base/status.h"

namespace shoal {

/// The most worker threads a pipeline runs. More only adds memory (a stack
/// and scratch per thread) and contention on any machine this library
/// targets, and tens of thousands of threads make thread creation fail
/// inside TBB, which aborts: Start() refuses more instead.
inline constexpr int kMaxPipelineThreads = 256;

/// The worker count `threads` stands for: itself when positive, else the
/// machine's cores (at least 1). Loaders, ingestions and the tools resolve
/// "0 = all cores" through this one function.
int ResolveThreads(int threads);

struct PipelineOptions {
  /// Worker threads of the pipeline's own task arena, at most
  /// kMaxPipelineThreads; 0 = all cores. TBB
  /// caps its workers process-wide at max_allowed_parallelism - 1 (cores - 1
  /// by default); while the pipeline lives that limit is raised to at least
  /// threads + 1 (never lowered; an application's own lower global_control
  /// still wins), since the consumer does not run tasks itself.
  int threads = 0;
  /// Bytes that items in flight (fed, not yet released by the consumer) may
  /// cost together; 0 = no byte limit (only `max_in_flight` bounds them).
  /// Ignored when `budget` is given.
  uint64_t budget_bytes = 512ull << 20;
  /// The budget to admit items under, shared with whoever else charges it
  /// (e.g. a loader's chunks, which outlive the pipeline's items); null: the
  /// pipeline makes its own of `budget_bytes`.
  std::shared_ptr<MemoryBudget> budget;
  /// Prefetch depth: the most items alive at once, from the feeder through
  /// the stages to the consumer's leases. Also the most item objects the
  /// pipeline ever constructs; it makes a new one only while the budget has
  /// room (items may keep memory between uses), else reuses one. At least 1.
  int max_in_flight = 8;
};

struct StageOptions {
  /// One item at a time, in sequence order (e.g. a seeded shuffle buffer or
  /// an in-order writer).
  static constexpr int kSerialInOrder = 0;

  /// Names the stage in metrics and errors.
  std::string name;
  /// kSerialInOrder, or the number of bodies that may run at once (in any
  /// order). Parallel stages may change it with SetConcurrency().
  int concurrency = 1;
  /// A parallel stage whose bodies mostly wait (on a store, the network)
  /// rather than compute. They run on threads of the stage's own, one per
  /// body running at once, started as the concurrency first reaches each
  /// count and asleep while idle, instead of on the task arena's workers:
  /// `threads` then needs to count only the stages that compute. An arena
  /// sized for many waiting bodies has as many TBB workers, and idle TBB
  /// workers spin before they sleep, on the cores the computing stages
  /// need (a loader over s3:// with an arena of 2 decoders + 64 fetch
  /// slots: 7.3-7.6 s for what an arena of 2 + 2 did in 6.8 s).
  bool blocking = false;
};

/// Counters of one stage (or of the feeder). Times are seconds of wall time
/// summed over items, so a stage running 4 bodies at once for 1 s has 4 s
/// busy.
struct StageMetrics {
  std::string name;
  /// Current setting (kSerialInOrder = 0 for serial-in-order stages).
  int concurrency = 0;
  /// Items whose body ran (dropped items after an error or Cancel() are not
  /// counted), and the sum of their costs.
  uint64_t items = 0;
  uint64_t bytes = 0;
  /// Time inside the body.
  double busy_seconds = 0;
  /// Time a free worker slot of this stage waited for its next item: for
  /// each item, how long the slot that ran it had been free before the item
  /// arrived (zero when the item had to wait for a slot instead). Summed
  /// over slots, so a starved stage with concurrency 4 accrues up to 4 s per
  /// second. Idle time after a slot's last item is not counted. Always 0 for
  /// the feeder.
  double wait_input_seconds = 0;
  /// Time items waited after this stage finished them until the next stage
  /// (or, for the last stage, the consumer in Next()) started on them: the
  /// next stage being saturated, an ordered stage waiting for an earlier
  /// item, or the consumer not asking. For the last stage this includes
  /// reordering before Next().
  double blocked_output_seconds = 0;
};

/// A snapshot; consistent per counter, not across counters.
struct PipelineMetrics {
  /// The feeder as a stage: busy = time in the feeder callback.
  StageMetrics feeder;
  std::vector<StageMetrics> stages;
  /// Time the feeder waited for a free item (max_in_flight reached) and for
  /// budget bytes: the back-pressure the source felt.
  double feeder_slot_wait_seconds = 0;
  double feeder_budget_wait_seconds = 0;
  /// Time the consumer waited inside Next(): the stall the training loop
  /// feels.
  double consumer_wait_seconds = 0;
  uint64_t budget_bytes = 0;  // 0 = unlimited
  uint64_t budget_in_use = 0;
  uint64_t budget_peak = 0;
  /// Items fed and not yet released, and the highest that has been.
  uint64_t items_in_flight = 0;
  uint64_t items_in_flight_peak = 0;
  uint64_t items_delivered = 0;
  /// Threads of the pipeline's task arena, and those started for its
  /// blocking stages.
  int threads = 0;
  int blocking_threads = 0;
};

namespace internal {

/// The type-erased engine under Pipeline<T>: items are void*, owned by the
/// core and destroyed with `destroy_item`. Use Pipeline<T> instead; this is
/// in the public header only because the template calls it. Its TBB graph
/// lives in pipeline.cc.
class PipelineCore {
 public:
  using Body = std::function<Status(void* item)>;
  using Feeder =
      std::function<Result<bool>(uint64_t seq, void* item, uint64_t* cost)>;
  using MakeItem = std::function<void*()>;
  using DestroyItem = void (*)(void* item);

  /// A finished item handed to the consumer. `slot` is what Release() takes.
  struct Delivered {
    void* item = nullptr;
    uint64_t seq = 0;
    uint64_t cost = 0;
    uint32_t slot = 0;
  };

  PipelineCore(PipelineOptions options, MakeItem make_item,
               DestroyItem destroy_item);
  ~PipelineCore();
  PipelineCore(const PipelineCore&) = delete;
  PipelineCore& operator=(const PipelineCore&) = delete;

  Status AddStage(StageOptions options, Body body);
  Status Start(Feeder feeder);
  Result<std::optional<Delivered>> Next();
  void Release(uint32_t slot);
  void Cancel();
  /// Cancels, waits for the feeder and the graph to stop, and tears the
  /// graph down. Idempotent. Items stay alive until the core is destroyed.
  void Shutdown();
  Status SetConcurrency(size_t stage, int concurrency);
  void Charge(int64_t bytes);
  void AdmitWithItem(uint64_t bytes);
  PipelineMetrics metrics() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace internal

template <typename T>
class Pipeline {
 public:
  /// A stage body. Runs on a pool thread with exclusive access to `item`.
  /// Must not throw (an exception is caught and becomes Internal).
  using Body = std::function<Status(T& item)>;
  /// Fills `item` (a recycled object: whatever its last use left in it, so
  /// buffers can be reused) as item number `seq`, sets `*cost` to the bytes
  /// the item will hold while in flight, and returns true; or returns false
  /// at end of stream, or an error that ends the stream. Runs on the
  /// pipeline's feeder thread; called with seq = 0, 1, 2, ...
  using Feeder =
      std::function<Result<bool>(uint64_t seq, T& item, uint64_t* cost)>;
  /// Makes a new item; called at most max_in_flight times, on the feeder
  /// thread. Default: std::make_unique<T>().
  using ItemFactory = std::function<std::unique_ptr<T>()>;

  /// A finished item on loan to the consumer. Its budget bytes and the item
  /// object go back to the pipeline on Release() or destruction, so hold it
  /// only as long as the item is used. Move-only.
  class Lease {
   public:
    Lease(Lease&& other) noexcept { *this = std::move(other); }
    Lease& operator=(Lease&& other) noexcept {
      if (this != &other) {
        Release();
        core_ = std::move(other.core_);
        delivered_ = other.delivered_;
      }
      return *this;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { Release(); }

    /// Preconditions: not released.
    T& operator*() const { return *item(); }
    T* operator->() const { return item(); }
    T* item() const { return static_cast<T*>(delivered_.item); }
    /// The item's feeder sequence number.
    uint64_t sequence() const { return delivered_.seq; }
    /// The budget bytes the item holds (the feeder's cost).
    uint64_t cost() const { return delivered_.cost; }

    /// Gives the item back for reuse. The item must not be used afterwards.
    /// Idempotent.
    void Release() {
      if (core_ == nullptr) return;
      core_->Release(delivered_.slot);
      core_.reset();
    }

   private:
    friend class Pipeline;
    Lease(std::shared_ptr<internal::PipelineCore> core,
          internal::PipelineCore::Delivered delivered)
        : core_(std::move(core)), delivered_(delivered) {}

    std::shared_ptr<internal::PipelineCore> core_;
    internal::PipelineCore::Delivered delivered_;
  };

  explicit Pipeline(PipelineOptions options = {}, ItemFactory factory = nullptr)
      : core_(std::make_shared<internal::PipelineCore>(
            options, MakeItemFn(std::move(factory)),
            [](void* item) { delete static_cast<T*>(item); })) {}
  /// Stops the pipeline as Cancel() does and waits for the feeder callback
  /// and running bodies to return.
  ~Pipeline() { core_->Shutdown(); }
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  /// Appends a stage. Only before Start(). Stages run in the order added.
  Status AddStage(StageOptions options, Body body) {
    if (body == nullptr) return InvalidArgument("pipeline stage has no body");
    return core_->AddStage(std::move(options),
                           [body = std::move(body)](void* item) {
                             return body(*static_cast<T*>(item));
                           });
  }

  /// Validates the options, builds the graph and starts the feeder. Once.
  Status Start(Feeder feeder) {
    if (feeder == nullptr) return InvalidArgument("pipeline has no feeder");
    return core_->Start(
        [feeder = std::move(feeder)](uint64_t seq, void* item, uint64_t* cost) {
          return feeder(seq, *static_cast<T*>(item), cost);
        });
  }

  /// The next item in feeder order, waiting for it if needed. Empty at end of
  /// stream; the first error (by sequence number) once every item before it
  /// has been returned; Cancelled after Cancel(). Errors are sticky.
  /// Leases still held count against max_in_flight and the budget: a caller
  /// that holds all of either waits here until another thread releases one.
  Result<std::optional<Lease>> Next() {
    auto next = core_->Next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) return std::optional<Lease>();
    return std::optional<Lease>(Lease(core_, **next));
  }

  /// Stops feeding and drops queued items; running bodies finish their item.
  /// Next() returns Cancelled from now on. Does not wait; idempotent.
  void Cancel() { core_->Cancel(); }

  /// Cancel(), then waits until the feeder callback and every body have
  /// returned: after it, state the bodies write may be read without a race.
  /// Next() returns Cancelled; metrics() and Charge() still work; the
  /// stages are gone. Idempotent; not from a body or the feeder.
  void Stop() { core_->Shutdown(); }

  /// Sets how many bodies of parallel stage `stage` (index in AddStage
  /// order) may run at once, effective for items started from now on:
  /// raising lets queued items start at once; lowering lets running bodies
  /// finish, then holds the stage to the new limit. InvalidArgument for a
  /// serial-in-order stage or concurrency < 1.
  Status SetConcurrency(size_t stage, int concurrency) {
    return core_->SetConcurrency(stage, concurrency);
  }

  /// Adds `bytes` to the budget in use (negative: gives them back), for
  /// memory a stage creates beyond its item's cost, e.g. a chunk that an
  /// in-order stage cuts from many items' samples. Never blocks: the feeder
  /// admits new items only once the budget has room again. Whoever charges
  /// gives the bytes back. Memory charged outside items may fill the budget:
  /// the feeder then admits one item at a time. Any thread.
  void Charge(int64_t bytes) { core_->Charge(bytes); }

  /// Feeder thread only, while it fills an item: `bytes` more must fit in
  /// the budget for that item to be admitted, but they are not the item's
  /// cost: they stay charged when the item is released, until their owner
  /// gives them back with Charge(-bytes). For memory an item creates that
  /// outlives it (a chunk that later items read too), so that it waits for
  /// room like the item instead of being charged past the budget. Charged
  /// in every case once the feeder returns (without waiting when the item
  /// is not fed: end of stream, an error, a stop), so the owner always gives
  /// them back.
  void AdmitWithItem(uint64_t bytes) { core_->AdmitWithItem(bytes); }

  /// A snapshot of the counters; cheap enough to poll for a progress bar.
  PipelineMetrics metrics() const { return core_->metrics(); }

 private:
  static internal::PipelineCore::MakeItem MakeItemFn(ItemFactory factory) {
    if (factory == nullptr) return [] { return static_cast<void*>(new T()); };
    return [factory = std::move(factory)]() -> void* {
      return factory().release();
    };
  }

  std::shared_ptr<internal::PipelineCore> core_;
};

}  // namespace shoal

#endif  // SHOAL_LOADER_PIPELINE_H_
