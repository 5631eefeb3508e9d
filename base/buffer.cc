#include "base/buffer.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace shoal {
namespace {

constexpr size_t kAlignment = 64;

// Owns one aligned allocation and its charge to a tracker.
// Allocations of at least this many bytes (whole chunks, decoded blocks,
// store reads) are mapped from the kernel and unmapped when freed. From the
// heap, glibc would keep them after free (its mmap threshold rises to the
// largest block freed, and each thread's arena keeps its own), so a
// process's RSS would stay at its past peak instead of following the memory
// actually held, which a loader's memory budget is about. MAP_POPULATE
// faults the pages in with one call instead of one trap per page (these
// buffers are always written whole right away).
constexpr size_t kMapBytes = 4 << 20;

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
      munmap(data, size);
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
  std::byte* data = nullptr;
  const bool mapped = size >= kMapBytes;
  if (mapped) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p != MAP_FAILED) data = static_cast<std::byte*>(p);  // page-aligned
  } else {
    // At least one byte, so that data() is never null.
    data = static_cast<std::byte*>(::operator new(
        size == 0 ? 1 : size, std::align_val_t(kAlignment), std::nothrow));
  }
  if (data == nullptr) {
    return ResourceExhausted("cannot allocate " + std::to_string(size) +
                             " bytes");
  }
  tracker->Charge(static_cast<int64_t>(size));
  MutableBuffer out;
  out.owner_ =
      std::make_shared<Allocation>(data, size, mapped, std::move(tracker));
  out.data_ = data;
  out.size_ = size;
  out.capacity_ = size;
  return out;
}

MutableBuffer MutableBuffer::Wrap(std::shared_ptr<void> owner, std::byte* data,
                                  size_t size) {
  MutableBuffer out;
  out.owner_ = std::move(owner);
  out.data_ = data;
  out.size_ = size;
  out.capacity_ = size;
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
