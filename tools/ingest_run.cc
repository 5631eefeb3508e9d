// What every `shoal ingest` subcommand shares: the flags of the write graph
// (mode, memory, workers, commits, lock, output) and running a Source
// through shoal::Ingest with a progress line, signals, and a summary.
#include "tools/ingest_run.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "tools/commands.h"

namespace shoal::tools {
namespace {

// Set by the first SIGINT/SIGTERM: the ingestion stops at its next safe
// point with a final commit. A second one ends the process at once (the
// dataset still opens at its last commit). Lock-free, so signal-safe.
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void OnSignal(int sig) {
  // A second signal stops at once, as the signal itself would: the parent
  // (a shell, a launcher) sees the process killed by it (a shell: exit 130
  // for SIGINT). Not _exit(): that would run a sanitizer's exit checks on
  // threads this abandons on purpose.
  if (g_stop.exchange(true)) {
    ::signal(sig, SIG_DFL);
    ::raise(sig);
    return;
  }
  constexpr char kMessage[] =
      "\nshoal: stopping after the current items (again to stop at once)\n";
  (void)!::write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
}

class SignalScope {
 public:
  SignalScope() {
    struct sigaction sa {};
    sa.sa_handler = OnSignal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalScope() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

std::string Eta(const IngestProgress& p) {
  if (p.input_bytes_total == 0 || p.input_bytes == 0 || p.seconds <= 0)
    return "";
  const double rate = static_cast<double>(p.input_bytes) / p.seconds;
  const double left =
      static_cast<double>(p.input_bytes_total -
                          std::min(p.input_bytes, p.input_bytes_total)) /
      rate;
  char out[32];
  if (left >= 3600) {
    std::snprintf(out, sizeof(out), " ETA %dh%02dm",
                  static_cast<int>(left) / 3600,
                  static_cast<int>(left) / 60 % 60);
  } else {
    std::snprintf(out, sizeof(out), " ETA %dm%02ds",
                  static_cast<int>(left) / 60, static_cast<int>(left) % 60);
  }
  return out;
}

std::string ProgressLine(const IngestProgress& p, const std::string& noun) {
  char line[256];
  const double rows_per_s = p.seconds > 0 ? p.rows / p.seconds : 0;
  std::string done = std::to_string(p.records_done);
  if (p.records_total > 0) {
    done += "/" + std::to_string(p.records_total) + " (" +
            std::to_string(100 * p.records_done / p.records_total) + "%)";
  }
  std::snprintf(
      line, sizeof(line), "ingest: %s %s, %.0f samples/s, %s%s, %s",
      done.c_str(), noun.c_str(), rows_per_s,
      FormatRate(static_cast<double>(p.input_bytes), p.seconds).c_str(),
      Eta(p).c_str(), p.workers.c_str());
  return line;
}

// The same command line with --resume instead of --overwrite/--append.
// `command` is CommandLine(): words separated by single spaces, each bare or
// in single quotes ('\'' for a quote inside), as main() writes them; a
// quoted word is one word whatever it holds, and is kept as written.
std::string ResumeCommand(const std::string& command) {
  std::string out;
  size_t start = 0;
  while (start < command.size()) {
    size_t end = start;
    bool quoted = false;
    while (end < command.size() && (quoted || command[end] != ' ')) {
      if (!quoted && command[end] == '\\') {
        end = std::min(end + 2, command.size());  // an escaped character
        continue;
      }
      if (command[end] == '\'') quoted = !quoted;
      ++end;
    }
    const std::string word = command.substr(start, end - start);
    if (word != "--overwrite" && word != "--append" && word != "--resume") {
      if (!out.empty()) out += ' ';
      out += word;
    }
    start = end + 1;
  }
  return out + " --resume";
}

nlohmann::json StageJson(const StageMetrics& s) {
  return {{"name", s.name},
          {"concurrency", s.concurrency},
          {"items", s.items},
          {"busy_seconds", s.busy_seconds},
          {"wait_input_seconds", s.wait_input_seconds},
          {"blocked_output_seconds", s.blocked_output_seconds}};
}

}  // namespace

std::string& CommandLine() {
  static std::string line;
  return line;
}

CLI::App* AddFolderIngestCommand(CLI::App& ingest, const std::string& name,
                                 const std::string& description,
                                 IngestCommand& command) {
  CLI::App* cmd = ingest.add_subcommand(name, description);
  cmd->formatter(
      std::make_shared<UsageFormatter>("DIR DS  (or --config FILE [DIR DS])"));
  cmd->add_option("inputs", command.positionals,
                  "The folder to read [sets ingest.source.paths], then the "
                  "dataset to create, a path or URL [sets ingest.dataset]")
      ->expected(2)
      ->option_text("DIR DS");
  return cmd;
}

void AddIngestFlags(CLI::App& cmd, IngestCommand& command) {
  ConfigFlags& f = command.flags;
  f.AddJobOptions(cmd);
  CLI::Option* overwrite = f.AddSwitch(
      cmd, "--overwrite", "ingest.mode", "overwrite",
      "Replace a dataset at DS; the old one stays whole until the new one's "
      "first commit");
  CLI::Option* append =
      f.AddSwitch(cmd, "--append", "ingest.mode", "append",
                  "Add the samples to the dataset at DS (same tensors)");
  CLI::Option* resume = f.AddSwitch(
      cmd, "--resume", "ingest.mode", "resume",
      "Continue an interrupted ingestion of the same input into DS from its "
      "last commit");
  // Usage errors (exit 2), found before anything is written.
  overwrite->excludes(append)->excludes(resume);
  append->excludes(resume);
  f.AddSwitch(cmd, "--skip-bad", "ingest.skip_bad", "true",
              "Skip inputs that cannot be read or decoded (each is named on "
              "stderr and counted) instead of stopping at the first");
  f.Add(cmd, "--chunk-bytes", "ingest.chunk_bytes");
  f.Add(cmd, "--memory-budget", "ingest.memory_budget");
  f.Add(cmd, "--workers", "ingest.workers");
  f.Add(cmd, "--commit-every", "ingest.commit_every");
  f.Add(cmd, "--commit-seconds", "ingest.commit_seconds");
  f.Add(cmd, "--rank", "ingest.rank");
  f.Add(cmd, "--world-size", "ingest.world_size");
  cmd.add_flag("--break-lock", command.break_lock,
               "Take the dataset's write lock even if another writer holds "
               "it (only when you know it is not running)");
  cmd.add_flag("-v,--verbose", command.verbose,
               "Print every change of a worker count, with its reason");
  cmd.add_option("--profile", command.profile,
                 "Write a JSON timeline of throughput, workers and memory "
                 "(draw it with scripts/plot-profile.py)");
  cmd.add_flag("--json", command.json, "Print the summary as JSON");
}

void SetIngestRun(const std::shared_ptr<IngestCommand>& command,
                  const std::string& kind, CommandRun* run,
                  const std::function<void(const JobConfig&)>& check) {
  std::vector<std::pair<std::string, std::string>> fixed;
  if (!kind.empty()) fixed.emplace_back("ingest.source.kind", kind);
  auto built = command->flags.Build(fixed);
  if (!built.ok()) {
    throw CLI::ValidationError(std::string(built.status().message()));
  }
  JobConfig job = *std::move(built);
  const std::vector<std::string>& p = command->positionals;
  if (!p.empty()) {
    job.ingest.paths.assign(p.begin(), p.end() - 1);
    job.ingest.dataset = p.back();
  }
  if (job.ingest.paths.empty() || job.ingest.dataset.empty()) {
    throw CLI::ValidationError(
        "give the input and the dataset (DS), or ingest.source.paths and "
        "ingest.dataset in the --config file");
  }
  if (job.ingest.world_size > 0 && job.ingest.rank >= job.ingest.world_size) {
    throw CLI::ValidationError("--rank " + std::to_string(job.ingest.rank) +
                               " is not below --world-size " +
                               std::to_string(job.ingest.world_size));
  }
  if (check) check(job);
  if (command->flags.print_config()) {
    *run = [job]() -> Result<int> {
      std::fputs(JobConfigToYaml(job).c_str(), stdout);
      return kExitOk;
    };
    return;
  }
  *run = [command, job] { return RunIngestJob(job, *command); };
}

Result<int> RunIngestJob(const JobConfig& job, const IngestCommand& command) {
  SHOAL_ASSIGN_OR_RETURN(SourceSpec spec, ToSourceSpec(job.ingest));
  SHOAL_ASSIGN_OR_RETURN(auto source, MakeSource(spec));
  SHOAL_ASSIGN_OR_RETURN(IngestOptions options, ToIngestOptions(job.ingest));
  options.break_lock = command.break_lock;
  options.profile_path = command.profile;
  options.command = CommandLine();
  const std::string& dataset = job.ingest.dataset;
  const std::string noun = job.ingest.kind == "idx"   ? "blocks"
                           : job.ingest.kind == "npy" ? "records"
                                                      : job.ingest.kind;
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  double last_plain = 0;
  bool drawn = false;
  options.progress = [&](const IngestProgress& p) {
    const std::string line = ProgressLine(p, noun);
    if (tty) {
      std::fprintf(stderr, "\r%s\033[K", line.c_str());
      drawn = true;
    } else if (p.seconds - last_plain >= 5) {
      // Logs get a line every few seconds, not a redraw.
      std::fprintf(stderr, "%s\n", line.c_str());
      last_plain = p.seconds;
    }
  };
  auto clear_line = [&] {
    if (drawn) std::fputs("\r\033[K", stderr);
    drawn = false;
  };
  options.on_skip = [&](const std::string& why) {
    clear_line();
    std::fprintf(stderr, "shoal: skipped %s\n", why.c_str());
  };
  if (command.verbose) {
    options.on_decision = [](const std::string& what) {
      std::fprintf(stderr, "shoal: workers: %s\n", what.c_str());
    };
  }
  g_stop = false;
  options.stop = &g_stop;
  SignalScope signals;
  auto report = Ingest(*source, dataset, options);
  clear_line();
  if (!report.ok()) return report.status();
  const IngestReport& r = *report;
  if (!r.lock_message.empty()) {
    std::fprintf(stderr, "shoal: %s\n", r.lock_message.c_str());
  }
  const double rate = r.seconds > 0 ? r.rows_added / r.seconds : 0;
  if (command.json) {
    nlohmann::json stages = nlohmann::json::array();
    for (const StageMetrics& s : r.metrics.stages)
      stages.push_back(StageJson(s));
    nlohmann::json j = {
        {"dataset", r.url},
        {"samples", r.rows},
        {"samples_added", r.rows_added},
        {"records", r.records},
        {"resumed_samples", r.resumed_rows},
        {"seconds", r.seconds},
        {"samples_per_second", rate},
        {"input_bytes", r.input_bytes},
        {"raw_bytes", r.raw_bytes},
        {"stored_bytes", r.stored_bytes},
        {"commits", r.commits},
        {"commit", r.final_commit},
        {"skipped", r.skipped},
        {"ignored", r.ignored},
        {"stages", stages},
        {"budget_bytes", r.metrics.budget_bytes},
        {"budget_peak", r.metrics.budget_peak},
        {"decisions", r.decisions},
        {"stopped", !r.status.ok()},
    };
    std::printf("%s\n",
                j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace)
                    .c_str());
  } else {
    std::string compression;
    for (const auto& [name, c] : r.tensors) {
      if (!compression.empty()) compression += ", ";
      compression += name + " " + c;
    }
    const std::string writer =
        options.world_size > 1
            ? " (writer " + std::to_string(options.rank) + " of " +
                  std::to_string(options.world_size) + ")"
            : "";
    std::printf(
        "ingest%s: %s into %s in %.2f s (%.0f samples/s, %s of input); %s; "
        "%s of samples stored in %s (ratio %s), commit %llu\n",
        writer.c_str(), Count(r.rows_added, "sample").c_str(), r.url.c_str(),
        r.seconds, rate,
        FormatRate(static_cast<double>(r.input_bytes), r.seconds).c_str(),
        compression.c_str(), FormatBytes(r.raw_bytes).c_str(),
        FormatBytes(r.stored_bytes).c_str(),
        FormatRatio(r.raw_bytes, r.stored_bytes).c_str(),
        static_cast<unsigned long long>(r.final_commit));
    if (r.resumed_rows > 0) {
      std::printf("ingest: resumed after %s already in; the dataset has %s\n",
                  Count(r.resumed_rows, "sample").c_str(),
                  Count(r.rows, "sample").c_str());
    }
    PrintIngestSkips(r.ignored, "file of another kind", r.skipped.size());
  }
  if (!r.status.ok()) {
    std::fprintf(stderr,
                 "shoal: stopped: %s are in %s (commit %llu); to continue:\n"
                 "  %s\n",
                 Count(r.rows, "sample").c_str(), r.url.c_str(),
                 static_cast<unsigned long long>(r.final_commit),
                 ResumeCommand(CommandLine()).c_str());
    return 130;
  }
  return kExitOk;
}

}  // namespace shoal::tools
