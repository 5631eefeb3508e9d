// MeasureShuffle (declared in loader/sampler.h): how well an order is
// shuffled, for `shoal bench` and the sampler's tests. Apart from the
// sampler because it measures plans rather than making them.
#include <algorithm>
#include <utility>
#include <vector>

#include "loader/sampler.h"

namespace shoal {

Result<ShuffleQuality> MeasureShuffle(std::span<const uint64_t> samples,
                                      std::span<const uint64_t> batch_ends,
                                      std::span<const uint32_t> labels) {
  const uint64_t n = samples.size();
  if ((batch_ends.empty() ? 0 : batch_ends.back()) != n ||
      !std::is_sorted(batch_ends.begin(), batch_ends.end())) {
    return InvalidArgument(
        "shuffle quality: batch ends do not cut the samples into batches");
  }
  // Sorting (sample, position) pairs gives each sample's rank among the
  // order's samples, so shards and drop_last orders measure like full ones.
  std::vector<std::pair<uint64_t, uint64_t>> by_sample(n);
  for (uint64_t p = 0; p < n; ++p) by_sample[p] = {samples[p], p};
  std::sort(by_sample.begin(), by_sample.end());
  long double displacement = 0, squared = 0;
  for (uint64_t rank = 0; rank < n; ++rank) {
    const auto [sample, position] = by_sample[rank];
    if (rank > 0 && by_sample[rank - 1].first == sample) {
      return InvalidArgument("shuffle quality: sample " +
                             std::to_string(sample) + " occurs twice");
    }
    if (!labels.empty() && sample >= labels.size()) {
      return InvalidArgument("shuffle quality: sample " +
                             std::to_string(sample) + " has no label");
    }
    const long double d =
        static_cast<long double>(position) - static_cast<long double>(rank);
    displacement += d < 0 ? -d : d;
    squared += d * d;
  }
  ShuffleQuality quality;
  if (n > 0) quality.mean_displacement = displacement / n / n;
  if (n > 1) {
    const long double nn = n;
    quality.spearman = 1 - 6 * squared / (nn * (nn * nn - 1));
  }
  if (!labels.empty()) {
    std::vector<uint32_t> classes;
    uint64_t batches = 0, total = 0, begin = 0;
    for (uint64_t end : batch_ends) {
      if (end == begin) continue;
      classes.clear();
      for (uint64_t p = begin; p < end; ++p) {
        classes.push_back(labels[samples[p]]);
      }
      std::sort(classes.begin(), classes.end());
      total += std::unique(classes.begin(), classes.end()) - classes.begin();
      ++batches;
      begin = end;
    }
    if (batches > 0) {
      quality.classes_per_batch = static_cast<double>(total) / batches;
    }
  }
  return quality;
}

}  // namespace shoal
