// The write graph (loader/ingestor.h) end to end: rows from C++ code and
// image folders go into datasets that are identical at any worker count,
// commits are periodic and whole, a stopped ingestion resumes to the
// dataset an uninterrupted one makes, bad files are named (and skipped when
// asked), and names that are not UTF-8 are kept.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "codecs/image_codec.h"
#include "format/dataset.h"
#include "format/verify.h"
#include "loader/ingestor.h"
#include "loader/internal/source_util.h"
#include "loader/source.h"
#include "tests/format/fault_store.h"
#include "tests/format/format_test_util.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;
using format_test::FreshMemUrl;
using format_test::HasCode;
using format_test::Ok;
using format_test::SampleBytes;

// Every chunk object of every tensor (hidden ones too) in index order, and
// the dataset's length: equal lists mean the same samples, chunk boundaries
// and chunk bytes.
std::vector<std::string> Chunks(const std::string& url) {
  auto ds = Dataset::Open(url, {.read_only = true});
  EXPECT_TRUE(Ok(ds));
  if (!ds.ok()) return {};
  std::vector<std::string> out = {"len " + std::to_string((*ds)->len())};
  for (Tensor* t : (*ds)->tensors(/*include_hidden=*/true)) {
    for (const TensorExtent& e : t->Extents()) {
      auto bytes = (*ds)->store()->Read(e.chunk_key);
      EXPECT_TRUE(Ok(bytes)) << e.chunk_key;
      if (!bytes.ok()) return out;
      // A digest keeps a failure's message readable.
      out.push_back(
          t->name() + ":" + std::to_string(bytes->size()) + ":" +
          std::to_string(std::hash<std::string_view>()(bytes->view())));
    }
  }
  return out;
}

// Rows of two tensors of varying sizes, a pure function of the row index.
std::vector<TensorSpec> RowSpecs() {
  TensorSpec data;
  data.name = "data";
  data.dtype = DType::kUInt8;
  data.chunk_compression = "zstd:1";
  data.max_chunk_bytes = 64 << 10;
  data.block_bytes = 8 << 10;
  TensorSpec label;
  label.name = "label";
  label.dtype = DType::kUInt32;
  label.rank = 0;
  return {data, label};
}

Status FillRow(uint64_t i, Record& record) {
  const uint64_t n = 100 + (i * 37) % 900;
  const auto bytes = SampleBytes(7, i, n);
  RecordColumn& data = record.columns[0];
  data.kind = RecordColumn::Kind::kArrays;
  data.count = 1;
  data.sample_shape = Shape{n};
  data.data = Buffer::CopyOf(ByteSpan(bytes.data(), bytes.size()));
  RecordColumn& label = record.columns[1];
  label.kind = RecordColumn::Kind::kArrays;
  label.count = 1;
  label.sample_shape = Shape{};
  const uint32_t v = static_cast<uint32_t>(i % 5);
  label.data =
      Buffer::CopyOf(ByteSpan(reinterpret_cast<const std::byte*>(&v), 4));
  record.name = "row " + std::to_string(i);
  return Status::OK();
}

std::unique_ptr<Source> Rows(uint64_t count,
                             std::function<void(uint64_t)> on_row = nullptr) {
  return MakeRowSource(
      "test rows", RowSpecs(),
      [count, on_row](uint64_t i, Record& record) -> Result<bool> {
        if (i >= count) return false;
        if (on_row) on_row(i);
        SHOAL_RETURN_IF_ERROR(FillRow(i, record));
        return true;
      },
      count);
}

constexpr uint64_t kRows = 3000;

std::vector<std::string> UninterruptedRows() {
  const std::string url = FreshMemUrl("rows-ref");
  auto source = Rows(kRows);
  IngestOptions options;
  options.workers = {{"*", 1}};
  options.id_seed = 5;
  auto report = Ingest(*source, url, options);
  EXPECT_TRUE(Ok(report));
  return Chunks(url);
}

