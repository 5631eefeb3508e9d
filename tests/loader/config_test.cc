// Job files (loader/config.h): every file in configs/ loads into the option
// structs; strict errors carry file, line and column; printing and loading
// back gives the same job; configs/README.md's key table is the code's.
#include "loader/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace shoal {
namespace {

std::string SourceDir() { return SHOAL_SOURCE_DIR; }

Status ErrorOf(std::string_view yaml) {
  auto job = ParseJobConfig(yaml, "job.yaml");
  return job.ok() ? Status::OK() : job.status();
}

void ExpectError(std::string_view yaml, std::string_view where,
                 std::string_view what) {
  Status s = ErrorOf(yaml);
  ASSERT_FALSE(s.ok()) << yaml;
  EXPECT_NE(s.message().find(where), std::string_view::npos)
      << s.message() << " lacks " << where;
  EXPECT_NE(s.message().find(what), std::string_view::npos)
      << s.message() << " lacks " << what;
}

TEST(ConfigTest, ReadsEveryKindOfValue) {
  auto job = ParseJobConfig(R"(
loader:
  dataset: file:///data/inet
  tensors: [images, labels]
  batch_size: 64
  shuffle: full
  memory_budget: 64MiB
  threads: 3
  transform:
    kind: random_resized_crop
    size: [200, 300]
    scale: [0.25, 1]
    flip: true
  clip: {frames: 8, size: 112, sampling: uniform}
ingest:
  source: {kind: idx, paths: [a.idx, b.idx], compression: zstd:5, class_names: [mnist]}
  dataset: out/x
  mode: resume
  workers: read=2,write=4
  chunk_bytes: 1M
  commit_seconds: 2.5
)",
                            "job.yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  const LoaderConfig& l = job->loader;
  EXPECT_TRUE(job->has_loader && job->has_ingest && !job->has_bench);
  EXPECT_EQ(l.dataset, "file:///data/inet");
  EXPECT_EQ(l.options.tensors, (std::vector<std::string>{"images", "labels"}));
  EXPECT_EQ(l.options.batch_size, 64u);
  EXPECT_EQ(l.options.shuffle, ShuffleMode::kFull);
  EXPECT_EQ(l.options.memory_budget, 64u << 20);
  EXPECT_EQ(l.options.threads, 3);
  EXPECT_EQ(l.transform.kind, ImageTransform::Kind::kRandomResizedCrop);
  EXPECT_EQ(l.transform.height, 200u);
  EXPECT_EQ(l.transform.width, 300u);
  EXPECT_EQ(l.transform.scale_min, 0.25);
  EXPECT_TRUE(l.transform.random_flip);
  EXPECT_EQ(l.clip.frames, 8u);
  EXPECT_EQ(l.clip.height, 112u);
  EXPECT_EQ(l.clip.width, 112u);
  EXPECT_EQ(l.clip.sampling, VideoClipOptions::Sampling::kUniform);
  // Keys not given keep the library's defaults.
  const LoaderOptions defaults;
  EXPECT_EQ(l.options.shuffle_buffer, defaults.shuffle_buffer);
  EXPECT_EQ(l.options.epochs, defaults.epochs);

  auto spec = ToSourceSpec(job->ingest);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->kind, "idx");
  EXPECT_EQ(spec->paths, (std::vector<std::string>{"a.idx", "b.idx"}));
  EXPECT_EQ(spec->arrays.compression, "zstd:5");
  EXPECT_EQ(spec->arrays.max_chunk_bytes, 1u << 20);
  ASSERT_EQ(spec->arrays.class_names.size(), 10u);
  EXPECT_EQ(spec->arrays.class_names[9], "9");
  auto options = ToIngestOptions(job->ingest);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->mode, IngestOptions::Mode::kResume);
  EXPECT_EQ(options->workers,
            (std::map<std::string, int>{{"read", 2}, {"write", 4}}));
  EXPECT_EQ(options->commit_every_seconds, 2.5);
}

