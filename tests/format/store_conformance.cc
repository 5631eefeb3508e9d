// The shared Store conformance tests (see store_conformance.h). Every test
// gets a fresh, empty store from the instantiation's factory.
#include "tests/format/store_conformance.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace shoal {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

::testing::AssertionResult Ok(const Status& status) {
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << status;
}
template <typename T>
::testing::AssertionResult Ok(const Result<T>& result) {
  return Ok(result.status());
}

// Deterministic, position-dependent bytes, so a misplaced range shows.
std::string Pattern(size_t size, uint64_t seed) {
  std::string out(size, '\0');
  uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<char>(x);
  }
  return out;
}

std::string ReadString(const Store& store, std::string_view key) {
  Result<Buffer> buffer = store.Read(key);
  EXPECT_TRUE(buffer.ok()) << key << ": " << buffer.status();
  return buffer.ok() ? std::string(buffer->view()) : std::string();
}

std::vector<std::string> ListOrDie(const Store& store,
                                   std::string_view prefix) {
  Result<std::vector<std::string>> keys = store.List(prefix);
  EXPECT_TRUE(keys.ok()) << "List('" << prefix << "'): " << keys.status();
  return keys.ok() ? *keys : std::vector<std::string>();
}

StatusCode CodeOf(const Status& status) { return status.code(); }
template <typename T>
StatusCode CodeOf(const Result<T>& result) {
  return result.status().code();
}

TEST_P(StoreConformanceTest, WriteThenRead) {
  ASSERT_TRUE(Ok(store_->Write("greeting", AsBytes("hello, world"))));
  EXPECT_EQ(ReadString(*store_, "greeting"), "hello, world");
  EXPECT_EQ(store_->Size("greeting").value_or(0), 12u);
  EXPECT_TRUE(store_->Exists("greeting").value_or(false));
}

TEST_P(StoreConformanceTest, WriteCopiesTheCallersBytes) {
  std::string data = "original";
  ASSERT_TRUE(Ok(store_->Write("k", AsBytes(data))));
  data[0] = 'X';
  EXPECT_EQ(ReadString(*store_, "k"), "original");
}

TEST_P(StoreConformanceTest, OverwriteReplacesWholeObject) {
  ASSERT_TRUE(Ok(store_->Write("k", AsBytes(std::string(1000, 'a')))));
  ASSERT_TRUE(Ok(store_->Write("k", AsBytes("short"))));
  EXPECT_EQ(ReadString(*store_, "k"), "short");
  EXPECT_EQ(store_->Size("k").value_or(0), 5u);
  ASSERT_TRUE(Ok(store_->Write("k", AsBytes(std::string(3000, 'b')))));
  EXPECT_EQ(ReadString(*store_, "k"), std::string(3000, 'b'));
  EXPECT_THAT(ListOrDie(*store_, ""), ElementsAre("k"));
}

TEST_P(StoreConformanceTest, BufferReadBeforeOverwriteKeepsOldBytes) {
  ASSERT_TRUE(Ok(store_->Write("k", AsBytes("version 1"))));
  Result<Buffer> old = store_->Read("k");
  ASSERT_TRUE(Ok(old));
  Result<Buffer> old_range = store_->ReadRange("k", 8, 1);
  ASSERT_TRUE(Ok(old_range));
  ASSERT_TRUE(Ok(store_->Write("k", AsBytes("version 2"))));
  ASSERT_TRUE(Ok(store_->Delete("k")));
  EXPECT_EQ(old->view(), "version 1");
  EXPECT_EQ(old_range->view(), "1");
}

TEST_P(StoreConformanceTest, MissingObjectIsNotFound) {
  EXPECT_EQ(CodeOf(store_->Read("missing")), StatusCode::kNotFound);
  EXPECT_EQ(CodeOf(store_->ReadRange("missing", 0, 0)), StatusCode::kNotFound);
  EXPECT_EQ(CodeOf(store_->Size("missing")), StatusCode::kNotFound);
  EXPECT_EQ(CodeOf(store_->Delete("missing")), StatusCode::kNotFound);
  Result<bool> exists = store_->Exists("missing");
  ASSERT_TRUE(Ok(exists));
  EXPECT_FALSE(*exists);
}

