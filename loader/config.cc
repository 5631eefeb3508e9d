// Reading, checking and writing job files (loader/config.h); the keys
// themselves are in config_keys.cc.
#include "loader/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "codecs/byte_codec.h"
#include "loader/internal/config_keys.h"

namespace shoal {
namespace {

using internal::ConfigEntries;
using internal::ConfigEntry;
using internal::EditDistance;
using internal::FindConfigEntry;

// The sections: every dotted prefix of a key.
const std::set<std::string>& Sections() {
  static const std::set<std::string> sections = [] {
    std::set<std::string> s;
    for (const ConfigEntry& e : ConfigEntries()) {
      const std::string& key = e.info.key;
      for (size_t dot = key.find('.'); dot != std::string::npos;
           dot = key.find('.', dot + 1)) {
        s.insert(key.substr(0, dot));
      }
    }
    return s;
  }();
  return sections;
}

std::string Parent(std::string_view path) {
  const size_t dot = path.rfind('.');
  return dot == std::string_view::npos ? "" : std::string(path.substr(0, dot));
}

std::string Last(std::string_view path) {
  const size_t dot = path.rfind('.');
  return std::string(dot == std::string_view::npos ? path
                                                   : path.substr(dot + 1));
}

// " (did you mean 'loader.batch_size'?)" or "".
std::string DidYouMean(const std::string& path) {
  std::vector<std::string> names(Sections().begin(), Sections().end());
  for (const ConfigEntry& e : ConfigEntries()) names.push_back(e.info.key);
  const std::string parent = Parent(path);
  const std::string last = Last(path);
  std::string best;
  size_t best_distance = SIZE_MAX;
  // A sibling spelled alike or starting alike...
  for (const std::string& name : names) {
    if (Parent(name) != parent) continue;
    const std::string other = Last(name);
    size_t d = EditDistance(last, other);
    if (other.starts_with(last) || last.starts_with(other))
      d = std::min(d, 1ul);
    if (d < best_distance && d <= std::max<size_t>(2, last.size() / 3)) {
      best = name;
      best_distance = d;
    }
  }
  // ...or the same name in another section.
  if (best.empty()) {
    for (const std::string& name : names) {
      if (Last(name) == last) {
        best = name;
        break;
      }
    }
  }
  std::string out;
  if (!best.empty()) out = " (did you mean '" + best + "'?)";
  if (parent.empty()) {
    out += "; a job file has the sections loader, ingest and bench";
  }
  return out;
}

std::string Where(std::string_view name, const YAML::Mark& mark) {
  std::string out(name);
  if (!mark.is_null()) {
    out += ":" + std::to_string(mark.line + 1) + ":" +
           std::to_string(mark.column + 1);
  }
  return out;
}

struct Parse {
  std::string name;
  JobConfig config;
  std::map<std::string, YAML::Mark> marks;
};

Status Walk(const YAML::Node& map, const std::string& prefix, Parse& p) {
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key = it->first;  // handles: it-> is a temporary
    const YAML::Node value = it->second;
    if (!key.IsScalar()) {
      return InvalidArgument(Where(p.name, key.Mark()) +
                             ": a key must be plain text");
    }
    const std::string path =
        prefix.empty() ? key.Scalar() : prefix + "." + key.Scalar();
    if (auto seen = p.marks.find(path); seen != p.marks.end()) {
      return InvalidArgument(Where(p.name, key.Mark()) + ": " + path +
                             ": given twice (first at line " +
                             std::to_string(seen->second.line + 1) + ")");
    }
    p.marks[path] = key.Mark();
    const YAML::Mark at = value.Mark().is_null() ? key.Mark() : value.Mark();
    if (Sections().count(path)) {
      if (path == "loader") p.config.has_loader = true;
      if (path == "ingest") p.config.has_ingest = true;
      if (path == "bench") p.config.has_bench = true;
      if (value.IsNull()) continue;
      if (!value.IsMap()) {
        return InvalidArgument(Where(p.name, at) + ": " + path +
                               ": expected a mapping of its keys");
      }
      SHOAL_RETURN_IF_ERROR(Walk(value, path, p));
    } else if (const ConfigEntry* entry = FindConfigEntry(path)) {
      Status s = entry->set(p.config, value);
      if (!s.ok()) {
        return InvalidArgument(Where(p.name, at) + ": " + path + ": " +
                               std::string(s.message()));
      }
    } else {
      return InvalidArgument(Where(p.name, key.Mark()) + ": unknown key '" +
                             path + "'" + DidYouMean(path));
    }
  }
  return Status::OK();
}

// The mark of the key a check's message starts with ("loader.rank: ..."),
// or of its closest section in the file.
YAML::Mark MarkOf(const Parse& p, std::string_view message) {
  std::string key(message.substr(0, message.find(':')));
  while (!key.empty()) {
    if (auto it = p.marks.find(key); it != p.marks.end()) return it->second;
    key = Parent(key);
  }
  return YAML::Mark::null_mark();
}

bool IsImageCompression(std::string_view c) {
  return c == "keep" || c == "jpeg" || c == "png" || c == "raw" ||
         c.starts_with("raw:");
}

Result<uint64_t> EnvNumber(const char* name, const char* text) {
  uint64_t value = 0;
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, value);
  if (ec != std::errc() || ptr != end || value > 65536) {
    return InvalidArgument(std::string(name) + "='" + text +
                           "' is not a rank or size");
  }
  return value;
}

}  // namespace

