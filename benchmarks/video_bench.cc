// shoal_video_bench: random 16-frame clips out of long-GOP videos, read by
// shoal's seek-based VideoReader against two references, plus sequential
// decoding of whole videos. One thread everywhere.
//
// The videos are a folder of .mp4/.mov/.mkv/.webm files (make them with
// scripts/make-video-dataset.sh). Each file is read into memory and probed
// once beforehand (ingestion: ProbeVideo's time is reported, not counted).
// --clips random clips (video, start) are drawn with --seed; every clip goes
// through each method in turn (shoal, naive, ffmpeg), so the methods see
// the same clips under the same machine load:
//
//  a. shoal: VideoReader::Open (shared probe, bytes in memory) +
//     ReadRange(start, start + F, 1) into an RGB24 buffer; a new reader per
//     clip, as the loader makes. Reported with its stats: seeks, frames
//     decoded ÷ returned, and the least possible ratio, decoding from the
//     keyframe at or before `start`: (start + F - keyframe) / F.
//  b. naive: a small libav loop written here, independent of video/: open
//     the file, decode from frame 0 counting frames in output order, and
//     convert the wanted ones to RGB24 with swscale (SWS_BILINEAR, the
//     frame's colour matrix and range, as video/reader.cc does). Its frames
//     must be byte-identical to shoal's; mismatches are counted, as are frames
//     whose pts differs from the probe's index (counting vs. pts matching).
//  c. ffmpeg CLI: `ffmpeg -threads 1 -filter_threads 1 -ss T -i FILE
//     -frames:v F -pix_fmt rgb24 -f rawvideo -` as a subprocess per clip, T
//     the start frame's pts in seconds from the file's start time; time
//     includes process start (`ffmpeg -version` alone is timed too, to
//     subtract). It runs twice per clip: with ffmpeg's default scaler
//     (bicubic flags, which for a same-size yuv420p -> rgb24 take swscale's
//     fast unscaled path, so frames differ from shoal's by about one level)
//     and with `-sws_flags bilinear` after -i (shoal's flags;
//     before -i the option goes to the input and is ignored), whose frames
//     must then be byte-identical. Frames are compared with shoal's: exact
//     matches are counted, and for every frame the shoal frame of the clip
//     it is closest to (mean absolute difference) tells whether ffmpeg
//     returned the same frame (offset 0) or a neighbour.
//  d. sequential: every frame of every video through one shoal reader
//     (ReadRange in chunks of F frames into one buffer: the reader goes on
//     decoding without seeking, checked), the naive loop, and the ffmpeg CLI
//     decoding only (`-f null -`), decoding + RGB24 with its default scaler,
//     and with shoal's (frame counts from -progress).
//
// Times are wall-clock (steady_clock) and CPU (the process's, or the
// child's user + sys from wait4), so a busy machine shows as CPU < wall.
// Not a ctest test; run by scripts/bench-video.sh.
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "base/random.h"
#include "video/video.h"

extern char** environ;

namespace shoal {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::ordered_json;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double ProcessCpu() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "shoal_video_bench: %s\n", message.c_str());
  std::exit(1);
}

std::string AvErrorText(int err) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, text, sizeof(text));
  return text;
}

// ---------------------------------------------------------------------------
// The videos.

struct Video {
  std::string path;
  Buffer bytes;
  std::shared_ptr<const VideoProbe> probe;
  double probe_seconds = 0;
  // The container's start time (AV_TIME_BASE units), which ffmpeg adds to
  // -ss; from avformat_find_stream_info.
  int64_t start_time = 0;
  uint64_t frames() const { return probe->index.pts.size(); }
};

Buffer ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot open " + path);
  std::vector<std::byte> bytes;
  in.seekg(0, std::ios::end);
  bytes.resize(static_cast<size_t>(in.tellg()));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()),
          static_cast<std::streamsize>(bytes.size()));
  if (!in) Die("cannot read " + path);
  return Buffer::FromVector(std::move(bytes));
}

int64_t ContainerStartTime(const std::string& path) {
  AVFormatContext* f = nullptr;
  int err = avformat_open_input(&f, path.c_str(), nullptr, nullptr);
  if (err < 0) Die(path + ": " + AvErrorText(err));
  err = avformat_find_stream_info(f, nullptr);
  const int64_t start = f->start_time == AV_NOPTS_VALUE ? 0 : f->start_time;
  avformat_close_input(&f);
  if (err < 0) Die(path + ": " + AvErrorText(err));
  return start;
}

std::vector<Video> LoadVideos(const std::string& dir) {
  std::vector<std::string> paths;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string ext = entry.path().extension().string();
    if (entry.is_regular_file() &&
        (ext == ".mp4" || ext == ".mov" || ext == ".mkv" || ext == ".webm")) {
      paths.push_back(entry.path().string());
    }
  }
  std::sort(paths.begin(), paths.end());
  if (paths.empty()) Die("no .mp4/.mov/.mkv/.webm files in " + dir);
  std::vector<Video> videos;
  for (const std::string& path : paths) {
    Video v;
    v.path = path;
    v.bytes = ReadWholeFile(path);
    const auto t0 = Clock::now();
    auto probe = ProbeVideo(v.bytes, path);
    v.probe_seconds = Seconds(t0, Clock::now());
    if (!probe.ok()) Die(probe.status().ToString());
    v.probe = std::make_shared<const VideoProbe>(*std::move(probe));
    v.start_time = ContainerStartTime(path);
    videos.push_back(std::move(v));
  }
  return videos;
}

