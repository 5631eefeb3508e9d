// Damage to a dataset on disk: flipped bits, truncated and missing chunks,
// broken HEAD, metadata and index objects, stray objects, and stored values
// that disagree with each other. Readers must fail with an error that names
// the dataset, tensor, object and sample (and keep serving what is intact);
// Dataset::Open must name the broken object; VerifyDataset must report
// exactly the damaged object; nothing may crash.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "base/coding.h"
#include "codecs/byte_codec.h"
#include "format/chunk.h"
#include "format/dataset.h"
#include "format/internal/metadata.h"
#include "format/lock.h"
#include "format/store.h"
#include "format/verify.h"
#include "tests/format/format_test_util.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;
using format_test::HasCode;
using format_test::Ok;
using format_test::SampleBytes;
using format_test::Span;
using format_test::TempDir;
using ::testing::HasSubstr;
using Kind = VerifyProblem::Kind;

constexpr uint64_t kRows = 200;

Shape ImageShape(uint64_t i) { return Shape{8, 8 + i % 5, 3}; }

// What sample `i` of each tensor holds.
std::vector<std::byte> Expected(std::string_view tensor, uint64_t i) {
  if (tensor == "images") return SampleBytes(1, i, 8 * (8 + i % 5) * 3);
  if (tensor == "emb") return SampleBytes(3, i, 16 * 4);
  const uint32_t label = static_cast<uint32_t>(i * 7);
  std::vector<std::byte> out(4);
  std::memcpy(out.data(), &label, 4);
  return out;
}

const char* const kTensors[] = {"images", "labels", "emb"};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void WriteFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The metadata of the committed dataset under `root` (a file:// folder),
// decoded with the format's own (separately tested) decoders.
internal::DatasetMeta CommittedMeta(const std::string& root) {
  auto head = internal::DecodeHead(AsBytes(ReadFile(root + "/HEAD")));
  EXPECT_TRUE(Ok(head));
  if (!head.ok()) return {};
  auto meta = internal::DecodeDatasetMeta(
      AsBytes(ReadFile(root + "/" + head->meta_key)));
  EXPECT_TRUE(Ok(meta));
  return meta.ok() ? *meta : internal::DatasetMeta{};
}

// One chunk of a tensor as the committed index has it.
struct ChunkInfo {
  std::string key;
  uint64_t first_sample;
  uint64_t num_samples;
};

class CorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = dir_.url();
    root_ = dir_.path() + "/ds";
    auto ds = Dataset::Create(url_);
    ASSERT_TRUE(Ok(ds));
    ASSERT_TRUE(Ok((*ds)->CreateTensor({.name = "images",
                                        .htype = HType::kImage,
                                        .chunk_compression = "zstd",
                                        .max_chunk_bytes = 8192,
                                        .block_bytes = 4096})));
    ASSERT_TRUE(Ok((*ds)->CreateTensor({.name = "labels",
                                        .htype = HType::kClassLabel,
                                        .chunk_compression = "lz4",
                                        .max_chunk_bytes = 4096,
                                        .block_bytes = 4096})));
    ASSERT_TRUE(Ok((*ds)->CreateTensor({.name = "emb",
                                        .htype = HType::kEmbedding,
                                        .chunk_compression = "zstd+shuffle",
                                        .max_chunk_bytes = 4096,
                                        .block_bytes = 4096})));
    for (uint64_t i = 0; i < kRows; ++i) {
      const auto img = Expected("images", i), lab = Expected("labels", i),
                 emb = Expected("emb", i);
      const Dataset::RowValue row[] = {{"images", ImageShape(i), Span(img)},
                                       {"labels", Shape{}, Span(lab)},
                                       {"emb", Shape{16}, Span(emb)}};
      ASSERT_TRUE(Ok((*ds)->Append(row)));
    }
    ASSERT_TRUE(Ok((*ds)->Flush()));
  }

  std::string Path(const std::string& key) const { return root_ + "/" + key; }

  // The committed objects, decoded with the format's own (separately
  // tested) decoders.
  internal::Head Head() {
    auto head = internal::DecodeHead(AsBytes(ReadFile(Path("HEAD"))));
    EXPECT_TRUE(Ok(head));
    return head.ok() ? *head : internal::Head{};
  }
  internal::DatasetMeta Meta() {
    auto meta =
        internal::DecodeDatasetMeta(AsBytes(ReadFile(Path(Head().meta_key))));
    EXPECT_TRUE(Ok(meta));
    return meta.ok() ? *meta : internal::DatasetMeta{};
  }
  internal::TensorMeta TensorMetaOf(std::string_view name) {
    for (const auto& t : Meta().tensors) {
      if (t.spec.name == name) return t;
    }
    ADD_FAILURE() << "no tensor " << name;
    return {};
  }
  std::vector<ChunkInfo> Chunks(std::string_view name) {
    const internal::TensorMeta t = TensorMetaOf(name);
    auto index =
        internal::TensorIndex::Decode(AsBytes(ReadFile(Path(t.index_key))),
                                      static_cast<uint8_t>(t.spec.rank));
    EXPECT_TRUE(Ok(index));
    std::vector<ChunkInfo> out;
    if (!index.ok()) return out;
    for (const auto& e : index->entries()) {
      out.push_back({internal::ChunkKey(t.id, e.chunk.id), e.first_sample,
                     e.chunk.num_samples});
    }
    return out;
  }

  // Reads every sample of every tensor: the statuses of the failures, by
  // tensor and sample. Intact samples must equal the formula.
  std::map<std::string, std::map<uint64_t, Status>> ReadAll() {
    std::map<std::string, std::map<uint64_t, Status>> failures;
    auto ds = Dataset::Open(url_, {.read_only = true});
    EXPECT_TRUE(Ok(ds));
    if (!ds.ok()) return failures;
    for (const char* name : kTensors) {
      auto t = (*ds)->tensor(name);
      EXPECT_TRUE(Ok(t));
      if (!t.ok()) continue;
      EXPECT_EQ((*t)->size(), kRows);
      for (uint64_t i = 0; i < kRows; ++i) {
        auto s = (*t)->Read(i);
        if (!s.ok()) {
          failures[name][i] = s.status();
          continue;
        }
        const auto want = Expected(name, i);
        EXPECT_TRUE(s->data.size() == want.size() &&
                    std::memcmp(s->data.data(), want.data(), want.size()) == 0)
            << name << " sample " << i << " read wrong bytes";
      }
    }
    return failures;
  }

  // The failure of sample `i` names the dataset, tensor, chunk and sample.
  void ExpectNamed(const Status& s, std::string_view tensor,
                   const std::string& key, uint64_t i) {
    const std::string m(s.message());
    EXPECT_THAT(m, HasSubstr(url_)) << s;
    EXPECT_THAT(m, HasSubstr("'" + std::string(tensor) + "'")) << s;
    EXPECT_THAT(m, HasSubstr(key)) << s;
    EXPECT_THAT(m, HasSubstr("sample " + std::to_string(i))) << s;
  }

  // Every sample of chunk `c` of `tensor`, and no other, fails to read with
  // `code`, each failure naming dataset, tensor, chunk and sample.
  void ExpectChunkUnreadable(std::string_view tensor, const ChunkInfo& c,
                             StatusCode code) {
    auto failures = ReadAll();
    EXPECT_EQ(failures.size(), 1u) << "only " << tensor << " is damaged";
    const auto& failed = failures[std::string(tensor)];
    ASSERT_EQ(failed.size(), c.num_samples);
    for (const auto& [i, s] : failed) {
      EXPECT_GE(i, c.first_sample);
      EXPECT_LT(i, c.first_sample + c.num_samples);
      EXPECT_TRUE(HasCode(s, code)) << i;
      ExpectNamed(s, tensor, c.key, i);
    }
  }

  VerifyReport Verify(const VerifyOptions& options = {}) {
    auto report = VerifyDataset(url_, options);
    EXPECT_TRUE(Ok(report));
    return report.ok() ? *report : VerifyReport{};
  }

  // Exactly one problem, of `kind`, about `object`.
  void ExpectOnlyProblem(const VerifyReport& report, Kind kind,
                         const std::string& object) {
    ASSERT_EQ(report.problems.size(), 1u) << [&] {
      std::string all;
      for (const auto& p : report.problems) all += p.ToString() + "\n";
      return all;
    }();
    EXPECT_EQ(report.problems[0].kind, kind) << report.problems[0].ToString();
    EXPECT_EQ(report.problems[0].object, object)
        << report.problems[0].ToString();
  }

  // Open (read-only and writable) fails, naming `object`.
  void ExpectOpenFails(const std::string& object,
                       StatusCode code = StatusCode::kCorruption) {
    for (bool read_only : {true, false}) {
      auto ds = Dataset::Open(url_, {.read_only = read_only});
      ASSERT_FALSE(ds.ok()) << "read_only " << read_only;
      EXPECT_EQ(ds.status().code(), code) << ds.status();
      EXPECT_THAT(std::string(ds.status().message()), HasSubstr(object));
    }
  }

  TempDir dir_;
  std::string url_;
  std::string root_;
};

