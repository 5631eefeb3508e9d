// Dataset: creating, opening and removing datasets, and the schema. Rows,
// columns and commits are in dataset_write.cc.
#include "format/dataset.h"

#include <algorithm>
#include <filesystem>
#include <random>

#include "format/internal/commit_log.h"
#include "format/internal/dataset_impl.h"

namespace shoal {

using internal::DatasetMeta;
using internal::TensorMeta;

namespace {

// A fixed seed (tests) names the same chunks again whenever it is reused;
// mixing in the commit a writer starts from keeps a reopened dataset (or
// one that replaces another) from drawing ids its earlier commits hold.
void SeedIds(internal::DatasetContext& context, uint64_t seed,
             uint64_t start_commit = 0, uint32_t writer = 0) {
  // And mixing in the writer keeps writers of one job that share a seed
  // from naming the same chunks.
  if (seed != 0 && (start_commit != 0 || writer != 0)) {
    seed ^= start_commit * SplitMix64::kGolden;
    seed ^= static_cast<uint64_t>(writer) * 0xd1b54a32d192ed03ull;
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
  if (!writer.empty()) meta.writers[segment] = writer;
  for (const auto& t : tensors) meta.tensors.push_back(t->impl_->meta());
  return meta;
}

Dataset::Dataset(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Dataset::~Dataset() {
  // A library does not print: whoever needs the outcome calls Close().
  if (impl_ && !impl_->closed) (void)Close();
}

// Deletes a dataset's objects, commit 0 and HEAD first (a dataset opens from
// either), so that a crash midway leaves no dataset rather than a broken
// one.
static Status DeleteDatasetObjects(Store& store) {
  Status s = store.Delete(internal::CommitKey(0));
  if (!s.ok() && s.code() != StatusCode::kNotFound) return s;
  for (const char* prefix :
       {"HEAD", "commits/", "meta/", "index/", "chunks/"}) {
    SHOAL_ASSIGN_OR_RETURN(auto keys, store.List(prefix));
    for (const auto& key : keys) SHOAL_RETURN_IF_ERROR(store.Delete(key));
  }
  return Status::OK();
}

// Whether the store holds a dataset, and its newest commit when it does.
static Result<std::optional<internal::Head>> FindDataset(const Store& store) {
  auto head = internal::LatestHead(store);
  if (head.ok()) return std::optional<internal::Head>(*head);
  if (head.status().code() == StatusCode::kNotFound) {
    return std::optional<internal::Head>();
  }
  return head.status();
}

Result<std::unique_ptr<Dataset>> Dataset::Create(std::string_view url,
                                                 const CreateOptions& options) {
  if (options.join && options.overwrite) {
    return InvalidArgument("dataset '" + std::string(url) +
                           "': writers that join cannot also overwrite");
  }
  // Before the store, which makes the folder.
  SHOAL_RETURN_IF_ERROR(NotInsideADataset(std::string(url)));
  SHOAL_ASSIGN_OR_RETURN(auto store, OpenStore(url));
  auto impl = std::make_unique<Impl>();
  impl->context.store = store;
  impl->context.url = store->url();
  impl->segment = options.writer;
  SeedIds(impl->context, options.id_seed, 0, options.writer);
  auto join = [&]() {
    return Open(url, {.id_seed = options.id_seed, .writer = options.writer});
  };
  SHOAL_ASSIGN_OR_RETURN(auto existing, FindDataset(*store));
  if (existing && options.join) return join();
  if (existing && !options.overwrite) {
    return AlreadyExists(
        impl->Where() +
        ": a dataset already exists (--overwrite replaces it, --append adds "
        "to it)");
  }
  if (!existing && !options.overwrite) {
    // Objects but no dataset: someone's other files. Writing among them
    // would mix the two.
    SHOAL_ASSIGN_OR_RETURN(auto keys, store->List(""));
    for (const std::string& key : keys) {
      // The lock, what a killed Create or writer left (objects named as
      // shoal names them, orphans without a HEAD), and a dataset another
      // creator made since the look above (the commit below then fails or
      // joins it) are no one else's.
      if (key.starts_with(kDatasetLockKey) || key.starts_with("meta/") ||
          key.starts_with("index/") || key.starts_with("chunks/") ||
          key.starts_with("commits/") || key == internal::kHeadKey) {
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
  if (existing) {
    // The old dataset stays whole, and opens, until the new one's first
    // commit comes after its last; then its objects are garbage. (A crash
    // before leaves the old dataset plus orphans; after, orphans.)
    d.commit = existing->commit;
    d.meta_key = existing->meta_key;
    d.replacing = true;
    SeedIds(d.context, options.id_seed, d.commit.load() + 1, options.writer);
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
  d.basis = d.Snapshot();
  const std::string meta_bytes = internal::EncodeDatasetMeta(d.basis);
  SHOAL_RETURN_IF_ERROR(store->Write(d.meta_key, AsBytes(meta_bytes)));
  SHOAL_RETURN_IF_ERROR(store->Sync());
  Status s = internal::PublishCommit(*store, {0, d.meta_key});
  if (s.code() == StatusCode::kAlreadyExists) {
    // Another creator came first.
    (void)store->Delete(d.meta_key);
    d.closed = true;
    if (options.join) return join();
    return AlreadyExists(d.Where() + ": a dataset was created there meanwhile");
  }
  SHOAL_RETURN_IF_ERROR(s);
  return ds;
}

Status Dataset::Remove(std::string_view url) {
  auto store = OpenStore(url, {.create = false});
  if (!store.ok()) {
    return store.status().WithContext("no dataset at '" + std::string(url) +
                                      "'");
  }
  SHOAL_ASSIGN_OR_RETURN(auto existing, FindDataset(**store));
  if (!existing) return NotFound("no dataset at '" + std::string(url) + "'");
  SHOAL_RETURN_IF_ERROR(DeleteDatasetObjects(**store));
  return (*store)->Sync();
}

Status Dataset::Impl::Load(const internal::LatestCommit& latest, bool all) {
  Impl& impl = *this;
  const std::string where = impl.Where();
  const Store& store = *impl.context.store;
  const DatasetMeta& meta = latest.meta;
  impl.commit = meta.commit;
  impl.meta_key = latest.head.meta_key;
  impl.next_tensor_id = meta.next_tensor_id;
  auto state = meta.writers.find(impl.segment);
  impl.opened_writer = impl.writer =
      state != meta.writers.end() ? state->second : "";
  std::set<uint32_t> writers, ids;
  for (const auto& [writer, s] : meta.writers) writers.insert(writer);
  for (const TensorMeta& full : meta.tensors) {
    for (const auto& g : full.segments) writers.insert(g.writer);
  }
  impl.writers.assign(writers.begin(), writers.end());
  // Every index this view needs, read together: one round trip on a
  // network store rather than one per tensor and writer.
  std::vector<std::string_view> index_keys;
  for (const TensorMeta& full : meta.tensors) {
    for (const internal::Segment& g : full.segments) {
      if ((all || g.writer == impl.segment) && !g.index_key.empty()) {
        index_keys.push_back(g.index_key);
      }
    }
  }
  std::vector<Result<Buffer>> indexes = store.ReadMany(index_keys);
  size_t next_index = 0;
  for (const TensorMeta& full : meta.tensors) {
    TensorMeta tm = all ? full : internal::SegmentView(full, impl.segment);
    const std::string twhere = where + ": tensor '" + tm.spec.name + "'";
    if (tm.id >= meta.next_tensor_id || !ids.insert(tm.id).second ||
        impl.by_name.count(tm.spec.name)) {
      return Corruption(twhere + ": duplicate name or id in '" + impl.meta_key +
                        "'");
    }
    SHOAL_RETURN_IF_ERROR(
        CheckStoredSpec(tm).WithContext(twhere + ": '" + impl.meta_key + "'"));
    internal::TensorIndex index;
    for (const internal::Segment& g : full.segments) {
      if (!all && g.writer != impl.segment) continue;
      internal::TensorIndex part;
      if (!g.index_key.empty()) {
        if (tm.spec.rank < 0) {
          return Corruption(twhere + ": has chunks but no rank");
        }
        Result<Buffer>& bytes = indexes[next_index++];
        if (!bytes.ok()) {
          return bytes.status().WithContext(twhere + ": index '" + g.index_key +
                                            "'");
        }
        auto decoded = internal::TensorIndex::Decode(
            bytes->span(), static_cast<uint8_t>(tm.spec.rank));
        if (!decoded.ok()) {
          return decoded.status().WithContext(twhere + ": index '" +
                                              g.index_key + "'");
        }
        part = std::move(*decoded);
      }
      if (part.num_samples() != g.length) {
        return Corruption(twhere + ": metadata says " +
                          std::to_string(g.length) + " samples of writer " +
                          std::to_string(g.writer) + ", the index holds " +
                          std::to_string(part.num_samples()));
      }
      index.Append(part);
    }
    if (index.num_samples() != tm.length) {
      return Corruption(
          twhere + ": metadata says " + std::to_string(tm.length) +
          " samples, the index holds " + std::to_string(index.num_samples()));
    }
    if (all) tm.index_key.clear();
    impl.committed[tm.id] = {tm.index_key, tm.stored_bytes, tm.num_chunks};
    SHOAL_RETURN_IF_ERROR(
        impl.AddTensor(std::move(tm), std::move(index)).status());
  }
  return impl.LinkHidden();
}

Result<std::unique_ptr<Dataset>> Dataset::Open(std::string_view url,
                                               const OpenOptions& options) {
  auto store_or = OpenStore(url, {.create = false});
  if (!store_or.ok()) {
    return store_or.status().WithContext("no dataset at '" + std::string(url) +
                                         "'");
  }
  auto store = std::move(*store_or);
  uint64_t known = 0;
  // A writer committing meanwhile may delete what the commit read first
  // named; reading again from the newer commit gets past it.
  internal::SupersededRetry retry;
  while (true) {
    auto impl = std::make_unique<Impl>();
    impl->context.store = store;
    impl->context.url = store->url();
    impl->context.read_only = options.read_only;
    const std::string where = impl->Where();
    SHOAL_ASSIGN_OR_RETURN(internal::LatestCommit latest,
                           internal::ReadLatest(*store, where, known));
    if (options.writer) {
      impl->segment = *options.writer;
    } else if (!options.read_only) {
      for (const TensorMeta& t : latest.meta.tensors) {
        for (const auto& g : t.segments) {
          impl->segment = std::max(impl->segment, g.writer);
        }
      }
    }
    SeedIds(impl->context, options.id_seed, latest.meta.commit + 1,
            impl->segment);
    const bool all = options.read_only && !options.writer;
    Status s = impl->Load(latest, all);
    if (s.code() == StatusCode::kNotFound) {
      SHOAL_ASSIGN_OR_RETURN(bool newer,
                             internal::Superseded(*store, latest.meta.commit));
      if (newer && retry.Again()) {
        known = latest.meta.commit + 1;
        continue;
      }
    }
    SHOAL_RETURN_IF_ERROR(s);
    impl->basis = std::move(latest.meta);
    return std::unique_ptr<Dataset>(new Dataset(std::move(impl)));
  }
}

const std::string& Dataset::url() const { return impl_->context.url; }
const std::string& Dataset::writer_state() const {
  return impl_->opened_writer;
}
uint32_t Dataset::writer() const { return impl_->segment; }
std::vector<uint32_t> Dataset::writers() const { return impl_->writers; }
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

// A dataset made in a folder inside another dataset's would be listed among
// that one's objects: `verify --repair` would delete it as garbage, and a
// copy of the outer one would carry it. file:// only, where looking costs a
// stat per parent folder (a dataset's folder has HEAD, and commits/ or
// meta/).
Status NotInsideADataset(const std::string& url) {
  constexpr std::string_view kFile = "file://";
  std::filesystem::path path;
  if (url.starts_with(kFile)) {
    path = url.substr(kFile.size());
  } else if (url.find("://") == std::string::npos) {
    std::error_code ec;
    path = std::filesystem::absolute(url, ec);
    if (ec) return Status::OK();  // OpenStore says what is wrong with it
  } else {
    return Status::OK();
  }
  path = path.lexically_normal();
  std::error_code ec;
  for (std::filesystem::path p = path.parent_path();
       !p.empty() && p != p.root_path(); p = p.parent_path()) {
    if (std::filesystem::is_regular_file(p / "HEAD", ec) &&
        (std::filesystem::is_directory(p / "commits", ec) ||
         std::filesystem::is_directory(p / "meta", ec))) {
      return FailedPrecondition("dataset '" + url +
                                "': its folder is inside "
                                "the dataset at '" +
                                p.string() + "'; choose a path outside it");
    }
  }
  return Status::OK();
}

}  // namespace shoal
