// Tests for base/types.h: dtype metadata (names and codes are stored
// on disk) and shape arithmetic on untrusted dimensions.
#include "base/types.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

namespace shoal {
namespace {

using ::testing::HasSubstr;

struct DTypeCase {
  DType dtype;
  uint8_t code;
  std::string_view name;
  size_t size;
  std::string_view numpy;
  bool integer;
};

// Spelled out rather than derived: these are part of the on-disk format and
// of the NumPy interface, so a change here must be deliberate.
constexpr DTypeCase kDTypeCases[] = {
    {DType::kBool, 1, "bool", 1, "|b1", false},
    {DType::kUInt8, 2, "uint8", 1, "|u1", true},
    {DType::kUInt16, 3, "uint16", 2, "<u2", true},
    {DType::kUInt32, 4, "uint32", 4, "<u4", true},
    {DType::kUInt64, 5, "uint64", 8, "<u8", true},
    {DType::kInt8, 6, "int8", 1, "|i1", true},
    {DType::kInt16, 7, "int16", 2, "<i2", true},
    {DType::kInt32, 8, "int32", 4, "<i4", true},
    {DType::kInt64, 9, "int64", 8, "<i8", true},
    {DType::kFloat16, 10, "float16", 2, "<f2", false},
    {DType::kFloat32, 11, "float32", 4, "<f4", false},
    {DType::kFloat64, 12, "float64", 8, "<f8", false},
};

TEST(DTypeTest, Metadata) {
  for (const DTypeCase& c : kDTypeCases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(static_cast<uint8_t>(c.dtype), c.code);
    EXPECT_EQ(DTypeName(c.dtype), c.name);
    EXPECT_EQ(DTypeSize(c.dtype), c.size);
    EXPECT_EQ(DTypeNumpyDescr(c.dtype), c.numpy);
    EXPECT_EQ(IsIntegerDType(c.dtype), c.integer);
    EXPECT_EQ(ParseDType(c.name).value(), c.dtype);
    EXPECT_EQ(DTypeFromCode(c.code).value(), c.dtype);
  }
}

TEST(DTypeTest, ParseErrors) {
  for (std::string_view bad :
       {"", "float", "Float32", "int", "uint8 ", "f4", "<f4", "complex64"}) {
    Result<DType> parsed = ParseDType(bad);
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(std::string(ParseDType("float128").status().message()),
              HasSubstr("float128"));
}

TEST(DTypeTest, UnknownCodeIsCorruption) {
  for (uint8_t code : {0, 13, 255}) {
    EXPECT_EQ(DTypeFromCode(code).status().code(), StatusCode::kCorruption)
        << int{code};
  }
}

TEST(ShapeTest, Basics) {
  Shape scalar;
  EXPECT_EQ(scalar.rank(), 0u);
  EXPECT_EQ(scalar.num_elements(), 1u);
  EXPECT_EQ(scalar.ToString(), "[]");

  Shape image{28, 28, 3};
  EXPECT_EQ(image.rank(), 3u);
  EXPECT_EQ(image[0], 28u);
  EXPECT_EQ(image[2], 3u);
  EXPECT_EQ(image.num_elements(), 28u * 28u * 3u);
  EXPECT_EQ(image.ToString(), "[28, 28, 3]");
  EXPECT_THAT(std::vector<uint64_t>(image.dims().begin(), image.dims().end()),
              ::testing::ElementsAre(28, 28, 3));

  image[2] = 1;
  EXPECT_EQ(image, (Shape{28, 28, 1}));
  EXPECT_NE(image, (Shape{28, 28}));
  EXPECT_NE(image, (Shape{28, 28, 2}));
}

TEST(ShapeTest, ZeroDimensionMeansNoElements) {
  EXPECT_EQ((Shape{0}).num_elements(), 0u);
  EXPECT_EQ((Shape{5, 0, 7}).num_elements(), 0u);
  // A zero dimension wins even over a product that would overflow.
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ((Shape{max, max, 0}).num_elements(), 0u);
  EXPECT_EQ((Shape{max, max, 0}).ByteSize(DType::kFloat64).value(), 0u);
}

TEST(ShapeTest, Zeros) {
  Shape zeros = Shape::Zeros(3);
  EXPECT_EQ(zeros, (Shape{0, 0, 0}));
  EXPECT_EQ(zeros.num_elements(), 0u);
  EXPECT_EQ(Shape::Zeros(0).rank(), 0u);
}

TEST(ShapeTest, NumElementsSaturates) {
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ((Shape{uint64_t{1} << 32, uint64_t{1} << 32}).num_elements(), max);
  EXPECT_EQ((Shape{max, 2}).num_elements(), max);
}

TEST(ShapeTest, ByteSize) {
  EXPECT_EQ((Shape{28, 28}).ByteSize(DType::kUInt8).value(), 784u);
  EXPECT_EQ((Shape{28, 28}).ByteSize(DType::kFloat32).value(), 3136u);
  EXPECT_EQ(Shape().ByteSize(DType::kInt64).value(), 8u);
}

TEST(ShapeTest, ByteSizeOverflowIsResourceExhausted) {
  // 2^62 elements fit in uint64_t; 2^62 * 8 bytes do not.
  Shape shape{uint64_t{1} << 31, uint64_t{1} << 31};
  EXPECT_EQ(shape.ByteSize(DType::kUInt8).value(), uint64_t{1} << 62);
  Result<uint64_t> bytes = shape.ByteSize(DType::kFloat64);
  EXPECT_EQ(bytes.status().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(bytes.status().message()), HasSubstr("float64"));
}

TEST(ShapeTest, ByteSizeOverflowIsCaughtEvenWhenElementCountSaturates) {
  // 2^64 one-byte elements: num_elements() saturates to 2^64 - 1, which
  // must not pass for a real byte count.
  Shape shape{uint64_t{1} << 32, uint64_t{1} << 32};
  EXPECT_EQ(shape.ByteSize(DType::kUInt8).status().code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(shape.ByteSize(DType::kBool).status().code(),
            StatusCode::kResourceExhausted);
}

TEST(ShapeTest, MakeChecksRank) {
  std::vector<uint64_t> dims(Shape::kMaxRank, 2);
  Result<Shape> max_rank = Shape::Make(dims);
  ASSERT_TRUE(max_rank.ok());
  EXPECT_EQ(max_rank->rank(), Shape::kMaxRank);
  EXPECT_EQ(max_rank->num_elements(), 256u);

  dims.push_back(2);
  Result<Shape> too_many = Shape::Make(dims);
  EXPECT_EQ(too_many.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_many.status().message()), HasSubstr("9"));
}

TEST(ShapeTest, SpanConstructorCopiesDims) {
  std::vector<uint64_t> dims = {4, 5};
  Shape shape{std::span<const uint64_t>(dims)};
  dims[0] = 99;
  EXPECT_EQ(shape, (Shape{4, 5}));
}

TEST(ShapeDeathTest, InitializerListRankAboveMaxAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH((Shape{1, 1, 1, 1, 1, 1, 1, 1, 1}), "");
}

}  // namespace
}  // namespace shoal
