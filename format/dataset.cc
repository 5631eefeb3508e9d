// Dataset: opening and creating datasets, the schema, rows and columns, and
// the commit protocol (format/FORMAT.md, "Commits").
#include "format/dataset.h"

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <unordered_map>

#include "format/internal/metadata.h"
#include "format/internal/tensor_impl.h"
#include "format/lock.h"

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
};

void CommitPointDeleter::operator()(CommitPoint* point) const { delete point; }

class Dataset::Impl {
 public:
  internal::DatasetContext context;
  std::atomic<uint64_t> commit{0};
  uint32_t next_tensor_id = 0;
  // The writer state of the opened commit, and the last one prepared.
  std::string opened_writer;
  std::string writer;

  // Commit-side state: touched only by whoever commits (Flush/Close, or the
  // commit thread of a deferred writer), never by appends.
  std::string meta_key;
  struct Committed {
    std::string index_key;
    uint64_t stored_bytes = 0;
    uint64_t num_chunks = 0;
  };
  std::map<uint32_t, Committed> committed;  // by tensor id
  // Objects of a dataset this one replaces (Create with overwrite), deleted
  // after the first commit.
  std::vector<std::string> replaced;
  // And the temporary files that interrupted writes into it left.
  std::vector<std::string> replaced_leftovers;
  // Sizes of chunks a deferred writer reported written, by chunk id.
  // Sizes and header checksums, kept in refs of the chunk index.
  std::unordered_map<uint64_t, internal::ChunkRef> written;

  bool schema_dirty = false;
  bool closed = false;
  std::vector<std::unique_ptr<Tensor>> tensors;  // creation order, hidden too
  std::map<std::string, Tensor*, std::less<>> by_name;

  std::string Where() const { return "dataset '" + context.url + "'"; }
  Status CheckWritable() const {
    if (closed) return FailedPrecondition(Where() + ": closed");
    if (context.read_only)
      return FailedPrecondition(Where() + ": open read-only");
    return Status::OK();
  }
  Result<Tensor*> AddTensor(TensorMeta meta, internal::TensorIndex index);
  Status LinkHidden();
  Result<Tensor*> Find(std::string_view name) const;
  /// Flush(): seals the open chunks and commits.
  Status Commit();
  /// Null when nothing changed since the last commit was prepared. Open
  /// chunks are sealed, or with `keep_open` copied and left open.
  Result<CommitPointPtr> PrepareCommit(bool keep_open,
                                       std::string writer_state);
  Status Apply(CommitPoint& point);
  /// Completes refs of chunks cut in deferred mode from `written`.
  Status FillChunkSizes(internal::TensorIndex& index, uint32_t tensor) const;
  DatasetMeta Snapshot() const;
};

