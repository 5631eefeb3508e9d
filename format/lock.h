// DatasetLock: one writer at a time per dataset.
//
// A writer holds the object "LOCK" in the dataset's store while it writes.
// The object names the writer (host, pid, start time, command), so a second
// writer is refused with an error that says who holds the dataset and how to
// proceed, instead of both committing over each other. Readers never take or
// look at the lock: commits are atomic for them either way (format/FORMAT.md,
// "Write lock").
//
// The lock is cooperative: it binds writers that call Acquire(), and nothing
// else. It is created with Store::WriteIfAbsent(), so of any number of
// racing writers (threads, processes, machines sharing a directory) exactly
// one gets it. A lock left by a writer that died is taken over only when
// that is certain: the holder ran on this host (same host name and pid
// namespace) and its process is gone (no such pid, the pid now belongs to a
// process that started later, or the machine restarted since). Taking over
// is race-free too: each stale lock can be taken over by one writer only.
// Anything else (a live pid, another host, an unreadable LOCK object) stays
// locked until its holder releases it or the user breaks it
// (LockOptions::break_lock, the tools' --break-lock).
//
// Thread-safety: Acquire() may be called from any thread. A DatasetLock
// belongs to one owner; its Release() and destructor must not race.
#ifndef SHOAL_FORMAT_LOCK_H_
#define SHOAL_FORMAT_LOCK_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "format/store.h"

namespace shoal {

/// The key of the lock object, at the top of the dataset's store.
inline constexpr std::string_view kDatasetLockKey = "LOCK";

/// Who holds a dataset's write lock, as its LOCK object says.
struct LockHolder {
  /// gethostname() of the holder's machine.
  std::string host;
  int64_t pid = 0;
  /// When the lock was taken, ISO-8601 UTC ("2024-05-01T12:34:56Z").
  std::string started;
  /// What the holder is doing, as it told Acquire() ("shoal ingest ...").
  std::string command;

  /// "pid 123 on host h, started 2024-05-01T12:34:56Z, running 'shoal ...'":
  /// one line, control bytes escaped and long fields cut, since a LOCK
  /// object may hold anything.
  std::string ToString() const;
};

struct LockOptions {
  /// Remove whatever lock the dataset has and take it. Only for a lock the
  /// user knows to be dead (its writer ran on another machine, or the LOCK
  /// object is damaged): breaking a live writer's lock lets two writers
  /// commit over each other.
  bool break_lock = false;
  /// What this writer is doing, shown to anyone refused the lock. Stored
  /// up to 4096 bytes.
  std::string command;
  /// The lock object: "LOCK", or one writer's of several
  /// (WriterLockKey()).
  std::string key = std::string(kDatasetLockKey);
};

/// The lock of writer `rank` of `world` writers: "LOCK" for a lone writer,
/// "LOCK.w<rank>" for each of several, which write apart (their own
/// segments, format/FORMAT.md "Several writers") and so lock apart.
std::string WriterLockKey(uint32_t rank, uint32_t world);

class DatasetLock {
 public:
  /// Takes the write lock of the dataset in `store` (created at the top of
  /// the store). FailedPrecondition, naming the holder and saying how to
  /// proceed, when someone else holds it, including this very process (a
  /// dataset has one writer at a time, also within a process). When a stale
  /// or broken lock was taken over, `message` (unless null) says whose and
  /// why, for the user to see; otherwise it is cleared.
  static Result<std::unique_ptr<DatasetLock>> Acquire(
      std::shared_ptr<Store> store, const LockOptions& options = {},
      std::string* message = nullptr);

  DatasetLock(const DatasetLock&) = delete;
  DatasetLock& operator=(const DatasetLock&) = delete;
  /// Release(), its error ignored (see there).
  ~DatasetLock();

  /// This writer, as its LOCK object names it.
  const LockHolder& holder() const { return holder_; }

  /// Deletes the LOCK object, if it is still this writer's. When someone
  /// broke the lock meanwhile, the object is left alone and the result is
  /// FailedPrecondition: the dataset may have had two writers. Idempotent
  /// once it returned OK or FailedPrecondition; after another error (the
  /// store failed) it may be called again.
  Status Release();

 private:
  DatasetLock(std::shared_ptr<Store> store, std::string key, LockHolder holder,
              std::string object);

  std::shared_ptr<Store> store_;
  std::string key_;
  LockHolder holder_;
  // The LOCK object exactly as written: Release() deletes only this.
  std::string object_;
  bool released_ = false;
};

/// The holder of the dataset's write lock, or nullopt when it is not locked.
/// Corruption when a LOCK object is there but is not a valid lock. For
/// tools that report the lock, or refuse work (verify --repair) under it.
Result<std::optional<LockHolder>> ReadDatasetLock(
    const Store& store, std::string_view key = kDatasetLockKey);

}  // namespace shoal

#endif  // SHOAL_FORMAT_LOCK_H_
