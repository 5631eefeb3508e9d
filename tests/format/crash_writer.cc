// The writer that tests/format/crash_test.cc kills with SIGKILL.
//
//   format_crash_writer create URL
//     Creates an empty dataset, prints "created", then waits to be killed.
//   format_crash_writer write URL K
//     Creates a dataset with tensors "a" and "b" and appends rows (see
//     crash_rows.h) forever, committing every K rows; after each successful
//     Flush it prints the number of committed rows. Every 7th commit it
//     closes and reopens the dataset, so appends resume after a reopen too.
//
// Reports go to stdout with one write(2) each, so that what the parent reads
// after the kill is exactly what was reported before it. Exit status 2 means
// a call failed (the message is on stderr).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "format/dataset.h"
#include "tests/format/crash_rows.h"

namespace shoal {
namespace {

void Report(const std::string& line) {
  const std::string out = line + "\n";
  if (::write(STDOUT_FILENO, out.data(), out.size()) !=
      static_cast<ssize_t>(out.size())) {
    std::_Exit(3);
  }
}

[[noreturn]] void Fail(const Status& status, const char* what) {
  std::fprintf(stderr, "crash_writer: %s: %s\n", what,
               status.ToString().c_str());
  std::_Exit(2);
}

[[noreturn]] void WaitForTheKill() {
  while (true) ::pause();
}

[[noreturn]] void Create(const std::string& url) {
  auto ds = Dataset::Create(url);
  if (!ds.ok()) Fail(ds.status(), "create");
  Report("created");
  WaitForTheKill();
}

[[noreturn]] void Write(const std::string& url, uint64_t k) {
  auto created = Dataset::Create(url);
  if (!created.ok()) Fail(created.status(), "create");
  std::unique_ptr<Dataset> ds = std::move(*created);
  Report("0");
  for (const TensorSpec& spec : {crash_rows::SpecA(), crash_rows::SpecB()}) {
    auto t = ds->CreateTensor(spec);
    if (!t.ok()) Fail(t.status(), "create tensor");
  }
  uint64_t commits = 0;
  for (uint64_t i = 0; i < 1000000; ++i) {
    const auto a = crash_rows::Bytes(0, i), b = crash_rows::Bytes(1, i);
    const Dataset::RowValue row[] = {
        {"a", crash_rows::ShapeA(i), {a.data(), a.size()}},
        {"b", crash_rows::ShapeB(i), {b.data(), b.size()}}};
    Status s = ds->Append(row);
    if (!s.ok()) Fail(s, "append");
    if ((i + 1) % k != 0) continue;
    s = ds->Flush();
    if (!s.ok()) Fail(s, "flush");
    Report(std::to_string(i + 1));
    if (++commits % 7 == 0) {
      s = ds->Close();
      if (!s.ok()) Fail(s, "close");
      ds.reset();
      auto opened = Dataset::Open(url);
      if (!opened.ok()) Fail(opened.status(), "reopen");
      ds = std::move(*opened);
    }
  }
  WaitForTheKill();
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "create") shoal::Create(argv[2]);
  if (argc == 4 && std::string(argv[1]) == "write") {
    shoal::Write(argv[2], std::strtoull(argv[3], nullptr, 10));
  }
  std::fprintf(stderr, "usage: %s create URL | write URL K\n", argv[0]);
  return 64;
}