Status CheckJobConfig(const JobConfig& c) {
  const LoaderConfig& l = c.loader;
  if (!l.rank_from_env && l.options.rank >= l.options.world_size) {
    return InvalidArgument("loader.rank: " + std::to_string(l.options.rank) +
                           " is not below loader.world_size (" +
                           std::to_string(l.options.world_size) + ")");
  }
  const ImageTransform& t = l.transform;
  const bool sized = t.height != 0 || t.width != 0;
  if (t.kind == ImageTransform::Kind::kDecode && sized) {
    return InvalidArgument(
        "loader.transform.size: decode keeps each image's own size, so size "
        "must be 0 (for a fixed size use resize, center_crop, "
        "random_resized_crop or random_crop)");
  }
  if (t.kind != ImageTransform::Kind::kDecode && (!t.height || !t.width)) {
    return InvalidArgument(
        "loader.transform.size: " +
        FindConfigEntry("loader.transform.kind")->get(c).Scalar() +
        " needs a size");
  }
  if (Status s = ValidateImageTransform(t); !s.ok()) {
    return InvalidArgument("loader.transform: " + std::string(s.message()));
  }
  if ((l.clip.height == 0) != (l.clip.width == 0)) {
    return InvalidArgument("loader.clip.size: both sides or neither");
  }
  const IngestConfig& i = c.ingest;
  if (!i.compression.empty()) {
    if (i.kind == "images" && !IsImageCompression(i.compression)) {
      return InvalidArgument(
          "ingest.source.compression: images take keep, "
          "jpeg, png or raw[:CODEC], not '" +
          i.compression + "'");
    }
    std::string codec = i.compression;
    if (i.kind == "images") {
      codec = codec.starts_with("raw:") ? codec.substr(4) : "";
    } else if (codec == "raw") {
      codec = "";
    }
    if (i.kind == "videos") {
      return InvalidArgument(
          "ingest.source.compression: videos are stored as they came");
    }
    if (!codec.empty()) {
      if (auto made = MakeByteCodec(codec); !made.ok()) {
        return InvalidArgument("ingest.source.compression: " +
                               std::string(made.status().message()));
      }
    }
  }
  for (const auto& [tensor, codec] : i.tensor_compression) {
    if (codec.empty() || codec == "raw") continue;
    if (auto made = MakeByteCodec(codec); !made.ok()) {
      return InvalidArgument("ingest.tensor_compression: " + tensor + ": " +
                             std::string(made.status().message()));
    }
  }
  return Status::OK();
}

