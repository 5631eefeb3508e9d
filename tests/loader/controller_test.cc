// Tests of the adaptive concurrency controller (loader/controller.h) on a
// simulated pipeline: each stage has a CPU cost and a store latency per item,
// the cores are shared, and the store serves a limited number of requests at
// once. The model turns a concurrency setting into the metrics a real
// pipeline would report, so the controller is tested on what it sees.
//
// Setting SHOAL_CONTROLLER_PROFILE=FILE makes the re-adaptation test write
// its JSON profile there (a sample for scripts/plot-profile.py).
#include "loader/controller.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "base/random.h"

namespace shoal {
namespace {

constexpr double kInterval = 0.25;

struct ModelStage {
  std::string name;
  double cpu = 0;  // CPU seconds per item, stretched when cores are short
  double io = 0;   // seconds per item waiting on a store, using no CPU
  // Requests the store serves at once; beyond that, latency grows as
  // (workers / io_parallel)^pushback: 1 is plain queueing (throughput stays
  // flat), more is a store that throttles (throughput falls).
  int io_parallel = 1 << 20;
  double pushback = 1;
  bool serial = false;
};

// A fluid model of the pipeline in steady state.
class Model {
 public:
  struct Flow {
    double samples_per_s = 0;
    std::vector<double> latency;  // seconds per item
  };

  Model(std::vector<ModelStage> stages, double cores)
      : stages_(std::move(stages)), cores_(cores) {}

  void set_stages(std::vector<ModelStage> stages) {
    stages_ = std::move(stages);
  }
  void set_noise(double noise) { noise_ = noise; }
  void set_budget_use(double fraction) { budget_use_ = fraction; }
  size_t size() const { return stages_.size(); }
  const ModelStage& stage(size_t i) const { return stages_[i]; }

  int Workers(size_t i, const std::vector<int>& c) const {
    return stages_[i].serial ? 1 : c[i];
  }

  // Every stage runs at most Workers / latency items per second. When the
  // CPU work asked for exceeds the cores, CPU time stretches (by `stretch`)
  // until the throughput fits in the cores; the stage that then runs out of
  // workers first is the one that shows busy.
  Flow Solve(const std::vector<int>& c) const {
    auto latency = [&](size_t i, double stretch) {
      const ModelStage& s = stages_[i];
      const double queued = std::max(1.0, double(c[i]) / s.io_parallel);
      return s.cpu * stretch + s.io * std::pow(queued, s.pushback);
    };
    auto capacity = [&](double stretch) {
      double x = std::numeric_limits<double>::infinity();
      for (size_t i = 0; i < stages_.size(); ++i) {
        x = std::min(x, Workers(i, c) / latency(i, stretch));
      }
      return x;
    };
    double cpu = 0;
    for (const ModelStage& s : stages_) cpu += s.cpu;
    double stretch = 1;
    if (capacity(1) * cpu > cores_) {
      double lo = 1, hi = 1e6;
      for (int k = 0; k < 100; ++k) {
        const double mid = (lo + hi) / 2;
        (capacity(mid) * cpu > cores_ ? lo : hi) = mid;
      }
      stretch = hi;
    }
    Flow flow{capacity(stretch), {}};
    for (size_t i = 0; i < stages_.size(); ++i) {
      flow.latency.push_back(latency(i, stretch));
    }
    return flow;
  }

