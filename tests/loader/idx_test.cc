// Tests of the IDX reader with files built byte by byte here, plain and
// gzip-compressed, including every kind of malformed file the reader must
// refuse.
#include "loader/internal/idx.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "base/memory.h"

namespace shoal::internal {
namespace {

using ::testing::HasSubstr;

// An IDX file: magic with `type` and dims.size(), big-endian dims, then
// `data` as given (already big-endian).
std::string IdxBytes(uint8_t type, const std::vector<uint32_t>& dims,
                     const std::string& data) {
  std::string out = {'\0', '\0', static_cast<char>(type),
                     static_cast<char>(dims.size())};
  for (const uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      out += static_cast<char>(d >> shift);
    }
  }
  return out + data;
}

class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "idx_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string WritePlain(const std::string& name, const std::string& bytes) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  std::string WriteGzip(const std::string& name, const std::string& bytes) {
    const std::string path = dir_ + "/" + name;
    gzFile file = gzopen(path.c_str(), "wb");
    EXPECT_NE(file, nullptr);
    if (!bytes.empty()) {
      EXPECT_EQ(
          gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
          static_cast<int>(bytes.size()));
    }
    EXPECT_EQ(gzclose(file), Z_OK);
    return path;
  }

  std::string ReadRaw(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string dir_;
};

TEST_F(IdxTest, ReadsPlainUInt8) {
  const std::string path =
      WritePlain("images-idx3-ubyte", IdxBytes(0x08, {2, 1, 3}, "abcdef"));
  auto array = ReadIdxFile(path);
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_EQ(array->dtype, DType::kUInt8);
  EXPECT_EQ(array->dims, (std::vector<uint64_t>{2, 1, 3}));
  EXPECT_EQ(array->data.view(), "abcdef");
}

TEST_F(IdxTest, ReadsGzip) {
  std::string pixels;
  for (int i = 0; i < 28 * 28 * 3; ++i) pixels += static_cast<char>(i * 7);
  const std::string path = WriteGzip("train-images-idx3-ubyte.gz",
                                     IdxBytes(0x08, {3, 28, 28}, pixels));
  auto array = ReadIdxFile(path);
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_EQ(array->dims, (std::vector<uint64_t>{3, 28, 28}));
  EXPECT_EQ(array->data.view(), pixels);
}

TEST_F(IdxTest, ReadsLabelsIdx1) {
  const std::string path = WriteGzip(
      "labels.gz", IdxBytes(0x08, {4}, std::string("\x05\x00\x04\x01", 4)));
  auto array = ReadIdxFile(path);
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_EQ(array->dims, (std::vector<uint64_t>{4}));
  EXPECT_EQ(array->data.view(), std::string_view("\x05\x00\x04\x01", 4));
}

template <typename T>
std::vector<T> Values(const Buffer& data) {
  std::vector<T> out(data.size() / sizeof(T));
  std::memcpy(out.data(), data.data(), out.size() * sizeof(T));
  return out;
}

