// ConcurrencyController: the adaptive worker counts of the write graph, and
// ProfileRecorder: the JSON profile of a run that scripts/plot-profile.py
// draws.
//
// The ingestion job polls Pipeline::metrics() every ~250 ms and feeds each
// snapshot to Update(), which returns the concurrency changes to make with
// Pipeline::SetConcurrency(). The controller never touches the pipeline, so
// it is a pure function of the snapshots it is fed and can be tested on
// synthetic metrics.
//
// How it decides (hill climbing, one step at a time):
//  - Every interval between two snapshots gives throughput (items and bytes
//    of the last stage per second) and, per stage, the fraction of worker
//    time spent in bodies (busy), waiting for an item (wait_input), and the
//    items finished but not yet taken by the next stage (blocked_output).
//  - The bottleneck is the last stage that is saturated: busy while items
//    queue in front of it. If it is adaptive, it grows by one worker (an
//    I/O stage with at least as many items queued as workers doubles, as
//    TCP's slow start does: it waits on the store, not the CPU). A
//    saturated stage further down means growing earlier ones cannot help.
//  - A step is a trial: after `trial_intervals` it must have raised the
//    smoothed throughput by more than the dead band, or it is undone and not
//    retried for a cool-down (doubling while it keeps failing). An I/O stage
//    whose per-item latency rises steeply is undone too: the store is pushing
//    back.
//  - When a grown stage leaves its new worker idle and another stage takes
//    over as the bottleneck (stages limiting at about the same rate), that
//    stage grows as part of the same trial and the steps are judged
//    together.
//  - A stage whose workers mostly wait for input shrinks by one step, which
//    is also a trial (undone if throughput falls).
//  - A large throughput change while nothing is being tried means the
//    workload or the store changed: cool-downs are forgotten.
//  - Caps: per-stage bounds, a total of parallel workers, and no growth while
//    the byte budget is nearly used up. The controller only ever steps within
//    them (and steps back into them if it finds a stage outside).
//
// Thread-safety: none; a controller and a recorder are each used by one
// thread at a time (the job's polling loop).
#ifndef SHOAL_LOADER_CONTROLLER_H_
#define SHOAL_LOADER_CONTROLLER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "base/status.h"
#include "loader/pipeline.h"

