// URL dispatch for stores, the scheme registry, and the key rules that every
// store shares. The stores themselves live in format/internal/*_store.cc and
// register here from static initializers.
#include "format/store.h"

#include <cstdio>
#include <filesystem>
#include <string>

namespace shoal {
namespace {

// Long enough for any real dataset layout, short enough that a key plus a
// store root stays far below PATH_MAX.
constexpr size_t kMaxKeyLength = 1024;

// Keys end up in error messages; control bytes there would garble terminals
// and logs.
std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out;
}

Status InvalidKey(std::string_view key, std::string_view reason) {
  return InvalidArgument("invalid store key '" + Printable(key) +
                         "': " + std::string(reason));
}

bool IsValidScheme(std::string_view scheme) {
  if (scheme.empty()) return false;
  for (char c : scheme) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string JoinSchemes() {
  std::string out;
  for (const std::string& scheme : StoreRegistry::Names()) {
    if (!out.empty()) out += ", ";
    out += scheme + "://";
  }
  return out.empty() ? "none" : out;
}

// A plain path means a directory store; relative paths are taken against the
// current directory now, so that url() names the same place later.
Result<std::string> AbsoluteFilePath(std::string_view path) {
  if (path.empty()) return InvalidArgument("empty store URL");
  std::filesystem::path p(path);
  if (p.is_relative()) {
    std::error_code ec;
    std::filesystem::path cwd = std::filesystem::current_path(ec);
    if (ec) return ErrnoStatus("getcwd", ec.value());
    p = cwd / p;
  }
  return p.string();
}

}  // namespace

Status ValidateStoreKey(std::string_view key) {
  if (key.empty()) return InvalidKey(key, "empty");
  if (key.size() > kMaxKeyLength) {
    return InvalidKey(key.substr(0, 64),
                      "longer than " + std::to_string(kMaxKeyLength) +
                          " bytes (" + std::to_string(key.size()) + ")");
  }
  for (char c : key) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f) {
      return InvalidKey(key, "contains a byte outside printable ASCII");
    }
    // A backslash is a separator on some filesystems, so it could smuggle
    // in a component that the checks below never see.
    if (c == '\\') return InvalidKey(key, "contains a backslash");
  }
  if (key.front() == '/') return InvalidKey(key, "starts with '/'");
  size_t begin = 0;
  while (true) {
    const size_t end = key.find('/', begin);
    const std::string_view component =
        key.substr(begin, end == std::string_view::npos ? end : end - begin);
    if (component.empty()) return InvalidKey(key, "has an empty component");
    if (component == "." || component == "..") {
      return InvalidKey(key, "has a '.' or '..' component");
    }
    if (end == std::string_view::npos) break;
    begin = end + 1;
  }
  return Status::OK();
}

std::vector<Result<Buffer>> Store::ReadRanges(
    std::span<const RangeRead> ranges, const BufferAllocator& allocate) const {
  (void)allocate;  // ReadRange() of file:// maps, of mem:// shares
  std::vector<Result<Buffer>> out;
  out.reserve(ranges.size());
  for (const RangeRead& r : ranges) {
    out.push_back(ReadRange(r.key, r.offset, r.length));
  }
  return out;
}

std::vector<Result<Buffer>> Store::ReadMany(
    std::span<const std::string_view> keys) const {
  std::vector<Result<Buffer>> out;
  out.reserve(keys.size());
  for (std::string_view key : keys) out.push_back(Read(key));
  return out;
}

std::vector<Status> Store::WriteMany(std::span<const ObjectWrite> writes) {
  std::vector<Status> out;
  out.reserve(writes.size());
  for (const ObjectWrite& w : writes) out.push_back(Write(w.key, w.data));
  return out;
}

std::vector<Status> Store::DeleteMany(std::span<const std::string> keys) {
  std::vector<Status> out;
  out.reserve(keys.size());
  for (const std::string& key : keys) {
    Status s = Delete(key);
    out.push_back(s.code() == StatusCode::kNotFound ? Status::OK() : s);
  }
  return out;
}

Status Store::DeleteLeftover(std::string_view name) {
  // Appended rather than "'" + std::string(...): GCC 12 at -O3 warns
  // falsely (-Wrestrict, GCC bug 105329) on a literal plus a temporary.
  std::string message = "'";
  message.append(name).append("' in ").append(url());
  return InvalidArgument(message +
                         " is not a leftover of an interrupted write");
}

Result<std::shared_ptr<Store>> OpenStore(std::string_view url,
                                         const StoreOptions& options) {
  std::string scheme;
  std::string location;
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) {
    scheme = "file";
    SHOAL_ASSIGN_OR_RETURN(location, AbsoluteFilePath(url));
  } else {
    // Schemes are case-insensitive (RFC 3986); registered names are lower
    // case.
    scheme = url.substr(0, sep);
    for (char& c : scheme) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    if (!IsValidScheme(scheme)) {
      return InvalidArgument("malformed store URL '" + Printable(url) + "'");
    }
    location = url.substr(sep + 3);
  }
  Result<StoreRegistry::Factory> factory = StoreRegistry::Find(scheme);
  if (!factory.ok()) {
    return InvalidArgument("unknown store scheme '" + Printable(scheme) +
                           "://' (known: " + JoinSchemes() + ")");
  }
  Result<std::shared_ptr<Store>> store = (*factory)(location, options);
  if (!store.ok()) {
    return store.status().WithContext("opening store '" + Printable(url) + "'");
  }
  return store;
}

template class Registry<StoreKind>;

}  // namespace shoal
