// The write graph's internals, shared by ingestor.cc (opening the
// destination, resuming, building and running the pipeline, reporting) and
// ingest_stages.cc (the feeder and the bodies of the read, prepare, append
// stages and the consumer). Not installed.
#ifndef SHOAL_LOADER_INTERNAL_INGESTION_H_
#define SHOAL_LOADER_INTERNAL_INGESTION_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "format/dataset.h"
#include "format/lock.h"
#include "loader/ingestor.h"
#include "loader/internal/ingest_control.h"
#include "loader/internal/source_util.h"
#include "loader/pipeline.h"

namespace shoal::ingest_internal {

using Clock = std::chrono::steady_clock;

inline double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Records per pipeline item at most: enough to amortize the per-item
// overhead, few enough that a run of small records spreads over workers.
inline constexpr size_t kMaxRecordsPerItem = 64;

// Stages, in pipeline order.
enum Stage : size_t { kRead, kPrepare, kAppend, kCompress, kWrite };
inline constexpr const char* kStageNames[] = {"read", "prepare", "append",
                                              "compress", "write"};

// One pipeline item: a run of consecutive records, the bytes read for them,
// the chunks the in-order append cut from them and maybe a commit.
struct IngestItem {
  std::vector<Record> records;  // the first `n` are this item's
  size_t n = 0;
  std::vector<Status> errors;  // per record: a bad record, skipped
  // One allocation holds every record's read bytes; records' inputs are
  // slices of it. Reused while nothing else holds a slice.
  std::shared_ptr<std::byte[]> arena;
  uint64_t arena_size = 0;
  std::vector<Buffer> inputs;
  // Filled by the append stage.
  std::vector<PendingChunk> chunks;
  // Commit points cut while appending, in order (a big item may hold
  // several --commit-every points); each covers chunks of this item or
  // earlier ones, all written before the consumer commits them.
  std::vector<CommitPointPtr> commits;
  std::vector<std::string> skipped;
  uint64_t rows = 0;
  uint64_t input_bytes = 0;
  uint64_t read_bytes = 0;  // into the arena
  uint64_t read_cost = 0;   // admitted for them: read_bytes x expansion
  uint64_t cost = 0;        // what the feeder took from the budget for it
  // Bytes charged to the budget beyond the item's cost (prepared samples
  // the sources allocated, chunks cut); the consumer gives them back.
  std::atomic<int64_t> charged{0};

  void Reset() {
    n = 0;
    chunks.clear();
    commits.clear();
    skipped.clear();
    rows = input_bytes = 0;
    charged.store(0);
  }
};

// The last record's name is kept printable (names need not be UTF-8, JSON
// strings must be); resume compares it with the printable name the source
// plans now, which maps distinct bytes to distinct text.
inline std::string WriterState(const std::string& source, uint64_t records,
                               uint64_t rows_before, const std::string& last) {
  nlohmann::json j = {{"source", internal::PrintableName(source)},
                      {"records", records},
                      {"rows_before", rows_before},
                      {"last_record", internal::PrintableName(last)}};
  return j.dump();
}

/// The tensors' specs must agree with what the source makes (append, resume).
Status CheckSchema(const Dataset& ds, const std::vector<TensorSpec>& specs);
/// Appends one prepared record, in order. Errors are the dataset's.
Status AppendRecord(const std::vector<Tensor*>& tensors, Record& record);

class Ingestion {
 public:
  Ingestion(Source& source, std::string url, const IngestOptions& options)
      : source_(source), url_(std::move(url)), options_(options) {}

  Result<IngestReport> Run();

 private:
  Status OpenDataset(const SourceScan& scan);
  Status Resume();
  Status BuildPipeline();
  Status Feed(uint64_t seq, IngestItem& item, uint64_t* cost);
  Status ReadStage(IngestItem& item) const;
  Status PrepareStage(IngestItem& item);
  Status AppendStage(IngestItem& item);
  Status Consume(IngestItem& item);
  Status FinalCommit();
  void ReportProgress(bool last);
  std::string WorkersLine() const;
  Status Fail(Status s);

  Source& source_;
  std::string url_;
  const IngestOptions& options_;
  IngestReport report_;
  Clock::time_point start_ = Clock::now();
  std::unique_ptr<DatasetLock> lock_;  // outlives ds_ (declared first)
  std::unique_ptr<Dataset> ds_;
  std::vector<Tensor*> tensors_;
  std::unique_ptr<Pipeline<IngestItem>> pipeline_;
  // The same pipeline, for stage bodies: they may still run while the
  // pipeline is destroyed (its destructor waits for them), when pipeline_
  // already reads null.
  Pipeline<IngestItem>* pipe_ = nullptr;
  std::unique_ptr<internal::IngestControl> control_;
  uint64_t records_total_ = 0;
  uint64_t input_total_ = 0;
  uint64_t target_item_bytes_ = 0;
  // What preparing a record makes of each byte read (a JPEG decoded to
  // pixels: ~13x; kept as it came: 1x), learnt from the items prepared so
  // far: items are admitted at what they will hold once prepared, not at
  // their file size, so that conversions stay within the budget.
  // Until the first item is prepared it is unknown, and items take one
  // record each, so that what is in flight before anything was learnt stays
  // at most max_in_flight records.
  std::atomic<double> expansion_{1.0};
  std::atomic<bool> expansion_learnt_{false};

  // Feeder thread.
  uint64_t next_record_ = 0;
  bool source_done_ = false;
  bool source_exhausted_ = false;  // the source had no more records
  // Append stage (serial).
  uint64_t rows_before_ = 0;  // rows in the dataset before this ingestion
  uint64_t records_appended_ = 0;
  uint64_t rows_appended_ = 0;
  std::string last_record_;
  uint64_t rows_at_last_commit_ = 0;
  uint64_t open_charged_ = 0;  // open chunk bytes charged to the budget
  Clock::time_point last_commit_time_ = Clock::now();
  // Consumer (calling thread).
  uint64_t records_done_ = 0;
  uint64_t rows_done_ = 0;
  uint64_t input_done_ = 0;
  double last_progress_ = -1;
  std::string last_workers_;
  bool created_ = false;
};

}  // namespace shoal::ingest_internal

#endif  // SHOAL_LOADER_INTERNAL_INGESTION_H_
