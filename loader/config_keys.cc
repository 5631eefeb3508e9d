// The one table of job-file keys (loader/config.h): type, range,
// description, and how each is read and written. Defaults are not written
// here: they are the option structs' own, read from a default JobConfig.
#include "loader/internal/config_keys.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

namespace shoal::internal {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kTiB = uint64_t{1} << 40;

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

// A byte count: a whole number with an optional suffix k, M, G, T (also
// kB/KiB, MB/MiB, ...), all powers of 1024 as in the CLI's flags.
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

std::string CheckWorkers(const std::string& text) {
  auto parsed = ParseWorkers(text);
  return parsed.ok() ? "" : std::string(parsed.status().message());
}

std::vector<ConfigEntry> MakeEntries() {
  using TK = ImageTransform::Kind;
  using Ch = ImageDecodeOptions::Channels;
  using Mode = IngestOptions::Mode;
  std::vector<ConfigEntry> t;
  // ---- loader ----
  t.push_back(Text(
      "loader.dataset", "The dataset to load (a path or URL)",
      [](JobConfig & c) -> auto& { return c.loader.dataset; }));
  t.push_back(TextList(
      "loader.tensors", "Tensors to load (default: every visible tensor)",
      [](JobConfig & c) -> auto& { return c.loader.options.tensors; }));
  t.push_back(Whole<uint64_t>(
      "loader.batch_size", 1, 1 << 24, "Samples per batch",
      [](JobConfig & c) -> auto& { return c.loader.options.batch_size; }));
  t.push_back(Flag(
      "loader.drop_last",
      "Drop the samples that do not fill a whole batch on every rank",
      [](JobConfig & c) -> auto& { return c.loader.options.drop_last; }));
  t.push_back(Whole<uint64_t>(
      "loader.epochs", 1, 1'000'000, "Epochs to run",
      [](JobConfig & c) -> auto& { return c.loader.options.epochs; }));
  t.push_back(Whole<uint64_t>(
      "loader.first_epoch", 0, uint64_t{1} << 32,
      "The epoch to start at (its plan, as if the ones before had run)",
      [](JobConfig & c) -> auto& { return c.loader.options.first_epoch; }));
  t.push_back(Choice<ShuffleMode>(
      "loader.shuffle",
      {{"none", ShuffleMode::kNone},
       {"chunk", ShuffleMode::kChunk},
       {"full", ShuffleMode::kFull}},
      "none (dataset order), chunk (chunk order shuffled, then a shuffle "
      "buffer of samples) or full (a permutation of all samples)",
      [](JobConfig & c) -> auto& { return c.loader.options.shuffle; }));
  t.push_back(Whole<uint64_t>(
      "loader.shuffle_buffer", 0, uint64_t{1} << 32,
      "Shuffle buffer in samples (chunk shuffle); lowered to what the memory "
      "budget holds",
      [](JobConfig & c) -> auto& { return c.loader.options.shuffle_buffer; }));
  t.push_back(Whole<uint64_t>(
      "loader.seed", 0, UINT64_MAX,
      "Seed of the shuffle and of random transforms",
      [](JobConfig & c) -> auto& { return c.loader.options.seed; }));
  t.push_back(Whole<uint32_t>(
      "loader.rank", 0, 65535, "This rank (below world_size)",
      [](JobConfig & c) -> auto& { return c.loader.options.rank; }));
  t.push_back(Whole<uint32_t>(
      "loader.world_size", 1, 65536, "Number of ranks",
      [](JobConfig & c) -> auto& { return c.loader.options.world_size; }));
  t.push_back(Flag(
      "loader.rank_from_env",
      "Take rank and world size from RANK and WORLD_SIZE (as torchrun sets "
      "them)",
      [](JobConfig & c) -> auto& { return c.loader.rank_from_env; }));
  t.push_back(Whole<int>(
      "loader.threads", 0, kMaxPipelineThreads, "Decode threads (0: all cores)",
      [](JobConfig & c) -> auto& { return c.loader.options.threads; }));
  t.push_back(Size(
      "loader.memory_budget", kMiB, kTiB,
      "Bytes of chunks and batches held at once",
      [](JobConfig & c) -> auto& { return c.loader.options.memory_budget; }));
  t.push_back(Whole<int>(
      "loader.prefetch_batches", 0, 4096,
      "Batches prepared ahead of the consumer (0: 2 x threads + 2)", [
      ](JobConfig & c) -> auto& { return c.loader.options.prefetch_batches; }));
  t.push_back(Choice<ErrorPolicy>(
      "loader.on_error",
      {{"fail", ErrorPolicy::kFail}, {"skip", ErrorPolicy::kSkip}},
      "fail: a bad sample ends the stream with its error; skip: it is left "
      "out of its batch and counted",
      [](JobConfig & c) -> auto& { return c.loader.options.on_error; }));
  t.push_back(Choice<TK>(
      "loader.transform.kind",
      {{"decode", TK::kDecode},
       {"resize", TK::kResize},
       {"center_crop", TK::kCenterCrop},
       {"random_resized_crop", TK::kRandomResizedCrop}},
      "What every image tensor becomes: decode (own size), resize (to "
      "size), center_crop (resize_shorter then a centre crop of size), "
      "random_resized_crop (torchvision's, to size)",
      [](JobConfig & c) -> auto& { return c.loader.transform.kind; }));
  t.push_back(Extent(
      "loader.transform.size", 0, 65500,
      "Output size of the images (0 for decode)", [](JobConfig& c) {
        return std::tie(c.loader.transform.height, c.loader.transform.width);
      }));
  t.push_back(Whole<uint32_t>(
      "loader.transform.resize_shorter", 0, 65500,
      "center_crop: the shorter side before the crop (0: just cover size)", [
      ](JobConfig & c) -> auto& { return c.loader.transform.resize_shorter; }));
  t.push_back(Flag(
      "loader.transform.flip", "Flip left-right with probability 1/2",
      [](JobConfig & c) -> auto& { return c.loader.transform.random_flip; }));
  t.push_back(Choice<Ch>(
      "loader.transform.channels",
      {{"rgb", Ch::kRgb}, {"gray", Ch::kGray}, {"default", Ch::kDefault}},
      "rgb (3 channels), gray (1) or default (as the image has: 1 or 3)",
      [](JobConfig & c) -> auto& { return c.loader.transform.channels; }));
  t.push_back(Interval("loader.transform.scale", 1.0,
                       "random_resized_crop: range of the crop's area fraction",
                       [](JobConfig& c) {
                         return std::tie(c.loader.transform.scale_min,
                                         c.loader.transform.scale_max);
                       }));
  t.push_back(Interval(
      "loader.transform.ratio", 100.0,
      "random_resized_crop: range of the crop's aspect ratio (log-uniform)",
      [](JobConfig& c) {
        return std::tie(c.loader.transform.ratio_min,
                        c.loader.transform.ratio_max);
      }));
  t.push_back(Flag(
      "loader.transform.dct_scaling",
      "Let JPEGs decode at 1/2, 1/4 or 1/8 scale when that still covers the "
      "output (false: always full resolution)",
      [](JobConfig & c) -> auto& {
        return c.loader.transform.allow_dct_scaling;
      }));
  t.push_back(Whole<uint32_t>(
      "loader.clip.frames", 1, 4096, "Video tensors: frames per clip",
      [](JobConfig & c) -> auto& { return c.loader.clip.frames; }));
  t.push_back(Whole<uint32_t>(
      "loader.clip.step", 1, 4096, "Video tensors: frame step within a clip",
      [](JobConfig & c) -> auto& { return c.loader.clip.step; }));
  t.push_back(Whole<uint32_t>(
      "loader.clip.clips_per_video", 1, 1024,
      "Video tensors: clips of each video per epoch",
      [](JobConfig & c) -> auto& { return c.loader.clip.clips_per_video; }));
  t.push_back(Choice<VideoClipOptions::Sampling>(
      "loader.clip.sampling",
      {{"random", VideoClipOptions::Sampling::kRandom},
       {"uniform", VideoClipOptions::Sampling::kUniform}},
      "Video tensors: random (seeded) or uniform clip starts",
      [](JobConfig & c) -> auto& { return c.loader.clip.sampling; }));
  t.push_back(
      Extent("loader.clip.size", 0, 16384,
             "Video tensors: resize frames to this (0: the videos' own size)",
             [](JobConfig& c) {
               return std::tie(c.loader.clip.height, c.loader.clip.width);
             }));
  // ---- ingest ----
  t.push_back(Text(
      "ingest.dataset", "The dataset to write (a path or URL)",
      [](JobConfig & c) -> auto& { return c.ingest.dataset; }));
  t.push_back(Choice<std::string>(
      "ingest.source.kind",
      {{"images", "images"},
       {"videos", "videos"},
       {"idx", "idx"},
       {"npy", "npy"}},
      "What is read: a folder of images or videos, IDX files, .npy files",
      [](JobConfig & c) -> auto& { return c.ingest.kind; }));
  t.push_back(TextList(
      "ingest.source.paths",
      "images, videos: the folder; idx: the images file, then optionally "
      "the labels file; npy: one .npy, several, or a folder of them",
      [](JobConfig & c) -> auto& { return c.ingest.paths; }));
  t.push_back(Text(
      "ingest.source.tensor", "npy: the tensor's name",
      [](JobConfig & c) -> auto& { return c.ingest.tensor; }));
  t.push_back(Text(
      "ingest.source.compression",
      "images: keep (the files' own bytes), jpeg, png, or raw[:CODEC] "
      "(decoded pixels, e.g. raw:zstd:3); idx, npy: the chunk codec ('' raw, "
      "lz4, lz4hc:L, zstd:L); empty: keep for images, lz4 otherwise",
      [](JobConfig & c) -> auto& { return c.ingest.compression; }));
  t.back().get = [](const JobConfig& c) {  // what the empty default means
    if (!c.ingest.compression.empty()) return YAML::Node(c.ingest.compression);
    return YAML::Node(c.ingest.kind == "images"   ? "keep"
                      : c.ingest.kind == "videos" ? ""
                                                  : "lz4");
  };
  t.push_back(Whole<int>(
      "ingest.source.quality", 1, 100,
      "images: JPEG quality of converted images",
      [](JobConfig & c) -> auto& { return c.ingest.quality; }));
  t.push_back(Choice<std::string>(
      "ingest.source.subsampling",
      {{"4:4:4", "4:4:4"}, {"4:2:2", "4:2:2"}, {"4:2:0", "4:2:0"}},
      "images: chroma subsampling of converted JPEGs",
      [](JobConfig & c) -> auto& { return c.ingest.subsampling; }));
  t.push_back(Whole<int>(
      "ingest.source.png_level", 0, 9, "images: zlib level of converted PNGs",
      [](JobConfig & c) -> auto& { return c.ingest.png_level; }));
  t.push_back(Flag(
      "ingest.source.check",
      "images: decode every kept file once to check it (false: read only "
      "its header)",
      [](JobConfig & c) -> auto& { return c.ingest.check; }));
  t.push_back(TextList(
      "ingest.source.class_names",
      "idx: names of the label classes: [mnist], [fashion-mnist] or a list "
      "(default '0'..'K-1')",
      [](JobConfig & c) -> auto& { return c.ingest.class_names; }));
  t.push_back(Size(
      "ingest.chunk_bytes", 4 << 10, uint64_t{2} << 30,
      "Target size of a chunk",
      [](JobConfig & c) -> auto& { return c.ingest.chunk_bytes; }));
  t.push_back(Choice<Mode>(
      "ingest.mode",
      {{"create", Mode::kCreate},
       {"overwrite", Mode::kOverwrite},
       {"append", Mode::kAppend},
       {"resume", Mode::kResume}},
      "create (refuse if there is a dataset), overwrite (replace it, "
      "atomically at the first commit), append (same tensors) or resume (an "
      "interrupted ingestion of the same input)",
      [](JobConfig & c) -> auto& { return c.ingest.mode; }));
  t.push_back(Flag(
      "ingest.skip_bad",
      "Skip inputs that cannot be read or decoded (named and counted) "
      "instead of stopping at the first",
      [](JobConfig & c) -> auto& { return c.ingest.skip_bad; }));
  t.push_back(Size(
      "ingest.memory_budget", kMiB, kTiB,
      "Bytes the ingestion holds at once (files read ahead, samples, chunks "
      "in flight); one larger input still goes through, alone",
      [](JobConfig & c) -> auto& { return c.ingest.memory_budget; }));
  t.push_back(Text(
      "ingest.workers",
      "adaptive (the controller sets the worker counts), N for every "
      "parallel stage, or stage=N,... (read, prepare, compress, write)",
      [](JobConfig & c) -> auto& { return c.ingest.workers; }, CheckWorkers));
  t.push_back(Whole<uint64_t>(
      "ingest.commit_every", 0, uint64_t{1} << 48,
      "Commit every N samples (0: by time only)",
      [](JobConfig & c) -> auto& { return c.ingest.commit_every_rows; }));
  t.push_back(Number(
      "ingest.commit_seconds", 0, 1e6,
      "Commit every so many seconds (0: by count only)",
      [](JobConfig & c) -> auto& { return c.ingest.commit_every_seconds; }));
  // ---- bench ----
  t.push_back(Flag(
      "bench.reference",
      "Also decode the same JPEGs with raw TurboJPEG on as many threads and "
      "print loader / reference",
      [](JobConfig & c) -> auto& { return c.bench.reference; }));
  t.push_back(Whole<uint64_t>(
      "bench.reference_samples", 1, uint64_t{1} << 32,
      "Images the reference decodes (the first of the first epoch)",
      [](JobConfig & c) -> auto& { return c.bench.reference_samples; }));
  return t;
}

}  // namespace

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

const std::vector<ConfigEntry>& ConfigEntries() {
  static const std::vector<ConfigEntry> entries = [] {
    std::vector<ConfigEntry> t = MakeEntries();
    const JobConfig defaults;
    for (ConfigEntry& e : t) {
      e.info.default_str = ConfigNodeText(e.get(defaults));
    }
    return t;
  }();
  return entries;
}

const ConfigEntry* FindConfigEntry(std::string_view key) {
  for (const ConfigEntry& e : ConfigEntries()) {
    if (e.info.key == key) return &e;
  }
  return nullptr;
}

}  // namespace shoal::internal