TEST_F(IdxTest, ConvertsEachTypeFromBigEndian) {
  struct Case {
    uint8_t type;
    DType dtype;
    std::string big_endian;
  };
  const Case cases[] = {
      {0x09, DType::kInt8, std::string("\xfe\x03", 2)},
      {0x0B, DType::kInt16, std::string("\x01\x02\xff\xfe", 4)},
      {0x0C, DType::kInt32, std::string("\x01\x02\x03\x04\xff\xff\xff\xfd", 8)},
      // 1.5f and -2.0f.
      {0x0D, DType::kFloat32,
       std::string("\x3f\xc0\x00\x00\xc0\x00\x00\x00", 8)},
      // 1.5 and -2.0.
      {0x0E, DType::kFloat64,
       std::string("\x3f\xf8\x00\x00\x00\x00\x00\x00"
                   "\xc0\x00\x00\x00\x00\x00\x00\x00",
                   16)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(DTypeName(c.dtype));
    auto array =
        ReadIdxFile(WritePlain("typed", IdxBytes(c.type, {2}, c.big_endian)));
    ASSERT_TRUE(array.ok()) << array.status();
    EXPECT_EQ(array->dtype, c.dtype);
    EXPECT_EQ(array->dims, (std::vector<uint64_t>{2}));
    switch (c.dtype) {
      case DType::kInt8:
        EXPECT_EQ(Values<int8_t>(array->data), (std::vector<int8_t>{-2, 3}));
        break;
      case DType::kInt16:
        EXPECT_EQ(Values<int16_t>(array->data),
                  (std::vector<int16_t>{0x0102, -2}));
        break;
      case DType::kInt32:
        EXPECT_EQ(Values<int32_t>(array->data),
                  (std::vector<int32_t>{0x01020304, -3}));
        break;
      case DType::kFloat32:
        EXPECT_EQ(Values<float>(array->data),
                  (std::vector<float>{1.5f, -2.0f}));
        break;
      case DType::kFloat64:
        EXPECT_EQ(Values<double>(array->data),
                  (std::vector<double>{1.5, -2.0}));
        break;
      default:
        FAIL();
    }
  }
}

TEST_F(IdxTest, ZeroDimensionIsEmptyArray) {
  auto array = ReadIdxFile(WritePlain("empty", IdxBytes(0x0C, {0, 5}, "")));
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_EQ(array->dims, (std::vector<uint64_t>{0, 5}));
  EXPECT_TRUE(array->data.empty());
}

TEST_F(IdxTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadIdxFile(dir_ + "/nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ReadIdxFile(dir_).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(IdxTest, ReaderReadsInPiecesSkipsAndChecksTheEnd) {
  const std::string data = "abcdefghijkl";
  for (const bool gzip : {false, true}) {
    SCOPED_TRACE(gzip ? "gzip" : "plain");
    const std::string bytes = IdxBytes(0x08, {4, 3}, data);
    const std::string path =
        gzip ? WriteGzip("p.gz", bytes) : WritePlain("p", bytes);
    auto reader = IdxReader::Open(path);
    ASSERT_TRUE(reader.ok()) << reader.status();
    IdxReader& r = **reader;
    EXPECT_EQ(r.compressed(), gzip);
    EXPECT_EQ(r.header().dims, (std::vector<uint64_t>{4, 3}));
    EXPECT_EQ(r.header().data_offset, 12u);
    EXPECT_EQ(r.header().data_bytes, 12u);
    std::string piece(2, '\0');
    ASSERT_TRUE(r.Read(std::as_writable_bytes(std::span(piece))).ok());
    EXPECT_EQ(piece, "ab");
    ASSERT_TRUE(r.Skip(5).ok());
    EXPECT_EQ(r.position(), 7u);
    auto rest = r.ReadBuffer(5);
    ASSERT_TRUE(rest.ok()) << rest.status();
    EXPECT_EQ(std::move(*rest).Freeze().view(), "hijkl");
    // Past the declared data is the caller's error, not the file's.
    std::byte extra[1];
    EXPECT_EQ(r.Read(extra).code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(r.CheckEnd().ok());
  }
}

void ExpectCorruption(const Result<IdxArray>& result,
                      const std::string& message_part) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kCorruption) << result.status();
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(message_part));
}

TEST_F(IdxTest, RejectsBadMagic) {
  ExpectCorruption(
      ReadIdxFile(WritePlain("m1", "\x01\x00\x08\x01\x00\x00\x00\x00")),
      "not an IDX file");
  ExpectCorruption(ReadIdxFile(WritePlain("m2", std::string("\x00\x00", 2))),
                   "too short");
  ExpectCorruption(ReadIdxFile(WritePlain("m3", "")), "too short");
  ExpectCorruption(ReadIdxFile(WritePlain("m4", IdxBytes(0x0A, {1}, "x"))),
                   "unknown IDX element type 0x0a");
}

