// `shoal ingest`: creates a dataset from files of another format: the IDX
// files of the MNIST family (`shoal ingest idx`, here) and folders of images
// (`shoal ingest images`, ingest_images.cc); each source format is one
// subcommand of `ingest`.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "codecs/byte_codec.h"
#include "tools/commands.h"
#include "tools/internal/idx.h"

namespace shoal::tools {
namespace {

// Samples per columnar append: large enough that per-call overhead vanishes,
// small enough that the label conversion buffer stays tiny.
constexpr uint64_t kBatchSamples = 4096;

struct IngestIdxOptions {
  // IMAGES [LABELS] DS, as given.
  std::vector<std::string> paths;
  std::string compression = "lz4";
  std::optional<int> level;
  std::string class_names;
  bool overwrite = false;
  bool no_info = false;
  uint64_t chunk_bytes = kDefaultMaxChunkBytes;

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

// The sample shape of the images in `array`: [N, H, W] gives [H, W, 1];
// [N, H, W, C] gives [H, W, C].
Result<Shape> ImageShape(const IdxArray& array, const std::string& path) {
  if (array.dtype != DType::kUInt8) {
    return InvalidArgument(path + ": images must be unsigned bytes (IDX type " +
                           "0x08), this file holds " +
                           std::string(DTypeName(array.dtype)));
  }
  const auto& d = array.dims;
  if (d.size() == 3) return Shape{d[1], d[2], 1};
  if (d.size() == 4 && d[3] >= 1 && d[3] <= 4) return Shape{d[1], d[2], d[3]};
  return InvalidArgument(path + ": images must have dimensions [N, H, W] or " +
                         "[N, H, W, C] with C in 1..4, this file has " +
                         Shape(std::span<const uint64_t>(d)).ToString());
}

Status CheckLabels(const IdxArray& labels, const std::string& path,
                   uint64_t num_images, const std::string& images_path) {
  if (labels.dtype != DType::kUInt8 || labels.dims.size() != 1) {
    return InvalidArgument(path + ": labels must be a 1-dimensional array of " +
                           "unsigned bytes (IDX type 0x08)");
  }
  if (labels.dims[0] != num_images) {
    return InvalidArgument("the image and label counts differ: " + images_path +
                           " has " + std::to_string(num_images) + " images, " +
                           path + " has " + std::to_string(labels.dims[0]) +
                           " labels");
  }
  return Status::OK();
}

// The class names to store: given ones (checked to cover every label), or
// "0".."K-1" for K = the largest label + 1.
Result<std::vector<std::string>> ResolveClassNames(const std::string& option,
                                                   const IdxArray& labels) {
  const auto* values = reinterpret_cast<const uint8_t*>(labels.data.data());
  const uint64_t max_label =
      labels.data.empty()
          ? 0
          : *std::max_element(values, values + labels.data.size());
  std::vector<std::string> names = ParseClassNames(option);
  if (names.empty()) {
    for (uint64_t k = 0; k <= max_label && !labels.data.empty(); ++k) {
      names.push_back(std::to_string(k));
    }
    return names;
  }
  if (max_label >= names.size()) {
    return InvalidArgument("label " + std::to_string(max_label) +
                           " has no class name: --class-names gives " +
                           std::to_string(names.size()) + " names");
  }
  return names;
}

// The arrays read from the IDX files, checked against each other.
struct IdxSource {
  IdxArray images;
  Shape image_shape;  // of one sample
  uint64_t image_bytes = 0;
  std::optional<IdxArray> labels;
  std::vector<std::string> class_names;
  std::string info_prefix;  // {"source": "<images basename>", "index":

