#include "format/internal/posix.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

namespace shoal::internal {
namespace {

// Bounds one read()/write() call; Linux moves at most ~2 GiB per call anyway.
constexpr size_t kMaxIoChunk = size_t{1} << 30;

}  // namespace

// open(2) that retries EINTR and leaves errno to the caller.
int OpenRetrying(const std::string& path, int flags, mode_t mode) {
  while (true) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd >= 0 || errno != EINTR) return fd;
  }
}

Status WriteAll(int fd, ByteSpan data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n =
        ::write(fd, data.data(), std::min(data.size(), kMaxIoChunk));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write " + path, errno);
    }
    // A regular file never accepts zero bytes; guard against spinning.
    if (n == 0) return IOError("write " + path + ": no progress");
    data = data.subspan(static_cast<size_t>(n));
  }
  return Status::OK();
}

// Reads until `out` is full or the file ends; returns the bytes read.
Result<size_t> PreadFull(int fd, MutableByteSpan out, uint64_t offset,
                         const std::string& path) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(fd, out.data() + done, std::min(out.size() - done, kMaxIoChunk),
                static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read " + path, errno);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Status FsyncFd(int fd, const std::string& path) {
  while (::fsync(fd) != 0) {
    if (errno != EINTR) return ErrnoStatus("fsync " + path, errno);
  }
  return Status::OK();
}

std::string_view Dirname(std::string_view path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return {};
  return slash == 0 ? path.substr(0, 1) : path.substr(0, slash);
}

std::string_view Basename(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// Creates `base`/`relative` and any missing directory between them
// (mkdir -p). Appends to `changed` (unless null) the parent of every
// directory it created, whose entries must be fsynced to make the new
// directories durable.
Status MakeDirs(const std::string& base, std::string_view relative,
                std::vector<std::string>* changed) {
  std::string dir = base;
  size_t begin = 0;
  while (begin < relative.size()) {
    size_t end = relative.find('/', begin);
    if (end == std::string_view::npos) end = relative.size();
    const std::string parent = dir;
    if (dir.empty() || dir.back() != '/') dir += '/';
    dir.append(relative.substr(begin, end - begin));
    begin = end + 1;
    if (::mkdir(dir.c_str(), 0777) == 0) {
      if (changed != nullptr) changed->push_back(parent);
      continue;
    }
    const int mkdir_errno = errno;
    // Not only EEXIST: some filesystems answer EACCES or EROFS for a
    // directory that is already there.
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) continue;
      return FailedPrecondition(dir + " exists and is not a directory");
    }
    return ErrnoStatus("mkdir " + dir, mkdir_errno);
  }
  return Status::OK();
}

}  // namespace shoal::internal
