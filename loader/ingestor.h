// Ingest: the write graph. Records of a Source (loader/source.h) go into a
// dataset through the same Pipeline<T> core as the Loader's read graph:
//
//   plan ──► read ──► prepare ──► append ──► compress ──► write ──► commit
//   (feeder,  (I/O,    (decode     (serial,   (parallel,   (I/O,     (serial,
//   the
//    serial)   par.)    check...,   in order:  block-wise   par.)     calling
//                       par.)       cuts        lz4/zstd)             thread)
//                                   chunks)
//
// - The dataset is a pure function of the source and the options: the same
//   samples, chunk boundaries and chunk bytes at any worker count, with the
//   adaptive controller or without, and after a resume.
// - Commits happen every `commit_every_rows` rows or `commit_every_seconds`
//   seconds (whichever comes first): a reader opening the dataset meanwhile
//   sees the last commit, whole; a killed ingestion keeps it, and `resume`
//   continues from it. Commits copy the open chunks instead of closing them,
//   so they do not move chunk boundaries (format/staged_write.h).
// - Memory: every item's read-ahead bytes, the samples prepared from them
//   and the chunks cut and in flight are charged to one byte budget.
// - Worker counts: `workers` pins them; otherwise a controller
//   (loader/controller.h) samples the pipeline every ~250 ms and grows the
//   bottleneck stage or backs off, and says why.
// - One writer at a time: the dataset's write lock (format/lock.h) is held
//   for the whole ingestion; several writers of one job (rank, world_size)
//   each hold their own and write their own segments.
// - Stopping: `stop` (e.g. set by a SIGINT handler) ends the job at the next
//   item boundary with a final commit of everything appended; the result is
//   Cancelled, and the report says how many rows are in.
//
// Thread-safety: Ingest() runs on the calling thread (which commits) plus
// the pipeline's workers and a controller thread; the callbacks in
// IngestOptions are called on the calling thread unless they say otherwise.
#ifndef SHOAL_LOADER_INGESTOR_H_
#define SHOAL_LOADER_INGESTOR_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "format/store.h"
#include "loader/pipeline.h"
#include "loader/source.h"

namespace shoal {

struct IngestOptions {
  enum class Mode {
    kCreate,     // a new dataset; AlreadyExists when one is there
    kOverwrite,  // replace what is there, atomically at the first commit
    kAppend,     // add rows to an existing dataset with the same tensors
    kResume,     // continue an interrupted ingestion of the same source
  };
  Mode mode = Mode::kCreate;
  /// Skip records whose Read or Prepare fails (named and counted) instead
  /// of stopping at the first.
  bool skip_bad = false;
  /// Byte budget of the graph: files read ahead, samples prepared, chunks
  /// cut and in flight. One record larger than the budget still goes
  /// through, alone.
  uint64_t memory_budget = 256ull << 20;
  /// Chunk codec by tensor name ("zstd:19", "" for raw), replacing the
  /// source's choice for that tensor; a name the source does not make is
  /// an error.
  std::map<std::string, std::string> chunk_compression;
  /// Static worker counts by stage name ("read", "prepare", "compress",
  /// "write"; "*" for all of them). Empty: the controller adapts them.
  std::map<std::string, int> workers;
  /// The most workers of all parallel stages together (0: 2 x cores + 8,
  /// room for I/O stages that wait on a slow store).
  int max_workers = 0;
  /// Commit every so many rows / seconds (0: never by that measure). The
  /// last commit comes at the end.
  uint64_t commit_every_rows = 0;
  double commit_every_seconds = 10;
  /// Several writers of one job (processes started together, e.g. by
  /// srun, mpirun or torchrun): writer `rank` of `world_size` ingests its
  /// share of the source, records [N*rank/W, N*(rank+1)/W), into its own
  /// segment of the dataset, which it creates or joins (kCreate) or
  /// continues (kResume); rank by rank the segments hold the source in
  /// order. Not with kOverwrite or kAppend. Each writer commits on its own
  /// (format/FORMAT.md, "Several writers"); no coordinator is needed.
  uint32_t rank = 0;
  uint32_t world_size = 1;
  /// Take over a write lock held by another process.
  bool break_lock = false;
  /// What the lock says the holder is doing ("shoal ingest images ...").
  std::string command;
  /// Seed of chunk ids (0: random); tests set it to compare datasets byte
  /// for byte.
  uint64_t id_seed = 0;
  /// Called about every `progress_seconds` and at the end.
  std::function<void(const struct IngestProgress&)> progress;
  double progress_seconds = 0.5;
  /// Called for each bad record skipped ("name: reason").
  std::function<void(const std::string&)> on_skip;
  /// Called for every change of a worker count, with its reason (on the
  /// controller's thread).
  std::function<void(const std::string&)> on_decision;
  /// Writes a JSON timeline of throughput, workers and memory to this file
  /// (scripts/plot-profile.py draws it).
  std::string profile_path;
  /// Set (from any thread, e.g. a signal handler) to stop at the next safe
  /// point with a final commit.
  const std::atomic<bool>* stop = nullptr;
};

struct IngestProgress {
  uint64_t records_done = 0;
  /// Records in all, when the source knows (else 0).
  uint64_t records_total = 0;
  uint64_t rows = 0;
  uint64_t input_bytes = 0;
  uint64_t input_bytes_total = 0;
  double seconds = 0;
  /// Current worker count of each parallel stage, "read=2 prepare=3 ...".
  std::string workers;
  uint64_t commit = 0;
};

struct IngestReport {
  std::string url;
  /// Rows in the dataset at the end, and rows this run added.
  uint64_t rows = 0;
  uint64_t rows_added = 0;
  uint64_t records = 0;
  /// Records this run skipped ("name: reason"), the scan's included.
  std::vector<std::string> skipped;
  uint64_t ignored = 0;
  /// A resumed run: the records and rows that were already in.
  uint64_t resumed_records = 0;
  uint64_t resumed_rows = 0;
  uint64_t input_bytes = 0;
  uint64_t raw_bytes = 0;     // decoded sample bytes of the visible tensors
  uint64_t stored_bytes = 0;  // chunk objects, hidden tensors included
  double seconds = 0;
  uint64_t commits = 0;
  uint64_t final_commit = 0;
  /// Messages about the write lock (a stale lock taken over).
  std::string lock_message;
  /// Every change of a worker count, with time and reason.
  std::vector<std::string> decisions;
  /// The pipeline's counters at the end (per stage busy and wait times).
  PipelineMetrics metrics;
  /// How each tensor stores samples ("jpeg", "lz4 chunks", "raw"), for the
  /// summary.
  std::vector<std::pair<std::string, std::string>> tensors;
  /// Why it stopped early (Cancelled by `stop`), else OK. The rows reported
  /// are in either way.
  Status status;
};

/// Ingests `source` into the dataset at `url`. On an error the dataset
/// stays at its last commit (a new dataset that never committed a row is
/// removed; an overwritten one stays the old dataset until the new one's
/// first commit); the error names the record, or the dataset object.
Result<IngestReport> Ingest(Source& source, const std::string& url,
                            const IngestOptions& options = {});

}  // namespace shoal

#endif  // SHOAL_LOADER_INGESTOR_H_
