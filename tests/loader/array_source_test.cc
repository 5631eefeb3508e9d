// Tests of the IDX and NPY sources (loader/source.h) driven as the ingestor
// drives them: Scan, Plan in order (or from a resumed record), then Read
// and Prepare of every record on threads of their own. The files and the
// expected samples come from NumPy (/usr/bin/python3 with python3-numpy),
// an implementation independent of shoal's readers; malformed files are
// built by hand.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/memory.h"
#include "loader/internal/row_blocks.h"
#include "loader/source.h"

namespace shoal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kPython[] = "/usr/bin/python3";
constexpr char kFashionMnist[] =
    "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";

// Runs `script` under kPython with `arg` as sys.argv[1]; false (and a test
// failure with Python's output) when it fails.
bool RunPython(const std::string& script, const std::string& arg) {
  // Single-quoted for the shell; neither string contains a single quote.
  const std::string command =
      std::string(kPython) + " -c '" + script + "' '" + arg + "' 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return false;
  std::string out;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), pipe)) > 0) out.append(chunk, n);
  if (pclose(pipe) != 0) {
    ADD_FAILURE() << "python failed:\n" << out;
    return false;
  }
  return true;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

void WriteGzip(const std::string& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  if (!bytes.empty()) {
    ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
              static_cast<int>(bytes.size()));
  }
  ASSERT_EQ(gzclose(file), Z_OK);
}

// An IDX file: magic with `type` and dims.size(), big-endian dims, then
// `data` as given.
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

// Bytes that deflate cannot shrink, so that a gzip file holds about as many
// bytes as it inflates to.
std::string Incompressible(size_t size) {
  std::string out(size, '\0');
  uint64_t x = 88172645463325252ull;
  for (char& c : out) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    c = static_cast<char>(x >> 56);
  }
  return out;
}

// A .npy file with a hand-written header dict (padded as the spec says).
std::string NpyBytes(const std::string& dict, const std::string& data) {
  std::string header = dict;
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

// The peak of the buffers charged to the process tracker, and of the
// process's RSS, since construction.
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
    return int64_t{usage.ru_maxrss} * 1024;
  }
  int64_t rss_before_;
  int64_t tracked_before_;
};

// A record's column, copied out of the source's buffers.
struct Column {
  RecordColumn::Kind kind;
  uint64_t count;
  Shape sample_shape;
  std::vector<Shape> shapes;
  std::string data;
  std::string info;
};

struct Done {
  uint64_t index;
  std::string name;
  std::vector<Column> columns;
};

// Plans records from `start` on (at most `limit` of them) on this thread,
// then reads and prepares each on a thread of its own, as the ingestor's
// parallel stages may. The first error, else the records in order.
Result<std::vector<Done>> Drive(Source& source, uint64_t start = 0,
                                uint64_t limit = UINT64_MAX) {
  std::vector<Record> records;
  for (uint64_t i = start; i - start < limit; ++i) {
    Record record;
    record.index = i;
    SHOAL_ASSIGN_OR_RETURN(bool more, source.Plan(i, record));
    if (!more) break;
    records.push_back(std::move(record));
  }
  std::vector<Status> statuses(records.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < records.size(); ++i) {
    threads.emplace_back([&, i] {
      Record& r = records[i];
      auto buffer = MutableBuffer::Allocate(r.read_bytes);
      if (!buffer.ok()) {
        statuses[i] = buffer.status();
        return;
      }
      statuses[i] = source.Read(r, buffer->span());
      if (!statuses[i].ok()) return;
      statuses[i] = source.Prepare(r, std::move(*buffer).Freeze());
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<Done> out;
  for (size_t i = 0; i < records.size(); ++i) {
    SHOAL_RETURN_IF_ERROR(statuses[i]);
    Done done{records[i].index, records[i].name, {}};
    for (const RecordColumn& c : records[i].columns) {
      done.columns.push_back({c.kind, c.count, c.sample_shape, c.shapes,
                              std::string(c.data.view()), c.info});
    }
    out.push_back(std::move(done));
  }
  return out;
}

void ExpectError(const Status& status, StatusCode code,
                 const std::string& part) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(part));
}

// Options with `rows` rows per record (designated initializers would leave
// out fields, which -Wextra reports).
ArrayFileOptions Rows(uint64_t rows, std::string compression = "lz4",
                      std::vector<std::string> class_names = {}) {
  ArrayFileOptions options;
  options.rows_per_record = rows;
  options.compression = std::move(compression);
  options.class_names = std::move(class_names);
  return options;
}

class ArraySourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "array_source_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
};

