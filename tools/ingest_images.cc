// `shoal ingest images DIR DS`: a folder of JPEG and PNG files becomes an
// image tensor, plus a class_label tensor when the folder has one subfolder
// per class (torchvision's ImageFolder convention).
//
// The work is two passes over the tree. The first lists the files and reads
// the first bytes of each: that decides the tensor's sample compression for
// `keep` (one format, or "image" for a mix) and its dtype before anything is
// written, and finds non-image files. The second reads each file whole,
// checks it by decoding it (so a corrupt file is reported at ingestion, not
// in the middle of a training run), converts it when the chosen compression
// differs from its own, and appends the bytes. A bad file stops the
// ingestion with its path in the message, or with --skip-bad is reported,
// counted and left out; errors of the dataset itself always stop.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "codecs/image_codec.h"
#include "tools/commands.h"
#include "tools/internal/folder.h"

namespace shoal::tools {
namespace {

namespace fs = std::filesystem;

// Enough for the JPEG and PNG signatures and a PNG's IHDR chunk.
constexpr size_t kSniffBytes = 33;

struct IngestImagesOptions {
  std::string dir;
  std::string dataset;
  std::string compression = "keep";
  std::optional<int> quality;
  std::string subsampling = "4:2:0";
  int png_level = 6;
  bool skip_bad = false;
  bool no_check = false;
  bool overwrite = false;
  uint64_t chunk_bytes = kDefaultMaxChunkBytes;
};

bool HasImageExtension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".jpe" || ext == ".jfif" ||
         ext == ".png";
}

// One file of the tree, as the first pass saw it.
struct SourceFile {
  std::string relative;  // generic form ("cat/001.jpg"): sort key, info
  std::string format;    // "jpeg", "png", or "" for not an image
  DType dtype = DType::kUInt8;
  uint32_t label = 0;  // index of its class folder
};

struct SourceTree {
  std::vector<SourceFile> files;         // images, in sorted relative order
  std::vector<std::string> class_names;  // empty for a flat folder
  std::vector<std::string> bad;          // "path: reason" (--skip-bad)
  uint64_t ignored = 0;                  // non-image files
  std::set<std::string> formats;
  std::set<DType> dtypes;

