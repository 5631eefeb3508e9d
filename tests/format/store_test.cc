// Tests for format/store.h: the conformance suite run against mem:// and
// file://, plus what only one store, the registry or the key rules can show.
#include "format/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "format/internal/mem_store.h"
#include "tests/format/store_conformance.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;

using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

::testing::AssertionResult Ok(const Status& status) {
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << status;
}
template <typename T>
::testing::AssertionResult Ok(const Result<T>& result) {
  return Ok(result.status());
}

// A directory made with mkdtemp and removed, with everything in it, when the
// test ends.
class TempDir {
 public:
  TempDir() {
    std::string templ = ::testing::TempDir() + "shoal_store_test.XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp " << templ << ": " << std::strerror(errno);
      return;
    }
    // Canonical, so it compares equal to what getcwd() reports inside it.
    std::error_code ec;
    path_ = fs::canonical(templ, ec).string();
    if (ec) path_ = templ;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string CurrentTestName() {
  const ::testing::TestInfo* info =
      ::testing::UnitTest::GetInstance()->current_test_info();
  return std::string(info->test_suite_name()) + "." + info->name();
}

StoreConformanceParam MemStoreParam() {
  return {"Mem", []() -> Result<StoreUnderTest> {
            static std::atomic<int> counter{0};
            // Unique per test, and reset afterwards, because mem stores
            // outlive the handles to them.
            const std::string name =
                CurrentTestName() + "." + std::to_string(counter.fetch_add(1));
            ResetMemStoreForTesting(name);
            SHOAL_ASSIGN_OR_RETURN(std::shared_ptr<Store> store,
                                   OpenStore("mem://" + name));
            return StoreUnderTest{std::move(store),
                                  [name] { ResetMemStoreForTesting(name); }};
          }};
}

StoreConformanceParam FileStoreParam() {
  return {"File", []() -> Result<StoreUnderTest> {
            auto dir = std::make_shared<TempDir>();
            if (dir->path().empty()) return IOError("no temp directory");
            // A root that does not exist yet: OpenStore must create it.
            SHOAL_ASSIGN_OR_RETURN(
                std::shared_ptr<Store> store,
                OpenStore("file://" + dir->path() + "/store"));
            return StoreUnderTest{std::move(store),
                                  [dir]() mutable { dir.reset(); }};
          }};
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreConformanceTest,
                         ::testing::Values(MemStoreParam(), FileStoreParam()),
                         StoreConformanceParamName);

// ---------------------------------------------------------------------------
// Key rules.

TEST(ValidateStoreKeyTest, AcceptsRelativePrintablePaths) {
  for (std::string_view key : {"a", "a/b", "chunks/0f3a", "a.b", "...", "a..b",
                               ".a", "~", " ", "a b", "x=1", "a/b/c/d"}) {
    EXPECT_TRUE(Ok(ValidateStoreKey(key))) << key;
  }
  EXPECT_TRUE(Ok(ValidateStoreKey(std::string(1024, 'k'))));
}

TEST(ValidateStoreKeyTest, MessagesNameTheKeyPrintably) {
  const Status status = ValidateStoreKey("a/\x01/b");
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("a/\\x01/b"));
  EXPECT_EQ(std::string(status.message()).find('\x01'), std::string::npos);
  EXPECT_THAT(std::string(ValidateStoreKey("a/../b").message()),
              HasSubstr("'..'"));
  EXPECT_THAT(std::string(ValidateStoreKey(std::string(5000, 'k')).message()),
              HasSubstr("5000"));
}

// ---------------------------------------------------------------------------
// Registry and URL dispatch.