// ---- IDX ----

// 1000 random 28x28 images with labels 0..9, and 50 RGB images 4x5: IDX
// files plain and gzip (written with Python's struct and gzip), and the
// raw samples as references (.ref, labels as little-endian uint32).
void WriteIdxReferences(const std::string& dir) {
  ASSERT_TRUE(RunPython(
      "import sys, gzip, struct, numpy\n"
      "d = sys.argv[1]\n"
      "rng = numpy.random.default_rng(7)\n"
      "def idx(a, code=8):\n"
      "    head = struct.pack(\">BBBB\", 0, 0, code, a.ndim)\n"
      "    return head + struct.pack(\">\" + \"I\" * a.ndim, *a.shape) + "
      "a.tobytes()\n"
      "def save(name, a, code=8):\n"
      "    open(d + \"/\" + name, \"wb\").write(idx(a, code))\n"
      "    gzip.open(d + \"/\" + name + \".gz\", \"wb\").write(idx(a, "
      "code))\n"
      "images = rng.integers(0, 256, size=(1000, 28, 28), dtype=numpy.uint8)\n"
      "labels = rng.integers(0, 10, size=1000, dtype=numpy.uint8)\n"
      "labels[5] = 9\n"
      "save(\"images-idx3-ubyte\", images)\n"
      "save(\"labels-idx1-ubyte\", labels)\n"
      "images.tofile(d + \"/images.ref\")\n"
      "labels.astype(\"<u4\").tofile(d + \"/labels.ref\")\n"
      "rgb = rng.integers(0, 256, size=(50, 4, 5, 3), dtype=numpy.uint8)\n"
      "save(\"rgb-idx4-ubyte\", rgb)\n"
      "rgb.tofile(d + \"/rgb.ref\")\n"
      "save(\"few-labels-idx1-ubyte\", labels[:999])\n"
      "save(\"float-idx3\", numpy.zeros((2, 2, 2), dtype=\">f4\"), 0x0D)\n",
      dir));
}

// Checks every row of `done` (records of `rows` rows from record `start`)
// against the reference images (and labels when given).
void ExpectIdxRows(const std::vector<Done>& done, uint64_t start, uint64_t rows,
                   uint64_t samples, const std::string& images,
                   const std::string* labels, const std::string& file_name,
                   const Shape& sample_shape) {
  const uint64_t row_bytes = images.size() / samples;
  const uint64_t records = (samples + rows - 1) / rows;
  ASSERT_EQ(done.size(), records - start);
  for (const Done& d : done) {
    SCOPED_TRACE(d.name);
    const uint64_t first = d.index * rows;
    const uint64_t n = std::min(rows, samples - first);
    EXPECT_EQ(d.name, "rows " + std::to_string(first) + ".." +
                          std::to_string(first + n - 1) + " of " + file_name);
    ASSERT_EQ(d.columns.size(), labels ? 2u : 1u);
    const Column& c = d.columns[0];
    EXPECT_EQ(c.kind, RecordColumn::Kind::kArrays);
    EXPECT_EQ(c.count, n);
    EXPECT_EQ(c.sample_shape, sample_shape);
    EXPECT_TRUE(c.shapes.empty());
    EXPECT_TRUE(c.info.empty());
    // One comparison per row, so that a failure says which.
    ASSERT_EQ(c.data.size(), n * row_bytes);
    for (uint64_t r = 0; r < n; ++r) {
      ASSERT_EQ(c.data.substr(r * row_bytes, row_bytes),
                images.substr((first + r) * row_bytes, row_bytes))
          << "row " << first + r;
    }
    if (!labels) continue;
    const Column& l = d.columns[1];
    EXPECT_EQ(l.count, n);
    EXPECT_EQ(l.sample_shape, Shape());
    EXPECT_EQ(l.data, labels->substr(first * 4, n * 4));
  }
}

