// `shoal info`: what a dataset holds, as a table for people or one JSON
// object for scripts. Reads only metadata (statistics are kept there), so it
// is instant for any dataset size.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tools/commands.h"

namespace shoal::tools {
namespace {

struct InfoOptions {
  std::string dataset;
  bool json = false;
  bool hidden = false;
};

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

nlohmann::ordered_json TensorJson(const Tensor& t) {
  const TensorStats stats = t.stats();
  const TensorSpec& spec = t.spec();
  nlohmann::ordered_json out = {
      {"name", t.name()},
      {"hidden", t.hidden()},
      {"htype", HTypeName(t.htype())},
      {"dtype", DTypeName(t.dtype())},
      {"rank", spec.rank},
      {"sample_compression", spec.sample_compression},
      {"chunk_compression", spec.chunk_compression},
      {"max_chunk_bytes", spec.max_chunk_bytes},
      {"length", stats.num_samples},
      {"min_shape", std::vector<uint64_t>(stats.min_shape.dims().begin(),
                                          stats.min_shape.dims().end())},
      {"max_shape", std::vector<uint64_t>(stats.max_shape.dims().begin(),
                                          stats.max_shape.dims().end())},
      {"chunks", stats.num_chunks},
      {"stored_bytes", stats.stored_bytes},
      {"raw_bytes", stats.raw_bytes},
      {"ratio", stats.stored_bytes == 0 ? 0.0
                                        : static_cast<double>(stats.raw_bytes) /
                                              stats.stored_bytes},
  };
  if (t.htype() == HType::kClassLabel) out["class_names"] = spec.class_names;
  return out;
}

// A text table whose columns are as wide as their widest cell.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t c = 0; c < row.size(); ++c) {
      widths[c] = std::max(widths[c], row[c].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      std::string cell = row[c];
      if (c + 1 < row.size()) cell.resize(widths[c] + 2, ' ');
      line += cell;
    }
    std::printf("%s\n", line.c_str());
  }
}

std::vector<std::string> TensorRow(const Tensor& t) {
  const TensorStats stats = t.stats();
  const TensorSpec& spec = t.spec();
  const bool empty = stats.num_samples == 0;
  return {t.name(),
          std::string(HTypeName(t.htype())),
          std::string(DTypeName(t.dtype())),
          OrDash(spec.sample_compression),
          OrDash(spec.chunk_compression),
          std::to_string(stats.num_samples),
          empty ? "-" : stats.min_shape.ToString(),
          empty ? "-" : stats.max_shape.ToString(),
          std::to_string(stats.num_chunks),
          FormatBytes(stats.stored_bytes),
          FormatBytes(stats.raw_bytes),
          FormatRatio(stats.raw_bytes, stats.stored_bytes),
          t.htype() == HType::kClassLabel
              ? std::to_string(spec.class_names.size())
              : "-"};
}

Result<int> RunInfo(const InfoOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(auto dataset, OpenForReading(options.dataset));
  const std::vector<Tensor*> tensors = dataset->tensors(options.hidden);
  if (options.json) {
    nlohmann::ordered_json out = {{"url", dataset->url()},
                                  {"commit", dataset->commit()},
                                  {"len", dataset->len()},
                                  {"max_len", dataset->max_len()},
                                  {"tensors", nlohmann::ordered_json::array()}};
    for (const Tensor* t : tensors) out["tensors"].push_back(TensorJson(*t));
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  std::printf("dataset: %s\ncommit:  %llu\nlen:     %llu (max_len %llu)\n\n",
              dataset->url().c_str(),
              static_cast<unsigned long long>(dataset->commit()),
              static_cast<unsigned long long>(dataset->len()),
              static_cast<unsigned long long>(dataset->max_len()));
  if (tensors.empty()) {
    std::printf("no tensors\n");
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"tensor", "htype", "dtype", "sample_codec", "chunk_codec", "length",
       "min_shape", "max_shape", "chunks", "stored", "raw", "ratio",
       "classes"}};
  for (const Tensor* t : tensors) rows.push_back(TensorRow(*t));
  PrintTable(rows);
  return kExitOk;
}

}  // namespace

void AddInfoCommand(CLI::App& app, CommandRun* run) {
  auto options = std::make_shared<InfoOptions>();
  CLI::App* cmd =
      app.add_subcommand("info", "Describe a dataset and its tensors");
  cmd->footer(
      "Prints the dataset's URL, commit, len and max_len, then per tensor: "
      "htype, dtype, sample and chunk compression, length, min and max "
      "sample shape, chunks, stored and raw bytes, ratio (raw/stored) and "
      "the number of class names (class_label tensors).");
  cmd->add_option("DS", options->dataset, "The dataset (path or URL)")
      ->required();
  cmd->add_flag("--json", options->json,
                "Print one JSON object instead of a table (class_label "
                "tensors list their class names)");
  cmd->add_flag("--hidden", options->hidden,
                "Also list the hidden tensors (_shape/..., _info/...)");
  cmd->callback(
      [options, run] { *run = [options] { return RunInfo(*options); }; });
}

}  // namespace shoal::tools