TEST(StoreRegistryTest, KnowsBuiltInSchemes) {
  const std::vector<std::string> schemes = StoreRegistry::Names();
  EXPECT_THAT(schemes, ::testing::IsSupersetOf({"file", "mem"}));
  EXPECT_TRUE(std::is_sorted(schemes.begin(), schemes.end()));
  EXPECT_TRUE(Ok(StoreRegistry::Find("mem")));
  EXPECT_EQ(StoreRegistry::Find("nope").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(StoreRegistryTest, RegisterDispatchesAndFirstRegistrationWins) {
  // Registrations last for the process, so each run (--gtest_repeat) needs
  // its own scheme, and the factory must not capture test-local state.
  static std::atomic<int> runs{0};
  const std::string scheme = "registry-test" + std::to_string(runs++);
  static std::string* seen = new std::string;
  auto factory = [](std::string_view location,
                    const StoreOptions&) -> Result<std::shared_ptr<Store>> {
    *seen = std::string(location);
    return OpenStore("mem://registry-test");
  };
  EXPECT_TRUE(StoreRegistry::Register(scheme, factory));
  EXPECT_FALSE(StoreRegistry::Register(
      scheme,
      [](std::string_view,
         const StoreOptions&) -> Result<std::shared_ptr<Store>> {
        return Internal("the second registration must not be used");
      }));
  Result<std::shared_ptr<Store>> store = OpenStore(scheme + "://some/where");
  ASSERT_TRUE(Ok(store));
  EXPECT_EQ(*seen, "some/where");
}

TEST(OpenStoreTest, UnknownSchemeNamesItAndTheKnownOnes) {
  Result<std::shared_ptr<Store>> store = OpenStore("gcs://bucket/dataset");
  EXPECT_THAT(store.status().code(),
              AnyOf(StatusCode::kInvalidArgument, StatusCode::kUnimplemented));
  const std::string message(store.status().message());
  EXPECT_THAT(message, HasSubstr("gcs"));
  EXPECT_THAT(message, HasSubstr("file://"));
  EXPECT_THAT(message, HasSubstr("mem://"));
  EXPECT_THAT(message, HasSubstr("s3://"));
}

TEST(OpenStoreTest, MalformedUrls) {
  for (std::string_view url : {"", "://x", "a b://x", "mem:://x"}) {
    EXPECT_EQ(OpenStore(url).status().code(), StatusCode::kInvalidArgument)
        << url;
  }
}

TEST(OpenStoreTest, SchemeIsCaseInsensitive) {
  ResetMemStoreForTesting("case-test");
  Result<std::shared_ptr<Store>> upper = OpenStore("MEM://case-test");
  ASSERT_TRUE(Ok(upper));
  EXPECT_EQ((*upper)->url(), "mem://case-test");
}

// ---------------------------------------------------------------------------
// mem:// specifics.

TEST(MemStoreTest, SameNameIsSameStoreAndNamesAreIsolated) {
  ResetMemStoreForTesting("iso-a");
  ResetMemStoreForTesting("iso-b");
  auto a1 = OpenStore("mem://iso-a");
  auto a2 = OpenStore("mem://iso-a");
  auto b = OpenStore("mem://iso-b");
  ASSERT_TRUE(Ok(a1));
  ASSERT_TRUE(Ok(a2));
  ASSERT_TRUE(Ok(b));
  ASSERT_TRUE(Ok((*a1)->Write("k", AsBytes("v"))));
  EXPECT_EQ((*a2)->Read("k").value_or(Buffer()).view(), "v");
  EXPECT_EQ((*b)->Read("k").status().code(), StatusCode::kNotFound);
  ResetMemStoreForTesting("iso-a");
}

TEST(MemStoreTest, ReadsAreZeroCopySlices) {
  ResetMemStoreForTesting("zero-copy");
  auto store = OpenStore("mem://zero-copy");
  ASSERT_TRUE(Ok(store));
  ASSERT_TRUE(Ok((*store)->Write("k", AsBytes("0123456789"))));
  Result<Buffer> first = (*store)->Read("k");
  Result<Buffer> second = (*store)->Read("k");
  Result<Buffer> range = (*store)->ReadRange("k", 4, 3);
  ASSERT_TRUE(Ok(first));
  ASSERT_TRUE(Ok(second));
  ASSERT_TRUE(Ok(range));
  EXPECT_EQ(first->data(), second->data());
  EXPECT_EQ(range->data(), first->data() + 4);
  EXPECT_EQ(range->view(), "456");
  ResetMemStoreForTesting("zero-copy");
}

TEST(MemStoreTest, ResetDropsObjectsButNotBuffersReadBefore) {
  ResetMemStoreForTesting("reset");
  auto store = OpenStore("mem://reset");
  ASSERT_TRUE(Ok(store));
  ASSERT_TRUE(Ok((*store)->Write("k", AsBytes("kept by the reader"))));
  Result<Buffer> held = (*store)->Read("k");
  ASSERT_TRUE(Ok(held));
  ResetMemStoreForTesting("reset");
  EXPECT_THAT((*store)->List("").value_or({"error"}), IsEmpty());
  EXPECT_EQ(held->view(), "kept by the reader");
  ResetMemStoreForTesting("never-opened");  // A no-op, not an error.
}

TEST(MemStoreTest, NameIsRequired) {
  EXPECT_EQ(OpenStore("mem://").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenStore("mem://a\x01").status().code(),
            StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// file:// specifics.

class FileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    root_ = dir_.path() + "/root";
    Result<std::shared_ptr<Store>> store = OpenStore("file://" + root_);
    ASSERT_TRUE(Ok(store));
    store_ = *store;
  }

  // Puts a file in the store's directory behind the store's back.
  void PutFile(const std::string& relative, std::string_view contents) {
    const fs::path path = fs::path(root_) / relative;
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out << contents;
    ASSERT_TRUE(out.good()) << path;
  }

  std::string FileContents(const std::string& relative) {
    std::ifstream in(fs::path(root_) / relative, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  TempDir dir_;
  std::string root_;
  std::shared_ptr<Store> store_;
};

TEST_F(FileStoreTest, ObjectsAreFilesUnderTheRoot) {
  EXPECT_EQ(store_->url(), "file://" + root_);
  ASSERT_TRUE(Ok(store_->Write("a/b/c", AsBytes("bytes"))));
  EXPECT_EQ(FileContents("a/b/c"), "bytes");
  PutFile("x/y", "from outside");
  EXPECT_EQ(store_->Read("x/y").value_or(Buffer()).view(), "from outside");
}

TEST_F(FileStoreTest, LeftoverTempFilesAreNotListed) {
  ASSERT_TRUE(Ok(store_->Write("d/real", AsBytes("1"))));
  // What a write that crashed before its rename leaves behind.
  PutFile(".tmp.x.123.456", "partial");
  PutFile("d/.tmp.real.123.456", "partial");
  EXPECT_THAT(store_->List("").value_or({"error"}), ElementsAre("d/real"));
  EXPECT_THAT(store_->List("d/").value_or({"error"}), ElementsAre("d/real"));
  EXPECT_THAT(store_->List(".tmp").value_or({"error"}), IsEmpty());
  // Names of that shape are not keys at all in a file store.
  EXPECT_EQ(store_->Read(".tmp.x.123.456").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Write("d/.tmp.y", AsBytes("x")).code(),
            StatusCode::kInvalidArgument);
}

TEST_F(FileStoreTest, WritesLeaveNoTempFiles) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(Ok(store_->Write("k/" + std::to_string(i % 3),
                                 AsBytes(std::string(i * 100, 'x')))));
  }
  ASSERT_TRUE(Ok(store_->WriteAtomic("pointer", AsBytes("p"))));
  // Also when a WriteIfAbsent loses: its temp file goes.
  ASSERT_TRUE(Ok(store_->WriteIfAbsent("once", AsBytes("1"))));
  EXPECT_EQ(store_->WriteIfAbsent("once", AsBytes("2")).code(),
            StatusCode::kAlreadyExists);
  std::vector<std::string> names;
  for (const auto& entry : fs::recursive_directory_iterator(root_)) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("k", "0", "1", "2",
                                                     "pointer", "once"));
}

TEST_F(FileStoreTest, WriteIfAbsentOntoADirectoryIsNotAlreadyExists) {
  // "d" is no object, so AlreadyExists would be a lie; it is the same
  // FailedPrecondition as Write() gives.
  ASSERT_TRUE(Ok(store_->Write("d/x", AsBytes("1"))));
  EXPECT_EQ(store_->WriteIfAbsent("d", AsBytes("y")).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_THAT(store_->List("").value_or({"error"}), ElementsAre("d/x"));
}

// The cross-process guarantee the dataset write lock relies on: forked
// processes, each with its own store handle, race to create one key.
TEST_F(FileStoreTest, WriteIfAbsentRacingProcessesHaveOneWinner) {
  constexpr int kProcesses = 3;
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string key = "race/" + std::to_string(round);
    int go[2];
    ASSERT_EQ(::pipe(go), 0);
    std::vector<pid_t> children;
    for (int i = 0; i < kProcesses; ++i) {
      const pid_t pid = ::fork();
      ASSERT_GE(pid, 0) << std::strerror(errno);
      if (pid == 0) {
        // The child: no gtest here, only an exit code (0 won, 1 lost).
        ::close(go[1]);
        char byte;
        while (::read(go[0], &byte, 1) < 0 && errno == EINTR) {
        }
        Result<std::shared_ptr<Store>> store = OpenStore("file://" + root_);
        if (!store.ok()) ::_exit(3);
        const std::string mine = "process " + std::to_string(i);
        const Status status = (*store)->WriteIfAbsent(key, AsBytes(mine));
        ::_exit(status.ok()                                   ? 0
                : status.code() == StatusCode::kAlreadyExists ? 1
                                                              : 2);
      }
      children.push_back(pid);
    }
    ::close(go[0]);
    ::close(go[1]);  // EOF starts every child at once.
    int winner = -1;
    int losers = 0;
    for (int i = 0; i < kProcesses; ++i) {
      int wstatus = 0;
      ASSERT_EQ(::waitpid(children[i], &wstatus, 0), children[i]);
      ASSERT_TRUE(WIFEXITED(wstatus));
      const int code = WEXITSTATUS(wstatus);
      EXPECT_TRUE(code == 0 || code == 1) << "child " << i << " exit " << code;
      if (code == 0) {
        EXPECT_EQ(winner, -1) << "two winners";
        winner = i;
      }
      losers += code == 1;
    }
    ASSERT_NE(winner, -1);
    EXPECT_EQ(losers, kProcesses - 1);
    EXPECT_EQ(store_->Read(key).value_or(Buffer()).view(),
              "process " + std::to_string(winner));
  }
}

TEST_F(FileStoreTest, NamesThatAreNotKeysAreNotListed) {
  PutFile("ok", "1");
  PutFile("back\\slash", "2");
  PutFile("ctl\x01", "3");
  EXPECT_THAT(store_->List("").value_or({"error"}), ElementsAre("ok"));
}

TEST_F(FileStoreTest, RangePastAShortFileIsOutOfRange) {
  PutFile("short", "0123456789");
  EXPECT_EQ(store_->ReadRange("short", 5, 10).status().code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(store_->ReadRange("short", 0, 11).status().code(),
            StatusCode::kOutOfRange);
  Result<Buffer> all = store_->ReadRange("short", 0, 10);
  ASSERT_TRUE(Ok(all));
  EXPECT_EQ(all->view(), "0123456789");
}

TEST_F(FileStoreTest, ObjectAndDirectoryCannotShareAName) {
  // A directory store cannot hold both "a" and "a/b"; it must say so and
  // leave the existing object alone.
  ASSERT_TRUE(Ok(store_->Write("a", AsBytes("object"))));
  EXPECT_EQ(store_->Write("a/b", AsBytes("x")).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Read("a").value_or(Buffer()).view(), "object");

  ASSERT_TRUE(Ok(store_->Write("d/x", AsBytes("1"))));
  EXPECT_EQ(store_->Write("d", AsBytes("y")).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_THAT(store_->List("").value_or({"error"}), ElementsAre("a", "d/x"));
}

TEST_F(FileStoreTest, OpenCreatesMissingRoot) {
  const std::string nested = dir_.path() + "/x/y/z";
  Result<std::shared_ptr<Store>> store = OpenStore("file://" + nested);
  ASSERT_TRUE(Ok(store));
  EXPECT_TRUE(fs::is_directory(nested));
  EXPECT_TRUE(Ok((*store)->Sync()));
}

TEST_F(FileStoreTest, OpenWithoutCreateLeavesAMissingRootAlone) {
  const std::string missing = dir_.path() + "/not/there";
  Result<std::shared_ptr<Store>> store =
      OpenStore("file://" + missing, {.create = false});
  EXPECT_EQ(store.status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir_.path() + "/not"));
  // An existing root opens the same with or without create.
  EXPECT_TRUE(Ok(OpenStore("file://" + dir_.path(), {.create = false})));
}

TEST_F(FileStoreTest, RootThatIsAFileIsRejected) {
  PutFile("plain", "not a directory");
  Result<std::shared_ptr<Store>> store =
      OpenStore("file://" + root_ + "/plain");
  EXPECT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("plain"));
}

TEST_F(FileStoreTest, UrlIsNormalized) {
  Result<std::shared_ptr<Store>> store =
      OpenStore("file://" + dir_.path() + "/n/./m/../root2/");
  ASSERT_TRUE(Ok(store));
  EXPECT_EQ((*store)->url(), "file://" + dir_.path() + "/n/root2");
}

TEST_F(FileStoreTest, PlainAbsolutePathIsAFileStore) {
  Result<std::shared_ptr<Store>> store = OpenStore(root_);
  ASSERT_TRUE(Ok(store));
  EXPECT_EQ((*store)->url(), "file://" + root_);
}

// Restores the working directory when a test that changed it ends.
class ScopedChdir {
 public:
  explicit ScopedChdir(const std::string& dir) : previous_(fs::current_path()) {
    fs::current_path(dir);
  }
  ~ScopedChdir() {
    std::error_code ec;
    fs::current_path(previous_, ec);
  }

 private:
  fs::path previous_;
};

TEST_F(FileStoreTest, PlainRelativePathResolvesAgainstCwd) {
  ScopedChdir chdir(dir_.path());
  Result<std::shared_ptr<Store>> store = OpenStore("rel/store");
  ASSERT_TRUE(Ok(store));
  EXPECT_EQ((*store)->url(), "file://" + dir_.path() + "/rel/store");
  ASSERT_TRUE(Ok((*store)->Write("k", AsBytes("v"))));
  EXPECT_TRUE(fs::is_regular_file(dir_.path() + "/rel/store/k"));

  Result<std::shared_ptr<Store>> dotted = OpenStore("./rel/./store/");
  ASSERT_TRUE(Ok(dotted));
  EXPECT_EQ((*dotted)->url(), (*store)->url());
}

TEST(FileStoreUrlTest, FileUrlMustBeAbsolute) {
  for (std::string_view url : {"file://relative", "file://./x", "file://"}) {
    Result<std::shared_ptr<Store>> store = OpenStore(url);
    EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_THAT(std::string(store.status().message()), HasSubstr("absolute"));
  }
}

}  // namespace
}  // namespace shoal
