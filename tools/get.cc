// `shoal get`: one sample out of a dataset, as a NumPy .npy file (decoded),
// as a PNG or JPEG image, as the bytes stored in the chunk (--raw), or its
// info JSON (--info).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "codecs/image_codec.h"
#include "loader/internal/npy.h"
#include "loader/video_sample.h"
#include "tools/commands.h"

namespace shoal::tools {
namespace {

struct GetOptions {
  std::string dataset;
  std::string tensor;
  uint64_t index = 0;
  std::string output;
  bool raw = false;
  bool info = false;
  std::optional<int> quality;
  std::string frames;  // --frames A:B[:STEP] of a video sample
};

struct FrameRange {
  uint64_t begin = 0, end = 0, step = 1;
};

// "A:B" or "A:B:STEP" with A < B and STEP >= 1; "" when it parses.
std::string ParseFrameRange(const std::string& text, FrameRange& out) {
  std::vector<uint64_t> parts;
  size_t start = 0;
  while (true) {
    const size_t colon = text.find(':', start);
    const std::string part = text.substr(start, colon - start);
    if (part.empty() || part.size() > 12 ||
        part.find_first_not_of("0123456789") != std::string::npos) {
      return "expected A:B or A:B:STEP with non-negative integers, got '" +
             text + "'";
    }
    parts.push_back(std::stoull(part));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (parts.size() < 2 || parts.size() > 3) {
    return "expected A:B or A:B:STEP, got '" + text + "'";
  }
  out = {parts[0], parts[1], parts.size() == 3 ? parts[2] : 1};
  if (out.begin >= out.end)
    return "A must be below B in A:B, got '" + text + "'";
  if (out.step == 0) return "STEP must be at least 1";
  return "";
}

// Frames [begin, end) every step of video sample options.index as a
// [T, H, W, 3] uint8 .npy.
Status WriteClip(const Tensor& tensor, const GetOptions& options) {
  FrameRange range;
  (void)ParseFrameRange(options.frames, range);  // checked at parse time
  SHOAL_ASSIGN_OR_RETURN(auto reader, OpenVideoSample(tensor, options.index));
  if (range.end > reader->frame_count()) {
    return OutOfRange(VideoSampleName(tensor, options.index) + ": frames " +
                      options.frames + " pass the end of a video with " +
                      std::to_string(reader->frame_count()) + " frames");
  }
  const uint64_t count =
      (range.end - range.begin + range.step - 1) / range.step;
  const VideoReadOptions read_options;
  const uint64_t frame_bytes = reader->FrameBytes(read_options);
  SHOAL_ASSIGN_OR_RETURN(MutableBuffer clip,
                         MutableBuffer::Allocate(count * frame_bytes));
  SHOAL_RETURN_IF_ERROR(reader->ReadRange(range.begin, range.end, range.step,
                                          read_options, clip.span()));
  const VideoInfo& info = reader->probe().info;
  const std::vector<uint64_t> shape = {count, info.height, info.width, 3};
  return internal::WriteNpyFile(options.output, DType::kUInt8, shape,
                                ByteSpan(clip.data(), clip.size()));
}

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
  if (!options.frames.empty()) {
    SHOAL_RETURN_IF_ERROR(WriteClip(*tensor, options));
    return kExitOk;
  }
  const OutputKind kind = KindOf(options.output);
  if (kind == OutputKind::kNpy) {
    if (tensor->htype() == HType::kVideo &&
        !tensor->spec().sample_compression.empty()) {
      return InvalidArgument(
          "sample " + std::to_string(options.index) + " of tensor '" +
          tensor->name() +
          "' is a video: choose frames with --frames A:B[:STEP] (or write "
          "the file as stored with --raw)");
    }
    SHOAL_ASSIGN_OR_RETURN(Sample sample, tensor->Read(options.index));
    SHOAL_RETURN_IF_ERROR(internal::WriteNpyFile(
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
      "A video sample (tensor of htype video) is written as frames: --frames "
      "A:B[:STEP] with -o clip.npy gives a uint8 [T, H, W, 3] RGB array of "
      "frames A, A+STEP, ... below B (display order, from 0; frames past "
      "the end are an error); --raw -o FILE writes the video file as "
      "ingested.\n\n"
      "Examples:\n  shoal get DS images 7 -o seven.npy\n"
      "  shoal get DS videos 3 --frames 0:16 -o clip.npy\n"
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
      ->check(WholeNumberIn(0, INT64_MAX));
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
  cmd->add_option("--frames", options->frames,
                  "Frames A:B[:STEP] of a video sample, written as a "
                  "[T, H, W, 3] .npy");
  cmd->callback([options, run] {
    if (!options->frames.empty()) {
      FrameRange range;
      const std::string problem = ParseFrameRange(options->frames, range);
      if (!problem.empty()) throw CLI::ValidationError("--frames", problem);
      if (options->raw || KindOf(options->output) != OutputKind::kNpy) {
        throw CLI::ValidationError("--frames", "needs -o FILE.npy (not --raw)");
      }
    }
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
