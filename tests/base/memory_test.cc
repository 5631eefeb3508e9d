// Tests for base/memory.h: counts, peaks, the budget tree, admission under
// a limit, waiting for room, and lock-free updates from many threads.
#include "base/memory.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace shoal {
namespace {

TEST(MemoryBudgetTest, ChargesAndPeak) {
  MemoryBudget budget("test");
  budget.Charge(100);
  budget.Charge(50);
  EXPECT_EQ(budget.in_use(), 150);
  budget.Charge(-120);
  EXPECT_EQ(budget.in_use(), 30);
  EXPECT_EQ(budget.peak(), 150);
  budget.ResetPeak();
  EXPECT_EQ(budget.peak(), 30);
  budget.Charge(10);
  EXPECT_EQ(budget.peak(), 40);
}

TEST(MemoryBudgetTest, ChildrenChargeTheirParent) {
  auto root = std::make_shared<MemoryBudget>("root");
  auto a = std::make_shared<MemoryBudget>("a", 0, root);
  auto b = std::make_shared<MemoryBudget>("b", 0, root);
  a->Charge(10);
  b->Charge(20);
  EXPECT_EQ(root->in_use(), 30);
  a->Charge(-10);
  EXPECT_EQ(root->in_use(), 20);
  EXPECT_EQ(root->peak(), 30);
  ASSERT_TRUE(a->TryAdmit(5, false));
  EXPECT_EQ(root->in_use(), 25);
}

TEST(MemoryBudgetTest, AdmitsWhatFitsUnderTheLimit) {
  MemoryBudget budget("test", 100);
  EXPECT_TRUE(budget.TryAdmit(60, false));
  EXPECT_TRUE(budget.TryAdmit(40, false));  // exactly full
  EXPECT_FALSE(budget.TryAdmit(1, false));
  EXPECT_EQ(budget.in_use(), 100) << "a refusal charges nothing";
  EXPECT_TRUE(budget.TryAdmit(1, /*alone=*/true));
  EXPECT_EQ(budget.in_use(), 101);
  budget.Charge(-101);
  // Larger than the whole budget: only into an empty budget.
  EXPECT_TRUE(budget.TryAdmit(500, false));
  EXPECT_FALSE(budget.TryAdmit(1, false));
}

TEST(MemoryBudgetTest, UnlimitedAdmitsEverything) {
  MemoryBudget budget("test");
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(budget.TryAdmit(1ull << 40, false));
}

TEST(MemoryBudgetTest, AReleaseEndsAWait) {
  MemoryBudget budget("test", 10);
  ASSERT_TRUE(budget.TryAdmit(10, false));
  std::atomic<bool> admitted{false};
  std::thread waiter([&] {
    while (true) {
      const uint32_t seen = budget.events();
      if (budget.TryAdmit(5, false)) break;
      budget.Wait(seen);
    }
    admitted = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(admitted.load()) << "admitted past the limit";
  budget.Charge(-10);
  waiter.join();
  EXPECT_TRUE(admitted.load());
  EXPECT_EQ(budget.in_use(), 5);
}

TEST(MemoryBudgetTest, ProcessIsASingleton) {
  EXPECT_EQ(MemoryBudget::Process().get(), MemoryBudget::Process().get());
  EXPECT_EQ(MemoryBudget::Process()->name(), "process");
  EXPECT_EQ(MemoryBudget::Process()->limit(), 0u);
}

TEST(MemoryBudgetTest, ConcurrentUpdatesBalance) {
  auto root = std::make_shared<MemoryBudget>("root");
  auto child = std::make_shared<MemoryBudget>("child", 1000, root);
  constexpr int kThreads = 8;
  constexpr int kIterations = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIterations; ++i) {
        child->Charge(3);
        child->Charge(-3);
        if (child->TryAdmit(2, false)) child->Charge(-2);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(child->in_use(), 0);
  EXPECT_EQ(root->in_use(), 0);
  EXPECT_GE(child->peak(), 3);
  EXPECT_LE(child->peak(), 5 * kThreads);
}

}  // namespace
}  // namespace shoal