TEST(IngestTest, RowsAreTheSameDatasetAtAnyWorkerCount) {
  const auto expected = UninterruptedRows();
  ASSERT_EQ(expected[0], "len 3000");
  ASSERT_GT(expected.size(), 20u);
  for (int workers : {2, 4, 16, 0}) {
    const std::string url = FreshMemUrl("rows");
    auto source = Rows(kRows);
    IngestOptions options;
    if (workers > 0) options.workers = {{"*", workers}};
    options.memory_budget = 256 << 10;  // many items in flight, bounded
    options.commit_every_rows = 250;
    auto report = Ingest(*source, url, options);
    ASSERT_TRUE(Ok(report)) << workers;
    EXPECT_EQ(report->rows, kRows);
    EXPECT_GE(report->commits, kRows / 250);
    EXPECT_EQ(Chunks(url), expected) << "workers " << workers;
    auto verify = VerifyDataset(url);
    ASSERT_TRUE(Ok(verify));
    EXPECT_TRUE(verify->ok()) << verify->problems[0].message;
  }
}

TEST(IngestTest, ReadersSeeWholeCommitsWhileItRuns) {
  const std::string url = FreshMemUrl("readers");
  std::vector<uint64_t> seen;
  auto source = Rows(kRows, [&](uint64_t i) {
    if (i % 200 != 0 || i == 0) return;
    // A newer commit may replace (and delete) the copy of an open chunk the
    // opened commit names: the read says NotFound and the reader reopens
    // (README, "Reading while a writer commits"). Anything else is wrong.
    for (int attempt = 0; attempt < 10; ++attempt) {
      auto ds = Dataset::Open(url, {.read_only = true});
      if (!ds.ok()) return;  // before the first commit of the schema
      const uint64_t len = (*ds)->len();
      if (len == 0) {
        seen.push_back(len);
        return;
      }
      // Every committed row reads back exactly.
      auto s = (*(*ds)->tensor("data"))->Read(len - 1);
      if (!s.ok() && s.status().code() == StatusCode::kNotFound) continue;
      ASSERT_TRUE(Ok(s));
      seen.push_back(len);
      const uint64_t n = 100 + ((len - 1) * 37) % 900;
      const auto want = SampleBytes(7, len - 1, n);
      ASSERT_EQ(
          s->data.view(),
          std::string_view(reinterpret_cast<const char*>(want.data()), n));
      return;
    }
    ADD_FAILURE() << "10 reopened commits each lost a chunk to a newer one";
  });
  IngestOptions options;
  options.commit_every_rows = 100;
  options.commit_every_seconds = 0;
  options.memory_budget = 128 << 10;
  ASSERT_TRUE(Ok(Ingest(*source, url, options)));
  ASSERT_FALSE(seen.empty());
  EXPECT_GT(seen.back(), 0u);
  for (uint64_t len : seen) EXPECT_EQ(len % 100, 0u) << len;
}

TEST(IngestTest, StoppedIngestionResumesToTheUninterruptedDataset) {
  const auto expected = UninterruptedRows();
  for (uint64_t stop_at : {1, 777, 2998}) {
    const std::string url = FreshMemUrl("resume");
    std::atomic<bool> stop{false};
    {
      auto source = Rows(kRows, [&](uint64_t i) {
        if (i == stop_at) stop = true;
      });
      IngestOptions options;
      options.stop = &stop;
      options.commit_every_rows = 300;
      options.id_seed = 5;
      auto report = Ingest(*source, url, options);
      ASSERT_TRUE(Ok(report));
      EXPECT_TRUE(HasCode(report->status, StatusCode::kCancelled));
      EXPECT_LT(report->rows, kRows);
      EXPECT_GE(report->rows, std::min(stop_at, kRows));
    }
    auto source = Rows(kRows);
    IngestOptions options;
    options.mode = IngestOptions::Mode::kResume;
    options.workers = {{"*", 3}};
    auto report = Ingest(*source, url, options);
    ASSERT_TRUE(Ok(report)) << stop_at;
    EXPECT_GT(report->resumed_rows, 0u);
    EXPECT_EQ(report->rows, kRows);
    EXPECT_EQ(Chunks(url), expected) << "stopped at " << stop_at;
  }
}

TEST(IngestTest, ResumeRefusesAnotherSource) {
  const std::string url = FreshMemUrl("other");
  auto source = Rows(100);
  ASSERT_TRUE(Ok(Ingest(*source, url)));
  auto other = MakeRowSource("other rows", RowSpecs(),
                             [](uint64_t i, Record& r) -> Result<bool> {
                               SHOAL_RETURN_IF_ERROR(FillRow(i, r));
                               return i < 10;
                             });
  IngestOptions options;
  options.mode = IngestOptions::Mode::kResume;
  auto report = Ingest(*other, url, options);
  EXPECT_TRUE(HasCode(report.status(), StatusCode::kFailedPrecondition));
  EXPECT_NE(report.status().message().find("test rows"), std::string::npos)
      << report.status();
}

