// The table of job-file keys behind loader/config.h: for each key, how its
// value is read from a YAML node (with its checks) and written back.
//
// Thread-safety: the table is built once, on first use, and never changed.
#ifndef SHOAL_LOADER_INTERNAL_CONFIG_KEYS_H_
#define SHOAL_LOADER_INTERNAL_CONFIG_KEYS_H_

#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "loader/config.h"

namespace shoal::internal {

struct ConfigEntry {
  ConfigKeyInfo info;
  /// Reads the value; the message does not name the key (the caller does).
  std::function<Status(JobConfig&, const YAML::Node&)> set;
  /// The value as YAML (a scalar, or a flow sequence).
  std::function<YAML::Node(const JobConfig&)> get;
};

/// Every key, in print order; sections are the keys' dotted prefixes.
const std::vector<ConfigEntry>& ConfigEntries();
const ConfigEntry* FindConfigEntry(std::string_view key);
/// Levenshtein distance, for "did you mean".
size_t EditDistance(std::string_view a, std::string_view b);
/// A node as YAML text on one line (flow style for lists).
std::string ConfigNodeText(const YAML::Node& node);

}  // namespace shoal::internal

#endif  // SHOAL_LOADER_INTERNAL_CONFIG_KEYS_H_