  // Runs `seconds` at setting `c` and returns the cumulative counters.
  PipelineMetrics Advance(const std::vector<int>& c, double seconds) {
    const Flow flow = Solve(c);
    const double noisy = 1 + random_.Uniform(-noise_, noise_);
    const double items = flow.samples_per_s * seconds * noisy;
    if (counters_.size() != stages_.size()) counters_.resize(stages_.size());
    for (size_t i = 0; i < stages_.size(); ++i) {
      const double workers = Workers(i, c);
      const double busy =
          std::min(1.0, flow.samples_per_s * flow.latency[i] / workers);
      Counters& k = counters_[i];
      k.items += items;
      k.busy += items * flow.latency[i];
      k.wait += (1 - busy) * workers * seconds;
      // Items pile up in front of a saturated stage, i.e. in the previous
      // stage's (or the feeder's) output.
      double& blocked = i == 0 ? feeder_blocked_ : counters_[i - 1].blocked;
      blocked += (busy > 0.98 ? 4.0 : 0.05) * seconds;
    }
    PipelineMetrics m;
    m.feeder.name = "feeder";
    m.feeder.blocked_output_seconds = feeder_blocked_;
    for (size_t i = 0; i < stages_.size(); ++i) {
      const Counters& k = counters_[i];
      StageMetrics s;
      s.name = stages_[i].name;
      s.concurrency = stages_[i].serial ? 0 : c[i];
      s.items = static_cast<uint64_t>(k.items);
      s.bytes = s.items * 100000;
      s.busy_seconds = k.busy;
      s.wait_input_seconds = k.wait;
      s.blocked_output_seconds = k.blocked;
      m.stages.push_back(s);
    }
    m.budget_bytes = 1ull << 30;
    m.budget_in_use = static_cast<uint64_t>(budget_use_ * m.budget_bytes);
    return m;
  }

 private:
  struct Counters {
    double items = 0, busy = 0, wait = 0, blocked = 0;
  };
  std::vector<ModelStage> stages_;
  double cores_;
  double noise_ = 0.02;
  double budget_use_ = 0.5;
  std::vector<Counters> counters_;
  double feeder_blocked_ = 0;
  SplitMix64 random_{7};
};

struct Timed {
  double t;
  Decision decision;
};

// Drives a controller against a model the way the ingestion job would:
// poll, apply the decisions, poll again.
class Harness {
 public:
  Harness(Model model, ControllerOptions options, std::vector<int> start)
      : model_(std::move(model)),
        options_(options),
        controller_(std::move(options)),
        c_(std::move(start)) {
    EXPECT_TRUE(controller_.Update(model_.Advance(c_, 0), 0).empty());
  }

  Model& model() { return model_; }
  const std::vector<int>& concurrency() const { return c_; }
  const std::vector<Timed>& decisions() const { return decisions_; }
  const ProfileRecorder& profile() const { return profile_; }
  // Noise-free samples/s of the setting in force during each interval.
  const std::vector<double>& throughput() const { return throughput_; }
  int max_total() const { return max_total_; }

  void Run(int intervals) {
    for (int k = 0; k < intervals; ++k) {
      throughput_.push_back(model_.Solve(c_).samples_per_s);
      t_ += kInterval;
      std::vector<Decision> ds =
          controller_.Update(model_.Advance(c_, kInterval), t_);
      if (const PipelineInterval* interval = controller_.interval()) {
        profile_.Add(*interval, ds, 200ull << 20);
      } else {
        EXPECT_TRUE(ds.empty());
      }
      for (const Decision& d : ds) {
        ASSERT_LT(d.stage, c_.size());
        EXPECT_EQ(c_[d.stage], d.from) << d.reason;
        EXPECT_NE(d.from, d.to) << d.reason;
        // One worker at a time, except that an I/O stage may double (and
        // a doubling be undone).
        bool io = false;
        for (const AdaptiveStage& a : options_.stages) {
          io |= a.stage == d.stage && a.io;
        }
        if (io) {
          EXPECT_TRUE(d.to <= 2 * d.from && d.from <= 2 * d.to) << d.reason;
        } else {
          EXPECT_EQ(std::abs(d.to - d.from), 1) << d.reason;
        }
        c_[d.stage] = d.to;
        decisions_.push_back({t_, d});
      }
      int total = 0;
      for (size_t i = 0; i < c_.size(); ++i) {
        if (!model_.stage(i).serial) total += c_[i];
      }
      max_total_ = std::max(max_total_, total);
      for (const AdaptiveStage& a : options_.stages) {
        EXPECT_GE(c_[a.stage], a.min_concurrency);
        EXPECT_LE(c_[a.stage], a.max_concurrency);
      }
    }
  }

  // Mean noise-free throughput of the last `n` intervals.
  double RecentThroughput(int n) const {
    const auto begin =
        throughput_.end() - std::min<size_t>(n, throughput_.size());
    return std::accumulate(begin, throughput_.end(), 0.0) /
           (throughput_.end() - begin);
  }

