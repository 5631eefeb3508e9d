// Dataset writes: rows and columns, and the commit protocol
// (format/FORMAT.md, "Commits"), direct or staged for a parallel writer.
#include <chrono>
#include <random>
#include <thread>

#include "format/internal/commit_log.h"
#include "format/internal/dataset_impl.h"

namespace shoal {

using internal::DatasetMeta;
using internal::TensorMeta;

// What one commit writes: the metadata and the index of every tensor as
// appended up to PrepareCommit(), with references to chunks that may still
// be on their way to the store.
class CommitPoint {
 public:
  struct Part {
    bool dirty = false;           // a new index object is needed
    internal::TensorIndex index;  // when dirty
  };
  DatasetMeta meta;         // index keys and chunk statistics filled on commit
  std::vector<Part> parts;  // one per meta.tensors entry
  std::vector<std::string> garbage;  // chunk keys the commit supersedes
  uint64_t failures_seen = 0;        // Impl::failed_commits when prepared
};

void CommitPointDeleter::operator()(CommitPoint* point) const { delete point; }

namespace {

constexpr int kCommitAttempts = 64;

// A short random pause, growing with the losses, so that writers that keep
// colliding spread out.
void BackOffAfterConflict(int attempt) {
  thread_local std::minstd_rand rng(std::random_device{}());
  const int cap_ms = std::min(200, 2 << std::min(attempt, 7));
  std::this_thread::sleep_for(std::chrono::milliseconds(
      std::uniform_int_distribution<int>(0, cap_ms)(rng)));
}

}  // namespace

Result<CommitPointPtr> Dataset::Impl::PrepareCommit(bool keep_open,
                                                    std::string writer_state) {
  std::vector<std::optional<internal::ChunkRef>> open(tensors.size());
  const uint64_t failures = failed_commits.load();
  const bool rewrite_all = failures != failures_prepared;
  bool dirty = schema_dirty || rewrite_all || writer_state != writer;
  writer = std::move(writer_state);
  for (size_t i = 0; i < tensors.size(); ++i) {
    Tensor::Impl& impl = *tensors[i]->impl_;
    if (keep_open) {
      open[i] = impl.SnapshotOpenChunk();
    } else {
      SHOAL_RETURN_IF_ERROR(impl.SealOpenChunk());
      impl.DropOpenSnapshot();
    }
    dirty = dirty || impl.dirty();
  }
  if (!dirty) return CommitPointPtr();
  CommitPointPtr point(new CommitPoint());
  point->meta = Snapshot();
  point->parts.resize(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    Tensor::Impl& impl = *tensors[i]->impl_;
    CommitPoint::Part& part = point->parts[i];
    part.dirty = impl.dirty() || rewrite_all;
    if (part.dirty) {
      part.index = impl.index();
      if (open[i]) part.index.AddChunk(*open[i]);
    }
    for (auto& g : impl.OnCommitPrepared())
      point->garbage.push_back(std::move(g));
  }
  point->failures_seen = failures;
  schema_dirty = false;
  failures_prepared = failures;
  return point;
}

Status Dataset::Impl::FillChunkSizes(internal::TensorIndex& index,
                                     uint32_t tensor) const {
  auto fill = [&](internal::ChunkRef& ref) -> Status {
    if (ref.chunk_bytes != 0) return Status::OK();
    auto it = written.find(ref.id);
    if (it == written.end()) {
      return Internal(Where() + ": commit refers to chunk " +
                      internal::ChunkKey(tensor, ref.id) +
                      ", which was not reported written");
    }
    ref.chunk_bytes = it->second.chunk_bytes;
    ref.header_bytes = it->second.header_bytes;
    ref.header_checksum = it->second.header_checksum;
    return Status::OK();
  };
  return index.UpdateRefs(fill);
}

// The commit protocol: (1) the chunks are written (by whoever cut them),
// (2) new index objects for this writer's tensors that changed, (3) a new
// metadata object: the newest commit's, with this writer's segments and
// state in place of its old ones, (4) all of it durable, (5) the commit
// object, created only if no other writer took its number first (then
// (3)-(5) again on top of theirs), and HEAD after it. A crash before (5)
// leaves the previous commit in force and the new objects as orphans; after
// (5), only garbage (replaced objects) is left to delete.
Status Dataset::Impl::Apply(CommitPoint& point) {
  // A point prepared before a commit failed does not hold the indexes that
  // commit changed (they were marked clean when it was prepared).
  if (point.failures_seen != failed_commits.load()) {
    return FailedPrecondition(
        Where() +
        ": this commit was prepared before an earlier one failed "
        "and misses what that one held; prepare it again");
  }
  Status s = ApplyOnce(point);
  // What the failed commit held is no longer marked as changed: the next
  // point prepared rewrites every index, so that it commits all of it.
  if (!s.ok()) failed_commits.fetch_add(1);
  return s;
}

Status Dataset::Impl::ApplyOnce(CommitPoint& point) {
  const uint64_t next_commit = commit.load() + 1;
  std::vector<std::string> garbage;
  std::map<uint32_t, Committed> updated;
  // The new indexes are written together (in flight at once on s3://).
  std::vector<std::string> index_keys;
  std::vector<std::string> index_bytes;
  for (size_t i = 0; i < point.parts.size(); ++i) {
    internal::TensorMeta& tm = point.meta.tensors[i];
    CommitPoint::Part& part = point.parts[i];
    Committed c = committed[tm.id];
    if (part.dirty) {
      SHOAL_RETURN_IF_ERROR(FillChunkSizes(part.index, tm.id));
      part.index.CountChunks(&c.stored_bytes, &c.num_chunks);
      std::string key;
      if (!part.index.entries().empty()) {
        key = internal::IndexKey(tm.id, next_commit, context.NewId());
        index_keys.push_back(key);
        index_bytes.push_back(
            part.index.Encode(static_cast<uint8_t>(tm.spec.rank)));
      }
      if (!c.index_key.empty()) garbage.push_back(c.index_key);
      c.index_key = key;
    }
    tm.index_key = c.index_key;
    tm.stored_bytes = c.stored_bytes;
    tm.num_chunks = c.num_chunks;
    updated[tm.id] = c;
  }
  std::vector<ObjectWrite> writes;
  for (size_t i = 0; i < index_keys.size(); ++i) {
    writes.push_back({index_keys[i], AsBytes(index_bytes[i])});
  }
  const std::vector<Status> written = context.store->WriteMany(writes);
  for (size_t i = 0; i < written.size(); ++i) {
    if (!written[i].ok()) {
      return written[i].WithContext(Where() + ": writing " + index_keys[i]);
    }
  }
  // The indexes become durable with the metadata (one sync for both).
  Status s;
  // A copy: a commit that fails must leave the basis whole for the next
  // (merging into less would drop other writers' segments).
  internal::LatestCommit latest{{commit.load(), meta_key}, basis};
  std::string new_meta_key;
  for (int attempt = 1;; ++attempt) {
    SHOAL_ASSIGN_OR_RETURN(
        internal::DatasetMeta merged,
        internal::MergeWriter(
            replacing ? internal::DatasetMeta() : std::move(latest.meta),
            point.meta, segment));
    merged.commit = latest.head.commit + 1;
    new_meta_key = internal::MetaKey(merged.commit, context.NewId());
    const std::string meta_bytes = internal::EncodeDatasetMeta(merged);
    s = context.store->Write(new_meta_key, AsBytes(meta_bytes));
    if (!s.ok()) return s.WithContext(Where() + ": writing " + new_meta_key);
    s = context.store->Sync();
    if (!s.ok()) return s.WithContext(Where() + ": sync");
    s = internal::PublishCommit(*context.store, {merged.commit, new_meta_key});
    if (s.ok()) {
      basis = std::move(merged);
      break;
    }
    // Only a lost race says for certain that the commit is not in; after
    // any other failure it may be, naming this metadata, so it stays (an
    // orphan for verify --repair if the commit is not in).
    if (s.code() != StatusCode::kAlreadyExists) {
      return s.WithContext(Where() + ": writing " +
                           internal::CommitKey(latest.head.commit + 1));
    }
    (void)context.store->Delete(new_meta_key);
    // Another writer took the number: merge into theirs. Each lost race
    // is someone else's commit, so writers as a whole always progress; the
    // bound only stops one starved writer for good.
    if (attempt == kCommitAttempts) {
      return FailedPrecondition(Where() + ": lost the race for a commit " +
                                std::to_string(attempt) +
                                " times to other writers; try again");
    }
    if (replacing) {
      return FailedPrecondition(Where() +
                                ": another writer committed while this one "
                                "was replacing the dataset");
    }
    BackOffAfterConflict(attempt);
    SHOAL_ASSIGN_OR_RETURN(
        latest,
        internal::ReadLatest(*context.store, Where(), latest.head.commit + 1));
  }

  // Committed. What the new commit no longer references goes away; a failure
  // here only leaves orphans that `shoal verify --repair` removes.
  if (!latest.head.meta_key.empty()) garbage.push_back(latest.head.meta_key);
  for (auto& g : point.garbage) garbage.push_back(std::move(g));
  for (auto& g : replaced) garbage.push_back(std::move(g));
  replaced.clear();
  replacing = false;
  (void)context.store->DeleteMany(garbage);
  for (const auto& name : replaced_leftovers) {
    (void)context.store->DeleteLeftover(name);
  }
  replaced_leftovers.clear();
  committed = std::move(updated);
  commit.store(basis.commit);
  meta_key = new_meta_key;
  return Status::OK();
}

Status Dataset::Impl::Commit() {
  SHOAL_ASSIGN_OR_RETURN(auto point,
                         PrepareCommit(/*keep_open=*/false, writer));
  if (point == nullptr) return Status::OK();
  return Apply(*point);
}

Result<Tensor*> Dataset::Impl::FindTarget(std::string_view name,
                                          const std::vector<Tensor*>& targets,
                                          std::string_view what) const {
  SHOAL_ASSIGN_OR_RETURN(Tensor * t, Find(name));
  if (t->hidden() ||
      std::find(targets.begin(), targets.end(), t) != targets.end()) {
    return InvalidArgument(Where() + ": tensor '" + std::string(name) +
                           "' is hidden or appears twice in the " +
                           std::string(what));
  }
  return t;
}

Status Dataset::Append(std::span<const RowValue> row) {
  SHOAL_RETURN_IF_ERROR(impl_->CheckWritable());
  const auto visible = tensors();
  if (row.size() != visible.size()) {
    return InvalidArgument(impl_->Where() +
                           ": a row needs one value for each of the " +
                           std::to_string(visible.size()) + " tensors, got " +
                           std::to_string(row.size()));
  }
  std::vector<Tensor*> targets;
  for (const RowValue& v : row) {
    SHOAL_ASSIGN_OR_RETURN(Tensor * t,
                           impl_->FindTarget(v.tensor, targets, "row"));
    SHOAL_RETURN_IF_ERROR(t->impl_->Validate(v.shape, v.data));
    SHOAL_RETURN_IF_ERROR(t->impl_->ValidateInfo(v.info_json));
    targets.push_back(t);
  }
  for (size_t i = 0; i < row.size(); ++i) {
    SHOAL_RETURN_IF_ERROR(
        targets[i]->Append(row[i].shape, row[i].data, row[i].info_json));
  }
  return Status::OK();
}

Status Dataset::AppendColumns(std::span<const Column> columns) {
  SHOAL_RETURN_IF_ERROR(impl_->CheckWritable());
  const auto visible = tensors();
  if (columns.size() != visible.size()) {
    return InvalidArgument(
        impl_->Where() +
        ": a columnar batch needs one column for each of the " +
        std::to_string(visible.size()) + " tensors, got " +
        std::to_string(columns.size()));
  }
  std::vector<Tensor*> targets;
  for (const Column& c : columns) {
    SHOAL_ASSIGN_OR_RETURN(Tensor * t,
                           impl_->FindTarget(c.tensor, targets, "batch"));
    const uint64_t n = c.shapes.empty() ? c.count : c.shapes.size();
    const Column& c0 = columns[0];
    const uint64_t n0 = c0.shapes.empty() ? c0.count : c0.shapes.size();
    if (n != n0) {
      return InvalidArgument(
          impl_->Where() + ": column '" + std::string(c.tensor) + "' has " +
          std::to_string(n) + " samples, column '" + std::string(c0.tensor) +
          "' " + std::to_string(n0));
    }
    SHOAL_RETURN_IF_ERROR(
        c.shapes.empty()
            ? t->impl_->ValidateBatch(c.sample_shape, c.count, c.data)
            : t->impl_->ValidateBatch(c.shapes, c.data));
    targets.push_back(t);
  }
  for (size_t i = 0; i < columns.size(); ++i) {
    const Column& c = columns[i];
    Status s = c.shapes.empty()
                   ? targets[i]->AppendBatch(c.sample_shape, c.count, c.data)
                   : targets[i]->AppendBatch(c.shapes, c.data);
    SHOAL_RETURN_IF_ERROR(s);
  }
  return Status::OK();
}

Status Dataset::Flush() {
  SHOAL_RETURN_IF_ERROR(impl_->CheckWritable());
  if (impl_->context.deferred) {
    return FailedPrecondition(impl_->Where() +
                              ": chunk writes are deferred; commit with "
                              "PrepareCommit() and Commit()");
  }
  return impl_->Commit();
}

Status Dataset::Close() {
  if (impl_->closed) return Status::OK();
  Status s;
  // A deferred writer commits through its own graph: what it did not commit
  // is not in (chunks it took may never have been written).
  if (!impl_->context.read_only && !impl_->context.deferred) {
    s = impl_->Commit();
  }
  impl_->closed = true;
  return s;
}

Status Dataset::DeferChunkWrites() {
  SHOAL_RETURN_IF_ERROR(impl_->CheckWritable());
  impl_->context.deferred = true;
  return Status::OK();
}

std::vector<PendingChunk> Dataset::TakePendingChunks() {
  std::vector<PendingChunk> out;
  out.swap(impl_->context.pending);
  return out;
}

uint64_t Dataset::OpenChunkBytes() const {
  uint64_t bytes = 0;
  for (const auto& t : impl_->tensors) bytes += t->impl_->open_bytes();
  return bytes;
}

Result<CommitPointPtr> Dataset::PrepareCommit(bool final,
                                              std::string writer_state) {
  SHOAL_RETURN_IF_ERROR(impl_->CheckWritable());
  if (!impl_->context.deferred) {
    return FailedPrecondition(impl_->Where() +
                              ": PrepareCommit needs deferred chunk writes");
  }
  return impl_->PrepareCommit(/*keep_open=*/!final, std::move(writer_state));
}

void Dataset::ChunksWritten(std::span<const PendingChunk> chunks) {
  for (const PendingChunk& c : chunks) {
    impl_->written[c.id()] = {.id = c.id(),
                              .chunk_bytes = c.chunk_bytes(),
                              .header_bytes = c.header_bytes(),
                              .header_checksum = c.header_checksum()};
  }
}

Status Dataset::Commit(CommitPoint& point) {
  if (impl_->context.read_only)
    return FailedPrecondition(impl_->Where() + ": open read-only");
  return impl_->Apply(point);
}

Status Dataset::FinishDeferredWrites() {
  SHOAL_RETURN_IF_ERROR(impl_->CheckWritable());
  if (!impl_->context.deferred) return Status::OK();
  if (!impl_->context.pending.empty()) {
    return FailedPrecondition(impl_->Where() + ": " +
                              std::to_string(impl_->context.pending.size()) +
                              " chunks were cut and never taken");
  }
  for (auto& t : impl_->tensors) {
    Tensor::Impl& impl = *t->impl_;
    SHOAL_RETURN_IF_ERROR(
        impl_->FillChunkSizes(impl.mutable_index(), impl.meta().id));
    const Impl::Committed& c = impl_->committed[impl.meta().id];
    impl.meta().index_key = c.index_key;
    impl.RecountChunks();
  }
  impl_->context.deferred = false;
  return Status::OK();
}

}  // namespace shoal
