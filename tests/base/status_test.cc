// Tests for base/status.h: codes, messages, context chaining and the
// errno mapping that every store relies on.
#include "base/status.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <sstream>

namespace shoal {
namespace {

using ::testing::HasSubstr;

TEST(StatusTest, DefaultIsOk) {
  Status status;
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kOk);
  EXPECT_EQ(status.message(), "");
  EXPECT_EQ(status.ToString(), "OK");
  EXPECT_EQ(status, Status::OK());
}

TEST(StatusTest, OkCodeDropsMessage) {
  Status status(StatusCode::kOk, "ignored");
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(status.message(), "");
}

TEST(StatusTest, HelpersSetTheirCode) {
  struct Case {
    Status status;
    StatusCode code;
    std::string_view name;
  };
  const Case cases[] = {
      {InvalidArgument("m"), StatusCode::kInvalidArgument, "InvalidArgument"},
      {NotFound("m"), StatusCode::kNotFound, "NotFound"},
      {AlreadyExists("m"), StatusCode::kAlreadyExists, "AlreadyExists"},
      {OutOfRange("m"), StatusCode::kOutOfRange, "OutOfRange"},
      {FailedPrecondition("m"), StatusCode::kFailedPrecondition,
       "FailedPrecondition"},
      {Corruption("m"), StatusCode::kCorruption, "Corruption"},
      {IOError("m"), StatusCode::kIOError, "IOError"},
      {Unimplemented("m"), StatusCode::kUnimplemented, "Unimplemented"},
      {Cancelled("m"), StatusCode::kCancelled, "Cancelled"},
      {ResourceExhausted("m"), StatusCode::kResourceExhausted,
       "ResourceExhausted"},
      {Internal("m"), StatusCode::kInternal, "Internal"},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(c.status.ok()) << c.name;
    EXPECT_EQ(c.status.code(), c.code) << c.name;
    EXPECT_EQ(StatusCodeName(c.code), c.name);
    EXPECT_EQ(c.status.message(), "m");
    EXPECT_EQ(c.status.ToString(), std::string(c.name) + ": m");
  }
  EXPECT_EQ(StatusCodeName(StatusCode::kOk), "OK");
}

TEST(StatusTest, ToStringWithoutMessageIsJustTheCode) {
  EXPECT_EQ(NotFound("").ToString(), "NotFound");
}

TEST(StatusTest, WithContextPrependsContext) {
  const Status status = Corruption("block 2 checksum mismatch")
                            .WithContext("chunk 'c0f3'")
                            .WithContext("tensor 'images'");
  EXPECT_EQ(status.code(), StatusCode::kCorruption);
  EXPECT_EQ(status.message(),
            "tensor 'images': chunk 'c0f3': block 2 checksum mismatch");
  EXPECT_EQ(status.ToString(),
            "Corruption: tensor 'images': chunk 'c0f3': block 2 checksum "
            "mismatch");
}

TEST(StatusTest, WithContextKeepsOkAndEmptyContext) {
  EXPECT_TRUE(Status::OK().WithContext("tensor 'x'").ok());
  const Status status = IOError("disk on fire");
  EXPECT_EQ(status.WithContext(""), status);
  EXPECT_EQ(NotFound("").WithContext("key 'a'").message(), "key 'a'");
}

TEST(StatusTest, WithContextLeavesOriginalUnchanged) {
  const Status original = IOError("x");
  const Status copy = original;
  (void)original.WithContext("ctx");
  EXPECT_EQ(original.message(), "x");
  EXPECT_EQ(copy, original);
}

TEST(StatusTest, EqualityComparesCodeAndMessage) {
  EXPECT_EQ(NotFound("a"), NotFound("a"));
  EXPECT_FALSE(NotFound("a") == NotFound("b"));
  EXPECT_FALSE(NotFound("a") == IOError("a"));
  EXPECT_FALSE(NotFound("") == Status::OK());
}

TEST(StatusTest, StreamsToString) {
  std::ostringstream os;
  os << OutOfRange("index 7");
  EXPECT_EQ(os.str(), "OutOfRange: index 7");
}

TEST(StatusTest, ErrnoStatusMapsCodes) {
  const Status missing = ErrnoStatus("open /data/x", ENOENT);
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.message(),
            std::string("open /data/x: ") + std::strerror(ENOENT));

  EXPECT_EQ(ErrnoStatus("write f", ENOSPC).code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoStatus("alloc", ENOMEM).code(),
            StatusCode::kResourceExhausted);

  const Status denied = ErrnoStatus("open f", EACCES);
  EXPECT_EQ(denied.code(), StatusCode::kIOError);
  EXPECT_THAT(std::string(denied.message()), HasSubstr("open f: "));
  EXPECT_THAT(std::string(denied.message()), HasSubstr(std::strerror(EACCES)));
}

Status FailIf(bool fail, int* reached) {
  SHOAL_RETURN_IF_ERROR(fail ? IOError("early") : Status::OK());
  ++*reached;
  return Status::OK();
}

TEST(StatusTest, ReturnIfErrorReturnsEarlyOnlyOnError) {
  int reached = 0;
  EXPECT_TRUE(FailIf(false, &reached).ok());
  EXPECT_EQ(reached, 1);
  EXPECT_EQ(FailIf(true, &reached), IOError("early"));
  EXPECT_EQ(reached, 1);
}

}  // namespace
}  // namespace shoal
