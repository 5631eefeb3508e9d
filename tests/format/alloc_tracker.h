// Largest-allocation tracking for hostile-input tests: a test binary that
// includes this header (in exactly one .cc) replaces the global operator new
// so that a test can assert that decoding a lying size did not allocate in
// proportion to it. Aligned allocations (shoal's Buffers) are counted by
// MemoryBudget::Process() instead.
//
// Thread-safety: the counters are atomics.
#ifndef SHOAL_TESTS_FORMAT_ALLOC_TRACKER_H_
#define SHOAL_TESTS_FORMAT_ALLOC_TRACKER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "base/memory.h"

namespace shoal::format_test {

inline std::atomic<size_t> g_largest_new{0};

/// Measures the largest single operator-new allocation and the peak of
/// Buffer memory while it is alive.
class AllocationWatch {
 public:
  AllocationWatch() {
    g_largest_new.store(0);
    MemoryBudget::Process()->ResetPeak();
    base_ = MemoryBudget::Process()->in_use();
  }
  size_t largest_new() const { return g_largest_new.load(); }
  int64_t buffer_peak() const {
    return MemoryBudget::Process()->peak() - base_;
  }

 private:
  int64_t base_ = 0;
};

}  // namespace shoal::format_test

inline void* TrackedNew(std::size_t n) {
  size_t seen =
      shoal::format_test::g_largest_new.load(std::memory_order_relaxed);
  while (n > seen && !shoal::format_test::g_largest_new.compare_exchange_weak(
                         seen, n, std::memory_order_relaxed)) {
  }
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void* operator new(std::size_t n) { return TrackedNew(n); }
void* operator new[](std::size_t n) { return TrackedNew(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

#endif  // SHOAL_TESTS_FORMAT_ALLOC_TRACKER_H_
