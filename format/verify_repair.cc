// VerifyDataset (format/verify.h): the checks (format/internal/verifier.h)
// and, for a repair, what must come before them: the write lock, and the
// mending of a damaged commit object, without which nothing can be checked.
// And how a problem prints.
#include <memory>
#include <string>

#include "format/internal/commit_log.h"
#include "format/internal/verifier.h"
#include "format/lock.h"
#include "format/store.h"
#include "format/verify.h"

namespace shoal {

std::string VerifyProblem::ToString() const {
  // In the order of Kind.
  static constexpr const char* kNames[] = {"corrupt", "missing", "inconsistent",
                                           "orphan", "unreadable"};
  return std::string(kNames[static_cast<int>(kind)]) + ": " + object + ": " +
         message;
}

Result<VerifyReport> VerifyDataset(std::string_view url,
                                   const VerifyOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(auto store, OpenStore(url, {.create = false}));
  // Repair deletes what no commit references, which includes what a running
  // writer has written and not yet committed: it takes the write lock.
  std::unique_ptr<DatasetLock> lock;
  std::string lock_message;
  std::string commit_repair;
  if (options.repair) {
    SHOAL_ASSIGN_OR_RETURN(
        lock, DatasetLock::Acquire(store, {.command = "shoal verify --repair"},
                                   &lock_message));
    // Writers of a job of several hold locks of their own.
    SHOAL_ASSIGN_OR_RETURN(auto locks,
                           store->List(std::string(kDatasetLockKey) + ".w"));
    for (const std::string& key : locks) {
      auto holder = ReadDatasetLock(*store, key);
      if (holder.ok() && !*holder) continue;  // released meanwhile
      return FailedPrecondition(
          "dataset " + store->url() + " is being written by " +
          (holder.ok() ? (*holder)->ToString()
                       : "a writer whose lock cannot be read") +
          " (" + key + "); repair once it is done");
    }
    // Nothing can be checked past a commit object that does not decode.
    SHOAL_ASSIGN_OR_RETURN(commit_repair,
                           internal::RepairDamagedCommit(*store));
  }
  VerifyReport report = internal::RunVerifier(std::move(store), options);
  report.lock_message = std::move(lock_message);
  report.commit_repair = std::move(commit_repair);
  return report;
}

}  // namespace shoal