TEST_F(ArraySourceTest, IdxRowsEqualTheReferenceInEveryForm) {
  WriteIdxReferences(dir_);
  const std::string images = ReadFile(Path("images.ref"));
  const std::string labels = ReadFile(Path("labels.ref"));
  for (const char* images_ext : {"", ".gz"}) {
    for (const char* labels_ext : {"", ".gz"}) {
      const std::string image_file =
          std::string("images-idx3-ubyte") + images_ext;
      SCOPED_TRACE(image_file + " + labels" + labels_ext);
      auto source = MakeIdxSource(
          Path(image_file), Path(std::string("labels-idx1-ubyte") + labels_ext),
          Rows(300, "zstd:3"));
      auto scan = source->Scan(false);
      ASSERT_TRUE(scan.ok()) << scan.status();
      EXPECT_EQ(scan->num_records, 4u);  // 300, 300, 300, 100
      EXPECT_EQ(scan->input_bytes,
                std::filesystem::file_size(Path(image_file)) +
                    std::filesystem::file_size(
                        Path(std::string("labels-idx1-ubyte") + labels_ext)));
      ASSERT_EQ(scan->tensors.size(), 2u);
      const TensorSpec& im = scan->tensors[0];
      EXPECT_EQ(im.name, "images");
      EXPECT_EQ(im.htype, HType::kImage);
      EXPECT_EQ(im.dtype, DType::kUInt8);
      EXPECT_EQ(im.chunk_compression, "zstd:3");
      EXPECT_EQ(im.sample_compression, "");
      EXPECT_EQ(
          nlohmann::json::parse(im.info),
          nlohmann::json(
              {{"source", "idx"}, {"file", image_file}, {"samples", 1000}}));
      const TensorSpec& lb = scan->tensors[1];
      EXPECT_EQ(lb.name, "labels");
      EXPECT_EQ(lb.htype, HType::kClassLabel);
      EXPECT_EQ(lb.dtype, DType::kUInt32);
      EXPECT_EQ(lb.rank, 0);
      EXPECT_EQ(lb.chunk_compression, "zstd:3");
      // No names given: "0".."K-1" for the largest label K-1.
      EXPECT_THAT(lb.class_names, ElementsAre("0", "1", "2", "3", "4", "5", "6",
                                              "7", "8", "9"));
      auto done = Drive(*source);
      ASSERT_TRUE(done.ok()) << done.status();
      ExpectIdxRows(*done, 0, 300, 1000, images, &labels, image_file,
                    Shape{28, 28, 1});
      // Past the end, planning stays false.
      Record past;
      EXPECT_FALSE(*source->Plan(4, past));
    }
  }
}

TEST_F(ArraySourceTest, IdxImagesWithoutLabelsAndWithChannels) {
  WriteIdxReferences(dir_);
  const std::string rgb = ReadFile(Path("rgb.ref"));
  for (const char* file : {"rgb-idx4-ubyte", "rgb-idx4-ubyte.gz"}) {
    SCOPED_TRACE(file);
    auto source = MakeIdxSource(Path(file), "", Rows(7));
    auto scan = source->Scan(false);
    ASSERT_TRUE(scan.ok()) << scan.status();
    ASSERT_EQ(scan->tensors.size(), 1u);
    EXPECT_EQ(scan->num_records, 8u);  // 7 x 7 + 1
    auto done = Drive(*source);
    ASSERT_TRUE(done.ok()) << done.status();
    ExpectIdxRows(*done, 0, 7, 50, rgb, nullptr, file, Shape{4, 5, 3});
  }
}

TEST_F(ArraySourceTest, IdxResumesAtAnyRecord) {
  WriteIdxReferences(dir_);
  const std::string images = ReadFile(Path("images.ref"));
  const std::string labels = ReadFile(Path("labels.ref"));
  for (const char* ext : {"", ".gz"}) {
    SCOPED_TRACE(ext[0] ? "gzip" : "plain");
    const std::string image_file = std::string("images-idx3-ubyte") + ext;
    auto source = MakeIdxSource(
        Path(image_file), Path(std::string("labels-idx1-ubyte") + ext),
        Rows(300, "lz4",
             {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}));
    auto scan = source->Scan(false);
    ASSERT_TRUE(scan.ok()) << scan.status();
    EXPECT_EQ(scan->tensors[1].class_names.size(), 11u);
    // The ingestor resumes by planning the last committed record, then
    // the ones after it.
    auto done = Drive(*source, 2);
    ASSERT_TRUE(done.ok()) << done.status();
    ExpectIdxRows(*done, 2, 300, 1000, images, &labels, image_file,
                  Shape{28, 28, 1});
    // Going back starts a gzip stream over.
    done = Drive(*source, 1, 1);
    ASSERT_TRUE(done.ok()) << done.status();
    ASSERT_EQ(done->size(), 1u);
    EXPECT_EQ((*done)[0].columns[0].data, images.substr(300 * 784, 300 * 784));
  }
}

