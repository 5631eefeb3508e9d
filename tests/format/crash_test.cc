// Crash consistency: a child process (format_crash_writer) appends rows to a
// file:// dataset and commits every k rows; the test kills it with SIGKILL
// after a random delay and checks that what is on disk is the last commit,
// whole:
//  - Dataset::Open succeeds and holds exactly the rows of a commit the child
//    reported, or of the one commit it may have finished after its last
//    report;
//  - every sample equals the formula of crash_rows.h;
//  - VerifyDataset finds nothing but orphans; repair removes them all and a
//    second verify is clean;
//  - the dataset accepts more rows afterwards and still verifies clean.
// Killing during the very first Create leaves no dataset or an empty one.
//
// The regular binary runs a few dozen trials; the soak binary (built with
// SHOAL_CRASH_SOAK) runs SHOAL_CRASH_TRIALS of them (default 500).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/random.h"
#include "format/dataset.h"
#include "format/verify.h"
#include "tests/format/crash_rows.h"
#include "tests/format/format_test_util.h"

namespace shoal {
namespace {

using format_test::HasCode;
using format_test::Ok;
using format_test::TempDir;
using Kind = VerifyProblem::Kind;

struct ChildRun {
  std::vector<std::string> reports;  // lines the child printed
  int wait_status = 0;
};

// Runs the writer with `args`, kills it after `delay` (or as soon as it has
// reported `stop_after` lines, when that is not 0), and returns every line
// it reported before dying.
ChildRun RunAndKill(const std::vector<std::string>& args,
                    std::chrono::milliseconds delay, size_t stop_after = 0) {
  ChildRun run;
  int fds[2];
  if (::pipe(fds) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return run;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return run;
  }
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    std::vector<char*> argv;
    static std::string path = SHOAL_CRASH_WRITER;
    argv.push_back(path.data());
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(path.c_str(), argv.data());
    std::_Exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  const auto deadline = std::chrono::steady_clock::now() + delay;
  bool eof = false;
  while (!eof) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n <= 0) {
      eof = true;
    } else {
      out.append(buf, n);
      if (stop_after != 0 && static_cast<size_t>(std::count(
                                 out.begin(), out.end(), '\n')) >= stop_after) {
        break;
      }
    }
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &run.wait_status, 0);
  // What the child wrote before the kill is still in the pipe.
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, n);
  ::close(fds[0]);
  size_t start = 0;
  for (size_t nl; (nl = out.find('\n', start)) != std::string::npos;
       start = nl + 1) {
    run.reports.push_back(out.substr(start, nl - start));
  }
  if (WIFEXITED(run.wait_status)) {
    ADD_FAILURE() << "the writer exited by itself with status "
                  << WEXITSTATUS(run.wait_status) << " (see its stderr above)";
  }
  return run;
}

// Checks all rows [0, n) of an open dataset against the formula.
void CheckRows(const Dataset& ds, uint64_t n) {
  if (n == 0) return;
  for (int k = 0; k < 2; ++k) {
    auto t = ds.tensor(k == 0 ? "a" : "b");
    ASSERT_TRUE(Ok(t));
    ASSERT_EQ((*t)->size(), n);
    auto rows = (*t)->ReadRange(0, n);
    ASSERT_TRUE(Ok(rows));
    for (uint64_t i = 0; i < n; ++i) {
      const Sample& s = (*rows)[i];
      const Shape want_shape =
          k == 0 ? crash_rows::ShapeA(i) : crash_rows::ShapeB(i);
      const auto want = crash_rows::Bytes(k, i);
      ASSERT_EQ(s.shape, want_shape) << "tensor " << k << " row " << i;
      ASSERT_EQ(s.data.size(), want.size()) << "tensor " << k << " row " << i;
      ASSERT_TRUE(want.empty() ||
                  std::memcmp(s.data.data(), want.data(), want.size()) == 0)
          << "tensor " << k << " row " << i;
    }
  }
}

std::string Problems(const VerifyReport& report) {
  std::string out;
  for (const auto& p : report.problems) out += "  " + p.ToString() + "\n";
  return out;
}

