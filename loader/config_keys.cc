// The one table of job-file keys (loader/config.h): type, range,
// description, and how each is read and written. Defaults are not written
// here: they are the option structs' own, read from a default JobConfig.
#include "loader/internal/config_keys.h"

#include <string>
#include <utility>

#include "loader/internal/config_values.h"

namespace shoal::internal {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kTiB = uint64_t{1} << 40;

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
      "loader.world_size", 1, 65536,
      "Number of ranks (1, the default, takes a launcher's: RANK/WORLD_SIZE, "
      "SLURM_PROCID/SLURM_NTASKS or OMPI_COMM_WORLD_RANK/SIZE when set)",
      [](JobConfig & c) -> auto& { return c.loader.options.world_size; }));
  t.push_back(Flag(
      "loader.rank_from_env",
      "Take rank and world size from the launcher's environment and fail "
      "without one (RANK/WORLD_SIZE as torchrun sets them, SLURM_PROCID/"
      "SLURM_NTASKS, OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE)",
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
  t.push_back(Whole<int>(
      "loader.fetch_workers", 0, kMaxFetchWorkers,
      "Chunk reads in flight (0: adapted to the store's latency)",
      [](JobConfig & c) -> auto& { return c.loader.options.fetch_workers; }));
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
       {"random_resized_crop", TK::kRandomResizedCrop},
       {"random_crop", TK::kRandomCrop}},
      "What every image tensor becomes: decode (own size), resize (to "
      "size), center_crop (resize_shorter then a centre crop of size), "
      "random_resized_crop (torchvision's, to size), random_crop (a box of "
      "size at a random place; of pixel tensors only the box is read)",
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
  t.push_back(TextMap(
      "ingest.tensor_compression",
      "Chunk codec per tensor, replacing the source's choice: {labels: "
      "zstd:19, images: lz4}; '' or raw for none",
      [](JobConfig & c) -> auto& { return c.ingest.tensor_compression; }));
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
  t.push_back(Whole<uint32_t>(
      "ingest.rank", 0, 65535,
      "This writer's rank among world_size writers of one ingestion",
      [](JobConfig & c) -> auto& { return c.ingest.rank; }));
  t.push_back(Whole<uint32_t>(
      "ingest.world_size", 0, 65536,
      "Writers ingesting one source into one dataset together, each its "
      "share (0: a launcher's RANK/WORLD_SIZE, SLURM_PROCID/SLURM_NTASKS or "
      "OMPI_COMM_WORLD_RANK/SIZE when set, else 1)",
      [](JobConfig & c) -> auto& { return c.ingest.world_size; }));
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