// ---------------------------------------------------------------------------
// b. The naive reference: decode from the first frame, no seeking.

// The RGB converter, kept while the frame geometry stays the same (as
// video/reader.cc keeps its own).
struct NaiveConverter {
  int w = 0, h = 0, format = -1, colorspace = -1;
  bool full_range = false;
  SwsContext* sws = nullptr;
  ~NaiveConverter() { sws_freeContext(sws); }

  // Converts `frame` to RGB24 at `out` (frame->width * 3 bytes per row).
  std::string Convert(const AVFrame* frame, uint8_t* out) {
    bool full = frame->color_range == AVCOL_RANGE_JPEG;
    AVPixelFormat src = static_cast<AVPixelFormat>(frame->format);
    switch (src) {  // swscale spells full-range "J" formats as a flag
      case AV_PIX_FMT_YUVJ420P:
        src = AV_PIX_FMT_YUV420P;
        full = true;
        break;
      case AV_PIX_FMT_YUVJ422P:
        src = AV_PIX_FMT_YUV422P;
        full = true;
        break;
      case AV_PIX_FMT_YUVJ444P:
        src = AV_PIX_FMT_YUV444P;
        full = true;
        break;
      case AV_PIX_FMT_YUVJ440P:
        src = AV_PIX_FMT_YUV440P;
        full = true;
        break;
      case AV_PIX_FMT_YUVJ411P:
        src = AV_PIX_FMT_YUV411P;
        full = true;
        break;
      default:
        break;
    }
    if (!sws || w != frame->width || h != frame->height || format != src ||
        colorspace != frame->colorspace || full_range != full) {
      sws_freeContext(sws);
      sws = sws_getContext(frame->width, frame->height, src, frame->width,
                           frame->height, AV_PIX_FMT_RGB24, SWS_BILINEAR,
                           nullptr, nullptr, nullptr);
      if (!sws) return "sws_getContext failed";
      sws_setColorspaceDetails(
          sws, sws_getCoefficients(frame->colorspace), full ? 1 : 0,
          sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
      w = frame->width;
      h = frame->height;
      format = src;
      colorspace = frame->colorspace;
      full_range = full;
    }
    uint8_t* dst[4] = {out, nullptr, nullptr, nullptr};
    int stride[4] = {frame->width * 3, 0, 0, 0};
    if (sws_scale(sws, frame->data, frame->linesize, 0, frame->height, dst,
                  stride) != frame->height) {
      return "sws_scale failed";
    }
    return "";
  }
};

struct NaiveStats {
  uint64_t decoded = 0;
  uint64_t returned = 0;
  uint64_t pts_mismatches = 0;  // frame k's pts differs from the index's
};

// Decodes `path` from its first frame, frame k being the k-th frame the
// decoder outputs, and writes frames [first, first + count) as RGB24 to
// out + ((k - first) % ring) * frame_bytes. Stops after the last wanted
// frame. "" on success, else the error.
std::string NaiveDecode(const std::string& path, uint64_t first, uint64_t count,
                        uint64_t ring, const std::vector<int64_t>& index_pts,
                        NaiveConverter& converter, uint8_t* out,
                        NaiveStats& stats) {
  AVFormatContext* f = nullptr;
  int err = avformat_open_input(&f, path.c_str(), nullptr, nullptr);
  if (err < 0) return "open: " + AvErrorText(err);
  std::unique_ptr<AVFormatContext, void (*)(AVFormatContext*)> fmt(
      f, [](AVFormatContext* p) { avformat_close_input(&p); });
  const AVCodec* codec = nullptr;
  const int stream =
      av_find_best_stream(f, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (stream < 0) return "no video stream: " + AvErrorText(stream);
  for (unsigned i = 0; i < f->nb_streams; ++i) {
    if (static_cast<int>(i) != stream) f->streams[i]->discard = AVDISCARD_ALL;
  }
  std::unique_ptr<AVCodecContext, void (*)(AVCodecContext*)> ctx(
      avcodec_alloc_context3(codec),
      [](AVCodecContext* p) { avcodec_free_context(&p); });
  avcodec_parameters_to_context(ctx.get(), f->streams[stream]->codecpar);
  ctx->thread_count = 1;
  ctx->pkt_timebase = f->streams[stream]->time_base;
  err = avcodec_open2(ctx.get(), codec, nullptr);
  if (err < 0) return "decoder: " + AvErrorText(err);
  std::unique_ptr<AVPacket, void (*)(AVPacket*)> packet(
      av_packet_alloc(), [](AVPacket* p) { av_packet_free(&p); });
  std::unique_ptr<AVFrame, void (*)(AVFrame*)> frame(
      av_frame_alloc(), [](AVFrame* p) { av_frame_free(&p); });
  const uint64_t end = first + count;
  const size_t frame_bytes =
      size_t{static_cast<size_t>(ctx->width)} * ctx->height * 3;
  uint64_t k = 0;
  bool draining = false;
  while (k < end) {
    err = avcodec_receive_frame(ctx.get(), frame.get());
    if (err == 0) {
      ++stats.decoded;
      if (k >= first) {
        const int64_t pts = frame->pts != AV_NOPTS_VALUE
                                ? frame->pts
                                : frame->best_effort_timestamp;
        if (k >= index_pts.size() || pts != index_pts[k]) {
          ++stats.pts_mismatches;
        }
        std::string e = converter.Convert(
            frame.get(), out + ((k - first) % ring) * frame_bytes);
        if (!e.empty()) return e;
        ++stats.returned;
      }
      ++k;
      continue;
    }
    if (err == AVERROR_EOF) break;
    if (err != AVERROR(EAGAIN)) return "decode: " + AvErrorText(err);
    if (draining) break;
    err = av_read_frame(f, packet.get());
    if (err == AVERROR_EOF) {
      draining = true;
      avcodec_send_packet(ctx.get(), nullptr);
      continue;
    }
    if (err < 0) return "read: " + AvErrorText(err);
    if (packet->stream_index == stream) {
      err = avcodec_send_packet(ctx.get(), packet.get());
      if (err < 0 && err != AVERROR(EAGAIN)) {
        av_packet_unref(packet.get());
        return "send_packet: " + AvErrorText(err);
      }
    }
    av_packet_unref(packet.get());
  }
  if (k < end) {
    return "the stream ended at frame " + std::to_string(k) + ", wanted " +
           std::to_string(end);
  }
  return "";
}

// ---------------------------------------------------------------------------
// Subprocesses.

struct ProcessResult {
  int status = -1;  // exit status, or -1 when it did not exit normally
  double wall = 0;
  double cpu = 0;  // the child's user + sys
  std::vector<uint8_t> out;
  std::string err;
};

ProcessResult Run(const std::vector<std::string>& args, size_t expect_out) {
  ProcessResult r;
  r.out.reserve(expect_out);
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) Die("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) {
    posix_spawn_file_actions_addclose(&actions, fd);
  }
  std::vector<char*> argv;
  for (const std::string& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const auto t0 = Clock::now();
  pid_t pid;
  const int spawn_err =
      posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (spawn_err != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    r.err = std::string("cannot start ") + args[0] + ": " +
            std::strerror(spawn_err);
    return r;
  }
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  std::vector<uint8_t> chunk(1 << 20);
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Die("poll failed");
    }
    for (pollfd& p : fds) {
      if (p.fd < 0 || (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = read(p.fd, chunk.data(), chunk.size());
      if (n > 0) {
        if (p.fd == out_pipe[0]) {
          r.out.insert(r.out.end(), chunk.data(), chunk.data() + n);
        } else {
          r.err.append(reinterpret_cast<char*>(chunk.data()), n);
        }
      } else if (n == 0 || errno != EINTR) {
        close(p.fd);
        p.fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) Die("wait4 failed");
  }
  r.wall = Seconds(t0, Clock::now());
  r.cpu = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec * 1e-6 +
          usage.ru_stime.tv_sec + usage.ru_stime.tv_usec * 1e-6;
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// ---------------------------------------------------------------------------
// Tallies.

struct Tally {
  uint64_t clips = 0;
  uint64_t frames = 0;  // returned
  uint64_t decoded = 0;
  uint64_t seeks = 0;
  uint64_t errors = 0;
  double wall = 0;
  double cpu = 0;
  std::vector<double> clip_wall;  // per clip, for the median

  void Add(double w, double c) {
    wall += w;
    cpu += c;
    clip_wall.push_back(w);
  }
  double Median() const {
    if (clip_wall.empty()) return 0;
    std::vector<double> v = clip_wall;
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  }
};

double MeanAbsDiff(const uint8_t* a, const uint8_t* b, size_t n) {
  uint64_t sum = 0;
  // Blocks small enough for a 32-bit sum, which the compiler vectorizes.
  for (size_t at = 0; at < n; at += 65536) {
    const size_t end = std::min(n, at + 65536);
    uint32_t block = 0;
    for (size_t i = at; i < end; ++i) {
      const int d = int{a[i]} - int{b[i]};
      block += static_cast<uint32_t>(d < 0 ? -d : d);
    }
    sum += block;
  }
  return static_cast<double>(sum) / n;
}

std::string Fmt(const char* format, double v) {
  char text[64];
  std::snprintf(text, sizeof(text), format, v);
  return text;
}

struct Config {
  std::string dir;
  int clips = 200;
  int frames = 16;
  uint64_t seed = 1;
  std::string ffmpeg = "ffmpeg";
  std::string ffmpeg_sws_flags = "bilinear";
  int version_runs = 20;
  bool no_ffmpeg = false;
  bool no_sequential = false;
  std::string json;
};

int Main(int argc, char** argv) {
  Config config;
  CLI::App app{
      "Random clips from videos: shoal's seek-based VideoReader vs decoding "
      "from the start and the ffmpeg CLI; plus sequential decoding"};
  app.add_option("dir", config.dir, "folder of videos")->required();
  app.add_option("--clips", config.clips, "random clips")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--frames", config.frames, "frames per clip")
      ->check(CLI::Range(1, 1000));
  app.add_option("--seed", config.seed, "seed of the clip choice");
  app.add_option("--ffmpeg", config.ffmpeg, "the ffmpeg program");
  app.add_option("--ffmpeg-sws-flags", config.ffmpeg_sws_flags,
                 "-sws_flags of a second ffmpeg clip run (shoal's scaler by "
                 "default; \"\" skips it)");
  app.add_option("--version-runs", config.version_runs,
                 "runs of `ffmpeg -version` (process start time)")
      ->check(CLI::Range(1, 10000));
  app.add_flag("--no-ffmpeg", config.no_ffmpeg, "skip the ffmpeg CLI runs");
  app.add_flag("--no-sequential", config.no_sequential,
               "skip whole-video decoding");
  app.add_option("--json", config.json, "also write the results as JSON here");
  CLI11_PARSE(app, argc, argv);
  av_log_set_level(AV_LOG_ERROR);

  const std::string load_before = LoadAverage();
  const auto bench_start = Clock::now();
  std::vector<Video> videos = LoadVideos(config.dir);
  const uint64_t F = static_cast<uint64_t>(config.frames);
  for (const Video& v : videos) {
    if (v.frames() < F) {
      Die(v.path + " has " + std::to_string(v.frames()) +
          " frames, fewer than --frames");
    }
  }

  std::string ffmpeg_version;
  if (!config.no_ffmpeg) {
    ProcessResult r = Run({config.ffmpeg, "-version"}, 4096);
    if (r.status != 0) {
      Die(config.ffmpeg + " -version failed (" + r.err +
          "); install ffmpeg (sudo apt-get install ffmpeg) or pass "
          "--no-ffmpeg");
    }
    ffmpeg_version.assign(r.out.begin(),
                          std::find(r.out.begin(), r.out.end(), '\n'));
  }

  // The clips.
  struct Clip {
    size_t video;
    uint64_t start;
    uint64_t keyframe;  // at or before start
  };
  SplitMix64 rng(config.seed);
  std::vector<Clip> clips;
  for (int i = 0; i < config.clips; ++i) {
    Clip c;
    c.video = rng.Bounded(videos.size());
    const Video& v = videos[c.video];
    c.start = rng.Bounded(v.frames() - F + 1);
    const auto& keys = v.probe->index.keyframes;
    auto it = std::upper_bound(keys.begin(), keys.end(), c.start);
    c.keyframe = it == keys.begin() ? 0 : *(it - 1);
    clips.push_back(c);
  }

  // Buffers: every video of the folder has its own size, so size them for
  // the largest.
  size_t max_frame_bytes = 0;
  for (const Video& v : videos) {
    max_frame_bytes =
        std::max<size_t>(max_frame_bytes, size_t{v.probe->info.width} *
                                              v.probe->info.height * 3);
  }
  std::vector<uint8_t> shoal_rgb(F * max_frame_bytes, 1);
  std::vector<uint8_t> naive_rgb(F * max_frame_bytes, 2);
  NaiveConverter converter;
  const VideoReadOptions options;

  Tally shoal_tally, naive_tally;
  double min_ratio_sum = 0;
  uint64_t naive_mismatched_frames = 0, naive_pts_mismatches = 0;
  // The ffmpeg CLI per clip: with its default scaler, and with
  // --ffmpeg-sws-flags (an output option: placed before -i it would go to
  // the input and be ignored).
  struct FfmpegVariant {
    std::string sws_flags;  // "" = ffmpeg's default
    Tally tally;
    uint64_t exact = 0, compared = 0;
    double mad_sum = 0, best_mad_sum = 0;
    std::map<int, uint64_t> offsets;  // closest shoal frame - j
    std::string Name() const {
      return sws_flags.empty() ? "ffmpeg CLI -ss, default scaler"
                               : "ffmpeg CLI -ss -sws_flags " + sws_flags;
    }
  };
  std::vector<FfmpegVariant> ffmpeg_variants;
  if (!config.no_ffmpeg) {
    ffmpeg_variants.push_back({});
    if (!config.ffmpeg_sws_flags.empty()) {
      ffmpeg_variants.push_back({});
      ffmpeg_variants.back().sws_flags = config.ffmpeg_sws_flags;
    }
  }
  std::vector<std::string> errors;
  auto error = [&](const std::string& e) {
    if (errors.size() < 20) errors.push_back(e);
  };

  // One clip through every method; `count` false for the warm-up.
  auto run_clip = [&](const Clip& c, bool count) {
    const Video& v = videos[c.video];
    const size_t fb = size_t{v.probe->info.width} * v.probe->info.height * 3;
    const std::string where = v.path + " frames " + std::to_string(c.start) +
                              ".." + std::to_string(c.start + F - 1);
    // a. shoal
    {
      const auto t0 = Clock::now();
      const double c0 = ProcessCpu();
      auto reader = VideoReader::Open(v.bytes, v.probe, v.path);
      Status s =
          reader.ok()
              ? (*reader)->ReadRange(
                    c.start, c.start + F, 1, options,
                    MutableByteSpan(
                        reinterpret_cast<std::byte*>(shoal_rgb.data()), F * fb))
              : reader.status();
      const double wall = Seconds(t0, Clock::now());
      const double cpu = ProcessCpu() - c0;
      if (count) {
        ++shoal_tally.clips;
        shoal_tally.Add(wall, cpu);
        min_ratio_sum += static_cast<double>(c.start + F - c.keyframe) /
                         static_cast<double>(F);
        if (s.ok()) {
          const VideoReadStats& st = (*reader)->stats();
          shoal_tally.frames += st.frames_returned;
          shoal_tally.decoded += st.frames_decoded;
          shoal_tally.seeks += st.seeks;
        } else {
          ++shoal_tally.errors;
          error("shoal, " + where + ": " + s.ToString());
        }
      }
      if (!s.ok() && !count) Die("warm-up, shoal: " + s.ToString());
    }
    // b. naive
    {
      NaiveStats ns;
      const auto t0 = Clock::now();
      const double c0 = ProcessCpu();
      std::string e = NaiveDecode(v.path, c.start, F, F, v.probe->index.pts,
                                  converter, naive_rgb.data(), ns);
      const double wall = Seconds(t0, Clock::now());
      const double cpu = ProcessCpu() - c0;
      if (count) {
        ++naive_tally.clips;
        naive_tally.Add(wall, cpu);
        naive_tally.frames += ns.returned;
        naive_tally.decoded += ns.decoded;
        naive_pts_mismatches += ns.pts_mismatches;
        if (!e.empty()) {
          ++naive_tally.errors;
          error("naive, " + where + ": " + e);
        }
        for (uint64_t j = 0; j < F; ++j) {
          if (std::memcmp(naive_rgb.data() + j * fb, shoal_rgb.data() + j * fb,
                          fb) != 0) {
            ++naive_mismatched_frames;
            error("naive vs shoal, " + where + ": frame " +
                  std::to_string(c.start + j) + " differs (mean abs diff " +
                  Fmt("%.3f", MeanAbsDiff(naive_rgb.data() + j * fb,
                                          shoal_rgb.data() + j * fb, fb)) +
                  ")");
          }
        }
      }
    }
    // c. ffmpeg CLI
    if (!config.no_ffmpeg) {
      const auto& index = v.probe->index;
      const double tb = v.probe->info.time_base.value();
      const double ss = static_cast<double>(index.pts[c.start]) * tb -
                        static_cast<double>(v.start_time) / AV_TIME_BASE;
      for (FfmpegVariant& fv : ffmpeg_variants) {
        std::vector<std::string> args = {
            config.ffmpeg, "-hide_banner",    "-nostdin",
            "-loglevel",   "error",           "-threads",
            "1",           "-filter_threads", "1",
            "-ss",         Fmt("%.6f", ss),   "-i",
            v.path};
        if (!fv.sws_flags.empty()) {
          args.push_back("-sws_flags");
          args.push_back(fv.sws_flags);
        }
        for (const char* a :
             {"-frames:v", "", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"}) {
          args.push_back(*a ? a : std::to_string(F));
        }
        ProcessResult r = Run(args, F * fb);
        if (!count) {
          if (r.status != 0) Die("warm-up, ffmpeg: " + r.err);
          continue;
        }
        Tally& t = fv.tally;
        ++t.clips;
        t.Add(r.wall, r.cpu);
        const uint64_t got = r.out.size() / fb;
        t.frames += got;
        if (r.status != 0 || r.out.size() != F * fb) {
          ++t.errors;
          error(fv.Name() + " " + Fmt("%.6f", ss) + ", " + where + ": exit " +
                std::to_string(r.status) + ", " + std::to_string(r.out.size()) +
                " bytes: " + r.err);
        }
        for (uint64_t j = 0; j < got && j < F; ++j) {
          const uint8_t* ff = r.out.data() + j * fb;
          ++fv.compared;
          if (std::memcmp(ff, shoal_rgb.data() + j * fb, fb) == 0) {
            ++fv.exact;  // the same frame: no other can be closer
            ++fv.offsets[0];
            continue;
          }
          double best = 1e300;
          int best_i = 0;
          for (uint64_t i = 0; i < F; ++i) {
            const double d = MeanAbsDiff(ff, shoal_rgb.data() + i * fb, fb);
            if (i == j) fv.mad_sum += d;
            if (d < best) {
              best = d;
              best_i = static_cast<int>(i);
            }
          }
          fv.best_mad_sum += best;
          ++fv.offsets[best_i - static_cast<int>(j)];
        }
      }
    }
  };

  const bool tty = isatty(2) != 0;
  run_clip(clips[0], false);  // warm-up: page cache, libraries, sws tables
  const auto clips_start = Clock::now();
  for (size_t i = 0; i < clips.size(); ++i) {
    run_clip(clips[i], true);
    if (tty ? (i + 1) % 10 == 0 || i + 1 == clips.size()
            : (i + 1) % 50 == 0 || i + 1 == clips.size()) {
      std::fprintf(stderr, "%sshoal_video_bench: clip %zu/%zu (%.0f s)%s",
                   tty ? "\r" : "", i + 1, clips.size(),
                   Seconds(clips_start, Clock::now()), tty ? "" : "\n");
    }
  }
  if (tty) std::fprintf(stderr, "\n");
  const double clips_seconds = Seconds(clips_start, Clock::now());

  // ffmpeg process start alone.
  Tally version_tally;
  if (!config.no_ffmpeg) {
    for (int i = 0; i < config.version_runs; ++i) {
      ProcessResult r = Run({config.ffmpeg, "-version"}, 4096);
      version_tally.Add(r.wall, r.cpu);
      ++version_tally.clips;
    }
  }

  // d. Sequential.
  struct Sequential {
    std::string name;
    std::string command;                   // "" for the in-process ones
    std::vector<std::string> output_args;  // ffmpeg's, after -i FILE
    Tally tally;
  };
  std::vector<Sequential> sequential;
  uint64_t sequential_shoal_seeks = 0;
  if (!config.no_sequential) {
    sequential = {
        {"shoal VideoReader, ReadRange in chunks of " + std::to_string(F),
         "",
         {},
         {}},
        {"naive libav loop + swscale RGB24", "", {}, {}},
    };
    if (!config.no_ffmpeg) {
      auto add = [&](std::string name, std::vector<std::string> args) {
        std::string command =
            config.ffmpeg + " -threads 1 -filter_threads 1 -i FILE";
        for (const std::string& a : args) command += " " + a;
        command += " -f null -";
        sequential.push_back({std::move(name), command, args, {}});
      };
      add("ffmpeg CLI, decode only", {});
      add("ffmpeg CLI, decode + RGB24", {"-pix_fmt", "rgb24"});
      if (!config.ffmpeg_sws_flags.empty()) {
        add("ffmpeg CLI, decode + RGB24 with shoal's scaler",
            {"-sws_flags", config.ffmpeg_sws_flags, "-pix_fmt", "rgb24"});
      }
    }
    for (size_t vi = 0; vi < videos.size(); ++vi) {
      const Video& v = videos[vi];
      const uint64_t n = v.frames();
      const size_t fb = size_t{v.probe->info.width} * v.probe->info.height * 3;
      {
        Tally& t = sequential[0].tally;
        const auto t0 = Clock::now();
        const double c0 = ProcessCpu();
        auto reader = VideoReader::Open(v.bytes, v.probe, v.path);
        if (!reader.ok()) Die(reader.status().ToString());
        for (uint64_t b = 0; b < n; b += F) {
          const uint64_t e = std::min(n, b + F);
          Status s = (*reader)->ReadRange(
              b, e, 1, options,
              MutableByteSpan(reinterpret_cast<std::byte*>(shoal_rgb.data()),
                              (e - b) * fb));
          if (!s.ok()) {
            ++t.errors;
            error("sequential shoal: " + s.ToString());
            break;
          }
        }
        t.Add(Seconds(t0, Clock::now()), ProcessCpu() - c0);
        ++t.clips;
        t.frames += (*reader)->stats().frames_returned;
        t.decoded += (*reader)->stats().frames_decoded;
        t.seeks += (*reader)->stats().seeks;
        sequential_shoal_seeks += (*reader)->stats().seeks;
      }
      {
        Tally& t = sequential[1].tally;
        NaiveStats ns;
        const auto t0 = Clock::now();
        const double c0 = ProcessCpu();
        std::string e = NaiveDecode(v.path, 0, n, F, v.probe->index.pts,
                                    converter, naive_rgb.data(), ns);
        t.Add(Seconds(t0, Clock::now()), ProcessCpu() - c0);
        ++t.clips;
        t.frames += ns.returned;
        t.decoded += ns.decoded;
        if (!e.empty()) {
          ++t.errors;
          error("sequential naive, " + v.path + ": " + e);
        }
      }
      if (!config.no_ffmpeg) {
        for (size_t m = 2; m < sequential.size(); ++m) {
          Tally& t = sequential[m].tally;
          // -progress pipe:2 prints "frame=N" (frames written) at the end.
          std::vector<std::string> args = {
              config.ffmpeg, "-hide_banner",    "-nostdin", "-loglevel",
              "error",       "-progress",       "pipe:2",   "-threads",
              "1",           "-filter_threads", "1",        "-i",
              v.path};
          for (const std::string& a : sequential[m].output_args) {
            args.push_back(a);
          }
          for (const char* a : {"-f", "null", "-"}) args.push_back(a);
          ProcessResult r = Run(args, 0);
          t.Add(r.wall, r.cpu);
          ++t.clips;
          uint64_t written = 0;
          for (size_t at = r.err.find("frame="); at != std::string::npos;
               at = r.err.find("frame=", at + 1)) {
            written = std::strtoull(r.err.c_str() + at + 6, nullptr, 10);
          }
          t.frames += written;
          if (written != n) {
            ++t.errors;
            error("sequential ffmpeg, " + v.path + ": " +
                  std::to_string(written) + " frames, the index has " +
                  std::to_string(n));
          }
          if (r.status != 0) {
            ++t.errors;
            error("sequential ffmpeg, " + v.path + ": " + r.err);
          }
        }
      }
      if (tty || vi + 1 == videos.size()) {
        std::fprintf(stderr, "%sshoal_video_bench: sequential %zu/%zu%s",
                     tty ? "\r" : "", vi + 1, videos.size(), tty ? "" : "\n");
      }
    }
    if (tty) std::fprintf(stderr, "\n");
  }
  const double total_seconds = Seconds(bench_start, Clock::now());
  const std::string load_after = LoadAverage();

  // ---- Report.
  uint64_t total_frames = 0, bytes = 0;
  double probe_seconds = 0;
  for (const Video& v : videos) {
    total_frames += v.frames();
    bytes += v.bytes.size();
    probe_seconds += v.probe_seconds;
  }
  const VideoInfo& info0 = videos[0].probe->info;
  std::printf("shoal_video_bench %s --clips %d --frames %d --seed %" PRIu64
              "\n",
              config.dir.c_str(), config.clips, config.frames, config.seed);
  std::printf("%zu videos, %" PRIu64
              " frames, %.1f MB (%.2f Mbit/s mean); first: %s "
              "%s %ux%u %s, %.3f fps, %" PRIu64
              " frames, keyframe interval %" PRIu64 "\n",
              videos.size(), total_frames, bytes / 1e6,
              bytes * 8.0 / 1e6 /
                  (total_frames / std::max(info0.frame_rate.value(), 1e-9)),
              info0.container.c_str(), info0.codec.c_str(), info0.width,
              info0.height, info0.pixel_format.c_str(),
              info0.frame_rate.value(), videos[0].frames(),
              videos[0].probe->index.MaxKeyframeInterval());
  std::printf("FFmpeg libraries %s (libavcodec %s); CLI: %s\n",
              av_version_info(), LIBAVCODEC_IDENT,
              config.no_ffmpeg ? "(not run)" : ffmpeg_version.c_str());
  std::printf(
      "ProbeVideo (ingestion, not in the times below): %.1f ms per video\n",
      probe_seconds * 1e3 / videos.size());
  std::printf(
      "%zu hardware threads; load average %s before, %s after; one thread "
      "per method; %.0f s in all (clips %.0f s)\n\n",
      static_cast<size_t>(std::thread::hardware_concurrency()),
      load_before.c_str(), load_after.c_str(), total_seconds, clips_seconds);

  std::printf(
      "Random clips: %d clips x %d frames, same clips for every method\n\n",
      config.clips, config.frames);
  std::printf(
      "| method | frames/s | ms/clip (mean) | ms/clip (median) | CPU ms/clip "
      "| seeks/clip | decoded ÷ returned | frames equal to shoal's |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---|\n");
  auto row = [&](const char* name, const Tally& t, const std::string& seeks,
                 const std::string& ratio, const std::string& equal) {
    std::printf("| %s | %.1f | %.2f | %.2f | %.2f | %s | %s | %s |\n", name,
                t.frames / t.wall, t.wall * 1e3 / t.clips, t.Median() * 1e3,
                t.cpu * 1e3 / t.clips, seeks.c_str(), ratio.c_str(),
                equal.c_str());
  };
  const double min_ratio = min_ratio_sum / clips.size();
  row("shoal VideoReader::Open + ReadRange", shoal_tally,
      Fmt("%.2f", double(shoal_tally.seeks) / shoal_tally.clips),
      Fmt("%.2f", double(shoal_tally.decoded) / shoal_tally.frames) +
          " (least possible " + Fmt("%.2f", min_ratio) + ")",
      "-");
  row("naive libav, decode from frame 0", naive_tally, "0",
      Fmt("%.2f", double(naive_tally.decoded) / naive_tally.frames),
      Fmt("%.0f", double(naive_tally.frames - naive_mismatched_frames)) + "/" +
          std::to_string(naive_tally.frames) + " byte-identical");
  auto offsets_text = [](const FfmpegVariant& fv) {
    std::string text;
    for (const auto& [offset, n] : fv.offsets) {
      text += (text.empty() ? "" : ", ") + std::string(offset > 0 ? "+" : "") +
              std::to_string(offset) + ": " + std::to_string(n);
    }
    return text;
  };
  for (const FfmpegVariant& fv : ffmpeg_variants) {
    const uint64_t n = std::max<uint64_t>(fv.compared, 1);
    row((fv.Name() + " (subprocess, incl. start)").c_str(), fv.tally, "-", "-",
        std::to_string(fv.exact) + "/" + std::to_string(fv.compared) +
            " byte-identical; mean abs diff " + Fmt("%.3f", fv.mad_sum / n) +
            "; closest shoal frame at offset " + offsets_text(fv));
  }
  const double version_mean =
      version_tally.clips ? version_tally.wall / version_tally.clips : 0;
  if (!config.no_ffmpeg) {
    std::printf(
        "| `ffmpeg -version` alone (process start), %d runs | - | %.2f | %.2f "
        "| %.2f | - | - | - |\n",
        config.version_runs, version_mean * 1e3, version_tally.Median() * 1e3,
        version_tally.cpu * 1e3 / version_tally.clips);
    std::printf(
        "\nffmpeg clip command: %s -hide_banner -nostdin -loglevel error "
        "-threads 1 -filter_threads 1 -ss T -i FILE [-sws_flags FLAGS] "
        "-frames:v %d -pix_fmt rgb24 -f rawvideo -\n(T: the start frame's pts "
        "in seconds from the file's start time, 6 decimals)\n",
        config.ffmpeg.c_str(), config.frames);
  }
  std::printf("\nshoal speed-up (clip wall time): %.2fx over naive",
              naive_tally.wall / shoal_tally.wall);
  for (const FfmpegVariant& fv : ffmpeg_variants) {
    std::printf(
        "; %.2fx over %s (%.2fx with its mean `ffmpeg -version` time "
        "subtracted)",
        fv.tally.wall / shoal_tally.wall, fv.Name().c_str(),
        (fv.tally.wall - version_mean * fv.tally.clips) / shoal_tally.wall);
  }
  uint64_t ffmpeg_errors = 0;
  for (const FfmpegVariant& fv : ffmpeg_variants)
    ffmpeg_errors += fv.tally.errors;
  std::printf("\nnaive frames whose pts differs from the index: %" PRIu64
              "; errors: shoal %" PRIu64 ", naive %" PRIu64 ", ffmpeg %" PRIu64
              "\n",
              naive_pts_mismatches, shoal_tally.errors, naive_tally.errors,
              ffmpeg_errors);

  if (!config.no_sequential) {
    std::printf("\nSequential: every frame of the %zu videos (%" PRIu64
                " frames)\n\n",
                videos.size(), total_frames);
    std::printf(
        "| method | frames/s | frames/s less process starts | s in all | CPU "
        "s | decoded ÷ returned | seeks |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n");
    const double start_seconds =
        version_tally.clips ? version_tally.wall / version_tally.clips : 0;
    for (const Sequential& s : sequential) {
      const bool ours = s.command.empty();
      std::printf(
          "| %s | %.1f | %s | %.2f | %.2f | %s | %s |\n",
          (s.command.empty() ? s.name : s.name + ": `" + s.command + "`")
              .c_str(),
          s.tally.frames / s.tally.wall,
          ours ? "-"
               : Fmt("%.1f", s.tally.frames /
                                 (s.tally.wall - start_seconds * s.tally.clips))
                     .c_str(),
          s.tally.wall, s.tally.cpu,
          ours ? Fmt("%.3f", double(s.tally.decoded) / s.tally.frames).c_str()
               : "-",
          &s == &sequential[0] ? std::to_string(sequential_shoal_seeks).c_str()
                               : "-");
    }
  }
  if (!errors.empty()) {
    std::printf("\nErrors (first %zu):\n", errors.size());
    for (const std::string& e : errors) std::printf("  %s\n", e.c_str());
  }

  if (!config.json.empty()) {
    auto tally_json = [](const Tally& t) {
      ordered_json j;
      j["runs"] = t.clips;
      j["frames_returned"] = t.frames;
      j["frames_decoded"] = t.decoded;
      j["seeks"] = t.seeks;
      j["errors"] = t.errors;
      j["wall_seconds"] = t.wall;
      j["cpu_seconds"] = t.cpu;
      j["frames_per_second"] = t.wall > 0 ? t.frames / t.wall : 0;
      j["median_run_seconds"] = t.Median();
      return j;
    };
    ordered_json j;
    j["dir"] = config.dir;
    j["clips"] = config.clips;
    j["frames"] = config.frames;
    j["seed"] = config.seed;
    j["videos"] = videos.size();
    j["video_frames"] = total_frames;
    j["video_bytes"] = bytes;
    j["ffmpeg_libraries"] = av_version_info();
    j["ffmpeg_cli"] = ffmpeg_version;
    j["load_before"] = load_before;
    j["load_after"] = load_after;
    j["total_seconds"] = total_seconds;
    j["probe_seconds_per_video"] = probe_seconds / videos.size();
    ordered_json c;
    c["shoal"] = tally_json(shoal_tally);
    c["shoal"]["least_possible_decoded_per_returned"] = min_ratio;
    c["naive"] = tally_json(naive_tally);
    c["naive"]["frames_differing_from_shoal"] = naive_mismatched_frames;
    c["naive"]["pts_mismatches"] = naive_pts_mismatches;
    if (!config.no_ffmpeg) {
      ordered_json list = ordered_json::array();
      for (const FfmpegVariant& fv : ffmpeg_variants) {
        ordered_json e = tally_json(fv.tally);
        e["name"] = fv.Name();
        e["sws_flags"] = fv.sws_flags;
        e["frames_identical_to_shoal"] = fv.exact;
        e["frames_compared"] = fv.compared;
        const uint64_t n = std::max<uint64_t>(fv.compared, 1);
        e["mean_abs_diff"] = fv.mad_sum / n;
        e["mean_abs_diff_closest"] = fv.best_mad_sum / n;
        ordered_json o;
        for (const auto& [offset, k] : fv.offsets)
          o[std::to_string(offset)] = k;
        e["closest_shoal_frame_offsets"] = o;
        list.push_back(e);
      }
      c["ffmpeg_cli"] = list;
      c["ffmpeg_version"] = tally_json(version_tally);
    }
    j["clips_results"] = c;
    ordered_json s = ordered_json::array();
    for (const Sequential& q : sequential) {
      ordered_json e = tally_json(q.tally);
      e["name"] = q.name;
      if (!q.command.empty()) e["command"] = q.command;
      s.push_back(e);
    }
    j["sequential"] = s;
    j["errors"] = errors;
    std::ofstream out(config.json);
    out << j.dump(2) << "\n";
    if (!out) Die("cannot write " + config.json);
  }
  const bool failed = shoal_tally.errors + naive_tally.errors +
                          naive_mismatched_frames + ffmpeg_errors >
                      0;
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) { return shoal::Main(argc, argv); }