// "dir" is only a prefix of "dir/obj", and "obj/x" would sit below an object:
// neither names an object, whatever the store uses underneath.
TEST_P(StoreConformanceTest, PathsAroundObjectsAreNotObjects) {
  ASSERT_TRUE(Ok(store_->Write("dir/obj", AsBytes("x"))));
  for (std::string_view key : {"dir", "dir/obj/x"}) {
    SCOPED_TRACE(key);
    EXPECT_EQ(CodeOf(store_->Read(key)), StatusCode::kNotFound);
    EXPECT_EQ(CodeOf(store_->ReadRange(key, 0, 0)), StatusCode::kNotFound);
    EXPECT_EQ(CodeOf(store_->Size(key)), StatusCode::kNotFound);
    EXPECT_EQ(CodeOf(store_->Delete(key)), StatusCode::kNotFound);
    Result<bool> exists = store_->Exists(key);
    ASSERT_TRUE(Ok(exists));
    EXPECT_FALSE(*exists);
  }
  EXPECT_EQ(ReadString(*store_, "dir/obj"), "x");
}

TEST_P(StoreConformanceTest, ReadRangeInside) {
  const std::string data = Pattern(1000, 1);
  ASSERT_TRUE(Ok(store_->Write("k", AsBytes(data))));
  Result<Buffer> whole = store_->ReadRange("k", 0, 1000);
  ASSERT_TRUE(Ok(whole));
  EXPECT_EQ(whole->view(), data);
  Result<Buffer> middle = store_->ReadRange("k", 123, 456);
  ASSERT_TRUE(Ok(middle));
  EXPECT_EQ(middle->view(), data.substr(123, 456));
  Result<Buffer> first = store_->ReadRange("k", 0, 1);
  ASSERT_TRUE(Ok(first));
  EXPECT_EQ(first->view(), data.substr(0, 1));
}

TEST_P(StoreConformanceTest, ReadRangeAtEnd) {
  const std::string data = Pattern(100, 2);
  ASSERT_TRUE(Ok(store_->Write("k", AsBytes(data))));
  Result<Buffer> tail = store_->ReadRange("k", 97, 3);
  ASSERT_TRUE(Ok(tail));
  EXPECT_EQ(tail->view(), data.substr(97));
  Result<Buffer> empty_at_end = store_->ReadRange("k", 100, 0);
  ASSERT_TRUE(Ok(empty_at_end));
  EXPECT_TRUE(empty_at_end->empty());
}

TEST_P(StoreConformanceTest, ReadRangePastEndIsOutOfRange) {
  ASSERT_TRUE(Ok(store_->Write("k", AsBytes(Pattern(100, 3)))));
  EXPECT_EQ(CodeOf(store_->ReadRange("k", 97, 4)), StatusCode::kOutOfRange);
  EXPECT_EQ(CodeOf(store_->ReadRange("k", 0, 101)), StatusCode::kOutOfRange);
  EXPECT_EQ(CodeOf(store_->ReadRange("k", 101, 0)), StatusCode::kOutOfRange);
  EXPECT_EQ(CodeOf(store_->ReadRange("k", 200, 10)), StatusCode::kOutOfRange);
}

TEST_P(StoreConformanceTest, ReadRangeOverflowingIsOutOfRange) {
  ASSERT_TRUE(Ok(store_->Write("k", AsBytes(Pattern(100, 4)))));
  // offset + length wraps around 2^64; none of these may pass the bounds
  // check or try to allocate `length` bytes.
  EXPECT_EQ(CodeOf(store_->ReadRange("k", kMax, 1)), StatusCode::kOutOfRange);
  EXPECT_EQ(CodeOf(store_->ReadRange("k", 1, kMax)), StatusCode::kOutOfRange);
  EXPECT_EQ(CodeOf(store_->ReadRange("k", kMax - 1, 4)),
            StatusCode::kOutOfRange);
  EXPECT_EQ(CodeOf(store_->ReadRange("k", 100, kMax)), StatusCode::kOutOfRange);
  EXPECT_EQ(CodeOf(store_->ReadRange("k", kMax, kMax)),
            StatusCode::kOutOfRange);
}

