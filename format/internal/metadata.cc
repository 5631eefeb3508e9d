#include "format/internal/metadata.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <type_traits>

#include "base/coding.h"

namespace shoal::internal {
namespace {

using nlohmann::json;

constexpr size_t kEnvelopeHeader = 16;

json ShapeToJson(const Shape& shape) {
  return json(std::vector<uint64_t>(shape.dims().begin(), shape.dims().end()));
}

Shape ShapeFromJson(const json& j) {
  if (!j.is_array()) throw std::runtime_error("a shape is not an array");
  for (const auto& d : j) {
    if (!d.is_number_unsigned())
      throw std::runtime_error("a shape dim is not unsigned");
  }
  auto dims = j.get<std::vector<uint64_t>>();
  if (dims.size() > Shape::kMaxRank) throw std::runtime_error("rank too high");
  return Shape(std::span<const uint64_t>(dims));
}

// Typed field access that refuses what nlohmann would convert silently
// (true as 1, -1 as 2^64-1, 2^40 truncated to 32 bits). Throws, like
// nlohmann itself; DecodeDatasetMeta turns both into Corruption.
template <typename T>
T Get(const json& j, const char* key) {
  const json& v = j.at(key);
  auto fail = [&](const char* what) {
    throw std::runtime_error(std::string("field '") + key + "' is not " + what);
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) fail("a boolean");
  } else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T>) {
    if (!v.is_number_unsigned() ||
        v.get<uint64_t>() > std::numeric_limits<T>::max()) {
      fail("an unsigned integer in range");
    }
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) fail("an integer");
    if (v.is_number_unsigned()
            ? v.get<uint64_t>() >
                  static_cast<uint64_t>(std::numeric_limits<T>::max())
            : v.get<int64_t>() < std::numeric_limits<T>::min() ||
                  v.get<int64_t>() > std::numeric_limits<T>::max()) {
      fail("an integer in range");
    }
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) fail("a string");
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    if (!v.is_array()) fail("an array of strings");
    for (const auto& e : v) {
      if (!e.is_string()) fail("an array of strings");
    }
  }
  return v.get<T>();
}

}  // namespace

Status CheckChunkBinding(const ChunkRef& ref, uint64_t header_checksum) {
  if (ref.header_checksum == 0 || ref.header_checksum == header_checksum) {
    return Status::OK();
  }
  return Corruption(
      "the chunk is not the one the index recorded here (header checksum " +
      Hex64(header_checksum) + ", the index says " +
      Hex64(ref.header_checksum) + "): moved, swapped or replaced");
}

std::string EncodeObject(std::string_view magic, std::string_view payload,
                         uint16_t version) {
  ByteWriter w;
  w.PutBytes(magic);
  w.PutU16(version);
  w.PutU16(0);
  w.PutU64(payload.size());
  w.PutBytes(payload);
  w.PutU64(Checksum64(AsBytes(w.bytes())));
  return std::move(w).Release();
}

Result<ByteSpan> DecodeObject(ByteSpan bytes, std::string_view magic,
                              std::string_view what, uint16_t max_version,
                              uint16_t* version_out) {
  auto bad = [&](const std::string& why) {
    return Corruption(std::string(what) + ": " + why);
  };
  if (bytes.size() < kEnvelopeHeader + 8) {
    return bad("truncated (" + std::to_string(bytes.size()) + " bytes)");
  }
  if (std::memcmp(bytes.data(), magic.data(), 4) != 0) return bad("bad magic");
  ByteReader r(bytes.subspan(4), what);
  SHOAL_ASSIGN_OR_RETURN(uint16_t version, r.GetU16());
  if (version < 1 || version > max_version) {
    return bad("unsupported version " + std::to_string(version) +
               " (this build reads 1 to " + std::to_string(max_version) + ")");
  }
  if (version_out != nullptr) *version_out = version;
  SHOAL_ASSIGN_OR_RETURN(uint16_t flags, r.GetU16());
  if (flags != 0) return bad("unsupported flags " + std::to_string(flags));
  SHOAL_ASSIGN_OR_RETURN(uint64_t length, r.GetU64());
  if (length != bytes.size() - kEnvelopeHeader - 8) {
    return bad("declares " + std::to_string(length) + " payload bytes, has " +
               std::to_string(bytes.size() - kEnvelopeHeader - 8));
  }
  const ByteSpan covered = bytes.first(kEnvelopeHeader + length);
  if (!ChecksumMatches(covered, DecodeU64(bytes.data() + covered.size()))) {
    return bad("checksum mismatch");
  }
  return bytes.subspan(kEnvelopeHeader, length);
}

