#include "format/base/memory.h"

namespace shoal {

MemoryTracker::MemoryTracker(std::string name,
                             std::shared_ptr<MemoryTracker> parent)
    : name_(std::move(name)), parent_(std::move(parent)) {}

const std::shared_ptr<MemoryTracker>& MemoryTracker::Process() {
  static const auto* process = new std::shared_ptr<MemoryTracker>(
      std::make_shared<MemoryTracker>("process"));
  return *process;
}

void MemoryTracker::Consume(int64_t bytes) {
  const int64_t now =
      in_use_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  int64_t peak = peak_.load(std::memory_order_relaxed);
  while (now > peak &&
         !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  if (parent_) parent_->Consume(bytes);
}

void MemoryTracker::Release(int64_t bytes) {
  in_use_.fetch_sub(bytes, std::memory_order_relaxed);
  if (parent_) parent_->Release(bytes);
}

}  // namespace shoal