TEST_F(ArraySourceTest, IdxRealFashionMnist) {
  ASSERT_TRUE(std::filesystem::exists(kFashionMnist))
      << kFashionMnist << " is missing: run scripts/install-deps.sh (package "
      << "dataset-fashion-mnist)";
  ASSERT_TRUE(RunPython(
      "import sys, gzip, numpy\n"
      "raw = gzip.open(\"" +
          std::string(kFashionMnist) +
          "\").read()\n"
          "numpy.frombuffer(raw, numpy.uint8, offset=16).tofile(sys.argv[1])\n",
      Path("fmnist.ref")));
  const std::string images = ReadFile(Path("fmnist.ref"));
  ASSERT_EQ(images.size(), 10000u * 784);
  auto source = MakeIdxSource(kFashionMnist, "", Rows(4096));
  ASSERT_TRUE(source->Scan(false).ok());
  auto done = Drive(*source);
  ASSERT_TRUE(done.ok()) << done.status();
  ExpectIdxRows(*done, 0, 4096, 10000, images, nullptr,
                "t10k-images-idx3-ubyte.gz", Shape{28, 28, 1});
}

TEST_F(ArraySourceTest, IdxRejectsMismatchedFiles) {
  WriteIdxReferences(dir_);
  auto counts = MakeIdxSource(Path("images-idx3-ubyte.gz"),
                              Path("few-labels-idx1-ubyte.gz"));
  const Status status = counts->Scan(false).status();
  ExpectError(status, StatusCode::kInvalidArgument,
              "has 1000 images, " + Path("few-labels-idx1-ubyte.gz") +
                  " has 999 labels");

  auto names =
      MakeIdxSource(Path("images-idx3-ubyte"), Path("labels-idx1-ubyte"),
                    Rows(100, "lz4", {"zero", "one"}));
  ExpectError(names->Scan(false).status(), StatusCode::kInvalidArgument,
              "label 9 has no class name");
  auto no_labels =
      MakeIdxSource(Path("images-idx3-ubyte"), "", Rows(100, "lz4", {"a"}));
  ExpectError(no_labels->Scan(false).status(), StatusCode::kInvalidArgument,
              "class names need a labels file");
  auto floats = MakeIdxSource(Path("float-idx3"), "");
  ExpectError(floats->Scan(false).status(), StatusCode::kInvalidArgument,
              Path("float-idx3") + ": images must be unsigned bytes");
  auto swapped = MakeIdxSource(Path("labels-idx1-ubyte"), "");
  ExpectError(swapped->Scan(false).status(), StatusCode::kInvalidArgument,
              "dimensions [N, H, W]");
  auto missing = MakeIdxSource(Path("nope.gz"), "");
  ExpectError(missing->Scan(false).status(), StatusCode::kNotFound,
              Path("nope.gz"));
}

// The finding, at the source: headers claiming 2^32-1 labels or 4 M images
// over a few bytes of data fail naming the file, in Scan when the file's
// size gives the lie away, else when the data ends, and in either case
// without allocating the claim.
TEST_F(ArraySourceTest, IdxLyingHeadersFailWithBoundedMemory) {
  const std::string pixels = Incompressible(78000);
  WriteFile(Path("images"), IdxBytes(0x08, {4000000, 28, 28}, pixels));
  WriteGzip(Path("images.gz"), IdxBytes(0x08, {4000000, 28, 28}, pixels));
  WriteFile(Path("ok-images"), IdxBytes(0x08, {2, 1, 1}, "ab"));
  WriteGzip(Path("labels.gz"),
            IdxBytes(0x08, {0xffffffff}, Incompressible(100)));
  // Within what a gzip file of its size could inflate to (1032:1): found
  // out only when the data ends, in the first record's Plan.
  WriteGzip(Path("plausible.gz"),
            IdxBytes(0x08, {2600000, 28, 28}, Incompressible(2 << 20)));
  struct Case {
    std::string images, labels, culprit;
    bool in_scan;
  };
  const Case cases[] = {
      {"images", "", "images", true},
      {"images.gz", "", "images.gz", true},
      {"ok-images", "labels.gz", "labels.gz", true},
      {"plausible.gz", "", "plausible.gz", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.images + " " + c.labels);
    const PeakMemory memory;
    auto source =
        MakeIdxSource(Path(c.images), c.labels.empty() ? "" : Path(c.labels));
    auto scan = source->Scan(false);
    Status status = scan.status();
    if (scan.ok()) {
      EXPECT_FALSE(c.in_scan);
      status = Drive(*source).status();
    }
    ExpectError(status, StatusCode::kCorruption, Path(c.culprit));
    // One record's bytes at most (a record is at most 64 MiB).
    EXPECT_LT(memory.tracked_growth(), 70 << 20);
    EXPECT_LT(memory.rss_growth(), 128 << 20);
  }
}

