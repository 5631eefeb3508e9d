// `shoal config`: job files (loader/config.h) without running them.
//   shoal config check FILE...   parse and check, print each file's job
//   shoal config keys            every key: type, default, range, what it does
#include "loader/config.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tools/commands.h"

namespace shoal::tools {
namespace {

struct CheckOptions {
  std::vector<std::string> files;
  bool print = false;
};

Result<int> RunCheck(const CheckOptions& options) {
  int failed = 0;
  for (const std::string& file : options.files) {
    auto job = LoadJobConfig(file);
    if (!job.ok()) {
      std::fprintf(stderr, "shoal: %s\n",
                   std::string(job.status().message()).c_str());
      ++failed;
      continue;
    }
    std::string sections;
    for (const auto& [has, name] : {std::pair{job->has_loader, "loader"},
                                    std::pair{job->has_ingest, "ingest"},
                                    std::pair{job->has_bench, "bench"}}) {
      if (has) sections += (sections.empty() ? "" : ", ") + std::string(name);
    }
    if (options.print) {
      std::printf("# %s\n%s", file.c_str(), JobConfigToYaml(*job).c_str());
    } else {
      std::printf("%s: ok (%s)\n", file.c_str(),
                  sections.empty() ? "no sections" : sections.c_str());
    }
  }
  return failed == 0 ? kExitOk : kExitFailure;
}

Result<int> RunKeys(const std::string& format) {
  if (format == "markdown") {
    std::fputs(ConfigKeysMarkdown().c_str(), stdout);
    return kExitOk;
  }
  if (format == "json") {
    nlohmann::ordered_json keys = nlohmann::ordered_json::array();
    for (const ConfigKeyInfo& k : ConfigKeys()) {
      keys.push_back({{"key", k.key},
                      {"type", k.type},
                      {"default", k.default_str},
                      {"range", k.range},
                      {"description", k.description}});
    }
    std::printf("%s\n", keys.dump(1).c_str());
    return kExitOk;
  }
  for (const ConfigKeyInfo& k : ConfigKeys()) {
    std::printf("%-32s %s = %s%s\n    %s\n", k.key.c_str(), k.type.c_str(),
                k.default_str.c_str(),
                k.range.empty() ? "" : ("  (" + k.range + ")").c_str(),
                k.description.c_str());
  }
  return kExitOk;
}

}  // namespace

void AddConfigCommand(CLI::App& app, CommandRun* run) {
  CLI::App* config =
      app.add_subcommand("config", "Check job files; list their keys");
  config->require_subcommand(1);
  config->footer(
      "A job file (YAML) describes a loader, an ingestion, or both; see "
      "configs/ and configs/README.md. `shoal ingest --config F`, `shoal "
      "bench --config F` and C++ programs (shoal::LoadJobConfig) read it.");

  auto check = std::make_shared<CheckOptions>();
  CLI::App* cmd = config->add_subcommand(
      "check", "Parse and check job files (exit 1 if any is wrong)");
  cmd->add_option("FILE", check->files, "Job files")->required();
  cmd->add_flag("--print", check->print,
                "Print each file's whole job, defaults included, as YAML");
  cmd->callback([check, run] { *run = [check] { return RunCheck(*check); }; });

  auto format = std::make_shared<std::string>("text");
  CLI::App* keys = config->add_subcommand(
      "keys", "Every key of a job file: type, default, range, meaning");
  keys->add_option("--format", *format, "text, markdown or json")
      ->check(CLI::IsMember({"text", "markdown", "json"}))
      ->capture_default_str();
  keys->callback(
      [format, run] { *run = [format] { return RunKeys(*format); }; });
}

}  // namespace shoal::tools
