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
#include <CLI/CLI.hpp>
#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/random.h"
#include "benchmarks/video_bench_tools.h"

namespace shoal::video_bench {

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

  SequentialRun seq;
  if (!config.no_sequential) {
    seq = RunSequential(config, videos, F, tty, converter, shoal_rgb, naive_rgb,
                        error);
  }
  const std::vector<Sequential>& sequential = seq.methods;
  const uint64_t sequential_shoal_seeks = seq.shoal_seeks;
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

}  // namespace shoal::video_bench

int main(int argc, char** argv) { return shoal::video_bench::Main(argc, argv); }