TEST_F(CorruptionTest, IntactDatasetVerifiesClean) {
  EXPECT_TRUE(ReadAll().empty());
  const VerifyReport report = Verify({.decode_samples = true});
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.tensors, 9u);
  EXPECT_EQ(report.samples, 9 * kRows);  // data, shape and info tensors
  EXPECT_GT(Chunks("images").size(), 4u);
}

// (a) One flipped bit in a block: the samples in that block fail, the rest
// of the chunk and of the dataset still reads.
TEST_F(CorruptionTest, BitFlipInABlock) {
  const auto chunks = Chunks("images");
  ASSERT_GE(chunks.size(), 3u);
  const ChunkInfo& c = chunks[1];
  std::string bytes = ReadFile(Path(c.key));
  auto header = ChunkHeader::Decode(AsBytes(bytes), bytes.size());
  ASSERT_TRUE(Ok(header));
  const auto& blocks = (*header)->blocks();
  ASSERT_GE(blocks.size(), 2u);
  const BlockInfo& b = blocks[1];
  bytes[b.stored_offset + b.stored_size / 2] ^= 0x04;
  WriteFile(Path(c.key), bytes);

  std::set<uint64_t> affected;
  for (uint64_t j = 0; j < c.num_samples; ++j) {
    const ByteRange r = (*header)->layout().range(j);
    if (r.size > 0 && r.offset < b.raw_offset + b.raw_size &&
        r.end() > b.raw_offset) {
      affected.insert(c.first_sample + j);
    }
  }
  ASSERT_FALSE(affected.empty());
  ASSERT_LT(affected.size(), c.num_samples);

  auto failures = ReadAll();
  EXPECT_EQ(failures.size(), 1u) << "only images is damaged";
  std::set<uint64_t> failed;
  for (const auto& [i, s] : failures["images"]) {
    failed.insert(i);
    EXPECT_TRUE(HasCode(s, StatusCode::kCorruption)) << i;
    ExpectNamed(s, "images", c.key, i);
  }
  EXPECT_EQ(failed, affected);

  auto ds = Dataset::Open(url_, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  auto t = (*ds)->tensor("images");
  ASSERT_TRUE(Ok(t));
  auto range = (*t)->ReadRange(0, kRows);
  EXPECT_TRUE(HasCode(range, StatusCode::kCorruption));
  EXPECT_THAT(std::string(range.status().message()), HasSubstr(c.key));
  EXPECT_TRUE(Ok((*t)->ReadRange(chunks[2].first_sample, kRows)));
  // The loader's bulk read fails for that chunk alone, naming it.
  auto extent = (*t)->ReadExtent(1);
  EXPECT_TRUE(HasCode(extent, StatusCode::kCorruption));
  EXPECT_THAT(std::string(extent.status().message()), HasSubstr(c.key));
  EXPECT_TRUE(Ok((*t)->ReadExtent(2)));
  // Shapes come from the hidden tensor and are intact.
  for (uint64_t i : affected) {
    auto shape = (*t)->ReadShape(i);
    ASSERT_TRUE(Ok(shape));
    EXPECT_EQ(*shape, ImageShape(i));
  }

  ExpectOnlyProblem(Verify(), Kind::kCorrupt, c.key);
}

TEST_F(CorruptionTest, BitFlipInAChunkHeader) {
  const auto chunks = Chunks("emb");
  ASSERT_GE(chunks.size(), 2u);
  const ChunkInfo& c = chunks[0];
  std::string bytes = ReadFile(Path(c.key));
  bytes[20] ^= 0x01;
  WriteFile(Path(c.key), bytes);
  ExpectChunkUnreadable("emb", c, StatusCode::kCorruption);
  ExpectOnlyProblem(Verify(), Kind::kCorrupt, c.key);
}

// (b) A chunk cut short: what is lost fails with Corruption (not a store
// error such as OutOfRange), naming the chunk.
TEST_F(CorruptionTest, TruncatedChunk) {
  const auto chunks = Chunks("images");
  const ChunkInfo& c = chunks[2];
  const std::string bytes = ReadFile(Path(c.key));
  auto header = ChunkHeader::Decode(AsBytes(bytes), bytes.size());
  ASSERT_TRUE(Ok(header));
  const BlockInfo& b0 = (*header)->blocks()[0];
  fs::resize_file(Path(c.key), b0.stored_offset + b0.stored_size);

  std::set<uint64_t> lost;  // samples that need a block past the cut
  for (uint64_t j = 0; j < c.num_samples; ++j) {
    if ((*header)->layout().range(j).end() > b0.raw_size)
      lost.insert(c.first_sample + j);
  }
  ASSERT_FALSE(lost.empty());
  auto failures = ReadAll();
  EXPECT_EQ(failures.size(), 1u);
  for (uint64_t i : lost) {
    ASSERT_TRUE(failures["images"].count(i))
        << "sample " << i << " read despite the cut";
  }
  for (const auto& [i, s] : failures["images"]) {
    EXPECT_TRUE(HasCode(s, StatusCode::kCorruption)) << i;
    ExpectNamed(s, "images", c.key, i);
  }
  ExpectOnlyProblem(Verify(), Kind::kCorrupt, c.key);
}

TEST_F(CorruptionTest, ChunkTruncatedInsideItsHeader) {
  const auto chunks = Chunks("labels");
  const ChunkInfo& c = chunks.back();
  fs::resize_file(Path(c.key), 30);
  ExpectChunkUnreadable("labels", c, StatusCode::kCorruption);
  ExpectOnlyProblem(Verify(), Kind::kCorrupt, c.key);
}

// (c) A missing chunk.
TEST_F(CorruptionTest, DeletedChunk) {
  const auto chunks = Chunks("images");
  const ChunkInfo& c = chunks[0];
  ASSERT_TRUE(fs::remove(Path(c.key)));
  ExpectChunkUnreadable("images", c, StatusCode::kNotFound);
  ExpectOnlyProblem(Verify(), Kind::kMissing, c.key);
}

// (d) The objects Open reads. HEAD is a hint: a damaged one (torn by a
// store that broke its atomicity, or rotted) is passed over and the dataset
// opens from its commit objects at the same commit; verify still reports it.
void ExpectOpensPastDamagedHead(const std::string& url, uint64_t commit) {
  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  EXPECT_EQ((*ds)->commit(), commit);
}

TEST_F(CorruptionTest, TruncatedHead) {
  const uint64_t commit = Head().commit;
  fs::resize_file(Path("HEAD"), 10);
  ExpectOpensPastDamagedHead(url_, commit);
  ExpectOnlyProblem(Verify(), Kind::kCorrupt, "HEAD");
}

TEST_F(CorruptionTest, GarbledHead) {
  const uint64_t commit = Head().commit;
  std::string bytes = ReadFile(Path("HEAD"));
  bytes[bytes.size() / 2] ^= 0x40;
  WriteFile(Path("HEAD"), bytes);
  ExpectOpensPastDamagedHead(url_, commit);
  ExpectOnlyProblem(Verify(), Kind::kCorrupt, "HEAD");
}

TEST_F(CorruptionTest, MissingHead) {
  // HEAD is a hint: without it the dataset opens from its commit objects,
  // at the same commit.
  const uint64_t commit = Head().commit;
  ASSERT_TRUE(fs::remove(Path("HEAD")));
  auto ds = Dataset::Open(url_, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  EXPECT_EQ((*ds)->commit(), commit);
  EXPECT_TRUE(Verify().ok());
  // Without commit 0 either, there is no dataset.
  ASSERT_TRUE(fs::remove(Path(internal::CommitKey(0))));
  ExpectOpenFails("HEAD", StatusCode::kNotFound);
  const VerifyReport report = Verify();
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.problems[0].object, "HEAD");
}

TEST_F(CorruptionTest, HeadNamingAMissingMetadataObject) {
  const std::string missing = "meta/7-00000000000000aa";
  WriteFile(Path("HEAD"), internal::EncodeHead({7, missing}));
  for (bool read_only : {true, false}) {
    auto ds = Dataset::Open(url_, {.read_only = read_only});
    ASSERT_FALSE(ds.ok());
    EXPECT_THAT(std::string(ds.status().message()), HasSubstr(missing));
  }
  const VerifyReport report = Verify();
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.problems[0].kind, Kind::kMissing);
  EXPECT_EQ(report.problems[0].object, missing);
}