TEST_P(StoreConformanceTest, SizeFollowsOverwrites) {
  ASSERT_TRUE(Ok(store_->Write("a/b", AsBytes(Pattern(777, 5)))));
  EXPECT_EQ(store_->Size("a/b").value_or(0), 777u);
  ASSERT_TRUE(Ok(store_->Write("a/b", AsBytes(Pattern(3, 5)))));
  EXPECT_EQ(store_->Size("a/b").value_or(0), 3u);
}

TEST_P(StoreConformanceTest, EmptyObject) {
  ASSERT_TRUE(Ok(store_->Write("empty", ByteSpan())));
  Result<Buffer> read = store_->Read("empty");
  ASSERT_TRUE(Ok(read));
  EXPECT_TRUE(read->empty());
  EXPECT_EQ(store_->Size("empty").value_or(1), 0u);
  EXPECT_TRUE(store_->Exists("empty").value_or(false));
  Result<Buffer> range = store_->ReadRange("empty", 0, 0);
  ASSERT_TRUE(Ok(range));
  EXPECT_TRUE(range->empty());
  EXPECT_EQ(CodeOf(store_->ReadRange("empty", 0, 1)), StatusCode::kOutOfRange);
  EXPECT_THAT(ListOrDie(*store_, ""), ElementsAre("empty"));
}

TEST_P(StoreConformanceTest, LargeObject) {
  const std::string data = Pattern(8 << 20, 6);
  ASSERT_TRUE(Ok(store_->Write("big/object", AsBytes(data))));
  EXPECT_EQ(store_->Size("big/object").value_or(0), data.size());
  Result<Buffer> read = store_->Read("big/object");
  ASSERT_TRUE(Ok(read));
  ASSERT_EQ(read->size(), data.size());
  EXPECT_TRUE(read->view() == data);
  Result<Buffer> range = store_->ReadRange("big/object", 5 << 20, 1 << 20);
  ASSERT_TRUE(Ok(range));
  EXPECT_TRUE(range->view() == std::string_view(data).substr(5 << 20, 1 << 20));
}

// Large ranges (which file:// maps rather than copies) at an offset that is
// no page boundary, and kept intact when the object is replaced and deleted.
TEST_P(StoreConformanceTest, LargeRangeKeepsItsBytesAfterOverwrite) {
  const std::string data = Pattern(3 << 20, 7);
  ASSERT_TRUE(Ok(store_->Write("big", AsBytes(data))));
  Result<Buffer> range = store_->ReadRange("big", 12345, (2 << 20) + 7);
  ASSERT_TRUE(Ok(range));
  Buffer slice = range->Slice(100, 1 << 20);
  ASSERT_TRUE(Ok(store_->Write("big", AsBytes(Pattern(3 << 20, 8)))));
  ASSERT_TRUE(Ok(store_->Delete("big")));
  EXPECT_TRUE(range->view() ==
              std::string_view(data).substr(12345, (2 << 20) + 7));
  range = Buffer();
  EXPECT_TRUE(slice.view() == std::string_view(data).substr(12445, 1 << 20));
}

TEST_P(StoreConformanceTest, ExistsTracksLifecycle) {
  EXPECT_FALSE(store_->Exists("x/y").value_or(true));
  ASSERT_TRUE(Ok(store_->Write("x/y", AsBytes("1"))));
  EXPECT_TRUE(store_->Exists("x/y").value_or(false));
  ASSERT_TRUE(Ok(store_->Delete("x/y")));
  EXPECT_FALSE(store_->Exists("x/y").value_or(true));
}

TEST_P(StoreConformanceTest, ListEmptyStore) {
  EXPECT_THAT(ListOrDie(*store_, ""), IsEmpty());
  EXPECT_THAT(ListOrDie(*store_, "a/"), IsEmpty());
}

