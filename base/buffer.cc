#include "base/buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace shoal {
namespace {

constexpr size_t kAlignment = 64;

// Allocations of at least this many bytes (whole chunks, decoded blocks,
// store reads) are mapped from the kernel and unmapped when freed. From the
// heap, glibc would keep them after free (its mmap threshold rises to the
// largest block freed, and each thread's arena keeps its own), so a
// process's RSS would stay at its past peak instead of following the memory
// actually held, which a loader's memory budget is about.
//
// Fresh pages cost a fault and a zeroing each. With 4 KiB pages touched one
// by one that is ~0.7 ms per MiB on the benchmark VM (57 ms to fault 64 MiB
// against 8 ms to memcpy it), which made a decoded 8 MiB span cost more than
// decompressing it. So these mappings are 2 MiB-aligned and populated in one
// call (MADV_POPULATE_WRITE; touching each page where the kernel predates
// it). These buffers are always written whole right away, so populating
// wastes nothing.
//
// Transparent huge pages (MADV_HUGEPAGE: THP's default "madvise" mode
// honours it) make that 0.1 ms per MiB, but only for memory the process
// gave back a moment ago: on a VM whose host takes back the guest's free
// memory (free page reporting, as Firecracker's guests have), huge pages
// the guest has not touched lately cost 1-2 ms per MiB, against 0.3 for
// 4 KiB pages populated the same way, warm or not (measured with 8 and 87
// MiB mappings on the benchmark VM). Buffers kept in pools (the loader's
// chunks and batches) are such first-touch memory; read paths that
// allocate and free in turn are not. So huge pages are asked for only
// while the process has lately unmapped at least as much (`warm`); a huge
// page never reaches past the buffer's own end (the kernel only uses one
// where an aligned 2 MiB range lies wholly inside the mapping), so RSS
// still follows the bytes held.
constexpr size_t kHugePage = 2 << 20;

// Bytes unmapped within kWarmNanos of the last unmap, not yet used again.
// The kernel reports free memory to the host after 2 s; a second leaves
// room. Races between threads only blur a heuristic.
constexpr int64_t kWarmNanos = 1'000'000'000;
std::atomic<int64_t> warm_bytes{0};
std::atomic<int64_t> last_unmap_ns{0};

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Whether `size` bytes of what was lately unmapped are left to reuse, and
// if so takes them.
bool TakeWarm(size_t size) {
  if (NowNanos() - last_unmap_ns.load(std::memory_order_relaxed) > kWarmNanos) {
    return false;
  }
  const auto want = static_cast<int64_t>(size);
  int64_t have = warm_bytes.load(std::memory_order_relaxed);
  do {
    if (have < want) return false;
  } while (!warm_bytes.compare_exchange_weak(have, have - want,
                                             std::memory_order_relaxed));
  return true;
}

}  // namespace

std::byte* MapPages(size_t size) {
  const size_t span = size + kHugePage;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  auto* begin = static_cast<std::byte*>(raw);
  const auto address = reinterpret_cast<uintptr_t>(begin);
  auto* data = begin + ((kHugePage - address % kHugePage) % kHugePage);
  // Give back the unaligned head and the tail beyond `size`.
  if (data > begin) munmap(begin, static_cast<size_t>(data - begin));
  std::byte* end = begin + span;
  const size_t tail =
      static_cast<size_t>(end - (data + size)) & ~static_cast<size_t>(4095);
  if (tail > 0) munmap(end - tail, tail);
  if (TakeWarm(size)) {
    madvise(data, size, MADV_HUGEPAGE);  // advice: failure only costs speed
  }
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif
  if (madvise(data, size, MADV_POPULATE_WRITE) != 0) {
    // Older kernel: one store per page does the same.
    volatile std::byte* bytes = data;
    for (size_t i = 0; i < size; i += 4096) bytes[i] = std::byte{0};
  }
  return data;
}

void UnmapPages(std::byte* data, size_t size) {
  munmap(data, size);
  const int64_t now = NowNanos();
  const int64_t last = last_unmap_ns.exchange(now, std::memory_order_relaxed);
  const auto bytes = static_cast<int64_t>(size);
  if (now - last > kWarmNanos) {
    warm_bytes.store(bytes, std::memory_order_relaxed);  // the rest went cold
  } else {
    warm_bytes.fetch_add(bytes, std::memory_order_relaxed);
  }
}

