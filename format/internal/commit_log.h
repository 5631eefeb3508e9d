// Finding and publishing commits (format/FORMAT.md, "Commits"). A commit is
// the object commits/<n>, created once with Store::WriteIfAbsent(): of
// writers racing for one commit number exactly one wins, so no lock is
// needed for commits to stay whole and ordered. HEAD is a hint to the
// newest commit, written after it; readers walk forward from it.
//
// Thread-safety: plain functions over a thread-safe Store.
#ifndef SHOAL_FORMAT_INTERNAL_COMMIT_LOG_H_
#define SHOAL_FORMAT_INTERNAL_COMMIT_LOG_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "format/internal/metadata.h"
#include "format/store.h"

namespace shoal::internal {

/// The newest commit: from HEAD, or commit `known` when that is newer,
/// forward through commits/<n+1>... while they exist. NotFound when the
/// store holds neither HEAD nor commit 0 (no dataset).
Result<Head> LatestHead(const Store& store, uint64_t known = 0);

struct LatestCommit {
  Head head;
  DatasetMeta meta;
};
/// The newest commit and its metadata, checked to be that commit's. When
/// the metadata is gone because a newer commit replaced it meanwhile, it
/// tries again from there (as SupersededRetry allows). `where` names the
/// dataset in errors.
Result<LatestCommit> ReadLatest(const Store& store, const std::string& where,
                                uint64_t known = 0);

/// True when a commit newer than `commit` exists: an object a reader of
/// `commit` missed may have been deleted by it, and reading again helps.
Result<bool> Superseded(const Store& store, uint64_t commit);

/// The one policy for a reader that lost a race with writers (what the
/// commit it read named was deleted by a newer one): it reads again from
/// the newer commit for up to 10 s. Writers that commit faster than a
/// reader loads (mem://: microseconds a commit) can win many times in a
/// row (16 in a row in a test of 2 writers and 40 commits), so after the
/// 8th loss it sleeps 1-50 ms before each attempt, leaving them the cores.
/// One object per read; not thread-safe.
class SupersededRetry {
 public:
  SupersededRetry();
  /// Whether to read again (after sleeping, when it has lost often);
  /// false once the time is up.
  bool Again();

 private:
  std::chrono::steady_clock::time_point give_up_;
  int losses_ = 0;
};

/// Publishes `head`, whose metadata and everything it names are durable:
/// creates commits/<head.commit> (AlreadyExists when another writer took
/// that number first; nothing is changed then) and points HEAD at it. A
/// failure to update HEAD is not an error: the commit is in, and readers
/// find it from an older HEAD. Any other error leaves it unknown whether
/// the commit went in (a write that timed out may have): the caller must
/// keep what it names, which is an orphan if it did not.
Status PublishCommit(Store& store, const Head& head);

/// For verify --repair, under the write lock: finds the first commit
/// object, walking from HEAD as LatestHead does, that does not decode (torn
/// by a store that broke WriteIfAbsent's atomicity, or rotted) and mends
/// it. It is rewritten from the metadata object of its commit that it
/// names: the one whose commit object the damaged bytes begin (torn) or
/// differ from in a few bytes (rot). With no metadata of that commit at all
/// nothing was committed under it, and it is removed. Returns what was
/// done, empty when every commit object decodes. FailedPrecondition when
/// the metadata cannot be told (several candidates, or a newer commit
/// after one to remove).
Result<std::string> RepairDamagedCommit(Store& store);

}  // namespace shoal::internal

#endif  // SHOAL_FORMAT_INTERNAL_COMMIT_LOG_H_