TEST_F(ArraySourceTest, IdxDamagedGzipFailsAtItsEnd) {
  WriteIdxReferences(dir_);
  std::string bytes = ReadFile(Path("images-idx3-ubyte.gz"));
  bytes[bytes.size() - 8] ^= 0x01;  // the CRC
  WriteFile(Path("crc.gz"), bytes);
  auto source = MakeIdxSource(Path("crc.gz"), "", Rows(400));
  ASSERT_TRUE(source->Scan(false).ok());
  // zlib checks the CRC when it reaches the trailer, which it may read
  // ahead of the last record: some record's Plan must fail, naming it.
  Status status;
  for (uint64_t i = 0; i < 3 && status.ok(); ++i) {
    Record record;
    status = source->Plan(i, record).status();
  }
  ExpectError(status, StatusCode::kCorruption,
              Path("crc.gz") + ": gzip: incorrect data check");
  EXPECT_THAT(std::string(status.message()), HasSubstr("of crc.gz: "));

  // Damaged labels are found by Scan, which reads them whole.
  std::string labels = ReadFile(Path("labels-idx1-ubyte.gz"));
  labels[labels.size() - 8] ^= 0x01;
  WriteFile(Path("labels-crc.gz"), labels);
  auto with_labels =
      MakeIdxSource(Path("images-idx3-ubyte"), Path("labels-crc.gz"));
  ExpectError(with_labels->Scan(false).status(), StatusCode::kCorruption,
              Path("labels-crc.gz") + ": gzip");
}

// ---- NPY ----

TEST_F(ArraySourceTest, NpyOneFileGivesRowBlocks) {
  ASSERT_TRUE(RunPython(
      "import sys, numpy\n"
      "d = sys.argv[1]\n"
      "rng = numpy.random.default_rng(3)\n"
      "a = rng.standard_normal((1000, 3, 5)).astype(\"<f4\")\n"
      "numpy.save(d + \"/f4.npy\", a)\n"
      "a.tofile(d + \"/f4.ref\")\n"
      "b = rng.integers(-2**31, 2**31, size=(333, 7)).astype(\">i4\")\n"
      "numpy.save(d + \"/i4be.npy\", b)\n"
      "b.astype(\"<i4\").tofile(d + \"/i4be.ref\")\n"
      "c = rng.integers(0, 2**16, size=10, dtype=numpy.uint16)\n"
      "numpy.save(d + \"/u2.npy\", c)\n"
      "c.tofile(d + \"/u2.ref\")\n",
      dir_));
  struct Case {
    std::string name;
    DType dtype;
    uint64_t samples;
    Shape sample_shape;
    uint64_t rows;
  };
  const Case cases[] = {
      {"f4", DType::kFloat32, 1000, Shape{3, 5}, 256},
      {"i4be", DType::kInt32, 333, Shape{7}, 100},
      {"u2", DType::kUInt16, 10, Shape{}, 3},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string ref = ReadFile(Path(c.name + ".ref"));
    const std::string file = c.name + ".npy";
    auto source = MakeNpySource({Path(file)}, "x", Rows(c.rows));
    auto scan = source->Scan(false);
    ASSERT_TRUE(scan.ok()) << scan.status();
    ASSERT_EQ(scan->tensors.size(), 1u);
    const TensorSpec& spec = scan->tensors[0];
    EXPECT_EQ(spec.name, "x");
    EXPECT_EQ(spec.htype, HType::kGeneric);
    EXPECT_EQ(spec.dtype, c.dtype);
    EXPECT_EQ(spec.rank, static_cast<int>(c.sample_shape.rank()));
    EXPECT_EQ(spec.chunk_compression, "lz4");
    EXPECT_EQ(nlohmann::json::parse(spec.info),
              nlohmann::json(
                  {{"source", "npy"}, {"file", file}, {"samples", c.samples}}));
    const uint64_t records = (c.samples + c.rows - 1) / c.rows;
    EXPECT_EQ(scan->num_records, records);
    for (uint64_t start : {uint64_t{0}, records - 1}) {
      auto done = Drive(*source, start);
      ASSERT_TRUE(done.ok()) << done.status();
      ExpectIdxRows(*done, start, c.rows, c.samples, ref, nullptr, file,
                    c.sample_shape);
    }
  }
}