TEST_F(CorruptionTest, TruncatedMetadata) {
  const std::string key = Head().meta_key;
  fs::resize_file(Path(key), ReadFile(Path(key)).size() / 2);
  ExpectOpenFails(key);
  ExpectOnlyProblem(Verify(), Kind::kCorrupt, key);
}

TEST_F(CorruptionTest, GarbledMetadataBytes) {
  const std::string key = Head().meta_key;
  std::string bytes = ReadFile(Path(key));
  bytes[bytes.size() / 3] ^= 0x20;
  WriteFile(Path(key), bytes);
  ExpectOpenFails(key);
  ExpectOnlyProblem(Verify(), Kind::kCorrupt, key);
}

TEST_F(CorruptionTest, GarbledMetadataJsonWithValidChecksum) {
  const std::string key = Head().meta_key;
  const std::string bytes = ReadFile(Path(key));
  auto payload =
      internal::DecodeObject(AsBytes(bytes), internal::kMetaMagic, "m");
  ASSERT_TRUE(Ok(payload));
  std::string json(AsStringView(*payload));
  const std::string garbles[] = {json.substr(0, json.size() / 2),
                                 "{\"format\": \"shoal\", \"commit\": [1]}",
                                 "[\"tensors\"]",
                                 std::string("\xff\xfe\x00", 3)};
  for (const std::string& garbled : garbles) {
    SCOPED_TRACE(garbled.substr(0, 40));
    WriteFile(Path(key), internal::EncodeObject(internal::kMetaMagic, garbled));
    ExpectOpenFails(key);
    ExpectOnlyProblem(Verify(), Kind::kCorrupt, key);
  }
}