  std::string Log() const {
    std::string log;
    for (const Timed& d : decisions_) {
      log += std::to_string(d.t) + " " + d.decision.reason + "\n";
    }
    return log;
  }

  int Count(const std::string& reason_part) const {
    return std::count_if(decisions_.begin(), decisions_.end(), [&](auto& d) {
      return d.decision.reason.find(reason_part) != std::string::npos;
    });
  }

 private:
  Model model_;
  ControllerOptions options_;
  ConcurrencyController controller_;
  std::vector<int> c_;
  double t_ = 0;
  std::vector<Timed> decisions_;
  std::vector<double> throughput_;
  ProfileRecorder profile_;
  int max_total_ = 0;
};

// The best throughput any setting of the adaptive stages within the caps
// gives, by trying them all.
double BestStatic(const Model& model, const ControllerOptions& options,
                  std::vector<int> c) {
  double best = 0;
  std::function<void(size_t)> visit = [&](size_t k) {
    if (k == options.stages.size()) {
      int total = 0;
      for (size_t i = 0; i < c.size(); ++i) {
        if (!model.stage(i).serial) total += c[i];
      }
      if (total <= options.max_threads_total) {
        best = std::max(best, model.Solve(c).samples_per_s);
      }
      return;
    }
    const AdaptiveStage& a = options.stages[k];
    for (int n = a.min_concurrency; n <= a.max_concurrency; ++n) {
      c[a.stage] = n;
      visit(k + 1);
    }
  };
  visit(0);
  return best;
}

ControllerOptions Options(std::vector<AdaptiveStage> stages) {
  ControllerOptions options;
  options.stages = std::move(stages);
  return options;
}

TEST(MeasureIntervalTest, FractionsArePerWorkerAndQueuesPerSecond) {
  PipelineMetrics before, after;
  before.stages = {{.name = "decode", .concurrency = 4}};
  after.stages = {{.name = "decode",
                   .concurrency = 4,
                   .items = 50,
                   .bytes = 5000,
                   .busy_seconds = 1.5,
                   .wait_input_seconds = 0.25,
                   .blocked_output_seconds = 0.2}};
  after.feeder.blocked_output_seconds = 1.0;
  const PipelineInterval iv = MeasureInterval(before, after, 10.5, 0.5);
  EXPECT_DOUBLE_EQ(iv.t, 10.5);
  EXPECT_DOUBLE_EQ(iv.samples_per_s, 100);
  EXPECT_DOUBLE_EQ(iv.bytes_per_s, 10000);
  ASSERT_EQ(iv.stages.size(), 1u);
  EXPECT_DOUBLE_EQ(iv.stages[0].busy, 0.75);  // 1.5 s of 4 workers x 0.5 s
  EXPECT_DOUBLE_EQ(iv.stages[0].wait_input, 0.125);
  EXPECT_DOUBLE_EQ(iv.stages[0].blocked_output, 0.1);
  EXPECT_DOUBLE_EQ(iv.stages[0].input_queue, 2);  // 1 s waited in 0.5 s
  EXPECT_DOUBLE_EQ(iv.stages[0].seconds_per_item, 0.03);
}

TEST(ControllerTest, ExtendsIntervalsThatAreTooShortOrTooQuiet) {
  ConcurrencyController controller(Options({{.stage = 0}}));
  PipelineMetrics m;
  m.stages = {{.name = "decode", .concurrency = 1}};
  EXPECT_TRUE(controller.Update(m, 0).empty());
  m.stages[0].items = 100;
  EXPECT_TRUE(controller.Update(m, 0.05).empty());  // too short
  EXPECT_EQ(controller.interval(), nullptr);
  m.stages[0].items = 100;
  EXPECT_TRUE(controller.Update(m, 0.25).empty());
  ASSERT_NE(controller.interval(), nullptr);
  m.stages[0].items = 103;  // 3 items: too few to judge
  EXPECT_TRUE(controller.Update(m, 0.5).empty());
  EXPECT_EQ(controller.interval(), nullptr);
  m.stages[0].items = 110;  // the extended interval now has 10
  EXPECT_TRUE(controller.Update(m, 0.75).empty());
  ASSERT_NE(controller.interval(), nullptr);
  EXPECT_DOUBLE_EQ(controller.interval()->seconds, 0.5);
  EXPECT_DOUBLE_EQ(controller.interval()->samples_per_s, 20);
}

TEST(ControllerTest, GrowsTheBottleneck) {
  Model model({{.name = "read", .io = 0.001, .io_parallel = 8},
               {.name = "decode", .cpu = 0.010},
               {.name = "write", .io = 0.001, .io_parallel = 8}},
              /*cores=*/8);
  ControllerOptions options = Options(
      {{.stage = 0, .io = true}, {.stage = 1}, {.stage = 2, .io = true}});
  Harness h(model, options, {1, 1, 1});
  h.Run(40);
  ASSERT_FALSE(h.decisions().empty());
  EXPECT_EQ(h.decisions().front().decision.stage, 1u) << h.Log();
  EXPECT_EQ(h.decisions().front().decision.to, 2) << h.Log();
  EXPECT_NE(
      h.decisions().front().decision.reason.find("decode 1->2: busy 100%"),
      std::string::npos)
      << h.Log();
  EXPECT_GE(h.concurrency()[1], 6) << h.Log();
  EXPECT_EQ(h.concurrency()[0], 1) << h.Log();
  EXPECT_EQ(h.concurrency()[2], 1) << h.Log();
}

TEST(ControllerTest, BacksOffWhenAStepDoesNotHelp) {
  // Two cores, CPU-bound: a third decoder only shares the same two cores.
  Model model({{.name = "decode", .cpu = 0.010},
               {.name = "write", .cpu = 0.0002, .serial = true}},
              /*cores=*/2);
  Harness h(model, Options({{.stage = 0}}), {2, 0});
  h.Run(20);  // 5 s: one cool-down
  EXPECT_EQ(h.concurrency()[0], 2) << h.Log();
  EXPECT_EQ(h.Count("decode 2->3"), 1) << h.Log();
  EXPECT_EQ(h.Count("decode 3->2: undo"), 1) << h.Log();
  EXPECT_EQ(h.Count("dead band"), 1) << h.Log();
  // Retried as the cool-down ends, which doubles each time (5, 10, 20 s:
  // at 6, 16.5 and 37 s), and never kept.
  h.Run(140);  // to 40 s
  EXPECT_EQ(h.Count("decode 2->3"), 4) << h.Log();
  EXPECT_EQ(h.Count("decode 3->2: undo"), 4) << h.Log();
  EXPECT_EQ(h.concurrency()[0], 2) << h.Log();
  EXPECT_EQ(h.Count("decode 3->4"), 0) << h.Log();
}

TEST(ControllerTest, HoldsInsideTheDeadBand) {
  // A stage whose third worker adds 3% (a store that nearly saturates):
  // not worth a thread. A second model where it adds 10% keeps it.
  auto run = [](double gain) {
    const double pushback = 1 - std::log(1 + gain) / std::log(1.5);
    Model model({{.name = "upload",
                  .io = 0.01,
                  .io_parallel = 2,
                  .pushback = pushback}},
                /*cores=*/4);
    Harness h(model, Options({{.stage = 0}}), {2});
    h.Run(8);
    return h;
  };
  Harness small = run(0.03);
  EXPECT_EQ(small.concurrency()[0], 2) << small.Log();
  EXPECT_EQ(small.Count("upload 3->2: undo"), 1) << small.Log();
  Harness large = run(0.10);
  EXPECT_GE(large.concurrency()[0], 3) << large.Log();
  EXPECT_EQ(large.Count("upload 3->2"), 0) << large.Log();

  // At the best setting, noisy throughput alone never moves anything.
  Model steady({{.name = "decode", .cpu = 0.010}}, /*cores=*/2);
  steady.set_noise(0.04);
  Harness h(steady, Options({{.stage = 0}}), {2});
  h.Run(200);
  for (const Timed& d : h.decisions()) {
    EXPECT_TRUE(d.decision.reason.starts_with("decode 2->3: busy") ||
                d.decision.reason.starts_with("decode 3->2: undo"))
        << h.Log();
  }
  EXPECT_LE(h.decisions().size(), 2u * (200 * kInterval / 5 + 1)) << h.Log();
}

TEST(ControllerTest, NeverExceedsTheThreadCap) {
  Model model({{.name = "read", .io = 0.01, .io_parallel = 32},
               {.name = "write", .io = 0.02, .io_parallel = 32}},
              /*cores=*/2);
  ControllerOptions options =
      Options({{.stage = 0, .io = true}, {.stage = 1, .io = true}});
  options.max_threads_total = 7;
  Harness h(model, options, {1, 1});
  h.Run(120);
  EXPECT_LE(h.max_total(), 7) << h.Log();
  EXPECT_GE(h.RecentThroughput(8),
            0.95 * BestStatic(h.model(), options, {1, 1}))
      << h.Log();
}

TEST(ControllerTest, NeverExceedsAStageCap) {
  Model model({{.name = "write", .io = 0.02, .io_parallel = 32}}, 2);
  Harness h(model, Options({{.stage = 0, .max_concurrency = 3, .io = true}}),
            {1});
  h.Run(60);
  EXPECT_EQ(h.concurrency()[0], 3) << h.Log();
}

TEST(ControllerTest, StepsBackIntoItsBounds) {
  ControllerOptions options =
      Options({{.stage = 0, .min_concurrency = 2, .max_concurrency = 3}});
  ConcurrencyController controller(options);
  PipelineMetrics m;
  m.stages = {{.name = "write", .concurrency = 9}};
  EXPECT_TRUE(controller.Update(m, 0).empty());
  m.stages[0].items = 100;
  std::vector<Decision> ds = controller.Update(m, 0.25);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].to, 3) << ds[0].reason;
  EXPECT_NE(ds[0].reason.find("outside its bounds"), std::string::npos);
}