  // Each skipped file is named as it is found, then counted in the summary.
  void Skip(std::string reason) {
    std::fprintf(stderr, "shoal: skipped %s\n", reason.c_str());
    bad.push_back(std::move(reason));
  }
};

// The format of an image file from its first bytes ("" when none), and its
// sample dtype: PNG's IHDR bit depth (byte 24) tells 16-bit files apart.
std::pair<std::string, DType> SniffFormat(ByteSpan prefix) {
  auto codec = SniffImageCodec(prefix);
  if (!codec.ok()) return {"", DType::kUInt8};
  const std::string format((*codec)->name());
  if (format == "png" && prefix.size() > 24 &&
      std::to_integer<int>(prefix[24]) == 16) {
    return {format, DType::kUInt16};
  }
  return {format, DType::kUInt8};
}

// Lists the image files under options.dir, with their classes.
Result<SourceTree> ScanTree(const IngestImagesOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(std::vector<FolderFile> entries,
                         ListFolder(options.dir));
  SourceTree tree;
  for (const FolderFile& entry : entries) {
    auto prefix = ReadFilePrefix(entry.path, kSniffBytes);
    if (!prefix.ok()) {
      if (!options.skip_bad) return prefix.status();
      tree.Skip(std::string(prefix.status().message()));
      continue;
    }
    auto [format, dtype] = SniffFormat(*prefix);
    if (format.empty()) {
      if (!HasImageExtension(entry.path)) {
        ++tree.ignored;
        continue;
      }
      const std::string reason =
          entry.path.string() + ": not a JPEG or PNG file despite its name";
      if (!options.skip_bad) return Corruption(reason);
      tree.Skip(reason);
      continue;
    }
    tree.formats.insert(format);
    tree.dtypes.insert(dtype);
    tree.files.push_back({entry.relative, format, dtype, 0});
  }
  std::vector<std::string> relatives;
  for (const SourceFile& file : tree.files) relatives.push_back(file.relative);
  SHOAL_ASSIGN_OR_RETURN(FolderClasses classes,
                         AssignClasses(options.dir, relatives, "images"));
  tree.class_names = std::move(classes.names);
  for (size_t i = 0; i < tree.files.size(); ++i) {
    tree.files[i].label = classes.labels[i];
  }
  return tree;
}

// The tensor's sample compression and dtype for what the scan found.
Result<std::pair<std::string, DType>> ChooseTensorFormat(
    const IngestImagesOptions& options, const SourceTree& tree) {
  if (tree.dtypes.size() > 1) {
    const auto sixteen = std::find_if(
        tree.files.begin(), tree.files.end(),
        [](const SourceFile& f) { return f.dtype == DType::kUInt16; });
    return InvalidArgument(
        "'" + options.dir + "' mixes 8-bit images with 16-bit PNGs (e.g. '" +
        sixteen->relative +
        "'); a tensor has one dtype: ingest them into separate datasets");
  }
  const DType dtype =
      tree.dtypes.empty() ? DType::kUInt8 : *tree.dtypes.begin();
  if (options.compression != "keep") {
    if (options.compression == "jpeg" && dtype == DType::kUInt16) {
      return InvalidArgument(
          "16-bit PNGs cannot become JPEG (8-bit only): use --compression "
          "png or keep");
    }
    return std::pair{options.compression, dtype};
  }
  if (tree.formats.size() == 1) return std::pair{*tree.formats.begin(), dtype};
  // Mixed folders keep every file as it is; an empty one defaults to jpeg.
  return std::pair{std::string(tree.formats.empty() ? "jpeg" : "image"), dtype};
}

// Checks, converts and appends images one at a time, reusing its buffers.
class ImageAppender {
 public:
  ImageAppender(const IngestImagesOptions& options, std::string target_format)
      : options_(options), target_(std::move(target_format)) {
    encode_.quality = options.quality.value_or(90);
    encode_.subsampling = options.subsampling;
    encode_.compression_level = options.png_level;
  }

  // The bytes to store for `file` (read into `bytes`), or an error about the
  // file itself; nothing is appended yet.
  Result<ByteSpan> Prepare(const fs::path& path) {
    SHOAL_RETURN_IF_ERROR(ReadWholeFile(path, bytes_));
    auto result = Convert(bytes_);
    if (!result.ok()) return result.status().WithContext(path.string());
    return result;
  }

  uint64_t converted() const { return converted_; }

 private:
  Result<ByteSpan> Convert(ByteSpan encoded) {
    SHOAL_ASSIGN_OR_RETURN(auto codec, SniffImageCodec(encoded));
    SHOAL_ASSIGN_OR_RETURN(ImageInfo info, codec->ReadInfo(encoded));
    const bool keep = target_ == "image" || target_ == codec->name();
    if (keep && options_.no_check) return encoded;
    SHOAL_ASSIGN_OR_RETURN(Shape shape, codec->OutputShape(info, {}));
    SHOAL_ASSIGN_OR_RETURN(uint64_t size, shape.ByteSize(info.dtype));
    pixels_.resize(size);
    SHOAL_RETURN_IF_ERROR(codec->Decode(encoded, {}, pixels_));
    if (keep) return encoded;
    if (!target_codec_) {
      SHOAL_ASSIGN_OR_RETURN(target_codec_, MakeImageCodec(target_));
    }
    auto converted = target_codec_->Encode(shape, info.dtype, pixels_, encode_);
    if (!converted.ok()) {
      return converted.status().WithContext(
          "converting " + std::string(codec->name()) + " " + shape.ToString() +
          " to " + target_);
    }
    ++converted_;
    converted_bytes_ = std::move(*converted);
    return converted_bytes_.span();
  }

