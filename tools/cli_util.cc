// Helpers shared by the CLI commands: opening a dataset for reading, finding
// a tensor with a helpful error, number formatting and terminal progress.
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "tools/commands.h"

namespace shoal::tools {
Result<std::unique_ptr<Dataset>> OpenForReading(const std::string& url) {
  return Dataset::Open(url, {.read_only = true});
}

Result<Tensor*> FindTensor(const Dataset& dataset, std::string_view name) {
  auto tensor = dataset.tensor(name);
  if (tensor.ok()) return tensor;
  std::string names;
  for (const Tensor* t : dataset.tensors()) {
    names += names.empty() ? "" : ", ";
    names += t->name();
  }
  return NotFound("dataset '" + dataset.url() + "' has no tensor '" +
                  std::string(name) +
                  "' (tensors: " + (names.empty() ? "none" : names) + ")");
}

CLI::Validator WholeNumberIn(int64_t lo, int64_t hi) {
  const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
  return CLI::Validator(
      [lo, hi](std::string& value) -> std::string {
        int64_t v = 0;
        const char* end = value.data() + value.size();
        const auto [ptr, ec] = std::from_chars(value.data(), end, v);
        if (ec == std::errc() && ptr == end && v >= lo && v <= hi) return "";
        return "must be a whole number from " + std::to_string(lo) + " to " +
               std::to_string(hi) + ", got " + value;
      },
      range);
}

std::string Count(uint64_t n, std::string_view noun) {
  return std::to_string(n) + " " + std::string(noun) + (n == 1 ? "" : "s");
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1000 && unit + 1 < std::size(kUnits)) {
    value /= 1000;
    ++unit;
  }
  char out[32];
  if (unit == 0) {
    std::snprintf(out, sizeof(out), "%llu B",
                  static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(out, sizeof(out), "%.1f %s", value, kUnits[unit]);
  }
  return out;
}

std::string FormatRatio(uint64_t raw, uint64_t stored) {
  if (raw == 0 || stored == 0) return "-";
  char out[32];
  std::snprintf(out, sizeof(out), "%.2f",
                static_cast<double>(raw) / static_cast<double>(stored));
  return out;
}

std::string FormatRate(double bytes, double seconds) {
  char out[32];
  std::snprintf(out, sizeof(out), "%.1f MB/s",
                seconds > 0 ? bytes / seconds / 1e6 : 0.0);
  return out;
}

Stopwatch::Stopwatch()
    : start_ns_(std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count()) {}

double Stopwatch::seconds() const {
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  return static_cast<double>(now - start_ns_) * 1e-9;
}

Progress::Progress(std::string what, std::string unit)
    : what_(std::move(what)),
      unit_(std::move(unit)),
      enabled_(::isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() { Finish(); }

void Progress::Update(uint64_t done, uint64_t total, uint64_t bytes) {
  if (!enabled_) return;
  const double now = clock_.seconds();
  // Redrawing costs a write(2); ten times a second is smooth enough. The
  // last state need not be drawn: Finish() erases the line anyway.
  if (last_draw_ >= 0 && now - last_draw_ < 0.1) return;
  last_draw_ = now;
  const int percent = total == 0 ? 100 : static_cast<int>(100.0 * done / total);
  std::string line = "\r" + what_ + ": " + std::to_string(done) + "/" +
                     std::to_string(total) + " " + unit_ + " (" +
                     std::to_string(percent) + "%)";
  if (bytes > 0) line += " " + FormatRate(static_cast<double>(bytes), now);
  // "\033[K" clears what a longer earlier line left to the right.
  line += "\033[K";
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::Finish() {
  if (!drawn_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

void PrintIngestSkips(uint64_t ignored, std::string_view ignored_noun,
                      uint64_t skipped) {
  if (ignored > 0) {
    std::printf("ingest: ignored %s\n", Count(ignored, ignored_noun).c_str());
  }
  if (skipped > 0) {
    std::printf("ingest: skipped %s (--skip-bad)\n",
                Count(skipped, "bad file").c_str());
  }
}

}  // namespace shoal::tools