TEST(ControllerTest, DoesNotGrowWhenTheBudgetIsNearlyUsed) {
  Model model({{.name = "decode", .cpu = 0.010}}, /*cores=*/8);
  model.set_budget_use(0.95);
  Harness full(model, Options({{.stage = 0}}), {1});
  full.Run(40);
  EXPECT_TRUE(full.decisions().empty()) << full.Log();
  full.model().set_budget_use(0.5);
  full.Run(20);
  EXPECT_GE(full.concurrency()[0], 3) << full.Log();
}

TEST(ControllerTest, GrowsAnIoStageBeyondTheCores) {
  // A slow store: 20 ms per write, serving 16 at once, on 2 cores.
  Model model({{.name = "read", .io = 0.001, .io_parallel = 8},
               {.name = "compress", .cpu = 0.001},
               {.name = "write", .io = 0.020, .io_parallel = 16}},
              /*cores=*/2);
  ControllerOptions options = Options(
      {{.stage = 0, .io = true}, {.stage = 1}, {.stage = 2, .io = true}});
  Harness h(model, options, {1, 1, 1});
  h.Run(80);
  EXPECT_GE(h.concurrency()[2], 15) << h.Log();
  EXPECT_LE(h.concurrency()[2], 17) << h.Log();
  EXPECT_GE(h.RecentThroughput(8), 0.95 * 800) << h.Log();
}

