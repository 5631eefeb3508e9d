// Tests for format/lock.h: one writer at a time per dataset, on mem:// and
// file://. Other writers are real where that matters: forked processes that
// hold the lock, die, or race for it.
//
// LOCK objects that tests plant are written from format/FORMAT.md ("Write
// lock"), not with the library's encoder, so a test can lie in any field.
#include "format/lock.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <barrier>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/coding.h"
#include "tests/format/format_test_util.h"

namespace shoal {
namespace {

using format_test::FreshMemUrl;
using format_test::HasCode;
using format_test::Ok;
using format_test::TempDir;
using nlohmann::json;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

std::string HostName() {
  char name[256] = {};
  EXPECT_EQ(::gethostname(name, sizeof(name) - 1), 0);
  return name;
}

std::string BootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

// The pid of a process that has exited and been reaped (a zombie would still
// count as running).
pid_t DeadPid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  EXPECT_GT(pid, 0) << std::strerror(errno);
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  return pid;
}

// A child process that runs until the object is destroyed.
class LiveChild {
 public:
  LiveChild() {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(fds[1]);
      char byte;
      while (::read(fds[0], &byte, 1) < 0 && errno == EINTR) {
      }
      ::_exit(0);
    }
    ::close(fds[0]);
    stop_ = fds[1];
  }
  LiveChild(const LiveChild&) = delete;
  LiveChild& operator=(const LiveChild&) = delete;
  ~LiveChild() { Stop(); }

  pid_t pid() const { return pid_; }
  // Ends the child and reaps it.
  void Stop() {
    if (stop_ < 0) return;
    ::close(stop_);
    stop_ = -1;
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }

 private:
  pid_t pid_ = -1;
  int stop_ = -1;
};

std::string Json(const json& j) { return j.dump(); }

// The test's view of the store: the LOCK object as it is now.
std::string LockObject(const Store& store) {
  Result<Buffer> object = store.Read(kDatasetLockKey);
  return object.ok() ? std::string(object->view()) : std::string("<none>");
}

json LockJson(const Store& store) {
  return json::parse(LockObject(store), nullptr, /*allow_exceptions=*/false);
}

std::vector<std::string> Keys(const Store& store) {
  return store.List("").value_or({"<list failed>"});
}

enum class Scheme { kMem, kFile };

class LockTest : public ::testing::TestWithParam<Scheme> {
 protected:
  void SetUp() override {
    url_ = GetParam() == Scheme::kMem ? FreshMemUrl() : dir_.url();
    Result<std::shared_ptr<Store>> store = OpenStore(url_);
    ASSERT_TRUE(Ok(store));
    store_ = *store;
  }

  // Another handle on the same dataset, as a second writer would open it.
  std::shared_ptr<Store> Reopen() {
    Result<std::shared_ptr<Store>> store = OpenStore(url_);
    EXPECT_TRUE(Ok(store));
    return store.ok() ? *store : nullptr;
  }

  void PlantLock(std::string_view object) {
    ASSERT_TRUE(Ok(store_->Write(kDatasetLockKey, AsBytes(object))));
  }
  // Plants `object` as LOCK; returns the key a taker of it claims first
  // (format/FORMAT.md, "Write lock").
  std::string PlantLockAndNameItsClaim(const std::string& object) {
    PlantLock(object);
    return "LOCK.takeover-" +
           Hex64(Checksum64(AsBytes(object)) ^ uint64_t{object.size()});
  }

  TempDir dir_;
  std::string url_;
  std::shared_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, LockTest,
                         ::testing::Values(Scheme::kMem, Scheme::kFile),
                         [](const ::testing::TestParamInfo<Scheme>& info) {
                           return info.param == Scheme::kMem ? "Mem" : "File";
                         });