std::string EncodeHead(const Head& head) {
  ByteWriter w;
  w.PutU64(head.commit);
  w.PutLengthPrefixed(head.meta_key);
  return EncodeObject(kHeadMagic, w.bytes());
}

Result<Head> DecodeHead(ByteSpan bytes) {
  SHOAL_ASSIGN_OR_RETURN(ByteSpan payload,
                         DecodeObject(bytes, kHeadMagic, "HEAD"));
  ByteReader r(payload, "HEAD");
  Head head;
  SHOAL_ASSIGN_OR_RETURN(head.commit, r.GetU64());
  SHOAL_ASSIGN_OR_RETURN(std::string_view key, r.GetLengthPrefixed(1024));
  head.meta_key = key;
  if (r.remaining() != 0) return r.Error("trailing bytes");
  return head;
}

Shape TiledSample::Grid() const {
  Shape grid = shape;
  for (size_t d = 0; d < shape.rank(); ++d) {
    grid[d] =
        tile_shape[d] == 0 ? 0 : (shape[d] + tile_shape[d] - 1) / tile_shape[d];
  }
  return grid;
}

void TensorIndex::AddChunk(const ChunkRef& chunk) {
  IndexEntry entry;
  entry.first_sample = num_samples_;
  entry.chunk = chunk;
  entries_.push_back(entry);
  num_samples_ += chunk.num_samples;
}

void TensorIndex::AddTiled(std::shared_ptr<const TiledSample> tiled) {
  IndexEntry entry;
  entry.first_sample = num_samples_;
  entry.tiled = std::move(tiled);
  entries_.push_back(std::move(entry));
  num_samples_ += 1;
}

void TensorIndex::Append(const TensorIndex& other) {
  for (const IndexEntry& e : other.entries_) {
    if (e.tiled) {
      AddTiled(e.tiled);
    } else {
      AddChunk(e.chunk);
    }
  }
}

void TensorIndex::PopBack() {
  num_samples_ -= entries_.back().num_samples();
  entries_.pop_back();
}

void TensorIndex::CountChunks(uint64_t* stored_bytes,
                              uint64_t* num_chunks) const {
  *stored_bytes = 0;
  *num_chunks = 0;
  for (const IndexEntry& e : entries_) {
    if (e.tiled) {
      for (const ChunkRef& tile : e.tiled->tiles)
        *stored_bytes += tile.chunk_bytes;
      *num_chunks += e.tiled->tiles.size();
    } else {
      *stored_bytes += e.chunk.chunk_bytes;
      *num_chunks += 1;
    }
  }
}

Status TensorIndex::UpdateRefs(const std::function<Status(ChunkRef&)>& update) {
  for (IndexEntry& e : entries_) {
    if (!e.tiled) {
      SHOAL_RETURN_IF_ERROR(update(e.chunk));
      continue;
    }
    // Tiled samples are shared between copies of an index: change a copy.
    auto tiled = std::make_shared<TiledSample>(*e.tiled);
    for (ChunkRef& tile : tiled->tiles) SHOAL_RETURN_IF_ERROR(update(tile));
    e.tiled = std::move(tiled);
  }
  return Status::OK();
}

size_t TensorIndex::Find(uint64_t sample) const {
  auto it = std::upper_bound(
      entries_.begin(), entries_.end(), sample,
      [](uint64_t s, const IndexEntry& e) { return s < e.first_sample; });
  return static_cast<size_t>(it - entries_.begin()) - 1;
}

