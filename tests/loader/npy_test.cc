// Tests of the .npy writer and reader. NumPy itself (/usr/bin/python3 with
// python3-numpy) is the independent reference: it loads what we write and
// writes what we read. Hand-built files cover the malformed inputs the reader
// must refuse.
#include "loader/internal/npy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace shoal::internal {
namespace {

using ::testing::HasSubstr;

// The system interpreter, which has numpy; the first python3 on PATH may not.
constexpr char kPython[] = "/usr/bin/python3";

// Runs `script` under kPython with `arg` as sys.argv[1]; returns stdout, or
// nullopt when the interpreter fails.
std::optional<std::string> RunPython(const std::string& script,
                                     const std::string& arg) {
  // Single-quoted for the shell; neither string contains a single quote.
  const std::string command =
      std::string(kPython) + " -c '" + script + "' '" + arg + "' 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string out;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), pipe)) > 0) out.append(chunk, n);
  if (pclose(pipe) != 0) {
    ADD_FAILURE() << "python failed:\n" << out;
    return std::nullopt;
  }
  return out;
}

bool HaveNumpy() {
  const std::string command =
      std::string(kPython) + " -c 'import numpy' >/dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

uint32_t Crc32(ByteSpan bytes) {
  return static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(bytes.data()),
            static_cast<uInt>(bytes.size())));
}

class NpyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "npy_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  std::string WriteRaw(const std::string& name, const std::string& bytes) {
    std::ofstream(Path(name), std::ios::binary) << bytes;
    return Path(name);
  }

  std::string ReadRaw(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string dir_;
};

// Deterministic bytes for an array of `size` bytes.
std::string Pattern(size_t size) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>(i * 31 + 7);
  return out;
}

TEST_F(NpyTest, HeaderLayout) {
  const std::vector<uint64_t> shape = {28, 28};
  auto header = EncodeNpyHeader(DType::kUInt8, shape);
  ASSERT_TRUE(header.ok()) << header.status();
  ASSERT_EQ(header->size(), 128u);
  EXPECT_EQ(header->substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_EQ(static_cast<uint8_t>((*header)[8]) |
                static_cast<uint8_t>((*header)[9]) << 8,
            128 - 10);
  const std::string dict =
      "{'descr': '|u1', 'fortran_order': False, 'shape': (28, 28), }";
  EXPECT_EQ(header->substr(10, dict.size()), dict);
  EXPECT_EQ(header->back(), '\n');
  EXPECT_EQ(header->find_first_not_of(' ', 10 + dict.size()),
            header->size() - 1);

  EXPECT_THAT(
      *EncodeNpyHeader(DType::kFloat32, std::vector<uint64_t>{5}),
      HasSubstr("'descr': '<f4', 'fortran_order': False, 'shape': (5,), }"));
  EXPECT_THAT(*EncodeNpyHeader(DType::kFloat64, {}),
              HasSubstr("'shape': (), }"));
  for (size_t rank = 0; rank <= kNpyMaxRank; rank += 7) {
    auto h =
        EncodeNpyHeader(DType::kInt64, std::vector<uint64_t>(rank, UINT64_MAX));
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(h->size() % 64, 0u) << rank;
  }
  EXPECT_EQ(
      EncodeNpyHeader(DType::kUInt8, std::vector<uint64_t>(kNpyMaxRank + 1, 1))
          .status()
          .code(),
      StatusCode::kInvalidArgument);
}

struct WriteCase {
  DType dtype;
  std::vector<uint64_t> shape;
  std::string numpy_shape;  // repr(a.shape)
};

TEST_F(NpyTest, NumpyLoadsWhatWeWrite) {
  ASSERT_TRUE(HaveNumpy()) << kPython
                           << " has no numpy: run scripts/install-deps.sh "
                              "(package python3-numpy)";
  const WriteCase cases[] = {
      {DType::kUInt8, {28, 28}, "(28, 28)"},
      {DType::kBool, {2, 3}, "(2, 3)"},
      {DType::kInt8, {5}, "(5,)"},
      {DType::kUInt16, {3, 1, 2}, "(3, 1, 2)"},
      {DType::kInt16, {4}, "(4,)"},
      {DType::kUInt32, {2, 2}, "(2, 2)"},
      {DType::kInt32, {1}, "(1,)"},
      {DType::kUInt64, {3}, "(3,)"},
      {DType::kInt64, {2, 2, 2, 2}, "(2, 2, 2, 2)"},
      {DType::kFloat16, {6}, "(6,)"},
      {DType::kFloat32, {3, 5}, "(3, 5)"},
      {DType::kFloat64, {}, "()"},
      {DType::kFloat32, {0, 4}, "(0, 4)"},
  };
  for (const WriteCase& c : cases) {
    const std::string desc =
        std::string(DTypeName(c.dtype)) + " " + c.numpy_shape;
    SCOPED_TRACE(desc);
    std::string data = Pattern(*Shape(c.shape).ByteSize(c.dtype));
    // NumPy keeps bool bytes as stored, but only 0 and 1 are meaningful.
    if (c.dtype == DType::kBool) {
      for (char& b : data) b = static_cast<char>(b & 1);
    }
    const std::string path = Path("written.npy");
    ASSERT_TRUE(WriteNpyFile(path, c.dtype, c.shape, AsBytes(data)).ok());
    EXPECT_EQ((ReadRaw(path).size() - data.size()) % 64, 0u);

    auto out = RunPython(
        "import sys, zlib, numpy\n"
        "a = numpy.load(sys.argv[1])\n"
        "print(a.dtype.name, repr(a.shape), zlib.crc32(a.tobytes()), "
        "a.flags.c_contiguous)",
        path);
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(*out, std::string(DTypeName(c.dtype)) + " " + c.numpy_shape +
                        " " + std::to_string(Crc32(AsBytes(data))) + " True\n");
  }
}

template <typename T>
std::string BytesOf(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(T));
}

