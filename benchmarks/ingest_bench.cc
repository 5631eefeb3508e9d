// shoal_ingest_bench: the write graph (shoal::Ingest on an image folder)
// against a store with a fixed latency per write, adaptive worker counts
// against static sweeps of the write stage.
//
//   shoal_ingest_bench DIR [--tmp /tmp/shoal-ingest-bench/slow]
//       [--latency-ms 20] [--chunk-bytes 1MiB] [--writes 1,2,4,8,16]
//       [--others 2|adaptive] [--repeats 3] [--memory-budget 256MiB]
//       [--no-check]
//
// The store "slow://PATH" is "file://PATH" with a sleep of --latency-ms
// before every Write, WriteAtomic and WriteIfAbsent (chunks, metadata,
// commits and the LOCK alike), like a remote object store's per-request
// latency; reads are not delayed. It is registered with StoreRegistry the
// way tests/loader/ingest_test.cc registers its FaultyStore.
//
// Runs: "adaptive" (no pinned counts: the controller adapts every stage)
// and, for each N of --writes, write=N with every other parallel stage
// pinned at --others (a number) or left adaptive (--others adaptive). Every
// repeat runs every configuration once, in an order rotated by one per
// repeat so that a slow minute of a shared machine does not always hit the
// same one. Each run ingests DIR into a fresh dataset (removed afterwards,
// untimed) with the decode check on (unless --no-check) and the given
// --chunk-bytes: small chunks mean many chunk writes, so the latency
// matters. images/s = images / wall time of the Ingest() call.
//
// Output: one line per run, then a table of median, min and max images/s
// per configuration and the ratio adaptive ÷ best static (medians). Not a
// ctest test.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "format/store.h"
#include "loader/ingestor.h"
#include "loader/source.h"

namespace shoal {
namespace {

using Clock = std::chrono::steady_clock;

std::atomic<int> g_latency_ms{20};
std::atomic<uint64_t> g_writes{0};

class SlowStore final : public ForwardingStore {
 public:
  SlowStore(std::shared_ptr<Store> inner, std::string location)
      : ForwardingStore(std::move(inner)), location_(std::move(location)) {}
  std::string url() const override { return "slow://" + location_; }
  Status Write(std::string_view key, ByteSpan data) override {
    Delay();
    return ForwardingStore::Write(key, data);
  }
  Status WriteAtomic(std::string_view key, ByteSpan data) override {
    Delay();
    return ForwardingStore::WriteAtomic(key, data);
  }
  Status WriteIfAbsent(std::string_view key, ByteSpan data) override {
    Delay();
    return ForwardingStore::WriteIfAbsent(key, data);
  }

 private:
  static void Delay() {
    ++g_writes;
    const int ms = g_latency_ms.load();
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }
  std::string location_;
};

void RegisterSlowStore() {
  static const bool done = StoreRegistry::Register(
      "slow",
      [](std::string_view location,
         const StoreOptions& options) -> Result<std::shared_ptr<Store>> {
        SHOAL_ASSIGN_OR_RETURN(
            auto inner, OpenStore("file://" + std::string(location), options));
        return std::shared_ptr<Store>(
            std::make_shared<SlowStore>(inner, std::string(location)));
      });
  (void)done;
}

struct Config {
  std::string name;
  std::map<std::string, int> workers;
};

struct Run {
  double images_per_second = 0;
  double seconds = 0;
  uint64_t writes = 0;
  std::string final_workers;
  size_t decisions = 0;
  std::string stages;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int Main(int argc, char** argv) {
  CLI::App app{
      "shoal::Ingest of an image folder into a store with a fixed "
      "latency per write: adaptive workers against static write "
      "sweeps"};
  std::string dir;
  std::string tmp = "/tmp/shoal-ingest-bench/slow";
  int latency_ms = 20;
  uint64_t chunk_bytes = 1 << 20;
  std::vector<int> writes = {1, 2, 4, 8, 16};
  std::string others = "2";
  int repeats = 3;
  uint64_t budget = 256ull << 20;
  bool no_check = false;
  app.add_option("DIR", dir, "The image folder")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--tmp", tmp,
                 "Where the datasets go (each removed after its run)")
      ->capture_default_str();
  app.add_option("--latency-ms", latency_ms, "Sleep before every store write")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  app.add_option("--chunk-bytes", chunk_bytes, "Chunk size of the image tensor")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--writes", writes, "Static write-stage worker counts")
      ->delimiter(',');
  app.add_option(
         "--others", others,
         "Other parallel stages in the static runs: a count, or 'adaptive'")
      ->capture_default_str();
  app.add_option("--repeats", repeats, "Runs of each configuration")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--memory-budget", budget, "IngestOptions::memory_budget")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_flag("--no-check", no_check, "Skip the decode check");
  CLI11_PARSE(app, argc, argv);

