// CopyDataset: copies a dataset between any two stores (mem://, file://,
// s3://, gs://, in any direction) through the pipeline core's stages, the
// same as the write graph's:
//
//   plan ──► read ──► check ──► write ──► count
//   (feeder) (I/O,    (CPU,     (I/O,     (the calling thread:
//             par.)    par.)     par.)     progress, the report)
//
// What is copied and how each object is checked: format/copy.h. Objects in
// flight are bounded by a byte budget (one larger object still goes
// through, alone); the stores retry what is worth retrying (s3://). A copy
// that stopped is resumed by running it again; the copy opens only once it
// is whole.
//
//   SHOAL_ASSIGN_OR_RETURN(CopyReport r,
//                          CopyDataset("mem://scratch", "s3://data/run7"));
//
// Thread-safety: CopyDataset may run in several threads at once on
// different destinations; the source may be read by others meanwhile (a
// writer committing to it during the copy may delete objects the copy
// names: it then fails, naming the object, and is run again).
#ifndef SHOAL_LOADER_COPY_H_
#define SHOAL_LOADER_COPY_H_

#include <cstdint>
#include <functional>
#include <string_view>

#include "base/result.h"
#include "format/copy.h"

namespace shoal {

struct CopyProgress {
  uint64_t objects_done = 0;
  uint64_t objects_total = 0;
  uint64_t bytes_copied = 0;
};

struct CopyOptions {
  /// Objects read, and written, at once (each I/O stage's workers).
  int threads = 8;
  /// Bytes of objects in flight at most.
  uint64_t memory_budget = 256ull << 20;
  /// Called after each object, on the calling thread.
  std::function<void(const CopyProgress&)> progress;
};

/// Copies the newest commit of the dataset at `src` to `dst`. AlreadyExists
/// when `dst` holds a dataset other than this very commit of it.
Result<CopyReport> CopyDataset(std::string_view src, std::string_view dst,
                               const CopyOptions& options = {});
/// The same between stores already open.
Result<CopyReport> CopyDataset(const Store& src, Store& dst,
                               const CopyOptions& options = {});

}  // namespace shoal

#endif  // SHOAL_LOADER_COPY_H_
