// The checks of VerifyDataset (format/internal/verifier.h): reads every
// committed object and checks it against the others, collecting problems
// instead of stopping at the first.
#include "format/verify.h"

#include <map>
#include <set>

#include "base/coding.h"
#include "codecs/byte_codec.h"
#include "format/chunk.h"
#include "format/internal/commit_log.h"
#include "format/internal/metadata.h"
#include "format/internal/sample_codec.h"
#include "format/internal/verifier.h"
#include "format/store.h"

namespace shoal {

using internal::ChunkRef;
using internal::TensorMeta;
using Kind = VerifyProblem::Kind;

namespace {

// A failed read or list is damage only when the store says the object is
// gone or its bytes are wrong; an I/O or server error (EIO, an S3 500 after
// the retries) says nothing about the dataset.
Kind KindOfFailure(const Status& failure) {
  switch (failure.code()) {
    case StatusCode::kNotFound:
      return Kind::kMissing;
    case StatusCode::kIOError:
    case StatusCode::kCancelled:
      return Kind::kUnreadable;
    default:
      return Kind::kCorrupt;
  }
}

class Verifier {
 public:
  Verifier(std::shared_ptr<Store> store, const VerifyOptions& options)
      : store_(std::move(store)), options_(options) {}

  VerifyReport Run();

 private:
  void Problem(Kind kind, std::string object, std::string message) {
    report_.problems.push_back({kind, std::move(object), std::move(message)});
  }
  // Reads and checks `key`; NotFound becomes a kMissing problem.
  Result<Buffer> ReadObject(const std::string& key);
  // Reads and checks a tensor's chunk index (first pass, so that the number
  // of chunks is known before any is read).
  void LoadIndex(const TensorMeta& meta);
  void VerifyTensor(const TensorMeta& meta);
  // Checks one chunk; appends its sample shapes to `shapes` (as runs).
  void VerifyChunk(const TensorMeta& meta, const ChunkRef& ref,
                   const internal::SampleCodec* sample_codec,
                   const ByteCodec* chunk_codec,
                   std::vector<std::pair<uint64_t, Shape>>* shapes,
                   std::vector<uint32_t>* shape_values);
  void CheckHiddenShapes(const TensorMeta& data);
  void FindOrphans();
  void CheckShapeStatistics(
      const TensorMeta& meta,
      const std::vector<std::pair<uint64_t, Shape>>& shapes);
  void CheckParents(const std::string& meta_key);