  RegisterSlowStore();
  g_latency_ms = latency_ms;
  std::vector<Config> configs = {{"adaptive", {}}};
  for (int n : writes) {
    Config c{"write=" + std::to_string(n) +
                 (others == "adaptive" ? " (others adaptive)"
                                       : ", others=" + others),
             {}};
    c.workers["write"] = n;
    if (others != "adaptive") {
      const int o = std::stoi(others);
      for (const char* s : {"read", "prepare", "compress"}) c.workers[s] = o;
    }
    configs.push_back(std::move(c));
  }
  std::printf(
      "# %s, latency %d ms per write, chunk bytes %llu, decode check %s, "
      "budget %llu MiB, %d repeats, %u hardware threads\n",
      dir.c_str(), latency_ms, static_cast<unsigned long long>(chunk_bytes),
      no_check ? "off" : "on", static_cast<unsigned long long>(budget >> 20),
      repeats, std::thread::hardware_concurrency());
  std::vector<std::vector<Run>> runs(configs.size());
  std::filesystem::create_directories(tmp);
  int serial = 0;
  for (int rep = 0; rep < repeats; ++rep) {
    for (size_t j = 0; j < configs.size(); ++j) {
      const size_t k = (j + rep) % configs.size();
      const Config& c = configs[k];
      const std::string path = tmp + "/ds" + std::to_string(serial++);
      std::filesystem::remove_all(path);
      ImageFolderOptions fo;
      fo.check = !no_check;
      fo.max_chunk_bytes = chunk_bytes;
      auto source = MakeImageFolderSource(dir, fo);
      IngestOptions io;
      io.memory_budget = budget;
      io.workers = c.workers;
      g_writes = 0;
      const auto start = Clock::now();
      auto report = Ingest(*source, "slow://" + path, io);
      const double seconds =
          std::chrono::duration<double>(Clock::now() - start).count();
      if (!report.ok()) {
        std::fprintf(stderr, "ingest_bench: %s: %s\n", c.name.c_str(),
                     report.status().ToString().c_str());
        return 1;
      }
      Run r;
      r.seconds = seconds;
      r.images_per_second = report->rows_added / seconds;
      r.writes = g_writes;
      r.decisions = report->decisions.size();
      for (const StageMetrics& s : report->metrics.stages) {
        char part[160];
        std::snprintf(part, sizeof(part),
                      " %s(c=%d busy=%.2fs wait_in=%.2fs blocked=%.2fs)",
                      s.name.c_str(), s.concurrency, s.busy_seconds,
                      s.wait_input_seconds, s.blocked_output_seconds);
        r.stages += part;
        if (s.concurrency > 0) {
          if (!r.final_workers.empty()) r.final_workers += ' ';
          r.final_workers += s.name + "=" + std::to_string(s.concurrency);
        }
      }
      std::printf(
          "run %d %-32s %7.1f images/s %6.2f s, %llu store writes, "
          "final %s, %zu decisions;%s; feeder budget wait %.2fs\n",
          rep, c.name.c_str(), r.images_per_second, seconds,
          static_cast<unsigned long long>(r.writes), r.final_workers.c_str(),
          r.decisions, r.stages.c_str(),
          report->metrics.feeder_budget_wait_seconds);
      if (c.workers.empty()) {
        for (const std::string& d : report->decisions)
          std::printf("    %s\n", d.c_str());
      }
      std::fflush(stdout);
      runs[k].push_back(std::move(r));
      std::filesystem::remove_all(path);
    }
  }
  std::printf(
      "\n| configuration | images/s median | min | max "
      "|\n|---|---:|---:|---:|\n");
  double best = 0;
  std::string best_name;
  double adaptive = 0;
  for (size_t k = 0; k < configs.size(); ++k) {
    std::vector<double> v;
    for (const Run& r : runs[k]) v.push_back(r.images_per_second);
    const double med = Median(v);
    std::printf("| %s | %.1f | %.1f | %.1f |\n", configs[k].name.c_str(), med,
                *std::min_element(v.begin(), v.end()),
                *std::max_element(v.begin(), v.end()));
    if (k == 0) {
      adaptive = med;
    } else if (med > best) {
      best = med;
      best_name = configs[k].name;
    }
  }
  std::printf("\nadaptive / best static (%s) = %.3f\n", best_name.c_str(),
              best > 0 ? adaptive / best : 0);
  return 0;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) { return shoal::Main(argc, argv); }