// After a crash: only orphans; repair removes exactly them; then clean.
// Returns the number of orphans.
uint64_t VerifyRepairVerify(const std::string& url) {
  auto report = VerifyDataset(url);
  EXPECT_TRUE(Ok(report));
  if (!report.ok()) return 0;
  uint64_t orphans = 0;
  for (const auto& p : report->problems) {
    EXPECT_EQ(p.kind, Kind::kOrphan) << p.ToString();
    orphans += p.kind == Kind::kOrphan;
  }
  if (orphans != report->problems.size()) return orphans;
  auto repaired = VerifyDataset(url, {.repair = true});
  EXPECT_TRUE(Ok(repaired));
  if (!repaired.ok()) return orphans;
  EXPECT_EQ(repaired->orphans_removed, orphans);
  EXPECT_TRUE(repaired->ok()) << Problems(*repaired);
  auto again = VerifyDataset(url, {.decode_samples = true});
  EXPECT_TRUE(Ok(again));
  if (again.ok()) {
    EXPECT_TRUE(again->ok()) << Problems(*again);
  }
  return orphans;
}

// Appends `extra` rows after `n`, commits, and checks everything.
void AppendMore(const std::string& url, uint64_t n, uint64_t extra) {
  {
    auto ds = Dataset::Open(url);
    ASSERT_TRUE(Ok(ds));
    if ((*ds)->tensors().empty()) {
      ASSERT_EQ(n, 0u);
      ASSERT_TRUE(Ok((*ds)->CreateTensor(crash_rows::SpecA())));
      ASSERT_TRUE(Ok((*ds)->CreateTensor(crash_rows::SpecB())));
    }
    for (uint64_t i = n; i < n + extra; ++i) {
      const auto a = crash_rows::Bytes(0, i), b = crash_rows::Bytes(1, i);
      const Dataset::RowValue row[] = {
          {"a", crash_rows::ShapeA(i), {a.data(), a.size()}},
          {"b", crash_rows::ShapeB(i), {b.data(), b.size()}}};
      ASSERT_TRUE(Ok((*ds)->Append(row)));
    }
    ASSERT_TRUE(Ok((*ds)->Close()));
  }
  auto ds = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(Ok(ds));
  CheckRows(**ds, n + extra);
  auto report = VerifyDataset(url, {.decode_samples = true});
  ASSERT_TRUE(Ok(report));
  EXPECT_TRUE(report->ok()) << Problems(*report);
}

struct TrialResult {
  uint64_t committed = 0;
  size_t reports = 0;
  bool unreported_commit = false;  // committed after its last report
  uint64_t orphans = 0;
};

// How long creating a dataset and its first commit take here, in ms: kills
// start after twice that (the child also starts a process), so that they land
// while rows are being written however slow this machine's fsync is today.
int64_t FirstCommitMs() {
  static const int64_t ms = [] {
    TempDir dir;
    const auto start = std::chrono::steady_clock::now();
    auto ds = Dataset::Create(dir.url());
    if (ds.ok()) {
      (void)(*ds)->CreateTensor({.name = "t", .dtype = DType::kUInt8});
      (void)(*ds)->Flush();
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now() - start)
        .count();
  }();
  return ms;
}

// One trial of the writer killed mid-stream.
TrialResult RunWriteTrial(uint64_t seed) {
  TrialResult result;
  SplitMix64 rng(seed);
  const uint64_t k = 1 + rng.Bounded(20);
  const auto delay =
      std::chrono::milliseconds(2 * FirstCommitMs() + 5 + rng.Bounded(296));
  SCOPED_TRACE("seed " + std::to_string(seed) + ": commit every " +
               std::to_string(k) + " rows, kill after " +
               std::to_string(delay.count()) + " ms");
  TempDir dir;
  const std::string url = dir.url();
  const ChildRun run = RunAndKill({"write", url, std::to_string(k)}, delay);
  result.reports = run.reports.size();
  if (run.reports.empty()) {
    // Killed before Create reported: no dataset or an empty one.
    auto ds = Dataset::Open(url, {.read_only = true});
    if (ds.ok()) {
      EXPECT_TRUE((*ds)->tensors(true).empty());
      EXPECT_EQ((*ds)->commit(), 0u);
    } else {
      EXPECT_TRUE(HasCode(ds, StatusCode::kNotFound));
      EXPECT_TRUE(Ok(Dataset::Create(url)));
    }
  }
  const uint64_t last =
      run.reports.empty() ? 0 : std::stoull(run.reports.back());
  uint64_t n = 0;
  {
    auto ds = Dataset::Open(url, {.read_only = true});
    if (!ds.ok()) {
      ADD_FAILURE() << "Open after the kill: " << ds.status();
      return result;
    }
    n = (*ds)->max_len();
    EXPECT_EQ((*ds)->len(), n) << "the tensors of a row commit together";
    // The last report, or one more commit finished before the kill.
    EXPECT_TRUE(n == last || n == last + k)
        << n << " rows committed, last report " << last << ", commits every "
        << k;
    CheckRows(**ds, n);
  }
  result.committed = n;
  result.unreported_commit = n != last;
  result.orphans = VerifyRepairVerify(url);
  AppendMore(url, n, 1 + rng.Bounded(60));
  return result;
}

