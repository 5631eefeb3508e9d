// Video clips in the Loader, against a sequential decode of each whole
// video by VideoReader: every clip is a window of its video (frames `step`
// apart, the last frame repeated past the end) — exactly those frames,
// never a neighbour; each video gives clips_per_video clips per epoch;
// uniform sampling spreads them; any thread count gives the same batches;
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
             int threads, uint64_t epochs = 1) {
  LoaderOptions options{
      .batch_size = 3, .epochs = epochs, .seed = 11, .threads = threads};
  options.clips["videos"] = clip;
  auto loader = Loader::Create(std::move(ds), options);
  EXPECT_TRUE(loader.ok()) << loader.status();
  LoadRun run;
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