  const IngestImagesOptions& options_;
  std::string target_;
  ImageEncodeOptions encode_;
  std::shared_ptr<const ImageCodec> target_codec_;
  std::vector<std::byte> bytes_;
  std::vector<std::byte> pixels_;
  Buffer converted_bytes_;
  uint64_t converted_ = 0;
};

struct IngestImagesTotals {
  uint64_t images = 0;
  uint64_t classes = 0;
  uint64_t ignored = 0;
  uint64_t converted = 0;
  std::vector<std::string> bad;
  std::string compression;
  uint64_t file_bytes = 0;
  uint64_t pixel_bytes = 0;
  uint64_t stored_bytes = 0;
};

// Creates the tensors and appends every file.
Result<IngestImagesTotals> Fill(const IngestImagesOptions& options,
                                SourceTree& tree,
                                const std::pair<std::string, DType>& format,
                                Dataset& dataset) {
  TensorSpec image_spec;
  image_spec.name = "images";
  image_spec.htype = HType::kImage;
  image_spec.dtype = format.second;
  image_spec.sample_compression = format.first;
  image_spec.max_chunk_bytes = options.chunk_bytes;
  SHOAL_ASSIGN_OR_RETURN(Tensor * images, dataset.CreateTensor(image_spec));
  Tensor* labels = nullptr;
  if (!tree.class_names.empty()) {
    TensorSpec label_spec;
    label_spec.name = "labels";
    label_spec.htype = HType::kClassLabel;
    label_spec.dtype = DType::kUInt32;
    label_spec.rank = 0;
    label_spec.chunk_compression = "lz4";
    label_spec.class_names = tree.class_names;
    SHOAL_ASSIGN_OR_RETURN(labels, dataset.CreateTensor(label_spec));
  }

  IngestImagesTotals totals;
  totals.ignored = tree.ignored;
  totals.classes = tree.class_names.size();
  totals.compression = format.first;
  ImageAppender appender(options, format.first);
  Progress progress("ingest", "images");
  const fs::path root(options.dir);
  for (size_t i = 0; i < tree.files.size(); ++i) {
    const SourceFile& file = tree.files[i];
    const fs::path path = root / file.relative;
    auto stored = appender.Prepare(path);
    if (!stored.ok()) {
      if (!options.skip_bad) return stored.status();
      tree.Skip(std::string(stored.status().message()));
      continue;
    }
    const std::string info =
        "{\"path\": " + nlohmann::json(file.relative).dump() + "}";
    // From here on a failure is the dataset's, never skipped.
    SHOAL_RETURN_IF_ERROR(images->AppendEncoded(*stored, info));
    if (labels != nullptr) {
      SHOAL_RETURN_IF_ERROR(labels->Append(
          Shape{}, std::as_bytes(std::span<const uint32_t>(&file.label, 1))));
    }
    ++totals.images;
    std::error_code ec;
    totals.file_bytes += fs::file_size(path, ec);
    progress.Update(i + 1, tree.files.size(), totals.file_bytes);
  }
  if (totals.images == 0) {
    return NotFound("none of the " + Count(tree.files.size(), "image file") +
                    " under '" + options.dir + "' could be read");
  }
  SHOAL_RETURN_IF_ERROR(dataset.Flush());
  progress.Finish();
  totals.converted = appender.converted();
  totals.bad = std::move(tree.bad);
  totals.pixel_bytes = images->stats().raw_bytes;
  for (const Tensor* t : dataset.tensors(/*include_hidden=*/true)) {
    totals.stored_bytes += t->stats().stored_bytes;
  }
  return totals;
}

Result<IngestImagesTotals> IngestImages(const IngestImagesOptions& options) {
  // Everything about the input that can be known without decoding is
  // checked before the dataset is created (or an existing one replaced).
  SHOAL_ASSIGN_OR_RETURN(SourceTree tree, ScanTree(options));
  if (tree.files.empty()) {
    return NotFound("no JPEG or PNG files under '" + options.dir + "'" +
                    (tree.bad.empty() ? "" : " that could be read"));
  }
  SHOAL_ASSIGN_OR_RETURN(auto format, ChooseTensorFormat(options, tree));

  return CreateAndFill<IngestImagesTotals>(
      options.dataset, options.overwrite,
      [&](Dataset& dataset) { return Fill(options, tree, format, dataset); });
}

Result<int> RunIngestImages(const IngestImagesOptions& options) {
  const Stopwatch clock;
  SHOAL_ASSIGN_OR_RETURN(IngestImagesTotals totals, IngestImages(options));
  const double seconds = clock.seconds();
  const std::string classes = totals.classes == 0 ? "no classes"
                              : totals.classes == 1
                                  ? "1 class"
                                  : std::to_string(totals.classes) + " classes";
  std::printf(
      "ingest: %s (%s) in %.2f s (%.0f images/s, %s of files); "
      "sample_compression %s, %llu converted; %s of pixels stored in %s "
      "(ratio %s)\n",
      Count(totals.images, "image").c_str(), classes.c_str(), seconds,
      seconds > 0 ? totals.images / seconds : 0.0,
      FormatRate(static_cast<double>(totals.file_bytes), seconds).c_str(),
      totals.compression.c_str(),
      static_cast<unsigned long long>(totals.converted),
      FormatBytes(totals.pixel_bytes).c_str(),
      FormatBytes(totals.stored_bytes).c_str(),
      FormatRatio(totals.pixel_bytes, totals.stored_bytes).c_str());
  PrintIngestSkips(totals.ignored, "non-image file", totals.bad.size());
  return kExitOk;
}

}  // namespace