namespace shoal {

/// A parallel stage whose concurrency the controller may change.
struct AdaptiveStage {
  /// Index of the stage in AddStage() order. Must be a parallel stage;
  /// entries naming a missing or serial stage are ignored.
  size_t stage = 0;
  int min_concurrency = 1;
  int max_concurrency = 64;
  /// The stage mostly waits on a store (read, write): its workers use little
  /// CPU, so it may usefully run far more of them than there are cores, and
  /// its per-item latency rising tells that the store is pushing back.
  bool io = false;
};

struct ControllerOptions {
  /// The stages the controller may change; the others it only watches.
  std::vector<AdaptiveStage> stages;
  /// How often the caller should call Update(). A call sooner than half of
  /// this after the last closed interval extends that interval instead:
  /// counters move at item boundaries, so short intervals are mostly noise.
  double interval_seconds = 0.25;
  /// Items the last stage must finish in an interval before it is judged;
  /// fewer extend the interval, for the same reason.
  uint64_t min_items = 8;
  /// Cap on the sum of every parallel stage's concurrency (adaptive or not).
  /// A body blocked on I/O holds a thread of the pipeline's arena, so
  /// PipelineOptions::threads should be at least this.
  int max_threads_total = 64;
  /// No stage grows while the budget in use exceeds this fraction of the
  /// budget: the feeder is then waiting for memory, not for workers, and
  /// more workers would hold more item buffers at once.
  double memory_cap = 0.9;
  /// A step must raise throughput by more than this fraction to stay. Gains
  /// below it are within the noise of a few intervals, and a worker that
  /// buys nothing still costs a thread and its buffers.
  double dead_band = 0.05;
  /// Weight of the newest interval in the smoothed throughput that steps are
  /// judged against: lower is steadier, higher follows changes sooner.
  double ewma_alpha = 0.3;
  /// Intervals a step is watched before it is judged: the first one after a
  /// change includes queues refilling or draining.
  int trial_intervals = 2;
  /// How long an undone step is not retried: long enough not to oscillate,
  /// short enough to retry once the situation may have changed...
  double cooldown_seconds = 5;
  /// ...doubling each time the same step is undone again, up to this: a step
  /// that never helps costs a trial less and less often, yet is still
  /// retried within a minute of a change too gradual to be a regime change.
  double max_cooldown_seconds = 60;
  /// With no step pending, an interval whose throughput differs from the
  /// smoothed one by more than this fraction means the workload or the
  /// store changed: the smoothing restarts and cool-downs are forgotten.
  double regime_change = 0.25;
  /// A stage is saturated when its workers are in bodies at least this
  /// fraction of the time (below 1: handing items over takes time too)...
  double busy_threshold = 0.85;
  /// ...and items wait for it: its free workers waited for input at most
  /// this fraction of the time...
  double input_wait_max = 0.1;
  /// ...or on average at least this many items queued in front of it.
  double input_queue_min = 0.5;
  /// A stage whose workers waited for input at least this fraction of the
  /// time has more workers than its input keeps busy: it shrinks one step,
  /// freeing a thread for a stage that needs one.
  double starved_wait = 0.5;
  /// An I/O stage whose per-item latency, after growing, exceeds this many
  /// times its latency before is backed off even if throughput rose: more
  /// requests only queue in the store (and slow its other clients).
  double io_latency_rise = 1.5;
  /// A grown stage whose busy workers rose by less than this many did not
  /// use its new worker: it no longer limits the pipeline, so the stage that
  /// now does grows as part of the same trial (see max_joint_steps).
  double new_worker_min_use = 0.5;
  /// Most stages one trial may grow together. Stages limiting together (at
  /// about the same rate) need all to grow before throughput rises, which a
  /// single step cannot see; the write graph has four parallel stages.
  int max_joint_steps = 4;
};

/// A concurrency change: Pipeline::SetConcurrency(stage, to).
struct Decision {
  size_t stage = 0;
  int from = 0;
  int to = 0;
  /// E.g. "decode 2->3: busy 97%, input queue 3.2 items, after +18%
  /// samples/s".
  std::string reason;
  /// When: the `t` of the Update() that took it.
  double t = 0;
};

/// What one stage did during an interval. Fractions are of worker time
/// (interval × concurrency; a serial stage counts as one worker).
struct StageInterval {
  std::string name;
  /// During the interval; 0 = serial in order.
  int concurrency = 0;
  uint64_t items = 0;
  double busy = 0;
  double wait_input = 0;
  /// Time items finished here waited for the next stage, per worker; may
  /// exceed 1 when more items than workers wait.
  double blocked_output = 0;
  /// Items waiting for this stage, on average (time items finished by the
  /// previous stage or the feeder waited, per second).
  double input_queue = 0;
  /// Mean time in the body per item (0 when no item ran).
  double seconds_per_item = 0;
};

/// What a pipeline did between two metrics snapshots.
struct PipelineInterval {
  /// The end of the interval, as passed to Update(), and its length.
  double t = 0;
  double seconds = 0;
  /// Items (samples) and bytes of the last stage per second.
  double samples_per_s = 0;
  double bytes_per_s = 0;
  std::vector<StageInterval> stages;
  uint64_t budget_in_use = 0;  // at the end of the interval
  uint64_t budget_bytes = 0;   // 0 = unlimited
};

/// The figures between two snapshots of one pipeline taken `seconds` apart
/// (> 0), `after` being the later. Both must have the same stages.
PipelineInterval MeasureInterval(const PipelineMetrics& before,
                                 const PipelineMetrics& after, double t,
                                 double seconds);

class ConcurrencyController {
 public:
  explicit ConcurrencyController(ControllerOptions options);

  /// Feeds a snapshot of one pipeline's metrics taken at `t` seconds since
  /// the job started (increasing from call to call), and returns the changes
  /// to apply now, in order. The first call only sets the starting point.
  /// Concurrency is read from the snapshots, so a change the caller did not
  /// apply is simply not seen.
  std::vector<Decision> Update(const PipelineMetrics& metrics, double t);