TEST_F(IdxTest, RejectsDimensionCount) {
  ExpectCorruption(ReadIdxFile(WritePlain("r0", IdxBytes(0x08, {}, ""))),
                   "dimension count 0");
  ExpectCorruption(ReadIdxFile(WritePlain(
                       "r9", IdxBytes(0x08, {1, 1, 1, 1, 1, 1, 1, 1, 1}, "x"))),
                   "dimension count 9");
  // Rank 8 is the maximum and fine.
  EXPECT_TRUE(
      ReadIdxFile(
          WritePlain("r8", IdxBytes(0x08, {1, 1, 1, 1, 1, 1, 1, 2}, "xy")))
          .ok());
}

TEST_F(IdxTest, RejectsTruncatedDimensions) {
  std::string bytes = IdxBytes(0x08, {2, 2}, "");
  bytes.resize(bytes.size() - 1);
  ExpectCorruption(ReadIdxFile(WritePlain("dims", bytes)), "truncated");
}

TEST_F(IdxTest, RejectsOverflowingDimensions) {
  // 2^16 ^ 4 = 2^64 bytes: wraps to exactly zero in 64-bit arithmetic.
  ExpectCorruption(ReadIdxFile(WritePlain(
                       "o1", IdxBytes(0x08, {65536, 65536, 65536, 65536}, ""))),
                   "overflow");
  ExpectCorruption(
      ReadIdxFile(WritePlain(
          "o2", IdxBytes(0x0E, {0xffffffff, 0xffffffff, 0xffffffff}, ""))),
      "overflow");
}

TEST_F(IdxTest, RejectsDataOverTheCap) {
  // 8 GiB declared by a tiny file is a lie, found before any allocation.
  ExpectCorruption(
      ReadIdxFile(WritePlain("huge", IdxBytes(0x08, {65536, 65536, 2}, ""))),
      "declares 8589934592 bytes of data, has 0");

  const std::string path =
      WritePlain("cap", IdxBytes(0x0C, {10, 10}, std::string(400, 'x')));
  EXPECT_TRUE(ReadIdxFile(path, 400).ok());
  auto capped = ReadIdxFile(path, 399);
  EXPECT_EQ(capped.status().code(), StatusCode::kResourceExhausted)
      << capped.status();
}

// Bytes that deflate cannot shrink (a linear congruential sequence), so that
// a gzip file holds about as many bytes as it inflates to.
std::string Incompressible(size_t size) {
  std::string out(size, '\0');
  uint64_t x = 88172645463325252ull;
  for (char& c : out) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    c = static_cast<char>(x >> 56);
  }
  return out;
}

// How much memory a piece of code took at its peak: the process's peak RSS
// (what the operating system saw) and the peak of the buffers charged to
// the process tracker (what shoal allocated, touched or not).
class PeakMemory {
 public:
  PeakMemory() {
    rss_before_ = PeakRss();
    MemoryBudget::Process()->ResetPeak();
    tracked_before_ = MemoryBudget::Process()->in_use();
  }
  int64_t rss_growth() const { return PeakRss() - rss_before_; }
  int64_t tracked_growth() const {
    return MemoryBudget::Process()->peak() - tracked_before_;
  }

 private:
  static int64_t PeakRss() {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return int64_t{usage.ru_maxrss} * 1024;  // Linux counts in KiB
  }
  int64_t rss_before_;
  int64_t tracked_before_;
};

