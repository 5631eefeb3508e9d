// Tests for base/buffer.h: zero-copy slices, bounds checks, and the
// memory accounting that the loader's budget builds on.
#include "base/buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace shoal {
namespace {

std::shared_ptr<MemoryBudget> NewTracker() {
  return std::make_shared<MemoryBudget>("test");
}

TEST(BufferTest, DefaultIsEmpty) {
  Buffer buffer;
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.size(), 0u);
  EXPECT_EQ(buffer.capacity(), 0u);
  EXPECT_TRUE(buffer.view().empty());
}

TEST(BufferTest, AsBytesAndAsStringViewRoundTrip) {
  const std::string s = "hello";
  ByteSpan bytes = AsBytes(s);
  EXPECT_EQ(bytes.size(), 5u);
  EXPECT_EQ(static_cast<const void*>(bytes.data()),
            static_cast<const void*>(s.data()));
  EXPECT_EQ(AsStringView(bytes), "hello");
}

TEST(BufferTest, CopyOfCopies) {
  std::string source = "abcdef";
  Buffer buffer = Buffer::CopyOf(source);
  source[0] = 'X';
  EXPECT_EQ(buffer.view(), "abcdef");
  EXPECT_EQ(buffer.size(), 6u);
  EXPECT_EQ(buffer.capacity(), 6u);
  EXPECT_NE(static_cast<const void*>(buffer.data()),
            static_cast<const void*>(source.data()));
}

TEST(BufferTest, CopyOfEmpty) {
  Buffer buffer = Buffer::CopyOf(std::string_view());
  EXPECT_TRUE(buffer.empty());
}

TEST(BufferTest, FromStringTakesOwnershipWithoutCopy) {
  std::string source(1000, 'q');  // Long enough to live on the heap.
  const char* data = source.data();
  Buffer buffer = Buffer::FromString(std::move(source));
  EXPECT_EQ(static_cast<const void*>(buffer.data()),
            static_cast<const void*>(data));
  EXPECT_EQ(buffer.size(), 1000u);
}

TEST(BufferTest, FromVectorTakesOwnershipWithoutCopy) {
  std::vector<std::byte> bytes(64, std::byte{7});
  const std::byte* data = bytes.data();
  Buffer buffer = Buffer::FromVector(std::move(bytes));
  EXPECT_EQ(buffer.data(), data);
  EXPECT_EQ(buffer.size(), 64u);
}

TEST(BufferTest, FromOwnerKeepsOwnerAliveUntilLastSlice) {
  auto storage = std::make_shared<std::string>("0123456789");
  std::weak_ptr<std::string> watch = storage;
  const auto* data = reinterpret_cast<const std::byte*>(storage->data());
  Buffer slice;
  {
    Buffer buffer = Buffer::FromOwner(storage, data, storage->size());
    storage.reset();
    slice = buffer.Slice(2, 3);
    EXPECT_FALSE(watch.expired());
  }
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ(slice.view(), "234");
  slice = Buffer();
  EXPECT_TRUE(watch.expired());
}

TEST(BufferTest, SliceSharesStorage) {
  Buffer buffer = Buffer::CopyOf("0123456789");
  Buffer slice = buffer.Slice(3, 4);
  EXPECT_EQ(slice.view(), "3456");
  EXPECT_EQ(slice.data(), buffer.data() + 3);
  // A slice keeps the whole allocation alive, and says so.
  EXPECT_EQ(slice.capacity(), 10u);
  Buffer nested = slice.Slice(1, 2);
  EXPECT_EQ(nested.view(), "45");
  EXPECT_EQ(nested.data(), buffer.data() + 4);
}

TEST(BufferTest, SliceEdges) {
  Buffer buffer = Buffer::CopyOf("abc");
  EXPECT_EQ(buffer.Slice(0, 3).view(), "abc");
  EXPECT_TRUE(buffer.Slice(3, 0).empty());
  EXPECT_TRUE(buffer.Slice(0, 0).empty());
}

