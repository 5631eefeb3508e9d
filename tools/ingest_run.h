// The flags every `shoal ingest` subcommand shares and the runner that
// takes a Source through shoal::Ingest (loader/ingestor.h) with a progress
// line, Ctrl-C handling (the first stops with a commit, a second at once)
// and a closing summary (or --json).
//
// Thread-safety: the CLI is single-threaded; RunIngest installs SIGINT and
// SIGTERM handlers while it runs.
#ifndef SHOAL_TOOLS_INGEST_RUN_H_
#define SHOAL_TOOLS_INGEST_RUN_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "loader/config.h"
#include "loader/ingestor.h"
#include "loader/source.h"
#include "tools/commands.h"
#include "tools/config_flags.h"

namespace shoal::tools {

/// What an ingest command holds: the flags that set job keys (with
/// --config, --set, --print-config) and those that are the CLI's own.
struct IngestCommand {
  ConfigFlags flags{IngestDefaults()};
  bool break_lock = false;
  bool verbose = false;
  std::string profile;
  bool json = false;
  /// Positionals: the input(s), then the dataset (when given, they override
  /// the job file's ingest.source.paths and ingest.dataset).
  std::vector<std::string> positionals;

  static JobConfig IngestDefaults() {
    JobConfig job;
    job.has_ingest = true;
    return job;
  }
};

/// The command line as typed (set by main), for the write lock's holder
/// and the --resume hint.
std::string& CommandLine();

/// A folder source's subcommand of `ingest` ("images", "videos"): DIR and
/// DS as positionals of `command` (optional with --config).
CLI::App* AddFolderIngestCommand(CLI::App& ingest, const std::string& name,
                                 const std::string& description,
                                 IngestCommand& command);
/// The flags every ingest command has: mode, --skip-bad, memory, workers,
/// commits, --chunk-bytes, the lock, output and the job options.
void AddIngestFlags(CLI::App& cmd, IngestCommand& command);
/// In a command's callback: builds the job (usage errors, exit 2, for a bad
/// file or flag, and `check`'s complaints) with `kind` and the positionals,
/// then sets `*run` to ingest it (or to print it, --print-config).
void SetIngestRun(const std::shared_ptr<IngestCommand>& command,
                  const std::string& kind, CommandRun* run,
                  const std::function<void(const JobConfig&)>& check = {});
/// Ingests the job's source into its dataset. Exit 0, or 130 when a signal
/// stopped it (what was done is committed).
Result<int> RunIngestJob(const JobConfig& job, const IngestCommand& command);

}  // namespace shoal::tools

#endif  // SHOAL_TOOLS_INGEST_RUN_H_