TEST_P(LockTest, AcquireReleaseReacquire) {
  std::string message = "stale text";
  auto lock = DatasetLock::Acquire(
      store_, {.command = "shoal ingest images a b"}, &message);
  ASSERT_TRUE(Ok(lock));
  EXPECT_EQ(message, "");
  const LockHolder& holder = (*lock)->holder();
  EXPECT_EQ(holder.host, HostName());
  EXPECT_EQ(holder.pid, ::getpid());
  EXPECT_THAT(holder.started,
              MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
                           "[0-9]{2}Z"));
  EXPECT_EQ(holder.command, "shoal ingest images a b");

  // The object is the documented JSON.
  const json object = LockJson(*store_);
  ASSERT_TRUE(object.is_object()) << LockObject(*store_);
  EXPECT_EQ(object.value("host", ""), HostName());
  EXPECT_EQ(object.value("pid", 0), ::getpid());
  EXPECT_EQ(object.value("started", ""), holder.started);
  EXPECT_EQ(object.value("command", ""), "shoal ingest images a b");
  Result<std::optional<LockHolder>> read = ReadDatasetLock(*store_);
  ASSERT_TRUE(Ok(read));
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ((*read)->ToString(), holder.ToString());

  ASSERT_TRUE(Ok((*lock)->Release()));
  EXPECT_FALSE(store_->Exists(kDatasetLockKey).value_or(true));
  EXPECT_TRUE(Ok((*lock)->Release()));  // Idempotent.
  read = ReadDatasetLock(*store_);
  ASSERT_TRUE(Ok(read));
  EXPECT_FALSE(read->has_value());

  auto again = DatasetLock::Acquire(store_);
  ASSERT_TRUE(Ok(again));
  EXPECT_TRUE(store_->Exists(kDatasetLockKey).value_or(false));
  again->reset();  // The destructor releases.
  EXPECT_FALSE(store_->Exists(kDatasetLockKey).value_or(true));
  EXPECT_THAT(Keys(*store_), ::testing::IsEmpty());
}

TEST_P(LockTest, SecondWriterIsRefusedWithTheHolderNamed) {
  auto first =
      DatasetLock::Acquire(store_, {.command = "shoal ingest idx x y /d"});
  ASSERT_TRUE(Ok(first));
  const std::string object = LockObject(*store_);

  // Same process, other handle: still refused, never taken over as stale.
  std::string message = "stale text";
  auto second = DatasetLock::Acquire(Reopen(), {.command = "other"}, &message);
  ASSERT_TRUE(HasCode(second, StatusCode::kFailedPrecondition));
  EXPECT_EQ(message, "");
  EXPECT_THAT(std::string(second.status().message()),
              AllOf(HasSubstr(url_), HasSubstr(HostName()),
                    HasSubstr("pid " + std::to_string(::getpid())),
                    HasSubstr("shoal ingest idx x y /d"),
                    HasSubstr((*first)->holder().started),
                    HasSubstr("one writer at a time")));
  EXPECT_EQ(LockObject(*store_), object);
  // Also with the very same handle, and again.
  EXPECT_TRUE(
      HasCode(DatasetLock::Acquire(store_), StatusCode::kFailedPrecondition));
  EXPECT_EQ(LockObject(*store_), object);

  ASSERT_TRUE(Ok((*first)->Release()));
  EXPECT_TRUE(Ok(DatasetLock::Acquire(store_)));
}

TEST_P(LockTest, StaleLockOfADeadProcessIsTakenOver) {
  const pid_t dead = DeadPid();
  PlantLock(Json({{"host", HostName()},
                  {"pid", dead},
                  {"started", "2020-01-02T03:04:05Z"},
                  {"command", "shoal ingest images crashed"}}));
  std::string message;
  auto lock = DatasetLock::Acquire(store_, {.command = "resumed"}, &message);
  ASSERT_TRUE(Ok(lock));
  EXPECT_THAT(
      message,
      AllOf(HasSubstr("took over"), HasSubstr("pid " + std::to_string(dead)),
            HasSubstr(HostName()), HasSubstr("shoal ingest images crashed"),
            HasSubstr("gone")));
  EXPECT_EQ(LockJson(*store_).value("pid", 0), ::getpid());
  EXPECT_EQ(LockJson(*store_).value("command", ""), "resumed");
  // The takeover leaves nothing behind.
  EXPECT_THAT(Keys(*store_), ElementsAre("LOCK"));
}

