#include "loader/internal/random_access_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace shoal::internal {

Result<std::unique_ptr<RandomAccessFile>> RandomAccessFile::Open(
    std::string path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open " + path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int saved = errno;
    ::close(fd);
    return ErrnoStatus("stat " + path, saved);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument(path + ": not a regular file");
  }
  return std::unique_ptr<RandomAccessFile>(new RandomAccessFile(
      std::move(path), fd, static_cast<uint64_t>(st.st_size)));
}

RandomAccessFile::~RandomAccessFile() { ::close(fd_); }

Status RandomAccessFile::ReadAt(uint64_t offset, MutableByteSpan dst) const {
  while (!dst.empty()) {
    const ssize_t n =
        ::pread(fd_, dst.data(), dst.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read " + path_, errno);
    }
    if (n == 0) return Corruption(path_ + ": file shrank while being read");
    offset += static_cast<uint64_t>(n);
    dst = dst.subspan(static_cast<size_t>(n));
  }
  return Status::OK();
}

}  // namespace shoal::internal
