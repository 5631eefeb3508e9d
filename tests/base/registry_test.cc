#include "base/registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>

namespace shoal {
namespace {

using ::testing::HasSubstr;

struct GreeterKind {
  static constexpr std::string_view kKind = "greeter";
  using Factory = std::function<std::string(const std::string&)>;
};
using Greeters = Registry<GreeterKind>;

const bool kHello = Greeters::Register(
    "hello", [](const std::string& who) { return "hello " + who; });

TEST(RegistryTest, StaticRegistrationIsFound) {
  EXPECT_TRUE(kHello);
  auto factory = Greeters::Find("hello");
  ASSERT_TRUE(factory.ok());
  EXPECT_EQ((*factory)("you"), "hello you");
}

TEST(RegistryTest, FirstRegistrationWins) {
  EXPECT_TRUE(Greeters::Register("hi", [](const std::string&) { return "1"; }));
  EXPECT_FALSE(
      Greeters::Register("hi", [](const std::string&) { return "2"; }));
  EXPECT_EQ((*Greeters::Find("hi"))(""), "1");
}

TEST(RegistryTest, UnknownNamesTheKindAndTheKnownOnesPrintably) {
  auto factory = Greeters::Find("bye\x01");
  ASSERT_FALSE(factory.ok());
  EXPECT_EQ(factory.status().code(), StatusCode::kInvalidArgument);
  const std::string message(factory.status().message());
  EXPECT_THAT(message, HasSubstr("unknown greeter 'bye\\x01'"));
  EXPECT_THAT(message, HasSubstr("hello"));
}

TEST(RegistryTest, NamesAreSorted) {
  Greeters::Register("aardvark", [](const std::string&) { return ""; });
  const auto names = Greeters::Names();
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names.front(), "aardvark");
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
}

}  // namespace
}  // namespace shoal