TEST_P(LockTest, LockFromAnotherHostIsNotTakenOver) {
  // Neither a pid that is alive here nor one that is dead here says anything
  // about a process on another machine.
  for (const pid_t pid : {::getpid(), DeadPid()}) {
    SCOPED_TRACE(pid);
    const std::string object = Json({{"host", "other-host.example"},
                                     {"pid", pid},
                                     {"started", "2024-05-01T12:34:56Z"},
                                     {"command", "shoal ingest videos v /d"}});
    PlantLock(object);
    std::string message;
    auto lock = DatasetLock::Acquire(store_, {}, &message);
    ASSERT_TRUE(HasCode(lock, StatusCode::kFailedPrecondition));
    EXPECT_EQ(message, "");
    EXPECT_THAT(std::string(lock.status().message()),
                AllOf(HasSubstr("other-host.example"),
                      HasSubstr("pid " + std::to_string(pid)),
                      HasSubstr("2024-05-01T12:34:56Z"),
                      HasSubstr("shoal ingest videos v /d"),
                      HasSubstr("another machine"),
                      HasSubstr("--break-lock if you are sure it is not "
                                "running")));
    EXPECT_EQ(LockObject(*store_), object);
  }
}

TEST_P(LockTest, LockOfALiveProcessHereIsNotTakenOver) {
  LiveChild child;
  const std::string object = Json({{"host", HostName()},
                                   {"pid", child.pid()},
                                   {"started", "2024-05-01T12:34:56Z"},
                                   {"command", "busy"}});
  PlantLock(object);
  auto refused = DatasetLock::Acquire(store_);
  ASSERT_TRUE(HasCode(refused, StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(refused.status().message()),
              AllOf(HasSubstr("pid " + std::to_string(child.pid())),
                    HasSubstr("still running"), HasSubstr("--break-lock")));
  EXPECT_EQ(LockObject(*store_), object);

  child.Stop();
  std::string message;
  EXPECT_TRUE(Ok(DatasetLock::Acquire(store_, {}, &message)));
  EXPECT_THAT(message, HasSubstr("took over"));
}

TEST_P(LockTest, PidNowUsedByALaterProcessIsTakenOver) {
  const std::string boot_id = BootId();
  if (boot_id.empty()) GTEST_SKIP() << "no /proc boot id";
  // A live pid on this machine and boot, but the lock's process started at
  // another time: the pid was reused.
  LiveChild child;
  PlantLock(Json({{"host", HostName()},
                  {"pid", child.pid()},
                  {"started", "2024-05-01T12:34:56Z"},
                  {"boot_id", boot_id},
                  {"start_ticks", 1},
                  {"command", "long gone"}}));
  std::string message;
  auto lock = DatasetLock::Acquire(store_, {}, &message);
  ASSERT_TRUE(Ok(lock));
  EXPECT_THAT(message, AllOf(HasSubstr("took over"), HasSubstr("long gone"),
                             HasSubstr("started later")));
}

TEST_P(LockTest, LockFromBeforeARestartIsTakenOver) {
  const std::string boot_id = BootId();
  if (boot_id.empty()) GTEST_SKIP() << "no /proc boot id";
  // pid 1 runs, but in this boot it cannot be the lock's process.
  PlantLock(Json({{"host", HostName()},
                  {"pid", 1},
                  {"started", "2001-01-01T00:00:00Z"},
                  {"boot_id", "00000000-0000-0000-0000-000000000000"},
                  {"command", "before the restart"}}));
  std::string message;
  ASSERT_TRUE(Ok(DatasetLock::Acquire(store_, {}, &message)));
  EXPECT_THAT(message, AllOf(HasSubstr("took over"), HasSubstr("restarted")));
}

TEST_P(LockTest, OtherBootAfterThisOneIsAnotherMachine) {
  const std::string boot_id = BootId();
  if (boot_id.empty()) GTEST_SKIP() << "no /proc boot id";
  // Same host name, another boot id, taken after this machine booted: a
  // second machine of the same name, whose processes cannot be seen.
  const std::string object = Json({{"host", HostName()},
                                   {"pid", DeadPid()},
                                   {"started", "2999-01-01T00:00:00Z"},
                                   {"boot_id", "other-boot"},
                                   {"command", "twin"}});
  PlantLock(object);
  auto lock = DatasetLock::Acquire(store_);
  ASSERT_TRUE(HasCode(lock, StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(lock.status().message()),
              HasSubstr("another machine"));
  EXPECT_EQ(LockObject(*store_), object);
}

TEST_P(LockTest, OtherPidNamespaceIsNotJudged) {
  char own[128];
  if (::readlink("/proc/self/ns/pid", own, sizeof(own)) <= 0) {
    GTEST_SKIP() << "no /proc pid namespace";
  }
  // Another container with the same host name: its pids are not ours.
  const std::string object = Json({{"host", HostName()},
                                   {"pid", DeadPid()},
                                   {"pid_ns", "pid:[1]"},
                                   {"command", "in a container"}});
  PlantLock(object);
  EXPECT_TRUE(
      HasCode(DatasetLock::Acquire(store_), StatusCode::kFailedPrecondition));
  EXPECT_EQ(LockObject(*store_), object);
}

TEST_P(LockTest, BreakLockTakesAnyLock) {
  PlantLock(Json({{"host", "other-host.example"},
                  {"pid", 4242},
                  {"started", "2024-05-01T12:34:56Z"},
                  {"command", "somewhere else"}}));
  std::string message;
  auto lock = DatasetLock::Acquire(
      store_, {.break_lock = true, .command = "breaker"}, &message);
  ASSERT_TRUE(Ok(lock));
  EXPECT_THAT(message,
              AllOf(HasSubstr("broke"), HasSubstr("other-host.example"),
                    HasSubstr("pid 4242"), HasSubstr("--break-lock")));
  EXPECT_EQ(LockJson(*store_).value("command", ""), "breaker");
  EXPECT_THAT(Keys(*store_), ElementsAre("LOCK"));
  ASSERT_TRUE(Ok((*lock)->Release()));

  // With nothing to break it simply locks, and says nothing.
  lock = DatasetLock::Acquire(store_, {.break_lock = true}, &message);
  ASSERT_TRUE(Ok(lock));
  EXPECT_EQ(message, "");
}

TEST_P(LockTest, BrokenHolderLearnsAtRelease) {
  auto first = DatasetLock::Acquire(store_, {.command = "first"});
  ASSERT_TRUE(Ok(first));
  auto second =
      DatasetLock::Acquire(store_, {.break_lock = true, .command = "second"});
  ASSERT_TRUE(Ok(second));
  const Status released = (*first)->Release();
  EXPECT_TRUE(HasCode(released, StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(released.message()),
              AllOf(HasSubstr("broken"), HasSubstr("'second'")));
  // The breaker's lock stays.
  EXPECT_EQ(LockJson(*store_).value("command", ""), "second");
  first->reset();
  EXPECT_EQ(LockJson(*store_).value("command", ""), "second");
  EXPECT_TRUE(Ok((*second)->Release()));
}

TEST_P(LockTest, MalformedLockIsHeldByAnUnknownWriter) {
  const std::vector<std::string> objects = {
      "",
      "not json {",
      "[1, 2]",
      Json({{"pid", 12}}),
      Json({{"host", 5}, {"pid", 12}}),
      Json({{"host", HostName()}}),
      Json({{"host", HostName()}, {"pid", "12"}}),
      Json({{"host", HostName()}, {"pid", -1}}),
      Json({{"host", HostName()}, {"pid", 0}}),
      Json({{"host", HostName()}, {"pid", int64_t{1} << 40}}),
      Json({{"host", HostName()}, {"pid", 1.5}}),
      Json({{"host", HostName()}, {"pid", DeadPid()}, {"command", 7}}),
      Json({{"host", HostName()}, {"pid", DeadPid()}, {"start_ticks", -3}}),
      std::string(100000, ' ') + Json({{"host", "h"}, {"pid", 1}}),
  };
  for (const std::string& object : objects) {
    SCOPED_TRACE(object.substr(0, 80));
    PlantLock(object);
    auto lock = DatasetLock::Acquire(store_);
    ASSERT_TRUE(HasCode(lock, StatusCode::kFailedPrecondition));
    const std::string error(lock.status().message());
    EXPECT_THAT(
        error, AllOf(HasSubstr("not a valid lock"), HasSubstr("unknown writer"),
                     HasSubstr("--break-lock")));
    EXPECT_LT(error.size(), 600u);
    EXPECT_EQ(LockObject(*store_), object);
    EXPECT_TRUE(HasCode(ReadDatasetLock(*store_), StatusCode::kCorruption));

    std::string message;
    auto broken = DatasetLock::Acquire(store_, {.break_lock = true}, &message);
    ASSERT_TRUE(Ok(broken));
    EXPECT_THAT(message, AllOf(HasSubstr("broke"), HasSubstr("unknown")));
    EXPECT_THAT(Keys(*store_), ElementsAre("LOCK"));
  }
}

TEST_P(LockTest, HostileFieldsArePrintedSafelyAndShort) {
  const std::string object =
      Json({{"host", "evil\x1b[2J\nhost"},
            {"pid", 77},
            {"started", std::string(5000, 's')},
            {"command", "rm -rf /\r" + std::string(30000, 'c')}});
  PlantLock(object);
  auto lock = DatasetLock::Acquire(store_);
  ASSERT_TRUE(HasCode(lock, StatusCode::kFailedPrecondition));
  const std::string error(lock.status().message());
  EXPECT_LT(error.size(), 1200u);
  EXPECT_THAT(error, AllOf(HasSubstr("evil\\x1b[2J\\x0ahost"),
                           HasSubstr("rm -rf /\\x0d"), HasSubstr("bytes)")));
  for (char c : error) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << static_cast<int>(c);
  }
  Result<std::optional<LockHolder>> read = ReadDatasetLock(*store_);
  ASSERT_TRUE(Ok(read));
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ((*read)->command.size(), 30009u);  // Kept whole, shown cut.
}

// A taker that died after claiming a stale lock (LOCK.takeover-<hash of the
// lock>, see format/FORMAT.md) on this host is passed over: the next taker
// claims the next generation and takes the lock over. Found by the soak
// test (a `shoal ingest` killed in the middle of a takeover left every
// later --resume refused until --break-lock).
TEST_P(LockTest, ClaimLeftByADeadTakerIsPassedOver) {
  const std::string object =
      Json({{"host", HostName()}, {"pid", DeadPid()}, {"command", "stale"}});
  const std::string claim = PlantLockAndNameItsClaim(object);
  const std::string dead_taker =
      Json({{"host", HostName()}, {"pid", DeadPid()}, {"command", "died"}});
  ASSERT_TRUE(Ok(store_->Write(claim, AsBytes(dead_taker))));
  // And one that died claiming the second generation.
  ASSERT_TRUE(Ok(store_->Write(claim + ".1", AsBytes(dead_taker))));
  std::string message;
  auto lock = DatasetLock::Acquire(store_, {}, &message);
  ASSERT_TRUE(Ok(lock));
  EXPECT_THAT(message, HasSubstr("took over"));
  EXPECT_THAT(Keys(*store_), ElementsAre("LOCK"));
}

// A claim whose taker may be alive (another host) blocks other takers of
// that lock, not --break-lock.
TEST_P(LockTest, ClaimOfATakerElsewhereNeedsBreakLock) {
  const std::string object =
      Json({{"host", HostName()}, {"pid", DeadPid()}, {"command", "stale"}});
  const std::string claim = PlantLockAndNameItsClaim(object);
  ASSERT_TRUE(
      Ok(store_->Write(claim, AsBytes(Json({{"host", "elsewhere"},
                                            {"pid", 1234},
                                            {"command", "taking over"}})))));
  auto lock = DatasetLock::Acquire(store_);
  ASSERT_TRUE(HasCode(lock, StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(lock.status().message()),
              AllOf(HasSubstr("being taken over"), HasSubstr("elsewhere"),
                    HasSubstr("--break-lock")));
  EXPECT_EQ(LockObject(*store_), object);

  std::string message;
  auto broken = DatasetLock::Acquire(store_, {.break_lock = true}, &message);
  ASSERT_TRUE(Ok(broken));
  EXPECT_THAT(message, HasSubstr("broke"));
  EXPECT_THAT(Keys(*store_), ElementsAre("LOCK"));
}

// Threads of one process racing for a free lock and for a stale one: one
// wins each round; the others are refused (the winner is this process).
TEST_P(LockTest, RacingThreadsGetOneLock) {
  constexpr int kThreads = 6;
  constexpr int kRounds = 40;
  const pid_t dead = DeadPid();
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const bool stale = round % 2 == 1;
    if (stale) {
      PlantLock(Json({{"host", HostName()}, {"pid", dead}, {"command", "x"}}));
    }
    std::vector<std::unique_ptr<DatasetLock>> locks(kThreads);
    std::vector<Status> refusals(kThreads);
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::shared_ptr<Store> store = Reopen();
        start.arrive_and_wait();
        auto lock = DatasetLock::Acquire(
            store, {.command = "thread " + std::to_string(t)});
        if (lock.ok()) {
          locks[t] = std::move(*lock);
        } else {
          refusals[t] = lock.status();
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    int winner = -1;
    for (int t = 0; t < kThreads; ++t) {
      if (locks[t] != nullptr) {
        EXPECT_EQ(winner, -1) << "threads " << winner << " and " << t;
        winner = t;
      } else {
        EXPECT_TRUE(HasCode(refusals[t], StatusCode::kFailedPrecondition));
      }
    }
    ASSERT_NE(winner, -1);
    EXPECT_EQ(LockJson(*store_).value("command", ""),
              "thread " + std::to_string(winner));
    EXPECT_THAT(Keys(*store_), ElementsAre("LOCK"));
    ASSERT_TRUE(Ok(locks[winner]->Release()));
  }
}

// ---------------------------------------------------------------------------
// Other processes (file:// only: a mem:// store lives in one process).

class LockProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::shared_ptr<Store>> store = OpenStore(dir_.url());
    ASSERT_TRUE(Ok(store));
    store_ = *store;
  }

  TempDir dir_;
  std::shared_ptr<Store> store_;
};

// Forked writers that each open the dataset and try to lock it at once. Each
// reports 'W' (won) or 'L' (refused) and holds what it got until released,
// so a loser cannot succeed merely by coming after the winner left.
class RacingWriters {
 public:
  RacingWriters(const std::string& url, int count) {
    int go[2], done[2];
    EXPECT_EQ(::pipe(go), 0);
    EXPECT_EQ(::pipe(done), 0);
    for (int i = 0; i < count; ++i) {
      int report[2];
      EXPECT_EQ(::pipe(report), 0);
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::close(go[1]);
        ::close(done[1]);
        ::close(report[0]);
        Run(url, i, go[0], done[0], report[1]);
      }
      ::close(report[1]);
      children_.push_back(pid);
      reports_.push_back(report[0]);
    }
    ::close(go[0]);
    ::close(done[0]);
    go_ = go[1];
    done_ = done[1];
  }

  RacingWriters(const RacingWriters&) = delete;
  RacingWriters& operator=(const RacingWriters&) = delete;
  // A test that failed halfway still ends and reaps its children.
  ~RacingWriters() {
    if (go_ >= 0) ::close(go_);
    if (done_ >= 0) static_cast<void>(Finish());
  }

  /// Starts them all; returns each one's report.
  std::string Race() {
    ::close(std::exchange(go_, -1));
    std::string reports;
    for (int fd : reports_) {
      char byte = '?';
      while (::read(fd, &byte, 1) < 0 && errno == EINTR) {
      }
      ::close(fd);
      reports += byte;
    }
    return reports;
  }

  /// Lets them release and exit; true when all exited cleanly.
  bool Finish() {
    ::close(std::exchange(done_, -1));
    bool clean = true;
    for (pid_t pid : children_) {
      int status = 0;
      clean = ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0 && clean;
    }
    return clean;
  }

 private:
  [[noreturn]] static void Run(const std::string& url, int i, int go, int done,
                               int report) {
    char byte;
    while (::read(go, &byte, 1) < 0 && errno == EINTR) {
    }
    Result<std::shared_ptr<Store>> store = OpenStore(url);
    if (!store.ok()) ::_exit(3);
    auto lock = DatasetLock::Acquire(
        *store, {.command = "writer " + std::to_string(i)});
    const char result =
        lock.ok()                                                 ? 'W'
        : lock.status().code() == StatusCode::kFailedPrecondition ? 'L'
                                                                  : 'E';
    if (::write(report, &result, 1) != 1) ::_exit(4);
    while (::read(done, &byte, 1) < 0 && errno == EINTR) {
    }
    if (lock.ok() && !(*lock)->Release().ok()) ::_exit(5);
    ::_exit(0);
  }

  std::vector<pid_t> children_;
  std::vector<int> reports_;
  int go_ = -1;
  int done_ = -1;
};

