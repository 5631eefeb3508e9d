// Helpers shared by the byte codec plug-ins (raw, lz4, zstd, shuffle): level
// validation with uniform messages and pointer fix-ups for the C libraries.
// Not installed; only codecs/*.cc include it.
//
// Thread-safety: stateless functions.
#ifndef SHOAL_CODECS_INTERNAL_REGISTRY_H_
#define SHOAL_CODECS_INTERNAL_REGISTRY_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "base/buffer.h"
#include "base/result.h"

namespace shoal::internal {

/// The level of a codec that has one: `level`, or `default_level` when the
/// spec has none. InvalidArgument unless min <= level <= max; level 0 is also
/// refused when `allow_zero` is false (zstd reads 0 as "its default", which
/// would make "zstd:0" and "zstd:3" two spellings of one codec).
inline Result<int> CheckLevel(std::string_view name, std::optional<int> level,
                              int min, int max, int default_level,
                              bool allow_zero = true) {
  if (!level.has_value()) return default_level;
  if (*level < min || *level > max || (*level == 0 && !allow_zero)) {
    return InvalidArgument(std::string(name) + ": level " +
                           std::to_string(*level) + " outside [" +
                           std::to_string(min) + ", " + std::to_string(max) +
                           "]" + (allow_zero ? "" : " (0 excluded)"));
  }
  return *level;
}

/// InvalidArgument when a codec without levels was given one.
inline Status CheckNoLevel(std::string_view name, std::optional<int> level) {
  if (!level.has_value()) return Status::OK();
  return InvalidArgument(std::string(name) + " takes no level, got " +
                         std::to_string(*level));
}

// An empty span may carry a null data pointer; lz4 rejects null sources even
// for zero lengths, so empty spans are pointed at a harmless byte instead.
inline const char* InPtr(ByteSpan bytes) {
  static const char kEmpty = 0;
  return bytes.empty() ? &kEmpty : reinterpret_cast<const char*>(bytes.data());
}
inline char* OutPtr(MutableByteSpan bytes) {
  // Never written through: the length passed alongside is zero.
  static char empty_sink = 0;
  return bytes.empty() ? &empty_sink : reinterpret_cast<char*>(bytes.data());
}

}  // namespace shoal::internal

#endif  // SHOAL_CODECS_INTERNAL_REGISTRY_H_