TEST(ConfigTest, ErrorsNameFileLineAndColumn) {
  ExpectError("loader:\n  batchsize: 3\n", "job.yaml:2:3",
              "unknown key 'loader.batchsize' (did you mean "
              "'loader.batch_size'?)");
  ExpectError("loader:\n  chunk_bytes: 3\n", "job.yaml:2:3",
              "did you mean 'ingest.chunk_bytes'?");
  ExpectError("loadr:\n  seed: 1\n", "job.yaml:1:1", "did you mean 'loader'?");
  ExpectError("loader:\n  batch_size: abc\n", "job.yaml:2:15",
              "loader.batch_size: expected a whole number, got 'abc'");
  ExpectError("loader:\n  batch_size: 0\n", "job.yaml:2:15",
              "must be a whole number from 1 to 16777216, got 0");
  ExpectError("loader:\n  seed: -1\n", "job.yaml:2:9", "got -1");
  ExpectError("loader:\n  drop_last: yes\n", "job.yaml:2:14",
              "expected true or false");
  ExpectError("loader:\n  shuffle: ful\n", "job.yaml:2:12",
              "expected one of none|chunk|full, got 'ful' (did you mean "
              "'full'?)");
  ExpectError("loader:\n  memory_budget: 12 parsecs\n", "job.yaml:2:18",
              "unknown size suffix");
  ExpectError("loader:\n  memory_budget: 1k\n", "job.yaml:2:18",
              "must be a size from 1MiB to 1TiB, got 1KiB");
  ExpectError("loader:\n  tensors: {a: 1}\n", "job.yaml:2:12",
              "expected a list, got a mapping");
  ExpectError("loader: 3\n", "job.yaml:1:9", "expected a mapping");
  ExpectError("loader:\n  seed: 1\n  seed: 2\n", "job.yaml:3:3",
              "given twice (first at line 2)");
  ExpectError("loader: [1\n", "job.yaml:2:1", "");
  ExpectError("- 1\n- 2\n", "job.yaml:1:1", "expected the sections");
  // Contradictions point at the key that contradicts.
  ExpectError("loader:\n  world_size: 2\n  rank: 2\n", "job.yaml:3:3",
              "loader.rank: 2 is not below loader.world_size (2)");
  ExpectError("loader:\n  transform:\n    size: 224\n", "job.yaml:3:5",
              "decode keeps each image's own size");
  ExpectError("loader:\n  transform:\n    kind: resize\n", "job.yaml:2:3",
              "resize needs a size");
  ExpectError(
      "loader:\n  transform:\n    kind: center_crop\n    size: 224\n"
      "    resize_shorter: 100\n",
      "job.yaml:2:3", "resize_shorter");
  ExpectError("ingest:\n  source:\n    kind: images\n    compression: zip\n",
              "job.yaml:4:5", "images take keep, jpeg, png or raw[:CODEC]");
  ExpectError("ingest:\n  source:\n    kind: npy\n    compression: zstd:99\n",
              "job.yaml:4:5", "ingest.source.compression");
  ExpectError("ingest:\n  tensor_compression: {labels: zstd:99}\n",
              "job.yaml:2:3", "ingest.tensor_compression: labels");
  ExpectError("ingest:\n  tensor_compression: [lz4]\n", "job.yaml:2:23",
              "expected a mapping");
  ExpectError("ingest:\n  workers: read=0\n", "job.yaml:2:12", "N in 1..256");
  ExpectError("ingest:\n  workers: append=2\n", "job.yaml:2:12",
              "no parallel stage 'append'");
  EXPECT_TRUE(ErrorOf("").message().find("empty") != std::string_view::npos);
}