TEST_F(CorruptionTest, CorruptIndex) {
  const std::string key = TensorMetaOf("images").index_key;
  std::string bytes = ReadFile(Path(key));
  bytes[bytes.size() / 2] ^= 0x01;
  WriteFile(Path(key), bytes);
  ExpectOpenFails(key);
  // The chunks the index named are not called orphans: which ones it named
  // is unknown.
  ExpectOnlyProblem(Verify(), Kind::kCorrupt, key);

  fs::resize_file(Path(key), 5);
  ExpectOpenFails(key);
  ExpectOnlyProblem(Verify(), Kind::kCorrupt, key);
}

TEST_F(CorruptionTest, MissingIndex) {
  const std::string key = TensorMetaOf("emb").index_key;
  ASSERT_TRUE(fs::remove(Path(key)));
  for (bool read_only : {true, false}) {
    auto ds = Dataset::Open(url_, {.read_only = read_only});
    ASSERT_FALSE(ds.ok());
    EXPECT_THAT(std::string(ds.status().message()), HasSubstr(key));
  }
  ExpectOnlyProblem(Verify(), Kind::kMissing, key);
}

// (e) Objects no commit references.
TEST_F(CorruptionTest, OrphansAreReportedAndRepaired) {
  const std::string strays[] = {"chunks/0/00000000deadbeef",
                                "index/1/99-00000000000000ff",
                                "meta/99-0000000000000001"};
  for (const auto& key : strays) {
    fs::create_directories(fs::path(Path(key)).parent_path());
    WriteFile(Path(key), "stray");
  }
  WriteFile(Path("notes.txt"), "not part of the dataset");
  // A user's own files inside the dataset's folders: not named as the
  // dataset names its objects, so listed and never deleted.
  const std::string users[] = {"chunks/0/my-notes.txt", "meta/README",
                               "index/1/backup-99-00000000000000ff",
                               "chunks/0/00000000DEADBEEF"};
  for (const auto& key : users) WriteFile(Path(key), "mine");

  VerifyReport report = Verify();
  EXPECT_EQ(std::set<std::string>(report.foreign.begin(), report.foreign.end()),
            std::set<std::string>(std::begin(users), std::end(users)));
  std::set<std::string> orphans;
  for (const auto& p : report.problems) {
    EXPECT_EQ(p.kind, Kind::kOrphan) << p.ToString();
    orphans.insert(p.object);
  }
  EXPECT_EQ(orphans,
            std::set<std::string>(std::begin(strays), std::end(strays)));

  report = Verify({.repair = true});
  EXPECT_EQ(report.orphans_removed, std::size(strays));
  EXPECT_TRUE(report.ok());
  for (const auto& key : strays) EXPECT_FALSE(fs::exists(Path(key))) << key;
  EXPECT_TRUE(fs::exists(Path("notes.txt")));
  for (const auto& key : users) EXPECT_TRUE(fs::exists(Path(key))) << key;
  EXPECT_TRUE(Verify().ok());
  EXPECT_TRUE(ReadAll().empty());
}