Result<JobConfig> ParseJobConfig(std::string_view yaml, std::string_view name) {
  Parse p;
  p.name = std::string(name);
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    if (!root.IsDefined() || root.IsNull()) {
      return InvalidArgument(p.name +
                             ": empty; a job file has the sections loader, "
                             "ingest and bench");
    }
    if (!root.IsMap()) {
      return InvalidArgument(Where(p.name, root.Mark()) +
                             ": expected the sections loader, ingest or bench");
    }
    SHOAL_RETURN_IF_ERROR(Walk(root, "", p));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(Where(p.name, e.mark) + ": " + e.msg);
  }
  if (Status s = CheckJobConfig(p.config); !s.ok()) {
    return InvalidArgument(Where(p.name, MarkOf(p, s.message())) + ": " +
                           std::string(s.message()));
  }
  return std::move(p.config);
}

Result<JobConfig> LoadJobConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoStatus("read config " + path, errno);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return ErrnoStatus("read config " + path, errno);
  return ParseJobConfig(text.str(), path);
}

Status SetConfigValue(JobConfig& config, std::string_view key,
                      std::string_view value) {
  const ConfigEntry* entry = FindConfigEntry(key);
  if (entry == nullptr) {
    return InvalidArgument("unknown key '" + std::string(key) + "'" +
                           DidYouMean(std::string(key)));
  }
  try {
    // Empty text is an empty value (not YAML's null) for text keys.
    const YAML::Node node =
        value.empty() ? YAML::Node("") : YAML::Load(std::string(value));
    Status s = entry->set(config, node);
    if (!s.ok()) {
      return InvalidArgument(std::string(key) + ": " +
                             std::string(s.message()));
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument(std::string(key) + ": " + e.msg);
  }
  if (key.starts_with("loader.")) config.has_loader = true;
  if (key.starts_with("ingest.")) config.has_ingest = true;
  if (key.starts_with("bench.")) config.has_bench = true;
  return Status::OK();
}

std::string ConfigValueText(const JobConfig& config, std::string_view key) {
  const ConfigEntry* entry = FindConfigEntry(key);
  return entry == nullptr ? "" : internal::ConfigNodeText(entry->get(config));
}

std::string JobConfigToYaml(const JobConfig& config) {
  // The table keeps each section's keys together, so one pass opens and
  // closes the nested mappings.
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::vector<std::string> open;
  for (const ConfigEntry& e : ConfigEntries()) {
    const std::string& key = e.info.key;
    const std::string section = key.substr(0, key.find('.'));
    if ((section == "loader" && !config.has_loader) ||
        (section == "ingest" && !config.has_ingest) ||
        (section == "bench" && !config.has_bench)) {
      continue;
    }
    std::vector<std::string> parts;
    for (size_t begin = 0;;) {
      const size_t dot = key.find('.', begin);
      parts.push_back(key.substr(begin, dot - begin));
      if (dot == std::string::npos) break;
      begin = dot + 1;
    }
    size_t common = 0;
    while (common < open.size() && common + 1 < parts.size() &&
           open[common] == parts[common]) {
      ++common;
    }
    for (; open.size() > common; open.pop_back()) out << YAML::EndMap;
    for (; open.size() + 1 < parts.size(); open.push_back(parts[open.size()])) {
      out << YAML::Key << parts[open.size()] << YAML::Value << YAML::BeginMap;
    }
    out << YAML::Key << parts.back() << YAML::Value << e.get(config);
  }
  for (; !open.empty(); open.pop_back()) out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

Result<std::optional<LaunchRank>> LauncherRank() {
  static constexpr std::pair<const char*, const char*> kPairs[] = {
      {"RANK", "WORLD_SIZE"},
      {"SLURM_PROCID", "SLURM_NTASKS"},
      {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}};
  for (const auto& [rank_name, size_name] : kPairs) {
    const char* rank_text = std::getenv(rank_name);
    const char* size_text = std::getenv(size_name);
    if (rank_text == nullptr || size_text == nullptr) continue;
    SHOAL_ASSIGN_OR_RETURN(uint64_t rank, EnvNumber(rank_name, rank_text));
    SHOAL_ASSIGN_OR_RETURN(uint64_t size, EnvNumber(size_name, size_text));
    if (size == 0 || rank >= size) {
      return InvalidArgument(std::string(rank_name) + "=" +
                             std::to_string(rank) + " is not below " +
                             size_name + "=" + std::to_string(size));
    }
    return std::optional<LaunchRank>(
        LaunchRank{static_cast<uint32_t>(rank), static_cast<uint32_t>(size),
                   std::string(rank_name) + "/" + size_name});
  }
  return std::optional<LaunchRank>();
}

Result<LoaderOptions> ResolveLoaderOptions(const LoaderConfig& config,
                                           const Dataset& dataset) {
  LoaderOptions options = config.options;
  if (config.rank_from_env || options.world_size == 1) {
    auto launched = LauncherRank();
    if (!launched.ok()) {
      return launched.status().WithContext("loader rank from the environment");
    }
    if (*launched) {
      options.rank = (*launched)->rank;
      options.world_size = (*launched)->world_size;
    } else if (config.rank_from_env) {
      return InvalidArgument(
          "loader.rank_from_env: no launcher's rank in the environment "
          "(RANK/WORLD_SIZE, SLURM_PROCID/SLURM_NTASKS or "
          "OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE)");
    }
  }
  for (const Tensor* t : dataset.tensors()) {
    const bool chosen =
        options.tensors.empty() ||
        std::find(options.tensors.begin(), options.tensors.end(), t->name()) !=
            options.tensors.end();
    if (!chosen) continue;
    // Pixels are taken as stored unless a transform changes their size.
    const bool pixels = t->spec().sample_compression.empty();
    if (t->htype() == HType::kImage &&
        (!pixels || config.transform.kind != ImageTransform::Kind::kDecode)) {
      options.transforms[t->name()] = config.transform;
    }
    if (t->htype() == HType::kVideo && t->spec().sample_compression == "mp4") {
      options.clips[t->name()] = config.clip;
    }
  }
  return options;
}

Result<std::map<std::string, int>> ParseWorkers(std::string_view text) {
  std::map<std::string, int> workers;
  if (text == "adaptive") return workers;
  const std::string whole(text);
  auto bad = [&] {
    return InvalidArgument("'" + whole +
                           "': want adaptive, N or stage=N,... (stages read, "
                           "prepare, compress, write) with N in 1..256");
  };
  size_t start = 0;
  while (start <= whole.size()) {
    size_t end = std::min(whole.find(',', start), whole.size());
    const std::string part = whole.substr(start, end - start);
    const size_t eq = part.find('=');
    const std::string stage =
        eq == std::string::npos ? "*" : part.substr(0, eq);
    const std::string count =
        eq == std::string::npos ? part : part.substr(eq + 1);
    int n = 0;
    auto [ptr, ec] =
        std::from_chars(count.data(), count.data() + count.size(), n);
    if (count.empty() || ec != std::errc() ||
        ptr != count.data() + count.size() || n < 1 || n > 256) {
      return bad();
    }
    if (stage != "*" && stage != "read" && stage != "prepare" &&
        stage != "compress" && stage != "write") {
      return InvalidArgument("'" + whole + "': no parallel stage '" + stage +
                             "' (stages: read, prepare, compress, write)");
    }
    workers[stage] = n;
    start = end + 1;
  }
  return workers;
}

Result<SourceSpec> ToSourceSpec(const IngestConfig& c) {
  SourceSpec s;
  s.kind = c.kind;
  s.paths = c.paths;
  s.tensor = c.tensor;
  s.images.compression = c.compression.empty() ? "keep" : c.compression;
  s.images.quality = c.quality;
  s.images.subsampling = c.subsampling;
  s.images.png_level = c.png_level;
  s.images.check = c.check;
  s.images.max_chunk_bytes = c.chunk_bytes;
  s.videos.max_chunk_bytes = c.chunk_bytes;
  s.arrays.compression = c.compression.empty()    ? "lz4"
                         : c.compression == "raw" ? ""
                                                  : c.compression;
  s.arrays.max_chunk_bytes = c.chunk_bytes;
  if (c.class_names.size() == 1 && c.class_names[0] == "mnist") {
    for (int k = 0; k < 10; ++k)
      s.arrays.class_names.push_back(std::to_string(k));
  } else if (c.class_names.size() == 1 && c.class_names[0] == "fashion-mnist") {
    s.arrays.class_names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                            "Coat",        "Sandal",    "Shirt",    "Sneaker",
                            "Bag",         "Ankle boot"};
  } else {
    s.arrays.class_names = c.class_names;
  }
  if (s.paths.empty()) {
    return InvalidArgument(
        "ingest.source.paths: nothing to ingest (give the "
        "input folder or files)");
  }
  return s;
}

Result<IngestOptions> ToIngestOptions(const IngestConfig& c) {
  IngestOptions o;
  o.mode = c.mode;
  o.skip_bad = c.skip_bad;
  o.memory_budget = c.memory_budget;
  auto workers = ParseWorkers(c.workers);
  if (!workers.ok()) {
    return InvalidArgument("ingest.workers: " +
                           std::string(workers.status().message()));
  }
  o.workers = std::move(*workers);
  for (const auto& [tensor, codec] : c.tensor_compression) {
    o.chunk_compression[tensor] = codec == "raw" ? "" : codec;
  }
  o.commit_every_rows = c.commit_every_rows;
  o.commit_every_seconds = c.commit_every_seconds;
  o.rank = c.rank;
  o.world_size = c.world_size;
  if (c.world_size == 0) {
    auto launched = LauncherRank();
    if (!launched.ok()) {
      return launched.status().WithContext("ingest rank from the environment");
    }
    o.rank = *launched ? (*launched)->rank : 0;
    o.world_size = *launched ? (*launched)->world_size : 1;
    if (!*launched && c.rank != 0) {
      return InvalidArgument("ingest.rank " + std::to_string(c.rank) +
                             " needs ingest.world_size (--world-size)");
    }
  } else if (c.rank >= c.world_size) {
    return InvalidArgument("ingest.rank: " + std::to_string(c.rank) +
                           " is not below ingest.world_size (" +
                           std::to_string(c.world_size) + ")");
  }
  return o;
}

std::span<const ConfigKeyInfo> ConfigKeys() {
  static const std::vector<ConfigKeyInfo> keys = [] {
    std::vector<ConfigKeyInfo> out;
    for (const ConfigEntry& e : ConfigEntries()) out.push_back(e.info);
    return out;
  }();
  return keys;
}

const ConfigKeyInfo* FindConfigKey(std::string_view key) {
  const ConfigEntry* e = FindConfigEntry(key);
  return e == nullptr ? nullptr : &e->info;
}

std::string ConfigKeysMarkdown() {
  std::string out =
      "| key | type | default | range | what it does |\n"
      "|---|---|---|---|---|\n";
  auto cell = [](std::string text) {
    std::string escaped;
    for (char ch : text)
      escaped += ch == '|' ? std::string("\\|") : std::string(1, ch);
    return escaped;
  };
  for (const ConfigKeyInfo& k : ConfigKeys()) {
    out += "| `" + k.key + "` | " + cell(k.type) + " | `" +
           cell(k.default_str) + "` | " + cell(k.range) + " | " +
           cell(k.description) + " |\n";
  }
  return out;
}

}  // namespace shoal
