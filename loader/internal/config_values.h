// The kinds of job-file keys behind loader/config.h (whole numbers, sizes,
// choices, lists, ...): each makes a ConfigEntry that reads a field of a
// JobConfig from YAML with its checks and writes it back. Used by the key
// table (config_keys.cc).
//
// Thread-safety: the functions are reentrant.
#ifndef SHOAL_LOADER_INTERNAL_CONFIG_VALUES_H_
#define SHOAL_LOADER_INTERNAL_CONFIG_VALUES_H_

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "loader/internal/config_keys.h"

namespace shoal::internal {

// Value parsing and printing shared by the key kinds below.
std::string What(const YAML::Node& node);
Result<std::string> ScalarText(const YAML::Node& node, std::string_view want);
Result<uint64_t> ParseWhole(const YAML::Node& node);
Result<double> ParseNumber(const YAML::Node& node);
/// A byte count: a whole number with an optional suffix k, M, G, T (also
/// kB/KiB, MB/MiB, ...), all powers of 1024 as in the CLI's flags.
Result<uint64_t> ParseSize(const YAML::Node& node);
std::string SizeText(uint64_t bytes);
/// The shortest text that reads back to `value`.
std::string NumberText(double value);
YAML::Node Flow(YAML::Node node);
std::string RangeText(uint64_t lo, uint64_t hi);

// A field of the config: F(JobConfig&) returns a reference to it (or a
// tuple of references for pairs).
template <typename T, typename F>
ConfigEntry Whole(std::string key, uint64_t lo, uint64_t hi,
                  std::string description, F field) {
  ConfigEntry e;
  e.info = {std::move(key), "whole number", "", RangeText(lo, hi),
            std::move(description)};
  e.set = [=](JobConfig& c, const YAML::Node& node) -> Status {
    const std::string range =
        "must be a whole number " +
        (hi == UINT64_MAX
             ? "from " + std::to_string(lo)
             : "from " + std::to_string(lo) + " to " + std::to_string(hi));
    if (node.IsScalar() && node.Scalar().starts_with("-")) {
      return InvalidArgument(range + ", got " + node.Scalar());
    }
    SHOAL_ASSIGN_OR_RETURN(uint64_t v, ParseWhole(node));
    if (v < lo || v > hi) {
      return InvalidArgument(range + ", got " + std::to_string(v));
    }
    field(c) = static_cast<T>(v);
    return Status::OK();
  };
  e.get = [=](const JobConfig& c) {
    return YAML::Node(std::to_string(field(const_cast<JobConfig&>(c))));
  };
  return e;
}

template <typename F>
ConfigEntry Size(std::string key, uint64_t lo, uint64_t hi,
                 std::string description, F field) {
  ConfigEntry e;
  e.info = {std::move(key), "size (k, M, G, T: powers of 1024)", "",
            SizeText(lo) + " .. " + SizeText(hi), std::move(description)};
  e.set = [=](JobConfig& c, const YAML::Node& node) -> Status {
    SHOAL_ASSIGN_OR_RETURN(uint64_t v, ParseSize(node));
    if (v < lo || v > hi) {
      return InvalidArgument("must be a size from " + SizeText(lo) + " to " +
                             SizeText(hi) + ", got " + SizeText(v));
    }
    field(c) = v;
    return Status::OK();
  };
  e.get = [=](const JobConfig& c) {
    return YAML::Node(SizeText(field(const_cast<JobConfig&>(c))));
  };
  return e;
}

template <typename F>
ConfigEntry Number(std::string key, double lo, double hi,
                   std::string description, F field) {
  ConfigEntry e;
  e.info = {std::move(key), "number", "",
            NumberText(lo) + " .. " + NumberText(hi), std::move(description)};
  e.set = [=](JobConfig& c, const YAML::Node& node) -> Status {
    SHOAL_ASSIGN_OR_RETURN(double v, ParseNumber(node));
    if (v < lo || v > hi) {
      return InvalidArgument("must be " + NumberText(lo) + " .. " +
                             NumberText(hi) + ", got " + NumberText(v));
    }
    field(c) = v;
    return Status::OK();
  };
  e.get = [=](const JobConfig& c) {
    return YAML::Node(NumberText(field(const_cast<JobConfig&>(c))));
  };
  return e;
}

template <typename F>
ConfigEntry Flag(std::string key, std::string description, F field) {
  ConfigEntry e;
  e.info = {std::move(key), "true or false", "", "", std::move(description)};
  e.set = [=](JobConfig& c, const YAML::Node& node) -> Status {
    SHOAL_ASSIGN_OR_RETURN(std::string text, ScalarText(node, "true or false"));
    if (text != "true" && text != "false") {
      return InvalidArgument("expected true or false, got '" + text + "'");
    }
    field(c) = text == "true";
    return Status::OK();
  };
  e.get = [=](const JobConfig& c) {
    return YAML::Node(field(const_cast<JobConfig&>(c)) ? "true" : "false");
  };
  return e;
}

// One of `names`; field(c) is of type T.
template <typename T, typename F>
ConfigEntry Choice(std::string key,
                   std::vector<std::pair<std::string, T>> names,
                   std::string description, F field) {
  std::string list;
  for (const auto& [name, value] : names) {
    list += (list.empty() ? "" : "|") + name;
  }
  ConfigEntry e;
  e.info = {std::move(key), "one of " + list, "", "", std::move(description)};
  e.set = [=](JobConfig& c, const YAML::Node& node) -> Status {
    SHOAL_ASSIGN_OR_RETURN(std::string text,
                           ScalarText(node, "one of " + list));
    for (const auto& [name, value] : names) {
      if (text == name) {
        field(c) = value;
        return Status::OK();
      }
    }
    std::string hint;
    size_t best = 3;  // a typo or two, not another word
    for (const auto& [name, value] : names) {
      if (const size_t d = EditDistance(text, name); d < best) {
        best = d;
        hint = " (did you mean '" + name + "'?)";
      }
    }
    return InvalidArgument("expected one of " + list + ", got '" + text + "'" +
                           hint);
  };
  e.get = [=](const JobConfig& c) {
    for (const auto& [name, value] : names) {
      if (field(const_cast<JobConfig&>(c)) == value) return YAML::Node(name);
    }
    return YAML::Node("?");
  };
  return e;
}

// Free text, checked by `check` (returns why it is wrong, "" when right).
template <typename F>
ConfigEntry Text(std::string key, std::string description, F field,
                 std::function<std::string(const std::string&)> check = {}) {
  ConfigEntry e;
  e.info = {std::move(key), "text", "", "", std::move(description)};
  e.set = [=](JobConfig& c, const YAML::Node& node) -> Status {
    std::string text;
    if (!node.IsNull()) {
      SHOAL_ASSIGN_OR_RETURN(text, ScalarText(node, "text"));
    }
    if (check) {
      const std::string why = check(text);
      if (!why.empty()) return InvalidArgument(why);
    }
    field(c) = std::move(text);
    return Status::OK();
  };
  e.get = [=](const JobConfig& c) {
    return YAML::Node(field(const_cast<JobConfig&>(c)));
  };
  return e;
}

// A list of text; one value alone stands for a list of one.
template <typename F>
ConfigEntry TextList(std::string key, std::string description, F field) {
  ConfigEntry e;
  e.info = {std::move(key), "list of text", "", "", std::move(description)};
  e.set = [=](JobConfig& c, const YAML::Node& node) -> Status {
    std::vector<std::string> out;
    if (node.IsScalar()) {
      out.push_back(node.Scalar());
    } else if (node.IsSequence()) {
      for (const YAML::Node& item : node) {
        SHOAL_ASSIGN_OR_RETURN(std::string text, ScalarText(item, "text"));
        if (text.empty()) return InvalidArgument("an empty entry");
        out.push_back(std::move(text));
      }
    } else if (!node.IsNull()) {
      return InvalidArgument("expected a list, got " + What(node));
    }
    field(c) = std::move(out);
    return Status::OK();
  };
  e.get = [=](const JobConfig& c) {
    YAML::Node list(YAML::NodeType::Sequence);
    for (const std::string& s : field(const_cast<JobConfig&>(c))) {
      list.push_back(s);
    }
    return Flow(list);
  };
  return e;
}

// HxW: one number (square) or [H, W]; heights and widths in lo .. hi.
template <typename F>
ConfigEntry Extent(std::string key, uint64_t lo, uint64_t hi,
                   std::string description, F field) {
  ConfigEntry e;
  e.info = {std::move(key), "N or [H, W]", "", RangeText(lo, hi),
            std::move(description)};
  e.set = [=](JobConfig& c, const YAML::Node& node) -> Status {
    uint64_t h = 0, w = 0;
    if (node.IsSequence()) {
      if (node.size() != 2) {
        return InvalidArgument("expected N or [H, W], got a list of " +
                               std::to_string(node.size()));
      }
      SHOAL_ASSIGN_OR_RETURN(h, ParseWhole(node[0]));
      SHOAL_ASSIGN_OR_RETURN(w, ParseWhole(node[1]));
    } else {
      SHOAL_ASSIGN_OR_RETURN(h, ParseWhole(node));
      w = h;
    }
    for (uint64_t v : {h, w}) {
      if (v < lo || v > hi) {
        return InvalidArgument("must be " + RangeText(lo, hi) + ", got " +
                               std::to_string(v));
      }
    }
    auto [height, width] = field(c);
    height = static_cast<uint32_t>(h);
    width = static_cast<uint32_t>(w);
    return Status::OK();
  };
  e.get = [=](const JobConfig& c) {
    auto [height, width] = field(const_cast<JobConfig&>(c));
    if (height == width) return YAML::Node(std::to_string(height));
    YAML::Node list(YAML::NodeType::Sequence);
    list.push_back(std::to_string(height));
    list.push_back(std::to_string(width));
    return Flow(list);
  };
  return e;
}

// [min, max] with 0 < min <= max <= hi.
template <typename F>
ConfigEntry Interval(std::string key, double hi, std::string description,
                     F field) {
  ConfigEntry e;
  e.info = {std::move(key), "[min, max]", "",
            "0 < min <= max <= " + NumberText(hi), std::move(description)};
  e.set = [=](JobConfig& c, const YAML::Node& node) -> Status {
    if (!node.IsSequence() || node.size() != 2) {
      return InvalidArgument("expected [min, max], got " + What(node));
    }
    SHOAL_ASSIGN_OR_RETURN(double lo, ParseNumber(node[0]));
    SHOAL_ASSIGN_OR_RETURN(double up, ParseNumber(node[1]));
    if (!(lo > 0 && lo <= up && up <= hi)) {
      return InvalidArgument("needs 0 < min <= max <= " + NumberText(hi) +
                             ", got [" + NumberText(lo) + ", " +
                             NumberText(up) + "]");
    }
    auto [a, b] = field(c);
    a = lo;
    b = up;
    return Status::OK();
  };
  e.get = [=](const JobConfig& c) {
    auto [a, b] = field(const_cast<JobConfig&>(c));
    YAML::Node list(YAML::NodeType::Sequence);
    list.push_back(NumberText(a));
    list.push_back(NumberText(b));
    return Flow(list);
  };
  return e;
}

// A mapping of names to text ({labels: zstd:3}).
template <typename F>
ConfigEntry TextMap(std::string key, std::string description, F field) {
  ConfigEntry e;
  e.info = {std::move(key), "mapping of text", "", "", std::move(description)};
  e.set = [=](JobConfig& c, const YAML::Node& node) -> Status {
    std::map<std::string, std::string> out;
    if (node.IsMap()) {
      for (auto it = node.begin(); it != node.end(); ++it) {
        const YAML::Node name = it->first;  // handles: it-> is a temporary
        const YAML::Node value = it->second;
        SHOAL_ASSIGN_OR_RETURN(std::string k, ScalarText(name, "a name"));
        std::string v;
        if (!value.IsNull()) {
          SHOAL_ASSIGN_OR_RETURN(v, ScalarText(value, "text"));
        }
        out[k] = v;
      }
    } else if (!node.IsNull()) {
      return InvalidArgument(
          "expected a mapping such as {labels: zstd:3}, "
          "got " +
          What(node));
    }
    field(c) = std::move(out);
    return Status::OK();
  };
  e.get = [=](const JobConfig& c) {
    YAML::Node map(YAML::NodeType::Map);
    for (const auto& [k, v] : field(const_cast<JobConfig&>(c))) map[k] = v;
    return Flow(map);
  };
  return e;
}

}  // namespace shoal::internal

#endif  // SHOAL_LOADER_INTERNAL_CONFIG_VALUES_H_