TEST_P(StoreConformanceTest, ListSortedWithPrefixes) {
  // Written out of order; '-' < '.' < '/' in byte order, so "a-b" and "a.b"
  // sort before everything below "a/".
  for (const char* key : {"b", "a/2", "c/d/f", "a/1", "ab", "a.b", "a/10",
                          "c/d/e", "a-b", "c/x/y/z"}) {
    ASSERT_TRUE(Ok(store_->Write(key, AsBytes(key))));
  }
  EXPECT_THAT(ListOrDie(*store_, ""),
              ElementsAre("a-b", "a.b", "a/1", "a/10", "a/2", "ab", "b",
                          "c/d/e", "c/d/f", "c/x/y/z"));
  EXPECT_THAT(ListOrDie(*store_, "a/"), ElementsAre("a/1", "a/10", "a/2"));
  EXPECT_THAT(ListOrDie(*store_, "a"),
              ElementsAre("a-b", "a.b", "a/1", "a/10", "a/2", "ab"));
  EXPECT_THAT(ListOrDie(*store_, "a/1"), ElementsAre("a/1", "a/10"));
  EXPECT_THAT(ListOrDie(*store_, "c/"),
              ElementsAre("c/d/e", "c/d/f", "c/x/y/z"));
  EXPECT_THAT(ListOrDie(*store_, "c/d/"), ElementsAre("c/d/e", "c/d/f"));
  EXPECT_THAT(ListOrDie(*store_, "c/d/e"), ElementsAre("c/d/e"));
  EXPECT_THAT(ListOrDie(*store_, "c/x/y"), ElementsAre("c/x/y/z"));
  EXPECT_THAT(ListOrDie(*store_, "b"), ElementsAre("b"));
  EXPECT_THAT(ListOrDie(*store_, "b/"), IsEmpty());
  EXPECT_THAT(ListOrDie(*store_, "zz"), IsEmpty());
  EXPECT_THAT(ListOrDie(*store_, "c/q/"), IsEmpty());
  // Prefixes that no valid key can start with list nothing, and never look
  // outside the store.
  EXPECT_THAT(ListOrDie(*store_, "/"), IsEmpty());
  EXPECT_THAT(ListOrDie(*store_, "../"), IsEmpty());
  EXPECT_THAT(ListOrDie(*store_, "a//"), IsEmpty());
}

TEST_P(StoreConformanceTest, DeleteRemoves) {
  ASSERT_TRUE(Ok(store_->Write("d/1", AsBytes("one"))));
  ASSERT_TRUE(Ok(store_->Write("d/2", AsBytes("two"))));
  ASSERT_TRUE(Ok(store_->Delete("d/1")));
  EXPECT_EQ(CodeOf(store_->Read("d/1")), StatusCode::kNotFound);
  EXPECT_EQ(CodeOf(store_->Delete("d/1")), StatusCode::kNotFound);
  EXPECT_THAT(ListOrDie(*store_, ""), ElementsAre("d/2"));
  EXPECT_EQ(ReadString(*store_, "d/2"), "two");
  // A deleted key can be written again.
  ASSERT_TRUE(Ok(store_->Write("d/1", AsBytes("again"))));
  EXPECT_EQ(ReadString(*store_, "d/1"), "again");
}

