// `shoal ingest`: creates a dataset from files of another format: the IDX
// files of the MNIST family (`shoal ingest idx`, here) and folders of images
// (`shoal ingest images`, ingest_images.cc); each source format is one
// subcommand of `ingest`.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "codecs/byte_codec.h"
#include "tools/commands.h"
#include "tools/ingest_run.h"

namespace shoal::tools {
namespace {

struct IngestIdxOptions {
  // IMAGES [LABELS] DS, as given.
  std::vector<std::string> paths;
  std::string compression = "lz4";
  std::optional<int> level;
  std::string class_names;
  SourceSpec source = [] {
    SourceSpec s;
    s.kind = "idx";
    return s;
  }();
  IngestFlags flags;

  const std::string& images() const { return paths.front(); }
  std::optional<std::string> labels() const {
    if (paths.size() < 3) return std::nullopt;
    return paths[1];
  }
  const std::string& dataset() const { return paths.back(); }
  // The chunk codec spec: "" for raw, "zstd:5" with a level.
  std::string codec_spec() const {
    if (level) return compression + ":" + std::to_string(*level);
    return compression == "raw" ? "" : compression;
  }
};

const std::vector<std::string>& MnistClassNames() {
  static const std::vector<std::string> names = {"0", "1", "2", "3", "4",
                                                 "5", "6", "7", "8", "9"};
  return names;
}

const std::vector<std::string>& FashionMnistClassNames() {
  static const std::vector<std::string> names = {
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

// --class-names: a preset name or a comma-separated list; empty means none
// given. Throws CLI::ValidationError for an empty name in the list.
std::vector<std::string> ParseClassNames(const std::string& value) {
  if (value.empty()) return {};
  if (value == "mnist") return MnistClassNames();
  if (value == "fashion-mnist") return FashionMnistClassNames();
  std::vector<std::string> names;
  size_t begin = 0;
  while (true) {
    const size_t end = std::min(value.find(',', begin), value.size());
    names.push_back(value.substr(begin, end - begin));
    if (names.back().empty()) {
      throw CLI::ValidationError("--class-names",
                                 "empty class name in '" + value + "'");
    }
    if (end == value.size()) return names;
    begin = end + 1;
  }
}

// Checks option combinations CLI11 cannot express; a usage error otherwise.
void CheckIngestIdxOptions(const IngestIdxOptions& options) {
  if (!options.labels() && !options.class_names.empty()) {
    throw CLI::ValidationError("--class-names",
                               "class names need a LABELS_IDX file");
  }
  ParseClassNames(options.class_names);
  // The codec registry knows which levels each codec takes.
  const std::string spec = options.codec_spec();
  if (!spec.empty()) {
    auto codec = MakeByteCodec(spec);
    if (!codec.ok()) {
      throw CLI::ValidationError("--compression/--level",
                                 std::string(codec.status().message()));
    }
  }
}

Result<int> RunIngestIdx(IngestIdxOptions& options) {
  options.source.paths.assign(options.paths.begin(), options.paths.end() - 1);
  options.source.arrays.compression = options.codec_spec();
  options.source.arrays.class_names = ParseClassNames(options.class_names);
  SHOAL_ASSIGN_OR_RETURN(auto source, MakeSource(options.source));
  return RunIngest(*source, options.dataset(), options.flags, "blocks");
}

// CLI11 cannot describe an optional positional before a required one, so
// the usage line of `ingest idx` is written out.
class IngestIdxFormatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App* app, std::string name) const override {
    return "Usage: " + name +
           " [OPTIONS] IMAGES_IDX[.gz] [LABELS_IDX[.gz]] DS\n";
  }
};

void AddIngestIdxCommand(CLI::App& ingest, CommandRun* run) {
  auto options = std::make_shared<IngestIdxOptions>();
  CLI::App* cmd = ingest.add_subcommand(
      "idx", "Ingest IDX files (MNIST, Fashion-MNIST), plain or .gz");
  cmd->formatter(std::make_shared<IngestIdxFormatter>());
  cmd->add_option("files", options->paths,
                  "IMAGES_IDX[.gz] [LABELS_IDX[.gz]] DS: the images file, "
                  "optionally the labels file, and the dataset to create (a "
                  "path or URL)")
      ->required()
      ->expected(2, 3)
      ->option_text("FILE FILE [FILE] REQUIRED");
  cmd->add_option("--compression", options->compression,
                  "Chunk compression of both tensors")
      ->check(CLI::IsMember({"raw", "lz4", "lz4hc", "zstd"}))
      ->capture_default_str();
  cmd->add_option("--level", options->level,
                  "Compression level: lz4hc 1..12 (default 9), zstd -7..22 "
                  "without 0 (default 3); raw and lz4 take none");
  cmd->add_option(
      "--class-names", options->class_names,
      "Names of the label classes: 'mnist' (0..9), 'fashion-mnist' "
      "(T-shirt/top, Trouser, ..., Ankle boot) or a comma-separated list; "
      "default '0'..'K-1' for K = the largest label + 1");
  AddChunkBytesOption(*cmd, options->source.arrays.max_chunk_bytes);
  AddIngestFlags(*cmd, options->flags);
  cmd->footer(
      "Images become the tensor 'images' (htype image, uint8, samples "
      "[H, W, 1]; [N, H, W, C] files give [H, W, C]); labels become "
      "'labels' (htype class_label, uint32 scalars). Where the samples came "
      "from is recorded once, in the tensor's info (shoal info), not per "
      "sample. Files are read in bounded pieces: one whose header claims "
      "more data than it holds fails before anything large is allocated. "
      "Prints a summary line: samples, seconds, samples/s, stored bytes "
      "(all tensors) and ratio.\n\n"
      "Example:\n  shoal ingest idx train-images-idx3-ubyte.gz "
      "train-labels-idx1-ubyte.gz /data/fmnist --class-names fashion-mnist");
  cmd->callback([options, run] {
    CheckIngestIdxOptions(*options);
    *run = [options] { return RunIngestIdx(*options); };
  });
}

struct IngestNpyOptions {
  std::vector<std::string> paths;  // inputs, then DS
  SourceSpec source = [] {
    SourceSpec s;
    s.kind = "npy";
    return s;
  }();
  IngestFlags flags;
};

void AddIngestNpyCommand(CLI::App& ingest, CommandRun* run) {
  auto options = std::make_shared<IngestNpyOptions>();
  CLI::App* cmd = ingest.add_subcommand(
      "npy",
      "Ingest NumPy .npy files (one array of samples, or one per sample)");
  cmd->add_option("files", options->paths,
                  "NPY... DS: one .npy whose first axis is the samples, or "
                  "several .npy files or folders of them (one sample each, "
                  "sorted by name), then the dataset (a path or URL)")
      ->required()
      ->expected(2, -1);
  cmd->add_option("--tensor", options->source.tensor, "Name of the tensor")
      ->capture_default_str();
  cmd->add_option("--compression", options->source.arrays.compression,
                  "Chunk compression: '' (raw), lz4, lz4hc:L, zstd:L, each "
                  "optionally +shuffle")
      ->capture_default_str();
  AddChunkBytesOption(*cmd, options->source.arrays.max_chunk_bytes);
  AddIngestFlags(*cmd, options->flags);
  cmd->footer(
      "Arrays keep their dtype (bool, (u)int8..64, float16/32/64, either byte "
      "order; stored little-endian); Fortran-ordered files are refused. Files "
      "of one sample each may differ in shape (a ragged tensor) but not in "
      "dtype or rank. Sizes are checked against the file before anything is "
      "allocated.\n\n"
      "Examples:\n  shoal ingest npy embeddings.npy /data/emb\n"
      "  shoal ingest npy ~/masks /data/masks --tensor masks --compression "
      "zstd:3");
  cmd->callback([options, run] {
    if (!options->source.arrays.compression.empty()) {
      auto codec = MakeByteCodec(options->source.arrays.compression);
      if (!codec.ok()) {
        throw CLI::ValidationError("--compression",
                                   std::string(codec.status().message()));
      }
    }
    *run = [options]() -> Result<int> {
      options->source.paths.assign(options->paths.begin(),
                                   options->paths.end() - 1);
      SHOAL_ASSIGN_OR_RETURN(auto source, MakeSource(options->source));
      return RunIngest(*source, options->paths.back(), options->flags,
                       "records");
    };
  });
}

}  // namespace

void AddIngestCommand(CLI::App& app, CommandRun* run) {
  CLI::App* ingest = app.add_subcommand(
      "ingest", "Create a dataset from files of another format");
  ingest->require_subcommand(1);
  AddIngestIdxCommand(*ingest, run);
  AddIngestImagesCommand(*ingest, run);
  AddIngestVideosCommand(*ingest, run);
  AddIngestNpyCommand(*ingest, run);
}

}  // namespace shoal::tools
