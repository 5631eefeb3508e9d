// Command-line flags that set keys of a job file (loader/config.h): their
// help text, range and default come from the key table, their values go
// through the same checks as the file's, and they override the file given
// with --config. Every command that takes a job adds --config FILE,
// --set KEY=VALUE and --print-config.
//
// Thread-safety: none needed; the CLI is single-threaded.
#ifndef SHOAL_TOOLS_CONFIG_FLAGS_H_
#define SHOAL_TOOLS_CONFIG_FLAGS_H_

#include <CLI/CLI.hpp>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "loader/config.h"

namespace shoal::tools {

class ConfigFlags {
 public:
  /// `defaults`: the command's job before any flag, whose values --help
  /// shows as defaults (the library's, unless the command differs).
  explicit ConfigFlags(JobConfig defaults) : defaults_(std::move(defaults)) {}

  /// How a flag's value changes the job; an error is a usage error.
  using Apply = std::function<Status(JobConfig&, const std::string& value)>;

  /// --flag VALUE (or a positional when `flag` has no leading '-') for
  /// `key`: help = the key's description, range and default.
  CLI::Option* Add(CLI::App& cmd, const std::string& flag,
                   const std::string& key);
  /// A flag without a value that sets `key` to `value` when given.
  CLI::Option* AddSwitch(CLI::App& cmd, const std::string& flag,
                         const std::string& key, const std::string& value,
                         const std::string& help);
  /// A flag whose value `apply` turns into `keys` (e.g. --clip-size
  /// 112x112 into loader.clip.size).
  CLI::Option* AddCustom(CLI::App& cmd, const std::string& flag,
                         const std::string& help, Apply apply,
                         std::vector<std::string> keys);
  /// --config FILE, --set KEY=VALUE (repeatable), --print-config.
  void AddJobOptions(CLI::App& cmd);

  bool has_config() const { return !config_path_.empty(); }
  bool print_config() const { return print_config_; }

  /// The job: the defaults (or the --config file instead, when given),
  /// then `fixed`, what the command itself implies ("ingest.source.kind" =
  /// "images"), then the flags given in the order they were added, then
  /// --set; checked as a whole. An error of the check about a key that a
  /// flag given set names the flag.
  Result<JobConfig> Build(
      const std::vector<std::pair<std::string, std::string>>& fixed = {}) const;

 private:
  struct Bound {
    CLI::Option* option;
    std::string* value;
    Apply apply;
    std::vector<std::string> keys;  // what it sets, to name it in errors
  };
  JobConfig defaults_;
  std::deque<std::string> values_;  // stable addresses for CLI11
  std::vector<Bound> bound_;
  std::string config_path_;
  std::vector<std::string> sets_;
  bool print_config_ = false;
};

/// The help text of a key: description, range, as the table has them.
std::string KeyHelp(const std::string& key);

}  // namespace shoal::tools

#endif  // SHOAL_TOOLS_CONFIG_FLAGS_H_