// Many writes and deletes in one call (in flight together on a network
// store): each gets its own status, a bad key fails alone, and a delete of
// a key that is already gone counts as done.
TEST_P(StoreConformanceTest, WriteManyAndDeleteManyEachOnTheirOwn) {
  std::vector<std::string> keys, data;
  for (int i = 0; i < 40; ++i) {  // more than a network store has in flight
    keys.push_back("m/" + std::to_string(i));
    data.push_back(Pattern(static_cast<size_t>(100 + 37 * i), i));
  }
  keys[7] = "m/../bad";
  std::vector<ObjectWrite> writes;
  for (int i = 0; i < 40; ++i) writes.push_back({keys[i], AsBytes(data[i])});
  const std::vector<Status> written = store_->WriteMany(writes);
  ASSERT_EQ(written.size(), 40u);
  for (int i = 0; i < 40; ++i) {
    if (i == 7) {
      EXPECT_EQ(CodeOf(written[i]), StatusCode::kInvalidArgument);
    } else {
      ASSERT_TRUE(Ok(written[i])) << keys[i];
      EXPECT_EQ(ReadString(*store_, keys[i]), data[i]) << keys[i];
    }
  }
  EXPECT_EQ(ListOrDie(*store_, "m/").size(), 39u);
  EXPECT_THAT(store_->WriteMany({}), IsEmpty());

  std::vector<std::string> doomed(keys.begin() + 10, keys.end());
  doomed.push_back("m/never-written");
  const std::vector<Status> deleted = store_->DeleteMany(doomed);
  ASSERT_EQ(deleted.size(), doomed.size());
  for (size_t i = 0; i < doomed.size(); ++i) {
    EXPECT_TRUE(Ok(deleted[i])) << doomed[i];
  }
  EXPECT_EQ(ListOrDie(*store_, "m/").size(), 9u);
  EXPECT_EQ(CodeOf(store_->Read(keys[10])), StatusCode::kNotFound);
  EXPECT_EQ(ReadString(*store_, keys[9]), data[9]);
  EXPECT_EQ(CodeOf(store_->DeleteMany(std::vector<std::string>{"m/../x"})[0]),
            StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, ReadManyReadsEachOnItsOwn) {
  std::vector<std::string> keys, data;
  for (int i = 0; i < 40; ++i) {  // more than a network store has in flight
    keys.push_back("r/" + std::to_string(i));
    data.push_back(Pattern(static_cast<size_t>(i == 5 ? 0 : 50 + 91 * i), i));
    ASSERT_TRUE(Ok(store_->Write(keys[i], AsBytes(data[i]))));
  }
  keys[7] = "r/never-written";
  keys[9] = "r/../bad";
  std::vector<std::string_view> wanted(keys.begin(), keys.end());
  wanted.push_back(keys[3]);  // twice
  const std::vector<Result<Buffer>> got = store_->ReadMany(wanted);
  ASSERT_EQ(got.size(), wanted.size());
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (i == 7) {
      EXPECT_EQ(CodeOf(got[i]), StatusCode::kNotFound);
      EXPECT_THAT(got[i].status().message(),
                  ::testing::HasSubstr("r/never-written"));
    } else if (i == 9) {
      EXPECT_EQ(CodeOf(got[i]), StatusCode::kInvalidArgument);
    } else {
      ASSERT_TRUE(Ok(got[i])) << wanted[i];
      EXPECT_EQ(got[i]->view(), data[i == 40 ? 3 : i]) << wanted[i];
    }
  }
  EXPECT_THAT(store_->ReadMany({}), IsEmpty());
}

TEST_P(StoreConformanceTest, UnusualButValidKeys) {
  const std::vector<std::string> keys = {"sp ace/we!rd~key.v1",
                                         "a..b",
                                         "...",
                                         ".hidden/.x",
                                         "-dash",
                                         "x=1,y=2",
                                         "UPPER/lower",
                                         "a/b/c/d/e/f/g/h/i/j"};
  for (const std::string& key : keys) {
    ASSERT_TRUE(Ok(store_->Write(key, AsBytes("v:" + key)))) << key;
  }
  for (const std::string& key : keys) {
    EXPECT_EQ(ReadString(*store_, key), "v:" + key);
  }
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(ListOrDie(*store_, ""), sorted);
}

