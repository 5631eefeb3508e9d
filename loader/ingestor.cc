// Ingest(): the write graph on the pipeline core (see ingestor.h).
#include "loader/ingestor.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "format/dataset.h"
#include "format/lock.h"
#include "loader/internal/ingest_control.h"
#include "loader/internal/source_util.h"

namespace shoal {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Records per pipeline item at most: enough to amortize the per-item
// overhead, few enough that a run of small records spreads over workers.
constexpr size_t kMaxRecordsPerItem = 64;

// Stages, in pipeline order.
enum Stage : size_t { kRead, kPrepare, kAppend, kCompress, kWrite };
constexpr const char* kStageNames[] = {"read", "prepare", "append", "compress",
                                       "write"};

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
std::string WriterState(const std::string& source, uint64_t records,
                        uint64_t rows_before, const std::string& last) {
  nlohmann::json j = {{"source", internal::PrintableName(source)},
                      {"records", records},
                      {"rows_before", rows_before},
                      {"last_record", internal::PrintableName(last)}};
  return j.dump();
}

// The tensors' specs must agree with what the source makes (append, resume).
Status CheckSchema(const Dataset& ds, const std::vector<TensorSpec>& specs) {
  const auto tensors = ds.tensors();
  if (tensors.size() != specs.size()) {
    return InvalidArgument(
        "dataset '" + ds.url() + "' has " + std::to_string(tensors.size()) +
        " tensors, the source makes " + std::to_string(specs.size()));
  }
  for (const TensorSpec& want : specs) {
    auto t = ds.tensor(want.name);
    if (!t.ok()) {
      return InvalidArgument("dataset '" + ds.url() + "' has no tensor '" +
                             want.name + "', which the source makes");
    }
    auto normalized = NormalizeTensorSpec(want);
    if (!normalized.ok()) return normalized.status();
    const TensorSpec& have = (*t)->spec();
    auto differ = [&](const char* what, const std::string& a,
                      const std::string& b) {
      return InvalidArgument("tensor '" + want.name + "' of dataset '" +
                             ds.url() + "' has " + what + " '" + a +
                             "', the source makes '" + b + "'");
    };
    if (have.htype != normalized->htype)
      return differ("htype", std::string(HTypeName(have.htype)),
                    std::string(HTypeName(normalized->htype)));
    if (*have.dtype != *normalized->dtype)
      return differ("dtype", std::string(DTypeName(*have.dtype)),
                    std::string(DTypeName(*normalized->dtype)));
    if (have.sample_compression != normalized->sample_compression)
      return differ("sample_compression", have.sample_compression,
                    normalized->sample_compression);
    if (have.class_names != normalized->class_names)
      return InvalidArgument("tensor '" + want.name + "' of dataset '" +
                             ds.url() +
                             "' has other class names than the source");
  }
  return Status::OK();
}

// Appends one prepared record, in order. Errors are the dataset's.
Status AppendRecord(const std::vector<Tensor*>& tensors, Record& record) {
  if (record.columns.size() < tensors.size()) {
    return Internal("record '" + record.name + "' has " +
                    std::to_string(record.columns.size()) + " columns for " +
                    std::to_string(tensors.size()) + " tensors");
  }
  const uint64_t rows = record.columns[0].count;
  for (size_t i = 0; i < tensors.size(); ++i) {
    RecordColumn& c = record.columns[i];
    if (c.count != rows) {
      return Internal("record '" + record.name + "': columns of " +
                      std::to_string(rows) + " and " + std::to_string(c.count) +
                      " rows");
    }
    Tensor& t = *tensors[i];
    Status s;
    switch (c.kind) {
      case RecordColumn::Kind::kEncodedImage:
        s = t.AppendEncoded(c.data.span(), c.info);
        break;
      case RecordColumn::Kind::kVideo:
        s = t.AppendVideo(c.data.span(), c.sample_shape, c.info);
        break;
      case RecordColumn::Kind::kArrays:
        if (!c.shapes.empty()) {
          s = t.AppendBatch(c.shapes, c.data.span());
        } else if (c.count == 1) {
          s = t.Append(c.sample_shape, c.data.span(), c.info);
        } else {
          s = t.AppendBatch(c.sample_shape, c.count, c.data.span());
        }
        break;
    }
    if (!s.ok()) return s.WithContext("appending '" + record.name + "'");
  }
  return Status::OK();
}

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

Status Ingestion::OpenDataset(const SourceScan& scan) {
  using Mode = IngestOptions::Mode;
  const bool existing =
      options_.mode == Mode::kAppend || options_.mode == Mode::kResume;
  // One writer at a time: the lock comes before anything is looked at, so
  // that two ingestions into one new path cannot both see it free.
  auto store = OpenStore(url_, {.create = !existing});
  if (!store.ok()) {
    return store.status().WithContext(
        (existing ? "no dataset at '" : "cannot write a dataset at '") + url_ +
        "'");
  }
  SHOAL_ASSIGN_OR_RETURN(
      lock_, DatasetLock::Acquire(*store,
                                  {.break_lock = options_.break_lock,
                                   .command = options_.command},
                                  &report_.lock_message));
  // Resuming a dataset that holds nothing yet (a new ingestion stopped
  // before its first commit left only the empty commit 0) starts afresh.
  bool empty_resume = false;
  if (existing) {
    SHOAL_ASSIGN_OR_RETURN(ds_,
                           Dataset::Open(url_, {.id_seed = options_.id_seed}));
    empty_resume = options_.mode == Mode::kResume &&
                   ds_->tensors(/*include_hidden=*/true).empty() &&
                   ds_->writer_state().empty();
    if (!empty_resume) SHOAL_RETURN_IF_ERROR(CheckSchema(*ds_, scan.tensors));
  } else {
    SHOAL_ASSIGN_OR_RETURN(
        ds_,
        Dataset::Create(url_, {.overwrite = options_.mode == Mode::kOverwrite,
                               .id_seed = options_.id_seed}));
    created_ = options_.mode == Mode::kCreate;
  }
  SHOAL_RETURN_IF_ERROR(ds_->DeferChunkWrites());
  if (!existing || empty_resume) {
    for (const TensorSpec& spec : scan.tensors) {
      SHOAL_RETURN_IF_ERROR(ds_->CreateTensor(spec).status());
    }
  }
  for (const TensorSpec& spec : scan.tensors) {
    SHOAL_ASSIGN_OR_RETURN(Tensor * t, ds_->tensor(spec.name));
    tensors_.push_back(t);
  }
  rows_before_ = ds_->len();
  if (options_.mode == Mode::kResume && !empty_resume) {
    SHOAL_RETURN_IF_ERROR(Resume());
  }
  report_.url = ds_->url();
  return Status::OK();
}

// Where an interrupted ingestion of the same source stopped, checked
// against the source.
Status Ingestion::Resume() {
  const std::string& state = ds_->writer_state();
  const std::string where = "dataset '" + ds_->url() + "'";
  if (state.empty()) {
    return FailedPrecondition(where +
                              " records no ingestion to resume (it was not "
                              "written by an ingestion, or by an older shoal)");
  }
  const auto j = nlohmann::json::parse(state, nullptr, false);
  if (!j.is_object() || !j.contains("records") ||
      !j["records"].is_number_unsigned() || !j.contains("rows_before") ||
      !j["rows_before"].is_number_unsigned() || !j.contains("source") ||
      !j["source"].is_string() || !j.contains("last_record") ||
      !j["last_record"].is_string()) {
    return Corruption(
        where + ": its ingestion state is malformed: " + state.substr(0, 200));
  }
  const std::string committed_source = j["source"];
  if (committed_source != internal::PrintableName(source_.name())) {
    return FailedPrecondition(where + " was ingested from " + committed_source +
                              ", not from " + source_.name() +
                              "; resume needs the same source");
  }
  const uint64_t records = j["records"];
  rows_before_ = j["rows_before"];
  const std::string last = j["last_record"];
  if (records > 0) {
    Record probe;
    probe.index = records - 1;
    SHOAL_ASSIGN_OR_RETURN(bool exists, source_.Plan(records - 1, probe));
    const std::string now = internal::PrintableName(probe.name);
    if (!exists || now != last) {
      return FailedPrecondition(
          where +
          ": the source changed since the ingestion committed: record " +
          std::to_string(records) + " was '" + last + "', now it is " +
          (exists ? "'" + now + "'" : "missing") +
          "; ingest again instead of resuming");
    }
  }
  next_record_ = records;
  records_appended_ = records;
  last_record_ = last;
  rows_appended_ = ds_->len() - rows_before_;
  report_.resumed_records = records;
  report_.resumed_rows = rows_appended_;
  rows_at_last_commit_ = rows_appended_;
  return Status::OK();
}

Status Ingestion::Feed(uint64_t seq, IngestItem& item, uint64_t* cost) {
  item.Reset();
  if (source_done_ || (options_.stop != nullptr &&
                       options_.stop->load(std::memory_order_relaxed))) {
    return Cancelled("stop");  // mapped to end of stream by the caller
  }
  uint64_t read_bytes = 0, input_bytes = 0, planned_bytes = 0;
  const double expansion = expansion_.load(std::memory_order_relaxed);
  const bool learnt = expansion_learnt_.load(std::memory_order_relaxed);
  while (static_cast<double>(read_bytes) * expansion +
                 static_cast<double>(planned_bytes) <
             static_cast<double>(target_item_bytes_) ||
         item.n == 0) {
    if (item.n == item.records.size()) item.records.emplace_back();
    Record& r = item.records[item.n];
    r.Clear();
    r.index = next_record_;
    SHOAL_ASSIGN_OR_RETURN(bool more, source_.Plan(next_record_, r));
    if (!more) {
      source_done_ = source_exhausted_ = true;
      break;
    }
    ++next_record_;
    ++item.n;
    read_bytes += r.read_bytes;
    input_bytes += r.input_bytes;
    // Records a source fills while planning (rows, streamed files) bring
    // their bytes with them; those are in memory from now on.
    for (const RecordColumn& c : r.columns) planned_bytes += c.data.size();
    // Small items keep every parallel stage fed; a stop request ends the
    // stream after the records already planned.
    if (item.n >= kMaxRecordsPerItem || !learnt) break;
    if (options_.stop != nullptr &&
        options_.stop->load(std::memory_order_relaxed)) {
      source_done_ = true;
      break;
    }
  }
  if (item.n == 0) return Cancelled("end");
  if (read_bytes > 0 && (item.arena == nullptr || item.arena.use_count() > 1 ||
                         item.arena_size < read_bytes)) {
    item.arena = std::make_shared_for_overwrite<std::byte[]>(read_bytes);
    item.arena_size = read_bytes;
  }
  item.errors.assign(item.n, Status::OK());
  item.inputs.resize(item.n);
  uint64_t offset = 0;
  for (size_t i = 0; i < item.n; ++i) {
    const uint64_t size = item.records[i].read_bytes;
    item.inputs[i] =
        size == 0
            ? Buffer()
            : Buffer::FromOwner(item.arena, item.arena.get() + offset, size);
    offset += size;
  }
  item.input_bytes = std::max(input_bytes, planned_bytes);
  item.read_bytes = read_bytes;
  item.read_cost =
      static_cast<uint64_t>(static_cast<double>(read_bytes) * expansion);
  item.cost = item.read_cost + planned_bytes;
  *cost = item.cost;
  (void)seq;
  return Status::OK();
}

Status Ingestion::ReadStage(IngestItem& item) const {
  uint64_t offset = 0;
  for (size_t i = 0; i < item.n; ++i) {
    Record& r = item.records[i];
    if (r.read_bytes == 0) continue;
    Status s = source_.Read(
        r, MutableByteSpan(item.arena.get() + offset, r.read_bytes));
    offset += r.read_bytes;
    if (s.ok()) continue;
    if (!options_.skip_bad) return s;
    item.errors[i] = std::move(s);
  }
  return Status::OK();
}

Status Ingestion::PrepareStage(IngestItem& item) {
  int64_t own = 0;
  for (size_t i = 0; i < item.n; ++i) {
    if (!item.errors[i].ok()) continue;
    Record& r = item.records[i];
    // Bytes the source allocates here (decoded or converted samples), beyond
    // the read and planned bytes the item's cost covers.
    const std::byte* lo = item.arena.get();
    const std::byte* hi = lo + item.arena_size;
    auto outside_arena = [&] {
      int64_t n = 0;
      for (const RecordColumn& c : r.columns) {
        if (c.data.data() < lo || c.data.data() >= hi) n += c.data.size();
      }
      return n;
    };
    const int64_t planned = outside_arena();
    Status s = source_.Prepare(r, item.inputs[i]);
    if (!s.ok()) {
      if (!options_.skip_bad) return s;
      item.errors[i] = std::move(s);
      continue;
    }
    own += std::max<int64_t>(0, outside_arena() - planned);
  }
  // Learn the expansion (a decaying maximum: quick to rise, so the next
  // items are admitted at their real size; slow to fall) and charge what
  // this item holds beyond what it was admitted at.
  if (item.read_bytes > 0) {
    const double observed =
        static_cast<double>(item.read_bytes + static_cast<uint64_t>(own)) /
        static_cast<double>(item.read_bytes);
    double e = expansion_.load(std::memory_order_relaxed);
    while (!expansion_.compare_exchange_weak(
        e, std::max(observed, 0.9 * e + 0.1 * observed),
        std::memory_order_relaxed)) {
    }
  }
  expansion_learnt_.store(true, std::memory_order_relaxed);
  const int64_t excess = static_cast<int64_t>(item.read_bytes) + own -
                         static_cast<int64_t>(item.read_cost);
  if (excess > 0) {
    item.charged.fetch_add(excess);
    pipe_->Charge(excess);
  }
  return Status::OK();
}

Status Ingestion::AppendStage(IngestItem& item) {
  for (size_t i = 0; i < item.n; ++i) {
    Record& r = item.records[i];
    if (!item.errors[i].ok()) {
      item.skipped.push_back(std::string(item.errors[i].message()));
    } else {
      SHOAL_RETURN_IF_ERROR(AppendRecord(tensors_, r));
      item.rows += r.rows();
      rows_appended_ += r.rows();
    }
    records_appended_ = r.index + 1;
    last_record_ = r.name;
    // The samples are in the open chunks now; let the inputs go.
    for (RecordColumn& c : r.columns) c.data = Buffer();
    item.inputs[i] = Buffer();
    // A commit every so many rows lands exactly there; one by time at the
    // first record after the time is up.
    const bool by_rows =
        options_.commit_every_rows > 0 &&
        rows_appended_ - rows_at_last_commit_ >= options_.commit_every_rows;
    const bool by_time =
        options_.commit_every_seconds > 0 &&
        SecondsSince(last_commit_time_) >= options_.commit_every_seconds;
    if (by_rows || by_time) {
      SHOAL_ASSIGN_OR_RETURN(
          item.commits.emplace_back(),
          ds_->PrepareCommit(/*final=*/false,
                             WriterState(source_.name(), records_appended_,
                                         rows_before_, last_record_)));
      rows_at_last_commit_ = rows_appended_;
      last_commit_time_ = Clock::now();
    }
  }
  item.chunks = ds_->TakePendingChunks();
  // The item's samples now live in the open chunks or in the chunks just
  // cut (and commit copies of open chunks): the item carries what its
  // chunks hold from here on (its own bytes were let go above), and the
  // open chunks stay charged outside every item while they grow, so that
  // the budget counts what is in memory when they are cut.
  int64_t bytes = 0;
  for (const PendingChunk& c : item.chunks) bytes += c.memory_bytes();
  const int64_t delta =
      bytes - static_cast<int64_t>(item.cost) - item.charged.load();
  item.charged.fetch_add(delta);
  const uint64_t open = ds_->OpenChunkBytes();
  pipe_->Charge(delta + static_cast<int64_t>(open) -
                static_cast<int64_t>(open_charged_));
  open_charged_ = open;
  return Status::OK();
}

Status Ingestion::Consume(IngestItem& item) {
  ds_->ChunksWritten(item.chunks);
  for (CommitPointPtr& point : item.commits) {
    SHOAL_RETURN_IF_ERROR(ds_->Commit(*point));
    ++report_.commits;
  }
  item.chunks.clear();
  item.commits.clear();
  pipe_->Charge(-item.charged.exchange(0));
  for (std::string& s : item.skipped) {
    if (options_.on_skip) options_.on_skip(s);
    report_.skipped.push_back(std::move(s));
  }
  records_done_ += item.n;
  rows_done_ += item.rows;
  input_done_ += item.input_bytes;
  return Status::OK();
}

Status Ingestion::FinalCommit() {
  SHOAL_ASSIGN_OR_RETURN(
      auto point,
      ds_->PrepareCommit(/*final=*/true,
                         WriterState(source_.name(), records_appended_,
                                     rows_before_, last_record_)));
  auto chunks = ds_->TakePendingChunks();
  for (PendingChunk& c : chunks) {
    SHOAL_RETURN_IF_ERROR(c.EncodeAndWrite(*ds_->store()));
  }
  ds_->ChunksWritten(chunks);
  if (point != nullptr) {
    SHOAL_RETURN_IF_ERROR(ds_->Commit(*point));
    ++report_.commits;
  }
  return ds_->FinishDeferredWrites();
}

std::string Ingestion::WorkersLine() const {
  if (pipeline_ == nullptr) return last_workers_;
  const PipelineMetrics m = pipeline_->metrics();
  std::string out;
  for (size_t i = 0; i < m.stages.size(); ++i) {
    if (m.stages[i].concurrency == StageOptions::kSerialInOrder) continue;
    if (!out.empty()) out += ' ';
    out += m.stages[i].name + "=" + std::to_string(m.stages[i].concurrency);
  }
  return out;
}

void Ingestion::ReportProgress(bool last) {
  const double now = SecondsSince(start_);
  if (!options_.progress) return;
  if (!last && now - last_progress_ < options_.progress_seconds) return;
  last_progress_ = now;
  IngestProgress p;
  p.records_done = records_done_ + report_.resumed_records;
  p.records_total = records_total_;
  p.rows = rows_done_ + report_.resumed_rows;
  p.input_bytes = input_done_;
  p.input_bytes_total = input_total_;
  p.seconds = now;
  p.workers = WorkersLine();
  p.commit = ds_->commit();
  options_.progress(p);
}

Status Ingestion::BuildPipeline() {
  const int cores =
      static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int max_workers =
      options_.max_workers > 0 ? options_.max_workers : 2 * cores + 8;
  SHOAL_ASSIGN_OR_RETURN(
      control_,
      internal::IngestControl::Make(options_, kStageNames, cores, max_workers));
  PipelineOptions po;
  // Workers that wait on I/O hold an arena thread; the controller keeps the
  // CPU stages near the core count.
  po.threads = control_->Threads();
  po.budget_bytes = options_.memory_budget;
  po.max_in_flight = 16;
  pipeline_ = std::make_unique<Pipeline<IngestItem>>(po);
  pipe_ = pipeline_.get();
  // Items small enough that several are in flight within the budget.
  target_item_bytes_ =
      std::clamp<uint64_t>(options_.memory_budget / 16, 64 << 10, 8 << 20);
  const auto initial = control_->InitialWorkers();
  SHOAL_RETURN_IF_ERROR(pipeline_->AddStage(
      {.name = "read", .concurrency = initial[kRead]},
      [this](IngestItem& item) { return ReadStage(item); }));
  SHOAL_RETURN_IF_ERROR(pipeline_->AddStage(
      {.name = "prepare", .concurrency = initial[kPrepare]},
      [this](IngestItem& item) { return PrepareStage(item); }));
  SHOAL_RETURN_IF_ERROR(pipeline_->AddStage(
      {.name = "append", .concurrency = StageOptions::kSerialInOrder},
      [this](IngestItem& item) { return AppendStage(item); }));
  SHOAL_RETURN_IF_ERROR(pipeline_->AddStage(
      {.name = "compress", .concurrency = initial[kCompress]},
      [](IngestItem& item) {
        for (PendingChunk& c : item.chunks) SHOAL_RETURN_IF_ERROR(c.Encode());
        return Status::OK();
      }));
  Store* store = ds_->store().get();
  SHOAL_RETURN_IF_ERROR(
      pipeline_->AddStage({.name = "write", .concurrency = initial[kWrite]},
                          [store](IngestItem& item) {
                            for (const PendingChunk& c : item.chunks)
                              SHOAL_RETURN_IF_ERROR(c.Write(*store));
                            return Status::OK();
                          }));
  return Status::OK();
}

Result<IngestReport> Ingestion::Run() {
  SHOAL_ASSIGN_OR_RETURN(SourceScan scan, source_.Scan(options_.skip_bad));
  if (scan.tensors.empty()) {
    return InvalidArgument(source_.name() + " makes no tensors");
  }
  for (std::string& bad : scan.bad) {
    if (options_.on_skip) options_.on_skip(bad);
    report_.skipped.push_back(std::move(bad));
  }
  report_.ignored = scan.ignored;
  records_total_ = scan.num_records.value_or(0);
  input_total_ = scan.input_bytes;
  // From here on a failure goes through Fail(), which removes a dataset
  // this run created and never committed to.
  Status started = OpenDataset(scan);
  if (started.ok()) started = BuildPipeline();
  if (started.ok()) {
    started = pipeline_->Start(
        [this](uint64_t seq, IngestItem& item, uint64_t* cost) -> Result<bool> {
          Status s = Feed(seq, item, cost);
          if (s.code() == StatusCode::kCancelled) return false;
          if (!s.ok()) return s;
          return true;
        });
  }
  if (!started.ok()) {
    pipeline_.reset();
    ds_.reset();
    return Fail(std::move(started));
  }
  control_->Start([this] { return pipeline_->metrics(); },
                  [this](size_t stage, int n) {
                    return pipeline_->SetConcurrency(stage, n);
                  });
  Status status;
  while (true) {
    auto next = pipeline_->Next();
    if (!next.ok()) {
      status = next.status();
      break;
    }
    if (!next->has_value()) break;
    status = Consume(***next);
    if (!status.ok()) break;
    control_->Count(rows_done_, input_done_);
    ReportProgress(false);
  }
  control_->Stop();
  pipeline_->Charge(-static_cast<int64_t>(open_charged_));
  open_charged_ = 0;
  if (!status.ok()) {
    pipeline_->Cancel();
    pipeline_.reset();
    ds_.reset();  // deferred: nothing more is committed
    return Fail(std::move(status));
  }
  report_.metrics = pipeline_->metrics();
  last_workers_ = WorkersLine();
  report_.decisions = control_->decisions();
  pipeline_.reset();
  SHOAL_RETURN_IF_ERROR(Fail(FinalCommit()));
  ReportProgress(true);
  // A stop that came after the last record was planned stopped nothing.
  if (options_.stop != nullptr && options_.stop->load() && !source_exhausted_) {
    Record probe;
    auto more = source_.Plan(next_record_, probe);
    if (!more.ok() || *more) {
      report_.status = Cancelled("stopped before the end of " + source_.name());
    }
  }
  report_.rows = ds_->len();
  report_.rows_added = rows_done_;
  report_.records = records_done_;
  report_.input_bytes = input_done_;
  report_.final_commit = ds_->commit();
  for (Tensor* t : ds_->tensors(/*include_hidden=*/true)) {
    report_.stored_bytes += t->stats().stored_bytes;
    if (!t->hidden()) {
      report_.raw_bytes += t->stats().raw_bytes;
      const TensorSpec& spec = t->spec();
      report_.tensors.emplace_back(
          t->name(), !spec.sample_compression.empty() ? spec.sample_compression
                     : !spec.chunk_compression.empty()
                         ? spec.chunk_compression + " chunks"
                         : "raw");
    }
  }
  SHOAL_RETURN_IF_ERROR(ds_->Close());
  report_.seconds = SecondsSince(start_);
  SHOAL_RETURN_IF_ERROR(control_->WriteProfile());
  return report_;
}

// A dataset this run created and never committed a row to goes away again;
// anything committed stays (and resume continues it).
Status Ingestion::Fail(Status s) {
  if (s.ok()) return s;
  if (created_ && ds_ == nullptr) {
    auto reopened = Dataset::Open(url_, {.read_only = true});
    if (reopened.ok() && (*reopened)->len() == 0 &&
        (*reopened)->writer_state().empty()) {
      reopened->reset();
      (void)Dataset::Remove(url_);
    }
  }
  return s;
}

}  // namespace

Result<IngestReport> Ingest(Source& source, const std::string& url,
                            const IngestOptions& options) {
  Ingestion ingestion(source, url, options);
  return ingestion.Run();
}

}  // namespace shoal