namespace {

// A fixed seed (tests) names the same chunks again whenever it is reused;
// mixing in the commit a writer starts from keeps a reopened dataset (or
// one that replaces another) from drawing ids its earlier commits hold.
void SeedIds(internal::DatasetContext& context, uint64_t seed,
             uint64_t start_commit = 0) {
  if (seed != 0 && start_commit != 0) {
    seed ^= start_commit * SplitMix64::kGolden;
    if (seed == 0) seed = 1;
  }
  if (seed == 0) {
    std::random_device rd;
    seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  context.id_rng = SplitMix64(seed);
}

std::string ShapeTensorName(std::string_view name) {
  return "_shape/" + std::string(name);
}

// A stored spec must pass the checks a new one passes: one that no writer
// could have made (a zero block size, a 1 PB chunk, an unknown codec) would
// otherwise crash or mislead the reader later.
Status CheckStoredSpec(const TensorMeta& tm) {
  Status s = tm.hidden ? (tm.spec.name.starts_with("_shape/") ||
                                  tm.spec.name.starts_with("_info/")
                              ? Status::OK()
                              : InvalidArgument("bad hidden tensor name"))
                       : ValidateTensorName(tm.spec.name);
  if (s.ok()) s = NormalizeTensorSpec(tm.spec).status();
  if (s.ok() || s.code() == StatusCode::kUnimplemented) return s;
  return Corruption("impossible tensor spec: " + std::string(s.message()));
}
std::string InfoTensorName(std::string_view name) {
  return "_info/" + std::string(name);
}

}  // namespace

Result<Tensor*> Dataset::Impl::AddTensor(TensorMeta meta,
                                         internal::TensorIndex index) {
  auto impl = std::make_unique<Tensor::Impl>(&context, std::move(meta),
                                             std::move(index));
  SHOAL_RETURN_IF_ERROR(impl->Init());
  const std::string name = impl->meta().spec.name;
  auto tensor = std::unique_ptr<Tensor>(new Tensor(std::move(impl)));
  Tensor* raw = tensor.get();
  tensors.push_back(std::move(tensor));
  by_name.emplace(name, raw);
  return raw;
}

Status Dataset::Impl::LinkHidden() {
  std::map<int64_t, Tensor*> by_id;
  for (auto& t : tensors) by_id[t->impl_->meta().id] = t.get();
  for (auto& t : tensors) {
    TensorMeta& m = t->impl_->meta();
    if (m.hidden) continue;
    auto shape = by_id.find(m.shape_tensor);
    auto info = by_id.find(m.info_tensor);
    if (shape == by_id.end() || info == by_id.end() ||
        !shape->second->hidden() || !info->second->hidden() ||
        shape->second->size() != m.length || info->second->size() != m.length) {
      return Corruption(Where() + ": tensor '" + m.spec.name +
                        "' does not match its hidden shape/info tensors");
    }
    t->impl_->set_hidden_tensors(shape->second, info->second);
  }
  return Status::OK();
}

Result<Tensor*> Dataset::Impl::Find(std::string_view name) const {
  auto it = by_name.find(name);
  if (it == by_name.end()) {
    return NotFound(Where() + ": no tensor named '" + std::string(name) + "'");
  }
  return it->second;
}

DatasetMeta Dataset::Impl::Snapshot() const {
  DatasetMeta meta;
  meta.commit = commit;
  meta.next_tensor_id = next_tensor_id;
  meta.writer = writer;
  for (const auto& t : tensors) meta.tensors.push_back(t->impl_->meta());
  return meta;
}

Result<CommitPointPtr> Dataset::Impl::PrepareCommit(bool keep_open,
                                                    std::string writer_state) {
  std::vector<std::optional<internal::ChunkRef>> open(tensors.size());
  bool dirty = schema_dirty || writer_state != writer;
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
    part.dirty = impl.dirty();
    if (part.dirty) {
      part.index = impl.index();
      if (open[i]) part.index.AddChunk(*open[i]);
    }
    for (auto& g : impl.OnCommitPrepared())
      point->garbage.push_back(std::move(g));
  }
  schema_dirty = false;
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
// (2) new index objects for tensors that changed, (3) a new metadata object,
// (4) make all of it durable, (5) switch HEAD atomically. A crash before (5)
// leaves the previous commit in force and the new objects as orphans; after
// (5), only garbage (replaced objects) is left to delete.
Status Dataset::Impl::Apply(CommitPoint& point) {
  const uint64_t next_commit = commit.load() + 1;
  std::vector<std::string> garbage;
  std::map<uint32_t, Committed> updated;
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
        const std::string bytes =
            part.index.Encode(static_cast<uint8_t>(tm.spec.rank));
        Status s = context.store->Write(key, AsBytes(bytes));
        if (!s.ok()) return s.WithContext(Where() + ": writing " + key);
      }
      if (!c.index_key.empty()) garbage.push_back(c.index_key);
      c.index_key = key;
    }
    tm.index_key = c.index_key;
    tm.stored_bytes = c.stored_bytes;
    tm.num_chunks = c.num_chunks;
    updated[tm.id] = c;
  }
  point.meta.commit = next_commit;
  const std::string new_meta_key =
      internal::MetaKey(next_commit, context.NewId());
  const std::string meta_bytes = internal::EncodeDatasetMeta(point.meta);
  Status s = context.store->Write(new_meta_key, AsBytes(meta_bytes));
  if (!s.ok()) return s.WithContext(Where() + ": writing " + new_meta_key);
  s = context.store->Sync();
  if (!s.ok()) return s.WithContext(Where() + ": sync");
  const std::string head = internal::EncodeHead({next_commit, new_meta_key});
  s = context.store->WriteAtomic(internal::kHeadKey, AsBytes(head));
  if (!s.ok()) return s.WithContext(Where() + ": switching HEAD");

  // Committed. What the new commit no longer references goes away; a failure
  // here only leaves orphans that `shoal verify --repair` removes.
  if (!meta_key.empty()) garbage.push_back(meta_key);
  for (auto& g : point.garbage) garbage.push_back(std::move(g));
  for (auto& g : replaced) garbage.push_back(std::move(g));
  replaced.clear();
  for (const auto& key : garbage) (void)context.store->Delete(key);
  for (const auto& name : replaced_leftovers) {
    (void)context.store->DeleteLeftover(name);
  }
  replaced_leftovers.clear();
  committed = std::move(updated);
  commit.store(next_commit);
  meta_key = new_meta_key;
  return Status::OK();
}