void AddIngestImagesCommand(CLI::App& ingest, CommandRun* run) {
  auto options = std::make_shared<IngestImagesOptions>();
  CLI::App* cmd = ingest.add_subcommand(
      "images", "Ingest a folder of JPEG and PNG files (ImageFolder layout)");
  cmd->add_option("DIR", options->dir, "The folder to read")->required();
  cmd->add_option("DS", options->dataset,
                  "The dataset to create (a path or URL)")
      ->required();
  cmd->add_option("--compression", options->compression,
                  "How images are stored: 'keep' stores each file's own "
                  "bytes (its format read from its content; a folder mixing "
                  "JPEG and PNG gives sample_compression 'image'); 'jpeg' or "
                  "'png' convert files of the other format")
      ->check(CLI::IsMember({"keep", "jpeg", "png"}))
      ->capture_default_str();
  cmd->add_option("--quality", options->quality,
                  "JPEG quality of converted images, 1..100 (default 90); "
                  "JPEG files are stored as they are")
      ->check(CLI::Range(1, 100));
  cmd->add_option("--subsampling", options->subsampling,
                  "Chroma subsampling of converted JPEGs")
      ->check(CLI::IsMember({"4:4:4", "4:2:2", "4:2:0"}))
      ->capture_default_str();
  cmd->add_option("--png-level", options->png_level,
                  "zlib level of converted PNGs, 0..9")
      ->check(CLI::Range(0, 9))
      ->capture_default_str();
  cmd->add_flag("--skip-bad", options->skip_bad,
                "Skip files that cannot be read or decoded (each is named on "
                "stderr and counted) instead of stopping at the first");
  cmd->add_flag("--no-check", options->no_check,
                "Store files kept as they are after reading only their "
                "header, without decoding them (faster; damage in the pixel "
                "data is then found only when the image is read)");
  cmd->add_flag("--overwrite", options->overwrite,
                "Replace a dataset that exists at DS");
  AddChunkBytesOption(*cmd, options->chunk_bytes);
  cmd->footer(
      "Every JPEG and PNG file under DIR (found by content; hidden files and "
      "folders are skipped, folder symlinks are not followed, files with "
      "other content and no image extension are ignored and counted) "
      "becomes a sample of the tensor 'images' (htype image, [H, W, C], "
      "uint8, or uint16 for 16-bit PNGs), in byte order of the relative "
      "paths. When DIR has subfolders, each top-level subfolder is a class: "
      "the tensor 'labels' (class_label, uint32) gets the folder names, "
      "sorted, as class names. Each image's info JSON records its path "
      "relative to DIR: {\"path\": \"cat/001.jpg\"}. Every file is decoded "
      "once to check it unless --no-check. A failed ingestion removes what "
      "it wrote.\n\n"
      "Example:\n  shoal ingest images ~/imagenette/train /data/imagenette");
  cmd->callback([options, run] {
    if (options->quality && options->compression != "jpeg") {
      throw CLI::ValidationError("--quality", "needs --compression jpeg");
    }
    *run = [options] { return RunIngestImages(*options); };
  });
}

}  // namespace shoal::tools
