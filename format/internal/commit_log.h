// Finding and publishing commits (format/FORMAT.md, "Commits"). A commit is
// the object commits/<n>, created once with Store::WriteIfAbsent(): of
// writers racing for one commit number exactly one wins, so no lock is
// needed for commits to stay whole and ordered. HEAD is a hint to the
// newest commit, written after it; readers walk forward from it.
//
// Thread-safety: plain functions over a thread-safe Store.
#ifndef SHOAL_FORMAT_INTERNAL_COMMIT_LOG_H_
#define SHOAL_FORMAT_INTERNAL_COMMIT_LOG_H_

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
/// tries again from there (a bounded number of times). `where` names the
/// dataset in errors.
Result<LatestCommit> ReadLatest(const Store& store, const std::string& where,
                                uint64_t known = 0);

/// True when a commit newer than `commit` exists: an object a reader of
/// `commit` missed may have been deleted by it, and reading again helps.
Result<bool> Superseded(const Store& store, uint64_t commit);

/// Publishes `head`, whose metadata and everything it names are durable:
/// creates commits/<head.commit> (AlreadyExists when another writer took
/// that number first; nothing is changed then) and points HEAD at it. A
/// failure to update HEAD is not an error: the commit is in, and readers
/// find it from an older HEAD.
Status PublishCommit(Store& store, const Head& head);

}  // namespace shoal::internal

#endif  // SHOAL_FORMAT_INTERNAL_COMMIT_LOG_H_
