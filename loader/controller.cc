// The adaptive concurrency controller and its profile recorder; the policy
// is described in controller.h.
#include "loader/controller.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <utility>

namespace shoal {
namespace {

__attribute__((format(printf, 1, 2))) std::string Format(const char* format,
                                                         ...) {
  char text[256];
  va_list args;
  va_start(args, format);
  std::vsnprintf(text, sizeof(text), format, args);
  va_end(args);
  return text;
}

double Percent(double fraction) { return 100 * fraction; }

// Counters only grow, but a snapshot is not consistent across counters, so
// a difference is clamped rather than trusted to be non-negative.
double Delta(double before, double after) {
  return std::max(0.0, after - before);
}
uint64_t Delta(uint64_t before, uint64_t after) {
  return after > before ? after - before : 0;
}

}  // namespace

PipelineInterval MeasureInterval(const PipelineMetrics& before,
                                 const PipelineMetrics& after, double t,
                                 double seconds) {
  PipelineInterval out;
  out.t = t;
  out.seconds = seconds;
  out.budget_in_use = after.budget_in_use;
  out.budget_bytes = after.budget_bytes;
  const StageMetrics* previous_before = &before.feeder;
  const StageMetrics* previous_after = &after.feeder;
  for (size_t i = 0; i < after.stages.size(); ++i) {
    const StageMetrics& b = before.stages[i];
    const StageMetrics& a = after.stages[i];
    StageInterval s;
    s.name = a.name;
    s.concurrency = a.concurrency;
    s.items = Delta(b.items, a.items);
    const double worker_seconds = seconds * std::max(1, a.concurrency);
    const double busy = Delta(b.busy_seconds, a.busy_seconds);
    // Bodies still running after SetConcurrency() lowered the limit can push
    // the fraction past 1 for an interval; it means "fully busy".
    s.busy = std::min(1.0, busy / worker_seconds);
    s.wait_input =
        std::min(1.0, Delta(b.wait_input_seconds, a.wait_input_seconds) /
                          worker_seconds);
    s.blocked_output =
        Delta(b.blocked_output_seconds, a.blocked_output_seconds) /
        worker_seconds;
    s.input_queue = Delta(previous_before->blocked_output_seconds,
                          previous_after->blocked_output_seconds) /
                    seconds;
    s.seconds_per_item = s.items > 0 ? busy / s.items : 0;
    out.stages.push_back(std::move(s));
    previous_before = &b;
    previous_after = &a;
  }
  if (!after.stages.empty()) {
    const StageMetrics& b = before.stages.back();
    const StageMetrics& a = after.stages.back();
    out.samples_per_s = Delta(b.items, a.items) / seconds;
    out.bytes_per_s = Delta(b.bytes, a.bytes) / seconds;
  }
  return out;
}

ConcurrencyController::ConcurrencyController(ControllerOptions options)
    : options_(std::move(options)) {}

std::vector<Decision> ConcurrencyController::Update(
    const PipelineMetrics& metrics, double t) {
  closed_ = false;
  if (!last_ || last_->stages.size() != metrics.stages.size() ||
      metrics.stages.empty()) {
    last_ = metrics;
    last_t_ = t;
    return {};
  }
  const double seconds = t - last_t_;
  const uint64_t items =
      Delta(last_->stages.back().items, metrics.stages.back().items);
  if (seconds < options_.interval_seconds / 2 || items < options_.min_items) {
    return {};  // extend the interval until it says something
  }
  interval_ = MeasureInterval(*last_, metrics, t, seconds);
  closed_ = true;
  last_ = metrics;
  last_t_ = t;
  latency_ewma_.resize(metrics.stages.size(), 0.0);
  std::vector<Decision> decisions = Decide(t);
  for (Decision& d : decisions) d.t = t;
  return decisions;
}

std::vector<Decision> ConcurrencyController::Decide(double t) {
  if (std::vector<Decision> caps = EnforceCaps(); !caps.empty()) {
    trial_.reset();
    settled_ = 0;
    return caps;
  }
  if (trial_) return Judge(t);

  const double alpha = options_.ewma_alpha;
  const double x = interval_.samples_per_s;
  // A new regime restarts the smoothing: the old values describe another
  // workload or store.
  const bool restart =
      ewma_ <= 0 || std::abs(x / ewma_ - 1) > options_.regime_change;
  if (restart) {
    if (ewma_ > 0) cooldowns_.clear();  // what failed may work now
    settled_ = 0;
  }
  ewma_ = restart ? x : alpha * x + (1 - alpha) * ewma_;
  for (size_t i = 0; i < interval_.stages.size(); ++i) {
    const StageInterval& s = interval_.stages[i];
    if (s.items == 0) continue;
    double& latency = latency_ewma_[i];
    latency = latency > 0 && !restart
                  ? alpha * s.seconds_per_item + (1 - alpha) * latency
                  : s.seconds_per_item;
  }
  if (++settled_ < options_.trial_intervals) return {};

  if (std::optional<size_t> b = Bottleneck(t)) {
    const StageInterval& s = interval_.stages[*b];
    std::string why = Format("busy %.0f%%, input queue %.1f items",
                             Percent(s.busy), s.input_queue);
    if (last_gain_)
      why += Format(", after %+.0f%% samples/s", Percent(*last_gain_));
    last_gain_.reset();
    int to = s.concurrency + 1;
    // An I/O stage with at least as many items queued as workers waits on
    // the store, not on the CPU: it doubles (as TCP's slow start does), so
    // that a slow store is matched in a few trials rather than one worker
    // per trial, which in a short job never catches up. A doubling that was
    // undone is cooling down; then the stage grows by one.
    const AdaptiveStage* a = Adaptive(*b);
    if (a != nullptr && a->io && s.input_queue >= s.concurrency) {
      const int doubled = std::min(
          {2 * s.concurrency, a->max_concurrency,
           s.concurrency + options_.max_threads_total - TotalWorkers()});
      if (doubled > to && !CoolingDown(*b, s.concurrency, doubled, t)) {
        to = doubled;
      }
    }
    return {Begin({*b, s.concurrency, to}, why)};
  }
  if (std::optional<size_t> starved = Starved(t)) {
    const StageInterval& s = interval_.stages[*starved];
    return {Begin(
        {*starved, s.concurrency, s.concurrency - 1},
        Format("waits for input %.0f%% of the time", Percent(s.wait_input)))};
  }
  return {};
}

std::vector<Decision> ConcurrencyController::EnforceCaps() {
  std::vector<Decision> out;
  for (const AdaptiveStage& a : options_.stages) {
    if (Adaptive(a.stage) != &a) continue;
    const StageInterval& s = interval_.stages[a.stage];
    const int to = std::clamp(s.concurrency, a.min_concurrency,
                              std::max(a.min_concurrency, a.max_concurrency));
    if (to == s.concurrency) continue;
    out.push_back(
        {a.stage, s.concurrency, to,
         Format("%s %d->%d: outside its bounds [%d, %d]", s.name.c_str(),
                s.concurrency, to, a.min_concurrency, a.max_concurrency)});
  }
  if (!out.empty() || TotalWorkers() <= options_.max_threads_total) return out;
  // Over the total: the least busy stage can best spare a worker.
  const AdaptiveStage* idlest = nullptr;
  for (const AdaptiveStage& a : options_.stages) {
    if (Adaptive(a.stage) != &a ||
        interval_.stages[a.stage].concurrency <= a.min_concurrency) {
      continue;
    }
    if (idlest == nullptr ||
        interval_.stages[a.stage].busy < interval_.stages[idlest->stage].busy) {
      idlest = &a;
    }
  }
  if (idlest != nullptr) {
    const StageInterval& s = interval_.stages[idlest->stage];
    out.push_back({idlest->stage, s.concurrency, s.concurrency - 1,
                   Format("%s %d->%d: %d workers in all, cap %d",
                          s.name.c_str(), s.concurrency, s.concurrency - 1,
                          TotalWorkers(), options_.max_threads_total)});
  }
  return out;
}

std::vector<Decision> ConcurrencyController::Judge(double t) {
  Trial& trial = *trial_;
  trial.items += interval_.stages.back().items;
  trial.seconds += interval_.seconds;
  for (size_t k = 0; k < trial.steps.size(); ++k) {
    const StageInterval& s = interval_.stages[trial.steps[k].stage];
    trial.busy_seconds[k] += s.seconds_per_item * s.items;
    trial.step_items[k] += s.items;
  }
  if (++trial.intervals < options_.trial_intervals) return {};

  const double x = trial.items / trial.seconds;
  const double gain = trial.baseline > 0 ? x / trial.baseline - 1 : 0;
  const bool grow = trial.steps.front().to > trial.steps.front().from;
  std::vector<double> latency(trial.steps.size(), 0.0);
  for (size_t k = 0; k < trial.steps.size(); ++k) {
    if (trial.step_items[k] > 0) {
      latency[k] = trial.busy_seconds[k] / trial.step_items[k];
    }
    const double before = trial.baseline_latency[k];
    const AdaptiveStage* a = Adaptive(trial.steps[k].stage);
    if (!grow || a == nullptr || !a->io || before <= 0) continue;
    if (latency[k] > options_.io_latency_rise * before) {
      return Undo(t, Format("latency %+.0f%% per item, the store pushes back",
                            Percent(latency[k] / before - 1)));
    }
  }

  if (grow ? gain > options_.dead_band : gain >= -options_.dead_band) {
    ewma_ = x;
    for (size_t k = 0; k < trial.steps.size(); ++k) {
      const Step& step = trial.steps[k];
      if (latency[k] > 0) latency_ewma_[step.stage] = latency[k];
      // A stage just shrunk for lack of input should not grow straight back
      // on one busy interval.
      if (!grow) CoolDown({step.stage, step.to, step.from}, t);
    }
    if (grow) last_gain_ = gain;
    trial_.reset();
    settled_ = options_.trial_intervals;
    return {};
  }
  // A step that helped nothing while its stage used the new worker hit a
  // limit outside the pipeline (cores, the store). One whose new worker
  // idles shows that another stage limits as well: grow that one too.
  const Step& last = trial.steps.back();
  const double busy_workers = trial.busy_seconds.back() / trial.seconds;
  if (grow &&
      busy_workers - trial.baseline_busy_workers.back() <
          options_.new_worker_min_use &&
      trial.steps.size() < static_cast<size_t>(options_.max_joint_steps)) {
    if (std::optional<size_t> b = Bottleneck(t)) {
      const StageInterval& s = interval_.stages[*b];
      return {Begin(
          {*b, s.concurrency, s.concurrency + 1},
          Format("busy %.0f%% after %s %d->%d (%+.0f%% samples/s); "
                 "judged together",
                 Percent(s.busy), interval_.stages[last.stage].name.c_str(),
                 last.from, last.to, Percent(gain)))};
    }
  }
  return Undo(
      t, grow ? Format("%+.0f%% samples/s, within the %.0f%% dead band",
                       Percent(gain), Percent(options_.dead_band))
              : Format("%+.0f%% samples/s without the worker", Percent(gain)));
}

std::vector<Decision> ConcurrencyController::Undo(double t,
                                                  const std::string& why) {
  std::vector<Decision> out;
  const std::vector<Step>& steps = trial_->steps;
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    CoolDown(*it, t);
    const std::string& name = interval_.stages[it->stage].name;
    out.push_back(
        {it->stage, it->to, it->from,
         Format("%s %d->%d: undo, ", name.c_str(), it->to, it->from) + why});
  }
  trial_.reset();
  settled_ = 0;
  last_gain_.reset();
  return out;
}