TEST(ConfigTest, PrintedJobLoadsBackToTheSameOptions) {
  auto job = ParseJobConfig(
      "loader:\n  batch_size: 7\n  transform: {kind: center_crop, size: "
      "[224, 200], resize_shorter: 256, channels: gray}\n  clip: {size: "
      "[90, 160]}\ningest:\n  source: {kind: images, paths: ['a b', c]}\n  "
      "commit_seconds: 0.1\n  memory_budget: 2000000\nbench:\n  reference: "
      "true\n",
      "a.yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  const std::string text = JobConfigToYaml(*job);
  auto again = ParseJobConfig(text, "printed");
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << text;
  EXPECT_EQ(JobConfigToYaml(*again), text);
  // Field by field too, so that a key printed wrongly both ways is caught.
  EXPECT_EQ(again->loader.options.batch_size, 7u);
  EXPECT_EQ(again->loader.transform.kind, ImageTransform::Kind::kCenterCrop);
  EXPECT_EQ(again->loader.transform.height, 224u);
  EXPECT_EQ(again->loader.transform.width, 200u);
  EXPECT_EQ(again->loader.transform.channels,
            ImageDecodeOptions::Channels::kGray);
  EXPECT_EQ(again->loader.transform.ratio_max, 4.0 / 3.0);
  EXPECT_EQ(again->loader.clip.width, 160u);
  EXPECT_EQ(again->ingest.paths, (std::vector<std::string>{"a b", "c"}));
  EXPECT_EQ(again->ingest.commit_every_seconds, 0.1);
  EXPECT_EQ(again->ingest.memory_budget, 2000000u);
  EXPECT_TRUE(again->bench.reference);
  // Every key is printed, once.
  for (const ConfigKeyInfo& k : ConfigKeys()) {
    const std::string last = k.key.substr(k.key.rfind('.') + 1) + ":";
    EXPECT_NE(text.find(last), std::string::npos) << k.key;
  }
}

TEST(ConfigTest, SetConfigValueChecksLikeAFile) {
  JobConfig job;
  EXPECT_TRUE(SetConfigValue(job, "loader.batch_size", "12").ok());
  EXPECT_EQ(job.loader.options.batch_size, 12u);
  EXPECT_TRUE(job.has_loader);
  EXPECT_TRUE(SetConfigValue(job, "loader.transform.size", "[3, 4]").ok());
  EXPECT_EQ(job.loader.transform.width, 4u);
  EXPECT_TRUE(SetConfigValue(job, "ingest.dataset", "").ok());
  Status s = SetConfigValue(job, "loader.batch_size", "-3");
  EXPECT_NE(s.message().find("loader.batch_size: must be a whole number"),
            std::string_view::npos)
      << s;
  s = SetConfigValue(job, "loader.epoch", "3");
  EXPECT_NE(s.message().find("did you mean 'loader.epochs'"),
            std::string_view::npos)
      << s;
}

TEST(ConfigTest, ResolvesTransformsForImageTensorsAndRanksFromTheEnvironment) {
  const std::string url = "mem://config-resolve";
  auto ds = Dataset::Create(url, {.overwrite = true});
  ASSERT_TRUE(ds.ok());
  ASSERT_TRUE((*ds)
                  ->CreateTensor({.name = "images",
                                  .htype = HType::kImage,
                                  .sample_compression = "jpeg"})
                  .ok());
  ASSERT_TRUE((*ds)
                  ->CreateTensor({.name = "labels",
                                  .htype = HType::kClassLabel,
                                  .dtype = DType::kUInt32})
                  .ok());
  auto job = ParseJobConfig(
      "loader:\n  transform: {kind: random_resized_crop, size: 32}\n  "
      "rank_from_env: true\n",
      "job.yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  setenv("RANK", "1", 1);
  setenv("WORLD_SIZE", "4", 1);
  auto options = ResolveLoaderOptions(job->loader, **ds);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->rank, 1u);
  EXPECT_EQ(options->world_size, 4u);
  ASSERT_EQ(options->transforms.size(), 1u);
  EXPECT_EQ(options->transforms.at("images").height, 32u);
  setenv("RANK", "4", 1);
  EXPECT_FALSE(ResolveLoaderOptions(job->loader, **ds).ok());
  unsetenv("RANK");
  auto missing = ResolveLoaderOptions(job->loader, **ds);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no launcher's rank"),
            std::string_view::npos)
      << missing.status();
  unsetenv("WORLD_SIZE");
  // srun's and mpirun's variables do the same.
  setenv("SLURM_PROCID", "2", 1);
  setenv("SLURM_NTASKS", "3", 1);
  options = ResolveLoaderOptions(job->loader, **ds);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->rank, 2u);
  EXPECT_EQ(options->world_size, 3u);
  unsetenv("SLURM_PROCID");
  unsetenv("SLURM_NTASKS");
  setenv("OMPI_COMM_WORLD_RANK", "0", 1);
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  // Without rank_from_env too, when no world size was given.
  job->loader.rank_from_env = false;
  options = ResolveLoaderOptions(job->loader, **ds);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->world_size, 2u);
  // A world size given explicitly wins over the launcher's.
  job->loader.options.world_size = 4;
  job->loader.options.rank = 3;
  options = ResolveLoaderOptions(job->loader, **ds);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->rank, 3u);
  EXPECT_EQ(options->world_size, 4u);
  unsetenv("OMPI_COMM_WORLD_RANK");
  unsetenv("OMPI_COMM_WORLD_SIZE");
}

TEST(ConfigTest, EveryFileInConfigsLoads) {
  int files = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(SourceDir() + "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    auto job = LoadJobConfig(entry.path().string());
    ASSERT_TRUE(job.ok()) << job.status();
    EXPECT_TRUE(job->has_loader || job->has_ingest) << entry.path();
    if (job->has_ingest) {
      EXPECT_TRUE(ToSourceSpec(job->ingest).ok()) << entry.path();
      EXPECT_TRUE(ToIngestOptions(job->ingest).ok()) << entry.path();
    }
  }
  EXPECT_EQ(files, 6);  // the configs the README lists
}

TEST(ConfigTest, ReadmeTableIsTheCodesTable) {
  std::ifstream in(SourceDir() + "/configs/README.md");
  ASSERT_TRUE(in) << "configs/README.md";
  std::stringstream text;
  text << in.rdbuf();
  const std::string readme = text.str();
  const std::string begin = "<!-- keys:begin -->\n";
  const size_t from = readme.find(begin);
  const size_t to = readme.find("<!-- keys:end -->");
  ASSERT_NE(from, std::string::npos);
  ASSERT_NE(to, std::string::npos);
  EXPECT_EQ(readme.substr(from + begin.size(), to - from - begin.size()),
            ConfigKeysMarkdown())
      << "regenerate with: shoal config keys --format markdown";
}

}  // namespace
}  // namespace shoal
