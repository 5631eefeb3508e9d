// MemoryTracker: counts the bytes that live buffers hold, and their peak.
//
// Every Buffer allocated by shoal is charged to a tracker until its last
// reference goes away. Trackers form a tree (a loader's tracker has the
// process tracker as parent), so one number answers "how much does this
// loader hold" and another "how much does the process hold". The loader's
// memory budget is enforced on top of these counts.
//
// Thread-safety: all methods are thread-safe (lock-free atomics).
#ifndef SHOAL_FORMAT_BASE_MEMORY_H_
#define SHOAL_FORMAT_BASE_MEMORY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace shoal {

class MemoryTracker {
 public:
  /// `parent` (may be null) is charged with everything charged here and must
  /// outlive this tracker.
  explicit MemoryTracker(std::string name,
                         std::shared_ptr<MemoryTracker> parent = nullptr);
  MemoryTracker(const MemoryTracker&) = delete;
  MemoryTracker& operator=(const MemoryTracker&) = delete;

  /// The process-wide root tracker; buffers allocated without a tracker are
  /// charged here.
  static const std::shared_ptr<MemoryTracker>& Process();

  void Consume(int64_t bytes);
  void Release(int64_t bytes);

  const std::string& name() const { return name_; }
  int64_t in_use() const { return in_use_.load(std::memory_order_relaxed); }
  /// The highest in_use() seen since construction or the last ResetPeak().
  int64_t peak() const { return peak_.load(std::memory_order_relaxed); }
  void ResetPeak() { peak_.store(in_use(), std::memory_order_relaxed); }

 private:
  std::string name_;
  std::shared_ptr<MemoryTracker> parent_;
  std::atomic<int64_t> in_use_{0};
  std::atomic<int64_t> peak_{0};
};

}  // namespace shoal

#endif  // SHOAL_FORMAT_BASE_MEMORY_H_
