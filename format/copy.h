// Copying a dataset between stores (mem://, file://, s3://, in any
// direction), object by object, without decoding a sample.
//
//   SHOAL_ASSIGN_OR_RETURN(CopyReport r, CopyDataset("mem://scratch",
//   "s3://data/run7"));
//
// What is copied is the source's last commit: its metadata, every tensor's
// chunk index and every chunk they reference (orphans and the write lock
// stay behind). Each object is checked as it passes — the envelope
// checksums of metadata and indexes; a chunk's header, every block against
// its checksum, and the header against the checksum the index recorded for
// it — so a damaged source fails the copy naming the object. HEAD is written
// last: the copy opens only once it is whole. A copy that stopped (killed,
// failed) is resumed by running it again: objects already at the
// destination with the right size are kept (stores write objects whole, and
// chunk names are unique; kept chunks are not read again), the rest is
// copied.
//
// Thread-safety: CopyDataset may run in several threads at once on
// different destinations; the source may be read by others meanwhile (a
// writer committing to it during the copy is not supported: the copy would
// name objects the writer deletes).
#ifndef SHOAL_FORMAT_COPY_H_
#define SHOAL_FORMAT_COPY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "base/result.h"
#include "format/store.h"

namespace shoal {

struct CopyProgress {
  uint64_t objects_done = 0;
  uint64_t objects_total = 0;
  uint64_t bytes_copied = 0;
};

struct CopyOptions {
  /// Objects read and written at once (each holds one object in memory).
  int threads = 8;
  /// Called after each object, from the copying threads (one at a time).
  std::function<void(const CopyProgress&)> progress;
};

struct CopyReport {
  uint64_t commit = 0;
  uint64_t objects = 0;  // HEAD, metadata, indexes and chunks
  uint64_t copied = 0;   // written now
  uint64_t kept = 0;     // already at the destination (a resumed copy)
  uint64_t bytes = 0;    // bytes written now
};

/// Copies the dataset at `src` to `dst`. AlreadyExists when `dst` holds a
/// dataset (a HEAD) other than this very commit of it.
Result<CopyReport> CopyDataset(std::string_view src, std::string_view dst,
                               const CopyOptions& options = {});
/// The same between stores already open.
Result<CopyReport> CopyDataset(const Store& src, Store& dst,
                               const CopyOptions& options = {});

}  // namespace shoal

#endif  // SHOAL_FORMAT_COPY_H_