Status Dataset::Impl::Commit() {
  SHOAL_ASSIGN_OR_RETURN(auto point,
                         PrepareCommit(/*keep_open=*/false, writer));
  if (point == nullptr) return Status::OK();
  return Apply(*point);
}

Dataset::Dataset(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Dataset::~Dataset() {
  // A library does not print: whoever needs the outcome calls Close().
  if (impl_ && !impl_->closed) (void)Close();
}

// Deletes a dataset's objects, HEAD first so that a crash midway leaves no
// dataset rather than a broken one.
static Status DeleteDatasetObjects(Store& store) {
  for (const char* prefix : {"HEAD", "meta/", "index/", "chunks/"}) {
    SHOAL_ASSIGN_OR_RETURN(auto keys, store.List(prefix));
    for (const auto& key : keys) SHOAL_RETURN_IF_ERROR(store.Delete(key));
  }
  return Status::OK();
}

Result<std::unique_ptr<Dataset>> Dataset::Create(std::string_view url,
                                                 const CreateOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(auto store, OpenStore(url));
  auto impl = std::make_unique<Impl>();
  impl->context.store = store;
  impl->context.url = store->url();
  SeedIds(impl->context, options.id_seed);
  SHOAL_ASSIGN_OR_RETURN(bool exists, store->Exists(internal::kHeadKey));
  if (exists && !options.overwrite) {
    return AlreadyExists(
        impl->Where() +
        ": a dataset already exists (--overwrite replaces it, --append adds "
        "to it)");
  }
  if (!exists && !options.overwrite) {
    // Objects but no dataset: someone's other files. Writing among them
    // would mix the two.
    SHOAL_ASSIGN_OR_RETURN(auto keys, store->List(""));
    for (const std::string& key : keys) {
      // The lock, and what a killed Create or writer left (objects named
      // as shoal names them, orphans without a HEAD), are no one else's.
      if (key.starts_with(kDatasetLockKey) || key.starts_with("meta/") ||
          key.starts_with("index/") || key.starts_with("chunks/")) {
        continue;
      }
      return FailedPrecondition(impl->Where() + " is not empty (e.g. '" + key +
                                "') and holds no dataset; --overwrite writes "
                                "the dataset there anyway (nothing else there "
                                "is deleted)");
    }
  }
  auto ds = std::unique_ptr<Dataset>(new Dataset(std::move(impl)));
  Impl& d = *ds->impl_;
  if (exists) {
    // The old dataset stays whole, and opens, until the new one's first
    // commit switches HEAD past its commit; then its objects are garbage.
    // (A crash before leaves the old dataset plus orphans; after, orphans.)
    auto head = store->Read(internal::kHeadKey);
    if (head.ok()) {
      auto decoded = internal::DecodeHead(head->span());
      if (decoded.ok()) d.commit = decoded->commit;
    }
    SeedIds(d.context, options.id_seed, d.commit.load() + 1);
    for (const char* prefix : {"meta/", "index/", "chunks/"}) {
      SHOAL_ASSIGN_OR_RETURN(auto keys, store->List(prefix));
      for (auto& key : keys) d.replaced.push_back(std::move(key));
      SHOAL_ASSIGN_OR_RETURN(auto leftovers, store->ListLeftovers(prefix));
      for (auto& name : leftovers) {
        d.replaced_leftovers.push_back(std::move(name));
      }
    }
    d.schema_dirty = true;
    return ds;
  }
  // Commit 0 is the empty dataset, so that it opens at once.
  d.commit = 0;
  d.meta_key = internal::MetaKey(0, d.context.NewId());
  const std::string meta_bytes = internal::EncodeDatasetMeta(d.Snapshot());
  SHOAL_RETURN_IF_ERROR(store->Write(d.meta_key, AsBytes(meta_bytes)));
  SHOAL_RETURN_IF_ERROR(store->Sync());
  const std::string head = internal::EncodeHead({0, d.meta_key});
  SHOAL_RETURN_IF_ERROR(store->WriteAtomic(internal::kHeadKey, AsBytes(head)));
  return ds;
}

Status Dataset::Remove(std::string_view url) {
  auto store = OpenStore(url, {.create = false});
  if (!store.ok()) {
    return store.status().WithContext("no dataset at '" + std::string(url) +
                                      "'");
  }
  SHOAL_ASSIGN_OR_RETURN(bool exists, (*store)->Exists(internal::kHeadKey));
  if (!exists) return NotFound("no dataset at '" + std::string(url) + "'");
  SHOAL_RETURN_IF_ERROR(DeleteDatasetObjects(**store));
  return (*store)->Sync();
}

Result<std::unique_ptr<Dataset>> Dataset::Open(std::string_view url,
                                               const OpenOptions& options) {
  auto store_or = OpenStore(url, {.create = false});
  if (!store_or.ok()) {
    return store_or.status().WithContext("no dataset at '" + std::string(url) +
                                         "'");
  }
  auto store = std::move(*store_or);
  auto impl = std::make_unique<Impl>();
  impl->context.store = store;
  impl->context.url = store->url();
  impl->context.read_only = options.read_only;
  SeedIds(impl->context, options.id_seed);
  const std::string where = impl->Where();

  auto head_bytes = store->Read(internal::kHeadKey);
  if (!head_bytes.ok()) {
    if (head_bytes.status().code() == StatusCode::kNotFound) {
      return NotFound(where + ": no dataset here (no HEAD object)");
    }
    return head_bytes.status().WithContext(where);
  }
  auto head = internal::DecodeHead(head_bytes->span());
  if (!head.ok()) return head.status().WithContext(where);
  auto meta_bytes = store->Read(head->meta_key);
  if (!meta_bytes.ok())
    return meta_bytes.status().WithContext(where + ": metadata '" +
                                           head->meta_key + "'");
  auto meta = internal::DecodeDatasetMeta(meta_bytes->span());
  if (!meta.ok())
    return meta.status().WithContext(where + ": '" + head->meta_key + "'");
  if (meta->commit != head->commit) {
    return Corruption(
        where + ": HEAD names commit " + std::to_string(head->commit) +
        " but its metadata is commit " + std::to_string(meta->commit));
  }
  impl->commit = meta->commit;
  impl->meta_key = head->meta_key;
  SeedIds(impl->context, options.id_seed, meta->commit + 1);
  impl->next_tensor_id = meta->next_tensor_id;
  impl->opened_writer = impl->writer = meta->writer;
  std::set<uint32_t> ids;
  for (auto& tm : meta->tensors) {
    const std::string twhere = where + ": tensor '" + tm.spec.name + "'";
    if (tm.id >= meta->next_tensor_id || !ids.insert(tm.id).second ||
        impl->by_name.count(tm.spec.name)) {
      return Corruption(twhere + ": duplicate name or id in '" +
                        head->meta_key + "'");
    }
    SHOAL_RETURN_IF_ERROR(
        CheckStoredSpec(tm).WithContext(twhere + ": '" + head->meta_key + "'"));
    internal::TensorIndex index;
    if (!tm.index_key.empty()) {
      if (tm.spec.rank < 0)
        return Corruption(twhere + ": has chunks but no rank");
      auto bytes = store->Read(tm.index_key);
      if (!bytes.ok())
        return bytes.status().WithContext(twhere + ": index '" + tm.index_key +
                                          "'");
      auto decoded = internal::TensorIndex::Decode(
          bytes->span(), static_cast<uint8_t>(tm.spec.rank));
      if (!decoded.ok())
        return decoded.status().WithContext(twhere + ": index '" +
                                            tm.index_key + "'");
      index = std::move(*decoded);
    }
    if (index.num_samples() != tm.length) {
      return Corruption(
          twhere + ": metadata says " + std::to_string(tm.length) +
          " samples, the index holds " + std::to_string(index.num_samples()));
    }
    impl->committed[tm.id] = {tm.index_key, tm.stored_bytes, tm.num_chunks};
    SHOAL_RETURN_IF_ERROR(
        impl->AddTensor(std::move(tm), std::move(index)).status());
  }
  SHOAL_RETURN_IF_ERROR(impl->LinkHidden());
  return std::unique_ptr<Dataset>(new Dataset(std::move(impl)));
}

const std::string& Dataset::url() const { return impl_->context.url; }
const std::string& Dataset::writer_state() const {
  return impl_->opened_writer;
}
bool Dataset::read_only() const { return impl_->context.read_only; }
uint64_t Dataset::commit() const { return impl_->commit.load(); }
const std::shared_ptr<Store>& Dataset::store() const {
  return impl_->context.store;
}

Result<Tensor*> Dataset::CreateTensor(TensorSpec spec) {
  SHOAL_RETURN_IF_ERROR(impl_->CheckWritable());
  SHOAL_RETURN_IF_ERROR(ValidateTensorName(spec.name));
  // A tensor name must not be a group of another, nor the other way round.
  for (const auto& [name, t] : impl_->by_name) {
    if (name == spec.name) {
      return AlreadyExists(impl_->Where() + ": tensor '" + spec.name +
                           "' exists");
    }
    if (name.starts_with(spec.name + "/") ||
        spec.name.starts_with(name + "/")) {
      return InvalidArgument(impl_->Where() + ": '" + spec.name +
                             "' clashes with the tensor or group '" + name +
                             "'");
    }
  }
  SHOAL_ASSIGN_OR_RETURN(TensorSpec normalized,
                         NormalizeTensorSpec(std::move(spec)));

  TensorMeta data;
  data.id = impl_->next_tensor_id++;
  data.spec = std::move(normalized);
  TensorMeta shape;
  shape.id = impl_->next_tensor_id++;
  shape.hidden = true;
  shape.parent = data.id;
  shape.spec.name = ShapeTensorName(data.spec.name);
  shape.spec.dtype = DType::kUInt32;
  shape.spec.rank = 1;
  shape.spec.chunk_compression = "lz4";
  shape.spec.tiling_threshold = kNoTiling;
  TensorMeta info = shape;
  info.id = impl_->next_tensor_id++;
  info.spec.name = InfoTensorName(data.spec.name);
  info.spec.htype = HType::kJson;
  info.spec.dtype = DType::kUInt8;
  data.shape_tensor = shape.id;
  data.info_tensor = info.id;

  SHOAL_ASSIGN_OR_RETURN(Tensor * t, impl_->AddTensor(std::move(data), {}));
  SHOAL_ASSIGN_OR_RETURN(Tensor * s, impl_->AddTensor(std::move(shape), {}));
  SHOAL_ASSIGN_OR_RETURN(Tensor * i, impl_->AddTensor(std::move(info), {}));
  t->impl_->set_hidden_tensors(s, i);
  impl_->schema_dirty = true;
  return t;
}

Result<Tensor*> Dataset::tensor(std::string_view name) const {
  return impl_->Find(name);
}

std::vector<Tensor*> Dataset::tensors(bool include_hidden) const {
  std::vector<Tensor*> out;
  for (const auto& t : impl_->tensors) {
    if (include_hidden || !t->hidden()) out.push_back(t.get());
  }
  return out;
}

uint64_t Dataset::len() const {
  bool any = false;
  uint64_t n = 0;
  for (Tensor* t : tensors()) {
    n = any ? std::min(n, t->size()) : t->size();
    any = true;
  }
  return n;
}

uint64_t Dataset::max_len() const {
  uint64_t n = 0;
  for (Tensor* t : tensors()) n = std::max(n, t->size());
  return n;
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
    SHOAL_ASSIGN_OR_RETURN(Tensor * t, impl_->Find(v.tensor));
    if (t->hidden() ||
        std::find(targets.begin(), targets.end(), t) != targets.end()) {
      return InvalidArgument(impl_->Where() + ": tensor '" +
                             std::string(v.tensor) +
                             "' is hidden or appears twice in the row");
    }
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
    SHOAL_ASSIGN_OR_RETURN(Tensor * t, impl_->Find(c.tensor));
    if (t->hidden() ||
        std::find(targets.begin(), targets.end(), t) != targets.end()) {
      return InvalidArgument(impl_->Where() + ": tensor '" +
                             std::string(c.tensor) +
                             "' is hidden or appears twice in the batch");
    }
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