TEST_F(NpyTest, ReadsWhatNumpySaves) {
  ASSERT_TRUE(HaveNumpy()) << kPython
                           << " has no numpy: run scripts/install-deps.sh "
                              "(package python3-numpy)";
  ASSERT_TRUE(RunPython(
      "import sys, numpy\n"
      "from numpy.lib import format\n"
      "d = sys.argv[1]\n"
      "numpy.save(d + \"/i4.npy\", numpy.arange(24, dtype=\"<i4\").reshape(2, "
      "3, 4))\n"
      "numpy.save(d + \"/i4be.npy\", numpy.arange(24, "
      "dtype=\">i4\").reshape(2, 3, 4))\n"
      "numpy.save(d + \"/f8be.npy\", numpy.array([1.5, -2.0], dtype=\">f8\"))\n"
      "numpy.save(d + \"/scalar.npy\", numpy.float64(2.5))\n"
      "numpy.save(d + \"/bool.npy\", numpy.array([True, False, True]))\n"
      "numpy.save(d + \"/f2.npy\", numpy.arange(6, dtype=\"f2\").reshape(3, "
      "2))\n"
      "numpy.save(d + \"/empty.npy\", numpy.zeros((0, 5), dtype=\"u1\"))\n"
      "with open(d + \"/v2.npy\", \"wb\") as f:\n"
      "    format.write_array(f, numpy.arange(24, dtype=\"<i4\").reshape(2, 3, "
      "4), version=(2, 0))\n"
      "numpy.save(d + \"/fortran.npy\", "
      "numpy.asfortranarray(numpy.arange(6).reshape(2, 3)))\n"
      "numpy.save(d + \"/complex.npy\", numpy.zeros(3, dtype=\"c8\"))\n"
      "numpy.save(d + \"/struct.npy\", numpy.zeros(2, dtype=[(\"a\", "
      "\"<i4\")]))\n"
      "numpy.save(d + \"/str.npy\", numpy.array([\"ab\"]))\n",
      dir_));

  std::vector<int32_t> arange(24);
  for (int i = 0; i < 24; ++i) arange[i] = i;
  for (const char* name : {"i4.npy", "i4be.npy", "v2.npy"}) {
    SCOPED_TRACE(name);
    auto array = ReadNpyFile(Path(name));
    ASSERT_TRUE(array.ok()) << array.status();
    EXPECT_EQ(array->dtype, DType::kInt32);
    EXPECT_EQ(array->shape, (std::vector<uint64_t>{2, 3, 4}));
    EXPECT_EQ(array->data.view(), BytesOf(arange));
  }

  auto f8 = ReadNpyFile(Path("f8be.npy"));
  ASSERT_TRUE(f8.ok()) << f8.status();
  EXPECT_EQ(f8->dtype, DType::kFloat64);
  EXPECT_EQ(f8->data.view(), BytesOf(std::vector<double>{1.5, -2.0}));

  auto scalar = ReadNpyFile(Path("scalar.npy"));
  ASSERT_TRUE(scalar.ok()) << scalar.status();
  EXPECT_EQ(scalar->dtype, DType::kFloat64);
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->data.view(), BytesOf(std::vector<double>{2.5}));

  auto boolean = ReadNpyFile(Path("bool.npy"));
  ASSERT_TRUE(boolean.ok()) << boolean.status();
  EXPECT_EQ(boolean->dtype, DType::kBool);
  EXPECT_EQ(boolean->data.view(), std::string_view("\x01\x00\x01", 3));

  auto half = ReadNpyFile(Path("f2.npy"));
  ASSERT_TRUE(half.ok()) << half.status();
  EXPECT_EQ(half->dtype, DType::kFloat16);
  EXPECT_EQ(half->shape, (std::vector<uint64_t>{3, 2}));
  // IEEE half bit patterns of 0..5.
  EXPECT_EQ(half->data.view(),
            BytesOf(std::vector<uint16_t>{0x0000, 0x3C00, 0x4000, 0x4200,
                                          0x4400, 0x4500}));

  auto empty = ReadNpyFile(Path("empty.npy"));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->shape, (std::vector<uint64_t>{0, 5}));
  EXPECT_TRUE(empty->data.empty());

  for (const char* name :
       {"fortran.npy", "complex.npy", "struct.npy", "str.npy"}) {
    auto result = ReadNpyFile(Path(name));
    EXPECT_EQ(result.status().code(), StatusCode::kUnimplemented)
        << name << ": " << result.status();
  }
}

