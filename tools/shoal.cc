// main() of the `shoal` command-line tool: builds the command parser from
// the commands in tools/*.cc, parses, runs the chosen command and turns its
// outcome into an exit status (0 ok, 1 failure or problems found, 2 usage
// error). No exception leaves main().
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include "base/memory.h"
#include "tools/commands.h"
#include "tools/ingest_run.h"

namespace {

// Parse errors read like every other error of the tool.
std::string UsageMessage(const CLI::App* app, const CLI::Error& e) {
  return std::string("shoal: ") + e.what() +
         "\nRun 'shoal --help' or 'shoal COMMAND --help' for usage.\n";
}

// `word` as a POSIX shell reads it back: as it is when it holds only
// characters no shell treats specially, else in single quotes (a quote
// inside becomes '\'').
std::string ShellWord(const std::string& word) {
  const bool plain = !word.empty() &&
                     word.find_first_not_of(
                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789_./:=,@%+-") == std::string::npos;
  if (plain) return word;
  std::string out = "'";
  for (const char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

int Main(int argc, char** argv) {
  CLI::App app(
      "shoal: chunked columnar datasets for machine learning.\n"
      "A dataset (DS) is a directory path, a file:///ABS/PATH URL or a "
      "mem://NAME URL.",
      "shoal");
  app.set_version_flag("--version", "shoal " SHOAL_VERSION,
                       "Print the version and exit");
  app.require_subcommand(1);
  app.failure_message(UsageMessage);

  // Each word quoted for a POSIX shell where needed, so that the --resume
  // command printed after a stop can be pasted back as it is (a folder
  // named "my photos" stays one word).
  for (int i = 0; i < argc; ++i) {
    if (i > 0) shoal::tools::CommandLine() += ' ';
    shoal::tools::CommandLine() += ShellWord(argv[i]);
  }
  shoal::tools::CommandRun run;
  shoal::tools::AddIngestCommand(app, &run);
  shoal::tools::AddInfoCommand(app, &run);
  shoal::tools::AddGetCommand(app, &run);
  shoal::tools::AddVerifyCommand(app, &run);
  shoal::tools::AddBenchCommand(app, &run);
  shoal::tools::AddConfigCommand(app, &run);
  shoal::tools::AddCopyCommand(app, &run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, version or the error
    return code == 0 ? shoal::tools::kExitOk : shoal::tools::kExitUsage;
  }
  if (!run) return shoal::tools::kExitUsage;  // unreachable: one is required

  shoal::Result<int> result = run();
  if (!result.ok()) {
    std::fflush(stdout);
    std::fprintf(stderr, "shoal: %s\n", result.status().ToString().c_str());
    return shoal::tools::kExitFailure;
  }
  return *result;
}

}  // namespace

int main(int argc, char** argv) {
  // So that --memory-budget bounds peak RSS (see base/memory.h).
  shoal::LimitHeapRetention();
  // The format API returns Status; what could still throw is the standard
  // library (bad_alloc) or a JSON library misuse, i.e. a bug: report it like
  // any failure instead of letting std::terminate abort.
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shoal: internal error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "shoal: internal error: unknown exception\n");
  }
  return shoal::tools::kExitFailure;
}
