// Tests for format/base/memory.h: counts, peaks, the tracker tree, and
// lock-free updates from many threads.
#include "format/base/memory.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace shoal {
namespace {

TEST(MemoryTrackerTest, ConsumeAndRelease) {
  MemoryTracker tracker("t");
  EXPECT_EQ(tracker.name(), "t");
  EXPECT_EQ(tracker.in_use(), 0);
  tracker.Consume(100);
  tracker.Consume(50);
  EXPECT_EQ(tracker.in_use(), 150);
  tracker.Release(120);
  EXPECT_EQ(tracker.in_use(), 30);
  EXPECT_EQ(tracker.peak(), 150);
  tracker.ResetPeak();
  EXPECT_EQ(tracker.peak(), 30);
  tracker.Consume(10);
  EXPECT_EQ(tracker.peak(), 40);
}

TEST(MemoryTrackerTest, ParentSeesChildren) {
  auto root = std::make_shared<MemoryTracker>("root");
  auto a = std::make_shared<MemoryTracker>("a", root);
  auto b = std::make_shared<MemoryTracker>("b", root);
  a->Consume(10);
  b->Consume(20);
  EXPECT_EQ(root->in_use(), 30);
  a->Release(10);
  EXPECT_EQ(root->in_use(), 20);
  EXPECT_EQ(root->peak(), 30);
  EXPECT_EQ(a->peak(), 10);
  b->Release(20);
  EXPECT_EQ(root->in_use(), 0);
}

TEST(MemoryTrackerTest, ProcessIsASingleton) {
  EXPECT_EQ(MemoryTracker::Process().get(), MemoryTracker::Process().get());
  EXPECT_EQ(MemoryTracker::Process()->name(), "process");
}

TEST(MemoryTrackerTest, ConcurrentUpdatesBalance) {
  auto root = std::make_shared<MemoryTracker>("root");
  auto child = std::make_shared<MemoryTracker>("child", root);
  constexpr int kThreads = 8;
  constexpr int kIterations = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIterations; ++i) {
        child->Consume(3);
        child->Release(3);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(child->in_use(), 0);
  EXPECT_EQ(root->in_use(), 0);
  EXPECT_GE(child->peak(), 3);
  EXPECT_LE(child->peak(), 3 * kThreads);
}

}  // namespace
}  // namespace shoal