TEST_F(NpyTest, RoundTripsThroughOurReader) {
  const std::vector<uint64_t> shape = {3, 4, 5};
  const std::string data = Pattern(3 * 4 * 5 * 2);
  ASSERT_TRUE(
      WriteNpyFile(Path("rt.npy"), DType::kUInt16, shape, AsBytes(data)).ok());
  auto array = ReadNpyFile(Path("rt.npy"));
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_EQ(array->dtype, DType::kUInt16);
  EXPECT_EQ(array->shape, shape);
  EXPECT_EQ(array->data.view(), data);
  // Data starts 64-byte aligned in the file; buffers are 64-byte aligned.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(array->data.data()) % 64, 0u);
}

TEST_F(NpyTest, WriterRejectsBadArguments) {
  const std::vector<uint64_t> shape = {2, 2};
  EXPECT_EQ(WriteNpyFile(Path("x.npy"), DType::kInt32, shape,
                         AsBytes(std::string(15, 'x')))
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(Path("x.npy")));
  EXPECT_EQ(WriteNpyFile(Path("missing/x.npy"), DType::kUInt8, shape,
                         AsBytes(std::string(4, 'x')))
                .code(),
            StatusCode::kNotFound);
}

// A .npy file with a hand-written header dict (padded as the spec says).
std::string NpyBytes(const std::string& dict, const std::string& data,
                     int major = 1) {
  std::string header = dict;
  const size_t preamble = major == 1 ? 10 : 12;
  header.append((64 - (preamble + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out =
      std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
  const size_t length_bytes = major == 1 ? 2 : 4;
  for (size_t i = 0; i < length_bytes; ++i) {
    out += static_cast<char>(header.size() >> (8 * i));
  }
  return out + header + data;
}

void ExpectCode(const Result<NpyArray>& result, StatusCode code,
                const std::string& message_part = "") {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), code) << result.status();
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(message_part));
}

