// IngestControl: the worker counts of the write graph's parallel stages,
// pinned by IngestOptions::workers or adapted by the controller
// (loader/controller.h) on a thread of its own that samples the pipeline's
// metrics every interval; and the --profile timeline of what it saw.
//
// Thread-safety: Count() from the consumer thread; the rest from the thread
// that runs the ingestion. The controller thread calls the callbacks given
// to Start() and IngestOptions::on_decision.
#ifndef SHOAL_LOADER_INTERNAL_INGEST_CONTROL_H_
#define SHOAL_LOADER_INTERNAL_INGEST_CONTROL_H_

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "loader/controller.h"
#include "loader/ingestor.h"

namespace shoal::internal {

/// The write graph's stages, in pipeline order.
inline constexpr size_t kIngestStages = 5;

class IngestControl {
 public:
  using Metrics = std::function<PipelineMetrics()>;
  using SetConcurrency = std::function<Status(size_t stage, int workers)>;

  /// InvalidArgument for a --workers entry naming no parallel stage or out
  /// of range.
  static Result<std::unique_ptr<IngestControl>> Make(
      const IngestOptions& options, const char* const* stage_names, int cores,
      int max_workers);
  ~IngestControl();

  /// Workers of each stage at the start (ignored for the serial stage).
  std::array<int, kIngestStages> InitialWorkers() const { return initial_; }
  /// Threads the pipeline needs: the cap of adaptive stages together, or
  /// the sum of pinned counts.
  int Threads() const;
  /// Starts sampling (and adapting, unless pinned).
  void Start(Metrics metrics, SetConcurrency set);
  /// Rows and input bytes done so far (the consumer's count).
  void Count(uint64_t rows, uint64_t input_bytes) {
    rows_.store(rows, std::memory_order_relaxed);
    bytes_.store(input_bytes, std::memory_order_relaxed);
  }
  /// Stops the thread (idempotent).
  void Stop();
  std::vector<std::string> decisions() const;
  /// Writes the profile, if asked for.
  Status WriteProfile() const;

 private:
  IngestControl(const IngestOptions& options, const char* const* names);
  void Loop();
  ControllerOptions ControllerSetup() const;

  const IngestOptions& options_;
  const char* const* names_;
  std::array<int, kIngestStages> initial_{};
  std::array<bool, kIngestStages> adaptive_{};
  int cores_ = 1;
  int max_workers_ = 1;
  Metrics metrics_;
  SetConcurrency set_;
  std::atomic<uint64_t> rows_{0};
  std::atomic<uint64_t> bytes_{0};
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<std::string> decisions_;
  ProfileRecorder profile_;
};

}  // namespace shoal::internal

#endif  // SHOAL_LOADER_INTERNAL_INGEST_CONTROL_H_