TEST_F(ArraySourceTest, NpyFolderGivesOneSampleAFileRagged) {
  ASSERT_TRUE(RunPython(
      "import os, sys, numpy\n"
      "d = sys.argv[1] + \"/set\"\n"
      "os.makedirs(d + \"/b\")\n"
      "shapes = {\"a.npy\": (2, 3), \"b/1.npy\": (4, 3), \"c.npy\": (0, 3), "
      "\"b/0.npy\": (1, 1)}\n"
      "for i, (name, shape) in enumerate(sorted(shapes.items())):\n"
      "    a = numpy.arange(numpy.prod(shape), dtype=\"<i2\").reshape(shape) + "
      "i * 100\n"
      "    numpy.save(d + \"/\" + name, a if i != 1 else "
      "a.astype(\">i2\"))\n"
      "    a.tofile(sys.argv[1] + \"/\" + str(i) + \".ref\")\n"
      "open(d + \"/notes.txt\", \"w\").write(\"x\")\n"
      "open(d + \"/.hidden.npy\", \"w\").write(\"x\")\n",
      dir_));
  auto source = MakeNpySource({Path("set")}, "arrays", {});
  auto scan = source->Scan(false);
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(scan->num_records, 4u);
  EXPECT_EQ(scan->ignored, 1u);  // notes.txt; hidden files are not seen
  ASSERT_EQ(scan->tensors.size(), 1u);
  EXPECT_EQ(scan->tensors[0].dtype, DType::kInt16);
  EXPECT_EQ(scan->tensors[0].rank, 2);
  EXPECT_EQ(nlohmann::json::parse(scan->tensors[0].info),
            nlohmann::json(
                {{"source", "npy"}, {"files", 4}, {"folder", Path("set")}}));
  auto done = Drive(*source);
  ASSERT_TRUE(done.ok()) << done.status();
  // Byte order of relative paths.
  const std::vector<std::string> names = {"a.npy", "b/0.npy", "b/1.npy",
                                          "c.npy"};
  const std::vector<Shape> shapes = {Shape{2, 3}, Shape{1, 1}, Shape{4, 3},
                                     Shape{0, 3}};
  ASSERT_EQ(done->size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE(names[i]);
    const Done& d = (*done)[i];
    EXPECT_EQ(d.name, names[i]);
    ASSERT_EQ(d.columns.size(), 1u);
    EXPECT_EQ(d.columns[0].count, 1u);
    EXPECT_EQ(d.columns[0].sample_shape, shapes[i]);
    EXPECT_EQ(d.columns[0].data, ReadFile(Path(std::to_string(i) + ".ref")));
    EXPECT_EQ(nlohmann::json::parse(d.columns[0].info),
              nlohmann::json({{"path", names[i]}}));
  }

  // Explicit files keep the order given, and their names as given.
  auto listed = MakeNpySource({Path("set/c.npy"), Path("set/a.npy")}, "t", {});
  ASSERT_TRUE(listed->Scan(false).ok());
  done = Drive(*listed);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->size(), 2u);
  EXPECT_EQ((*done)[0].name, Path("set/c.npy"));
  EXPECT_EQ((*done)[1].columns[0].data, ReadFile(Path("0.ref")));
}