TEST_F(NpyTest, ReaderAcceptsHandWrittenVariants) {
  // Double quotes, no trailing comma, keys in another order, Python 2 longs,
  // version 2.0.
  const std::string dict =
      "{\"shape\": (2L, 1L), \"fortran_order\": False, \"descr\": \"<i2\"}";
  for (int major : {1, 2}) {
    auto array = ReadNpyFile(WriteRaw("v.npy", NpyBytes(dict, "abcd", major)));
    ASSERT_TRUE(array.ok()) << array.status();
    EXPECT_EQ(array->dtype, DType::kInt16);
    EXPECT_EQ(array->shape, (std::vector<uint64_t>{2, 1}));
    EXPECT_EQ(array->data.view(), "abcd");
  }
}

TEST_F(NpyTest, LayoutSaysWhereTheDataIs) {
  const std::string dict =
      "{'descr': '>i2', 'fortran_order': False, 'shape': (3, 1), }";
  auto file =
      RandomAccessFile::Open(WriteRaw("l.npy", NpyBytes(dict, "abcdef")));
  ASSERT_TRUE(file.ok()) << file.status();
  auto layout = ReadNpyLayout(**file);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->dtype, DType::kInt16);
  EXPECT_EQ(layout->shape, (std::vector<uint64_t>{3, 1}));
  EXPECT_FALSE(layout->little_endian);
  EXPECT_EQ(layout->data_offset, 128u);  // a 71-byte header, padded
  EXPECT_EQ(layout->data_bytes, 6u);
}