// Temporary files of writes a killed writer never finished: hidden from
// List(), never referenced, so orphans too.
TEST_F(CorruptionTest, TemporaryFilesOfInterruptedWritesAreRepaired) {
  const std::string leftovers[] = {"chunks/0/.tmp.00000000deadbeef.123.abc",
                                   "meta/.tmp.HEAD.7.x"};
  for (const auto& name : leftovers) {
    fs::create_directories(fs::path(Path(name)).parent_path());
    WriteFile(Path(name), "half written");
  }
  VerifyReport report = Verify();
  std::set<std::string> orphans;
  for (const auto& p : report.problems) {
    EXPECT_EQ(p.kind, Kind::kOrphan) << p.ToString();
    EXPECT_THAT(p.message, HasSubstr("temporary file")) << p.ToString();
    orphans.insert(p.object);
  }
  EXPECT_EQ(orphans,
            std::set<std::string>(std::begin(leftovers), std::end(leftovers)));
  report = Verify({.repair = true});
  EXPECT_EQ(report.orphans_removed, std::size(leftovers));
  for (const auto& name : leftovers)
    EXPECT_FALSE(fs::exists(Path(name))) << name;
  EXPECT_TRUE(Verify().ok());
  EXPECT_TRUE(ReadAll().empty());
  // Only leftovers go that way: a key (or a path out of the store) is refused.
  auto store = OpenStore(url_);
  ASSERT_TRUE(Ok(store));
  const std::string chunk = Chunks("images")[0].key;
  EXPECT_TRUE(
      HasCode((*store)->DeleteLeftover(chunk), StatusCode::kInvalidArgument));
  EXPECT_TRUE(HasCode((*store)->DeleteLeftover("../.tmp.x"),
                      StatusCode::kInvalidArgument));
  EXPECT_TRUE(fs::exists(Path(chunk)));
}

// A running writer's objects look like orphans until it commits: a repair
// takes the write lock, and so is refused while a writer holds it.
TEST_F(CorruptionTest, RepairWaitsForNoWriter) {
  const std::string stray = "chunks/0/00000000deadbeef";
  WriteFile(Path(stray), "a writer's uncommitted chunk");
  auto store = OpenStore(url_);
  ASSERT_TRUE(Ok(store));
  auto lock = DatasetLock::Acquire(*store, {.command = "shoal ingest x"});
  ASSERT_TRUE(Ok(lock));
  auto refused = VerifyDataset(url_, {.repair = true});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("shoal ingest x"));
  EXPECT_TRUE(fs::exists(Path(stray)));
  // Verify without repair reads on, as readers do.
  EXPECT_EQ(Verify().problems.size(), 1u);
  lock->reset();
  EXPECT_EQ(Verify({.repair = true}).orphans_removed, 1u);
  EXPECT_FALSE(fs::exists(Path(stray)));
  EXPECT_FALSE(fs::exists(Path("LOCK")));
}

TEST_F(CorruptionTest, RepairRefusesToDeleteWhenOtherProblemsExist) {
  const std::string stray = "chunks/2/00000000deadbeef";
  fs::create_directories(fs::path(Path(stray)).parent_path());
  WriteFile(Path(stray), "stray");
  const ChunkInfo c = Chunks("images")[0];
  std::string bytes = ReadFile(Path(c.key));
  bytes.back() ^= 0x01;
  WriteFile(Path(c.key), bytes);

  const VerifyReport report = Verify({.repair = true});
  EXPECT_EQ(report.orphans_removed, 0u);
  EXPECT_TRUE(fs::exists(Path(stray)));
  std::set<std::pair<Kind, std::string>> problems;
  for (const auto& p : report.problems) problems.insert({p.kind, p.object});
  EXPECT_EQ(problems, (std::set<std::pair<Kind, std::string>>{
                          {Kind::kOrphan, stray}, {Kind::kCorrupt, c.key}}));
}

// ------------------------------------------- stored values that disagree --

// Rewrites the metadata JSON of the current commit (valid envelope).
void EditMeta(const std::string& path,
              const std::function<void(nlohmann::json&)>& edit) {
  const std::string bytes = ReadFile(path);
  auto payload =
      internal::DecodeObject(AsBytes(bytes), internal::kMetaMagic, "m");
  ASSERT_TRUE(Ok(payload));
  nlohmann::json root = nlohmann::json::parse(AsStringView(*payload));
  edit(root);
  WriteFile(path, internal::EncodeObject(internal::kMetaMagic, root.dump()));
}

nlohmann::json& TensorJson(nlohmann::json& root, std::string_view name) {
  for (auto& t : root["tensors"]) {
    if (t["name"] == name) return t;
  }
  ADD_FAILURE() << "no tensor " << name;
  return root;
}

// A stored spec that CreateTensor would refuse must not get past Open: a
// writer using it divides by a zero block size or reserves a petabyte.
TEST_F(CorruptionTest, MetadataWithAnImpossibleSpecIsRejected) {
  const std::string key = Head().meta_key;
  // Each edit starts from a copy of the intact dataset (a writer in a
  // death-test child may have changed it).
  const std::string pristine = dir_.path() + "/pristine";
  fs::copy(root_, pristine, fs::copy_options::recursive);
  const std::pair<const char*, nlohmann::json> edits[] = {
      {"block_bytes", 0},
      {"block_bytes", 1ull << 40},
      {"max_chunk_bytes", 0},
      {"max_chunk_bytes", 1ull << 50},
      {"chunk_compression", "bogus-codec"},
  };
  for (const auto& [field, value] : edits) {
    SCOPED_TRACE(std::string(field) + " = " + value.dump());
    fs::remove_all(root_);
    fs::copy(pristine, root_, fs::copy_options::recursive);
    EditMeta(Path(key), [&](nlohmann::json& root) {
      TensorJson(root, "emb")[field] = value;
    });
    auto ds = Dataset::Open(url_);
    EXPECT_TRUE(HasCode(ds, StatusCode::kCorruption));
    if (!ds.ok()) continue;
    // It opened: appending must at least not crash the process.
    auto append_and_flush = [&] {
      const auto img = Expected("images", 0), lab = Expected("labels", 0),
                 emb = Expected("emb", 0);
      const Dataset::RowValue row[] = {{"images", ImageShape(0), Span(img)},
                                       {"labels", Shape{}, Span(lab)},
                                       {"emb", Shape{16}, Span(emb)}};
      Status status;
      for (int k = 0; k < 100 && status.ok(); ++k) status = (*ds)->Append(row);
      if (status.ok()) status = (*ds)->Flush();
      std::fprintf(stderr, "append and flush: %s\n", status.ToString().c_str());
      std::_Exit(0);
    };
    EXPECT_EXIT(append_and_flush(), ::testing::ExitedWithCode(0), "");
    ds->reset();
  }
}

