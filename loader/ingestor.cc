// Ingest(): the write graph on the pipeline core (see ingestor.h): opening
// the destination, resuming, building and running the pipeline, reporting.
// The stages' work is in ingest_stages.cc.
#include "loader/ingestor.h"

#include <algorithm>
#include <thread>

#include "loader/internal/ingestion.h"
#include "loader/internal/share_source.h"

namespace shoal {
namespace ingest_internal {

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

Status Ingestion::OpenDataset(const SourceScan& scan) {
  using Mode = IngestOptions::Mode;
  const bool several = options_.world_size > 1;
  const bool existing =
      options_.mode == Mode::kAppend || options_.mode == Mode::kResume;
  // One writer at a time (per segment): the lock comes before anything is
  // looked at, so that two ingestions into one new path cannot both see it
  // free.
  auto store = OpenStore(url_, {.create = !existing});
  if (!store.ok()) {
    return store.status().WithContext(
        (existing ? "no dataset at '" : "cannot write a dataset at '") + url_ +
        "'");
  }
  SHOAL_ASSIGN_OR_RETURN(
      lock_, DatasetLock::Acquire(
                 *store,
                 {.break_lock = options_.break_lock,
                  .command = options_.command,
                  .key = WriterLockKey(options_.rank, options_.world_size)},
                 &report_.lock_message));
  const std::optional<uint32_t> writer =
      several ? std::optional<uint32_t>(options_.rank) : std::nullopt;
  if (existing) {
    SHOAL_ASSIGN_OR_RETURN(
        ds_,
        Dataset::Open(url_, {.id_seed = options_.id_seed, .writer = writer}));
  } else {
    SHOAL_ASSIGN_OR_RETURN(
        ds_,
        Dataset::Create(url_, {.overwrite = options_.mode == Mode::kOverwrite,
                               .id_seed = options_.id_seed,
                               .writer = options_.rank,
                               .join = several}));
    // A writer of several may have joined what another created: that one
    // is not this run's to remove on failure.
    created_ = options_.mode == Mode::kCreate && !several;
    if (several && (ds_->len() > 0 || !ds_->writer_state().empty())) {
      return FailedPrecondition(
          "dataset '" + ds_->url() + "' already has rows of writer " +
          std::to_string(options_.rank) +
          " (an earlier run of this job); --resume continues it");
    }
  }
  // Nothing to go on from yet: a new dataset, one another writer of the
  // job created, or a resumed ingestion that had not committed a row (it
  // left only the empty commit 0, or its writer's segment is empty).
  const bool fresh = ds_->len() == 0 && ds_->writer_state().empty();
  const bool has_tensors = !ds_->tensors(/*include_hidden=*/true).empty();
  if (has_tensors && (options_.mode != Mode::kOverwrite)) {
    SHOAL_RETURN_IF_ERROR(CheckSchema(*ds_, scan.tensors));
  }
  SHOAL_RETURN_IF_ERROR(ds_->DeferChunkWrites());
  if (!has_tensors || options_.mode == Mode::kOverwrite) {
    for (const TensorSpec& spec : scan.tensors) {
      SHOAL_RETURN_IF_ERROR(ds_->CreateTensor(spec).status());
    }
  }
  for (const TensorSpec& spec : scan.tensors) {
    SHOAL_ASSIGN_OR_RETURN(Tensor * t, ds_->tensor(spec.name));
    tensors_.push_back(t);
  }
  rows_before_ = ds_->len();
  if (options_.mode == Mode::kResume && !fresh) {
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
  const int cores = ResolveThreads(0);
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
  for (const auto& entry : options_.chunk_compression) {
    // (Structured bindings are not captured: clang before 16 refuses it.)
    const std::string& name = entry.first;
    const std::string& codec = entry.second;
    auto spec =
        std::find_if(scan.tensors.begin(), scan.tensors.end(),
                     [&](const TensorSpec& t) { return t.name == name; });
    if (spec == scan.tensors.end()) {
      std::string names;
      for (const TensorSpec& t : scan.tensors) {
        names += (names.empty() ? "" : ", ") + t.name;
      }
      return InvalidArgument("chunk compression for tensor '" + name +
                             "': " + source_.name() +
                             " makes no such tensor (it "
                             "makes " +
                             names + ")");
    }
    spec->chunk_compression = codec;
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
  // After an error the append stage may still be running on another item:
  // wait for it before its open-chunk charge is read.
  if (!status.ok()) pipeline_->Stop();
  pipeline_->Charge(-static_cast<int64_t>(open_charged_));
  open_charged_ = 0;
  if (!status.ok()) {
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

}  // namespace ingest_internal

Result<IngestReport> Ingest(Source& source, const std::string& url,
                            const IngestOptions& options) {
  if (options.world_size == 0 || options.rank >= options.world_size) {
    return InvalidArgument("writer rank " + std::to_string(options.rank) +
                           " is not below the number of writers (" +
                           std::to_string(options.world_size) + ")");
  }
  using Mode = IngestOptions::Mode;
  if (options.world_size > 1 &&
      (options.mode == Mode::kOverwrite || options.mode == Mode::kAppend)) {
    return InvalidArgument(
        std::string("several writers (world size ") +
        std::to_string(options.world_size) + ") cannot " +
        (options.mode == Mode::kOverwrite
             ? "overwrite a dataset: one would delete what the others wrote; "
               "remove it first"
             : "append to a dataset: they create one together, or resume "
               "their own segments"));
  }
  if (options.world_size == 1) {
    ingest_internal::Ingestion ingestion(source, url, options);
    return ingestion.Run();
  }
  ingest_internal::ShareSource share(source, options.rank, options.world_size);
  ingest_internal::Ingestion ingestion(share, url, options);
  return ingestion.Run();
}

}  // namespace shoal