// The soak binary's tests get their own names, so that ctest can tell them
// (and their "soak" label) apart from the regular ones.
#ifdef SHOAL_CRASH_SOAK
#define CRASH_SUITE CrashSoakTest
#else
#define CRASH_SUITE CrashTest
#endif

int Trials(int regular) {
#ifdef SHOAL_CRASH_SOAK
  const char* env = std::getenv("SHOAL_CRASH_TRIALS");
  return env != nullptr ? std::atoi(env) : 500;
#else
  return regular;
#endif
}

TEST(CRASH_SUITE, KilledWriterLeavesTheLastCommit) {
  const int trials = Trials(24);
  uint64_t total_rows = 0, trials_with_commits = 0, unreported = 0,
           with_orphans = 0;
  for (int trial = 0; trial < trials; ++trial) {
    const uint64_t seed = 1000 + static_cast<uint64_t>(trial);
    const TrialResult r = RunWriteTrial(seed);
    total_rows += r.committed;
    trials_with_commits += r.committed > 0;
    unreported += r.unreported_commit;
    with_orphans += r.orphans > 0;
    if (HasFailure()) {
      ADD_FAILURE() << "stopping after the failed trial with seed " << seed;
      return;
    }
  }
  // The kills must land while data is being written, or the test proves
  // nothing.
  EXPECT_GT(trials_with_commits, static_cast<uint64_t>(trials) / 2);
  std::printf(
      "%d trials, %lu rows committed in total; %lu killed between a commit and "
      "its report, %lu left orphans\n",
      trials, static_cast<unsigned long>(total_rows),
      static_cast<unsigned long>(unreported),
      static_cast<unsigned long>(with_orphans));
}

TEST(CRASH_SUITE, KilledDuringCreate) {
  const int trials = Trials(30) / 10 + 20;
  // How long the writer takes to start and create (slow under sanitizers),
  // so that the kills spread over that time.
  int64_t create_ms = 0;
  {
    TempDir dir;
    const auto start = std::chrono::steady_clock::now();
    const ChildRun run =
        RunAndKill({"create", dir.url()}, std::chrono::seconds(30), 1);
    ASSERT_EQ(run.reports.size(), 1u);
    create_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - start)
                    .count();
  }
  SplitMix64 rng(7);
  int before = 0, after = 0;
  for (int trial = 0; trial < trials; ++trial) {
    const auto delay =
        std::chrono::milliseconds(rng.Bounded(create_ms * 5 / 4 + 2));
    SCOPED_TRACE("trial " + std::to_string(trial) + ", kill after " +
                 std::to_string(delay.count()) + " ms");
    TempDir dir;
    const std::string url = dir.url();
    const ChildRun run = RunAndKill({"create", url}, delay);
    const bool reported = !run.reports.empty();
    {
      auto ds = Dataset::Open(url, {.read_only = true});
      if (ds.ok()) {
        ++after;
        EXPECT_TRUE((*ds)->tensors(true).empty());
        EXPECT_EQ((*ds)->len(), 0u);
        EXPECT_EQ((*ds)->commit(), 0u);
        EXPECT_TRUE(HasCode(Dataset::Create(url), StatusCode::kAlreadyExists));
      } else {
        ++before;
        EXPECT_FALSE(reported) << "Create returned, yet there is no dataset";
        EXPECT_TRUE(HasCode(ds, StatusCode::kNotFound));
        // What the killed Create left must not stop a new one.
        EXPECT_TRUE(Ok(Dataset::Create(url)));
      }
    }
    VerifyRepairVerify(url);
    AppendMore(url, 0, 5);
    if (HasFailure()) return;
  }
  std::printf(
      "create takes %ld ms; killed before the dataset existed: %d, after: %d\n",
      static_cast<long>(create_ms), before, after);
}

}  // namespace
}  // namespace shoal
