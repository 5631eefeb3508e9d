// MemoryBudget: shoal's one memory accounting — bytes charged, their peak,
// and an optional limit that admission checks against.
//
// Two kinds of owner use it:
//  - the pipeline core (loader/pipeline.h): its feeder admits a new item
//    only while the item's cost fits under the limit, and stages charge what
//    they create beyond that (chunks being built, chunks held for later
//    batches). The loader and the write graph each run one budget, which
//    outlives the pipeline runs and whatever they hand out (batches, chunk
//    buffers), so late releases always find it.
//  - Buffer (base/buffer.h): every allocation is charged until its last
//    slice goes away, to the budget given or to Process(), an unlimited
//    budget whose peak tests read to bound what code allocated.
// Budgets may form a tree (a child charges its parent too).
//
// Thread-safety: all methods are thread-safe and lock-free; Wait() blocks
// only its caller.
#ifndef SHOAL_BASE_MEMORY_H_
#define SHOAL_BASE_MEMORY_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace shoal {

class MemoryBudget {
 public:
  /// `limit` 0 is unlimited. `parent` (may be null) is charged with
  /// everything charged here and must outlive this budget.
  explicit MemoryBudget(std::string name, uint64_t limit = 0,
                        std::shared_ptr<MemoryBudget> parent = nullptr);
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  /// The process-wide unlimited root: buffers allocated without a budget
  /// are charged here.
  static const std::shared_ptr<MemoryBudget>& Process();

  /// Adds `bytes` (negative: gives them back). Never blocks; a release wakes
  /// the threads in Wait().
  void Charge(int64_t bytes);

  /// Charges `cost` and returns true when it fits under the limit, when the
  /// budget is unlimited or empty, or when `alone` (the caller has nothing
  /// else in flight, so waiting could never make room: a cost larger than
  /// the whole budget then goes through by itself). False charges nothing.
  bool TryAdmit(uint64_t cost, bool alone);
  /// Whether `bytes` more would fit under the limit now (always when
  /// unlimited); charges nothing, so another thread may take the room first.
  bool HasRoom(uint64_t bytes) const {
    return limit_ == 0 ||
           static_cast<uint64_t>(std::max<int64_t>(in_use(), 0)) + bytes <=
               limit_;
  }

  /// Waiting for room: read events(), try, and Wait(events) if it failed;
  /// any release or Wake() after the read ends the wait.
  uint32_t events() const { return events_.load(std::memory_order_acquire); }
  void Wait(uint32_t seen) const {
    events_.wait(seen, std::memory_order_acquire);
  }
  /// Ends every Wait() (e.g. to let a waiter see that it should stop).
  void Wake();

  const std::string& name() const { return name_; }
  uint64_t limit() const { return limit_; }
  int64_t in_use() const { return in_use_.load(std::memory_order_acquire); }
  /// The highest in_use() seen since construction or the last ResetPeak().
  int64_t peak() const { return peak_.load(std::memory_order_relaxed); }
  void ResetPeak() { peak_.store(in_use(), std::memory_order_relaxed); }

 private:
  void RaisePeak(int64_t now);

  const std::string name_;
  const uint64_t limit_;
  const std::shared_ptr<MemoryBudget> parent_;
  std::atomic<int64_t> in_use_{0};
  std::atomic<int64_t> peak_{0};
  mutable std::atomic<uint32_t> events_{0};
};

/// Makes the C library return freed large blocks to the system (glibc: a
/// fixed mmap threshold of 128 KiB) and keep one heap arena per core, not
/// eight (each keeps its own peak; see base/memory.cc). By default glibc
/// raises that threshold to the size of each large block freed, up to 32
/// MiB, after which chunk
/// and sample buffers come from heap arenas that keep their peak: measured
/// on `shoal ingest images` with a 64 MiB budget, 199 MiB peak RSS instead
/// of 124 MiB (and 8 % slower), and 353 MiB instead of 141 MiB converting to
/// raw:zstd:3. Process-wide, so a library does not do it behind a program's
/// back: the shoal CLI calls it first thing; programs that want the memory
/// budget to bound RSS should too. Idempotent; a no-op elsewhere than glibc.
void LimitHeapRetention();

/// The process's resident set now (VmRSS from /proc/self/statm), 0 where
/// that cannot be read. For profiles; peak figures come from VmHWM.
uint64_t ResidentSetBytes();

}  // namespace shoal

#endif  // SHOAL_BASE_MEMORY_H_