  /// The interval the last Update() closed, or null when that call extended
  /// the interval (too short, too few items) or was the first.
  const PipelineInterval* interval() const {
    return closed_ ? &interval_ : nullptr;
  }

 private:
  struct Step {
    size_t stage;
    int from;
    int to;
  };
  // Steps being judged together against the throughput before the first.
  struct Trial {
    std::vector<Step> steps;
    double baseline = 0;
    std::vector<double> baseline_latency;       // per step
    std::vector<double> baseline_busy_workers;  // per step
    int intervals = 0;
    double items = 0;
    double seconds = 0;
    std::vector<double> busy_seconds;  // per step, to measure latency
    std::vector<double> step_items;
  };

  std::vector<Decision> Decide(double t);
  std::vector<Decision> EnforceCaps();
  std::vector<Decision> Judge(double t);
  std::vector<Decision> Undo(double t, const std::string& why);
  Decision Begin(const Step& step, std::string why);
  std::optional<size_t> Bottleneck(double t) const;
  std::optional<size_t> Starved(double t) const;
  bool Saturated(size_t stage) const;
  bool OnTrial(size_t stage) const;
  bool CoolingDown(size_t stage, int from, int to, double t) const;
  void CoolDown(const Step& step, double t);
  const AdaptiveStage* Adaptive(size_t stage) const;
  int TotalWorkers() const;

  ControllerOptions options_;
  std::optional<PipelineMetrics> last_;
  double last_t_ = 0;
  PipelineInterval interval_;
  bool closed_ = false;
  // Smoothed samples/s at the current settings, and per stage seconds per
  // item (the I/O back-off baseline).
  double ewma_ = 0;
  std::vector<double> latency_ewma_;
  // Intervals since the settings last changed without a trial to judge them.
  int settled_ = 0;
  std::optional<Trial> trial_;
  // The gain of the last kept trial, quoted by the next step's reason.
  std::optional<double> last_gain_;
  // (stage, from, to) -> until when that step is not taken, and for how
  // long it was barred the last time it was undone.
  struct Cooldown {
    double until = 0;
    double seconds = 0;
  };
  std::map<std::tuple<size_t, int, int>, Cooldown> cooldowns_;
};

/// Accumulates a run's intervals and decisions and writes them as the JSON
/// profile that scripts/plot-profile.py draws:
///   {"version":1, "kind":"ingest"|"loader", "stages":[names],
///    "intervals":[{"t", "samples_per_s", "mb_per_s", "concurrency":[],
///    "busy":[], "wait_input":[], "blocked_output":[], "budget_in_use",
///    "budget_bytes", "rss_bytes", "consumer_stall"}],
///    "decisions":[{"t", "stage":name, "from", "to", "reason"}]}
/// Per-stage arrays follow "stages"; t is in seconds since the job started;
/// consumer_stall (the fraction of the interval the consumer waited in
/// Next(), loader profiles only) is absent when not recorded.
class ProfileRecorder {
 public:
  explicit ProfileRecorder(std::string kind = "ingest")
      : kind_(std::move(kind)) {}
  /// Records a closed interval and the decisions taken at its end.
  void Add(const PipelineInterval& interval,
           const std::vector<Decision>& decisions, uint64_t rss_bytes = 0,
           std::optional<double> consumer_stall = std::nullopt);
  size_t size() const { return intervals_.size(); }
  /// The profile as JSON text.
  std::string ToJson() const;
  /// Writes ToJson() to `path` through a temporary file renamed into place,
  /// so a chart drawn while the job runs never reads half a profile.
  Status WriteFile(const std::string& path) const;

 private:
  struct Entry {
    PipelineInterval interval;
    std::vector<Decision> decisions;
    uint64_t rss_bytes;
    std::optional<double> consumer_stall;
  };
  std::string kind_;
  std::vector<Entry> intervals_;
};

}  // namespace shoal

#endif  // SHOAL_LOADER_CONTROLLER_H_
