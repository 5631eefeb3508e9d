#include "loader/internal/folder.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <map>
#include <optional>

namespace shoal::internal {

namespace fs = std::filesystem;

Result<std::vector<FolderFile>> ListFolder(const std::string& dir) {
  const fs::path root(dir);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return NotFound("'" + dir + "' is not a folder");
  }
  std::vector<FolderFile> files;
  fs::recursive_directory_iterator it(root, ec), end;
  if (ec) return ErrnoStatus("list " + dir, ec.value());
  for (; it != end; it.increment(ec)) {
    if (ec) return ErrnoStatus("list " + dir, ec.value());
    const fs::path& path = it->path();
    if (path.filename().string().starts_with('.')) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    // A symlink is never walked into (so a loop cannot trap the walk), and
    // the iterator must not even ask whether it leads to a folder.
    std::error_code link_ec;
    if (it->is_symlink(link_ec)) it.disable_recursion_pending();
    // Lexically: fs::relative would resolve (and choke on) symlinks.
    const std::string relative = path.lexically_relative(root).generic_string();
    const bool regular = it->is_regular_file(ec);
    if (ec || (!regular && it->is_symlink() && !fs::exists(path, ec))) {
      // is_regular_file follows links; one that cannot be followed says why.
      std::error_code why;
      (void)fs::status(path, why);
      files.push_back({relative, path, 0,
                       why ? why.message() : "a symlink that leads nowhere"});
      ec.clear();
      continue;
    }
    if (!regular) continue;
    const uint64_t size = it->file_size(ec);
    if (ec) {
      files.push_back({relative, path, 0, ec.message()});
      ec.clear();
      continue;
    }
    files.push_back({relative, path, size, ""});
  }
  if (ec) return ErrnoStatus("list " + dir, ec.value());
  std::sort(files.begin(), files.end(),
            [](const FolderFile& a, const FolderFile& b) {
              return a.relative < b.relative;
            });
  return files;
}

Result<FolderClasses> AssignClasses(const std::string& dir,
                                    std::span<const std::string> relatives,
                                    const std::string& noun) {
  std::map<std::string, uint32_t> classes;
  std::optional<std::string> top_level;
  for (const std::string& relative : relatives) {
    const size_t slash = relative.find('/');
    if (slash == std::string::npos) {
      top_level = relative;
    } else {
      classes.emplace(relative.substr(0, slash), 0);
    }
  }
  if (!classes.empty() && top_level) {
    return InvalidArgument(
        "'" + dir + "' has class subfolders and also " + noun +
        " at its top level (e.g. '" + *top_level +
        "'), which would have no class: move them into a class folder, or "
        "ingest a folder without subfolders");
  }
  FolderClasses out;
  for (auto& [name, label] : classes) {
    label = static_cast<uint32_t>(out.names.size());
    out.names.push_back(name);
  }
  out.labels.resize(relatives.size(), 0);
  if (classes.empty()) return out;
  for (size_t i = 0; i < relatives.size(); ++i) {
    out.labels[i] = classes.at(relatives[i].substr(0, relatives[i].find('/')));
  }
  return out;
}

Result<std::vector<std::byte>> ReadFilePrefix(const fs::path& path, size_t n) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return ErrnoStatus("open " + path.string(), errno);
  std::vector<std::byte> bytes(n);
  bytes.resize(std::fread(bytes.data(), 1, n, file));
  const bool failed = std::ferror(file) != 0;
  const int saved = errno;
  std::fclose(file);
  if (failed) return ErrnoStatus("read " + path.string(), saved);
  return bytes;
}

Status ReadWholeFile(const fs::path& path, std::vector<std::byte>& out) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return ErrnoStatus("open " + path.string(), errno);
  out.clear();
  size_t size = 0;
  std::error_code ec;
  const uintmax_t expected = fs::file_size(path, ec);
  out.resize(ec ? 1 << 16 : static_cast<size_t>(expected) + 1);
  while (true) {
    size += std::fread(out.data() + size, 1, out.size() - size, file);
    if (size < out.size()) break;
    out.resize(out.size() * 2);  // the file grew since it was listed
  }
  const bool failed = std::ferror(file) != 0;
  const int saved = errno;
  std::fclose(file);
  if (failed) return ErrnoStatus("read " + path.string(), saved);
  out.resize(size);
  return Status::OK();
}

}  // namespace shoal::internal
