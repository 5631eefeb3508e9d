// The commands of the `shoal` CLI and what they share: each command registers
// itself as a CLI11 subcommand (one .cc file per command) and, when chosen on
// the command line, hands main() the work to run once parsing is over.
//
// Parsing errors (CLI11 exceptions, and CLI::ValidationError thrown by a
// command's own checks of option combinations) are usage errors: exit 2.
// Failures of the work itself come back as a Status: "shoal: <message>",
// exit 1. Running the work after parsing, rather than inside CLI11's
// callbacks, keeps CLI11's exceptions away from the format API calls.
//
// Thread-safety: none needed; the CLI is single-threaded.
#ifndef SHOAL_TOOLS_COMMANDS_H_
#define SHOAL_TOOLS_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"
#include "format/dataset.h"

namespace shoal::tools {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

/// The work of the chosen command: its exit code, or an error to report.
/// A command that finds a problem without failing (verify) returns 1.
using CommandRun = std::function<Result<int>()>;

/// Registers a command on `app`. When the command is chosen, parsing sets
/// `*run`; `run` must outlive parsing.
void AddIngestCommand(CLI::App& app, CommandRun* run);
/// `ingest images` (tools/ingest_images.cc), added by AddIngestCommand.
void AddIngestImagesCommand(CLI::App& ingest, CommandRun* run);
/// `ingest videos` (tools/ingest_videos.cc), added by AddIngestCommand.
void AddIngestVideosCommand(CLI::App& ingest, CommandRun* run);
void AddInfoCommand(CLI::App& app, CommandRun* run);
void AddGetCommand(CLI::App& app, CommandRun* run);
void AddVerifyCommand(CLI::App& app, CommandRun* run);
void AddBenchCommand(CLI::App& app, CommandRun* run);
void AddConfigCommand(CLI::App& app, CommandRun* run);
void AddCopyCommand(CLI::App& app, CommandRun* run);

// ---- Helpers shared by the commands (tools/cli_util.cc) ----

/// A usage line written out ("Usage: shoal ingest images [OPTIONS] DIR
/// DS"), for positionals CLI11 cannot describe: optional ones before a
/// required one, or ones a --config file may give instead.
class UsageFormatter : public CLI::Formatter {
 public:
  explicit UsageFormatter(std::string positionals)
      : positionals_(std::move(positionals)) {}
  std::string make_usage(const CLI::App*, std::string name) const override {
    return "Usage: " + name + " [OPTIONS] " + positionals_ + "\n";
  }

 private:
  std::string positionals_;
};

/// Opens the dataset at `url` read-only. The NotFound error says that there
/// is no dataset there, naming the URL.
Result<std::unique_ptr<Dataset>> OpenForReading(const std::string& url);

/// The tensor `name` of `dataset` (hidden ones too); the NotFound error
/// lists the visible tensors, so a typo is easy to fix.
Result<Tensor*> FindTensor(const Dataset& dataset, std::string_view name);

/// The ingest commands' closing lines: files ignored (not of the kind
/// ingested: "non-image file") and bad files skipped under --skip-bad.
void PrintIngestSkips(uint64_t ignored, std::string_view ignored_noun,
                      uint64_t skipped);

/// Checks that a numeric option is a whole number in [lo, hi], with a message
/// a person reads ("--batch: must be a whole number from 1 to 16777216, got
/// 0"); CLI11's own PositiveNumber prints DBL_MAX as the upper bound.
CLI::Validator WholeNumberIn(int64_t lo, int64_t hi);

/// "1 problem", "3 problems".
std::string Count(uint64_t n, std::string_view noun);
/// "47.0 MB": decimal units (1 MB = 10^6 bytes), matching MB/s.
std::string FormatBytes(uint64_t bytes);
/// raw / stored with two decimals, "-" when either is 0.
std::string FormatRatio(uint64_t raw, uint64_t stored);
/// Bytes per second in MB/s with one decimal.
std::string FormatRate(double bytes, double seconds);

/// Seconds since construction, from a monotonic clock.
class Stopwatch {
 public:
  Stopwatch();
  double seconds() const;

 private:
  int64_t start_ns_;
};

/// A one-line progress display on stderr, redrawn in place at most ten times
/// a second, and only when stderr is a terminal (so logs and pipes stay
/// clean). "ingest: 40960/60000 samples (68%) 123.4 MB/s".
class Progress {
 public:
  /// `what` starts the line ("ingest"), `unit` names the counted things.
  Progress(std::string what, std::string unit);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// `done` of `total` so far, and `bytes` processed for the rate (0 to
  /// leave the rate out).
  void Update(uint64_t done, uint64_t total, uint64_t bytes = 0);
  /// Erases the line, so that what follows starts on a clean line.
  void Finish();

 private:
  std::string what_;
  std::string unit_;
  bool enabled_;
  bool drawn_ = false;
  Stopwatch clock_;
  double last_draw_ = -1;
};

}  // namespace shoal::tools

#endif  // SHOAL_TOOLS_COMMANDS_H_