TEST(ControllerTest, BacksOffAnIoStageWhenTheStorePushesBack) {
  // A store that throttles past 4 requests: latency grows with the square.
  Model model({{.name = "write", .io = 0.020, .io_parallel = 4, .pushback = 2}},
              /*cores=*/2);
  Harness h(model, Options({{.stage = 0, .io = true}}), {4});
  h.Run(16);
  EXPECT_EQ(h.concurrency()[0], 4) << h.Log();
  // The doubling is undone, then the one-worker step it falls back to.
  EXPECT_EQ(h.Count("write 8->4: undo, latency +"), 1) << h.Log();
  EXPECT_EQ(h.Count("write 5->4: undo, latency +"), 1) << h.Log();
  EXPECT_EQ(h.Count("the store pushes back"), 2) << h.Log();
}

TEST(ControllerTest, GrowsTwoStagesThatLimitTogether) {
  // At write = 5 both write and prepare run 250 items/s: neither step alone
  // helps, both together do.
  Model model({{.name = "prepare", .cpu = 0.004},
               {.name = "write", .io = 0.020, .io_parallel = 16}},
              /*cores=*/2);
  ControllerOptions options = Options({{.stage = 0}, {.stage = 1, .io = true}});
  Harness h(model, options, {1, 5});
  h.Run(40);
  ASSERT_GE(h.decisions().size(), 2u) << h.Log();
  EXPECT_TRUE(h.decisions()[0].decision.reason.starts_with("write 5->6: busy"))
      << h.Log();
  const std::string& joint = h.decisions()[1].decision.reason;
  EXPECT_TRUE(joint.starts_with("prepare 1->2: busy")) << h.Log();
  EXPECT_NE(joint.find("after write 5->6 ("), std::string::npos) << h.Log();
  EXPECT_TRUE(joint.ends_with("judged together")) << h.Log();
  EXPECT_EQ(h.Count("prepare 2->1"), 0) << h.Log();
  EXPECT_EQ(h.concurrency()[0], 2) << h.Log();
  EXPECT_GE(h.RecentThroughput(8), 0.95 * BestStatic(model, options, {1, 5}))
      << h.Log();
}