namespace {

// Owns one aligned allocation and its charge to a tracker.
struct Allocation {
  Allocation(std::byte* d, size_t n, bool m, std::shared_ptr<MemoryBudget> t)
      : data(d), size(n), mapped(m), tracker(std::move(t)) {}
  Allocation(const Allocation&) = delete;
  Allocation& operator=(const Allocation&) = delete;
  std::byte* data;
  size_t size;
  bool mapped;
  std::shared_ptr<MemoryBudget> tracker;
  ~Allocation() {
    if (mapped) {
      UnmapPages(data, size);
    } else {
      ::operator delete(data, std::align_val_t(kAlignment));
    }
    tracker->Charge(-static_cast<int64_t>(size));
  }
};

}  // namespace

Buffer Buffer::CopyOf(ByteSpan bytes) {
  auto mutable_buffer = MutableBuffer::Allocate(bytes.size());
  if (!mutable_buffer.ok()) std::abort();  // Out of memory for a copy.
  if (!bytes.empty()) {
    std::memcpy(mutable_buffer->data(), bytes.data(), bytes.size());
  }
  return std::move(*mutable_buffer).Freeze();
}

Buffer Buffer::FromVector(std::vector<std::byte> bytes) {
  auto owner = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
  const std::byte* data = owner->data();
  const size_t size = owner->size();
  return Buffer(std::move(owner), data, size, size);
}

Buffer Buffer::FromString(std::string bytes) {
  auto owner = std::make_shared<const std::string>(std::move(bytes));
  const auto* data = reinterpret_cast<const std::byte*>(owner->data());
  const size_t size = owner->size();
  return Buffer(std::move(owner), data, size, size);
}

Buffer Buffer::FromOwner(std::shared_ptr<const void> owner,
                         const std::byte* data, size_t size) {
  return Buffer(std::move(owner), data, size, size);
}

Buffer Buffer::Slice(size_t offset, size_t length) const {
  if (offset > size_ || length > size_ - offset) {
    std::fprintf(stderr, "shoal: Buffer::Slice(%zu, %zu) of %zu bytes\n",
                 offset, length, size_);
    std::abort();
  }
  return Buffer(owner_, data_ + offset, length, capacity_);
}

Result<Buffer> Buffer::CheckedSlice(size_t offset, size_t length) const {
  if (offset > size_ || length > size_ - offset) {
    return OutOfRange("byte range [" + std::to_string(offset) + ", +" +
                      std::to_string(length) + ") outside a buffer of " +
                      std::to_string(size_) + " bytes");
  }
  return Buffer(owner_, data_ + offset, length, capacity_);
}

size_t Buffer::capacity() const { return capacity_; }

Result<MutableBuffer> MutableBuffer::Allocate(
    size_t size, std::shared_ptr<MemoryBudget> tracker) {
  if (!tracker) tracker = MemoryBudget::Process();
  tracker->Charge(static_cast<int64_t>(size));
  Result<MutableBuffer> out = AllocateAdmitted(size, tracker);
  if (!out.ok()) tracker->Charge(-static_cast<int64_t>(size));
  return out;
}

Result<MutableBuffer> MutableBuffer::AllocateAdmitted(
    size_t size, std::shared_ptr<MemoryBudget> tracker) {
  std::byte* data = nullptr;
  const bool mapped = size >= kMappedBufferBytes;
  if (mapped) {
    data = MapPages(size);
  } else {
    // At least one byte, so that data() is never null.
    data = static_cast<std::byte*>(::operator new(
        size == 0 ? 1 : size, std::align_val_t(kAlignment), std::nothrow));
  }
  if (data == nullptr) {
    return ResourceExhausted("cannot allocate " + std::to_string(size) +
                             " bytes");
  }
  MutableBuffer out;
  out.owner_ =
      std::make_shared<Allocation>(data, size, mapped, std::move(tracker));
  out.data_ = data;
  out.size_ = size;
  out.capacity_ = size;
  return out;
}

MutableBuffer MutableBuffer::Wrap(std::shared_ptr<void> owner, std::byte* data,
                                  size_t size, size_t capacity) {
  MutableBuffer out;
  out.owner_ = std::move(owner);
  out.data_ = data;
  out.size_ = size;
  out.capacity_ = std::max(size, capacity);
  return out;
}

void MutableBuffer::Shrink(size_t size) {
  if (size > size_) std::abort();
  size_ = size;
}

Buffer MutableBuffer::Freeze() && {
  Buffer out(std::move(owner_), data_, size_, capacity_);
  data_ = nullptr;
  size_ = capacity_ = 0;
  return out;
}

}  // namespace shoal
