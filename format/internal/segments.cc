// Writer segments of a tensor and how a writer's commit merges its own
// into the newest commit (format/FORMAT.md, "Several writers").
#include <algorithm>

#include "format/internal/metadata.h"

namespace shoal::internal {

void ElementwiseMinMax(const Shape& s, Shape& lo, Shape& hi, bool first) {
  if (first) {
    lo = hi = s;
    return;
  }
  for (size_t d = 0; d < s.rank(); ++d) {
    lo[d] = std::min(lo[d], s[d]);
    hi[d] = std::max(hi[d], s[d]);
  }
}

const Segment* TensorMeta::FindSegment(uint32_t writer) const {
  for (const Segment& g : segments) {
    if (g.writer == writer) return &g;
  }
  return nullptr;
}

void TensorMeta::SumSegments() {
  length = raw_bytes = stored_bytes = num_chunks = 0;
  min_shape = max_shape = Shape();
  bool first = true;
  for (const Segment& g : segments) {
    length += g.length;
    raw_bytes += g.raw_bytes;
    stored_bytes += g.stored_bytes;
    num_chunks += g.num_chunks;
    if (g.length == 0) continue;
    ElementwiseMinMax(g.min_shape, min_shape, max_shape, first);
    ElementwiseMinMax(g.max_shape, min_shape, max_shape, false);
    first = false;
  }
}

Segment TensorMeta::AsSegment(uint32_t writer) const {
  return {.writer = writer,
          .index_key = index_key,
          .length = length,
          .raw_bytes = raw_bytes,
          .stored_bytes = stored_bytes,
          .num_chunks = num_chunks,
          .min_shape = min_shape,
          .max_shape = max_shape};
}

TensorMeta SegmentView(const TensorMeta& meta, uint32_t writer) {
  TensorMeta view = meta;
  view.segments.clear();
  const Segment* g = meta.FindSegment(writer);
  const Segment none;
  const Segment& s = g != nullptr ? *g : none;
  view.index_key = s.index_key;
  view.length = s.length;
  view.raw_bytes = s.raw_bytes;
  view.stored_bytes = s.stored_bytes;
  view.num_chunks = s.num_chunks;
  view.min_shape = s.min_shape;
  view.max_shape = s.max_shape;
  return view;
}

Result<DatasetMeta> MergeWriter(DatasetMeta latest, const DatasetMeta& mine,
                                uint32_t writer) {
  latest.next_tensor_id = std::max(latest.next_tensor_id, mine.next_tensor_id);
  for (const TensorMeta& m : mine.tensors) {
    auto it = std::find_if(latest.tensors.begin(), latest.tensors.end(),
                           [&](const TensorMeta& t) { return t.id == m.id; });
    if (it == latest.tensors.end()) {
      TensorMeta added = m;
      added.index_key.clear();
      added.segments.clear();
      latest.tensors.push_back(std::move(added));
      it = latest.tensors.end() - 1;
    }
    TensorMeta& t = *it;
    TensorSpec& have = t.spec;
    const TensorSpec& want = m.spec;
    if (t.spec.name != want.name || have.htype != want.htype ||
        *have.dtype != *want.dtype ||
        have.sample_compression != want.sample_compression ||
        t.hidden != m.hidden || t.parent != m.parent ||
        (have.rank >= 0 && want.rank >= 0 && have.rank != want.rank)) {
      return FailedPrecondition(
          "writer " + std::to_string(writer) + "'s tensor '" + want.name +
          "' (id " + std::to_string(m.id) +
          ") does not match the dataset's tensor '" + t.spec.name +
          "': writers of one dataset must make the same tensors");
    }
    if (have.rank < 0) have.rank = want.rank;
    std::erase_if(t.segments,
                  [&](const Segment& g) { return g.writer == writer; });
    if (m.length > 0 || !m.index_key.empty()) {
      Segment g = m.AsSegment(writer);
      auto at =
          std::find_if(t.segments.begin(), t.segments.end(),
                       [&](const Segment& s) { return s.writer > writer; });
      t.segments.insert(at, std::move(g));
    }
    t.SumSegments();
  }
  latest.writers.erase(writer);
  auto state = mine.writers.find(writer);
  if (state != mine.writers.end() && !state->second.empty()) {
    latest.writers[writer] = state->second;
  }
  return latest;
}

}  // namespace shoal::internal
