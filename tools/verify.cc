// `shoal verify`: checks a dataset end to end (format/verify.h) and prints
// every problem found, one per line, then a summary. The exit status says
// whether the dataset is sound, so scripts can use it as a check.
#include "format/verify.h"

#include <cstdio>
#include <string>

#include "tools/commands.h"

namespace shoal::tools {
namespace {

struct VerifyCommandOptions {
  std::string dataset;
  bool decode = false;
  bool repair = false;
  bool quiet = false;
};

uint64_t CountOf(const VerifyReport& report, VerifyProblem::Kind kind) {
  uint64_t n = 0;
  for (const VerifyProblem& problem : report.problems) {
    n += problem.kind == kind ? 1 : 0;
  }
  return n;
}

Result<int> RunVerify(const VerifyCommandOptions& options) {
  // The file store creates a missing directory when opened, which a check
  // must not do; this also gives a clear message for a mistyped path.
  SHOAL_RETURN_IF_ERROR(OpenForReading(options.dataset).status());
  Progress progress("verify", "chunks");
  VerifyOptions verify_options;
  verify_options.decode_samples = options.decode;
  verify_options.repair = options.repair;
  if (!options.quiet) {
    verify_options.progress = [&progress](uint64_t done, uint64_t total) {
      progress.Update(done, total);
    };
  }
  SHOAL_ASSIGN_OR_RETURN(VerifyReport report,
                         VerifyDataset(options.dataset, verify_options));
  progress.Finish();
  if (!report.lock_message.empty()) {
    std::fprintf(stderr, "verify: %s\n", report.lock_message.c_str());
  }
  if (!report.commit_repair.empty()) {
    std::printf("verify: %s\n", report.commit_repair.c_str());
  }
  // Removed orphans are not in report.problems; what is listed remains.
  // Problems are what -q keeps: the exit status alone does not say what.
  for (const VerifyProblem& problem : report.problems) {
    std::printf("%s\n", problem.ToString().c_str());
  }
  if (options.quiet) return report.ok() ? kExitOk : kExitFailure;
  for (const std::string& key : report.foreign) {
    std::printf(
        "verify: %s is not a dataset object (its name is not one "
        "shoal gives); left alone\n",
        key.c_str());
  }
  if (options.repair) {
    std::printf("verify: removed %s\n",
                Count(report.orphans_removed, "orphan object").c_str());
    if (CountOf(report, VerifyProblem::Kind::kOrphan) > 0) {
      std::printf(
          "verify: orphans are removed only when nothing else is wrong, "
          "since other problems leave unsure which objects are in use\n");
    }
  }
  if (const uint64_t unreadable =
          CountOf(report, VerifyProblem::Kind::kUnreadable)) {
    std::printf(
        "verify: %s: the store failed to read, which says nothing about the "
        "data; verify again\n",
        Count(unreadable, "unreadable object").c_str());
  }
  const std::string outcome =
      report.ok() ? "OK" : Count(report.problems.size(), "problem");
  std::printf("verify: %llu chunks, %s, %llu samples checked: %s\n",
              static_cast<unsigned long long>(report.chunks),
              FormatBytes(report.bytes).c_str(),
              static_cast<unsigned long long>(report.samples), outcome.c_str());
  return report.ok() ? kExitOk : kExitFailure;
}

}  // namespace

void AddVerifyCommand(CLI::App& app, CommandRun* run) {
  auto options = std::make_shared<VerifyCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "verify", "Check a dataset end to end; exit 1 if a problem is found");
  cmd->footer(
      "Checks HEAD, metadata, chunk indexes, every chunk (checksums, "
      "decompression, sample sizes and shapes), the hidden shape tensors, "
      "the statistics, and objects that no commit references (orphans). "
      "Prints one line per problem (corrupt, missing, inconsistent, orphan, "
      "or unreadable: the store failed to read, not damage), then a summary. "
      "Exit status: 0 sound, "
      "1 problems found or verify failed, 2 usage error.");
  cmd->add_option("DS", options->dataset, "The dataset (path or URL)")
      ->required();
  cmd->add_flag("--decode", options->decode,
                "Also decompress every sample of tensors with sample "
                "compression");
  cmd->add_flag("--repair", options->repair,
                "Delete orphan objects and temporary files (left by an "
                "interrupted write; only objects named as the dataset names "
                "its own, others are listed and left alone) when no other "
                "problem is found, holding "
                "the dataset's write lock (refused while a writer runs); "
                "other problems are not repaired and still make verify exit 1");
  cmd->add_flag("-q,--quiet", options->quiet,
                "Print only the problems (no progress, no summary); the exit "
                "status tells the result");
  cmd->callback(
      [options, run] { *run = [options] { return RunVerify(*options); }; });
}

}  // namespace shoal::tools
