// Buffer: an immutable, reference-counted run of bytes with zero-copy slices.
// MutableBuffer: a uniquely owned, writable allocation that becomes a Buffer
// once filled (Freeze).
//
// Samples leave chunks as slices of the chunk's buffer, so no sample bytes are
// copied between the store and the decoder. Allocations are 64-byte aligned
// and charged to a MemoryBudget until the last slice is gone.
//
// Thread-safety: a Buffer is immutable; copies and slices may be used and
// destroyed from any thread. A MutableBuffer has one owner.
#ifndef SHOAL_BASE_BUFFER_H_
#define SHOAL_BASE_BUFFER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/memory.h"
#include "base/result.h"

namespace shoal {

using ByteSpan = std::span<const std::byte>;
using MutableByteSpan = std::span<std::byte>;

inline ByteSpan AsBytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
inline std::string_view AsStringView(ByteSpan b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// MutableBuffer::Allocate maps allocations of this size and more with
/// MapPages (so they come populated); smaller ones come from the heap.
inline constexpr size_t kMappedBufferBytes = size_t{4} << 20;

/// `size` bytes of fresh, zeroed, populated anonymous memory, on huge pages
/// where the kernel gives them (see base/buffer.cc for why), or nullptr.
/// MutableBuffer uses it for allocations of kMappedBufferBytes and more; pools
/// that keep their own large regions (the loader's chunk buffers) use it too.
/// Free with UnmapPages(p, size).
std::byte* MapPages(size_t size);
void UnmapPages(std::byte* data, size_t size);

class Buffer {
 public:
  /// An empty buffer.
  Buffer() = default;

  /// A new allocation holding a copy of `bytes`.
  static Buffer CopyOf(ByteSpan bytes);
  static Buffer CopyOf(std::string_view bytes) {
    return CopyOf(AsBytes(bytes));
  }
  /// Takes ownership of `bytes` without copying them.
  static Buffer FromVector(std::vector<std::byte> bytes);
  static Buffer FromString(std::string bytes);
  /// Views `size` bytes at `data`, kept alive by `owner` (e.g. an mmap).
  static Buffer FromOwner(std::shared_ptr<const void> owner,
                          const std::byte* data, size_t size);

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  ByteSpan span() const { return {data_, size_}; }
  std::string_view view() const { return AsStringView(span()); }

  /// A view of [offset, offset + length) sharing this buffer's storage.
  /// Precondition: the range lies inside the buffer (checked; an out-of-range
  /// slice is a programming error and aborts).
  Buffer Slice(size_t offset, size_t length) const;
  /// Like Slice, but returns OutOfRange instead of aborting; for ranges that
  /// come from stored (untrusted) bytes.
  Result<Buffer> CheckedSlice(size_t offset, size_t length) const;

  /// Number of bytes of the underlying allocation this buffer keeps alive.
  /// Equal to size() unless this is a slice.
  size_t capacity() const;

 private:
  friend class MutableBuffer;
  Buffer(std::shared_ptr<const void> owner, const std::byte* data, size_t size,
         size_t capacity)
      : owner_(std::move(owner)),
        data_(data),
        size_(size),
        capacity_(capacity) {}

  std::shared_ptr<const void> owner_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

class MutableBuffer {
 public:
  MutableBuffer() = default;
  MutableBuffer(MutableBuffer&&) noexcept = default;
  MutableBuffer& operator=(MutableBuffer&&) noexcept = default;

  /// A new uninitialized allocation of `size` bytes charged to `tracker`
  /// (MemoryBudget::Process() when null). ResourceExhausted when the system has
  /// no memory for it.
  static Result<MutableBuffer> Allocate(
      size_t size, std::shared_ptr<MemoryBudget> tracker = nullptr);
  /// The same for `size` bytes already charged to `budget` (room taken with
  /// MemoryBudget::TryAdmit): the buffer takes that charge over and gives it
  /// back when freed, so the bytes are never counted twice, not even for a
  /// moment. On failure the charge stays the caller's. `budget` must not be
  /// null.
  static Result<MutableBuffer> AllocateAdmitted(
      size_t size, std::shared_ptr<MemoryBudget> budget);

  std::byte* data() { return data_; }
  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  MutableByteSpan span() { return {data_, size_}; }

  /// A writable view of `size` bytes at `data` that `owner` keeps alive and
  /// frees when the last Buffer made from it goes (e.g. a region of a
  /// caller's buffer pool, returned to the pool by the owner's deleter).
  /// `capacity`: the bytes the owner keeps alive, when more than `size`
  /// (what Buffer::capacity() then reports).
  static MutableBuffer Wrap(std::shared_ptr<void> owner, std::byte* data,
                            size_t size, size_t capacity = 0);

  /// Makes the visible size smaller (the allocation stays). `size` must not
  /// exceed the current size.
  void Shrink(size_t size);

  /// Hands the bytes over as an immutable Buffer; this becomes empty.
  Buffer Freeze() &&;

 private:
  std::shared_ptr<void> owner_;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

/// Supplies the buffer a bulk decode writes into (default:
/// MutableBuffer::Allocate); lets a caller recycle its own buffers.
using BufferAllocator = std::function<Result<MutableBuffer>(size_t bytes)>;

}  // namespace shoal

#endif  // SHOAL_BASE_BUFFER_H_
