// Writer and reader of NumPy .npy files: `shoal get -o x.npy` writes a
// sample out to NumPy; the NPY source of the write graph
// (loader/internal/npy_source.cc) reads a file's layout here and its data
// by blocks of rows.
//
// Format (numpy.lib.format, "NPY format" spec): the magic "\x93NUMPY", a
// major and minor version byte, the header length (little-endian uint16 in
// version 1.0, uint32 in 2.0), then an ASCII Python dict literal
// {'descr': '<f4', 'fortran_order': False, 'shape': (28, 28), } padded with
// spaces and ended by '\n' so that the data starts at a multiple of 64 bytes,
// then the elements.
//
// The writer always produces version 1.0 in C order. The reader accepts
// versions 1.0 and 2.0 with the dtypes shoal has, in either byte order;
// Fortran order is rejected (Unimplemented). Files are untrusted: the header
// is parsed with bounds checks and the data size is checked against the file
// size (and by ReadNpyFile a cap) before anything is allocated.
//
// Thread-safety: all functions are reentrant.
#ifndef SHOAL_LOADER_INTERNAL_NPY_H_
#define SHOAL_LOADER_INTERNAL_NPY_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "base/types.h"
#include "loader/internal/random_access_file.h"

namespace shoal::internal {

/// An array read from a .npy file. `data` holds product(shape) elements of
/// `dtype` in C (row-major) order and little-endian byte order.
struct NpyArray {
  DType dtype = DType::kUInt8;
  std::vector<uint64_t> shape;
  Buffer data;
};

/// The largest rank read or written: NumPy 2's limit (NumPy 1 allows 32).
inline constexpr size_t kNpyMaxRank = 64;
/// The largest data size ReadNpyFile accepts unless told otherwise.
inline constexpr uint64_t kDefaultNpyMaxBytes = uint64_t{4} << 30;

/// Everything in a version 1.0 .npy file before the data of a C-order array:
/// magic, version, header length and the padded header dict. Its size is a
/// multiple of 64. InvalidArgument when shape has more than kNpyMaxRank
/// dimensions.
Result<std::string> EncodeNpyHeader(DType dtype,
                                    std::span<const uint64_t> shape);

/// Writes `data` (C order, little-endian) as a .npy file at `path`, replacing
/// any file there. InvalidArgument when data.size() does not match dtype and
/// shape; IOError (with the OS reason) when the file cannot be written, in
/// which case no partial file is left behind.
Status WriteNpyFile(const std::string& path, DType dtype,
                    std::span<const uint64_t> shape, ByteSpan data);

/// Where an array is in a .npy file and what it is.
struct NpyLayout {
  DType dtype = DType::kUInt8;
  std::vector<uint64_t> shape;
  /// Byte order of the data in the file.
  bool little_endian = true;
  /// Where the data starts, and its size (product(shape) x element size;
  /// the file ends right after it).
  uint64_t data_offset = 0;
  uint64_t data_bytes = 0;
};

/// Reads and checks the header of the .npy file `file`; reads no data.
/// Errors: Corruption for a bad magic or header, a data size that overflows
/// or differs from what the file holds after the header (too short or with
/// bytes after the data); Unimplemented for another format version, Fortran
/// order or a dtype shoal does not have (complex, structured, strings,
/// objects...). Messages name the file.
Result<NpyLayout> ReadNpyLayout(const RandomAccessFile& file);

/// Reads the .npy file at `path`.
/// Errors: NotFound / IOError when it cannot be read; InvalidArgument when
/// it is not a regular file; those of ReadNpyLayout; ResourceExhausted when
/// the data would exceed `max_data_bytes`.
Result<NpyArray> ReadNpyFile(const std::string& path,
                             uint64_t max_data_bytes = kDefaultNpyMaxBytes);

}  // namespace shoal::internal

#endif  // SHOAL_LOADER_INTERNAL_NPY_H_
