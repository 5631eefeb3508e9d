// Flags bound to job-file keys (tools/config_flags.h).
#include "tools/config_flags.h"

#include <algorithm>

namespace shoal::tools {
namespace {

// The value's placeholder in --help: "N", "SIZE", "none|chunk|full".
std::string ShortType(const std::string& type) {
  if (type == "whole number") return "N";
  if (type == "number") return "X";
  if (type.starts_with("size")) return "SIZE";
  if (type == "list of text") return "A,B,...";
  if (type == "N or [H, W]") return "N|[H,W]";
  if (type.starts_with("one of ")) return type.substr(7);
  if (type == "true or false") return "true|false";
  return "TEXT";
}

// "a,b" -> "[a, b]"; a YAML list as given stays.
std::string AsList(const std::string& text) {
  return text.starts_with("[") ? text : "[" + text + "]";
}

}  // namespace

std::string KeyHelp(const std::string& key) {
  const ConfigKeyInfo* info = FindConfigKey(key);
  if (info == nullptr) return "(" + key + ")";
  std::string help = info->description;
  if (!info->range.empty()) help += " (" + info->range + ")";
  return help + " [" + key + "]";
}

CLI::Option* ConfigFlags::Add(CLI::App& cmd, const std::string& flag,
                              const std::string& key) {
  std::string* value = &values_.emplace_back();
  const ConfigKeyInfo* info = FindConfigKey(key);
  CLI::Option* option = cmd.add_option(flag, *value, KeyHelp(key));
  if (info != nullptr) {
    option->type_name(ShortType(info->type));
    if (flag.starts_with("-")) {
      option->default_str(ConfigValueText(defaults_, key));
    }
  }
  // A list on the command line is comma-separated: a,b for [a, b].
  const bool list = info != nullptr && info->type == "list of text";
  // A bad value is a usage error at parse time, with the key's own message.
  option->check(CLI::Validator(
      [key, list](std::string& text) -> std::string {
        JobConfig probe;
        Status s = SetConfigValue(probe, key, list ? AsList(text) : text);
        if (s.ok()) return "";
        // CLI11 names the flag; the key is in its --help.
        std::string why(s.message());
        if (why.starts_with(key + ": ")) why.erase(0, key.size() + 2);
        return why;
      },
      ""));
  bound_.push_back({option,
                    value,
                    [key, list](JobConfig& c, const std::string& v) {
                      return SetConfigValue(c, key, list ? AsList(v) : v);
                    },
                    {key}});
  return option;
}

CLI::Option* ConfigFlags::AddSwitch(CLI::App& cmd, const std::string& flag,
                                    const std::string& key,
                                    const std::string& value,
                                    const std::string& help) {
  std::string* text = &values_.emplace_back();
  CLI::Option* option =
      cmd.add_flag(flag, *text, help + " [" + key + ": " + value + "]");
  bound_.push_back({option,
                    text,
                    [key, value](JobConfig& c, const std::string&) {
                      return SetConfigValue(c, key, value);
                    },
                    {key}});
  return option;
}

CLI::Option* ConfigFlags::AddCustom(CLI::App& cmd, const std::string& flag,
                                    const std::string& help, Apply apply,
                                    std::vector<std::string> keys) {
  std::string* value = &values_.emplace_back();
  CLI::Option* option = cmd.add_option(flag, *value, help);
  option->type_name("VALUE");
  option->check(CLI::Validator(
      [apply](std::string& text) -> std::string {
        JobConfig probe;
        Status s = apply(probe, text);
        return s.ok() ? "" : std::string(s.message());
      },
      "VALUE"));
  bound_.push_back({option, value, std::move(apply), std::move(keys)});
  return option;
}

void ConfigFlags::AddJobOptions(CLI::App& cmd) {
  cmd.add_option("--config", config_path_,
                 "A job file (YAML, see configs/README.md); flags given here "
                 "override it")
      ->check(CLI::ExistingFile);
  cmd.add_option("--set", sets_,
                 "KEY=VALUE: set any key of the job file, e.g. --set "
                 "loader.shuffle_buffer=4096 (repeatable; after the flags)")
      ->allow_extra_args(false);
  cmd.add_flag("--print-config", print_config_,
               "Print the whole job as YAML (loadable with --config) and "
               "exit without running it");
}

Result<JobConfig> ConfigFlags::Build(
    const std::vector<std::pair<std::string, std::string>>& fixed) const {
  JobConfig job = defaults_;
  if (has_config()) {
    SHOAL_ASSIGN_OR_RETURN(job, LoadJobConfig(config_path_));
    // The command's sections are printed and run even when the file has
    // only others (an ingest file given to bench: the loader's defaults).
    job.has_loader |= defaults_.has_loader;
    job.has_ingest |= defaults_.has_ingest;
    job.has_bench |= defaults_.has_bench;
  }
  for (const auto& [key, value] : fixed) {
    SHOAL_RETURN_IF_ERROR(SetConfigValue(job, key, value));
  }
  for (const Bound& b : bound_) {
    if (b.option->count() == 0) continue;
    Status s = b.apply(job, *b.value);
    if (!s.ok()) {
      return InvalidArgument(b.option->get_name() + ": " +
                             std::string(s.message()));
    }
  }
  for (const std::string& set : sets_) {
    const size_t eq = set.find('=');
    if (eq == std::string::npos) {
      return InvalidArgument("--set '" + set + "': want KEY=VALUE");
    }
    Status s = SetConfigValue(job, set.substr(0, eq), set.substr(eq + 1));
    if (!s.ok()) return InvalidArgument("--set: " + std::string(s.message()));
  }
  if (Status s = CheckJobConfig(job); !s.ok()) {
    std::string message(s.message());
    // "KEY: why" about a key a flag set: the user typed the flag. The last
    // flag given wins, as it did when the job was built.
    for (auto b = bound_.rbegin(); b != bound_.rend(); ++b) {
      if (b->option->count() == 0) continue;
      const auto key = std::find_if(
          b->keys.begin(), b->keys.end(),
          [&](const std::string& k) { return message.starts_with(k + ": "); });
      if (key == b->keys.end()) continue;
      message = b->option->get_name() + " (" + *key +
                "): " + message.substr(key->size() + 2);
      break;
    }
    return InvalidArgument(
        message +
        (has_config() ? " (after " + config_path_ + " and the flags)" : ""));
  }
  return job;
}

}  // namespace shoal::tools