TEST_P(StoreConformanceTest, LongestKey) {
  std::string key;
  for (char c = 'a'; c < 'f'; ++c) key += std::string(200, c) + "/";
  key += std::string(1024 - key.size(), 'z');
  ASSERT_EQ(key.size(), 1024u);
  ASSERT_TRUE(Ok(store_->Write(key, AsBytes("long"))));
  EXPECT_EQ(ReadString(*store_, key), "long");
  EXPECT_THAT(ListOrDie(*store_, ""), ElementsAre(key));
  EXPECT_EQ(CodeOf(store_->Write(key + "z", AsBytes("x"))),
            StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, InvalidKeysAreRejected) {
  const std::vector<std::string> bad_keys = {
      "",      "/",           "/a",
      "a/",    "a//b",        ".",
      "..",    "./a",         "a/./b",
      "../a",  "a/..",        "a/../b",
      "a\nb",  "a\tb",        std::string("a\0b", 3),
      "a\x7f", "a\x1b[31m",   "a\\b",
      "..\\x", "caf\xc3\xa9", std::string(1025, 'k'),
  };
  // Keep something to be clobbered, so a wrongly accepted key has a target.
  ASSERT_TRUE(Ok(store_->Write("a", AsBytes("keep"))));
  for (const std::string& key : bad_keys) {
    SCOPED_TRACE(::testing::PrintToString(key));
    const StatusCode invalid = StatusCode::kInvalidArgument;
    EXPECT_EQ(CodeOf(ValidateStoreKey(key)), invalid);
    EXPECT_EQ(CodeOf(store_->Write(key, AsBytes("x"))), invalid);
    EXPECT_EQ(CodeOf(store_->WriteAtomic(key, AsBytes("x"))), invalid);
    EXPECT_EQ(CodeOf(store_->WriteIfAbsent(key, AsBytes("x"))), invalid);
    EXPECT_EQ(CodeOf(store_->Read(key)), invalid);
    EXPECT_EQ(CodeOf(store_->ReadRange(key, 0, 0)), invalid);
    EXPECT_EQ(CodeOf(store_->Size(key)), invalid);
    EXPECT_EQ(CodeOf(store_->Exists(key)), invalid);
    EXPECT_EQ(CodeOf(store_->Delete(key)), invalid);
  }
  EXPECT_THAT(ListOrDie(*store_, ""), ElementsAre("a"));
  EXPECT_EQ(ReadString(*store_, "a"), "keep");
}

TEST_P(StoreConformanceTest, WriteAtomicThenSync) {
  ASSERT_TRUE(Ok(store_->WriteAtomic("commit", AsBytes("v1"))));
  EXPECT_EQ(ReadString(*store_, "commit"), "v1");
  ASSERT_TRUE(Ok(store_->WriteAtomic("commit", AsBytes("v2"))));
  EXPECT_EQ(ReadString(*store_, "commit"), "v2");
  ASSERT_TRUE(Ok(store_->WriteAtomic("new/dir/commit", AsBytes("v3"))));
  EXPECT_EQ(ReadString(*store_, "new/dir/commit"), "v3");
  EXPECT_TRUE(Ok(store_->Sync()));
}

TEST_P(StoreConformanceTest, WriteIfAbsentCreatesOnlyOnce) {
  ASSERT_TRUE(Ok(store_->WriteIfAbsent("lock/LOCK", AsBytes("first"))));
  EXPECT_EQ(ReadString(*store_, "lock/LOCK"), "first");
  const Status again = store_->WriteIfAbsent("lock/LOCK", AsBytes("second"));
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists) << again;
  EXPECT_EQ(ReadString(*store_, "lock/LOCK"), "first");

  // An object made by Write() counts as existing too.
  ASSERT_TRUE(Ok(store_->Write("plain", AsBytes("by Write"))));
  EXPECT_EQ(CodeOf(store_->WriteIfAbsent("plain", AsBytes("x"))),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadString(*store_, "plain"), "by Write");

  // A deleted key can be created again; empty objects are objects.
  ASSERT_TRUE(Ok(store_->Delete("lock/LOCK")));
  ASSERT_TRUE(Ok(store_->WriteIfAbsent("lock/LOCK", AsBytes("third"))));
  EXPECT_EQ(ReadString(*store_, "lock/LOCK"), "third");
  ASSERT_TRUE(Ok(store_->WriteIfAbsent("empty", ByteSpan())));
  EXPECT_EQ(store_->Size("empty").value_or(1), 0u);
  EXPECT_EQ(CodeOf(store_->WriteIfAbsent("empty", AsBytes("x"))),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->Size("empty").value_or(1), 0u);

  EXPECT_THAT(ListOrDie(*store_, ""),
              ElementsAre("empty", "lock/LOCK", "plain"));
  EXPECT_TRUE(Ok(store_->Sync()));
}

TEST_P(StoreConformanceTest, SyncSucceeds) {
  EXPECT_TRUE(Ok(store_->Sync()));
  ASSERT_TRUE(Ok(store_->Write("a/b/c", AsBytes("1"))));
  ASSERT_TRUE(Ok(store_->Write("a/d", AsBytes("2"))));
  ASSERT_TRUE(Ok(store_->Write("e", AsBytes("3"))));
  EXPECT_TRUE(Ok(store_->Sync()));
  ASSERT_TRUE(Ok(store_->Delete("a/d")));
  EXPECT_TRUE(Ok(store_->Sync()));
  EXPECT_TRUE(Ok(store_->Sync()));  // Nothing left to do.
  EXPECT_THAT(ListOrDie(*store_, ""), ElementsAre("a/b/c", "e"));
}