  uint64_t count() const { return images.dims[0]; }
};

Result<IdxSource> ReadIdxSource(const IngestIdxOptions& options) {
  IdxSource source;
  SHOAL_ASSIGN_OR_RETURN(source.images, ReadIdxFile(options.images()));
  SHOAL_ASSIGN_OR_RETURN(source.image_shape,
                         ImageShape(source.images, options.images()));
  source.image_bytes = *source.image_shape.ByteSize(DType::kUInt8);
  if (options.labels()) {
    SHOAL_ASSIGN_OR_RETURN(source.labels, ReadIdxFile(*options.labels()));
    SHOAL_RETURN_IF_ERROR(CheckLabels(*source.labels, *options.labels(),
                                      source.count(), options.images()));
    SHOAL_ASSIGN_OR_RETURN(
        source.class_names,
        ResolveClassNames(options.class_names, *source.labels));
  }
  const std::string basename =
      std::filesystem::path(options.images()).filename().string();
  source.info_prefix =
      "{\"source\": " + nlohmann::json(basename).dump() + ", \"index\": ";
  return source;
}

Status CreateTensors(Dataset& dataset, const IngestIdxOptions& options,
                     const IdxSource& source) {
  TensorSpec images;
  images.name = "images";
  images.htype = HType::kImage;
  images.dtype = DType::kUInt8;
  images.chunk_compression = options.codec_spec();
  images.max_chunk_bytes = options.chunk_bytes;
  SHOAL_RETURN_IF_ERROR(dataset.CreateTensor(images).status());
  if (!source.labels) return Status::OK();
  TensorSpec labels;
  labels.name = "labels";
  labels.htype = HType::kClassLabel;
  labels.dtype = DType::kUInt32;
  labels.rank = 0;
  labels.chunk_compression = options.codec_spec();
  labels.max_chunk_bytes = options.chunk_bytes;
  labels.class_names = source.class_names;
  return dataset.CreateTensor(labels).status();
}

// Appends samples [begin, begin + n). Without info this is one columnar
// append; with info each image is appended alone (the columnar path takes
// no info), which costs about 0.7 us per sample.
Status AppendIdxBatch(Dataset& dataset, const IdxSource& source,
                      bool record_info, uint64_t begin, uint64_t n,
                      std::vector<uint32_t>& label_buffer) {
  const ByteSpan images = source.images.data.span().subspan(
      begin * source.image_bytes, n * source.image_bytes);
  ByteSpan labels;
  if (source.labels) {
    const auto* values =
        reinterpret_cast<const uint8_t*>(source.labels->data.data());
    label_buffer.assign(values + begin, values + begin + n);
    labels = std::as_bytes(std::span<const uint32_t>(label_buffer));
  }
  if (!record_info) {
    std::vector<Dataset::Column> columns(1);
    columns[0].tensor = "images";
    columns[0].count = n;
    columns[0].sample_shape = source.image_shape;
    columns[0].data = images;
    if (source.labels) {
      columns.emplace_back();
      columns[1].tensor = "labels";
      columns[1].count = n;
      columns[1].data = labels;
    }
    return dataset.AppendColumns(columns);
  }
  SHOAL_ASSIGN_OR_RETURN(Tensor * image_tensor, dataset.tensor("images"));
  std::string info;
  for (uint64_t i = 0; i < n; ++i) {
    info = source.info_prefix + std::to_string(begin + i) + "}";
    SHOAL_RETURN_IF_ERROR(image_tensor->Append(
        source.image_shape,
        images.subspan(i * source.image_bytes, source.image_bytes), info));
  }
  if (!source.labels) return Status::OK();
  SHOAL_ASSIGN_OR_RETURN(Tensor * label_tensor, dataset.tensor("labels"));
  return label_tensor->AppendBatch(Shape{}, n, labels);
}

struct IngestTotals {
  uint64_t samples = 0;
  uint64_t sample_bytes = 0;  // decoded bytes of images and labels
  uint64_t stored_bytes = 0;  // chunk bytes of every tensor, hidden included
};

Result<IngestTotals> IngestIdx(const IngestIdxOptions& options) {
  // The input is read and checked before the dataset is created (or an
  // existing one replaced), so that bad input leaves nothing behind.
  SHOAL_ASSIGN_OR_RETURN(IdxSource source, ReadIdxSource(options));
  SHOAL_ASSIGN_OR_RETURN(
      auto dataset,
      Dataset::Create(options.dataset(), {.overwrite = options.overwrite}));
  SHOAL_RETURN_IF_ERROR(CreateTensors(*dataset, options, source));

  const uint64_t count = source.count();
  std::vector<uint32_t> label_buffer;
  Progress progress("ingest", "samples");
  for (uint64_t begin = 0; begin < count; begin += kBatchSamples) {
    const uint64_t n = std::min(kBatchSamples, count - begin);
    SHOAL_RETURN_IF_ERROR(AppendIdxBatch(*dataset, source, !options.no_info,
                                         begin, n, label_buffer));
    progress.Update(begin + n, count, (begin + n) * source.image_bytes);
  }
  SHOAL_RETURN_IF_ERROR(dataset->Flush());
  progress.Finish();

  IngestTotals totals{.samples = count};
  for (const Tensor* t : dataset->tensors(/*include_hidden=*/true)) {
    if (!t->hidden()) totals.sample_bytes += t->stats().raw_bytes;
    totals.stored_bytes += t->stats().stored_bytes;
  }
  SHOAL_RETURN_IF_ERROR(dataset->Close());
  return totals;
}

Result<int> RunIngestIdx(const IngestIdxOptions& options) {
  const Stopwatch clock;
  SHOAL_ASSIGN_OR_RETURN(IngestTotals totals, IngestIdx(options));
  const double seconds = clock.seconds();
  std::printf(
      "ingest: %llu samples in %.2f s (%.0f samples/s, %s); %s of samples "
      "stored in %s (ratio %s)\n",
      static_cast<unsigned long long>(totals.samples), seconds,
      seconds > 0 ? totals.samples / seconds : 0.0,
      FormatRate(static_cast<double>(totals.sample_bytes), seconds).c_str(),
      FormatBytes(totals.sample_bytes).c_str(),
      FormatBytes(totals.stored_bytes).c_str(),
      FormatRatio(totals.sample_bytes, totals.stored_bytes).c_str());
  return kExitOk;
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
  cmd->add_flag("--overwrite", options->overwrite,
                "Replace a dataset that exists at DS");
  cmd->add_flag("--no-info", options->no_info,
                "Record no info JSON, so that whole batches are appended at "
                "once instead of image by image: about 0.7 us less per image "
                "(60,000 Fashion-MNIST images from plain IDX files with lz4: "
                "0.15 s instead of 0.19 s; gunzipping .gz files takes longer "
                "than either)");
  AddChunkBytesOption(*cmd, options->chunk_bytes);
  cmd->footer(
      "Images become the tensor 'images' (htype image, uint8, samples "
      "[H, W, 1]; [N, H, W, C] files give [H, W, C]); labels become "
      "'labels' (htype class_label, uint32 scalars). Each image's info JSON "
      "records its source: {\"source\": \"<images file name>\", \"index\": "
      "i}. Prints a summary line: samples, seconds, samples/s, MB/s of "
      "sample bytes, stored bytes (all tensors) and ratio.\n\n"
      "Example:\n  shoal ingest idx train-images-idx3-ubyte.gz "
      "train-labels-idx1-ubyte.gz /data/fmnist --class-names fashion-mnist");
  cmd->callback([options, run] {
    CheckIngestIdxOptions(*options);
    *run = [options] { return RunIngestIdx(*options); };
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
}

}  // namespace shoal::tools