// verify must check the statistics it claims to check: a forged max_shape
// (or raw byte count) in otherwise valid metadata is a problem.
TEST_F(CorruptionTest, ForgedShapeStatisticsAreReported) {
  const std::string key = Head().meta_key;
  const std::string pristine = dir_.path() + "/pristine";
  fs::copy(root_, pristine, fs::copy_options::recursive);
  const std::pair<const char*, nlohmann::json> edits[] = {
      {"max_shape", nlohmann::json::array({8, 99, 3})},
      {"min_shape", nlohmann::json::array({1, 8, 3})},
      {"raw_bytes", 12345},
  };
  for (const auto& [field, value] : edits) {
    SCOPED_TRACE(std::string(field) + " = " + value.dump());
    fs::remove_all(root_);
    fs::copy(pristine, root_, fs::copy_options::recursive);
    EditMeta(Path(key), [&](nlohmann::json& root) {
      TensorJson(root, "images")[field] = value;
    });
    const VerifyReport report = Verify();
    ASSERT_EQ(report.problems.size(), 1u);
    EXPECT_EQ(report.problems[0].kind, Kind::kInconsistent);
    EXPECT_THAT(report.problems[0].message, HasSubstr("statistics say"));
    EXPECT_THAT(report.problems[0].object, HasSubstr("images"));
  }
}

// A hidden tensor must belong to the data tensor that names it; one whose
// parent is itself (or anything else) is a problem.
TEST_F(CorruptionTest, AHiddenTensorThatIsItsOwnParentIsReported) {
  const std::string key = Head().meta_key;
  EditMeta(Path(key), [&](nlohmann::json& root) {
    auto& hidden = TensorJson(root, "_shape/images");
    hidden["parent"] = hidden["id"];
  });
  const VerifyReport report = Verify();
  bool found = false;
  for (const auto& p : report.problems) {
    found = found ||
            p.message.find("'_shape/images' has parent") != std::string::npos;
  }
  EXPECT_TRUE(found) << (report.problems.empty()
                             ? std::string("no problems")
                             : report.problems[0].ToString());
}

// FORMAT.md: tensor ids are unique (they name the index/ and chunks/
// folders). Two tensors sharing one would share their chunk folder.
TEST_F(CorruptionTest, DuplicateTensorIdsAreRejected) {
  const std::string key = Head().meta_key;
  const uint32_t labels_id = TensorMetaOf("labels").id;
  EditMeta(Path(key), [&](nlohmann::json& root) {
    TensorJson(root, "emb")["id"] = labels_id;
  });
  for (bool read_only : {true, false}) {
    auto ds = Dataset::Open(url_, {.read_only = read_only});
    EXPECT_TRUE(HasCode(ds, StatusCode::kCorruption))
        << "read_only " << read_only;
  }
  const VerifyReport report = Verify();
  EXPECT_FALSE(report.ok());
}

// The shape a chunk header records for a sample differs from the hidden
// shape tensor's record: ReadRegion bounds-checks against one and copies
// out of the other, so it must notice the disagreement instead of reading
// past the sample.
TEST_F(CorruptionTest, ChunkShapeDisagreesWithShapeTensor) {
  const auto chunks = Chunks("images");
  const ChunkInfo& c = chunks[1];
  const std::string bytes = ReadFile(Path(c.key));
  auto header = ChunkHeader::Decode(AsBytes(bytes), bytes.size());
  ASSERT_TRUE(Ok(header));
  const ChunkHeader& h = **header;
  auto codec = MakeByteCodec(h.format().chunk_codec, {1});
  ASSERT_TRUE(Ok(codec));
  const Buffer stored =
      Buffer::CopyOf(std::string_view(bytes).substr(h.header_size()));
  auto data = DecodeBlocks(h, 0, h.blocks().size() - 1, stored, codec->get());
  ASSERT_TRUE(Ok(data));
  // The last sample [8, w, 3] becomes [1, 8w, 3]: same size, other shape.
  const uint64_t j = c.num_samples - 1, i = c.first_sample + j;
  const Shape real = ImageShape(i);
  const Shape lie{1, real[0] * real[1], 3};
  SampleLayout layout;
  for (uint64_t k = 0; k < c.num_samples; ++k) {
    layout.Add(k == j ? lie : h.layout().shape(k), h.layout().range(k).size);
  }
  auto encoded = EncodeChunk(h.format(), layout, data->span(), codec->get());
  ASSERT_TRUE(Ok(encoded));
  ASSERT_EQ(encoded->bytes.size(), bytes.size()) << "the index must still fit";
  ASSERT_EQ(encoded->header_size, h.header_size());
  WriteFile(Path(c.key), encoded->bytes.view());
  // A thorough forger also rebinds the chunk in the index (else the header
  // checksum the index records gives it away first).
  const internal::TensorMeta tm = TensorMetaOf("images");
  auto index =
      internal::TensorIndex::Decode(AsBytes(ReadFile(Path(tm.index_key))),
                                    static_cast<uint8_t>(tm.spec.rank));
  ASSERT_TRUE(Ok(index));
  const uint64_t new_checksum =
      DecodeU64(encoded->bytes.data() + encoded->header_size - 8);
  ASSERT_TRUE(Ok(index->UpdateRefs([&](internal::ChunkRef& ref) {
    if (internal::ChunkKey(tm.id, ref.id) == c.key) {
      ref.header_checksum = new_checksum;
    }
    return Status::OK();
  })));
  WriteFile(Path(tm.index_key),
            index->Encode(static_cast<uint8_t>(tm.spec.rank)));

  // In a child process, so that a read out of bounds fails only this test.
  auto read_region = [&] {
    auto ds = Dataset::Open(url_, {.read_only = true});
    if (!ds.ok()) std::_Exit(2);
    auto t = (*ds)->tensor("images");
    const uint64_t lo[3] = {0, 0, 0};
    const uint64_t hi[3] = {real[0], real[1], real[2]};
    auto region = (*t)->ReadRegion(i, lo, hi);
    std::fprintf(stderr, "ReadRegion: %s\n",
                 region.status().ToString().c_str());
    std::_Exit(!region.ok() && region.status().code() == StatusCode::kCorruption
                   ? 0
                   : 1);
  };
  EXPECT_EXIT(read_region(), ::testing::ExitedWithCode(0), "");

  // The shape record disagrees with the chunk, and the statistics (whose
  // min/max the lie moves) with the samples.
  const VerifyReport report = Verify();
  ASSERT_FALSE(report.problems.empty());
  bool shape_problem = false;
  for (const auto& p : report.problems) {
    EXPECT_EQ(p.kind, Kind::kInconsistent) << p.ToString();
    EXPECT_THAT(p.ToString(), HasSubstr("images"));
    shape_problem =
        shape_problem ||
        p.message.find("in its chunk but another") != std::string::npos;
  }
  EXPECT_TRUE(shape_problem);
}

