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

void OnSignal(int) {
  if (g_stop.exchange(true)) _exit(130);
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

void AddIngestFlags(CLI::App& cmd, IngestFlags& flags) {
  CLI::Option* overwrite = cmd.add_flag(
      "--overwrite", flags.overwrite,
      "Replace a dataset at DS; the old one stays whole until the new one's "
      "first commit");
  CLI::Option* append =
      cmd.add_flag("--append", flags.append,
                   "Add the samples to the dataset at DS (same tensors)");
  CLI::Option* resume = cmd.add_flag(
      "--resume", flags.resume,
      "Continue an interrupted ingestion of the same input into DS from its "
      "last commit");
  // Usage errors (exit 2), found before anything is written.
  overwrite->excludes(append)->excludes(resume);
  append->excludes(resume);
  cmd.add_flag("--skip-bad", flags.skip_bad,
               "Skip inputs that cannot be read or decoded (each is named on "
               "stderr and counted) instead of stopping at the first");
  cmd.add_option("--memory-budget", flags.memory_budget,
                 "Bytes the ingestion may hold at once (files read ahead, "
                 "samples, chunks in flight), e.g. 64MiB; one input larger "
                 "than this still goes through, alone")
      ->transform(CLI::AsSizeValue(/*kb_is_1000=*/false))
      ->check(CLI::Range(uint64_t{1} << 20, uint64_t{1} << 40))
      ->capture_default_str();
  cmd.add_option("--workers", flags.workers,
                 "Pin worker counts and turn the controller off: N for every "
                 "parallel stage, or stage=N,... (stages: read, prepare, "
                 "compress, write)")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            IngestFlags probe;
            probe.workers = value;
            auto options = IngestOptionsFrom(probe);
            if (!options.ok()) {
              // CLI11 names the option already.
              std::string why(options.status().message());
              if (why.starts_with("--workers ")) why.erase(0, 10);
              return why;
            }
            for (const auto& [stage, n] : options->workers) {
              if (stage != "*" && stage != "read" && stage != "prepare" &&
                  stage != "compress" && stage != "write") {
                return "no parallel stage '" + stage +
                       "' (stages: read, prepare, compress, write; '*' for "
                       "all)";
              }
            }
            return "";
          },
          "N or STAGE=N,...", "workers"));
  cmd.add_option("--commit-every", flags.commit_every_rows,
                 "Commit every N samples (0: by time only)")
      ->check(WholeNumberIn(0, int64_t{1} << 48))
      ->capture_default_str();
  cmd.add_option("--commit-seconds", flags.commit_every_seconds,
                 "Commit every so many seconds (0: by count only)")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  cmd.add_flag("--break-lock", flags.break_lock,
               "Take the dataset's write lock even if another writer holds "
               "it (only when you know it is not running)");
  cmd.add_flag("-v,--verbose", flags.verbose,
               "Print every change of a worker count, with its reason");
  cmd.add_option("--profile", flags.profile,
                 "Write a JSON timeline of throughput, workers and memory "
                 "(draw it with scripts/plot-profile.py)");
  cmd.add_flag("--json", flags.json, "Print the summary as JSON");
}

Result<IngestOptions> IngestOptionsFrom(const IngestFlags& flags) {
  IngestOptions options;
  const int modes = flags.overwrite + flags.append + flags.resume;
  if (modes > 1) {
    return InvalidArgument(
        "--overwrite, --append and --resume exclude each other");
  }
  options.mode = flags.overwrite ? IngestOptions::Mode::kOverwrite
                 : flags.append  ? IngestOptions::Mode::kAppend
                 : flags.resume  ? IngestOptions::Mode::kResume
                                 : IngestOptions::Mode::kCreate;
  options.skip_bad = flags.skip_bad;
  options.memory_budget = flags.memory_budget;
  options.commit_every_rows = flags.commit_every_rows;
  options.commit_every_seconds = flags.commit_every_seconds;
  options.break_lock = flags.break_lock;
  options.profile_path = flags.profile;
  options.command = CommandLine();
  if (!flags.workers.empty()) {
    size_t start = 0;
    while (start <= flags.workers.size()) {
      size_t end = flags.workers.find(',', start);
      if (end == std::string::npos) end = flags.workers.size();
      const std::string part = flags.workers.substr(start, end - start);
      const size_t eq = part.find('=');
      const std::string stage =
          eq == std::string::npos ? "*" : part.substr(0, eq);
      const std::string count =
          eq == std::string::npos ? part : part.substr(eq + 1);
      char* rest = nullptr;
      const long n = std::strtol(count.c_str(), &rest, 10);
      if (count.empty() || *rest != '\0' || n < 1 || n > 256) {
        return InvalidArgument("--workers '" + flags.workers +
                               "': want N or stage=N,... with N in 1..256");
      }
      options.workers[stage] = static_cast<int>(n);
      start = end + 1;
    }
  }
  return options;
}

Result<int> RunIngest(Source& source, const std::string& dataset,
                      const IngestFlags& flags, const std::string& noun) {
  SHOAL_ASSIGN_OR_RETURN(IngestOptions options, IngestOptionsFrom(flags));
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
  if (flags.verbose) {
    options.on_decision = [](const std::string& what) {
      std::fprintf(stderr, "shoal: workers: %s\n", what.c_str());
    };
  }
  g_stop = false;
  options.stop = &g_stop;
  SignalScope signals;
  auto report = Ingest(source, dataset, options);
  clear_line();
  if (!report.ok()) return report.status();
  const IngestReport& r = *report;
  if (!r.lock_message.empty()) {
    std::fprintf(stderr, "shoal: %s\n", r.lock_message.c_str());
  }
  const double rate = r.seconds > 0 ? r.rows_added / r.seconds : 0;
  if (flags.json) {
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
    std::printf(
        "ingest: %s into %s in %.2f s (%.0f samples/s, %s of input); %s; "
        "%s of samples stored in %s (ratio %s), commit %llu\n",
        Count(r.rows_added, "sample").c_str(), r.url.c_str(), r.seconds, rate,
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
