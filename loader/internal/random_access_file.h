// RandomAccessFile: a file opened once and read at offsets (pread) by many
// threads at once. The array sources (IDX, NPY) read the blocks of rows of
// a plain file this way, in parallel, without a descriptor per read.
//
// Thread-safety: ReadAt() is const and may run concurrently; the file is
// closed when the object is destroyed.
#ifndef SHOAL_LOADER_INTERNAL_RANDOM_ACCESS_FILE_H_
#define SHOAL_LOADER_INTERNAL_RANDOM_ACCESS_FILE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "base/buffer.h"
#include "base/result.h"

namespace shoal::internal {

class RandomAccessFile {
 public:
  /// Opens `path` for reading. NotFound / IOError (with the OS reason) when
  /// it cannot be opened; InvalidArgument when it is not a regular file.
  static Result<std::unique_ptr<RandomAccessFile>> Open(std::string path);
  ~RandomAccessFile();
  RandomAccessFile(const RandomAccessFile&) = delete;
  RandomAccessFile& operator=(const RandomAccessFile&) = delete;

  const std::string& path() const { return path_; }
  /// The size when the file was opened.
  uint64_t size() const { return size_; }

  /// Reads exactly dst.size() bytes at `offset`. Callers check ranges
  /// against size(), so a short read means the file shrank since it was
  /// opened: Corruption naming the file. IOError for an OS error.
  Status ReadAt(uint64_t offset, MutableByteSpan dst) const;

 private:
  RandomAccessFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}

  const std::string path_;
  const int fd_;
  const uint64_t size_;
};

}  // namespace shoal::internal

#endif  // SHOAL_LOADER_INTERNAL_RANDOM_ACCESS_FILE_H_
