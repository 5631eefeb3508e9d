// `shoal get`: one sample out of a dataset, as a NumPy .npy file (decoded),
// as a PNG or JPEG image, as the bytes stored in the chunk (--raw), or its
// info JSON (--info).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include "codecs/image_codec.h"
#include "tools/commands.h"
#include "tools/internal/npy.h"

namespace shoal::tools {
namespace {

// CLI11 turns "-1" into 2^64-1 for an unsigned option; refuse it as typed.
const CLI::Validator kNotNegative(
    [](std::string& value) -> std::string {
      return value.starts_with('-') ? "must not be negative, got " + value : "";
    },
    "", "not negative");

struct GetOptions {
  std::string dataset;
  std::string tensor;
  uint64_t index = 0;
  std::string output;
  bool raw = false;
  bool info = false;
  std::optional<int> quality;
};

// What -o asks for, from the file's extension.
enum class OutputKind { kNpy, kPng, kJpeg, kOther };

OutputKind KindOf(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (ext == ".npy") return OutputKind::kNpy;
  if (ext == ".png") return OutputKind::kPng;
  if (ext == ".jpg" || ext == ".jpeg") return OutputKind::kJpeg;
  return OutputKind::kOther;
}

// Like WriteNpyFile, leaves no partial file behind on failure.
Status WriteRawFile(const std::string& path, ByteSpan bytes) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return ErrnoStatus("open " + path, errno);
  const bool written =
      std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size();
  const int write_errno = errno;
  if (std::fclose(file) != 0 || !written) {
    const int saved = written ? errno : write_errno;
    std::remove(path.c_str());
    return ErrnoStatus("write " + path, saved);
  }
  return Status::OK();
}

// Writes the sample as a PNG or JPEG file. A sample stored in that very
// format is written as stored (the original file, bit for bit); any other
// is decoded and encoded.
Status WriteImage(const Tensor& tensor, const GetOptions& options,
                  OutputKind kind) {
  const std::string format = kind == OutputKind::kPng ? "png" : "jpeg";
  SHOAL_ASSIGN_OR_RETURN(auto codec, MakeImageCodec(format));
  const bool has_image_codec = tensor.htype() == HType::kImage &&
                               !tensor.spec().sample_compression.empty();
  if (has_image_codec && !options.quality) {
    // Tiled samples have no stored bytes of their own; they are encoded below.
    auto stored = tensor.ReadStored(options.index);
    if (stored.ok() && codec->Sniff(stored->span())) {
      return WriteRawFile(options.output, stored->span());
    }
  }
  SHOAL_ASSIGN_OR_RETURN(Sample sample, tensor.Read(options.index));
  Shape shape = sample.shape;
  if (shape.rank() == 2) shape = Shape{shape[0], shape[1], 1};
  if (shape.rank() != 3) {
    return InvalidArgument("sample " + std::to_string(options.index) +
                           " of tensor '" + tensor.name() + "' has shape " +
                           sample.shape.ToString() +
                           "; an image file needs [H, W] or [H, W, C]");
  }
  ImageEncodeOptions encode;
  encode.quality = options.quality.value_or(95);
  if (shape[2] == 1) encode.subsampling = "gray";
  auto encoded = codec->Encode(shape, sample.dtype, sample.data.span(), encode);
  if (!encoded.ok()) {
    return encoded.status().WithContext(
        "writing sample " + std::to_string(options.index) + " " +
        sample.shape.ToString() + " " + std::string(DTypeName(sample.dtype)) +
        " as " + format);
  }
  return WriteRawFile(options.output, encoded->span());
}

Result<int> RunGet(const GetOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(auto dataset, OpenForReading(options.dataset));
  SHOAL_ASSIGN_OR_RETURN(Tensor * tensor, FindTensor(*dataset, options.tensor));
  if (options.index >= tensor->size()) {
    return OutOfRange("tensor '" + tensor->name() + "' has " +
                      std::to_string(tensor->size()) + " samples; index " +
                      std::to_string(options.index) + " is out of range");
  }
  if (options.info) {
    SHOAL_ASSIGN_OR_RETURN(std::string info, tensor->ReadInfo(options.index));
    std::printf("%s\n", info.empty() ? "{}" : info.c_str());
  }
  if (options.output.empty()) return kExitOk;
  if (options.raw) {
    SHOAL_ASSIGN_OR_RETURN(Buffer stored, tensor->ReadStored(options.index));
    SHOAL_RETURN_IF_ERROR(WriteRawFile(options.output, stored.span()));
    return kExitOk;
  }
  const OutputKind kind = KindOf(options.output);
  if (kind == OutputKind::kNpy) {
    SHOAL_ASSIGN_OR_RETURN(Sample sample, tensor->Read(options.index));
    SHOAL_RETURN_IF_ERROR(WriteNpyFile(
        options.output, sample.dtype, sample.shape.dims(), sample.data.span()));
    return kExitOk;
  }
  SHOAL_RETURN_IF_ERROR(WriteImage(*tensor, options, kind));
  return kExitOk;
}

}  // namespace

