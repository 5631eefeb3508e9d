// `shoal ingest`: creates a dataset from files of another format: the IDX
// files of the MNIST family (`shoal ingest idx`, here) and folders of images
// (`shoal ingest images`, ingest_images.cc); each source format is one
// subcommand of `ingest`.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "tools/commands.h"
#include "tools/ingest_run.h"

namespace shoal::tools {
namespace {

// --level L of `ingest idx`: the level of --compression's codec (checked
// with the codec, after the flags).
Status ApplyLevel(JobConfig& job, const std::string& level) {
  std::string& c = job.ingest.compression;
  if (c.empty()) c = "lz4";
  c += ":" + level;
  return Status::OK();
}

void AddIngestIdxCommand(CLI::App& ingest, CommandRun* run) {
  auto command = std::make_shared<IngestCommand>();
  CLI::App* cmd = ingest.add_subcommand(
      "idx", "Ingest IDX files (MNIST, Fashion-MNIST), plain or .gz");
  cmd->formatter(
      std::make_shared<UsageFormatter>("IMAGES_IDX[.gz] [LABELS_IDX[.gz]] DS"));
  cmd->add_option(
         "files", command->positionals,
         "IMAGES_IDX[.gz] [LABELS_IDX[.gz]] DS: the images file, "
         "optionally the labels file [sets ingest.source.paths], and the "
         "dataset to create, a path or URL [sets ingest.dataset]")
      ->expected(2, 3)
      ->option_text("FILE FILE [FILE]");
  ConfigFlags& f = command->flags;
  f.Add(*cmd, "--compression", "ingest.source.compression");
  f.AddCustom(*cmd, "--level",
              "Compression level: lz4hc 1..12 (default 9), zstd -7..22 "
              "without 0 (default 3); raw and lz4 take none "
              "[sets ingest.source.compression: CODEC:LEVEL]",
              ApplyLevel, {"ingest.source.compression"});
  f.Add(*cmd, "--class-names", "ingest.source.class_names");
  AddIngestFlags(*cmd, *command);
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
      "train-labels-idx1-ubyte.gz /data/fmnist --class-names fashion-mnist\n"
      "  shoal ingest --config configs/fashion-mnist.yaml");
  cmd->callback([command, run] {
    SetIngestRun(command, "idx", run, [](const JobConfig& job) {
      if (job.ingest.paths.size() < 2 && !job.ingest.class_names.empty()) {
        throw CLI::ValidationError("--class-names",
                                   "class names need a LABELS_IDX file");
      }
    });
  });
}

void AddIngestNpyCommand(CLI::App& ingest, CommandRun* run) {
  auto command = std::make_shared<IngestCommand>();
  CLI::App* cmd = ingest.add_subcommand(
      "npy",
      "Ingest NumPy .npy files (one array of samples, or one per sample)");
  cmd->add_option(
         "files", command->positionals,
         "NPY... DS: one .npy whose first axis is the samples, or "
         "several .npy files or folders of them (one sample each, "
         "sorted by name) [sets ingest.source.paths], then the dataset, "
         "a path or URL [sets ingest.dataset]")
      ->expected(2, -1);
  ConfigFlags& f = command->flags;
  f.Add(*cmd, "--tensor", "ingest.source.tensor");
  f.Add(*cmd, "--compression", "ingest.source.compression");
  AddIngestFlags(*cmd, *command);
  cmd->footer(
      "Arrays keep their dtype (bool, (u)int8..64, float16/32/64, either byte "
      "order; stored little-endian); Fortran-ordered files are refused. Files "
      "of one sample each may differ in shape (a ragged tensor) but not in "
      "dtype or rank. Sizes are checked against the file before anything is "
      "allocated.\n\n"
      "Examples:\n  shoal ingest npy embeddings.npy /data/emb\n"
      "  shoal ingest npy ~/masks /data/masks --tensor masks --compression "
      "zstd:3");
  cmd->callback([command, run] { SetIngestRun(command, "npy", run); });
}

}  // namespace

void AddIngestCommand(CLI::App& app, CommandRun* run) {
  CLI::App* ingest = app.add_subcommand(
      "ingest", "Create a dataset from files of another format");
  // `shoal ingest --config F [flags]`: the source kind is the file's.
  auto command = std::make_shared<IngestCommand>();
  AddIngestFlags(*ingest, *command);
  ingest->require_subcommand(0, 1);
  ingest->footer(
      "  shoal ingest --config F     the ingestion a job file describes "
      "(configs/)\n  shoal ingest images|videos|idx|npy ...  see each "
      "one's --help");
  ingest->callback([ingest, command, run] {
    if (!ingest->get_subcommands().empty()) return;
    if (!command->flags.has_config()) {
      throw CLI::ValidationError(
          "ingest: give a source (images, videos, idx, npy) or --config FILE");
    }
    SetIngestRun(command, "", run);
  });
  AddIngestIdxCommand(*ingest, run);
  AddIngestImagesCommand(*ingest, run);
  AddIngestVideosCommand(*ingest, run);
  AddIngestNpyCommand(*ingest, run);
}

}  // namespace shoal::tools