std::string TensorIndex::Encode(uint8_t rank) const {
  ByteWriter w;
  w.PutVarint(entries_.size());
  for (const auto& e : entries_) {
    if (!e.tiled) {
      w.PutU8(0);
      w.PutU64(e.chunk.id);
      w.PutVarint(e.chunk.num_samples);
      w.PutVarint(e.chunk.chunk_bytes);
      w.PutVarint(e.chunk.header_bytes);
      w.PutU64(e.chunk.header_checksum);
      continue;
    }
    w.PutU8(1);
    for (size_t d = 0; d < rank; ++d) w.PutVarint(e.tiled->shape[d]);
    for (size_t d = 0; d < rank; ++d) w.PutVarint(e.tiled->tile_shape[d]);
    w.PutVarint(e.tiled->tiles.size());
    for (const auto& t : e.tiled->tiles) {
      w.PutU64(t.id);
      w.PutVarint(t.chunk_bytes);
      w.PutVarint(t.header_bytes);
      w.PutU64(t.header_checksum);
    }
  }
  return EncodeObject(kIndexMagic, w.bytes(), kIndexVersion);
}

Result<TensorIndex> TensorIndex::Decode(ByteSpan bytes, uint8_t rank) {
  uint16_t version = 0;
  SHOAL_ASSIGN_OR_RETURN(
      ByteSpan payload,
      DecodeObject(bytes, kIndexMagic, "chunk index", kIndexVersion, &version));
  // Version 1 records no header checksums (refs keep 0: unbound).
  const bool bound = version >= 2;
  ByteReader r(payload, "chunk index");
  TensorIndex index;
  // Each entry takes at least 9 bytes.
  SHOAL_ASSIGN_OR_RETURN(uint64_t n,
                         r.GetVarintAtMost(r.remaining() / 9, "entry count"));
  index.entries_.reserve(n);
  auto read_ref = [&](ChunkRef& ref) -> Status {
    SHOAL_ASSIGN_OR_RETURN(ref.id, r.GetU64());
    SHOAL_ASSIGN_OR_RETURN(ref.chunk_bytes, r.GetVarint());
    SHOAL_ASSIGN_OR_RETURN(uint64_t header_bytes,
                           r.GetVarintAtMost(UINT32_MAX, "header size"));
    ref.header_bytes = static_cast<uint32_t>(header_bytes);
    if (ref.header_bytes > ref.chunk_bytes)
      return r.Error("header larger than chunk");
    if (bound) {
      SHOAL_ASSIGN_OR_RETURN(ref.header_checksum, r.GetU64());
    }
    return Status::OK();
  };
  for (uint64_t i = 0; i < n; ++i) {
    SHOAL_ASSIGN_OR_RETURN(uint8_t kind, r.GetU8());
    if (kind == 0) {
      ChunkRef ref;
      SHOAL_ASSIGN_OR_RETURN(ref.id, r.GetU64());
      SHOAL_ASSIGN_OR_RETURN(ref.num_samples,
                             r.GetVarintAtMost(1ull << 40, "sample count"));
      SHOAL_ASSIGN_OR_RETURN(ref.chunk_bytes, r.GetVarint());
      SHOAL_ASSIGN_OR_RETURN(uint64_t header_bytes,
                             r.GetVarintAtMost(UINT32_MAX, "header size"));
      ref.header_bytes = static_cast<uint32_t>(header_bytes);
      if (ref.num_samples == 0) return r.Error("empty chunk in index");
      if (ref.header_bytes > ref.chunk_bytes)
        return r.Error("header larger than chunk");
      if (bound) {
        SHOAL_ASSIGN_OR_RETURN(ref.header_checksum, r.GetU64());
      }
      index.AddChunk(ref);
    } else if (kind == 1) {
      auto tiled = std::make_shared<TiledSample>();
      uint64_t dims[Shape::kMaxRank], tile[Shape::kMaxRank];
      for (size_t d = 0; d < rank; ++d) {
        SHOAL_ASSIGN_OR_RETURN(dims[d], r.GetVarint());
      }
      for (size_t d = 0; d < rank; ++d) {
        SHOAL_ASSIGN_OR_RETURN(tile[d], r.GetVarint());
        if (tile[d] == 0 || tile[d] > dims[d]) return r.Error("bad tile shape");
      }
      tiled->shape = Shape(std::span<const uint64_t>(dims, rank));
      tiled->tile_shape = Shape(std::span<const uint64_t>(tile, rank));
      const uint64_t expected = tiled->Grid().num_elements();
      // Each tile reference takes at least 10 bytes.
      SHOAL_ASSIGN_OR_RETURN(
          uint64_t num_tiles,
          r.GetVarintAtMost(r.remaining() / 10, "tile count"));
      if (num_tiles != expected) {
        return r.Error("tile count " + std::to_string(num_tiles) +
                       " does not match the grid (" + std::to_string(expected) +
                       ")");
      }
      tiled->tiles.resize(num_tiles);
      for (auto& t : tiled->tiles) {
        SHOAL_RETURN_IF_ERROR(read_ref(t));
        t.num_samples = 1;
      }
      index.AddTiled(std::move(tiled));
    } else {
      return r.Error("unknown entry kind " + std::to_string(kind));
    }
  }
  if (r.remaining() != 0) return r.Error("trailing bytes");
  return index;
}

