// `shoal info`: what a dataset holds, as a table for people or one JSON
// object for scripts. Reads only metadata (statistics are kept there), so it
// is instant for any dataset size.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loader/video_sample.h"
#include "tools/commands.h"

namespace shoal::tools {
namespace {

struct InfoOptions {
  std::string dataset;
  bool json = false;
  bool hidden = false;
  uint64_t videos = 20;  // per video tensor, how many videos to describe
};

// Per video of a video tensor (from the frame index in its info; no video
// bytes are read): the facts `shoal info` shows.
struct VideoFacts {
  uint64_t index = 0;
  std::string path;
  VideoProbe probe;
};

Result<std::vector<VideoFacts>> ReadVideoFacts(const Tensor& t,
                                               uint64_t limit) {
  std::vector<VideoFacts> out;
  for (uint64_t i = 0; i < std::min(limit, t.size()); ++i) {
    SHOAL_ASSIGN_OR_RETURN(std::string info, t.ReadInfo(i));
    SHOAL_ASSIGN_OR_RETURN(VideoProbe probe,
                           VideoProbeFromInfo(info, VideoSampleName(t, i)));
    const auto json = nlohmann::json::parse(info, nullptr, false);
    std::string path;
    if (json.is_object() && json.contains("path") && json["path"].is_string()) {
      path = json["path"].get<std::string>();
    }
    out.push_back({i, std::move(path), std::move(probe)});
  }
  return out;
}

bool IsVideoTensor(const Tensor& t) {
  return t.htype() == HType::kVideo && t.spec().sample_compression == "mp4";
}

// Mean frames from one keyframe to the next ("-" with one keyframe).
std::string KeyframeSpacing(const FrameIndex& index) {
  if (index.keyframes.size() < 2) return "one keyframe";
  const double mean =
      static_cast<double>(index.keyframes.back() - index.keyframes.front()) /
      static_cast<double>(index.keyframes.size() - 1);
  char text[64];
  std::snprintf(text, sizeof(text), "%.1f (max %llu)", mean,
                static_cast<unsigned long long>(index.MaxKeyframeInterval()));
  return text;
}

nlohmann::ordered_json VideoJson(const VideoFacts& v) {
  const VideoInfo& i = v.probe.info;
  return {{"index", v.index},
          {"path", v.path},
          {"container", i.container},
          {"codec", i.codec},
          {"width", i.width},
          {"height", i.height},
          {"rotation", i.rotation},
          {"fps", i.frame_rate.value()},
          {"frames", i.frame_count},
          {"duration", i.duration_seconds},
          {"keyframes", v.probe.index.keyframes.size()},
          {"max_keyframe_interval", v.probe.index.MaxKeyframeInterval()},
          {"pixel_format", i.pixel_format},
          {"color_range", i.color_range}};
}

void PrintVideoTable(const Tensor& t, const std::vector<VideoFacts>& videos);

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
  if (spec.planar) out["planar"] = true;
  // The tensor's own info (where its samples came from), a JSON object.
  if (!spec.info.empty()) {
    auto info = nlohmann::ordered_json::parse(spec.info, nullptr, false);
    if (!info.is_discarded()) out["info"] = std::move(info);
  }
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
    for (const Tensor* t : tensors) {
      out["tensors"].push_back(TensorJson(*t));
      if (!IsVideoTensor(*t)) continue;
      SHOAL_ASSIGN_OR_RETURN(auto videos, ReadVideoFacts(*t, options.videos));
      auto& list = out["tensors"].back()["videos"] =
          nlohmann::ordered_json::array();
      for (const VideoFacts& v : videos) list.push_back(VideoJson(v));
    }
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
  // Each tensor's own info: where its samples came from.
  bool info_header = false;
  for (const Tensor* t : tensors) {
    if (t->spec().info.empty()) continue;
    if (!info_header) std::printf("\ntensor info:\n");
    info_header = true;
    std::printf("  %s: %s\n", t->name().c_str(), t->spec().info.c_str());
  }
  for (const Tensor* t : tensors) {
    if (!IsVideoTensor(*t) || options.videos == 0) continue;
    SHOAL_ASSIGN_OR_RETURN(auto videos, ReadVideoFacts(*t, options.videos));
    PrintVideoTable(*t, videos);
  }
  return kExitOk;
}

void PrintVideoTable(const Tensor& t, const std::vector<VideoFacts>& videos) {
  std::printf("\n%s: videos\n", t.name().c_str());
  std::vector<std::vector<std::string>> rows = {
      {"index", "path", "container", "codec", "size", "rotation", "fps",
       "frames", "seconds", "keyframe_spacing"}};
  for (const VideoFacts& v : videos) {
    const VideoInfo& i = v.probe.info;
    char fps[32], seconds[32];
    std::snprintf(fps, sizeof(fps), "%.3f", i.frame_rate.value());
    std::snprintf(seconds, sizeof(seconds), "%.2f", i.duration_seconds);
    rows.push_back(
        {std::to_string(v.index), OrDash(v.path), i.container, i.codec,
         std::to_string(i.width) + "x" + std::to_string(i.height),
         std::to_string(i.rotation), fps, std::to_string(i.frame_count),
         seconds, KeyframeSpacing(v.probe.index)});
  }
  PrintTable(rows);
  if (t.size() > videos.size()) {
    std::printf("... and %llu more (--videos N shows more)\n",
                static_cast<unsigned long long>(t.size() - videos.size()));
  }
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
      "the number of class names (class_label tensors), and each tensor's "
      "own info (where its samples came from, e.g. the IDX file). Video "
      "tensors then "
      "list their videos: container, codec, coded size, display rotation, "
      "frame rate, frame count, duration and keyframe spacing in frames "
      "(mean and max), from the frame index kept at ingestion.");
  cmd->add_option("DS", options->dataset, "The dataset (path or URL)")
      ->required();
  cmd->add_flag("--json", options->json,
                "Print one JSON object instead of a table (class_label "
                "tensors list their class names; a tensor's own info is "
                "under \"info\")");
  cmd->add_option("--videos", options->videos,
                  "Per video tensor, describe the first N videos (codec, "
                  "size, fps, frames, keyframe spacing); 0 for none")
      ->capture_default_str();
  cmd->add_flag("--hidden", options->hidden,
                "Also list the hidden tensors (_shape/..., _info/...)");
  cmd->callback(
      [options, run] { *run = [options] { return RunInfo(*options); }; });
}

}  // namespace shoal::tools