TEST(BufferTest, CheckedSliceBounds) {
  Buffer buffer = Buffer::CopyOf("abcdef");
  Result<Buffer> inside = buffer.CheckedSlice(2, 4);
  ASSERT_TRUE(inside.ok());
  EXPECT_EQ(inside->view(), "cdef");
  EXPECT_EQ(inside->data(), buffer.data() + 2);

  Result<Buffer> at_end = buffer.CheckedSlice(6, 0);
  ASSERT_TRUE(at_end.ok());
  EXPECT_TRUE(at_end->empty());

  EXPECT_EQ(buffer.CheckedSlice(2, 5).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(buffer.CheckedSlice(7, 0).status().code(), StatusCode::kOutOfRange);
  // offset + length wraps around; must not pass the check.
  const size_t max = std::numeric_limits<size_t>::max();
  EXPECT_EQ(buffer.CheckedSlice(2, max - 1).status().code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(buffer.CheckedSlice(max, 2).status().code(),
            StatusCode::kOutOfRange);
}

TEST(BufferDeathTest, SliceOutOfRangeAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Buffer buffer = Buffer::CopyOf("abc");
  EXPECT_DEATH((void)buffer.Slice(2, 2), "Slice");
}

TEST(MutableBufferTest, AllocateFillFreeze) {
  auto tracker = NewTracker();
  Result<MutableBuffer> allocated = MutableBuffer::Allocate(100, tracker);
  ASSERT_TRUE(allocated.ok());
  MutableBuffer mutable_buffer = std::move(allocated).value();
  EXPECT_EQ(mutable_buffer.size(), 100u);
  EXPECT_EQ(mutable_buffer.span().size(), 100u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(mutable_buffer.data()) % 64, 0u);
  std::memset(mutable_buffer.data(), 'z', mutable_buffer.size());
  const std::byte* data = mutable_buffer.data();

  Buffer frozen = std::move(mutable_buffer).Freeze();
  EXPECT_EQ(frozen.data(), data);
  EXPECT_EQ(frozen.view(), std::string(100, 'z'));
  EXPECT_EQ(mutable_buffer.size(), 0u);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(mutable_buffer.data(), nullptr);
}

TEST(MutableBufferTest, ZeroSizeHasData) {
  Result<MutableBuffer> allocated = MutableBuffer::Allocate(0, NewTracker());
  ASSERT_TRUE(allocated.ok());
  EXPECT_NE(allocated->data(), nullptr);
  EXPECT_EQ(allocated->size(), 0u);
}

TEST(MutableBufferTest, ShrinkKeepsAllocation) {
  auto tracker = NewTracker();
  MutableBuffer mutable_buffer = MutableBuffer::Allocate(10, tracker).value();
  std::memcpy(mutable_buffer.data(), "0123456789", 10);
  mutable_buffer.Shrink(4);
  EXPECT_EQ(mutable_buffer.size(), 4u);
  Buffer frozen = std::move(mutable_buffer).Freeze();
  EXPECT_EQ(frozen.view(), "0123");
  // The tracker is charged for the allocation, not the visible size.
  EXPECT_EQ(tracker->in_use(), 10);
}

TEST(MutableBufferTest, TrackerAccountingFollowsLastSlice) {
  auto tracker = NewTracker();
  {
    MutableBuffer mutable_buffer =
        MutableBuffer::Allocate(1000, tracker).value();
    EXPECT_EQ(tracker->in_use(), 1000);
    Buffer whole = std::move(mutable_buffer).Freeze();
    EXPECT_EQ(tracker->in_use(), 1000);
    Buffer a = whole.Slice(0, 10);
    Buffer b = whole.Slice(500, 500);
    whole = Buffer();
    // Slices still hold the allocation.
    EXPECT_EQ(tracker->in_use(), 1000);
    a = Buffer();
    EXPECT_EQ(tracker->in_use(), 1000);
    Buffer c = b;
    b = Buffer();
    EXPECT_EQ(tracker->in_use(), 1000);
  }
  EXPECT_EQ(tracker->in_use(), 0);
  EXPECT_EQ(tracker->peak(), 1000);
}

TEST(MutableBufferTest, PeakTracksHighestUse) {
  auto tracker = NewTracker();
  {
    Buffer a = MutableBuffer::Allocate(300, tracker).value().Freeze();
    Buffer b = MutableBuffer::Allocate(200, tracker).value().Freeze();
    EXPECT_EQ(tracker->in_use(), 500);
  }
  EXPECT_EQ(tracker->in_use(), 0);
  EXPECT_EQ(tracker->peak(), 500);
  {
    Buffer c = MutableBuffer::Allocate(100, tracker).value().Freeze();
    EXPECT_EQ(tracker->peak(), 500);
  }
  tracker->ResetPeak();
  EXPECT_EQ(tracker->peak(), 0);
}

TEST(MutableBufferTest, ChargesParentTracker) {
  auto parent = NewTracker();
  auto child = std::make_shared<MemoryBudget>("child", 0, parent);
  {
    Buffer buffer = MutableBuffer::Allocate(64, child).value().Freeze();
    EXPECT_EQ(child->in_use(), 64);
    EXPECT_EQ(parent->in_use(), 64);
  }
  EXPECT_EQ(child->in_use(), 0);
  EXPECT_EQ(parent->in_use(), 0);
  EXPECT_EQ(parent->peak(), 64);
}

// Room taken with TryAdmit becomes the buffer's charge: the budget never
// counts the bytes twice (its peak stays at the limit), and they go back
// when the buffer does.
TEST(MutableBufferTest, AllocateAdmittedTakesOverTheCharge) {
  auto budget = std::make_shared<MemoryBudget>("admitted", 1000);
  ASSERT_TRUE(budget->TryAdmit(1000, false));
  {
    Buffer buffer =
        MutableBuffer::AllocateAdmitted(1000, budget).value().Freeze();
    EXPECT_EQ(buffer.size(), 1000u);
    EXPECT_EQ(budget->in_use(), 1000);
    EXPECT_EQ(budget->peak(), 1000);
    EXPECT_FALSE(budget->TryAdmit(1, false));
  }
  EXPECT_EQ(budget->in_use(), 0);
  EXPECT_EQ(budget->peak(), 1000);
}

TEST(MutableBufferTest, DefaultTrackerIsProcess) {
  const int64_t before = MemoryBudget::Process()->in_use();
  {
    Buffer buffer = MutableBuffer::Allocate(4096).value().Freeze();
    EXPECT_EQ(MemoryBudget::Process()->in_use(), before + 4096);
  }
  EXPECT_EQ(MemoryBudget::Process()->in_use(), before);
}

// Sanitizer allocators abort on absurd sizes instead of returning null.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
TEST(MutableBufferTest, ImpossibleAllocationIsResourceExhausted) {
  auto tracker = NewTracker();
  Result<MutableBuffer> allocated =
      MutableBuffer::Allocate(std::numeric_limits<size_t>::max() / 2, tracker);
  EXPECT_EQ(allocated.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(tracker->in_use(), 0);
  // A failed AllocateAdmitted leaves the caller's charge alone.
  tracker->Charge(64);
  allocated = MutableBuffer::AllocateAdmitted(
      std::numeric_limits<size_t>::max() / 2, tracker);
  EXPECT_EQ(allocated.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(tracker->in_use(), 64);
  tracker->Charge(-64);
}
#endif

}  // namespace
}  // namespace shoal
