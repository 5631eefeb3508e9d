// VerifyDataset: checks a dataset's committed state end to end, without
// trusting any of it: HEAD, metadata, every chunk index, every chunk (header
// checksum, block checksums, decompression, sample sizes and shapes), the
// hidden shape tensors against the chunk headers, the statistics, and the
// objects no commit references (orphans, e.g. left by a killed writer).
//
// Unlike Dataset::Open, which stops at the first problem, verify collects
// every problem it can find and names the object of each.
//
// Thread-safety: VerifyDataset may run concurrently with readers; a writer
// committing meanwhile may make it report objects of the new commit as
// orphans. A repair takes the dataset's write lock (format/lock.h), so it
// fails while a writer that holds it runs, and never deletes what that
// writer has not yet committed.
#ifndef SHOAL_FORMAT_VERIFY_H_
#define SHOAL_FORMAT_VERIFY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace shoal {

struct VerifyOptions {
  /// Also decompress every sample of tensors with sample compression.
  bool decode_samples = false;
  /// Delete orphan objects and temporary files (what an interrupted write
  /// leaves behind), holding the dataset's write lock.
  bool repair = false;
  /// Called after each chunk with (chunks checked, chunks in total).
  std::function<void(uint64_t, uint64_t)> progress;
};

struct VerifyProblem {
  enum class Kind {
    kCorrupt,       // an object fails a check (checksum, bounds, decode)
    kMissing,       // a referenced object does not exist
    kInconsistent,  // objects disagree (lengths, shapes, statistics)
    kOrphan,        // an object that no commit references
    // The store failed to read or list (an I/O or server error): says
    // nothing about the data, which may be sound; verify again.
    kUnreadable,
  };
  Kind kind;
  std::string object;  // the store key, e.g. "chunks/0/1f2e3d4c5b6a7988"
  std::string message;

  /// One line: "corrupt: chunks/0/1f2e…: tensor 'images': block 3 checksum
  /// mismatch".
  std::string ToString() const;
};

struct VerifyReport {
  uint64_t commit = 0;
  uint64_t tensors = 0;
  uint64_t chunks = 0;   // chunk objects checked
  uint64_t bytes = 0;    // bytes of chunk objects read
  uint64_t samples = 0;  // samples whose layout was checked
  uint64_t orphans_removed = 0;
  /// Set when a repair took over the stale write lock of a writer that died
  /// (whose it was and why), for the user to see.
  std::string lock_message;
  /// Set when a repair mended a damaged commit object (what it did).
  std::string commit_repair;
  std::vector<VerifyProblem> problems;
  /// Objects under meta/, index/ or chunks/ whose names do not follow the
  /// dataset's naming (FORMAT.md, "Objects in the store"): not the
  /// dataset's, so never deleted, only listed. Not problems.
  std::vector<std::string> foreign;
  bool ok() const { return problems.empty(); }
};

/// Verifies the dataset at `url`. A failure to open the store is an error
/// Status; everything wrong with the dataset itself is a problem in the
/// report.
Result<VerifyReport> VerifyDataset(std::string_view url,
                                   const VerifyOptions& options = {});

}  // namespace shoal

#endif  // SHOAL_FORMAT_VERIFY_H_
