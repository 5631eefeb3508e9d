// POSIX file helpers of the file store: a descriptor that closes itself,
// a temporary file removed unless kept, and open/write/pread/fsync/mkdir -p
// that retry EINTR and turn errno into a Status naming the path.
//
// Thread-safety: free functions; a UniqueFd or TempFileGuard belongs to one
// thread at a time.
#ifndef SHOAL_FORMAT_INTERNAL_POSIX_H_
#define SHOAL_FORMAT_INTERNAL_POSIX_H_

#include <sys/types.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "base/status.h"

namespace shoal::internal {

// Closes its descriptor on every path out of a function.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }

  /// Closes now and reports failure: some filesystems (NFS) report deferred
  /// write errors only at close. Never retried on EINTR: on Linux the
  /// descriptor is gone either way.
  Status Close(std::string_view path) {
    if (::close(std::exchange(fd_, -1)) != 0) {
      return ErrnoStatus("close " + std::string(path), errno);
    }
    return Status::OK();
  }

 private:
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
};

// Removes a temporary file unless the write that owns it succeeded.
class TempFileGuard {
 public:
  explicit TempFileGuard(std::string path) : path_(std::move(path)) {}
  TempFileGuard(const TempFileGuard&) = delete;
  TempFileGuard& operator=(const TempFileGuard&) = delete;
  ~TempFileGuard() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  void Dismiss() { path_.clear(); }

 private:
  std::string path_;
};

/// open(2) with O_CLOEXEC that retries EINTR and leaves errno to the caller.
int OpenRetrying(const std::string& path, int flags, mode_t mode = 0);
/// Writes all of `data` (in pieces of at most 1 GiB).
Status WriteAll(int fd, ByteSpan data, const std::string& path);
/// Reads until `out` is full or the file ends; returns the bytes read.
Result<size_t> PreadFull(int fd, MutableByteSpan out, uint64_t offset,
                         const std::string& path);
Status FsyncFd(int fd, const std::string& path);
/// The path up to its last '/' ("/" for "/x", "" without a '/').
std::string_view Dirname(std::string_view path);
/// The path after its last '/'.
std::string_view Basename(std::string_view path);
/// Creates `base`/`relative` and any missing directory between them
/// (mkdir -p). Appends to `changed` (unless null) the parent of every
/// directory it created, whose entries must be fsynced to make the new
/// directories durable.
Status MakeDirs(const std::string& base, std::string_view relative,
                std::vector<std::string>* changed);

}  // namespace shoal::internal

#endif  // SHOAL_FORMAT_INTERNAL_POSIX_H_
