// Jobs described as YAML files (configs/*.yaml): a loader (what a training
// program or `shoal bench` reads), an ingestion (`shoal ingest --config`),
// and the bench command's extras, loaded into the library's option structs
// so that a training program and the CLI read one file.
//
// clang-format off
//   SHOAL_ASSIGN_OR_RETURN(JobConfig job, LoadJobConfig("configs/imagefolder-train.yaml"));
//   SHOAL_ASSIGN_OR_RETURN(std::shared_ptr<Dataset> ds,
//       Dataset::Open(job.loader.dataset, {.read_only = true}));
//   SHOAL_ASSIGN_OR_RETURN(LoaderOptions options, ResolveLoaderOptions(job.loader, *ds));
//   SHOAL_ASSIGN_OR_RETURN(auto loader, Loader::Create(ds, options));
// clang-format on
//
// Every key a file may hold is in one table (ConfigKeys()): its type,
// default, range and description. The parser, `shoal --help` (the flags that
// set a key take their help text and checks from it), --print-config and the
// table in configs/README.md all come from there. Parsing is strict: an
// unknown key (with a "did you mean"), a wrong type, a value out of range or
// contradicting another is an error naming the file, line and column, found
// before any work starts. Values given later (command-line flags) go
// through the same checks with SetConfigValue().
//
// Thread-safety: the functions are reentrant; a JobConfig is a plain value.
#ifndef SHOAL_LOADER_CONFIG_H_
#define SHOAL_LOADER_CONFIG_H_

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "format/dataset.h"
#include "loader/image_transform.h"
#include "loader/ingestor.h"
#include "loader/loader.h"
#include "loader/source.h"

namespace shoal {

/// The `loader:` section.
struct LoaderConfig {
  /// The dataset to load (a path or URL).
  std::string dataset;
  /// Everything but `transforms` and `clips`, which ResolveLoaderOptions()
  /// fills from `transform` and `clip` for the dataset's tensors.
  LoaderOptions options;
  /// Applied to every image tensor loaded (stored as JPEG or PNG).
  ImageTransform transform;
  /// Applied to every video tensor loaded.
  VideoClipOptions clip;
  /// Take rank and world size from RANK and WORLD_SIZE (as torchrun sets
  /// them) instead of `options`.
  bool rank_from_env = false;
};

/// The `ingest:` section.
struct IngestConfig {
  /// The dataset to write (a path or URL).
  std::string dataset;
  /// "images", "videos", "idx" or "npy".
  std::string kind = "images";
  std::vector<std::string> paths;
  /// npy: the tensor's name.
  std::string tensor = "arrays";
  /// Empty: the kind's default ("keep" for images, "lz4" for idx and npy).
  std::string compression;
  int quality = 90;
  std::string subsampling = "4:2:0";
  int png_level = 6;
  bool check = true;
  /// Chunk codec per tensor, replacing the source's (IngestOptions).
  std::map<std::string, std::string> tensor_compression;
  /// idx: "mnist", "fashion-mnist" or names; empty: "0".."K-1".
  std::vector<std::string> class_names;
  uint64_t chunk_bytes = kDefaultMaxChunkBytes;
  IngestOptions::Mode mode = IngestOptions::Mode::kCreate;
  bool skip_bad = false;
  uint64_t memory_budget = 256ull << 20;
  /// "adaptive", "N" (every parallel stage) or "stage=N,...".
  std::string workers = "adaptive";
  uint64_t commit_every_rows = 0;
  double commit_every_seconds = 10;
  /// Several writers (IngestOptions::rank, world_size); world_size 0 takes
  /// them from a launcher's environment (LauncherRank), or 1.
  uint32_t rank = 0;
  uint32_t world_size = 0;
};

/// The `bench:` section (shoal bench loader).
struct BenchConfig {
  /// Also time raw TurboJPEG on the same JPEGs and threads.
  bool reference = false;
  uint64_t reference_samples = 5000;
};

struct JobConfig {
  LoaderConfig loader;
  IngestConfig ingest;
  BenchConfig bench;
  /// Which sections the file had.
  bool has_loader = false;
  bool has_ingest = false;
  bool has_bench = false;
};

/// Reads and checks a YAML job file. Errors read "FILE:LINE:COL: KEY: why".
Result<JobConfig> LoadJobConfig(const std::string& path);
/// The same from text; `name` stands for the file in messages.
Result<JobConfig> ParseJobConfig(std::string_view yaml, std::string_view name);

/// Sets the key `key` (dotted, e.g. "loader.batch_size") from its text as it
/// would be written in YAML ("64MiB", "[224, 224]", "true"), with the same
/// checks as a file. Errors name the key; the caller adds where it came from.
Status SetConfigValue(JobConfig& config, std::string_view key,
                      std::string_view value);
/// The key's value in `config` as YAML text ("" for an unknown key).
std::string ConfigValueText(const JobConfig& config, std::string_view key);
/// The checks that involve several keys (rank below world size, ...), run
/// by ParseJobConfig and to be run again after SetConfigValue().
Status CheckJobConfig(const JobConfig& config);

/// The complete configuration (every key of the sections present) as YAML
/// that ParseJobConfig reads back to the same options.
std::string JobConfigToYaml(const JobConfig& config);

/// Rank and world size as a cluster launcher set them in the environment:
/// RANK/WORLD_SIZE (torchrun), SLURM_PROCID/SLURM_NTASKS (srun),
/// OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE (mpirun), the first pair
/// set; nullopt when none is. InvalidArgument for a malformed value or a
/// rank not below the size.
struct LaunchRank {
  uint32_t rank = 0;
  uint32_t world_size = 1;
  std::string source;  // "RANK/WORLD_SIZE", for messages
};
Result<std::optional<LaunchRank>> LauncherRank();

/// The loader's options for `dataset`: `transform` for every image tensor
/// loaded that is stored as JPEG or PNG, `clip` for every video tensor, rank
/// and world size from a launcher's environment (LauncherRank) when asked,
/// or when world_size is 1 and one is set.
Result<LoaderOptions> ResolveLoaderOptions(const LoaderConfig& config,
                                           const Dataset& dataset);
/// The ingestion's source and options (callbacks, stop flag and command are
/// left to the caller).
Result<SourceSpec> ToSourceSpec(const IngestConfig& config);
Result<IngestOptions> ToIngestOptions(const IngestConfig& config);
/// Parses "adaptive", "N" or "stage=N,..." (N in 1..256) into
/// IngestOptions::workers (empty for adaptive).
Result<std::map<std::string, int>> ParseWorkers(std::string_view text);

/// One key of a job file.
struct ConfigKeyInfo {
  std::string key;          // "loader.batch_size"
  std::string type;         // "integer", "size", "one of none|chunk|full"...
  std::string default_str;  // as YAML would write it
  std::string range;        // "1 .. 16777216", "" when any value of the type
  std::string description;
};
/// Every key, in the order files are printed.
std::span<const ConfigKeyInfo> ConfigKeys();
/// The key's entry, or null.
const ConfigKeyInfo* FindConfigKey(std::string_view key);
/// configs/README.md's table of keys (Markdown), from ConfigKeys().
std::string ConfigKeysMarkdown();

}  // namespace shoal

#endif  // SHOAL_LOADER_CONFIG_H_
