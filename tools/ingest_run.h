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
#include <string>

#include "base/result.h"
#include "loader/ingestor.h"
#include "loader/source.h"

namespace shoal::tools {

struct IngestFlags {
  bool overwrite = false;
  bool append = false;
  bool resume = false;
  bool skip_bad = false;
  uint64_t memory_budget = 256ull << 20;
  std::string workers;
  uint64_t commit_every_rows = 0;
  double commit_every_seconds = 10;
  bool break_lock = false;
  bool verbose = false;
  std::string profile;
  bool json = false;
};

/// The command line as typed (set by main), for the write lock's holder
/// and the --resume hint.
std::string& CommandLine();

void AddIngestFlags(CLI::App& cmd, IngestFlags& flags);
/// InvalidArgument for conflicting modes or a bad --workers.
Result<IngestOptions> IngestOptionsFrom(const IngestFlags& flags);
/// Ingests `source` into `dataset`; `noun` counts the records ("images").
/// Exit 0, or 130 when a signal stopped it (what was done is committed).
Result<int> RunIngest(Source& source, const std::string& dataset,
                      const IngestFlags& flags, const std::string& noun);

}  // namespace shoal::tools

#endif  // SHOAL_TOOLS_INGEST_RUN_H_