TEST_F(ArraySourceTest, NpyBadFilesAreNamedOrSkipped) {
  ASSERT_TRUE(RunPython(
      "import os, sys, numpy\n"
      "d = sys.argv[1] + \"/set\"\n"
      "os.makedirs(d)\n"
      "numpy.save(d + \"/0.npy\", numpy.zeros((2, 2), dtype=\"f4\"))\n"
      "numpy.save(d + \"/1.npy\", "
      "numpy.asfortranarray(numpy.ones((2, 3), dtype=\"f4\")))\n"
      "numpy.save(d + \"/2.npy\", numpy.zeros((2, 2), dtype=\"f8\"))\n"
      "numpy.save(d + \"/3.npy\", numpy.zeros(4, dtype=\"f4\"))\n"
      "numpy.save(d + \"/4.npy\", numpy.full((3, 1), 7, dtype=\"f4\"))\n"
      "numpy.save(sys.argv[1] + \"/fortran.npy\", "
      "numpy.asfortranarray(numpy.ones((2, 3))))\n"
      "numpy.save(sys.argv[1] + \"/scalar.npy\", numpy.float32(1))\n",
      dir_));
  // A lying header: 10^9 x 100 bytes claimed over 6 bytes of data.
  WriteFile(Path("set/5.npy"),
            NpyBytes("{'descr': '|u1', 'fortran_order': False, 'shape': "
                     "(1000000000, 100), }",
                     "abcdef"));

  ExpectError(MakeNpySource({Path("fortran.npy")})->Scan(false).status(),
              StatusCode::kUnimplemented, Path("fortran.npy") + ": Fortran");
  ExpectError(MakeNpySource({Path("scalar.npy")})->Scan(false).status(),
              StatusCode::kInvalidArgument, "0-dimensional");
  {
    const PeakMemory memory;
    ExpectError(
        MakeNpySource({Path("set/5.npy")})->Scan(false).status(),
        StatusCode::kCorruption,
        Path("set/5.npy") + ": declares 100000000000 bytes of data, has 6");
    EXPECT_LT(memory.tracked_growth(), 1 << 20);
  }
  // Without skip_bad the first bad file stops the scan, with its code.
  ExpectError(MakeNpySource({Path("set")})->Scan(false).status(),
              StatusCode::kUnimplemented, Path("set/1.npy"));

  auto skipping = MakeNpySource({Path("set")});
  auto scan = skipping->Scan(true);
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(scan->num_records, 2u);
  ASSERT_EQ(scan->bad.size(), 4u);
  EXPECT_THAT(scan->bad[0], HasSubstr(Path("set/1.npy") + ": Fortran"));
  EXPECT_THAT(scan->bad[1],
              HasSubstr(Path("set/2.npy") + ": float64 of rank 2, where "
                                            "'0.npy' has float32 of rank 2"));
  EXPECT_THAT(scan->bad[2], HasSubstr("float32 of rank 1"));
  EXPECT_THAT(scan->bad[3], HasSubstr(Path("set/5.npy") + ": declares"));
  auto done = Drive(*skipping);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->size(), 2u);
  EXPECT_EQ((*done)[1].name, "4.npy");
  EXPECT_EQ((*done)[1].columns[0].sample_shape, (Shape{3, 1}));

  // A file that changed since the scan is a bad record, named.
  WriteFile(Path("set/4.npy"), "short");
  Record record;
  ASSERT_TRUE(*skipping->Plan(1, record));
  std::vector<std::byte> bytes(record.read_bytes);
  ExpectError(skipping->Read(record, bytes), StatusCode::kCorruption,
              "4.npy: the file changed size");

  ExpectError(MakeNpySource({Path("nothing")})->Scan(false).status(),
              StatusCode::kNotFound, Path("nothing"));
  std::filesystem::create_directory(Path("empty"));
  ExpectError(MakeNpySource({Path("empty")})->Scan(false).status(),
              StatusCode::kNotFound, "no .npy files");
}

TEST(RowBlocksTest, RecordsHoldAtMost64MiBUnlessOneRowIsLarger) {
  const auto small = internal::RowBlocks::Make(60000, 784, 65536);
  EXPECT_EQ(small.rows_per_record, 65536u);
  EXPECT_EQ(small.records, 1u);
  const auto large = internal::RowBlocks::Make(1000, 3 * 256 * 256, 65536);
  EXPECT_EQ(large.rows_per_record, (64u << 20) / (3 * 256 * 256));
  EXPECT_EQ(large.records, 3u);  // 341, 341, 318
  EXPECT_EQ(large.Name(2, "f"), "rows 682..999 of f");
  const auto huge = internal::RowBlocks::Make(5, uint64_t{1} << 40, 10);
  EXPECT_EQ(huge.rows_per_record, 1u);
  EXPECT_EQ(huge.records, 5u);
  const auto empty = internal::RowBlocks::Make(0, 0, 10);
  EXPECT_EQ(empty.records, 0u);
}

}  // namespace
}  // namespace shoal
