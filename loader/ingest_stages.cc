// The write graph's work: the feeder plans items of records, the read and
// prepare stages (parallel) fill them, the append stage (in order) cuts
// chunks and commit points, the consumer commits; and the final commit.
#include <algorithm>

#include "loader/internal/ingestion.h"

namespace shoal::ingest_internal {

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
  SHOAL_RETURN_IF_ERROR(PendingChunk::EncodeAndWriteAll(chunks, *ds_->store()));
  ds_->ChunksWritten(chunks);
  if (point != nullptr) {
    SHOAL_RETURN_IF_ERROR(ds_->Commit(*point));
    ++report_.commits;
  }
  return ds_->FinishDeferredWrites();
}

}  // namespace shoal::ingest_internal