// One damaged block of one tile: the reads that need its bytes fail with an
// error naming dataset, tensor, chunk, sample and block; every other read
// (regions read only the blocks under them) still returns the source bytes.
TEST(CorruptionTiledTest, ADamagedBlockFailsOnlyTheReadsThatNeedIt) {
  TempDir dir;
  const std::string url = dir.url();
  const Shape shape{90, 110, 3};
  std::vector<std::byte> source(shape.num_elements());
  for (size_t k = 0; k < source.size(); ++k) {
    source[k] = static_cast<std::byte>((k / 3) % 7 + (k % 3) * 40);
  }
  {
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(Ok(ds));
    auto t = (*ds)->CreateTensor({.name = "img",
                                  .dtype = DType::kUInt8,
                                  .chunk_compression = "lz4",
                                  .block_bytes = 4096,
                                  .tiling_threshold = 8192});
    ASSERT_TRUE(Ok(t));
    ASSERT_TRUE(Ok((*t)->Append(shape, Span(source))));
    ASSERT_TRUE(Ok((*ds)->Flush()));
    ASSERT_GT((*t)->stats().num_chunks, 2u);
  }
  // The largest chunk object is a tile of the image (the hidden tensors'
  // chunks are small); its last byte is in its last block.
  std::string tile;
  uint64_t largest = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(
           dir.path() + "/ds/chunks")) {
    if (e.is_regular_file() && e.file_size() > largest) {
      largest = e.file_size();
      tile = e.path().string();
    }
  }
  ASSERT_FALSE(tile.empty());
  std::string bytes = ReadFile(tile);
  bytes.back() = static_cast<char>(bytes.back() ^ 0x5A);
  WriteFile(tile, bytes);
  const std::string key = tile.substr(tile.find("chunks/"));

  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  auto t = (*ds)->tensor("img");
  ASSERT_TRUE(Ok(t));
  auto whole = (*t)->Read(0);
  ASSERT_TRUE(HasCode(whole, StatusCode::kCorruption));
  for (const std::string& part :
       {"dataset '" + url + "'", std::string("tensor 'img'"),
        "chunk '" + key + "'", std::string("sample 0"), std::string("block "),
        std::string("checksum")}) {
    EXPECT_THAT(whole.status().message(), ::testing::HasSubstr(part));
  }
  // Pixel by pixel: those in the damaged block fail, the others read.
  uint64_t failed = 0;
  for (uint64_t y = 0; y < shape[0]; ++y) {
    for (uint64_t x = 0; x < shape[1]; ++x) {
      const uint64_t lo[3] = {y, x, 0}, hi[3] = {y + 1, x + 1, 3};
      auto pixel = (*t)->ReadRegion(0, lo, hi);
      if (!pixel.ok()) {
        ASSERT_EQ(pixel.status().code(), StatusCode::kCorruption);
        ++failed;
        continue;
      }
      ASSERT_EQ(std::memcmp(pixel->data.data(),
                            source.data() + (y * shape[1] + x) * 3, 3),
                0)
          << y << "," << x;
    }
  }
  EXPECT_GT(failed, 0u);
  EXPECT_LE(failed, 4096u / 3 + 1) << "more pixels failed than one block holds";
}