TEST_F(NpyTest, ReaderRejectsHostileFiles) {
  const std::string ok_dict =
      "{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }";
  ASSERT_TRUE(
      ReadNpyFile(WriteRaw("ok.npy", NpyBytes(ok_dict, "abcdef"))).ok());

  ExpectCode(ReadNpyFile(dir_ + "/none.npy"), StatusCode::kNotFound);
  ExpectCode(ReadNpyFile(WriteRaw("empty.npy", "")), StatusCode::kCorruption,
             "bad magic");
  ExpectCode(ReadNpyFile(WriteRaw("magic.npy", "\x93NUMPX\x01\x00\x00\x00")),
             StatusCode::kCorruption, "bad magic");
  ExpectCode(
      ReadNpyFile(WriteRaw("pre.npy", std::string("\x93NUMPY\x02\x00\x00", 9))),
      StatusCode::kCorruption, "preamble");

  std::string v3 = NpyBytes(ok_dict, "abcdef", 2);
  v3[6] = 3;
  ExpectCode(ReadNpyFile(WriteRaw("v3.npy", v3)), StatusCode::kUnimplemented,
             "version 3.0");

  // Header length passing the end of the file, and absurdly long.
  std::string long_header = NpyBytes(ok_dict, "");
  long_header[8] = '\xff';
  long_header[9] = '\x7f';
  ExpectCode(ReadNpyFile(WriteRaw("hl.npy", long_header)),
             StatusCode::kCorruption, "passes the end");
  std::string huge_header = NpyBytes(ok_dict, "", 2);
  huge_header[11] = '\x10';
  ExpectCode(ReadNpyFile(WriteRaw("hh.npy", huge_header)),
             StatusCode::kCorruption, "implausibly long");

  struct BadDict {
    const char* name;
    std::string dict;
    StatusCode code;
    std::string message;
  };
  const BadDict bad[] = {
      {"not a dict", "['descr']", StatusCode::kCorruption, "expected '{'"},
      {"missing key", "{'descr': '<u2', 'shape': (3,)}",
       StatusCode::kCorruption, "needs the keys"},
      {"extra key",
       "{'descr': '<u2', 'fortran_order': False, 'shape': (3,), 'x': 1}",
       StatusCode::kCorruption, "'x'"},
      {"repeated key",
       "{'descr': '<u2', 'descr': '<u2', 'fortran_order': False, 'shape': "
       "(3,)}",
       StatusCode::kCorruption, "repeated"},
      {"unterminated", "{'descr: '<u2'}", StatusCode::kCorruption, ""},
      {"negative dim",
       "{'descr': '<u2', 'fortran_order': False, 'shape': (-3,)}",
       StatusCode::kCorruption, "non-negative"},
      {"float dim", "{'descr': '<u2', 'fortran_order': False, 'shape': (3.0,)}",
       StatusCode::kCorruption, ""},
      {"shape list", "{'descr': '<u2', 'fortran_order': False, 'shape': [3]}",
       StatusCode::kCorruption, "tuple"},
      {"huge dim",
       "{'descr': '<u2', 'fortran_order': False, 'shape': "
       "(99999999999999999999999,)}",
       StatusCode::kCorruption, "overflows"},
      {"bad bool", "{'descr': '<u2', 'fortran_order': 0, 'shape': (3,)}",
       StatusCode::kCorruption, "True or False"},
      {"text after",
       "{'descr': '<u2', 'fortran_order': False, 'shape': (3,)} x",
       StatusCode::kCorruption, "after '}'"},
      {"no close", "{'descr': '<u2', 'fortran_order': False, 'shape': (3,)",
       StatusCode::kCorruption, ""},
      {"fortran", "{'descr': '<u2', 'fortran_order': True, 'shape': (3,)}",
       StatusCode::kUnimplemented, "Fortran"},
      {"object", "{'descr': '|O', 'fortran_order': False, 'shape': (3,)}",
       StatusCode::kUnimplemented, "'|O'"},
      {"structured",
       "{'descr': [('a', '<u2')], 'fortran_order': False, 'shape': (3,)}",
       StatusCode::kUnimplemented, "structured"},
  };
  for (const BadDict& b : bad) {
    SCOPED_TRACE(b.name);
    ExpectCode(ReadNpyFile(WriteRaw("bad.npy", NpyBytes(b.dict, "abcdef"))),
               b.code, b.message);
  }

  std::string many_dims = "{'descr': '<u2', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i <= kNpyMaxRank; ++i) many_dims += "1, ";
  many_dims += ")}";
  ExpectCode(ReadNpyFile(WriteRaw("rank.npy", NpyBytes(many_dims, "ab"))),
             StatusCode::kCorruption, "more than 64 dimensions");

  ExpectCode(ReadNpyFile(WriteRaw(
                 "overflow.npy",
                 NpyBytes("{'descr': '<u2', 'fortran_order': False, 'shape': "
                          "(4294967296, 4294967296)}",
                          ""))),
             StatusCode::kCorruption, "overflows 64 bits");
  // A claim the file does not back is a lie, found before any allocation.
  ExpectCode(ReadNpyFile(WriteRaw(
                 "big.npy",
                 NpyBytes("{'descr': '<u2', 'fortran_order': False, 'shape': "
                          "(4294967296, 2)}",
                          ""))),
             StatusCode::kCorruption,
             "declares 17179869184 bytes of data, has 0");
  ExpectCode(ReadNpyFile(WriteRaw("cap.npy", NpyBytes(ok_dict, "abcdef")), 5),
             StatusCode::kResourceExhausted, "limit of 5");

  const std::string short_path =
      WriteRaw("short.npy", NpyBytes(ok_dict, "abcd"));
  auto short_result = ReadNpyFile(short_path);
  ExpectCode(short_result, StatusCode::kCorruption,
             "declares 6 bytes of data, has 4");
  EXPECT_THAT(std::string(short_result.status().message()),
              HasSubstr(short_path));
  ExpectCode(ReadNpyFile(WriteRaw("long.npy", NpyBytes(ok_dict, "abcdefg"))),
             StatusCode::kCorruption, "declares 6 bytes of data, has 7");
  ExpectCode(ReadNpyFile(dir_), StatusCode::kInvalidArgument,
             "not a regular file");
}

}  // namespace
}  // namespace shoal::internal