namespace {

// The length and statistics a tensor and each of its segments record, by
// the same names.
template <typename T>
void ReadStats(const json& j, T& x) {
  x.length = Get<uint64_t>(j, "length");
  x.raw_bytes = Get<uint64_t>(j, "raw_bytes");
  x.stored_bytes = Get<uint64_t>(j, "stored_bytes");
  x.num_chunks = Get<uint64_t>(j, "num_chunks");
  x.min_shape = ShapeFromJson(j.at("min_shape"));
  x.max_shape = ShapeFromJson(j.at("max_shape"));
}

json SegmentToJson(const Segment& g) {
  return {{"writer", g.writer},
          {"index", g.index_key},
          {"length", g.length},
          {"raw_bytes", g.raw_bytes},
          {"stored_bytes", g.stored_bytes},
          {"num_chunks", g.num_chunks},
          {"min_shape", ShapeToJson(g.min_shape)},
          {"max_shape", ShapeToJson(g.max_shape)}};
}

Segment SegmentFromJson(const json& j) {
  Segment g;
  g.writer = Get<uint32_t>(j, "writer");
  g.index_key = Get<std::string>(j, "index");
  ReadStats(j, g);
  return g;
}

// The segments of `t`; a tensor made without them (by hand) is one segment
// of writer 0 described by its totals.
std::vector<Segment> SegmentsOf(const TensorMeta& t) {
  if (!t.segments.empty() || (t.length == 0 && t.index_key.empty())) {
    return t.segments;
  }
  return {t.AsSegment(0)};
}

// One writer, rank 0: the metadata keeps version 1's layout (and bytes).
bool SingleWriter(const DatasetMeta& meta) {
  for (const auto& [writer, state] : meta.writers) {
    if (writer != 0) return false;
  }
  for (const TensorMeta& t : meta.tensors) {
    const std::vector<Segment> segments = SegmentsOf(t);
    if (segments.size() > 1 ||
        (segments.size() == 1 && segments[0].writer != 0)) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string EncodeDatasetMeta(const DatasetMeta& meta) {
  const bool single = SingleWriter(meta);
  json tensors = json::array();
  for (const auto& t : meta.tensors) {
    const TensorSpec& s = t.spec;
    const std::vector<Segment> segments = SegmentsOf(t);
    const std::string index =
        single && !segments.empty() ? segments[0].index_key : "";
    json j = {
        {"id", t.id},
        {"name", s.name},
        {"htype", HTypeName(s.htype)},
        {"dtype", DTypeName(*s.dtype)},
        {"rank", s.rank},
        {"sample_compression", s.sample_compression},
        {"chunk_compression", s.chunk_compression},
        {"max_chunk_bytes", s.max_chunk_bytes},
        {"block_bytes", s.block_bytes},
        {"tiling_threshold", s.tiling_threshold},
        {"class_names", s.class_names},
        {"hidden", t.hidden},
        {"shape_tensor", t.shape_tensor},
        {"info_tensor", t.info_tensor},
        {"parent", t.parent},
        {"length", t.length},
        {"index", index},
        {"raw_bytes", t.raw_bytes},
        {"stored_bytes", t.stored_bytes},
        {"num_chunks", t.num_chunks},
        {"min_shape", ShapeToJson(t.min_shape)},
        {"max_shape", ShapeToJson(t.max_shape)},
    };
    // Optional keys are written only when set, so datasets without them
    // keep their bytes.
    if (!s.info.empty()) j["info"] = json::parse(s.info);
    if (s.planar) j["planar"] = true;
    if (!single) {
      json list = json::array();
      for (const Segment& g : segments) list.push_back(SegmentToJson(g));
      j["segments"] = std::move(list);
    }
    tensors.push_back(std::move(j));
  }
  json root = {
      {"format", "shoal"},
      {"commit", meta.commit},
      {"next_tensor_id", meta.next_tensor_id},
      {"tensors", std::move(tensors)},
  };
  if (single) {
    auto state = meta.writers.find(0);
    if (state != meta.writers.end())
      root["writer"] = json::parse(state->second);
    return EncodeObject(kMetaMagic, root.dump(1));
  }
  json writers = json::object();
  for (const auto& [writer, state] : meta.writers) {
    writers[std::to_string(writer)] = json::parse(state);
  }
  root["writers"] = std::move(writers);
  return EncodeObject(kMetaMagic, root.dump(1), kSegmentedMetaVersion);
}

Result<DatasetMeta> DecodeDatasetMeta(ByteSpan bytes) {
  uint16_t version = 0;
  SHOAL_ASSIGN_OR_RETURN(ByteSpan payload,
                         DecodeObject(bytes, kMetaMagic, "dataset metadata",
                                      kSegmentedMetaVersion, &version));
  // nlohmann::json reports type errors by throwing; they stop here.
  try {
    const json root = json::parse(AsStringView(payload));
    if (Get<std::string>(root, "format") != "shoal") {
      return Corruption("dataset metadata: not a shoal dataset");
    }
    DatasetMeta meta;
    meta.commit = Get<uint64_t>(root, "commit");
    meta.next_tensor_id = Get<uint32_t>(root, "next_tensor_id");
    for (const json& j : root.at("tensors")) {
      TensorMeta t;
      t.id = Get<uint32_t>(j, "id");
      TensorSpec& s = t.spec;
      s.name = Get<std::string>(j, "name");
      auto htype = ParseHType(Get<std::string>(j, "htype"));
      auto dtype = ParseDType(Get<std::string>(j, "dtype"));
      if (!htype.ok() || !dtype.ok()) {
        return Corruption(
            "dataset metadata: tensor '" + s.name + "': " +
            std::string(
                (htype.ok() ? dtype.status() : htype.status()).message()));
      }
      s.htype = *htype;
      s.dtype = *dtype;
      s.rank = Get<int>(j, "rank");
      if (s.rank < -1 || s.rank > static_cast<int>(Shape::kMaxRank)) {
        return Corruption("dataset metadata: tensor '" + s.name +
                          "' has rank " + std::to_string(s.rank));
      }
      s.sample_compression = Get<std::string>(j, "sample_compression");
      s.chunk_compression = Get<std::string>(j, "chunk_compression");
      s.max_chunk_bytes = Get<uint64_t>(j, "max_chunk_bytes");
      s.block_bytes = Get<uint64_t>(j, "block_bytes");
      s.tiling_threshold = Get<uint64_t>(j, "tiling_threshold");
      s.class_names = Get<std::vector<std::string>>(j, "class_names");
      if (j.contains("info")) {
        if (!j.at("info").is_object()) {
          return Corruption("dataset metadata: tensor '" + s.name +
                            "': info is not a JSON object");
        }
        s.info = j.at("info").dump();
      }
      if (j.contains("planar")) s.planar = Get<bool>(j, "planar");
      t.hidden = Get<bool>(j, "hidden");
      t.shape_tensor = Get<int64_t>(j, "shape_tensor");
      t.info_tensor = Get<int64_t>(j, "info_tensor");
      t.parent = Get<int64_t>(j, "parent");
      ReadStats(j, t);
      if (version < kSegmentedMetaVersion) {
        // One writer: one segment, writer 0, holding the whole tensor.
        t.index_key = Get<std::string>(j, "index");
        if (t.length > 0 || !t.index_key.empty()) {
          t.segments.push_back(t.AsSegment(0));
        }
      } else {
        const json& segments = j.at("segments");
        if (!segments.is_array()) throw std::runtime_error("segments");
        for (const json& g : segments) {
          t.segments.push_back(SegmentFromJson(g));
          if (t.segments.size() > 1 &&
              t.segments.back().writer <= t.segments.end()[-2].writer) {
            return Corruption("dataset metadata: tensor '" + s.name +
                              "': segments out of writer order");
          }
        }
        const TensorMeta stated = t;
        t.SumSegments();
        if (t.length != stated.length || t.raw_bytes != stated.raw_bytes ||
            t.stored_bytes != stated.stored_bytes ||
            t.num_chunks != stated.num_chunks) {
          return Corruption("dataset metadata: tensor '" + s.name +
                            "': its totals are not the sums of its segments");
        }
      }
      meta.tensors.push_back(std::move(t));
    }
    auto writer_state = [&](const json& state, uint32_t writer) -> Status {
      if (!state.is_object()) {
        return Corruption("dataset metadata: the state of writer " +
                          std::to_string(writer) + " is not a JSON object");
      }
      meta.writers[writer] = state.dump();
      return Status::OK();
    };
    if (version < kSegmentedMetaVersion) {
      if (root.contains("writer")) {
        SHOAL_RETURN_IF_ERROR(writer_state(root.at("writer"), 0));
      }
    } else {
      for (const auto& [rank, state] : root.at("writers").items()) {
        uint32_t writer = 0;
        const auto [end, ec] =
            std::from_chars(rank.data(), rank.data() + rank.size(), writer);
        if (ec != std::errc() || end != rank.data() + rank.size()) {
          return Corruption("dataset metadata: writer '" + rank +
                            "' is not a rank");
        }
        SHOAL_RETURN_IF_ERROR(writer_state(state, writer));
      }
    }
    return meta;
  } catch (const std::exception& e) {
    return Corruption(std::string("dataset metadata: ") + e.what());
  }
}

uint64_t MaxDecodedSampleBytes(const TensorSpec& spec) {
  constexpr uint64_t kCap = 1ull << 31;
  if (!spec.sample_compression.empty() || spec.tiling_threshold == kNoTiling) {
    return kCap;
  }
  return std::min(spec.tiling_threshold, kCap);
}

std::string ChunkKey(uint32_t tensor_id, uint64_t chunk_id) {
  return "chunks/" + std::to_string(tensor_id) + "/" + Hex64(chunk_id);
}

std::string IndexKey(uint32_t tensor_id, uint64_t commit, uint64_t nonce) {
  return "index/" + std::to_string(tensor_id) + "/" + std::to_string(commit) +
         "-" + Hex64(nonce);
}

std::string MetaKey(uint64_t commit, uint64_t nonce) {
  return "meta/" + std::to_string(commit) + "-" + Hex64(nonce);
}

std::string CommitKey(uint64_t commit) {
  std::string digits = std::to_string(commit);
  return "commits/" + std::string(20 - digits.size(), '0') + digits;
}

}  // namespace shoal::internal