TEST_F(LockProcessTest, RacingProcessesGetOneLock) {
  constexpr int kWriters = 3;
  const pid_t dead = DeadPid();
  for (int round = 0; round < 16; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    // Odd rounds race to take over a dead writer's lock.
    if (round % 2 == 1) {
      ASSERT_TRUE(Ok(store_->Write(
          kDatasetLockKey,
          AsBytes(Json(
              {{"host", HostName()}, {"pid", dead}, {"command", "dead"}})))));
    }
    RacingWriters writers(dir_.url(), kWriters);
    const std::string reports = writers.Race();
    EXPECT_EQ(std::count(reports.begin(), reports.end(), 'W'), 1) << reports;
    EXPECT_EQ(std::count(reports.begin(), reports.end(), 'L'), kWriters - 1)
        << reports;
    const size_t winner = reports.find('W');
    if (winner != std::string::npos) {
      EXPECT_EQ(LockJson(*store_).value("command", ""),
                "writer " + std::to_string(winner));
    }
    EXPECT_THAT(Keys(*store_), ElementsAre("LOCK"));
    EXPECT_TRUE(writers.Finish());
    EXPECT_THAT(Keys(*store_), ::testing::IsEmpty());
  }
}

TEST_F(LockProcessTest, LockOfALiveWriterProcessHolds) {
  // A child that really holds the lock, then dies without releasing it.
  int ready[2], stop[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(stop), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    ::close(stop[1]);
    Result<std::shared_ptr<Store>> store = OpenStore(dir_.url());
    if (!store.ok()) ::_exit(3);
    auto lock = DatasetLock::Acquire(*store, {.command = "child writer"});
    const char result = lock.ok() ? 'W' : 'L';
    if (::write(ready[1], &result, 1) != 1) ::_exit(4);
    char byte;
    while (::read(stop[0], &byte, 1) < 0 && errno == EINTR) {
    }
    ::_exit(0);  // Killed, as far as the lock knows: no release.
  }
  ::close(ready[1]);
  ::close(stop[0]);
  char result = '?';
  ASSERT_EQ(::read(ready[0], &result, 1), 1);
  ASSERT_EQ(result, 'W');

  auto refused = DatasetLock::Acquire(store_);
  ASSERT_TRUE(HasCode(refused, StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(refused.status().message()),
              AllOf(HasSubstr("pid " + std::to_string(child)),
                    HasSubstr("child writer"), HasSubstr("still running"),
                    Not(HasSubstr("this process"))));

  // The child's own record, with its start time altered: the same pid now
  // looks like a later process, so the lock is stale.
  json record = LockJson(*store_);
  if (record.contains("start_ticks")) {
    const std::string original = LockObject(*store_);
    record["start_ticks"] = record["start_ticks"].get<uint64_t>() + 1;
    ASSERT_TRUE(Ok(store_->Write(kDatasetLockKey, AsBytes(record.dump()))));
    std::string message;
    auto taken = DatasetLock::Acquire(store_, {}, &message);
    ASSERT_TRUE(Ok(taken));
    EXPECT_THAT(message, HasSubstr("started later"));
    ASSERT_TRUE(Ok((*taken)->Release()));
    ASSERT_TRUE(Ok(store_->Write(kDatasetLockKey, AsBytes(original))));
  }

  ::close(stop[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  std::string message;
  auto taken = DatasetLock::Acquire(store_, {}, &message);
  ASSERT_TRUE(Ok(taken));
  EXPECT_THAT(message, AllOf(HasSubstr("took over"), HasSubstr("child writer"),
                             HasSubstr("gone")));
}

}  // namespace
}  // namespace shoal
