// Tests for base/coding.h: the byte encodings that format/FORMAT.md
// is written in, and the reader's refusal of malformed input.
#include "base/coding.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace shoal {
namespace {

using ::testing::HasSubstr;

ByteSpan Bytes(const std::string& s) { return AsBytes(s); }

std::string Varint(uint64_t v) {
  ByteWriter writer;
  writer.PutVarint(v);
  return std::move(writer).Release();
}

TEST(ByteWriterTest, FixedWidthIsLittleEndian) {
  ByteWriter writer;
  writer.PutU8(0xab);
  writer.PutU16(0x0102);
  writer.PutU32(0x03040506);
  writer.PutU64(0x0708090a0b0c0d0eULL);
  EXPECT_EQ(writer.size(), 15u);
  EXPECT_EQ(writer.bytes(), std::string("\xab\x02\x01\x06\x05\x04\x03"
                                        "\x0e\x0d\x0c\x0b\x0a\x09\x08\x07",
                                        15));
}

TEST(ByteWriterTest, VarintEncodings) {
  EXPECT_EQ(Varint(0), std::string("\x00", 1));
  EXPECT_EQ(Varint(1), "\x01");
  EXPECT_EQ(Varint(127), "\x7f");
  EXPECT_EQ(Varint(128), "\x80\x01");
  EXPECT_EQ(Varint(300), "\xac\x02");
  EXPECT_EQ(Varint(16383), "\xff\x7f");
  EXPECT_EQ(Varint(16384), "\x80\x80\x01");
  EXPECT_EQ(Varint(std::numeric_limits<uint64_t>::max()),
            "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");
}

TEST(ByteWriterTest, LengthPrefixedAndPatch) {
  ByteWriter writer;
  writer.PutU32(0);
  writer.PutLengthPrefixed("abc");
  writer.PutBytes(std::string_view("xy"));
  writer.PutBytes(AsBytes("z"));
  writer.PatchU32(0, 0xdeadbeef);
  EXPECT_EQ(writer.bytes(), std::string("\xef\xbe\xad\xde\x03"
                                        "abcxyz"));
}

TEST(ByteReaderTest, FixedWidthRoundTrip) {
  ByteWriter writer;
  writer.PutU8(0xfe);
  writer.PutU16(0xbeef);
  writer.PutU32(0xfeedface);
  writer.PutU64(std::numeric_limits<uint64_t>::max() - 1);
  const std::string bytes = std::move(writer).Release();
  ByteReader reader(Bytes(bytes), "test");
  EXPECT_EQ(reader.GetU8().value(), 0xfe);
  EXPECT_EQ(reader.GetU16().value(), 0xbeef);
  EXPECT_EQ(reader.GetU32().value(), 0xfeedfaceu);
  EXPECT_EQ(reader.GetU64().value(), std::numeric_limits<uint64_t>::max() - 1);
  EXPECT_EQ(reader.remaining(), 0u);
  EXPECT_EQ(reader.GetU8().status().code(), StatusCode::kCorruption);
}

TEST(ByteReaderTest, TruncatedFixedWidthIsCorruption) {
  const std::string bytes("\x01\x02\x03", 3);
  ByteReader reader(Bytes(bytes), "chunk header");
  Result<uint32_t> v = reader.GetU32();
  EXPECT_EQ(v.status().code(), StatusCode::kCorruption);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("chunk header"));
  // A failed read consumes nothing.
  EXPECT_EQ(reader.position(), 0u);
  EXPECT_EQ(reader.GetU16().value(), 0x0201);
}

TEST(ByteReaderTest, VarintRoundTrips) {
  const std::vector<uint64_t> values = {
      0,
      1,
      127,
      128,
      255,
      300,
      16383,
      16384,
      (uint64_t{1} << 32) - 1,
      uint64_t{1} << 32,
      (uint64_t{1} << 56) + 3,
      uint64_t{1} << 63,
      std::numeric_limits<uint64_t>::max() - 1,
      std::numeric_limits<uint64_t>::max(),
  };
  ByteWriter writer;
  for (uint64_t v : values) writer.PutVarint(v);
  const std::string bytes = std::move(writer).Release();
  ByteReader reader(Bytes(bytes), "varints");
  for (uint64_t v : values) {
    Result<uint64_t> got = reader.GetVarint();
    ASSERT_TRUE(got.ok()) << v << ": " << got.status();
    EXPECT_EQ(*got, v);
  }
  EXPECT_EQ(reader.remaining(), 0u);
}

