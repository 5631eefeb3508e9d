// Copying a dataset between stores (mem://, file://, s3://, in any
// direction), object by object, without decoding a sample: the format's
// part. CopyDataset() (loader/copy.h) runs it on the pipeline core's
// parallel, bounded I/O stages; here is what is copied, how each object is
// checked and how the copy is published.
//
// What is copied is the source's newest commit: its metadata, every
// tensor's chunk indexes and every chunk they reference (orphans and the
// write locks stay behind). Each object is checked as it passes — the
// envelope checksums of metadata and indexes; a chunk's header, every block
// against its checksum, and the header against the checksum the index
// recorded for it — so a damaged source fails the copy naming the object.
// The commit object and HEAD are written last (FinishCopy): the copy opens
// only once it is whole. A copy that stopped (killed, failed) is resumed by
// running it again: objects already at the destination with the right size
// are kept (stores write objects whole, and chunk names are unique; kept
// chunks are not read again), the rest is copied.
//
// Thread-safety: a CopyPlan is immutable once made; its methods may be
// called from any number of threads.
#ifndef SHOAL_FORMAT_COPY_H_
#define SHOAL_FORMAT_COPY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"
#include "format/store.h"

namespace shoal {

struct CopyReport {
  uint64_t commit = 0;
  uint64_t objects = 0;  // the commit object, metadata, indexes and chunks
  uint64_t copied = 0;   // written now
  uint64_t kept = 0;     // already at the destination (a resumed copy)
  uint64_t bytes = 0;    // bytes written now
};

/// The objects of one commit to copy, in copy order.
class CopyPlan {
 public:
  /// The plan for copying the newest commit of `src` to `dst`.
  /// AlreadyExists when `dst` holds a dataset other than this very commit
  /// of it (a finished copy, which is then kept whole).
  static Result<CopyPlan> Make(const Store& src, const Store& dst);

  uint64_t commit() const;
  size_t size() const;
  const std::string& key(size_t i) const;
  /// The object's size when the plan knows it (chunks), else 0.
  uint64_t known_bytes(size_t i) const;
  /// Corruption, naming the object, unless `bytes` are object `i` whole and
  /// intact (see the file comment).
  Status Check(size_t i, const Buffer& bytes) const;
  /// After every object is at `dst`: makes them durable, then publishes the
  /// commit (the commit object, then HEAD). Counts what it wrote in
  /// `report`.
  Status Finish(Store& dst, CopyReport* report) const;

 private:
  struct State;
  std::shared_ptr<const State> state_;
};

}  // namespace shoal

#endif  // SHOAL_FORMAT_COPY_H_