TEST(ControllerTest, ShrinksAStarvedStage) {
  Model model({{.name = "read", .io = 0.010, .io_parallel = 1},
               {.name = "decode", .cpu = 0.001}},
              /*cores=*/8);
  ControllerOptions options =
      Options({{.stage = 0, .max_concurrency = 1, .io = true}, {.stage = 1}});
  Harness h(model, options, {1, 6});
  h.Run(40);
  EXPECT_EQ(h.concurrency()[1], 1) << h.Log();
  EXPECT_EQ(h.Count("decode 6->5: waits for input"), 1) << h.Log();
  EXPECT_EQ(h.Count("undo"), 0) << h.Log();
}

TEST(ControllerTest, ForgetsCoolDownsWhenTheSituationChanges) {
  // A store serving 2 writes at once: a third writer does not help, and the
  // step is barred for 5 s, then 10 s.
  Model model({{.name = "decode", .cpu = 0.005},
               {.name = "write", .io = 0.020, .io_parallel = 2}},
              /*cores=*/8);
  Harness h(model, Options({{.stage = 0}, {.stage = 1}}), {1, 2});
  h.Run(40);  // 10 s
  EXPECT_EQ(h.Count("write 3->2: undo"), 2) << h.Log();
  // The store becomes fast and wide: throughput doubles at once, decode
  // limits, then both. The third writer is tried again well before its
  // cool-down (to 16.5 s) would have ended.
  h.model().set_stages({{.name = "decode", .cpu = 0.005},
                        {.name = "write", .io = 0.005, .io_parallel = 16}});
  h.Run(16);  // 14 s
  EXPECT_GE(h.concurrency()[1], 3) << h.Log();
  EXPECT_GE(h.concurrency()[0], 3) << h.Log();
}

// The write graph's shape: read, prepare (CPU), order (serial), compress
// (CPU), write (I/O), commit (serial).
std::vector<ModelStage> WriteGraph(double prepare_cpu, double write_io) {
  return {{.name = "read", .io = 0.002, .io_parallel = 8},
          {.name = "prepare", .cpu = prepare_cpu},
          {.name = "order", .cpu = 0.00005, .serial = true},
          {.name = "compress", .cpu = 0.001},
          {.name = "write", .io = write_io, .io_parallel = 16},
          {.name = "commit", .cpu = 0.00005, .serial = true}};
}

ControllerOptions WriteGraphOptions() {
  ControllerOptions options =
      Options({{.stage = 0, .max_concurrency = 12, .io = true},
               {.stage = 1, .max_concurrency = 12},
               {.stage = 3, .max_concurrency = 12},
               {.stage = 4, .max_concurrency = 24, .io = true}});
  options.max_threads_total = 40;
  return options;
}

