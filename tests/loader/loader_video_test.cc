// Video clips in the Loader, against a sequential decode of each whole
// video by VideoReader: every clip is a window of its video (frames `step`
// apart, the last frame repeated past the end) — exactly those frames,
// never a neighbour; each video gives clips_per_video clips per epoch,
// decoded in one pass; uniform sampling spreads them; any thread count
// gives the same batches;
// a corrupt video is an error naming tensor, chunk, sample and frame, or is
// skipped and counted.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "format/dataset.h"
#include "loader/loader.h"
#include "loader/video_sample.h"
#include "video/video.h"

namespace shoal {
namespace {

constexpr uint32_t kHeight = 36;
constexpr uint32_t kWidth = 64;

Buffer ReadFile(const std::string& name) {
  std::ifstream in(std::string(SHOAL_TEST_DATA) + "/video/" + name,
                   std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  EXPECT_TRUE(in.good() || in.eof()) << name;
  return Buffer::FromString(bytes.str());
}

// Videos of tests/data/video (each twice, so chunks hold several), with a
// label per video; `corrupt` adds corrupted.mp4 at the end.
std::shared_ptr<const Dataset> MakeVideoDataset(const std::string& url,
                                                bool corrupt = false) {
  auto ds = Dataset::Create(url, {.overwrite = true, .id_seed = 3});
  EXPECT_TRUE(ds.ok()) << ds.status();
  auto videos = (*ds)->CreateTensor({.name = "videos",
                                     .htype = HType::kVideo,
                                     .sample_compression = "mp4",
                                     .max_chunk_bytes = 1 << 20});
  auto labels = (*ds)->CreateTensor({.name = "labels",
                                     .htype = HType::kClassLabel,
                                     .dtype = DType::kUInt32,
                                     .rank = 0});
  EXPECT_TRUE(videos.ok() && labels.ok());
  std::vector<std::string> files = {"nasa_13013.mp4", "video_90.mov",
                                    "bbb_480p_vp9_opus_1second.webm",
                                    "bt709_full_range.mp4"};
  const std::vector<std::string> once = files;
  files.insert(files.end(), once.begin(), once.end());
  if (corrupt) files.push_back("corrupted.mp4");
  uint32_t label = 0;
  for (const std::string& f : files) {
    const Buffer file = ReadFile(f);
    auto probe = ProbeVideo(file, f);
    EXPECT_TRUE(probe.ok()) << probe.status();
    const VideoInfo& i = probe->info;
    EXPECT_TRUE((*videos)
                    ->AppendVideo(file.span(),
                                  Shape{i.frame_count, i.height, i.width, 3},
                                  VideoSampleInfo(f, *probe))
                    .ok());
    EXPECT_TRUE(
        (*labels)->Append(Shape{}, std::as_bytes(std::span(&label, 1))).ok());
    ++label;
  }
  EXPECT_TRUE((*ds)->Close().ok());
  auto opened = Dataset::Open(url, {.read_only = true});
  EXPECT_TRUE(opened.ok()) << opened.status();
  return std::shared_ptr<const Dataset>(std::move(*opened));
}

// Every frame of sample i at kHeight x kWidth, decoded in order.
std::vector<std::vector<std::byte>> AllFrames(const Dataset& ds, uint64_t i) {
  auto reader = OpenVideoSample(**ds.tensor("videos"), i);
  EXPECT_TRUE(reader.ok()) << reader.status();
  const VideoReadOptions o{.height = kHeight, .width = kWidth};
  const uint64_t n = (*reader)->frame_count();
  std::vector<std::byte> all(n * (*reader)->FrameBytes(o));
  EXPECT_TRUE((*reader)->ReadRange(0, n, 1, o, all).ok());
  std::vector<std::vector<std::byte>> frames(n);
  const uint64_t fb = (*reader)->FrameBytes(o);
  for (uint64_t k = 0; k < n; ++k) {
    frames[k].assign(all.begin() + k * fb, all.begin() + (k + 1) * fb);
  }
  return frames;
}

// The start of the window of `reference` that `clip` is, or -1.
int64_t FindWindow(ByteSpan clip, uint32_t frames, uint32_t step,
                   const std::vector<std::vector<std::byte>>& reference) {
  const uint64_t fb = reference[0].size();
  for (uint64_t start = 0; start < reference.size(); ++start) {
    bool match = true;
    for (uint32_t i = 0; i < frames && match; ++i) {
      const uint64_t k =
          std::min<uint64_t>(start + i * step, reference.size() - 1);
      match = std::memcmp(clip.data() + i * fb, reference[k].data(), fb) == 0;
    }
    if (match) return static_cast<int64_t>(start);
  }
  return -1;
}

struct LoadRun {
  std::vector<std::vector<uint64_t>> indices;
  std::vector<std::vector<uint32_t>> clips;
  std::vector<std::vector<std::byte>> videos;  // per batch
};

LoadRun Load(std::shared_ptr<const Dataset> ds, const VideoClipOptions& clip,
             int threads, uint64_t epochs = 1, uint64_t memory_budget = 1 << 30,
             LoaderMetrics* metrics = nullptr,
             ShuffleMode shuffle = ShuffleMode::kChunk) {
  LoaderOptions options{.batch_size = 3,
                        .epochs = epochs,
                        .shuffle = shuffle,
                        .seed = 11,
                        .threads = threads,
                        .memory_budget = memory_budget};
  options.clips["videos"] = clip;
  auto loader = Loader::Create(std::move(ds), options);
  EXPECT_TRUE(loader.ok()) << loader.status();
  LoadRun run;
  struct Report {
    Loader* loader;
    LoaderMetrics* out;
    ~Report() {
      if (out != nullptr && loader != nullptr) *out = loader->metrics();
    }
  } report{loader.ok() ? loader->get() : nullptr, metrics};
  while (!(*loader)->done()) {
    auto batch = (*loader)->Next();
    EXPECT_TRUE(batch.ok()) << batch.status();
    if (!batch.ok()) break;
    if (!*batch) continue;
    auto videos = (*batch)->tensor("videos");
    EXPECT_TRUE(videos.ok());
    const TensorBatch& v = **videos;
    EXPECT_FALSE(v.ragged());
    EXPECT_EQ(v.shape(),
              (Shape{(*batch)->size(), clip.frames, kHeight, kWidth, 3}));
    run.indices.emplace_back((*batch)->indices().begin(),
                             (*batch)->indices().end());
    run.clips.emplace_back((*batch)->clips().begin(), (*batch)->clips().end());
    run.videos.emplace_back(v.data().begin(), v.data().end());
  }
  return run;
}

TEST(LoaderVideoTest, ClipsAreExactWindowsOfTheirVideos) {
  auto ds = MakeVideoDataset("mem://loader-video-windows");
  const VideoClipOptions clip{.frames = 5,
                              .step = 3,
                              .clips_per_video = 2,
                              .height = kHeight,
                              .width = kWidth};
  const LoadRun run = Load(ds, clip, 2);
  const uint64_t n = ds->len();
  std::map<uint64_t, std::vector<std::vector<std::byte>>> reference;
  std::map<std::pair<uint64_t, uint32_t>, int> seen;
  const uint64_t clip_bytes = uint64_t{clip.frames} * kHeight * kWidth * 3;
  uint64_t samples = 0;
  for (size_t b = 0; b < run.indices.size(); ++b) {
    for (size_t k = 0; k < run.indices[b].size(); ++k) {
      const uint64_t i = run.indices[b][k];
      if (!reference.count(i)) reference[i] = AllFrames(*ds, i);
      const ByteSpan got(run.videos[b].data() + k * clip_bytes, clip_bytes);
      const int64_t start =
          FindWindow(got, clip.frames, clip.step, reference[i]);
      EXPECT_GE(start, 0) << "batch " << b << " sample " << i
                          << ": not a window of its video";
      ++seen[std::pair<uint64_t, uint32_t>(i, run.clips[b][k])];
      ++samples;
    }
  }
  // clips_per_video clips of every video, once each.
  EXPECT_EQ(samples, n * clip.clips_per_video);
  for (uint64_t i = 0; i < n; ++i) {
    for (uint32_t c = 0; c < clip.clips_per_video; ++c) {
      EXPECT_EQ((seen[std::pair<uint64_t, uint32_t>(i, c)]), 1)
          << "video " << i << " clip " << c;
    }
  }
}

TEST(LoaderVideoTest, UniformClipsSpanTheVideo) {
  auto ds = MakeVideoDataset("mem://loader-video-uniform");
  const VideoClipOptions clip{.frames = 4,
                              .step = 2,
                              .clips_per_video = 3,
                              .sampling = VideoClipOptions::Sampling::kUniform,
                              .height = kHeight,
                              .width = kWidth};
  const LoadRun run = Load(ds, clip, 2);
  const uint64_t clip_bytes = uint64_t{clip.frames} * kHeight * kWidth * 3;
  // nasa (sample 0): 390 frames, span 7: starts 0, 191, 383.
  const auto reference = AllFrames(*ds, 0);
  std::map<uint32_t, int64_t> starts;
  for (size_t b = 0; b < run.indices.size(); ++b) {
    for (size_t k = 0; k < run.indices[b].size(); ++k) {
      if (run.indices[b][k] != 0) continue;
      starts[run.clips[b][k]] = FindWindow(
          ByteSpan(run.videos[b].data() + k * clip_bytes, clip_bytes),
          clip.frames, clip.step, reference);
    }
  }
  ASSERT_EQ(starts.size(), 3u);
  EXPECT_EQ(starts[0], 0);
  EXPECT_EQ(starts[1], 191);
  EXPECT_EQ(starts[2], 383);
}

TEST(LoaderVideoTest, SameBatchesAtAnyThreadCount) {
  auto ds = MakeVideoDataset("mem://loader-video-threads");
  const VideoClipOptions clip{.frames = 3,
                              .step = 5,
                              .clips_per_video = 2,
                              .height = kHeight,
                              .width = kWidth};
  const LoadRun one = Load(ds, clip, 1, 2);
  for (int threads : {2, 8}) {
    const LoadRun other = Load(ds, clip, threads, 2);
    EXPECT_EQ(other.indices, one.indices) << threads << " threads";
    EXPECT_EQ(other.clips, one.clips) << threads << " threads";
    EXPECT_TRUE(other.videos == one.videos) << threads << " threads";
  }
  // The second epoch draws other starts (random sampling).
  const size_t half = one.videos.size() / 2;
  EXPECT_FALSE(std::equal(one.videos.begin(), one.videos.begin() + half,
                          one.videos.begin() + half));
}

// Several clips of a video come from one forward decode (ClipShare): each
// clip is still the exact window a decode of it alone gives, the batches
// are those of a loader whose budget leaves no room for sharing (every clip
// decoded alone), and fewer frames are decoded.
TEST(LoaderVideoTest, ClipsOfAVideoShareOneDecode) {
  auto ds = MakeVideoDataset("mem://loader-video-share");
  const uint64_t n = ds->len();
  const VideoClipOptions clip{.frames = 6,
                              .step = 2,
                              .clips_per_video = 4,
                              .height = kHeight,
                              .width = kWidth};
  for (int threads : {1, 2}) {
    // A budget far below one batch: batches are made one at a time and no
    // share ever has room. (Without shuffling: a chunk shuffle fits its
    // buffer to the budget, which would change the plan.)
    LoaderMetrics shared_metrics, alone_metrics;
    const LoadRun shared = Load(ds, clip, threads, 2, 1 << 30, &shared_metrics,
                                ShuffleMode::kNone);
    const LoadRun alone =
        Load(ds, clip, threads, 2, 4096, &alone_metrics, ShuffleMode::kNone);
    EXPECT_EQ(shared.indices, alone.indices);
    EXPECT_EQ(shared.clips, alone.clips);
    EXPECT_TRUE(shared.videos == alone.videos) << threads << " threads";
    // Every clip but the first of each video, in both epochs, is copied.
    EXPECT_EQ(shared_metrics.video_clips_shared, 2 * n * 3);
    EXPECT_EQ(alone_metrics.video_clips_shared, 0u);
    EXPECT_EQ(shared_metrics.video_frames_returned, 2 * n * 4 * clip.frames);
    EXPECT_EQ(alone_metrics.video_frames_returned, 2 * n * 4 * clip.frames);
    EXPECT_LT(shared_metrics.video_frames_decoded,
              alone_metrics.video_frames_decoded);
    EXPECT_LE(shared_metrics.memory_peak, shared_metrics.memory_budget);
  }
  // And, shuffled, each is a window of its video's sequential decode.
  LoaderMetrics metrics;
  const LoadRun run = Load(ds, clip, 2, 1, 1 << 30, &metrics);
  EXPECT_EQ(metrics.video_clips_shared, n * 3);
  std::map<uint64_t, std::vector<std::vector<std::byte>>> reference;
  const uint64_t clip_bytes = uint64_t{clip.frames} * kHeight * kWidth * 3;
  std::map<std::pair<uint64_t, uint32_t>, int> seen;
  for (size_t b = 0; b < run.indices.size(); ++b) {
    for (size_t k = 0; k < run.indices[b].size(); ++k) {
      const uint64_t i = run.indices[b][k];
      if (!reference.count(i)) reference[i] = AllFrames(*ds, i);
      EXPECT_GE(FindWindow(
                    ByteSpan(run.videos[b].data() + k * clip_bytes, clip_bytes),
                    clip.frames, clip.step, reference[i]),
                0)
          << "batch " << b << " sample " << i;
      ++seen[{i, run.clips[b][k]}];
    }
  }
  EXPECT_EQ(seen.size(), n * 4);
}

// One video with several GOPs and many clips: batches wait for the one
// decode of its clips, which then splits the GOPs among the idle threads.
// The clips are the same as on one thread (no split) and are windows of
// the sequential decode.
TEST(LoaderVideoTest, FewVideosSplitTheirGopsAmongThreads) {
  const std::string url = "mem://loader-video-gops";
  {
    auto ds = Dataset::Create(url, {.overwrite = true});
    ASSERT_TRUE(ds.ok());
    auto videos = (*ds)->CreateTensor({.name = "videos",
                                       .htype = HType::kVideo,
                                       .sample_compression = "mp4"});
    ASSERT_TRUE(videos.ok());
    const Buffer file = ReadFile("nasa_13013.mp4");  // 2 GOPs
    auto probe = ProbeVideo(file, "nasa");
    ASSERT_TRUE(probe.ok());
    ASSERT_EQ(probe->index.keyframes.size(), 2u);
    const VideoInfo& i = probe->info;
    ASSERT_TRUE((*videos)
                    ->AppendVideo(file.span(),
                                  Shape{i.frame_count, i.height, i.width, 3},
                                  VideoSampleInfo("nasa", *probe))
                    .ok());
    ASSERT_TRUE((*ds)->Close().ok());
  }
  auto opened = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(opened.ok());
  std::shared_ptr<const Dataset> ds(std::move(*opened));
  const VideoClipOptions clip{
      .frames = 4, .clips_per_video = 12, .height = kHeight, .width = kWidth};
  LoaderMetrics one_metrics, two_metrics;
  const LoadRun one = Load(ds, clip, 1, 2, 1 << 30, &one_metrics);
  const LoadRun two = Load(ds, clip, 2, 2, 1 << 30, &two_metrics);
  EXPECT_EQ(one.indices, two.indices);
  EXPECT_EQ(one.clips, two.clips);
  EXPECT_TRUE(one.videos == two.videos);
  EXPECT_EQ(one_metrics.video_split_decodes, 0u);
  EXPECT_EQ(two_metrics.video_clips_shared, 2u * 11);
  // In one epoch the one decode of the video is alone (the other batches
  // wait for it), so it is split. (Over two epochs the second epoch's
  // decode may start beside the first's, and then neither splits.)
  LoaderMetrics single;
  Load(ds, clip, 2, 1, 1 << 30, &single);
  EXPECT_EQ(single.video_split_decodes, 1u);
  const auto reference = AllFrames(*ds, 0);
  const uint64_t clip_bytes = uint64_t{clip.frames} * kHeight * kWidth * 3;
  for (size_t b = 0; b < two.indices.size(); ++b) {
    for (size_t k = 0; k < two.indices[b].size(); ++k) {
      EXPECT_GE(FindWindow(
                    ByteSpan(two.videos[b].data() + k * clip_bytes, clip_bytes),
                    clip.frames, clip.step, reference),
                0);
    }
  }
}

// A shared decode that meets a damaged frame leaves each clip to decode
// alone: the clips before the damage load (equal to a VideoReader's read
// of them), the one across it fails, or is skipped alone.
TEST(LoaderVideoTest, DamageInOneClipDoesNotFailTheOthers) {
  auto ds = MakeVideoDataset("mem://loader-video-share-corrupt", true);
  const uint64_t bad = ds->len() - 1;
  // corrupted.mp4 has 50 frames and cannot decode frame 29: uniform clips
  // of 10 start at 0, 20 and 40.
  const VideoClipOptions clip{.frames = 10,
                              .clips_per_video = 3,
                              .sampling = VideoClipOptions::Sampling::kUniform,
                              .height = kHeight,
                              .width = kWidth};
  const VideoReadOptions o{.height = kHeight, .width = kWidth};
  std::vector<Result<std::vector<std::byte>>> expected;
  for (uint64_t start : {0, 20, 40}) {
    auto reader = OpenVideoSample(**ds->tensor("videos"), bad);
    ASSERT_TRUE(reader.ok()) << reader.status();
    std::vector<std::byte> frames(10 * (*reader)->FrameBytes(o));
    const Status s = (*reader)->ReadRange(start, start + 10, 1, o, frames);
    expected.push_back(s.ok() ? Result<std::vector<std::byte>>(frames)
                              : Result<std::vector<std::byte>>(s));
  }
  ASSERT_TRUE(expected[0].ok());
  ASSERT_FALSE(expected[1].ok());
  const uint64_t failing = !expected[1].ok() + !expected[2].ok();
  LoaderOptions options{
      .batch_size = 2, .seed = 5, .threads = 2, .on_error = ErrorPolicy::kSkip};
  options.clips["videos"] = clip;
  auto loader = Loader::Create(ds, options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  std::map<uint32_t, std::vector<std::byte>> got;
  while (!(*loader)->done()) {
    auto batch = (*loader)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status();
    if (!*batch) continue;
    const TensorBatch& v = **(*batch)->tensor("videos");
    const uint64_t clip_bytes = v.data().size() / (*batch)->size();
    for (size_t k = 0; k < (*batch)->size(); ++k) {
      if ((*batch)->indices()[k] != bad) continue;
      const auto bytes = v.data().subspan(k * clip_bytes, clip_bytes);
      got[(*batch)->clips()[k]].assign(bytes.begin(), bytes.end());
    }
  }
  EXPECT_EQ((*loader)->metrics().skipped_samples, failing);
  EXPECT_EQ(got.size(), 3 - failing);
  for (uint32_t c = 0; c < 3; ++c) {
    if (!expected[c].ok()) {
      EXPECT_EQ(got.count(c), 0u) << "clip " << c;
      continue;
    }
    ASSERT_EQ(got.count(c), 1u) << "clip " << c;
    EXPECT_TRUE(got[c] == *expected[c]) << "clip " << c;
  }
}

TEST(LoaderVideoTest, CorruptVideoIsAnErrorOrSkipped) {
  auto ds = MakeVideoDataset("mem://loader-video-corrupt", /*corrupt=*/true);
  const uint64_t bad = ds->len() - 1;
  // One 30-frame clip from the middle of each video (frames 10..39 of the
  // corrupt one, which cross the damage at frame 29).
  VideoClipOptions clip{.frames = 30,
                        .step = 1,
                        .sampling = VideoClipOptions::Sampling::kUniform,
                        .height = kHeight,
                        .width = kWidth};
  LoaderOptions options{
      .batch_size = 2, .shuffle = ShuffleMode::kNone, .threads = 2};
  options.clips["videos"] = clip;
  {
    auto loader = Loader::Create(ds, options);
    ASSERT_TRUE(loader.ok()) << loader.status();
    Status error;
    while (!(*loader)->done() && error.ok()) {
      auto batch = (*loader)->Next();
      if (!batch.ok()) error = batch.status();
    }
    ASSERT_FALSE(error.ok());
    const std::string text(error.message());
    EXPECT_NE(text.find("tensor 'videos'"), std::string::npos) << text;
    EXPECT_NE(text.find("chunk '"), std::string::npos) << text;
    EXPECT_NE(text.find("sample " + std::to_string(bad)), std::string::npos)
        << text;
    EXPECT_NE(text.find("frame 29"), std::string::npos) << text;
  }
  options.on_error = ErrorPolicy::kSkip;
  auto loader = Loader::Create(ds, options);
  ASSERT_TRUE(loader.ok());
  uint64_t samples = 0;
  while (!(*loader)->done()) {
    auto batch = (*loader)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status();
    if (*batch) {
      for (uint64_t i : (*batch)->indices()) EXPECT_NE(i, bad);
      samples += (*batch)->size();
    }
  }
  EXPECT_EQ(samples, ds->len() - 1);
  EXPECT_EQ((*loader)->metrics().skipped_samples, 1u);
}

TEST(LoaderVideoTest, RejectsBadClipOptions) {
  auto ds = MakeVideoDataset("mem://loader-video-bad");
  for (const VideoClipOptions& bad :
       {VideoClipOptions{.frames = 0}, VideoClipOptions{.step = 0},
        VideoClipOptions{.clips_per_video = 0},
        VideoClipOptions{.height = 10}}) {
    LoaderOptions options;
    options.clips["videos"] = bad;
    EXPECT_EQ(Loader::Create(ds, options).status().code(),
              StatusCode::kInvalidArgument);
  }
  LoaderOptions options;
  options.clips["labels"] = {};
  EXPECT_EQ(Loader::Create(ds, options).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shoal