TEST(IngestTest, AppendAddsRowsAndChecksTheTensors) {
  const std::string url = FreshMemUrl("append");
  auto first = Rows(100);
  ASSERT_TRUE(Ok(Ingest(*first, url)));
  auto second = Rows(50);
  IngestOptions options;
  options.mode = IngestOptions::Mode::kAppend;
  auto report = Ingest(*second, url, options);
  ASSERT_TRUE(Ok(report));
  EXPECT_EQ(report->rows, 150u);
  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  auto s = (*(*ds)->tensor("data"))->Read(120);  // row 20 of the second run
  ASSERT_TRUE(Ok(s));
  EXPECT_EQ(s->shape, Shape{100 + (20 * 37) % 900});

  std::vector<TensorSpec> specs = RowSpecs();
  specs[1].dtype = DType::kInt64;
  auto wrong = MakeRowSource(
      "wrong", specs, [](uint64_t, Record&) -> Result<bool> { return false; });
  auto refused = Ingest(*wrong, url, options);
  EXPECT_TRUE(HasCode(refused.status(), StatusCode::kInvalidArgument));
  EXPECT_NE(refused.status().message().find("dtype"), std::string::npos);
}

TEST(IngestTest, TheBudgetBoundsWhatIsInFlight) {
  // 2000 rows of 64 KiB through 1 MiB chunks under a 2 MiB budget: the
  // accounted bytes (items read ahead, the open chunks, chunks cut and not
  // yet written) stay within the budget plus what admission lets through
  // past it (one item).
  std::vector<TensorSpec> specs = RowSpecs();
  specs[0].max_chunk_bytes = 1 << 20;
  auto source = MakeRowSource(
      "big rows", specs,
      [](uint64_t i, Record& record) -> Result<bool> {
        if (i >= 2000) return false;
        const auto bytes = SampleBytes(3, i, 64 << 10);
        record.columns[0].sample_shape = Shape{64 << 10};
        record.columns[0].data =
            Buffer::CopyOf(ByteSpan(bytes.data(), bytes.size()));
        record.columns[1].sample_shape = Shape{};
        const uint32_t v = 1;
        record.columns[1].data =
            Buffer::CopyOf(ByteSpan(reinterpret_cast<const std::byte*>(&v), 4));
        return true;
      },
      2000);
  IngestOptions options;
  options.memory_budget = 2 << 20;
  options.workers = {{"*", 4}};
  auto report = Ingest(*source, FreshMemUrl("budget"), options);
  ASSERT_TRUE(Ok(report));
  EXPECT_EQ(report->rows, 2000u);
  // Plus the open chunks of the small tensors (labels and the hidden shape
  // and info records, a few bytes a row: at most 32 KiB for 2000 rows),
  // charged as they grow, outside any item.
  const uint64_t bound = options.memory_budget + (64 << 10) + 4 + (32 << 10);
  EXPECT_LE(report->metrics.budget_peak, bound);
  EXPECT_GT(report->metrics.budget_peak, options.memory_budget / 2)
      << "the budget was not used at all";
  EXPECT_EQ(report->metrics.budget_in_use, 0u) << "charges not given back";
}

// A source that reads little and prepares much, as a JPEG folder converted
// to pixels does (here 1 KiB read, 64 KiB prepared: 64x).
class ExpandingSource : public Source {
 public:
  explicit ExpandingSource(uint64_t n) : n_(n) {}
  std::string name() const override { return "expanding source"; }
  Result<SourceScan> Scan(bool) override {
    SourceScan scan;
    TensorSpec x;
    x.name = "x";
    x.dtype = DType::kUInt8;
    x.max_chunk_bytes = 1 << 20;
    scan.tensors = {x};
    scan.num_records = n_;
    return scan;
  }
  Result<bool> Plan(uint64_t index, Record& record) override {
    if (index >= n_) return false;
    record.name = "r" + std::to_string(index);
    record.read_bytes = record.input_bytes = 1024;
    return true;
  }
  Status Read(const Record& record, MutableByteSpan out) const override {
    std::memset(out.data(), static_cast<int>(record.index & 0xff), out.size());
    return Status::OK();
  }
  Status Prepare(Record& record, const Buffer& input) const override {
    record.columns.resize(1);
    RecordColumn& c = record.columns[0];
    c.sample_shape = Shape{kPrepared};
    const auto bytes = SampleBytes(11, record.index, kPrepared);
    c.data = Buffer::CopyOf(ByteSpan(bytes.data(), bytes.size()));
    return Status::OK();
  }
  static constexpr uint64_t kPrepared = 64 << 10;