Decision ConcurrencyController::Begin(const Step& step, std::string why) {
  if (!trial_) {
    // Trial() spelled out: clang cannot use the nested struct's default
    // member initializers for emplace() within the enclosing class.
    trial_.emplace(Trial());
    trial_->baseline = ewma_;
  }
  Trial& trial = *trial_;
  trial.steps.push_back(step);
  const StageInterval& s = interval_.stages[step.stage];
  trial.baseline_latency.push_back(latency_ewma_[step.stage]);
  trial.baseline_busy_workers.push_back(s.busy * s.concurrency);
  // A joint step restarts the measurement: only intervals with every step
  // in place say what the steps do together.
  trial.intervals = 0;
  trial.items = trial.seconds = 0;
  trial.busy_seconds.assign(trial.steps.size(), 0.0);
  trial.step_items.assign(trial.steps.size(), 0.0);
  return {step.stage, step.from, step.to,
          Format("%s %d->%d: ", s.name.c_str(), step.from, step.to) + why};
}

std::optional<size_t> ConcurrencyController::Bottleneck(double t) const {
  // The last saturated stage limits the pipeline: growing any stage before
  // it would only lengthen the queue in front of it. Stages on trial are
  // passed over: Judge() asks only once their new workers idle.
  for (size_t i = interval_.stages.size(); i-- > 0;) {
    if (!Saturated(i) || OnTrial(i)) continue;
    const AdaptiveStage* a = Adaptive(i);
    if (a == nullptr) return std::nullopt;
    const int c = interval_.stages[i].concurrency;
    const bool memory_full =
        interval_.budget_bytes > 0 &&
        interval_.budget_in_use >
            options_.memory_cap * static_cast<double>(interval_.budget_bytes);
    if (c >= a->max_concurrency ||
        TotalWorkers() >= options_.max_threads_total || memory_full ||
        CoolingDown(i, c, c + 1, t)) {
      return std::nullopt;
    }
    return i;
  }
  return std::nullopt;
}

