// `shoal get`: one sample out of a dataset, as a NumPy .npy file (decoded),
// as the bytes stored in the chunk (--raw), or its info JSON (--info).
#include <cerrno>
#include <cstdio>
#include <string>

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
};

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
  SHOAL_ASSIGN_OR_RETURN(Sample sample, tensor->Read(options.index));
  SHOAL_RETURN_IF_ERROR(WriteNpyFile(options.output, sample.dtype,
                                     sample.shape.dims(), sample.data.span()));
  return kExitOk;
}

}  // namespace

void AddGetCommand(CLI::App& app, CommandRun* run) {
  auto options = std::make_shared<GetOptions>();
  CLI::App* cmd = app.add_subcommand(
      "get", "Write one sample to a .npy file, or print its info JSON");
  cmd->footer(
      "Examples:\n  shoal get DS images 7 -o seven.npy\n"
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
                  "The file to write: a .npy file, or with --raw any file");
  cmd->add_flag("--raw", options->raw,
                "Write the sample's bytes as stored (compressed when the "
                "tensor compresses samples) instead of a .npy array");
  cmd->add_flag("--info", options->info,
                "Print the sample's info JSON ({} when it has none); -o is "
                "then optional");
  cmd->callback([options, run] {
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
