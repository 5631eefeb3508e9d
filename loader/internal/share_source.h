// ShareSource: one writer's share of a source, for ingestions run by several
// writers (IngestOptions::rank / world_size). Writer `rank` of `world` takes
// the records [N * rank / world, N * (rank + 1) / world) of the N the source
// has, renumbered from 0, so that the writers' segments laid end to end in
// rank order hold the source in its own order. Not installed.
//
// Thread-safety: as the wrapped source (Read and Prepare are const and
// forwarded as they are).
#ifndef SHOAL_LOADER_INTERNAL_SHARE_SOURCE_H_
#define SHOAL_LOADER_INTERNAL_SHARE_SOURCE_H_

#include <cstdint>
#include <string>

#include "loader/source.h"

namespace shoal::ingest_internal {

class ShareSource : public Source {
 public:
  ShareSource(Source& inner, uint32_t rank, uint32_t world)
      : inner_(inner), rank_(rank), world_(world) {}

  std::string name() const override {
    return inner_.name() + " (writer " + std::to_string(rank_) + " of " +
           std::to_string(world_) + ")";
  }

  Result<SourceScan> Scan(bool skip_bad) override {
    SHOAL_ASSIGN_OR_RETURN(SourceScan scan, inner_.Scan(skip_bad));
    if (!scan.num_records) {
      return InvalidArgument(inner_.name() +
                             " does not know its length before it is read, "
                             "so it cannot be shared among writers");
    }
    const unsigned __int128 n = *scan.num_records;
    first_ = static_cast<uint64_t>(n * rank_ / world_);
    end_ = static_cast<uint64_t>(n * (rank_ + 1) / world_);
    // The share of the input, for progress: in proportion to the records.
    if (n > 0) {
      scan.input_bytes = static_cast<uint64_t>(
          static_cast<unsigned __int128>(scan.input_bytes) * (end_ - first_) /
          n);
    }
    scan.num_records = end_ - first_;
    return scan;
  }

  Result<bool> Plan(uint64_t index, Record& record) override {
    if (index >= end_ - first_) return false;
    record.index = first_ + index;
    SHOAL_ASSIGN_OR_RETURN(bool more, inner_.Plan(first_ + index, record));
    record.index = index;
    return more;
  }

  Status Read(const Record& record, MutableByteSpan out) const override {
    return inner_.Read(record, out);
  }
  Status Prepare(Record& record, const Buffer& input) const override {
    return inner_.Prepare(record, input);
  }

 private:
  Source& inner_;
  const uint32_t rank_, world_;
  uint64_t first_ = 0, end_ = 0;
};

}  // namespace shoal::ingest_internal

#endif  // SHOAL_LOADER_INTERNAL_SHARE_SOURCE_H_