std::optional<size_t> ConcurrencyController::Starved(double t) const {
  std::optional<size_t> starved;
  for (const AdaptiveStage& a : options_.stages) {
    if (Adaptive(a.stage) != &a) continue;
    const StageInterval& s = interval_.stages[a.stage];
    if (s.concurrency <= a.min_concurrency ||
        s.wait_input < options_.starved_wait ||
        s.busy >= options_.busy_threshold ||
        CoolingDown(a.stage, s.concurrency, s.concurrency - 1, t)) {
      continue;
    }
    if (!starved || s.wait_input > interval_.stages[*starved].wait_input) {
      starved = a.stage;
    }
  }
  return starved;
}

bool ConcurrencyController::Saturated(size_t stage) const {
  const StageInterval& s = interval_.stages[stage];
  return s.busy >= options_.busy_threshold &&
         (s.wait_input <= options_.input_wait_max ||
          s.input_queue >= options_.input_queue_min);
}

bool ConcurrencyController::OnTrial(size_t stage) const {
  if (!trial_) return false;
  for (const Step& step : trial_->steps) {
    if (step.stage == stage) return true;
  }
  return false;
}

bool ConcurrencyController::CoolingDown(size_t stage, int from, int to,
                                        double t) const {
  auto it = cooldowns_.find({stage, from, to});
  return it != cooldowns_.end() && t < it->second.until;
}