 private:
  uint64_t n_;
};

TEST(IngestTest, TheBudgetHoldsWhenPreparingExpandsTheInput) {
  // Items are admitted at what they hold once prepared (learnt from the
  // first ones), not at the bytes read: before, the first items were
  // admitted at 1 KiB a record and held 64 KiB each, 20x the budget.
  ExpandingSource source(1000);
  IngestOptions options;
  options.memory_budget = 2 << 20;
  options.workers = {{"*", 4}};
  auto report = Ingest(source, FreshMemUrl("expanding"), options);
  ASSERT_TRUE(Ok(report));
  EXPECT_EQ(report->rows, 1000u);
  // The budget, plus what admission lets through past it: one item, plus
  // the records fed before the first was prepared (one each, at most
  // max_in_flight = 16 of them).
  const uint64_t bound =
      options.memory_budget + 17 * ExpandingSource::kPrepared;
  EXPECT_LE(report->metrics.budget_peak, bound);
  EXPECT_EQ(report->metrics.budget_in_use, 0u);
}

TEST(IngestTest, CreateRefusesAnExistingDatasetAndSaysHow) {
  const std::string url = FreshMemUrl("exists");
  auto source = Rows(10);
  ASSERT_TRUE(Ok(Ingest(*source, url)));
  auto again = Ingest(*source, url);
  EXPECT_TRUE(HasCode(again.status(), StatusCode::kAlreadyExists));
}

// A stop that comes once every record is planned stops nothing: the
// report says the ingestion is complete.
TEST(IngestTest, AStopAfterTheLastRecordIsNoStop) {
  std::atomic<bool> stop{false};
  auto source = Rows(100, [&](uint64_t i) {
    if (i == 99) stop = true;
  });
  IngestOptions options;
  options.stop = &stop;
  auto report = Ingest(*source, FreshMemUrl("late-stop"), options);
  ASSERT_TRUE(Ok(report));
  EXPECT_TRUE(report->status.ok()) << report->status;
  EXPECT_EQ(report->rows, 100u);
}

// Every --commit-every point commits, also several within one item.
TEST(IngestTest, CommitsLandEveryFewRowsWithinAnItem) {
  const std::string url = FreshMemUrl("every7");
  auto source = Rows(700);
  IngestOptions options;
  options.commit_every_rows = 7;
  options.commit_every_seconds = 0;
  auto report = Ingest(*source, url, options);
  ASSERT_TRUE(Ok(report));
  EXPECT_GE(report->commits, 100u);
  auto verify = VerifyDataset(url);
  ASSERT_TRUE(Ok(verify));
  EXPECT_TRUE(verify->ok());
}

// A new ingestion stopped before its first commit leaves the empty commit 0
// of Dataset::Create: resume starts it afresh.
TEST(IngestTest, ResumeOfAnEmptyNewDatasetStartsFromNothing) {
  const auto expected = UninterruptedRows();
  const std::string url = FreshMemUrl("empty-resume");
  ASSERT_TRUE(Ok(Dataset::Create(url)));
  auto source = Rows(kRows);
  IngestOptions options;
  options.mode = IngestOptions::Mode::kResume;
  auto report = Ingest(*source, url, options);
  ASSERT_TRUE(Ok(report));
  EXPECT_EQ(report->resumed_rows, 0u);
  EXPECT_EQ(Chunks(url), expected);
}

// A failure after the dataset was created (here: a source whose tensors
// cannot be created) leaves no dataset behind.
TEST(IngestTest, AFailureAfterCreateLeavesNoDataset) {
  std::vector<TensorSpec> specs = RowSpecs();
  specs[1].name = specs[0].name;
  auto source =
      MakeRowSource("twins", specs, [](uint64_t i, Record& r) -> Result<bool> {
        SHOAL_RETURN_IF_ERROR(FillRow(i, r));
        return i < 10;
      });
  const std::string url = FreshMemUrl("twins");
  auto report = Ingest(*source, url);
  ASSERT_FALSE(report.ok());
  EXPECT_TRUE(HasCode(Dataset::Open(url, {.read_only = true}).status(),
                      StatusCode::kNotFound));
}