TEST(ByteReaderTest, VarintMaxIsTenBytes) {
  const std::string bytes = Varint(std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(bytes.size(), 10u);
  ByteReader reader(Bytes(bytes), "v");
  EXPECT_EQ(reader.GetVarint().value(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(reader.position(), 10u);
}

TEST(ByteReaderTest, TruncatedVarintIsCorruption) {
  for (const std::string& bytes :
       {std::string(), std::string("\x80"), std::string("\xff\xff\xff")}) {
    ByteReader reader(Bytes(bytes), "index");
    Result<uint64_t> v = reader.GetVarint();
    EXPECT_EQ(v.status().code(), StatusCode::kCorruption);
    EXPECT_THAT(std::string(v.status().message()), HasSubstr("index"));
  }
}

TEST(ByteReaderTest, TenthByteOverflowIsCorruption) {
  // Nine continuation bytes then 0x02: bit 64 would be set.
  const std::string bytes = std::string(9, '\xff') + "\x02";
  ByteReader reader(Bytes(bytes), "v");
  Result<uint64_t> v = reader.GetVarint();
  EXPECT_EQ(v.status().code(), StatusCode::kCorruption);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("overflow"));
}

TEST(ByteReaderTest, OverlongVarintIsCorruption) {
  // Eleven bytes, all with the continuation bit: longer than any uint64.
  const std::string bytes = std::string(10, '\x80') + std::string("\x00", 1);
  ByteReader reader(Bytes(bytes), "v");
  EXPECT_EQ(reader.GetVarint().status().code(), StatusCode::kCorruption);

  const std::string eleven_ff = std::string(11, '\xff');
  ByteReader reader2(Bytes(eleven_ff), "v");
  EXPECT_EQ(reader2.GetVarint().status().code(), StatusCode::kCorruption);
}

TEST(ByteReaderTest, GetVarintAtMost) {
  const std::string bytes = Varint(1000) + Varint(1001);
  ByteReader reader(Bytes(bytes), "tensor list");
  EXPECT_EQ(reader.GetVarintAtMost(1000, "count").value(), 1000u);
  Result<uint64_t> over = reader.GetVarintAtMost(1000, "count");
  EXPECT_EQ(over.status().code(), StatusCode::kCorruption);
  EXPECT_THAT(std::string(over.status().message()), HasSubstr("count"));
  EXPECT_THAT(std::string(over.status().message()), HasSubstr("1001"));
  EXPECT_THAT(std::string(over.status().message()), HasSubstr("tensor list"));
}

TEST(ByteReaderTest, BytesAndLengthPrefixed) {
  ByteWriter writer;
  writer.PutLengthPrefixed("hello");
  writer.PutBytes(std::string_view("tail"));
  const std::string bytes = std::move(writer).Release();

  ByteReader reader(Bytes(bytes), "names");
  EXPECT_EQ(reader.GetLengthPrefixed(5).value(), "hello");
  Result<ByteSpan> tail = reader.GetBytes(4);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(AsStringView(*tail), "tail");
  // Borrowed, not copied.
  EXPECT_EQ(tail->data(), Bytes(bytes).data() + 6);
  EXPECT_EQ(reader.GetBytes(1).status().code(), StatusCode::kCorruption);

  ByteReader limited(Bytes(bytes), "names");
  EXPECT_EQ(limited.GetLengthPrefixed(4).status().code(),
            StatusCode::kCorruption);
}

TEST(ByteReaderTest, LengthPrefixLongerThanInputIsCorruption) {
  const std::string bytes = Varint(100) + "short";
  ByteReader reader(Bytes(bytes), "names");
  EXPECT_EQ(reader.GetLengthPrefixed(1000).status().code(),
            StatusCode::kCorruption);
}

TEST(ByteReaderTest, Skip) {
  const std::string bytes = "abcdef";
  ByteReader reader(Bytes(bytes), "s");
  EXPECT_TRUE(reader.Skip(4).ok());
  EXPECT_EQ(reader.position(), 4u);
  EXPECT_EQ(reader.Skip(3).code(), StatusCode::kCorruption);
  EXPECT_TRUE(reader.Skip(2).ok());
  EXPECT_EQ(reader.remaining(), 0u);
}

TEST(ByteReaderTest, ErrorNamesWhatAndPosition) {
  const std::string bytes = "abc";
  ByteReader reader(Bytes(bytes), "chunk index");
  ASSERT_TRUE(reader.Skip(2).ok());
  EXPECT_EQ(reader.Error("bad tag"),
            Corruption("chunk index: bad tag at byte 2"));
}

TEST(CodingTest, EncodeDecodeFixed) {
  const std::byte buf[4] = {std::byte{0x44}, std::byte{0x33}, std::byte{0x22},
                            std::byte{0x11}};
  EXPECT_EQ(DecodeU32(buf), 0x11223344u);

  const std::string bytes("\x01\x02\x03\x04\x05\x06\x07\x88", 8);
  EXPECT_EQ(DecodeU64(Bytes(bytes).data()), 0x8807060504030201ULL);
}

// Expected values come from the reference implementation's CLI
// (`xxhsum -H3`, xxHash 0.8.1), not from the code under test:
//   printf ''    | xxhsum -H3  ->  2d06800538d394c2
//   printf 'abc' | xxhsum -H3  ->  78af5f94892f3950
TEST(CodingTest, Checksum64IsXxh3) {
  EXPECT_EQ(Checksum64(ByteSpan()), 0x2D06800538D394C2ULL);
  EXPECT_EQ(Checksum64(AsBytes("abc")), 0x78AF5F94892F3950ULL);
  EXPECT_NE(Checksum64(AsBytes("abd")), Checksum64(AsBytes("abc")));
}

TEST(CodingTest, HexStrings) {
  const std::string bytes("\x00\x0f\xa5\xff", 4);
  EXPECT_EQ(HexString(Bytes(bytes)), "000fa5ff");
  EXPECT_EQ(HexString(ByteSpan()), "");
  EXPECT_EQ(Hex64(0), "0000000000000000");
  EXPECT_EQ(Hex64(0x2D06800538D394C2ULL), "2d06800538d394c2");
  EXPECT_EQ(Hex64(std::numeric_limits<uint64_t>::max()), "ffffffffffffffff");
}

}  // namespace
}  // namespace shoal
