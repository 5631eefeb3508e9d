// Reading a folder tree for the ingest commands: the files under it in a
// stable order, their class from the top-level subfolder (torchvision's
// ImageFolder convention), and whole-file reads.
//
// Thread-safety: plain functions.
#ifndef SHOAL_LOADER_INTERNAL_FOLDER_H_
#define SHOAL_LOADER_INTERNAL_FOLDER_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

namespace shoal::internal {

struct FolderFile {
  std::string relative;  // generic form ("cat/001.jpg"): sort key, info
  std::filesystem::path path;
  uint64_t size = 0;
  /// Why the entry cannot be read ("" when it can): a symlink that leads
  /// nowhere or in a circle.
  std::string error;
};

/// The regular files under `dir`, sorted by the bytes of their relative
/// paths (the same on every machine and locale). Hidden files and folders
/// (.git, .DS_Store) are skipped; folder symlinks are not followed, so a
/// link cycle cannot make the walk endless; symlinks to files count, and a
/// symlink that cannot be followed (dangling, a loop) is listed with its
/// error, for the caller to report.
/// NotFound when `dir` is not a folder.
Result<std::vector<FolderFile>> ListFolder(const std::string& dir);

struct FolderClasses {
  std::vector<std::string> names;  // sorted; empty for a flat folder
  std::vector<uint32_t> labels;    // per file, index into names
};

/// Classes of `relatives` (paths of the files kept, relative to `dir`):
/// each top-level subfolder is a class. InvalidArgument when files lie at
/// the top level next to class folders (they would have no class); `noun`
/// ("images") words that message.
Result<FolderClasses> AssignClasses(const std::string& dir,
                                    std::span<const std::string> relatives,
                                    const std::string& noun);

/// The first `n` bytes of `path` (fewer for a shorter file).
Result<std::vector<std::byte>> ReadFilePrefix(const std::filesystem::path& path,
                                              size_t n);
/// All of `path` into `out` (reused across files).
Status ReadWholeFile(const std::filesystem::path& path,
                     std::vector<std::byte>& out);

}  // namespace shoal::internal

#endif  // SHOAL_LOADER_INTERNAL_FOLDER_H_
