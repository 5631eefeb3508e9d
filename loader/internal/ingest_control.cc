// IngestControl: pinned or adaptive worker counts of the write graph.
#include "loader/internal/ingest_control.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "base/memory.h"

namespace shoal::internal {
namespace {

constexpr size_t kReadStage = 0;
constexpr size_t kSerialStage = 2;  // "append": one at a time, in order
constexpr size_t kWriteStage = 4;

// Pinned worker counts beyond this buy nothing but threads.
constexpr int kMaxPinnedWorkers = 256;

}  // namespace

IngestControl::IngestControl(const IngestOptions& options,
                             const char* const* names)
    : options_(options), names_(names) {}

IngestControl::~IngestControl() { Stop(); }

Result<std::unique_ptr<IngestControl>> IngestControl::Make(
    const IngestOptions& options, const char* const* stage_names, int cores,
    int max_workers) {
  std::unique_ptr<IngestControl> c(new IngestControl(options, stage_names));
  c->cores_ = cores;
  c->max_workers_ = max_workers;
  // Starting points: CPU stages on every core; I/O stages twice as deep,
  // since their workers mostly wait: a slow store is covered sooner (a
  // short job may end before the controller has grown a stage far), and a
  // fast one leaves the extra workers idle until the controller shrinks
  // them. The memory they may hold is the budget's to bound.
  c->initial_ = {2 * cores, cores, 0, cores, 2 * cores};
  for (size_t s = 0; s < kIngestStages; ++s)
    c->adaptive_[s] = s != kSerialStage;
  for (const auto& [name, n] : options.workers) {
    if (n < 1 || n > kMaxPinnedWorkers) {
      return InvalidArgument("--workers " + name + "=" + std::to_string(n) +
                             ": must be 1.." +
                             std::to_string(kMaxPinnedWorkers));
    }
    bool found = false;
    for (size_t s = 0; s < kIngestStages; ++s) {
      if (s == kSerialStage) continue;
      if (name == "*" || name == stage_names[s]) {
        c->initial_[s] = n;
        c->adaptive_[s] = false;
        found = true;
      }
    }
    if (!found) {
      return InvalidArgument(
          "--workers: no parallel stage '" + name +
          "' (stages: read, prepare, compress, write; '*' for all)");
    }
  }
  return c;
}

int IngestControl::Threads() const {
  int pinned = 0;
  for (size_t s = 0; s < kIngestStages; ++s) {
    if (s != kSerialStage) pinned += initial_[s];
  }
  return std::max(max_workers_, pinned + 1);
}

void IngestControl::Start(Metrics metrics, SetConcurrency set) {
  metrics_ = std::move(metrics);
  set_ = std::move(set);
  thread_ = std::thread([this] { Loop(); });
}

void IngestControl::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

ControllerOptions IngestControl::ControllerSetup() const {
  ControllerOptions co;
  co.max_threads_total = max_workers_;
  for (size_t s = 0; s < kIngestStages; ++s) {
    if (!adaptive_[s]) continue;
    const bool io = s == kReadStage || s == kWriteStage;
    // CPU stages gain nothing past the cores (the controller finds out
    // anyway, but each failed step costs a trial); I/O stages may wait on a
    // slow store with many requests in flight.
    co.stages.push_back({.stage = s,
                         .min_concurrency = 1,
                         .max_concurrency = io ? max_workers_ : 2 * cores_,
                         .io = io});
  }
  return co;
}

void IngestControl::Loop() {
  ConcurrencyController controller(ControllerSetup());
  const auto start = std::chrono::steady_clock::now();
  auto now = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  };
  double last_write = 0;
  // The snapshot at the end of the last interval the profile has (at first:
  // the start). The profile shows the job's samples/s and MB/s, where the
  // controller judges by the last stage's items (chunks), what it changes.
  struct Mark {
    PipelineMetrics metrics;
    uint64_t rows;
    uint64_t bytes;
    double t;
  };
  auto take = [&](double t) {
    return Mark{metrics_(), rows_.load(std::memory_order_relaxed),
                bytes_.load(std::memory_order_relaxed), t};
  };
  auto shown = [](PipelineInterval interval, const Mark& from, const Mark& to) {
    const double seconds = to.t - from.t;
    if (seconds > 0) {
      interval.samples_per_s = (to.rows - from.rows) / seconds;
      interval.bytes_per_s = (to.bytes - from.bytes) / seconds;
    }
    return interval;
  };
  Mark mark = take(0);
  bool started = false;
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::milliseconds(250),
                       [this] { return stop_; })) {
    lock.unlock();
    const Mark here = take(now());
    const std::vector<Decision> decisions =
        controller.Update(here.metrics, here.t);
    std::vector<std::string> lines;
    for (const Decision& d : decisions) {
      // A refused change (the pipeline stopping) is simply not made.
      if (!set_(d.stage, d.to).ok()) continue;
      char when[32];
      std::snprintf(when, sizeof(when), "%.2f s: ", here.t);
      lines.push_back(when + d.reason);
      if (options_.on_decision) options_.on_decision(lines.back());
    }
    const PipelineInterval* interval = controller.interval();
    lock.lock();
    for (auto& l : lines) decisions_.push_back(std::move(l));
    if (!started) {  // the controller's starting point
      started = true;
      mark = here;
    } else if (interval != nullptr) {
      profile_.Add(shown(*interval, mark, here), decisions, ResidentSetBytes());
      mark = here;
      // Written now and then, so a chart can be drawn while it runs.
      if (!options_.profile_path.empty() && here.t - last_write >= 10) {
        (void)profile_.WriteFile(options_.profile_path);
        last_write = here.t;
      }
    }
  }
  // What ran since the last interval, when that is a short job's only one
  // or long enough to mean something: the last few milliseconds alone
  // (rows counted as the final chunks land) would draw as a spike.
  const Mark end = take(now());
  if (end.t > mark.t && (profile_.size() == 0 || end.t - mark.t >= 0.125) &&
      end.metrics.stages.size() == mark.metrics.stages.size()) {
    const PipelineInterval last =
        MeasureInterval(mark.metrics, end.metrics, end.t, end.t - mark.t);
    profile_.Add(shown(last, mark, end), {}, ResidentSetBytes());
  }
}

std::vector<std::string> IngestControl::decisions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return decisions_;
}

Status IngestControl::WriteProfile() const {
  if (options_.profile_path.empty()) return Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  return profile_.WriteFile(options_.profile_path);
}

}  // namespace shoal::internal
