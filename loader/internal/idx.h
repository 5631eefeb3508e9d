// Reader of IDX files, the array format of the MNIST family of datasets
// (train-images-idx3-ubyte etc.): whole (ReadIdxFile) or in order, piece by
// piece (IdxReader, for the IDX source of the write graph, which streams a
// gzip file one record at a time).
//
// An IDX file is: two zero bytes, a type byte (0x08 uint8, 0x09 int8,
// 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), a byte giving the
// number of dimensions, one big-endian uint32 per dimension, then the
// elements in row-major order, big-endian. Files are commonly distributed
// gzip-compressed; both forms are read transparently.
//
// Files are untrusted, and a header can claim gigabytes in a few bytes.
// Nothing is allocated in proportion to a claim that has not been checked:
// a plain file must be exactly as long as its header says (checked before
// any data is read); a gzip file cannot inflate to more than 1032 times its
// size (deflate's limit), and within that, memory grows only as the data
// actually arrives, so that a lie fails when the data ends.
//
// Thread-safety: ReadIdxFile is reentrant; an IdxReader is used by one
// thread at a time.
#ifndef SHOAL_LOADER_INTERNAL_IDX_H_
#define SHOAL_LOADER_INTERNAL_IDX_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "base/types.h"

struct gzFile_s;  // zlib's, kept out of this header

namespace shoal::internal {

/// What an IDX file's header declares.
struct IdxHeader {
  DType dtype = DType::kUInt8;
  std::vector<uint64_t> dims;
  /// Bytes before the data: 4 + 4 x dims.size().
  uint64_t data_offset = 0;
  /// product(dims) x element size (checked for overflow).
  uint64_t data_bytes = 0;
};

/// An IDX file read in order: header first (by Open), then the data in
/// pieces of the caller's choosing, then CheckEnd().
class IdxReader {
 public:
  /// Opens `path` (plain or gzip) and reads its header.
  /// Errors: NotFound / IOError when the file cannot be read;
  /// InvalidArgument when it is not a regular file; Corruption for a bad
  /// magic, a dimension count of 0 or more than Shape::kMaxRank, a size that
  /// overflows, a plain file whose length is not the header's plus the data
  /// the dimensions declare, or a gzip file too small to hold that data.
  static Result<std::unique_ptr<IdxReader>> Open(const std::string& path);
  ~IdxReader();
  IdxReader(const IdxReader&) = delete;
  IdxReader& operator=(const IdxReader&) = delete;

  const std::string& path() const { return path_; }
  const IdxHeader& header() const { return header_; }
  /// True for a gzip file (false: plain, whose data may also be read at
  /// header().data_offset by other means).
  bool compressed() const { return compressed_; }
  /// The size of the file on disk (compressed, for gzip).
  uint64_t file_size() const { return file_size_; }
  /// Data bytes read or skipped so far.
  uint64_t position() const { return position_; }

  /// The next dst.size() bytes of the data, as stored (big-endian).
  /// Corruption naming the file when the data ends first ("declares N bytes
  /// of data, has M") or the gzip stream is damaged; InvalidArgument when
  /// dst passes the end of the declared data (a caller's error).
  Status Read(MutableByteSpan dst);
  /// The next `bytes` bytes of the data in a new buffer. For gzip, the
  /// buffer starts at min(bytes, 64 MiB) and grows (doubling, copying) as
  /// the data arrives: a file declaring more than it holds costs about what
  /// it holds. Errors as for Read.
  Result<MutableBuffer> ReadBuffer(uint64_t bytes);
  /// Reads and drops the next `bytes` bytes of the data (to start in the
  /// middle of a gzip stream, which can only be decompressed from its
  /// start). Errors as for Read.
  Status Skip(uint64_t bytes);
  /// After the last data byte: Corruption when bytes follow the data or the
  /// gzip stream is damaged (zlib checks its CRC only at its end).
  Status CheckEnd();

 private:
  struct GzCloser {
    void operator()(gzFile_s* file) const;
  };
  IdxReader() = default;

  std::string path_;
  std::unique_ptr<gzFile_s, GzCloser> file_;
  IdxHeader header_;
  bool compressed_ = false;
  uint64_t file_size_ = 0;
  uint64_t position_ = 0;
  std::vector<std::byte> scratch_;  // for Skip
};

/// One IDX array. `data` holds product(dims) elements of `dtype` in
/// row-major order and little-endian byte order.
struct IdxArray {
  DType dtype = DType::kUInt8;
  std::vector<uint64_t> dims;
  Buffer data;
};

/// The largest data size ReadIdxFile accepts unless told otherwise.
inline constexpr uint64_t kDefaultIdxMaxBytes = uint64_t{4} << 30;

/// Reads the IDX file at `path`, plain or gzip-compressed, whole.
/// Errors: those of IdxReader::Open, Read and CheckEnd (a file with less
/// data than its dimensions declare, or bytes after the data, is
/// Corruption); ResourceExhausted when the data would exceed
/// `max_data_bytes`.
Result<IdxArray> ReadIdxFile(const std::string& path,
                             uint64_t max_data_bytes = kDefaultIdxMaxBytes);

}  // namespace shoal::internal

#endif  // SHOAL_LOADER_INTERNAL_IDX_H_