void AddGetCommand(CLI::App& app, CommandRun* run) {
  auto options = std::make_shared<GetOptions>();
  CLI::App* cmd = app.add_subcommand(
      "get",
      "Write one sample to a .npy, .png or .jpg file, or print its info JSON");
  cmd->footer(
      "The output's extension says what is written: .npy is the decoded "
      "array; .png and .jpg/.jpeg an image file of a [H, W] or [H, W, C] "
      "sample (C 1..4 for PNG, 1 or 3 for JPEG). An image sample stored in "
      "the requested format is written exactly as stored (the ingested "
      "file); others are decoded and encoded (JPEG at --quality, default "
      "95, with 4:2:0 chroma subsampling).\n\n"
      "Examples:\n  shoal get DS images 7 -o seven.npy\n"
      "  shoal get DS images 7 -o seven.png\n"
      "  shoal get DS images 7 --raw -o seven.bin\n"
      "  shoal get DS images 7 --info");
  cmd->add_option("DS", options->dataset, "The dataset (path or URL)")
      ->required();
  cmd->add_option("TENSOR", options->tensor,
                  "The tensor's name (hidden tensors too, e.g. _shape/images)")
      ->required();
  cmd->add_option("INDEX", options->index, "The sample's index, from 0")
      ->required()
      ->check(kNotNegative);
  cmd->add_option("-o,--output", options->output,
                  "The file to write: .npy, .png, .jpg or .jpeg; with --raw "
                  "any file");
  cmd->add_flag("--raw", options->raw,
                "Write the sample's bytes as stored (compressed when the "
                "tensor compresses samples) instead of a .npy array");
  cmd->add_flag("--info", options->info,
                "Print the sample's info JSON ({} when it has none); -o is "
                "then optional");
  cmd->add_option("--quality", options->quality,
                  "JPEG quality, 1..100, when a .jpg is encoded; given, the "
                  "image is always re-encoded")
      ->check(CLI::Range(1, 100));
  cmd->callback([options, run] {
    if (!options->output.empty() && !options->raw &&
        KindOf(options->output) == OutputKind::kOther) {
      throw CLI::ValidationError(
          "-o", "'" + options->output +
                    "' must end in .npy, .png, .jpg or .jpeg (or use --raw)");
    }
    if (options->quality && KindOf(options->output) != OutputKind::kJpeg) {
      throw CLI::ValidationError("--quality", "is for .jpg output");
    }
    if (options->output.empty() && !options->info) {
      throw CLI::RequiredError("-o,--output (or --info)");
    }
    if (options->raw && options->output.empty()) {
      throw CLI::ValidationError("--raw", "needs -o FILE");
    }
    *run = [options] { return RunGet(*options); };
  });
}

}  // namespace shoal::tools
