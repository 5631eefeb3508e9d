// Tests for base/result.h: value/error states, move-only values and
// the SHOAL_ASSIGN_OR_RETURN macro.
#include "base/result.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace shoal {
namespace {

TEST(ResultTest, HoldsValue) {
  Result<int> result = 42;
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result.status().ok());
  EXPECT_EQ(result.value(), 42);
  EXPECT_EQ(*result, 42);
  EXPECT_EQ(result.value_or(7), 42);
}

TEST(ResultTest, HoldsError) {
  Result<int> result = NotFound("no such tensor");
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.status(), NotFound("no such tensor"));
  EXPECT_EQ(result.value_or(7), 7);
}

TEST(ResultTest, OkStatusBecomesInternal) {
  Result<int> result = Status::OK();
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInternal);
}

TEST(ResultTest, ArrowReachesMembers) {
  Result<std::string> result = std::string("abc");
  EXPECT_EQ(result->size(), 3u);
  result->push_back('d');
  EXPECT_EQ(*result, "abcd");
}

TEST(ResultTest, MoveOnlyValue) {
  Result<std::unique_ptr<int>> result = std::make_unique<int>(5);
  ASSERT_TRUE(result.ok());
  std::unique_ptr<int> owned = std::move(result).value();
  ASSERT_NE(owned, nullptr);
  EXPECT_EQ(*owned, 5);
}

TEST(ResultTest, MutableValueAccess) {
  Result<std::vector<int>> result = std::vector<int>{1, 2};
  result.value().push_back(3);
  (*result).push_back(4);
  EXPECT_EQ(result->size(), 4u);
}

Result<int> Parse(bool ok) {
  if (!ok) return InvalidArgument("bad");
  return 10;
}

Result<int> AddOne(bool ok) {
  SHOAL_ASSIGN_OR_RETURN(int v, Parse(ok));
  return v + 1;
}

Status AssignToExisting(bool ok, int* out) {
  int v = 0;
  SHOAL_ASSIGN_OR_RETURN(v, Parse(ok));
  // Two uses in one function must not collide.
  SHOAL_ASSIGN_OR_RETURN(int w, Parse(ok));
  *out = v + w;
  return Status::OK();
}

Result<std::unique_ptr<int>> MakeOwned() { return std::make_unique<int>(3); }

Result<int> UnwrapOwned() {
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<int> p, MakeOwned());
  return *p;
}

TEST(ResultTest, AssignOrReturn) {
  EXPECT_EQ(AddOne(true).value(), 11);
  EXPECT_EQ(AddOne(false).status(), InvalidArgument("bad"));

  int out = 0;
  EXPECT_TRUE(AssignToExisting(true, &out).ok());
  EXPECT_EQ(out, 20);
  EXPECT_EQ(AssignToExisting(false, &out), InvalidArgument("bad"));

  EXPECT_EQ(UnwrapOwned().value(), 3);
}

TEST(ResultDeathTest, ValueOfErrorAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Result<int> result = Corruption("bad bytes");
  EXPECT_DEATH((void)result.value(), "Corruption: bad bytes");
}

}  // namespace
}  // namespace shoal
