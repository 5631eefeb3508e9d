// Value parsing and printing for job-file keys (loader/internal/
// config_values.h), and the helpers of config_keys.h.
#include "loader/internal/config_values.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

namespace shoal::internal {

std::string What(const YAML::Node& node) {
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  if (!node.IsDefined() || node.IsNull()) return "nothing";
  return "'" + node.Scalar() + "'";
}

Result<std::string> ScalarText(const YAML::Node& node, std::string_view want) {
  if (!node.IsScalar()) {
    return InvalidArgument("expected " + std::string(want) + ", got " +
                           What(node));
  }
  return node.Scalar();
}

Result<uint64_t> ParseWhole(const YAML::Node& node) {
  SHOAL_ASSIGN_OR_RETURN(std::string text, ScalarText(node, "a whole number"));
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (!text.empty() && text[0] == '-') {
    return InvalidArgument("must not be negative, got " + text);
  }
  if (ec == std::errc::result_out_of_range) {
    return InvalidArgument("too large: " + text);
  }
  if (ec != std::errc() || ptr != end) {
    return InvalidArgument("expected a whole number, got '" + text + "'");
  }
  return value;
}

Result<double> ParseNumber(const YAML::Node& node) {
  SHOAL_ASSIGN_OR_RETURN(std::string text, ScalarText(node, "a number"));
  double value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || !std::isfinite(value)) {
    return InvalidArgument("expected a number, got '" + text + "'");
  }
  return value;
}

Result<uint64_t> ParseSize(const YAML::Node& node) {
  SHOAL_ASSIGN_OR_RETURN(std::string text,
                         ScalarText(node, "a size such as 64MiB"));
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr == text.data()) {
    return InvalidArgument("expected a size such as 8MiB, got '" + text + "'");
  }
  std::string suffix(ptr, end);
  for (char& c : suffix) c = static_cast<char>(std::tolower(c));
  int shift = -1;
  static const std::pair<const char*, int> kSuffixes[] = {
      {"", 0},     {"b", 0},   {"k", 10},   {"kb", 10}, {"kib", 10},
      {"m", 20},   {"mb", 20}, {"mib", 20}, {"g", 30},  {"gb", 30},
      {"gib", 30}, {"t", 40},  {"tb", 40},  {"tib", 40}};
  for (const auto& [name, s] : kSuffixes) {
    if (suffix == name) shift = s;
  }
  if (shift < 0) {
    return InvalidArgument("unknown size suffix in '" + text +
                           "' (use k, M, G or T: powers of 1024)");
  }
  if (shift > 0 && value > (UINT64_MAX >> shift)) {
    return InvalidArgument("too large: " + text);
  }
  return value << shift;
}

std::string SizeText(uint64_t bytes) {
  static const std::pair<const char*, int> kUnits[] = {
      {"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}};
  for (const auto& [unit, shift] : kUnits) {
    const uint64_t one = uint64_t{1} << shift;
    if (bytes >= one && bytes % one == 0) {
      return std::to_string(bytes >> shift) + unit;
    }
  }
  return std::to_string(bytes);
}

std::string NumberText(double value) {
  char buffer[64];
  auto [ptr, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, ptr);
}

YAML::Node Flow(YAML::Node node) {
  node.SetStyle(YAML::EmitterStyle::Flow);
  return node;
}

std::string RangeText(uint64_t lo, uint64_t hi) {
  if (hi == UINT64_MAX) return "from " + std::to_string(lo);
  return std::to_string(lo) + " .. " + std::to_string(hi);
}

// A field of the config: F(JobConfig&) returns a reference to it.

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string ConfigNodeText(const YAML::Node& node) {
  YAML::Emitter out;
  out << node;
  return out.c_str();
}

}  // namespace shoal::internal
