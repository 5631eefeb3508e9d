// RowBlocks: how the array sources (IDX, NPY) cut the samples of a file
// into records, the units of the write graph's work, and how the records
// are named ("rows 0..65535 of train-images-idx3-ubyte.gz").
//
// A record holds `rows_per_record` rows, the last one fewer, and at most
// kMaxRecordBytes of input unless one row is larger: the ingestor keeps
// whole records in memory (a gzip record is decompressed into a buffer of
// its own), so a file of large samples must not make records of gigabytes.
//
// Thread-safety: a plain value.
#ifndef SHOAL_LOADER_INTERNAL_ROW_BLOCKS_H_
#define SHOAL_LOADER_INTERNAL_ROW_BLOCKS_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

namespace shoal::internal {

inline constexpr uint64_t kMaxRecordBytes = uint64_t{64} << 20;

struct RowBlocks {
  uint64_t samples = 0;
  uint64_t rows_per_record = 1;
  uint64_t records = 0;

  /// Records of `samples` rows of `row_bytes` input bytes each, at most
  /// `rows_per_record` (> 0) rows a record.
  static RowBlocks Make(uint64_t samples, uint64_t row_bytes,
                        uint64_t rows_per_record) {
    RowBlocks blocks;
    blocks.samples = samples;
    blocks.rows_per_record = rows_per_record;
    if (row_bytes > 0) {
      blocks.rows_per_record = std::min(
          rows_per_record, std::max<uint64_t>(1, kMaxRecordBytes / row_bytes));
    }
    blocks.records = samples / blocks.rows_per_record +
                     (samples % blocks.rows_per_record != 0 ? 1 : 0);
    return blocks;
  }

  /// The first row of record `index` (< records).
  uint64_t first(uint64_t index) const { return index * rows_per_record; }
  /// The rows of the record whose first row is `first`.
  uint64_t count_from(uint64_t first) const {
    return std::min(rows_per_record, samples - first);
  }
  /// "rows A..B of FILE", B included.
  std::string Name(uint64_t index, std::string_view file) const {
    const uint64_t a = first(index);
    return "rows " + std::to_string(a) + ".." +
           std::to_string(a + count_from(a) - 1) + " of " + std::string(file);
  }
};

}  // namespace shoal::internal

#endif  // SHOAL_LOADER_INTERNAL_ROW_BLOCKS_H_