// A tiled sample whose index entry claims a smaller shape than the hidden
// shape tensor: a region inside the recorded shape but outside the index's
// tile grid must be Corruption, not a read past the tile list.
TEST(CorruptionTiledTest, TiledShapeDisagreesWithShapeTensor) {
  TempDir dir;
  const std::string url = dir.url();
  const Shape shape{300, 200, 3};
  {
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(Ok(ds));
    auto t = (*ds)->CreateTensor(
        {.name = "big", .dtype = DType::kUInt16, .tiling_threshold = 10240});
    ASSERT_TRUE(Ok(t));
    ASSERT_TRUE(
        Ok((*t)->Append(shape, Span(SampleBytes(9, 0, 300 * 200 * 3 * 2)))));
    ASSERT_TRUE(Ok((*ds)->Flush()));
  }
  const std::string root = dir.path() + "/ds";
  const internal::DatasetMeta meta_value = CommittedMeta(root);
  ASSERT_FALSE(meta_value.tensors.empty());
  const internal::DatasetMeta* meta = &meta_value;
  const internal::TensorMeta& tm = meta->tensors[0];
  ASSERT_EQ(tm.spec.name, "big");
  auto index = internal::TensorIndex::Decode(
      AsBytes(ReadFile(root + "/" + tm.index_key)), 3);
  ASSERT_TRUE(Ok(index));
  ASSERT_EQ(index->entries().size(), 1u);
  ASSERT_TRUE(index->entries()[0].tiled);
  auto lie =
      std::make_shared<internal::TiledSample>(*index->entries()[0].tiled);
  lie->shape[0] = 150;
  lie->tiles.resize(lie->Grid().num_elements());
  ASSERT_LT(lie->tiles.size(), index->entries()[0].tiled->tiles.size());
  internal::TensorIndex lying;
  lying.AddTiled(lie);
  WriteFile(root + "/" + tm.index_key, lying.Encode(3));

  auto read_region = [&] {
    auto ds = Dataset::Open(url, {.read_only = true});
    if (!ds.ok()) std::_Exit(2);
    auto t = (*ds)->tensor("big");
    const uint64_t lo[3] = {160, 0, 0};
    const uint64_t hi[3] = {300, 200, 3};
    auto region = (*t)->ReadRegion(0, lo, hi);
    std::fprintf(stderr, "ReadRegion: %s\n",
                 region.status().ToString().c_str());
    std::_Exit(!region.ok() && region.status().code() == StatusCode::kCorruption
                   ? 0
                   : 1);
  };
  EXPECT_EXIT(read_region(), ::testing::ExitedWithCode(0), "");

  auto report = VerifyDataset(url);
  ASSERT_TRUE(Ok(report));
  EXPECT_FALSE(report->ok());
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

// Two chunks of one tensor with identical sizes (same layout, raw blocks)
// swapped on disk: every checksum inside each chunk still holds, so only the
// index's binding of each chunk to its place can tell. Before the index
// recorded header checksums, every sample of both chunks read back another
// sample's bytes and verify --decode said OK.
TEST(ChunkBindingTest, SwappedChunksOfEqualSizeAreCaught) {
  TempDir dir;
  const std::string url = dir.url();
  constexpr uint64_t kSamples = 64, kPerChunk = 16, kBytes = 256;
  {
    auto ds = Dataset::Create(url);
    ASSERT_TRUE(Ok(ds));
    auto t = (*ds)->CreateTensor({.name = "x",
                                  .dtype = DType::kUInt8,
                                  .max_chunk_bytes = kPerChunk * kBytes,
                                  .block_bytes = 4096});
    ASSERT_TRUE(Ok(t));
    for (uint64_t i = 0; i < kSamples; ++i) {
      ASSERT_TRUE(
          Ok((*t)->Append(Shape{kBytes}, Span(SampleBytes(5, i, kBytes)))));
    }
    ASSERT_TRUE(Ok((*ds)->Flush()));
  }
  const std::string root = dir.path() + "/ds";
  const internal::DatasetMeta meta_value = CommittedMeta(root);
  ASSERT_FALSE(meta_value.tensors.empty());
  const internal::DatasetMeta* meta = &meta_value;
  const internal::TensorMeta* tm = nullptr;
  for (const auto& t : meta->tensors) {
    if (t.spec.name == "x") tm = &t;
  }
  ASSERT_NE(tm, nullptr);
  auto index = internal::TensorIndex::Decode(
      AsBytes(ReadFile(root + "/" + tm->index_key)), 1);
  ASSERT_TRUE(Ok(index));
  ASSERT_EQ(index->entries().size(), kSamples / kPerChunk);
  const std::string a =
      root + "/" + internal::ChunkKey(tm->id, index->entries()[1].chunk.id);
  const std::string b =
      root + "/" + internal::ChunkKey(tm->id, index->entries()[2].chunk.id);
  const std::string bytes_a = ReadFile(a), bytes_b = ReadFile(b);
  ASSERT_EQ(bytes_a.size(), bytes_b.size()) << "the test needs equal sizes";
  ASSERT_NE(bytes_a, bytes_b);
  WriteFile(a, bytes_b);
  WriteFile(b, bytes_a);

  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  auto t = (*ds)->tensor("x");
  ASSERT_TRUE(Ok(t));
  for (uint64_t i = 0; i < kSamples; ++i) {
    auto s = (*t)->Read(i);
    const bool swapped = i >= kPerChunk && i < 3 * kPerChunk;
    if (swapped) {
      ASSERT_FALSE(s.ok()) << "sample " << i << " read another sample's bytes";
      EXPECT_TRUE(HasCode(s.status(), StatusCode::kCorruption)) << s.status();
      EXPECT_THAT(std::string(s.status().message()),
                  HasSubstr("not the one the index recorded"));
      EXPECT_THAT(std::string(s.status().message()),
                  HasSubstr("sample " + std::to_string(i)));
    } else {
      ASSERT_TRUE(Ok(s)) << i;
      EXPECT_EQ(s->data.view(), AsStringView(Span(SampleBytes(5, i, kBytes))));
    }
  }
  // The loaders' bulk path checks it too.
  auto extent = (*t)->ReadExtent(1);
  EXPECT_TRUE(HasCode(extent.status(), StatusCode::kCorruption));

  auto report = VerifyDataset(url, {.decode_samples = true});
  ASSERT_TRUE(Ok(report));
  std::set<std::string> flagged;
  for (const auto& p : report->problems) flagged.insert(p.object);
  EXPECT_EQ(flagged,
            (std::set<std::string>{
                internal::ChunkKey(tm->id, index->entries()[1].chunk.id),
                internal::ChunkKey(tm->id, index->entries()[2].chunk.id)}));
}

}  // namespace
}  // namespace shoal
