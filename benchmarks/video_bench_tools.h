// The tools of shoal_video_bench (video_bench.cc): clocks and load, the
// videos of a folder with their probes, a naive libav decoder to compare
// against, child processes with their CPU time, tallies. Header-only: one
// benchmark program includes it.
#ifndef SHOAL_BENCHMARKS_VIDEO_BENCH_TOOLS_H_
#define SHOAL_BENCHMARKS_VIDEO_BENCH_TOOLS_H_

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
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "base/random.h"
#include "video/video.h"

extern char** environ;

namespace shoal::video_bench {

using Clock = std::chrono::steady_clock;
using nlohmann::ordered_json;

inline double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

inline double ProcessCpu() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

inline std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

[[noreturn]] inline void Die(const std::string& message) {
  std::fprintf(stderr, "shoal_video_bench: %s\n", message.c_str());
  std::exit(1);
}

inline std::string AvErrorText(int err) {
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

inline Buffer ReadWholeFile(const std::string& path) {
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

inline int64_t ContainerStartTime(const std::string& path) {
  AVFormatContext* f = nullptr;
  int err = avformat_open_input(&f, path.c_str(), nullptr, nullptr);
  if (err < 0) Die(path + ": " + AvErrorText(err));
  err = avformat_find_stream_info(f, nullptr);
  const int64_t start = f->start_time == AV_NOPTS_VALUE ? 0 : f->start_time;
  avformat_close_input(&f);
  if (err < 0) Die(path + ": " + AvErrorText(err));
  return start;
}

inline std::vector<Video> LoadVideos(const std::string& dir) {
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
inline std::string NaiveDecode(const std::string& path, uint64_t first,
                               uint64_t count, uint64_t ring,
                               const std::vector<int64_t>& index_pts,
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

inline ProcessResult Run(const std::vector<std::string>& args,
                         size_t expect_out) {
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

inline double MeanAbsDiff(const uint8_t* a, const uint8_t* b, size_t n) {
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

inline std::string Fmt(const char* format, double v) {
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

// d. Sequential: every video decoded whole, by shoal (ReadRange in chunks
// of `F` frames), the naive libav loop and the ffmpeg CLI.
struct Sequential {
  std::string name;
  std::string command;                   // "" for the in-process ones
  std::vector<std::string> output_args;  // ffmpeg's, after -i FILE
  Tally tally;
};
struct SequentialRun {
  std::vector<Sequential> methods;
  uint64_t shoal_seeks = 0;
};

inline SequentialRun RunSequential(
    const Config& config, const std::vector<Video>& videos, uint64_t F,
    bool tty, NaiveConverter& converter, std::vector<uint8_t>& shoal_rgb,
    std::vector<uint8_t>& naive_rgb,
    const std::function<void(const std::string&)>& error) {
  const VideoReadOptions options;
  SequentialRun run;
  run.methods = {
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
      run.methods.push_back({std::move(name), command, args, {}});
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
      Tally& t = run.methods[0].tally;
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
      run.shoal_seeks += (*reader)->stats().seeks;
    }
    {
      Tally& t = run.methods[1].tally;
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
      for (size_t m = 2; m < run.methods.size(); ++m) {
        Tally& t = run.methods[m].tally;
        // -progress pipe:2 prints "frame=N" (frames written) at the end.
        std::vector<std::string> args = {
            config.ffmpeg, "-hide_banner",    "-nostdin", "-loglevel",
            "error",       "-progress",       "pipe:2",   "-threads",
            "1",           "-filter_threads", "1",        "-i",
            v.path};
        for (const std::string& a : run.methods[m].output_args) {
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
  return run;
}

}  // namespace shoal::video_bench

#endif  // SHOAL_BENCHMARKS_VIDEO_BENCH_TOOLS_H_