void ConcurrencyController::CoolDown(const Step& step, double t) {
  Cooldown& c = cooldowns_[{step.stage, step.from, step.to}];
  c.seconds = c.seconds > 0
                  ? std::min(2 * c.seconds, options_.max_cooldown_seconds)
                  : options_.cooldown_seconds;
  c.until = t + c.seconds;
}

const AdaptiveStage* ConcurrencyController::Adaptive(size_t stage) const {
  if (stage >= interval_.stages.size() ||
      interval_.stages[stage].concurrency < 1) {
    return nullptr;  // missing or serial in order
  }
  for (const AdaptiveStage& a : options_.stages) {
    if (a.stage == stage) return &a;
  }
  return nullptr;
}

int ConcurrencyController::TotalWorkers() const {
  int total = 0;
  for (const StageInterval& s : interval_.stages) {
    total += std::max(0, s.concurrency);
  }
  return total;
}

void ProfileRecorder::Add(const PipelineInterval& interval,
                          const std::vector<Decision>& decisions,
                          uint64_t rss_bytes,
                          std::optional<double> consumer_stall) {
  intervals_.push_back({interval, decisions, rss_bytes, consumer_stall});
}

std::string ProfileRecorder::ToJson() const {
  using nlohmann::json;
  json stages = json::array();
  if (!intervals_.empty()) {
    for (const StageInterval& s : intervals_.front().interval.stages) {
      stages.push_back(s.name);
    }
  }
  json intervals = json::array();
  json decisions = json::array();
  for (const Entry& e : intervals_) {
    const PipelineInterval& iv = e.interval;
    json concurrency = json::array(), busy = json::array(),
         wait_input = json::array(), blocked_output = json::array();
    for (const StageInterval& s : iv.stages) {
      concurrency.push_back(s.concurrency);
      busy.push_back(s.busy);
      wait_input.push_back(s.wait_input);
      blocked_output.push_back(s.blocked_output);
    }
    intervals.push_back({{"t", iv.t},
                         {"samples_per_s", iv.samples_per_s},
                         {"mb_per_s", iv.bytes_per_s / 1e6},
                         {"concurrency", std::move(concurrency)},
                         {"busy", std::move(busy)},
                         {"wait_input", std::move(wait_input)},
                         {"blocked_output", std::move(blocked_output)},
                         {"budget_in_use", iv.budget_in_use},
                         {"budget_bytes", iv.budget_bytes},
                         {"rss_bytes", e.rss_bytes}});
    if (e.consumer_stall)
      intervals.back()["consumer_stall"] = *e.consumer_stall;
    for (const Decision& d : e.decisions) {
      const std::string name =
          d.stage < iv.stages.size() ? iv.stages[d.stage].name : "";
      decisions.push_back({{"t", iv.t},
                           {"stage", name},
                           {"from", d.from},
                           {"to", d.to},
                           {"reason", d.reason}});
    }
  }
  json root = {{"version", 1},
               {"kind", kind_},
               {"stages", std::move(stages)},
               {"intervals", std::move(intervals)},
               {"decisions", std::move(decisions)}};
  // Stage names come from the caller; invalid UTF-8 is replaced rather than
  // thrown about.
  return root.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Status ProfileRecorder::WriteFile(const std::string& path) const {
  const std::string text = ToJson();
  const std::string temp = path + ".tmp";
  std::FILE* file = std::fopen(temp.c_str(), "wb");
  if (file == nullptr) return ErrnoStatus("write profile " + temp, errno);
  const bool written =
      std::fwrite(text.data(), 1, text.size(), file) == text.size();
  const int write_errno = errno;
  if (std::fclose(file) != 0 || !written) {
    const int err = written ? errno : write_errno;
    std::remove(temp.c_str());
    return ErrnoStatus("write profile " + temp, err);
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(temp.c_str());
    return ErrnoStatus("write profile " + path, err);
  }
  return Status::OK();
}

}  // namespace shoal
