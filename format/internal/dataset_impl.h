// Dataset::Impl, shared by dataset.cc (creating, opening, the schema) and
// dataset_write.cc (rows, columns and the commit protocol). Not installed.
#ifndef SHOAL_FORMAT_INTERNAL_DATASET_IMPL_H_
#define SHOAL_FORMAT_INTERNAL_DATASET_IMPL_H_

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "format/dataset.h"
#include "format/internal/commit_log.h"
#include "format/internal/metadata.h"
#include "format/internal/tensor_impl.h"
#include "format/lock.h"

namespace shoal {

class Dataset::Impl {
 public:
  internal::DatasetContext context;
  std::atomic<uint64_t> commit{0};
  uint32_t next_tensor_id = 0;
  // The writer state of the opened commit, and the last one prepared.
  std::string opened_writer;
  std::string writer;

  // The writer (rank) this object writes as: its tensors hold that
  // writer's segment (all segments, for a reader).
  uint32_t segment = 0;
  std::vector<uint32_t> writers;  // of the opened commit

  // Commit-side state: touched only by whoever commits (Flush/Close, or the
  // commit thread of a deferred writer), never by appends.
  std::string meta_key;
  // The whole metadata of the last commit seen (meta_key's): the basis the
  // next commit merges this writer's segment into, unless another writer
  // committed meanwhile.
  internal::DatasetMeta basis;
  // Replacing a dataset (Create with overwrite): the first commit starts
  // from nothing instead of merging into the old dataset.
  bool replacing = false;
  struct Committed {
    std::string index_key;
    uint64_t stored_bytes = 0;
    uint64_t num_chunks = 0;
  };
  std::map<uint32_t, Committed> committed;  // by tensor id
  // Objects of a dataset this one replaces (Create with overwrite), deleted
  // after the first commit.
  std::vector<std::string> replaced;
  // And the temporary files that interrupted writes into it left.
  std::vector<std::string> replaced_leftovers;
  // Sizes of chunks a deferred writer reported written, by chunk id.
  // Sizes and header checksums, kept in refs of the chunk index.
  std::unordered_map<uint64_t, internal::ChunkRef> written;

  bool schema_dirty = false;
  // Commits that failed (commit thread; atomic: the writer thread prepares
  // meanwhile). The first point prepared after a failure writes every
  // tensor's index; one prepared before it is refused (see Apply).
  std::atomic<uint64_t> failed_commits{0};
  // failed_commits as the last prepared point saw it (writer thread).
  uint64_t failures_prepared = 0;
  bool closed = false;
  std::vector<std::unique_ptr<Tensor>> tensors;  // creation order, hidden too
  std::map<std::string, Tensor*, std::less<>> by_name;

  std::string Where() const { return "dataset '" + context.url + "'"; }
  Status CheckWritable() const {
    if (closed) return FailedPrecondition(Where() + ": closed");
    if (context.read_only)
      return FailedPrecondition(Where() + ": open read-only");
    return Status::OK();
  }
  Result<Tensor*> AddTensor(internal::TensorMeta meta,
                            internal::TensorIndex index);
  Status LinkHidden();
  Result<Tensor*> Find(std::string_view name) const;
  // The tensor `name` as the next target of a row or columnar batch that
  // already has `targets`: visible, and not given twice (`what` names the
  // row or batch in the message).
  Result<Tensor*> FindTarget(std::string_view name,
                             const std::vector<Tensor*>& targets,
                             std::string_view what) const;
  /// Flush(): seals the open chunks and commits.
  Status Commit();
  /// Null when nothing changed since the last commit was prepared. Open
  /// chunks are sealed, or with `keep_open` copied and left open.
  Result<CommitPointPtr> PrepareCommit(bool keep_open,
                                       std::string writer_state);
  Status Apply(CommitPoint& point);
  Status ApplyOnce(CommitPoint& point);
  /// Makes this the commit `latest`: every tensor with the segments this
  /// object sees (its writer's, or with `all` every one in rank order).
  /// NotFound when an index is gone (a newer commit may have replaced it).
  Status Load(const internal::LatestCommit& latest, bool all);
  /// Completes refs of chunks cut in deferred mode from `written`.
  Status FillChunkSizes(internal::TensorIndex& index, uint32_t tensor) const;
  internal::DatasetMeta Snapshot() const;
};

}  // namespace shoal

#endif  // SHOAL_FORMAT_INTERNAL_DATASET_IMPL_H_