// Finding: an IDX file of 108 bytes claiming 2^32-1 labels drove RSS to
// 4.2 GB before the error (78 KB claiming 4 M images: 3.1 GB), because the
// reader allocated (and the allocator touched) what the header claimed
// before reading any data. A lie must fail naming the file, with memory in
// proportion to the bytes really there.
TEST_F(IdxTest, LyingHeaderFailsWithoutAllocatingTheClaim) {
  struct Case {
    std::string name;
    bool gzip;
    std::vector<uint32_t> dims;
    size_t data_bytes;
  };
  const Case cases[] = {
      {"labels-idx1-ubyte.gz", true, {0xffffffff}, 100},
      {"labels-idx1-ubyte", false, {0xffffffff}, 100},
      {"images-idx3-ubyte.gz", true, {4000000, 28, 28}, 78000},
      {"images-idx3-ubyte", false, {4000000, 28, 28}, 78000},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string bytes =
        IdxBytes(0x08, c.dims, Incompressible(c.data_bytes));
    const std::string path =
        c.gzip ? WriteGzip(c.name, bytes) : WritePlain(c.name, bytes);
    const PeakMemory memory;
    auto result = ReadIdxFile(path);
    ExpectCorruption(result, path);
    // The tracker sees each case; the process's peak RSS only grows, so it
    // would see the first case to overspend.
    EXPECT_LT(memory.tracked_growth(), 16 << 20);
    EXPECT_LT(memory.rss_growth(), 64 << 20);
  }
}

// A gzip file can claim up to ~1000 times its size and still be possible
// (deflate's limit is 1032:1): 2 MB claiming 2 GB is only found out when
// the data ends, and must not cost the 2 GB before that.
TEST_F(IdxTest, PlausibleLieInGzipFailsWhenTheDataEnds) {
  const std::string path =
      WriteGzip("plausible.gz",
                IdxBytes(0x08, {2000, 1000, 1000}, Incompressible(2 << 20)));
  const PeakMemory memory;
  auto result = ReadIdxFile(path);
  ExpectCorruption(result, "declares 2000000000 bytes of data, has 2097152");
  EXPECT_LT(memory.tracked_growth(), 160 << 20);
  EXPECT_LT(memory.rss_growth(), 256 << 20);
}

TEST_F(IdxTest, RejectsShortData) {
  const std::string path = WritePlain("short", IdxBytes(0x08, {2, 3}, "abcd"));
  auto result = ReadIdxFile(path);
  ExpectCorruption(result, "declares 6 bytes of data, has 4");
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(path));

  const std::string gz_path =
      WriteGzip("short.gz", IdxBytes(0x0B, {3}, "abcd"));
  ExpectCorruption(ReadIdxFile(gz_path), "declares 6 bytes of data, has 4");
}

TEST_F(IdxTest, RejectsTrailingBytes) {
  ExpectCorruption(ReadIdxFile(WritePlain("t", IdxBytes(0x08, {2}, "abc"))),
                   "bytes follow the 2 bytes of data");
  ExpectCorruption(ReadIdxFile(WriteGzip("t.gz", IdxBytes(0x08, {2}, "abc"))),
                   "bytes follow");
}

TEST_F(IdxTest, RejectsDamagedGzip) {
  std::string data(5000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * i);
  const std::string good = WriteGzip("good.gz", IdxBytes(0x08, {5000}, data));
  ASSERT_TRUE(ReadIdxFile(good).ok());
  const std::string compressed = ReadRaw(good);

  // Without its 8-byte trailer (CRC and size) all data still inflates.
  ExpectCorruption(ReadIdxFile(WritePlain(
                       "cut.gz", compressed.substr(0, compressed.size() - 8))),
                   "gzip");
  // A wrong CRC.
  std::string bad_crc = compressed;
  bad_crc[bad_crc.size() - 8] ^= 0x01;
  ExpectCorruption(ReadIdxFile(WritePlain("crc.gz", bad_crc)), "gzip");
  // Cut in the middle of the deflate stream.
  auto mid = ReadIdxFile(
      WritePlain("mid.gz", compressed.substr(0, compressed.size() / 2)));
  EXPECT_EQ(mid.status().code(), StatusCode::kCorruption) << mid.status();
}

}  // namespace
}  // namespace shoal::internal