TEST(ControllerTest, ReadaptsWhenTheBottleneckMoves) {
  const ControllerOptions options = WriteGraphOptions();
  Model model(WriteGraph(0.010, 0.001), /*cores=*/4);
  const std::vector<int> start = {1, 1, 0, 1, 1, 0};
  Harness h(model, options, start);

  // CPU-bound: prepare grows to the cores.
  h.Run(60);
  const double cpu_best = BestStatic(model, options, start);
  EXPECT_GE(h.RecentThroughput(8), 0.95 * cpu_best) << h.Log();
  EXPECT_GE(h.concurrency()[1], 4) << h.Log();
  EXPECT_LE(h.concurrency()[4], 2) << h.Log();

  // The store slows to 20 ms a write: write grows well past the cores.
  h.model().set_stages(WriteGraph(0.010, 0.020));
  h.Run(60);
  const double io_best = BestStatic(h.model(), options, start);
  EXPECT_GE(h.RecentThroughput(8), 0.95 * io_best) << h.Log();
  EXPECT_GE(h.concurrency()[4], 7) << h.Log();

  // The store is fast again: the idle writers are given back.
  h.model().set_stages(WriteGraph(0.010, 0.001));
  h.Run(60);
  EXPECT_GE(h.RecentThroughput(8), 0.95 * cpu_best) << h.Log();
  EXPECT_LE(h.concurrency()[4], 2) << h.Log();

  if (const char* path = std::getenv("SHOAL_CONTROLLER_PROFILE")) {
    EXPECT_TRUE(h.profile().WriteFile(path).ok());
  }
}

TEST(ControllerTest, ConvergesToTheBestStaticSetting) {
  struct Case {
    const char* name;
    std::vector<ModelStage> stages;
    double cores;
  };
  const std::vector<Case> cases = {
      {"cpu, 2 cores", WriteGraph(0.004, 0.001), 2},
      {"cpu, 8 cores", WriteGraph(0.010, 0.002), 8},
      {"slow store, 2 cores", WriteGraph(0.004, 0.020), 2},
      {"slow store, 8 cores", WriteGraph(0.004, 0.040), 8},
  };
  const ControllerOptions options = WriteGraphOptions();
  const std::vector<int> start = {1, 1, 0, 1, 1, 0};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Model model(c.stages, c.cores);
    const double best = BestStatic(model, options, start);
    Harness h(model, options, start);
    h.Run(240);  // 60 s
    const std::vector<double>& x = h.throughput();
    const auto reached = std::find_if(
        x.begin(), x.end(), [&](double v) { return v >= 0.95 * best; });
    EXPECT_LE(reached - x.begin(), 100) << "best " << best << "\n" << h.Log();
    EXPECT_GE(h.RecentThroughput(120), 0.95 * best) << "best " << best << "\n"
                                                    << h.Log();
  }
}

TEST(ProfileRecorderTest, WritesTheProfile) {
  ProfileRecorder recorder;
  PipelineInterval iv;
  iv.t = 1.5;
  iv.samples_per_s = 120;
  iv.bytes_per_s = 3e6;
  iv.stages = {{.name = "decode", .concurrency = 2, .busy = 0.5},
               {.name = "commit", .concurrency = 0}};
  iv.budget_bytes = 1000;
  iv.budget_in_use = 10;
  recorder.Add(iv, {{.stage = 0, .from = 2, .to = 3, .reason = "decode 2->3"}},
               4096);
  const std::string json = recorder.ToJson();
  for (const char* part :
       {"\"version\":1", "\"stages\":[\"decode\",\"commit\"]",
        "\"mb_per_s\":3.0", "\"concurrency\":[2,0]", "\"busy\":[0.5,0.0]",
        "\"rss_bytes\":4096", "\"budget_bytes\":1000",
        "{\"from\":2,\"reason\":\"decode 2->3\",\"stage\":\"decode\",\"t\":1.5,"
        "\"to\":3}"}) {
    EXPECT_NE(json.find(part), std::string::npos) << part << " in " << json;
  }
  const std::string path =
      ::testing::TempDir() + "/controller_test_profile.json";
  ASSERT_TRUE(recorder.WriteFile(path).ok());
  std::FILE* file = std::fopen(path.c_str(), "rb");
  ASSERT_NE(file, nullptr);
  std::string read(json.size() + 1, '\0');
  read.resize(std::fread(read.data(), 1, read.size(), file));
  std::fclose(file);
  EXPECT_EQ(read, json);
  std::remove(path.c_str());

  const Status missing = recorder.WriteFile("/nonexistent-dir/profile.json");
  EXPECT_EQ(missing.code(), StatusCode::kNotFound) << missing;
}

}  // namespace
}  // namespace shoal
