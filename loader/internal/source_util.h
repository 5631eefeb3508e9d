// Helpers shared by the built-in sources: exact file reads, and file names
// that are not UTF-8 (POSIX names are bytes) kept losslessly in JSON and
// shown readably in messages.
//
// Thread-safety: plain functions.
#ifndef SHOAL_LOADER_INTERNAL_SOURCE_UTIL_H_
#define SHOAL_LOADER_INTERNAL_SOURCE_UTIL_H_

#include <string>
#include <string_view>
#include <vector>

#include "base/buffer.h"
#include "base/status.h"
#include "format/schema.h"

namespace shoal::internal {

/// Reads exactly out.size() bytes of the file at `path`; IOError naming the
/// file when it is shorter or longer (it changed since it was listed) or
/// cannot be read.
Status ReadFileExactly(const std::string& path, MutableByteSpan out);

/// True when `s` is valid UTF-8.
bool IsUtf8(std::string_view s);

/// `name` as is when it is UTF-8; else with each byte that is not part of a
/// valid UTF-8 sequence written as \xHH (and backslashes doubled), so that
/// it can be printed and put in JSON, and two names stay apart.
std::string PrintableName(std::string_view name);

/// Sets `info` to the sample info JSON of a file: {"path": NAME}; a name
/// that is not UTF-8 also gets "path_hex", its bytes in hex, so that it is
/// kept exactly.
void SourceInfo(std::string_view name, std::string* info);

/// The class_label tensor "labels" of a folder source whose top-level
/// subfolders are classes (uint32 scalars, lz4 chunks).
TensorSpec LabelsSpec(std::vector<std::string> class_names);

/// One 4-byte buffer per class value 0..n-1, shared by every sample of the
/// class (no allocation per sample).
std::vector<Buffer> LabelBuffers(size_t n);

}  // namespace shoal::internal

#endif  // SHOAL_LOADER_INTERNAL_SOURCE_UTIL_H_