TEST_P(StoreConformanceTest, ReopenByUrlSeesSameObjects) {
  ASSERT_TRUE(Ok(store_->Write("meta/info", AsBytes("first"))));
  ASSERT_TRUE(Ok(store_->Sync()));
  const std::string url = store_->url();
  Result<std::shared_ptr<Store>> reopened = OpenStore(url);
  ASSERT_TRUE(Ok(reopened));
  EXPECT_EQ((*reopened)->url(), url);
  EXPECT_EQ(ReadString(**reopened, "meta/info"), "first");
  // Writes through either handle are visible through the other.
  ASSERT_TRUE(Ok((*reopened)->Write("meta/more", AsBytes("second"))));
  EXPECT_EQ(ReadString(*store_, "meta/more"), "second");
  EXPECT_EQ(ListOrDie(**reopened, ""), ListOrDie(*store_, ""));
  ASSERT_TRUE(Ok((*reopened)->Sync()));
}

// Each object names its key and version and is otherwise a pattern derived
// from both, so a reader can tell a whole object from a torn or mixed one.
std::string VersionedObject(const std::string& key, uint32_t version) {
  const uint64_t seed = std::hash<std::string>()(key) ^ version;
  const std::string header = key + "|" + std::to_string(version) + "|";
  return header + Pattern(100 + seed % 20000, seed);
}

// Empty when `bytes` is a whole object of `key`; otherwise what is wrong.
std::string CheckVersionedObject(const std::string& key,
                                 std::string_view bytes) {
  const std::string head = key + "|";
  if (!bytes.starts_with(head)) return "wrong key header";
  const size_t bar = bytes.find('|', head.size());
  if (bar == std::string_view::npos) return "no version";
  const uint32_t version = static_cast<uint32_t>(
      std::stoul(std::string(bytes.substr(head.size(), bar - head.size()))));
  if (bytes != VersionedObject(key, version)) return "torn object";
  return "";
}

TEST_P(StoreConformanceTest, ConcurrentWritersAndReaders) {
  constexpr int kThreads = 8;
  constexpr int kKeysPerThread = 12;
  constexpr uint32_t kVersions = 3;
  std::atomic<int> failures{0};
  std::mutex first_failure_mu;
  std::string first_failure;
  auto fail = [&](const std::string& what) {
    if (failures.fetch_add(1) == 0) {
      std::lock_guard<std::mutex> lock(first_failure_mu);
      first_failure = what;
    }
  };
  auto key_of = [](int thread, int i) {
    return "t" + std::to_string(thread) + "/k" + std::to_string(i);
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint32_t version = 0; version < kVersions; ++version) {
        for (int i = 0; i < kKeysPerThread; ++i) {
          const std::string key = key_of(t, i);
          const std::string object = VersionedObject(key, version);
          const Status written = (i % 4 == 0)
                                     ? store_->WriteAtomic(key, AsBytes(object))
                                     : store_->Write(key, AsBytes(object));
          if (!written.ok()) fail(key + ": " + written.ToString());
          // Own writes are visible at once.
          Result<Buffer> own = store_->Read(key);
          if (!own.ok() || own->view() != object) fail(key + ": own read");

          // Another thread's key: absent, or one whole version.
          const std::string other = key_of((t + 1 + i) % kThreads, i);
          Result<Buffer> read = store_->Read(other);
          if (read.ok()) {
            const std::string problem =
                CheckVersionedObject(other, read->view());
            if (!problem.empty()) fail(other + ": " + problem);
          } else if (read.status().code() != StatusCode::kNotFound) {
            fail(other + ": " + read.status().ToString());
          }
          Result<Buffer> range = store_->ReadRange(other, 0, 4);
          if (!range.ok() && range.status().code() != StatusCode::kNotFound) {
            fail(other + ": range " + range.status().ToString());
          }
        }
        Result<std::vector<std::string>> keys = store_->List("");
        if (!keys.ok()) {
          fail("List: " + keys.status().ToString());
        } else if (!std::is_sorted(keys->begin(), keys->end())) {
          fail("List not sorted");
        }
      }
      if (Status synced = store_->Sync(); !synced.ok()) {
        fail("Sync: " + synced.ToString());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0) << first_failure;

  std::vector<std::string> expected;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kKeysPerThread; ++i) {
      const std::string key = key_of(t, i);
      expected.push_back(key);
      EXPECT_EQ(ReadString(*store_, key), VersionedObject(key, kVersions - 1));
    }
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(ListOrDie(*store_, ""), expected);
}