  std::shared_ptr<Store> store_;
  const VerifyOptions& options_;
  VerifyReport report_;
  std::set<std::string> referenced_;
  uint64_t total_chunks_ = 0;
  // Per tensor id: the shapes its chunk headers record (runs), and for
  // hidden shape tensors the stored dims.
  std::map<uint32_t, std::vector<std::pair<uint64_t, Shape>>> header_shapes_;
  std::map<uint32_t, std::vector<uint32_t>> shape_values_;
  std::map<uint32_t, bool> tensor_ok_;
  std::map<uint32_t, const TensorMeta*> by_id_;
  // Tensors whose index could not be read: which of their chunks are
  // referenced is unknown, so none of them is called an orphan.
  std::set<uint32_t> unindexed_;
  std::map<uint32_t, internal::TensorIndex> indexes_;
};

Result<Buffer> Verifier::ReadObject(const std::string& key) {
  referenced_.insert(key);
  auto bytes = store_->Read(key);
  if (!bytes.ok()) {
    const Kind kind = KindOfFailure(bytes.status());
    Problem(kind, key,
            kind == Kind::kMissing ? "referenced but not in the store"
                                   : bytes.status().ToString());
  }
  return bytes;
}

VerifyReport Verifier::Run() {
  referenced_.insert(std::string(internal::kHeadKey));
  // Opening passes over a damaged HEAD (a hint); verify reports it.
  if (auto hint = store_->Read(internal::kHeadKey); hint.ok()) {
    auto decoded = internal::DecodeHead(hint->span());
    if (!decoded.ok()) {
      Problem(Kind::kCorrupt, "HEAD", decoded.status().ToString());
    }
  }
  auto head = internal::LatestHead(*store_);
  if (!head.ok()) {
    if (head.status().code() == StatusCode::kNotFound) {
      Problem(Kind::kMissing, "HEAD", "no HEAD and no commit 0");
    } else {
      Problem(KindOfFailure(head.status()), "HEAD", head.status().ToString());
    }
    return std::move(report_);
  }
  // Opening trusts HEAD when no newer commit follows it, but the commit
  // object decides (datasets from before commit objects have none).
  const std::string commit_key = internal::CommitKey(head->commit);
  if (auto commit = store_->Read(commit_key); commit.ok()) {
    auto named = internal::DecodeHead(commit->span());
    if (!named.ok() || named->commit != head->commit ||
        named->meta_key != head->meta_key) {
      Problem(Kind::kCorrupt, commit_key,
              (named.ok() ? "names '" + named->meta_key + "', HEAD '" +
                                head->meta_key + "'"
                          : named.status().ToString()) +
                  " (verify --repair mends it)");
    }
  } else if (commit.status().code() != StatusCode::kNotFound) {
    Problem(KindOfFailure(commit.status()), commit_key,
            commit.status().ToString());
  }
  auto meta_bytes = ReadObject(head->meta_key);
  if (!meta_bytes.ok()) return std::move(report_);
  auto meta = internal::DecodeDatasetMeta(meta_bytes->span());
  if (!meta.ok()) {
    Problem(Kind::kCorrupt, head->meta_key, meta.status().ToString());
    return std::move(report_);
  }
  report_.commit = meta->commit;
  if (meta->commit != head->commit) {
    Problem(Kind::kInconsistent, head->meta_key,
            "is commit " + std::to_string(meta->commit) + ", the commit says " +
                std::to_string(head->commit));
  }
  for (const auto& t : meta->tensors) {
    if (by_id_.count(t.id)) {
      Problem(Kind::kInconsistent, head->meta_key,
              "two tensors with id " + std::to_string(t.id));
      continue;
    }
    by_id_[t.id] = &t;
    ++report_.tensors;
  }
  CheckParents(head->meta_key);
  for (const auto& t : meta->tensors) LoadIndex(t);
  // Shape tensors first, so data tensors can be compared against them.
  for (const auto& t : meta->tensors) {
    if (t.hidden) VerifyTensor(t);
  }
  for (const auto& t : meta->tensors) {
    if (!t.hidden) {
      VerifyTensor(t);
      CheckHiddenShapes(t);
    }
  }
  FindOrphans();
  return std::move(report_);
}

void Verifier::LoadIndex(const TensorMeta& meta) {
  const std::string where = "tensor '" + meta.spec.name + "'";
  internal::TensorIndex whole;
  bool any = false;
  for (const internal::Segment& g : meta.segments) {
    if (g.index_key.empty()) {
      if (g.length != 0) {
        Problem(Kind::kInconsistent, where,
                std::to_string(g.length) + " samples of writer " +
                    std::to_string(g.writer) + " but no index");
      }
      continue;
    }
    any = true;
    if (meta.spec.rank < 0 || !meta.spec.dtype) {
      Problem(Kind::kCorrupt, where, "has chunks but no rank");
      unindexed_.insert(meta.id);
      return;
    }
    auto bytes = ReadObject(g.index_key);
    if (!bytes.ok()) {
      unindexed_.insert(meta.id);
      return;
    }
    auto index = internal::TensorIndex::Decode(
        bytes->span(), static_cast<uint8_t>(meta.spec.rank));
    if (!index.ok()) {
      unindexed_.insert(meta.id);
      Problem(Kind::kCorrupt, g.index_key,
              where + ": " + index.status().ToString());
      return;
    }
    if (index->num_samples() != g.length) {
      Problem(Kind::kInconsistent, g.index_key,
              where + ": holds " + std::to_string(index->num_samples()) +
                  " samples, the metadata says " + std::to_string(g.length));
    }
    whole.Append(*index);
  }
  if (!any) {
    if (meta.length != 0) {
      Problem(Kind::kInconsistent, where,
              std::to_string(meta.length) + " samples but no index");
    }
    return;
  }
  for (const auto& e : whole.entries())
    total_chunks_ += e.tiled ? e.tiled->tiles.size() : 1;
  indexes_.emplace(meta.id, std::move(whole));
}

void Verifier::VerifyTensor(const TensorMeta& meta) {
  const std::string where = "tensor '" + meta.spec.name + "'";
  tensor_ok_[meta.id] = meta.length == 0 &&
                        std::all_of(meta.segments.begin(), meta.segments.end(),
                                    [](const internal::Segment& g) {
                                      return g.index_key.empty();
                                    });
  auto found = indexes_.find(meta.id);
  if (found == indexes_.end()) return;
  const internal::TensorIndex* index = &found->second;
  auto sample_codec_or = internal::SampleCodec::Make(
      meta.spec.sample_compression, *meta.spec.dtype);
  if (!sample_codec_or.ok()) {
    Problem(Kind::kCorrupt, where, sample_codec_or.status().ToString());
    return;
  }
  std::shared_ptr<const internal::SampleCodec> sample_codec = *sample_codec_or;
  std::shared_ptr<const ByteCodec> chunk_codec;
  if (!meta.spec.chunk_compression.empty()) {
    auto made = MakeByteCodec(meta.spec.chunk_compression,
                              {DTypeSize(*meta.spec.dtype)});
    if (!made.ok()) {
      Problem(Kind::kCorrupt, where, made.status().ToString());
      return;
    }
    chunk_codec = *made;
  }
  const size_t problems_before = report_.problems.size();
  uint64_t stored = 0, chunks = 0;
  auto& shapes = header_shapes_[meta.id];
  auto* values = meta.parent >= 0 && meta.spec.name.starts_with("_shape/")
                     ? &shape_values_[meta.id]
                     : nullptr;
  for (const auto& e : index->entries()) {
    if (!e.tiled) {
      VerifyChunk(meta, e.chunk, sample_codec.get(), chunk_codec.get(), &shapes,
                  values);
      stored += e.chunk.chunk_bytes;
      ++chunks;
      continue;
    }
    // A tiled sample: every tile is a one-sample chunk; its shape is the
    // tiled sample's.
    std::vector<std::pair<uint64_t, Shape>> tile_shapes;
    for (const auto& tile : e.tiled->tiles) {
      VerifyChunk(meta, tile, sample_codec.get(), chunk_codec.get(),
                  &tile_shapes, nullptr);
      stored += tile.chunk_bytes;
      ++chunks;
    }
    shapes.push_back({1, e.tiled->shape});
  }
  if (report_.problems.size() == problems_before) {
    if (stored != meta.stored_bytes || chunks != meta.num_chunks) {
      Problem(Kind::kInconsistent, where,
              "statistics say " + std::to_string(meta.num_chunks) +
                  " chunks of " + std::to_string(meta.stored_bytes) +
                  " bytes, the index has " + std::to_string(chunks) + " of " +
                  std::to_string(stored));
    } else {
      CheckShapeStatistics(meta, shapes);
    }
    tensor_ok_[meta.id] = true;
  }
}

// The statistics the metadata claims about samples (raw bytes, elementwise
// smallest and largest shape), recomputed from the shapes the chunks hold.
void Verifier::CheckShapeStatistics(
    const TensorMeta& meta,
    const std::vector<std::pair<uint64_t, Shape>>& shapes) {
  const std::string where = "tensor '" + meta.spec.name + "'";
  uint64_t raw = 0;
  std::optional<Shape> lo, hi;
  for (const auto& [count, shape] : shapes) {
    auto size = shape.ByteSize(*meta.spec.dtype);
    if (!size.ok()) return;  // reported with the chunk
    raw += count * *size;
    if (!lo) {
      lo = hi = shape;
      continue;
    }
    if (shape.rank() != lo->rank()) return;  // reported with the chunk
    uint64_t l[Shape::kMaxRank], h[Shape::kMaxRank];
    for (size_t d = 0; d < shape.rank(); ++d) {
      l[d] = std::min((*lo)[d], shape[d]);
      h[d] = std::max((*hi)[d], shape[d]);
    }
    lo = Shape(std::span<const uint64_t>(l, shape.rank()));
    hi = Shape(std::span<const uint64_t>(h, shape.rank()));
  }
  if (raw != meta.raw_bytes) {
    Problem(Kind::kInconsistent, where,
            "statistics say " + std::to_string(meta.raw_bytes) +
                " raw bytes, the samples hold " + std::to_string(raw));
  }
  if (lo && (*lo != meta.min_shape || *hi != meta.max_shape)) {
    Problem(Kind::kInconsistent, where,
            "statistics say shapes from " + meta.min_shape.ToString() + " to " +
                meta.max_shape.ToString() + ", the samples range " +
                lo->ToString() + " to " + hi->ToString());
  }
}

// Hidden tensors belong to exactly one data tensor, which names them.
void Verifier::CheckParents(const std::string& meta_key) {
  for (const auto& [id, t] : by_id_) {
    if (!t->hidden) {
      for (int64_t child : {t->shape_tensor, t->info_tensor}) {
        auto it = child >= 0 ? by_id_.find(static_cast<uint32_t>(child))
                             : by_id_.end();
        if (it != by_id_.end() &&
            (!it->second->hidden || it->second->parent != t->id)) {
          Problem(Kind::kInconsistent, meta_key,
                  "tensor '" + t->spec.name + "' names tensor '" +
                      it->second->spec.name +
                      "' as its hidden tensor, which does not name it back");
        }
      }
      continue;
    }
    auto parent = t->parent >= 0 ? by_id_.find(static_cast<uint32_t>(t->parent))
                                 : by_id_.end();
    if (t->parent == t->id || parent == by_id_.end() ||
        parent->second->hidden ||
        (parent->second->shape_tensor != t->id &&
         parent->second->info_tensor != t->id)) {
      Problem(Kind::kInconsistent, meta_key,
              "hidden tensor '" + t->spec.name + "' has parent " +
                  std::to_string(t->parent) +
                  ", which is not a data tensor that names it");
    }
  }
}

void Verifier::VerifyChunk(const TensorMeta& meta, const ChunkRef& ref,
                           const internal::SampleCodec* sample_codec,
                           const ByteCodec* chunk_codec,
                           std::vector<std::pair<uint64_t, Shape>>* shapes,
                           std::vector<uint32_t>* shape_values) {
  const std::string key = internal::ChunkKey(meta.id, ref.id);
  const std::string where = "tensor '" + meta.spec.name + "'";
  auto bytes = ReadObject(key);
  ++report_.chunks;
  if (options_.progress) options_.progress(report_.chunks, total_chunks_);
  if (!bytes.ok()) return;
  report_.bytes += bytes->size();
  if (bytes->size() != ref.chunk_bytes) {
    Problem(Kind::kCorrupt, key,
            where + ": " + std::to_string(bytes->size()) +
                " bytes, the index says " + std::to_string(ref.chunk_bytes));
    return;
  }
  auto header = ChunkHeader::Decode(bytes->span(), bytes->size());
  if (!header.ok()) {
    Problem(Kind::kCorrupt, key, where + ": " + header.status().ToString());
    return;
  }
  const ChunkHeader& h = **header;
  if (Status bound = internal::CheckChunkBinding(ref, h.checksum());
      !bound.ok()) {
    Problem(Kind::kCorrupt, key, where + ": " + std::string(bound.message()));
    return;
  }
  const ChunkFormat& f = h.format();
  if (h.header_size() != ref.header_bytes ||
      h.num_samples() != ref.num_samples || f.dtype != *meta.spec.dtype ||
      f.rank != meta.spec.rank ||
      f.sample_codec != meta.spec.sample_compression ||
      f.chunk_codec != meta.spec.chunk_compression) {
    Problem(Kind::kInconsistent, key,
            where + ": header disagrees with the index or schema");
    return;
  }
  Buffer data;
  if (!h.blocks().empty()) {
    auto decoded = DecodeBlocks(
        h, 0, h.blocks().size() - 1,
        bytes->Slice(h.header_size(), h.chunk_size() - h.header_size()),
        chunk_codec);
    if (!decoded.ok()) {
      Problem(Kind::kCorrupt, key, where + ": " + decoded.status().ToString());
      return;
    }
    data = *decoded;
  }
  const SampleLayout& layout = h.layout();
  for (const auto& run : layout.shape_runs())
    shapes->push_back({run.count, run.shape});
  std::vector<std::byte> scratch;
  for (uint64_t i = 0; i < layout.num_samples(); ++i) {
    const Shape shape = layout.shape(i);
    const ByteRange range = layout.range(i);
    auto raw_size = shape.ByteSize(f.dtype);
    std::string problem;
    if (!raw_size.ok()) {
      problem = raw_size.status().ToString();
    } else if (sample_codec == nullptr && range.size != *raw_size) {
      problem = "has " + std::to_string(range.size) + " bytes for shape " +
                shape.ToString();
    } else if (sample_codec != nullptr && options_.decode_samples &&
               !sample_codec->video()) {
      if (*raw_size > internal::MaxDecodedSampleBytes(meta.spec)) {
        problem = "shape " + shape.ToString() +
                  " exceeds the tensor's sample size limit";
      } else {
        scratch.resize(*raw_size);
        Status s = sample_codec->Decode(
            data.span().subspan(range.offset, range.size), shape, scratch);
        if (!s.ok()) problem = s.ToString();
      }
    }
    if (!problem.empty()) {
      Problem(
          Kind::kCorrupt, key,
          where + ": sample " + std::to_string(i) + " of the chunk " + problem);
      return;
    }
    if (shape_values != nullptr) {
      for (uint64_t b = 0; b + 4 <= range.size; b += 4) {
        shape_values->push_back(DecodeU32(data.data() + range.offset + b));
      }
    }
  }
  report_.samples += layout.num_samples();
}

void Verifier::CheckHiddenShapes(const TensorMeta& data) {
  const std::string where = "tensor '" + data.spec.name + "'";
  auto shape_it = by_id_.find(static_cast<uint32_t>(data.shape_tensor));
  auto info_it = by_id_.find(static_cast<uint32_t>(data.info_tensor));
  if (shape_it == by_id_.end() || info_it == by_id_.end()) {
    Problem(Kind::kInconsistent, where,
            "its hidden shape or info tensor is missing");
    return;
  }
  for (const TensorMeta* hidden : {shape_it->second, info_it->second}) {
    if (hidden->length != data.length) {
      Problem(Kind::kInconsistent, where,
              "has " + std::to_string(data.length) +
                  " samples, hidden tensor '" + hidden->spec.name + "' " +
                  std::to_string(hidden->length));
      return;
    }
  }
  if (!tensor_ok_[data.id] || !tensor_ok_[shape_it->second->id]) return;
  const auto& values = shape_values_[shape_it->second->id];
  const size_t rank = static_cast<size_t>(std::max(data.spec.rank, 0));
  uint64_t sample = 0;
  size_t pos = 0;
  for (const auto& [count, shape] : header_shapes_[data.id]) {
    for (uint64_t k = 0; k < count; ++k, ++sample) {
      bool match = pos + rank <= values.size();
      for (size_t d = 0; match && d < rank; ++d)
        match = values[pos + d] == shape[d];
      if (!match) {
        Problem(Kind::kInconsistent, where,
                "sample " + std::to_string(sample) + " has shape " +
                    shape.ToString() + " in its chunk but another in '" +
                    shape_it->second->spec.name + "'");
        return;
      }
      pos += rank;
    }
  }
}

// Whether `key` has a name the dataset gives its objects:
// meta/<commit>-<hex64>, index/<tensor id>/<commit>-<hex64>,
// chunks/<tensor id>/<hex64> (decimal numbers without leading zeros).
bool IsDatasetObjectName(std::string_view key) {
  auto take_decimal = [](std::string_view& s) {
    size_t n = 0;
    while (n < s.size() && n < 20 && s[n] >= '0' && s[n] <= '9') ++n;
    if (n == 0 || (n > 1 && s[0] == '0')) return false;
    s.remove_prefix(n);
    return true;
  };
  auto is_hex64 = [](std::string_view s) {
    if (s.size() != 16) return false;
    for (char c : s) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
  };
  auto take = [](std::string_view& s, char c) {
    if (s.empty() || s[0] != c) return false;
    s.remove_prefix(1);
    return true;
  };
  std::string_view s = key;
  if (s.starts_with("meta/")) {
    s.remove_prefix(5);
    return take_decimal(s) && take(s, '-') && is_hex64(s);
  }
  if (s.starts_with("index/")) {
    s.remove_prefix(6);
    return take_decimal(s) && take(s, '/') && take_decimal(s) && take(s, '-') &&
           is_hex64(s);
  }
  if (s.starts_with("chunks/")) {
    s.remove_prefix(7);
    return take_decimal(s) && take(s, '/') && is_hex64(s);
  }
  return false;
}

void Verifier::FindOrphans() {
  // Deleting is safe only when everything else checked out: otherwise the
  // set of referenced objects may be incomplete.
  const bool may_delete = options_.repair && report_.problems.empty();
  // Removes an orphan when repairing (true when it is gone); `what` says
  // what --repair does or did about it.
  auto repair = [&](const auto& remove, std::string& what) {
    what = "--repair removes it";
    if (!may_delete) return false;
    const Status removed = remove();
    if (removed.ok()) ++report_.orphans_removed;
    what = "--repair could not remove it: " + removed.ToString();
    return removed.ok();
  };
  for (const char* prefix : {"meta/", "index/", "chunks/"}) {
    auto keys = store_->List(prefix);
    if (!keys.ok()) {
      Problem(KindOfFailure(keys.status()), prefix,
              "cannot list: " + keys.status().ToString());
      continue;
    }
    for (const auto& key : *keys) {
      if (referenced_.count(key)) continue;
      if (!IsDatasetObjectName(key)) {
        report_.foreign.push_back(key);
        continue;
      }
      bool unknown = false;
      for (uint32_t id : unindexed_) {
        const std::string tid = std::to_string(id) + "/";
        unknown = unknown || key.starts_with("chunks/" + tid) ||
                  key.starts_with("index/" + tid);
      }
      if (unknown) continue;
      std::string removal;
      if (repair([&] { return store_->Delete(key); }, removal)) continue;
      Problem(Kind::kOrphan, key,
              "not referenced by commit " + std::to_string(report_.commit) +
                  " (left by an interrupted write; " + removal + ")");
    }
    // Temporary files of writes that never finished are never referenced.
    auto leftovers = store_->ListLeftovers(prefix);
    if (!leftovers.ok()) {
      Problem(KindOfFailure(leftovers.status()), prefix,
              "cannot list: " + leftovers.status().ToString());
      continue;
    }
    for (const auto& name : *leftovers) {
      std::string removal;
      if (repair([&] { return store_->DeleteLeftover(name); }, removal)) {
        continue;
      }
      Problem(Kind::kOrphan, name,
              "a temporary file of an interrupted write (" + removal + ")");
    }
  }
}

}  // namespace

VerifyReport internal::RunVerifier(std::shared_ptr<Store> store,
                                   const VerifyOptions& options) {
  return Verifier(std::move(store), options).Run();
}

}  // namespace shoal