TEST(SourceInfoTest, NamesBecomeValidJsonAndStayApart) {
  const std::vector<std::string> names = {
      "cat/001.jpg",       "quote\"d.jpg",          "back\\slash.jpg",
      "tab\tand\nnewline", "\xc3\xa9t\xc3\xa9.jpg", std::string("nul\0byte", 8),
      "bad\xff\xfe.jpg",   "bad\\xff.jpg",          "\xed\xa0\x80surrogate"};
  std::set<std::string> shown;
  for (const std::string& name : names) {
    std::string info = "left over from the last sample";
    internal::SourceInfo(name, &info);
    const auto j = nlohmann::json::parse(info, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << info;
    if (internal::IsUtf8(name)) {
      EXPECT_EQ(j["path"], name);
      EXPECT_FALSE(j.contains("path_hex"));
    } else {
      std::string bytes;
      const std::string hex = j["path_hex"];
      for (size_t i = 0; i < hex.size(); i += 2)
        bytes.push_back(
            static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
      EXPECT_EQ(bytes, name);
    }
    EXPECT_TRUE(shown.insert(internal::PrintableName(name)).second) << name;
  }
}

// ---- Image folders ----

class ImageFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/shoal-ingest-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Put(const std::string& relative, const std::string& bytes) {
    const fs::path p = fs::path(dir_) / relative;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
  }
  static std::string ReadFile(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static std::string TestImage(const std::string& name) {
    return ReadFile(fs::path(SHOAL_TEST_DATA) / "jpeg" / name);
  }
  // A JPEG of `h` x `w` made here (the codec's encoder), pixels varying.
  static std::string MakeJpeg(uint32_t h, uint32_t w) {
    std::vector<std::byte> pixels(uint64_t{h} * w * 3);
    for (size_t i = 0; i < pixels.size(); ++i)
      pixels[i] = static_cast<std::byte>((i * 7 + i / 9973) & 0xff);
    auto codec = MakeImageCodec("jpeg");
    EXPECT_TRUE(Ok(codec));
    auto bytes = (*codec)->Encode(Shape{h, w, 3}, DType::kUInt8, pixels, {});
    EXPECT_TRUE(Ok(bytes));
    return std::string(bytes->view());
  }

  std::string dir_;
};

TEST_F(ImageFolderTest, StoresFilesAsTheyCameSameAtAnyWorkerCount) {
  // Class folders, JPEGs from the conformance set, names sorted by bytes.
  const std::vector<std::string> names = {"testorig.jpg", "testimgint.jpg",
                                          "testorig12.jpg"};
  std::vector<std::pair<std::string, std::string>> files;
  for (int c = 0; c < 3; ++c) {
    for (int k = 0; k < 12; ++k) {
      const std::string rel =
          "class" + std::to_string(c) + "/img" + std::to_string(k) + ".jpg";
      const std::string bytes = TestImage(names[(c + k) % 2]);
      ASSERT_FALSE(bytes.empty());
      Put(rel, bytes);
      files.emplace_back(rel, bytes);
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> reference;
  for (int workers : {1, 2, 5, 0}) {
    const std::string url = FreshMemUrl("images");
    auto source = MakeImageFolderSource(dir_);
    IngestOptions options;
    if (workers > 0) options.workers = {{"*", workers}};
    options.memory_budget = 64 << 10;
    options.id_seed = 11;
    options.commit_every_rows = 5;
    auto report = Ingest(*source, url, options);
    ASSERT_TRUE(Ok(report));
    EXPECT_EQ(report->rows, files.size());
    auto ds = Dataset::Open(url, {.read_only = true});
    ASSERT_TRUE(Ok(ds));
    Tensor* images = *(*ds)->tensor("images");
    Tensor* labels = *(*ds)->tensor("labels");
    EXPECT_EQ(images->spec().sample_compression, "jpeg");
    EXPECT_EQ(labels->spec().class_names,
              (std::vector<std::string>{"class0", "class1", "class2"}));
    for (size_t i = 0; i < files.size(); ++i) {
      auto stored = images->ReadStored(i);
      ASSERT_TRUE(Ok(stored));
      EXPECT_EQ(stored->view(), files[i].second) << files[i].first;
      auto info = images->ReadInfo(i);
      ASSERT_TRUE(Ok(info));
      EXPECT_EQ(nlohmann::json::parse(*info)["path"], files[i].first);
      auto label = labels->Read(i);
      ASSERT_TRUE(Ok(label));
      uint32_t v;
      std::memcpy(&v, label->data.data(), 4);
      EXPECT_EQ(v, static_cast<uint32_t>(files[i].first[5] - '0'));
    }
    const auto chunks = Chunks(url);
    if (reference.empty()) reference = chunks;
    EXPECT_EQ(chunks, reference) << "workers " << workers;
  }
}

TEST_F(ImageFolderTest, ABigPhotoIsStoredAsItCameWithTheDefaults) {
  // 4000 x 3000 pixels: 36 MB decoded, over the tiling threshold.
  const std::string big = MakeJpeg(3000, 4000);
  Put("big.jpg", big);
  Put("small.jpg", TestImage("testorig.jpg"));
  const std::string url = FreshMemUrl("big");
  auto source = MakeImageFolderSource(dir_);
  auto report = Ingest(*source, url);
  ASSERT_TRUE(Ok(report));
  auto ds = Dataset::Open(url, {.read_only = true});
  Tensor* images = *(*ds)->tensor("images");
  auto stored = images->ReadStored(0);
  ASSERT_TRUE(Ok(stored));
  EXPECT_EQ(stored->view(), big);
  auto shape = images->ReadShape(0);
  ASSERT_TRUE(Ok(shape));
  EXPECT_EQ(*shape, (Shape{3000, 4000, 3}));
}

TEST_F(ImageFolderTest, BadFilesAreNamedOrSkipped) {
  Put("a.jpg", TestImage("testorig.jpg"));
  std::string broken = TestImage("testorig.jpg");
  broken.resize(broken.size() / 2);
  Put("b.jpg", broken);
  Put("c.jpg", TestImage("testimgint.jpg"));
  Put("notes.txt", "not an image");
  fs::create_symlink("loop.jpg", fs::path(dir_) / "loop.jpg");

  const std::string url = FreshMemUrl("bad");
  auto source = MakeImageFolderSource(dir_);
  auto failed = Ingest(*source, url);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("loop.jpg"), std::string::npos)
      << failed.status();

  fs::remove(fs::path(dir_) / "loop.jpg");
  auto failed2 = Ingest(*MakeImageFolderSource(dir_), url);
  ASSERT_FALSE(failed2.ok());
  EXPECT_NE(failed2.status().message().find("b.jpg"), std::string::npos)
      << failed2.status();
  // Nothing was committed: the new dataset is gone again.
  EXPECT_TRUE(HasCode(Dataset::Open(url).status(), StatusCode::kNotFound));

  fs::create_symlink("loop.jpg", fs::path(dir_) / "loop.jpg");
  IngestOptions options;
  options.skip_bad = true;
  auto report = Ingest(*MakeImageFolderSource(dir_), url, options);
  ASSERT_TRUE(Ok(report));
  EXPECT_EQ(report->rows, 2u);
  EXPECT_EQ(report->ignored, 1u);
  ASSERT_EQ(report->skipped.size(), 2u);
  std::string all = report->skipped[0] + "|" + report->skipped[1];
  EXPECT_NE(all.find("b.jpg"), std::string::npos) << all;
  EXPECT_NE(all.find("loop.jpg"), std::string::npos) << all;
}

TEST_F(ImageFolderTest, NamesThatAreNotUtf8AreKept) {
  Put("a.jpg", TestImage("testorig.jpg"));
  Put(std::string("bad\xff\xfe.jpg"), TestImage("testimgint.jpg"));
  const std::string url = FreshMemUrl("utf8");
  auto report = Ingest(*MakeImageFolderSource(dir_), url);
  ASSERT_TRUE(Ok(report));
  ASSERT_EQ(report->rows, 2u);
  auto ds = Dataset::Open(url, {.read_only = true});
  auto info = (*(*ds)->tensor("images"))->ReadInfo(1);
  ASSERT_TRUE(Ok(info));
  const auto j = nlohmann::json::parse(*info);
  EXPECT_EQ(j["path_hex"], "626164fffe2e6a7067");  // "bad\xff\xfe.jpg"
  EXPECT_EQ(j["path"], "bad\\xff\\xfe.jpg");
}

// ---- Faults and slow stores ----

namespace fault {

// "faulty://NAME" forwards to mem://NAME; every write of a dataset object
// (not the write lock) sleeps `latency_ms`. (Failing writes: fault_store.)
std::atomic<int> latency_ms{0};

class FaultyStore final : public ForwardingStore {
 public:
  FaultyStore(std::shared_ptr<Store> inner, std::string name)
      : ForwardingStore(std::move(inner)), name_(std::move(name)) {}
  std::string url() const override { return "faulty://" + name_; }
  Status Write(std::string_view key, ByteSpan data) override {
    Delay(key);
    return ForwardingStore::Write(key, data);
  }
  Status WriteAtomic(std::string_view key, ByteSpan data) override {
    Delay(key);
    return ForwardingStore::WriteAtomic(key, data);
  }
  Status WriteIfAbsent(std::string_view key, ByteSpan data) override {
    Delay(key);
    return ForwardingStore::WriteIfAbsent(key, data);
  }

 private:
  static void Delay(std::string_view key) {
    if (key.starts_with("LOCK") || latency_ms == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(latency_ms.load()));
  }

  std::string name_;
};

void Register() {
  static const bool done = StoreRegistry::Register(
      "faulty",
      [](std::string_view location,
         const StoreOptions& options) -> Result<std::shared_ptr<Store>> {
        SHOAL_ASSIGN_OR_RETURN(
            auto inner, OpenStore("mem://" + std::string(location), options));
        return std::shared_ptr<Store>(
            std::make_shared<FaultyStore>(inner, std::string(location)));
      });
  (void)done;
}

}  // namespace fault

// For every k, write k of an ingestion fails: with ENOSPC or EIO and
// nothing written, or torn (half the object written, then EIO). The error
// reaches the caller, the last commit reads back whole, verify finds only
// orphans, and --resume finishes the same dataset as an uninterrupted run.
class IngestWriteFaultTest : public testing::TestWithParam<fault_store::Fault> {
};

TEST_P(IngestWriteFaultTest, AFailedWriteLeavesTheLastCommitWhole) {
  using fault_store::Op;
  fault_store::Register();
  const fault_store::Fault kind = GetParam();
  const uint64_t rows = 400;
  auto options = [] {
    IngestOptions o;
    o.commit_every_rows = 60;
    o.commit_every_seconds = 0;
    o.workers = {{"*", 2}};
    o.id_seed = 5;
    return o;
  };
  // A clean run: how many writes it makes, and the reference dataset.
  fault_store::Arm(Op::kWrite, kind, 0);
  const std::string ref = "faultmem://" + format_test::FreshMemName("ref");
  ASSERT_TRUE(Ok(Ingest(*Rows(rows), ref, options())));
  const int total = static_cast<int>(fault_store::Count(Op::kWrite));
  ASSERT_GT(total, 20);
  const auto expected = Chunks(ref);
  for (int k = 1; k <= total; ++k) {
    const std::string url = "faultmem://" + format_test::FreshMemName("k");
    fault_store::Arm(Op::kWrite, kind, k);
    auto report = Ingest(*Rows(rows), url, options());
    fault_store::Disarm();
    ASSERT_TRUE(fault_store::Fired()) << "write " << k;
    if (fault_store::plan().fired_key == "HEAD") {
      // HEAD is only a hint to the newest commit (the commit objects
      // decide): the ingestion goes on and the dataset is whole.
      ASSERT_TRUE(Ok(report)) << "write " << k << " of " << total;
      EXPECT_EQ(Chunks(url), expected) << "write " << k;
      continue;
    }
    ASSERT_FALSE(report.ok()) << "write " << k << " of " << total;
    if (kind == fault_store::Fault::kTornWrite &&
        fault_store::plan().fired_key.starts_with("commits/")) {
      // A torn commit object (a store breaking WriteIfAbsent's atomicity)
      // is not read as a commit: opening the dataset is a Corruption that
      // names it and says what mends it, never another dataset.
      auto ds = Dataset::Open(url, {.read_only = true});
      ASSERT_FALSE(ds.ok()) << "write " << k;
      EXPECT_TRUE(HasCode(ds.status(), StatusCode::kCorruption)) << ds.status();
      EXPECT_NE(ds.status().message().find(fault_store::plan().fired_key),
                std::string::npos)
          << ds.status();
      EXPECT_NE(ds.status().message().find("verify --repair"),
                std::string::npos)
          << ds.status();
      // Everything the commit names was written before it, so the repair
      // rewrites it from its metadata, and the checks below hold.
      auto mended = VerifyDataset(url, {.repair = true});
      ASSERT_TRUE(Ok(mended)) << "write " << k;
      EXPECT_NE(mended->commit_repair.find("rewrote the damaged '" +
                                           fault_store::plan().fired_key),
                std::string::npos)
          << mended->commit_repair;
      if (fault_store::plan().fired_key == "commits/00000000000000000000") {
        // The creation's empty commit: an empty dataset again.
        auto empty = Dataset::Open(url, {.read_only = true});
        ASSERT_TRUE(Ok(empty)) << "write " << k;
        EXPECT_EQ((*empty)->len(), 0u);
        continue;
      }
    }
    EXPECT_NE(report.status().message().find(kind == fault_store::Fault::kEnospc
                                                 ? "No space left"
                                                 : "Input/output error"),
              std::string::npos)
        << report.status();
    EXPECT_NE(report.status().message().find(fault_store::plan().fired_key),
              std::string::npos)
        << report.status();
    auto ds = Dataset::Open(url, {.read_only = true});
    if (!ds.ok()) {
      // Nothing was committed, and the empty new dataset went away again.
      EXPECT_TRUE(HasCode(ds.status(), StatusCode::kNotFound)) << ds.status();
      continue;
    }
    // Whatever is in reads back exactly as written.
    const uint64_t len = (*ds)->len();
    Tensor* data = *(*ds)->tensor("data");
    for (uint64_t i = 0; i < len; ++i) {
      auto s = data->Read(i);
      ASSERT_TRUE(Ok(s)) << "write " << k << ", row " << i;
      ASSERT_EQ(s->shape, Shape{100 + (i * 37) % 900});
    }
    auto verify = VerifyDataset(url);
    ASSERT_TRUE(Ok(verify));
    for (const auto& p : verify->problems) {
      EXPECT_EQ(p.kind, VerifyProblem::Kind::kOrphan) << p.message;
    }
    // And resuming finishes it as if nothing had happened.
    IngestOptions resume = options();
    resume.mode = IngestOptions::Mode::kResume;
    if ((*ds)->writer_state().empty()) continue;  // only the schema is in
    ds->reset();
    auto resumed = Ingest(*Rows(rows), url, resume);
    ASSERT_TRUE(Ok(resumed)) << "write " << k;
    EXPECT_EQ(Chunks(url), expected) << "write " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Faults, IngestWriteFaultTest,
    testing::Values(fault_store::Fault::kEnospc, fault_store::Fault::kEio,
                    fault_store::Fault::kTornWrite),
    [](const testing::TestParamInfo<fault_store::Fault>& info) {
      switch (info.param) {
        case fault_store::Fault::kEnospc:
          return std::string("enospc");
        case fault_store::Fault::kEio:
          return std::string("eio");
        default:
          return std::string("torn_write");
      }
    });

TEST(IngestFaultTest, ASlowStoreGetsMoreWriters) {
  fault::Register();
  fault::latency_ms = 20;
  std::vector<TensorSpec> specs = RowSpecs();
  specs[0].max_chunk_bytes = 16 << 10;  // many chunks, each a slow write
  specs[0].chunk_compression = "";
  // The controller tries one stage at a time, so when every stage is slow
  // (a sanitizer build) it may reach the writers late: the source goes on
  // past 16000 rows until they have grown, for at most a minute.
  std::atomic<bool> writers_grew{false};
  const auto start = std::chrono::steady_clock::now();
  auto source = MakeRowSource(
      "slow rows", specs,
      [&](uint64_t i, Record& record) -> Result<bool> {
        if (i >= 16000 &&
            (writers_grew || std::chrono::steady_clock::now() - start >
                                 std::chrono::minutes(1)))
          return false;
        SHOAL_RETURN_IF_ERROR(FillRow(i, record));
        return true;
      },
      16000);
  IngestOptions options;
  std::vector<std::string> decisions;
  std::mutex mu;
  options.on_decision = [&](const std::string& d) {
    std::lock_guard<std::mutex> lock(mu);
    decisions.push_back(d);
    int from = 0, to = 0;
    if (std::sscanf(d.c_str(), "%*s s: write %d->%d", &from, &to) == 2 &&
        to > from) {
      writers_grew = true;
    }
  };
  auto report =
      Ingest(*source, "faulty://" + format_test::FreshMemName("slow"), options);
  fault::latency_ms = 0;
  ASSERT_TRUE(Ok(report));
  const int writers = report->metrics.stages[4].concurrency;
  EXPECT_GT(writers, 4) << "decisions:\n"
                        << [&] {
                             std::string all;
                             for (auto& d : decisions) all += d + "\n";
                             return all;
                           }();
}

}  // namespace
}  // namespace shoal