// Last writer wins on one contended key, and nobody ever sees a mix.
TEST_P(StoreConformanceTest, ConcurrentOverwritesOfOneKeyStayWhole) {
  constexpr int kWriters = 4;
  constexpr int kReaders = 4;
  constexpr uint32_t kWritesEach = 10;
  const std::string key = "shared/pointer";
  ASSERT_TRUE(Ok(store_->Write(key, AsBytes(VersionedObject(key, 0)))));
  std::atomic<int> failures{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (uint32_t i = 0; i < kWritesEach; ++i) {
        const std::string object =
            VersionedObject(key, 1 + w * kWritesEach + i);
        if (!store_->Write(key, AsBytes(object)).ok()) failures.fetch_add(1);
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      int reads = 0;
      while (!done.load() || reads < 10) {
        ++reads;
        Result<Buffer> read = store_->Read(key);
        if (!read.ok() || !CheckVersionedObject(key, read->view()).empty()) {
          failures.fetch_add(1);
        }
      }
    });
  }
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  done.store(true);
  for (size_t i = kWriters; i < threads.size(); ++i) threads[i].join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(CheckVersionedObject(key, ReadString(*store_, key)).empty());
  EXPECT_THAT(ListOrDie(*store_, ""), ElementsAre(key));
}

// Racing creators of one key: exactly one wins, the object is the winner's,
// and a loser (told AlreadyExists) can already read the whole object.
TEST_P(StoreConformanceTest, ConcurrentWriteIfAbsentHasOneWinner) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 25;
  auto key_of = [](int round) { return "race/" + std::to_string(round); };
  std::vector<std::vector<StatusCode>> codes(
      kRounds, std::vector<StatusCode>(kThreads, StatusCode::kInternal));
  std::atomic<int> failures{0};
  std::mutex first_failure_mu;
  std::string first_failure;
  auto fail = [&](const std::string& what) {
    if (failures.fetch_add(1) == 0) {
      std::lock_guard<std::mutex> lock(first_failure_mu);
      first_failure = what;
    }
  };
  // Every round starts all threads together, so they collide.
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        const std::string key = key_of(round);
        start.arrive_and_wait();
        const Status status =
            store_->WriteIfAbsent(key, AsBytes(VersionedObject(key, t)));
        codes[round][t] = status.code();
        if (!status.ok() && status.code() != StatusCode::kAlreadyExists) {
          fail(key + ": " + status.ToString());
        }
        Result<Buffer> read = store_->Read(key);
        if (!read.ok()) {
          fail(key + ": read after WriteIfAbsent: " + read.status().ToString());
        } else if (std::string problem =
                       CheckVersionedObject(key, read->view());
                   !problem.empty()) {
          fail(key + ": " + problem);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0) << first_failure;

  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::vector<StatusCode>& round_codes = codes[round];
    const auto winner =
        std::find(round_codes.begin(), round_codes.end(), StatusCode::kOk);
    ASSERT_NE(winner, round_codes.end());
    EXPECT_EQ(
        std::count(round_codes.begin(), round_codes.end(), StatusCode::kOk), 1);
    EXPECT_EQ(std::count(round_codes.begin(), round_codes.end(),
                         StatusCode::kAlreadyExists),
              kThreads - 1);
    const std::string key = key_of(round);
    EXPECT_TRUE(ReadString(*store_, key) ==
                VersionedObject(
                    key, static_cast<uint32_t>(winner - round_codes.begin())));
  }
  EXPECT_EQ(ListOrDie(*store_, "race/").size(), static_cast<size_t>(kRounds));
}

}  // namespace
}  // namespace shoal
