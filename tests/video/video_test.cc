// ProbeVideo, the JSON form of a probe and VideoReader, each against
// something independent of video/: ffprobe's packet and frame tables and
// ffmpeg's framemd5 (tests/data/video/probe, made by ffprobe/ffmpeg 5.1) and
// ffprobe run live; colour equations and a box downscale written out here;
// and, for random access, the reader's own sequential decode (whose native
// frames equal framemd5). Errors: the corrupt file's damaged GOP, truncated
// and random bytes, hostile JSON. Output buffers carry guard bytes: nothing
// may be written past the caller's buffer.
#include "video/video.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include "base/random.h"

extern "C" {
#include <libavutil/imgutils.h>
#include <libavutil/md5.h>
}

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "video/internal/frame_decoder.h"

namespace shoal {
namespace {

using internal::FrameDecoder;
using nlohmann::json;

const std::string kDataDir = SHOAL_TEST_DATA "/video/";
constexpr char kNasa[] = "nasa_13013.mp4";
constexpr char kFullRange[] = "bt709_full_range.mp4";
constexpr char kCorrupted[] = "corrupted.mp4";

// ------------------------------------------------------------ test data --

Buffer ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  return Buffer::FromString(std::move(bytes));
}

Buffer ReadVideo(const std::string& file) { return ReadFile(kDataDir + file); }

// Lines of a text file without their line ends (the CSVs have CRLF).
std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) {
      line.pop_back();
    }
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::vector<std::string> Split(const std::string& line, char sep) {
  std::vector<std::string> fields;
  std::stringstream s(line);
  for (std::string field; std::getline(s, field, sep);) {
    const size_t a = field.find_first_not_of(' ');
    fields.push_back(a == std::string::npos ? "" : field.substr(a));
  }
  return fields;
}

// A CSV with a header line, as rows of column name -> value.
std::vector<std::map<std::string, std::string>> ReadCsv(
    const std::string& path) {
  const std::vector<std::string> lines = ReadLines(path);
  std::vector<std::map<std::string, std::string>> rows;
  if (lines.empty()) return rows;
  const std::vector<std::string> header = Split(lines[0], ',');
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::vector<std::string> fields = Split(lines[i], ',');
    EXPECT_EQ(fields.size(), header.size()) << path << " line " << i;
    std::map<std::string, std::string> row;
    for (size_t c = 0; c < header.size() && c < fields.size(); ++c) {
      row[header[c]] = fields[c];
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

// What ffprobe/ffmpeg said about one stream (tests/data/video/probe).
struct Truth {
  std::vector<int64_t> frame_pts;       // frames.csv, presentation order
  std::vector<uint64_t> key_frames;     // frames.csv rows with key_frame 1
  std::vector<int64_t> packet_pts;      // packets.csv, decode order
  std::vector<int64_t> key_packet_pts;  // packets flagged K
  std::vector<std::string> md5;         // framemd5, in output order
  std::vector<size_t> md5_size;         // bytes of each packed frame
};

Truth LoadTruth(const std::string& file, int stream) {
  const std::string base =
      kDataDir + "probe/" + file + ".stream" + std::to_string(stream);
  Truth t;
  for (const auto& row : ReadCsv(base + ".frames.csv")) {
    if (row.at("key_frame") == "1") t.key_frames.push_back(t.frame_pts.size());
    t.frame_pts.push_back(std::stoll(row.at("pts")));
  }
  for (const auto& row : ReadCsv(base + ".packets.csv")) {
    t.packet_pts.push_back(std::stoll(row.at("pts")));
    if (row.at("flags").find('K') != std::string::npos) {
      t.key_packet_pts.push_back(t.packet_pts.back());
    }
  }
  // "#stream#, dts, pts, duration, size, hash" after the '#' header lines.
  for (const std::string& line : ReadLines(base + ".framemd5")) {
    if (line[0] == '#') continue;
    const std::vector<std::string> fields = Split(line, ',');
    EXPECT_EQ(fields.size(), 6u) << line;
    if (fields.size() != 6) continue;
    t.md5_size.push_back(std::stoull(fields[4]));
    t.md5.push_back(fields[5]);
  }
  return t;
}

// The facts of the stream ProbeVideo reads, from ffprobe (the table in
// tests/data/video/README.md).
struct Facts {
  std::string file;
  std::string container;
  std::string codec;
  int stream;
  uint32_t width;
  uint32_t height;
  int rotation;
  Rational frame_rate;
  Rational time_base;
  std::string pixel_format;
  std::string color_range;
  std::string color_space;
  uint64_t packets;  // frames in the index
  uint64_t decoded;  // frames FFmpeg decodes (ffprobe -count_frames)
  std::vector<uint64_t> keyframes;
  uint64_t max_keyframe_interval;
};

// gtest prints test parameters; without this it dumps the bytes (padding
// included).
void PrintTo(const Facts& facts, std::ostream* os) { *os << facts.file; }

const std::vector<Facts>& AllFacts() {
  static const std::vector<Facts> facts = {
      {.file = kNasa,
       .container = "mp4",
       .codec = "h264",
       .stream = 3,
       .width = 480,
       .height = 270,
       .rotation = 0,
       .frame_rate = {30000, 1001},
       .time_base = {1, 30000},
       .pixel_format = "yuv420p",
       .color_range = "tv",
       .color_space = "bt709",
       .packets = 390,
       .decoded = 390,
       .keyframes = {0, 240},
       .max_keyframe_interval = 240},
      {.file = kFullRange,
       .container = "mp4",
       .codec = "h264",
       .stream = 0,
       .width = 1280,
       .height = 720,
       .rotation = 0,
       .frame_rate = {30, 1},
       .time_base = {1, 15360},
       .pixel_format = "yuvj420p",
       .color_range = "pc",
       .color_space = "bt709",
       .packets = 30,
       .decoded = 30,
       .keyframes = {0},
       .max_keyframe_interval = 30},
      {.file = "video_90.mov",
       .container = "mov",
       .codec = "h264",
       .stream = 0,
       .width = 568,
       .height = 320,
       .rotation = -90,
       .frame_rate = {30, 1},
       .time_base = {1, 19200},
       .pixel_format = "yuv420p",
       .color_range = "tv",
       .color_space = "bt709",
       .packets = 3,
       .decoded = 3,
       .keyframes = {0},
       .max_keyframe_interval = 3},
      // ffprobe: color_space "unknown".
      {.file = "bbb_480p_vp9_opus_1second.webm",
       .container = "webm",
       .codec = "vp9",
       .stream = 0,
       .width = 854,
       .height = 480,
       .rotation = 0,
       .frame_rate = {24, 1},
       .time_base = {1, 1000},
       .pixel_format = "yuv420p",
       .color_range = "tv",
       .color_space = "",
       .packets = 24,
       .decoded = 24,
       .keyframes = {0},
       .max_keyframe_interval = 24},
      // ffprobe: color_range and color_space "unknown".
      {.file = kCorrupted,
       .container = "mp4",
       .codec = "h264",
       .stream = 0,
       .width = 1280,
       .height = 720,
       .rotation = 0,
       .frame_rate = {10, 1},
       .time_base = {1, 10240},
       .pixel_format = "yuv420p",
       .color_range = "",
       .color_space = "",
       .packets = 50,
       .decoded = 49,
       .keyframes = {0},
       .max_keyframe_interval = 50},
  };
  return facts;
}

const Facts& FactsOf(const std::string& file) {
  for (const Facts& f : AllFacts()) {
    if (f.file == file) return f;
  }
  ADD_FAILURE() << "no facts for " << file;
  return AllFacts()[0];
}

std::string TestName(const testing::TestParamInfo<Facts>& info) {
  std::string name = info.param.file;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

// ------------------------------------------------------------- decoding --

uint64_t Hash(const std::byte* data, size_t size) {
  return XXH3_64bits(data, size);
}

// An output buffer followed by guard bytes that a read must leave alone.
// swscale's SIMD code is not instrumented by ASan, so a write past the
// caller's buffer shows only here (or under valgrind).
class Guarded {
 public:
  explicit Guarded(size_t size) : size_(size), bytes_(size + kGuard, kFill) {}
  MutableByteSpan span() { return {bytes_.data(), size_}; }
  std::byte* data() { return bytes_.data(); }
  size_t size() const { return size_; }
  // Bytes of the guard that were written over.
  size_t Overrun() const {
    return static_cast<size_t>(
        std::count_if(bytes_.begin() + static_cast<ptrdiff_t>(size_),
                      bytes_.end(), [](std::byte b) { return b != kFill; }));
  }

 private:
  static constexpr size_t kGuard = 256;
  static constexpr std::byte kFill{0xa5};
  size_t size_;
  std::vector<std::byte> bytes_;
};

std::unique_ptr<VideoReader> OpenReader(const Buffer& bytes,
                                        const VideoProbe& probe,
                                        const std::string& name) {
  auto reader = VideoReader::Open(bytes, probe, name);
  EXPECT_TRUE(reader.ok()) << reader.status();
  return reader.ok() ? std::move(*reader) : nullptr;
}

VideoProbe MustProbe(const Buffer& bytes, const std::string& name) {
  auto probe = ProbeVideo(bytes, name);
  EXPECT_TRUE(probe.ok()) << probe.status();
  return probe.ok() ? std::move(*probe) : VideoProbe{};
}

// One decoded frame in its native pixel format, as ffmpeg's framemd5 sees
// it: packed rows (alignment 1), MD5 in hex.
struct NativeFrame {
  int64_t pts = 0;
  size_t size = 0;
  std::string md5;
};

NativeFrame Describe(const AVFrame* frame) {
  NativeFrame f;
  f.pts =
      frame->pts != AV_NOPTS_VALUE ? frame->pts : frame->best_effort_timestamp;
  const auto format = static_cast<AVPixelFormat>(frame->format);
  const int size =
      av_image_get_buffer_size(format, frame->width, frame->height, 1);
  EXPECT_GT(size, 0);
  if (size <= 0) return f;
  std::vector<uint8_t> packed(static_cast<size_t>(size));
  EXPECT_EQ(
      av_image_copy_to_buffer(packed.data(), size, frame->data, frame->linesize,
                              format, frame->width, frame->height, 1),
      size);
  uint8_t digest[16];
  av_md5_sum(digest, packed.data(), packed.size());
  char hex[33];
  for (int i = 0; i < 16; ++i) std::snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  f.size = packed.size();
  f.md5 = hex;
  return f;
}

// Decodes frames 0..n-1 in one request with a FrameDecoder; `frames` gets
// those visited before any error.
Status DecodeAllNative(const Buffer& bytes, const VideoProbe& probe,
                       std::vector<NativeFrame>* frames,
                       VideoReadStats* stats = nullptr) {
  auto decoder = FrameDecoder::Open(bytes, &probe, "native");
  if (!decoder.ok()) return decoder.status();
  std::vector<uint64_t> all(probe.index.pts.size());
  for (size_t k = 0; k < all.size(); ++k) all[k] = k;
  Status status =
      (*decoder)->Decode(all, [&](size_t position, const AVFrame* frame) {
        EXPECT_EQ(position, frames->size());
        frames->push_back(Describe(frame));
        return Status::OK();
      });
  if (stats != nullptr) *stats = (*decoder)->stats();
  return status;
}

// Hashes of every frame's RGB from one reader reading the video front to
// back (ReadRange over consecutive runs: one sequential decode, no seek).
std::vector<uint64_t> SequentialRgbHashes(
    const Buffer& bytes, const VideoProbe& probe,
    const VideoReadOptions& options = {}) {
  auto reader = OpenReader(bytes, probe, "sequential");
  if (!reader) return {};
  const uint64_t n = reader->frame_count();
  const uint64_t frame_bytes = reader->FrameBytes(options);
  std::vector<uint64_t> hashes;
  constexpr uint64_t kRun = 16;
  for (uint64_t begin = 0; begin < n; begin += kRun) {
    const uint64_t end = std::min(n, begin + kRun);
    Guarded out((end - begin) * frame_bytes);
    const Status s = reader->ReadRange(begin, end, 1, options, out.span());
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok()) return {};
    EXPECT_EQ(out.Overrun(), 0u) << "frames " << begin << ".." << end - 1;
    for (uint64_t k = begin; k < end; ++k) {
      hashes.push_back(
          Hash(out.data() + (k - begin) * frame_bytes, frame_bytes));
    }
  }
  EXPECT_EQ(reader->stats().seeks, 0u);
  EXPECT_EQ(reader->stats().frames_decoded, n);
  EXPECT_EQ(reader->stats().frames_returned, n);
  return hashes;
}

// A good video with its probe and sequential RGB reference, made once per
// process.
struct Reference {
  Buffer bytes;
  VideoProbe probe;
  std::vector<uint64_t> rgb;  // hash of frame k's RGB
};

const Reference& ReferenceOf(const std::string& file) {
  static std::map<std::string, Reference> cache;
  auto it = cache.find(file);
  if (it != cache.end()) return it->second;
  Reference r;
  r.bytes = ReadVideo(file);
  r.probe = MustProbe(r.bytes, file);
  r.rgb = SequentialRgbHashes(r.bytes, r.probe);
  EXPECT_EQ(r.rgb.size(), r.probe.index.pts.size()) << file;
  return cache.emplace(file, std::move(r)).first->second;
}

// Reads `frames` in one request and returns how many frames differ from
// the reference (0 when all match); a failed read is a test failure.
size_t CountMismatches(VideoReader& reader, std::span<const uint64_t> frames,
                       const std::vector<uint64_t>& reference,
                       std::string* first_mismatch = nullptr) {
  const uint64_t frame_bytes = reader.FrameBytes({});
  Guarded out(frames.size() * frame_bytes);
  const Status s = reader.ReadFrames(frames, {}, out.span());
  if (!s.ok()) {
    if (first_mismatch != nullptr) *first_mismatch = s.ToString();
    return frames.size() + 1;
  }
  if (out.Overrun() != 0) {
    if (first_mismatch != nullptr) {
      *first_mismatch =
          std::to_string(out.Overrun()) + " bytes written past the output";
    }
    return frames.size() + 2;
  }
  size_t mismatches = 0;
  for (size_t j = 0; j < frames.size(); ++j) {
    if (Hash(out.data() + j * frame_bytes, frame_bytes) !=
        reference[frames[j]]) {
      if (mismatches++ == 0 && first_mismatch != nullptr) {
        *first_mismatch = "frame " + std::to_string(frames[j]) +
                          " at position " + std::to_string(j);
      }
    }
  }
  return mismatches;
}

std::string List(std::span<const uint64_t> frames) {
  std::string s = "{";
  for (size_t j = 0; j < frames.size(); ++j) {
    s += (j ? ", " : "") + std::to_string(frames[j]);
  }
  return s + "}";
}

#define EXPECT_FRAMES_MATCH(reader, frames, reference)                   \
  do {                                                                   \
    std::string first_;                                                  \
    EXPECT_EQ(CountMismatches(reader, frames, reference, &first_), 0u)   \
        << "frames " << List(frames) << ": first difference " << first_; \
  } while (false)

// ---------------------------------------------------------------- probe --

class VideoFileTest : public testing::TestWithParam<Facts> {};

TEST_P(VideoFileTest, ProbeMatchesFfprobe) {
  const Facts& f = GetParam();
  const Truth truth = LoadTruth(f.file, f.stream);
  const Buffer bytes = ReadVideo(f.file);
  auto probe = ProbeVideo(bytes, f.file);
  ASSERT_TRUE(probe.ok()) << probe.status();
  const VideoInfo& info = probe->info;
  const FrameIndex& index = probe->index;
  EXPECT_EQ(info.container, f.container);
  EXPECT_EQ(info.codec, f.codec);
  EXPECT_EQ(info.stream, f.stream);
  EXPECT_EQ(info.width, f.width);
  EXPECT_EQ(info.height, f.height);
  EXPECT_EQ(info.rotation, f.rotation);
  EXPECT_EQ(info.frame_rate, f.frame_rate);
  EXPECT_EQ(info.time_base, f.time_base);
  EXPECT_EQ(info.pixel_format, f.pixel_format);
  EXPECT_EQ(info.color_range, f.color_range);
  EXPECT_EQ(info.color_space, f.color_space);

  // One index entry per packet, in display order.
  EXPECT_EQ(info.frame_count, f.packets);
  EXPECT_EQ(index.pts.size(), info.frame_count);
  std::vector<int64_t> packet_pts = truth.packet_pts;
  std::sort(packet_pts.begin(), packet_pts.end());
  EXPECT_EQ(index.pts, packet_pts);
  if (f.decoded == f.packets) {
    // Every frame decodes: the index is ffprobe's frame list.
    EXPECT_EQ(index.pts, truth.frame_pts);
    EXPECT_EQ(info.frame_count, truth.frame_pts.size());
  } else {
    // corrupted.mp4: the index has 50 frames (packets) while ffprobe
    // -count_frames says 49: the packet with pts 30720 does not decode, so
    // its frame is missing from frames.csv and framemd5.
    ASSERT_EQ(f.file, kCorrupted);
    EXPECT_EQ(truth.frame_pts.size(), 49u);
    std::vector<int64_t> missing;
    std::set_difference(index.pts.begin(), index.pts.end(),
                        truth.frame_pts.begin(), truth.frame_pts.end(),
                        std::back_inserter(missing));
    EXPECT_EQ(missing, std::vector<int64_t>{30720});
    EXPECT_TRUE(std::includes(index.pts.begin(), index.pts.end(),
                              truth.frame_pts.begin(), truth.frame_pts.end()));
  }

  EXPECT_EQ(index.keyframes, f.keyframes);
  EXPECT_EQ(index.keyframes, truth.key_frames);
  std::vector<int64_t> key_pts = truth.key_packet_pts;
  std::sort(key_pts.begin(), key_pts.end());
  EXPECT_EQ(index.seek_points, key_pts);
  EXPECT_EQ(index.MaxKeyframeInterval(), f.max_keyframe_interval);
  for (size_t i = 0; i < index.keyframes.size(); ++i) {
    const uint64_t k = index.keyframes[i];
    EXPECT_EQ(index.SeekPointFor(k), index.pts[k]);
    if (i > 0) {  // the frame before a keyframe decodes from the one before
      EXPECT_EQ(index.SeekPointFor(k - 1), index.seek_points[i - 1]);
    }
  }
  EXPECT_EQ(index.SeekPointFor(info.frame_count - 1), index.seek_points.back());

  // Frames over the rate, within one frame (bbb's pts are rounded to ms).
  const double expected = static_cast<double>(f.packets) / f.frame_rate.value();
  EXPECT_NEAR(info.duration_seconds, expected, 1.0 / f.frame_rate.value());
}

// ffprobe -count_frames, run now: the frames FFmpeg decodes.
TEST_P(VideoFileTest, FrameCountMatchesLiveFfprobe) {
  const Facts& f = GetParam();
  const char* ffprobe = "/usr/bin/ffprobe";
  ASSERT_TRUE(std::filesystem::exists(ffprobe))
      << ffprobe << " is missing: scripts/install-deps.sh installs ffmpeg";
  // -select_streams N selects by absolute index (v:N would be the N-th
  // video stream: nasa's stream 3 is v:1).
  const std::string command =
      std::string(ffprobe) + " -v error -count_frames -select_streams " +
      std::to_string(f.stream) +
      " -show_entries stream=nb_read_frames -of default=nw=1:nk=1 '" +
      kDataDir + f.file + "' 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr) << command;
  std::string output;
  char chunk[256];
  while (size_t n = std::fread(chunk, 1, sizeof(chunk), pipe)) {
    output.append(chunk, n);
  }
  ASSERT_EQ(pclose(pipe), 0) << command;
  ASSERT_FALSE(output.empty()) << command;
  const uint64_t count = std::stoull(output);
  EXPECT_EQ(count, f.decoded) << command;
  EXPECT_EQ(count, LoadTruth(f.file, f.stream).frame_pts.size());
  const Buffer bytes = ReadVideo(f.file);
  const VideoProbe probe = MustProbe(bytes, f.file);
  if (f.file == kCorrupted) {
    // One packet does not decode: 49 frames decode, the index has 50.
    EXPECT_EQ(count + 1, probe.info.frame_count);
  } else {
    EXPECT_EQ(count, probe.info.frame_count);
  }
}

// ----------------------------------------------------------------- JSON --

TEST_P(VideoFileTest, JsonRoundTrip) {
  const Facts& f = GetParam();
  const VideoProbe probe = MustProbe(ReadVideo(f.file), f.file);
  const std::string text = VideoProbeToJson(probe);
  auto back = VideoProbeFromJson(text);
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << text;
  EXPECT_EQ(*back, probe) << text;
  EXPECT_EQ(VideoProbeToJson(*back), text);
  if (f.file == kNasa) {
    // A constant frame rate is one run of pts.
    EXPECT_EQ(json::parse(text).at("pts").size(), 1u) << text;
    EXPECT_LT(text.size(), 600u) << text;
  }
}

void ExpectCorruption(const std::string& text, const std::string& what) {
  auto probe = VideoProbeFromJson(text);
  ASSERT_FALSE(probe.ok()) << what << ": accepted " << text;
  EXPECT_EQ(probe.status().code(), StatusCode::kCorruption)
      << what << ": " << probe.status();
}

TEST(VideoJsonTest, HostileJsonIsCorruption) {
  const VideoProbe probe = MustProbe(ReadVideo(kNasa), kNasa);
  const std::string text = VideoProbeToJson(probe);
  const json good = json::parse(text);
  ASSERT_TRUE(VideoProbeFromJson(good.dump()).ok());

  // Every truncation.
  for (size_t n = 0; n < text.size(); ++n) {
    ExpectCorruption(text.substr(0, n), "truncated at " + std::to_string(n));
  }
  // Not an object.
  for (const char* t : {"", "null", "[]", "[1,2]", "42", "\"video\"", "true",
                        "{", "}", "{\"a\":", "\xff\xfe"}) {
    ExpectCorruption(t, std::string("not an object: ") + t);
  }
  ExpectCorruption("{}", "empty object");
  // Every key missing, and every key of another type. (Booleans are left
  // out: nlohmann converts true to 1, so "width": true reads as 1.)
  for (const auto& [key, value] : good.items()) {
    json j = good;
    j.erase(key);
    ExpectCorruption(j.dump(), "without " + key);
    for (const json& wrong :
         {json("x"), json(7), json::array(), json::object(), json(nullptr)}) {
      const bool same_type = wrong.type() == value.type() ||
                             (wrong.is_number() && value.is_number());
      // An empty keyframe list is valid (seek points say where to start).
      if (same_type || (key == "keyframes" && wrong.is_array())) continue;
      json w = good;
      w[key] = wrong;
      ExpectCorruption(w.dump(), key + " = " + wrong.dump());
    }
  }

  auto with = [&](const std::string& key, json value) {
    json j = good;
    j[key] = std::move(value);
    return j.dump();
  };
  // pts runs (first, step, count) that do not add up to "frames" (390).
  ExpectCorruption(with("pts", json::array()), "no runs");
  ExpectCorruption(with("pts", {{0, 1001, 389}}), "one frame short");
  ExpectCorruption(with("pts", {{0, 1001, 391}}), "one frame over");
  ExpectCorruption(with("pts", {{0, 1001, 390}, {390390, 1001, 1}}),
                   "an extra run");
  ExpectCorruption(with("pts", {{0, 1001, 0}, {0, 1001, 390}}), "empty run");
  ExpectCorruption(with("pts", {{0, 1001}}), "run of two numbers");
  ExpectCorruption(with("pts", {{0, 1001, -1}}), "negative count");
  ExpectCorruption(with("pts", {0, 1001, 390}), "not a list of runs");
  // pts that do not increase.
  ExpectCorruption(with("pts", {{0, -1001, 390}}), "decreasing pts");
  ExpectCorruption(with("pts", {{0, 0, 390}}), "constant pts");
  ExpectCorruption(with("pts", {{0, 1001, 200}, {100000, 1001, 190}}),
                   "second run starts before the first ends");
  ExpectCorruption(with("pts", {{0, 1001, 200}, {199199, 1001, 190}}),
                   "second run repeats the last pts");
  // pts past int64: first + c * step must be checked, not overflowed
  // (UBSan, in make test-asan, stops on a signed overflow).
  ExpectCorruption(with("pts", {{0, int64_t{1} << 61, 390}}),
                   "pts overflowing int64");
  // Huge frame counts: rejected before anything is allocated for them.
  for (const json& huge :
       {json(uint64_t{1'000'000'000'000'000'000}), json(UINT64_MAX),
        json(uint64_t{10'000'001}), json(-1)}) {
    ExpectCorruption(with("frames", huge), "frames = " + huge.dump());
    json j = good;
    j["frames"] = huge;
    j["pts"] = {{0, 1, huge}};
    ExpectCorruption(j.dump(), "frames and run count " + huge.dump());
    ExpectCorruption(with("pts", {{0, 1001, 390}, {390390, 1, huge}}),
                     "run count " + huge.dump());
  }
  ExpectCorruption(with("frames", 0), "no frames");
  ExpectCorruption(with("frames", 10'000'000), "at the limit, 390 pts");
  ExpectCorruption(R"({"frames": 1e18})", "float frames, other keys missing");
  {
    // A float too large for uint64 (nlohmann's conversion of it is
    // undefined behaviour: clang's UBSan reports it, GCC's does not check).
    std::string text = good.dump();
    const std::string frames = "\"frames\":390";
    ASSERT_NE(text.find(frames), std::string::npos);
    text.replace(text.find(frames), frames.size(), "\"frames\":1e300");
    ExpectCorruption(text, "frames = 1e300");
  }
  // Keyframes and seek points.
  ExpectCorruption(with("keyframes", {0, 390}), "keyframe past the end");
  ExpectCorruption(with("keyframes", {0, UINT64_MAX}), "keyframe 2^64-1");
  ExpectCorruption(with("keyframes", {240, 0}), "keyframes decreasing");
  ExpectCorruption(with("keyframes", {0, 0}), "keyframe repeated");
  ExpectCorruption(with("keyframes", {0, -1}), "negative keyframe");
  ExpectCorruption(with("seek_points", json::array()), "no seek points");
  ExpectCorruption(with("seek_points", {1, 240240}),
                   "first seek point after the first frame");
  ExpectCorruption(with("seek_points", {240240, 0}), "seek points decreasing");
  // Frame size and time base.
  ExpectCorruption(with("width", 0), "width 0");
  ExpectCorruption(with("height", 0), "height 0");
  ExpectCorruption(with("width", 1 << 20), "width 2^20");
  ExpectCorruption(with("time_base", {1, 0}), "time base 1/0");
  ExpectCorruption(with("time_base", {0, 30000}), "time base 0");
  ExpectCorruption(with("time_base", {1}), "time base of one number");
  ExpectCorruption(with("frame_rate", "30"), "frame rate as a string");
}

// ------------------------------------------------------ native decoding --

// Frames from FrameDecoder, decoded once front to back, equal ffmpeg's
// framemd5 (pts and MD5 of the native pixels).
TEST_P(VideoFileTest, NativeFramesMatchFramemd5) {
  const Facts& f = GetParam();
  const Truth truth = LoadTruth(f.file, f.stream);
  const Buffer bytes = ReadVideo(f.file);
  const VideoProbe probe = MustProbe(bytes, f.file);
  ASSERT_EQ(probe.info.frame_count, f.packets);
  std::vector<NativeFrame> frames;
  VideoReadStats stats;
  const Status status = DecodeAllNative(bytes, probe, &frames, &stats);
  size_t good = frames.size();
  if (f.file == kCorrupted) {
    // Frames 0..28 decode; frame 29 (pts 29696) comes out of the decoder
    // after the refused packet (pts 30720) of its GOP: an error, not data
    // that may be wrong.
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.code(), StatusCode::kCorruption) << status;
    EXPECT_NE(status.message().find("frame 29 "), std::string::npos) << status;
    EXPECT_EQ(frames.size(), 29u);
  } else {
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_EQ(frames.size(), f.decoded);
    EXPECT_EQ(truth.md5.size(), f.decoded);
    EXPECT_EQ(stats.seeks, 0u);
    EXPECT_EQ(stats.frames_decoded, f.decoded);
    good = std::min(frames.size(), truth.md5.size());
  }
  for (size_t k = 0; k < good; ++k) {
    EXPECT_EQ(frames[k].pts, truth.frame_pts[k]) << "frame " << k;
    EXPECT_EQ(frames[k].size, truth.md5_size[k]) << "frame " << k;
    EXPECT_EQ(frames[k].md5, truth.md5[k]) << "frame " << k;
  }
}

// --------------------------------------------------------- random access --

class GoodVideoTest : public testing::TestWithParam<Facts> {};

// Every frame of any request equals the same frame of the sequential decode.
TEST_P(GoodVideoTest, RandomAccessMatchesSequentialDecode) {
  const Facts& f = GetParam();
  const Reference& ref = ReferenceOf(f.file);
  ASSERT_EQ(ref.rgb.size(), f.packets);
  const uint64_t n = ref.rgb.size();
  // Different frames look different (the hashes can tell a wrong frame).
  EXPECT_GT(std::set<uint64_t>(ref.rgb.begin(), ref.rgb.end()).size(), n / 2);

  auto reader = OpenReader(ref.bytes, ref.probe, f.file);
  ASSERT_NE(reader, nullptr);
  SplitMix64 rng(20240611 + static_cast<uint32_t>(n));

  const int trials = f.file == kNasa ? 40 : 12;
  for (int t = 0; t < trials; ++t) {
    std::vector<uint64_t> frames(1 + rng.Bounded(12));
    for (uint64_t& k : frames) k = rng.Bounded(n);
    EXPECT_FRAMES_MATCH(*reader, frames, ref.rgb);  // unsorted, maybe repeats
    std::sort(frames.begin(), frames.end());
    EXPECT_FRAMES_MATCH(*reader, frames, ref.rgb);  // sorted
    std::vector<uint64_t> repeated = frames;
    repeated.insert(repeated.end(), frames.rbegin(), frames.rend());
    repeated.push_back(frames[0]);
    EXPECT_FRAMES_MATCH(*reader, repeated, ref.rgb);  // with repeats
  }
  // A fresh reader for a few requests too (the first request of a reader
  // starts from a decoder that has not sought).
  for (int t = 0; t < 4; ++t) {
    auto fresh = OpenReader(ref.bytes, ref.probe, f.file);
    ASSERT_NE(fresh, nullptr);
    const std::vector<uint64_t> frames = {rng.Bounded(n), rng.Bounded(n)};
    EXPECT_FRAMES_MATCH(*fresh, frames, ref.rgb);
  }

  // First and last frame, both orders; the last one then a backward step.
  const std::vector<uint64_t> ends = {0, n - 1};
  const std::vector<uint64_t> ends_reversed = {n - 1, 0};
  EXPECT_FRAMES_MATCH(*reader, ends, ref.rgb);
  EXPECT_FRAMES_MATCH(*reader, ends_reversed, ref.rgb);
  const std::vector<uint64_t> last = {n - 1};
  const std::vector<uint64_t> before = {n / 2};
  const std::vector<uint64_t> first = {0};
  EXPECT_FRAMES_MATCH(*reader, last, ref.rgb);
  EXPECT_FRAMES_MATCH(*reader, before, ref.rgb);
  EXPECT_FRAMES_MATCH(*reader, last, ref.rgb);
  EXPECT_FRAMES_MATCH(*reader, last, ref.rgb);  // the same frame again
  EXPECT_FRAMES_MATCH(*reader, first, ref.rgb);

  // Ranges with steps, and around every keyframe.
  auto range = [&](uint64_t begin, uint64_t end, uint64_t step) {
    std::vector<uint64_t> frames;
    for (uint64_t k = begin; k < end; k += step) frames.push_back(k);
    Guarded out(frames.size() * reader->FrameBytes({}));
    const Status s = reader->ReadRange(begin, end, step, {}, out.span());
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(out.Overrun(), 0u) << "range " << begin << ":" << end;
    const uint64_t fb = reader->FrameBytes({});
    for (size_t j = 0; j < frames.size(); ++j) {
      EXPECT_EQ(Hash(out.data() + j * fb, fb), ref.rgb[frames[j]])
          << "range " << begin << ":" << end << ":" << step << " frame "
          << frames[j];
    }
  };
  range(0, n, std::max<uint64_t>(1, n / 7));
  range(n / 3, n, 5);
  range(1, n, 2);
  for (uint64_t key : ref.probe.index.keyframes) {
    if (key == 0) continue;
    range(key - 10, std::min(n, key + 10), 1);  // crosses the keyframe
    range(key - 1, key + 1, 1);
    range(key - 30, std::min(n, key + 30), 7);
    range(key, key + 1, 1);
    range(key - 1, key, 1);
  }
  range(n - 1, n, 1);
  range(0, 1, 1);
}

// A reader decoding on several (slice) threads gives the same frames; so do
// reads whose output is split in parts, each part's frames in their own buffer
// and nothing written past one.
TEST_P(GoodVideoTest, ThreadedAndSplitReadsMatchSequentialDecode) {
  const Facts& f = GetParam();
  const Reference& ref = ReferenceOf(f.file);
  const uint64_t n = ref.rgb.size();
  ASSERT_GT(n, 0u);
  const auto probe = std::make_shared<const VideoProbe>(ref.probe);
  SplitMix64 rng(515 + n);
  for (int threads : {2, 3}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    auto reader = VideoReader::Open(ref.bytes, probe, f.file, nullptr, threads);
    ASSERT_TRUE(reader.ok()) << reader.status();
    for (int t = 0; t < 8; ++t) {
      std::vector<uint64_t> frames(1 + rng.Bounded(16));
      for (uint64_t& k : frames) k = rng.Bounded(n);
      EXPECT_FRAMES_MATCH(**reader, frames, ref.rgb);
      std::vector<uint64_t> clip;
      for (uint64_t k = rng.Bounded(n); k < n && clip.size() < 16; ++k) {
        clip.push_back(k);
      }
      EXPECT_FRAMES_MATCH(**reader, clip, ref.rgb);
    }
    std::vector<uint64_t> all(n);
    for (uint64_t k = 0; k < n; ++k) all[k] = k;
    EXPECT_FRAMES_MATCH(**reader, all, ref.rgb);
  }
  auto reader = OpenReader(ref.bytes, ref.probe, f.file);
  ASSERT_NE(reader, nullptr);
  const uint64_t fb = reader->FrameBytes({});
  for (int t = 0; t < 6; ++t) {
    std::vector<uint64_t> frames(12);
    for (uint64_t& k : frames) k = rng.Bounded(n);
    const size_t sizes[3] = {5, 0, 7};
    Guarded parts[3] = {Guarded(5 * fb), Guarded(0), Guarded(7 * fb)};
    const MutableByteSpan spans[3] = {parts[0].span(), parts[1].span(),
                                      parts[2].span()};
    const Status s = reader->ReadFramesInParts(frames, {}, spans);
    ASSERT_TRUE(s.ok()) << s;
    size_t j = 0;
    for (int p = 0; p < 3; ++p) {
      EXPECT_EQ(parts[p].Overrun(), 0u) << "part " << p;
      for (size_t i = 0; i < sizes[p]; ++i, ++j) {
        EXPECT_EQ(Hash(parts[p].data() + i * fb, fb), ref.rgb[frames[j]])
            << "part " << p << " frame " << frames[j];
      }
    }
  }
  // Parts that are not whole frames, or too few, are refused.
  Guarded odd(fb + 1);
  const MutableByteSpan one[1] = {odd.span()};
  const uint64_t first[1] = {0};
  EXPECT_EQ(reader->ReadFramesInParts(first, {}, one).code(),
            StatusCode::kInvalidArgument);
  const uint64_t two[2] = {0, 1};
  Guarded single(fb);
  const MutableByteSpan short_parts[1] = {single.span()};
  EXPECT_EQ(reader->ReadFramesInParts(two, {}, short_parts).code(),
            StatusCode::kInvalidArgument);
}

// Frames are written inside the caller's buffer and nowhere else, at the
// coded size and resized (sizes with odd widths and heights too), one frame
// and many, in request order and reversed.
TEST_P(GoodVideoTest, WritesStayInTheOutput) {
  const Facts& f = GetParam();
  const Buffer bytes = ReadVideo(f.file);
  const VideoProbe probe = MustProbe(bytes, f.file);
  auto reader = OpenReader(bytes, probe, f.file);
  ASSERT_NE(reader, nullptr);
  const uint64_t n = probe.info.frame_count;
  const std::vector<uint64_t> forward = {0, n / 2, n - 1};
  const std::vector<uint64_t> backward = {n - 1, n / 2, 0};
  for (const VideoReadOptions& options :
       {VideoReadOptions{}, VideoReadOptions{.height = 112, .width = 200},
        VideoReadOptions{.height = 37, .width = 101},
        VideoReadOptions{.height = 1, .width = 1},
        VideoReadOptions{.height = f.height + 3, .width = f.width + 5}}) {
    for (const auto* frames : {&forward, &backward}) {
      Guarded out(frames->size() * reader->FrameBytes(options));
      const Status s = reader->ReadFrames(*frames, options, out.span());
      EXPECT_TRUE(s.ok()) << s;
      EXPECT_EQ(out.Overrun(), 0u) << options.height << "x" << options.width
                                   << " frames " << List(*frames);
    }
    const uint64_t last = n - 1;
    Guarded one(reader->FrameBytes(options));
    EXPECT_TRUE(
        reader->ReadFrames(std::span(&last, 1), options, one.span()).ok());
    EXPECT_EQ(one.Overrun(), 0u)
        << options.height << "x" << options.width << " frame " << last;
  }
}

INSTANTIATE_TEST_SUITE_P(Videos, VideoFileTest, testing::ValuesIn(AllFacts()),
                         TestName);
INSTANTIATE_TEST_SUITE_P(Videos, GoodVideoTest,
                         testing::Values(FactsOf(kNasa), FactsOf(kFullRange),
                                         FactsOf("video_90.mov"),
                                         FactsOf("bbb_480p_vp9_opus_1second."
                                                 "webm")),
                         TestName);

// -------------------------------------------------------------- seeking --

// The frames of nasa's stream 3 that no frame references, as ffmpeg says:
// a sequential decode with -skip_frame noref outputs only the others (frame
// numbers in its framemd5, whose time base is one frame).
const std::set<uint64_t>& NasaNonReference() {
  static const std::set<uint64_t> nonref = [] {
    const std::string command =
        "ffmpeg -v error -skip_frame noref -i '" + kDataDir + kNasa +
        "' -map 0:3 -vsync passthrough -f framemd5 - 2>/dev/null";
    std::set<uint64_t> out;
    for (uint64_t k = 0; k < 390; ++k) out.insert(k);
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) return std::set<uint64_t>{};
    char line[512];
    while (std::fgets(line, sizeof(line), pipe) != nullptr) {
      unsigned stream = 0;
      long long dts = 0, pts = 0;
      if (line[0] != '#' &&
          std::sscanf(line, "%u, %lld, %lld", &stream, &dts, &pts) == 3) {
        out.erase(static_cast<uint64_t>(pts));
      }
    }
    if (pclose(pipe) != 0) return std::set<uint64_t>{};
    return out;
  }();
  return nonref;
}

// Non-reference frames in [from, to).
uint64_t NonReferenceIn(uint64_t from, uint64_t to) {
  const auto& n = NasaNonReference();
  return static_cast<uint64_t>(
      std::distance(n.lower_bound(from), n.lower_bound(to)));
}

// Frames decoded or skipped (the frames given to the decoder that it has
// dealt with): what decoding forward from a keyframe to a frame costs
// without skipping.
uint64_t Handled(const VideoReadStats& s) {
  return s.frames_decoded + s.frames_skipped;
}

class NasaSeekTest : public testing::Test {
 protected:
  void SetUp() override {
    bytes_ = ReadVideo(kNasa);
    probe_ = MustProbe(bytes_, kNasa);
    ASSERT_EQ(probe_.info.frame_count, 390u);
    ASSERT_EQ(probe_.index.keyframes, (std::vector<uint64_t>{0, 240}));
    // x264 with B-pyramid: some B-frames are references, the rest not.
    ASSERT_EQ(NasaNonReference().size(), 186u) << "ffmpeg -skip_frame noref";
  }
  std::unique_ptr<VideoReader> Open() {
    return OpenReader(bytes_, probe_, "nasa seeks");
  }
  static void Read(VideoReader& reader, std::vector<uint64_t> frames) {
    Guarded out(frames.size() * reader.FrameBytes({}));
    const Status s = reader.ReadFrames(frames, {}, out.span());
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(out.Overrun(), 0u);
  }
  Buffer bytes_;
  VideoProbe probe_;
};

TEST_F(NasaSeekTest, InOrderNeverSeeks) {
  auto reader = Open();
  ASSERT_NE(reader, nullptr);
  for (uint64_t k = 0; k < 390; ++k) Read(*reader, {k});
  EXPECT_EQ(reader->stats().seeks, 0u);
  // Every frame is wanted: none is skipped.
  EXPECT_EQ(reader->stats().frames_decoded, 390u);
  EXPECT_EQ(reader->stats().frames_skipped, 0u);
  EXPECT_EQ(reader->stats().frames_returned, 390u);
  EXPECT_EQ(reader->stats().packets_read, 390u);
  // After the last frame (the decoder drained), frame 0 takes a seek.
  Read(*reader, {0});
  EXPECT_EQ(reader->stats().seeks, 1u);
  EXPECT_EQ(reader->stats().frames_decoded, 391u);
}

TEST_F(NasaSeekTest, SkippingToTheNextGopSeeksOnce) {
  auto reader = Open();
  ASSERT_NE(reader, nullptr);
  Read(*reader, {5});
  EXPECT_EQ(reader->stats().seeks, 0u);
  // Frames 0..5, of which the non-reference ones before 5 are skipped.
  EXPECT_EQ(Handled(reader->stats()), 6u);
  EXPECT_EQ(reader->stats().frames_skipped, NonReferenceIn(0, 5));
  EXPECT_GT(reader->stats().frames_skipped, 0u);
  Read(*reader, {300});
  EXPECT_EQ(reader->stats().seeks, 1u);
  // From keyframe 240: frames 240..300.
  EXPECT_EQ(Handled(reader->stats()), 6u + 61u);
  EXPECT_EQ(reader->stats().frames_skipped,
            NonReferenceIn(0, 5) + NonReferenceIn(240, 300));
}

TEST_F(NasaSeekTest, ReachingTheNextKeyframeByDecodingDoesNotSeek) {
  auto reader = Open();
  ASSERT_NE(reader, nullptr);
  Read(*reader, {239});
  EXPECT_EQ(reader->stats().frames_skipped, NonReferenceIn(0, 239));
  Read(*reader, {240});
  EXPECT_EQ(reader->stats().seeks, 0u);
  EXPECT_EQ(Handled(reader->stats()), 241u);
  auto both = Open();
  ASSERT_NE(both, nullptr);
  Read(*both, {239, 240});
  EXPECT_EQ(both->stats().seeks, 0u);
}

TEST_F(NasaSeekTest, BackwardAfterTheEndSeeksOnceMore) {
  auto reader = Open();
  ASSERT_NE(reader, nullptr);
  Read(*reader, {389});
  const uint64_t seeks = reader->stats().seeks;
  EXPECT_EQ(seeks, 1u);
  // From keyframe 240, not from frame 0.
  EXPECT_EQ(Handled(reader->stats()), 150u);
  EXPECT_EQ(reader->stats().frames_skipped, NonReferenceIn(240, 389));
  Read(*reader, {0});
  EXPECT_EQ(reader->stats().seeks, seeks + 1);
  EXPECT_EQ(Handled(reader->stats()), 151u);
  // And on through the first GOP without seeking.
  Read(*reader, {100, 200});
  EXPECT_EQ(reader->stats().seeks, seeks + 1);
}

TEST_F(NasaSeekTest, ForwardWithinAGopNeverSeeks) {
  auto reader = Open();
  ASSERT_NE(reader, nullptr);
  for (uint64_t k = 3; k < 240; k += 17) Read(*reader, {k});
  Read(*reader, {239});
  EXPECT_EQ(reader->stats().seeks, 0u);
  EXPECT_EQ(Handled(reader->stats()), 240u);
  // Into the second GOP by a seek, then forward within it.
  auto second = Open();
  ASSERT_NE(second, nullptr);
  Read(*second, {245});
  const uint64_t seeks = second->stats().seeks;
  EXPECT_EQ(seeks, 1u);
  for (uint64_t k = 250; k < 390; k += 13) Read(*second, {k});
  Read(*second, {388, 389});
  EXPECT_EQ(second->stats().seeks, seeks);
  EXPECT_EQ(Handled(second->stats()), 150u);
}

// The frames libavcodec decodes into are charged to a budget given to the
// reader while they exist: at least the few an H.264 decoder keeps as
// references, at most its whole picture buffer (16 + 2 frames), and
// nothing once the reader is gone and its decoder, kept for reuse, freed.
TEST_F(NasaSeekTest, DecodedFramesAreChargedToTheBudget) {
  auto budget = std::make_shared<MemoryBudget>("frames");
  {
    auto reader = VideoReader::Open(
        bytes_, std::make_shared<const VideoProbe>(probe_), "nasa", budget);
    ASSERT_TRUE(reader.ok()) << reader.status();
    Read(**reader, {250, 300});
    EXPECT_GT(budget->in_use(), 0) << "the decoder's reference frames";
  }
  ReleaseIdleDecoders(budget.get());
  EXPECT_EQ(budget->in_use(), 0);
  const int64_t frame =
      int64_t{probe_.info.width} * probe_.info.height * 3 / 2;  // yuv420p
  EXPECT_EQ(probe_.info.pixel_format, "yuv420p");
  EXPECT_GE(budget->peak(), 2 * frame);
  EXPECT_LE(budget->peak(), 18 * frame + 18 * 64 * 1024);
}

// Reads three frames of bt709_full_range.mp4 (small enough for its decoder
// to be kept) with a reader whose frames are charged to `budget`, then
// closes the reader.
void ReadKeptSizedVideo(const std::shared_ptr<MemoryBudget>& budget) {
  static const Buffer bytes = ReadVideo(kFullRange);
  static const auto probe =
      std::make_shared<const VideoProbe>(MustProbe(bytes, kFullRange));
  const uint64_t n = probe->index.pts.size();
  ASSERT_GE(n, 4u);
  ASSERT_LE(int64_t{probe->info.width} * probe->info.height, 1280 * 720);
  auto reader = VideoReader::Open(bytes, probe, kFullRange, budget);
  ASSERT_TRUE(reader.ok()) << reader.status();
  const std::vector<uint64_t> frames = {0, n / 2, n - 1};
  Guarded out(frames.size() * (*reader)->FrameBytes({}));
  const Status s = (*reader)->ReadFrames(frames, {}, out.span());
  ASSERT_TRUE(s.ok()) << s;
  const int64_t frame = int64_t{probe->info.width} * probe->info.height * 3 / 2;
  EXPECT_GE(budget->peak(), frame);
  EXPECT_EQ(budget->in_use(), budget->peak()) << "the pool's idle frames";
}

// A decoder's frame pool keeps every buffer its frames ever held at once,
// so that much stays charged while the decoder exists: after its frames are
// released, and while a closed reader's decoder waits to be reused (frames
// up to 1280x720), until ReleaseIdleDecoders for its budget, which leaves
// other budgets' decoders alone.
TEST(VideoBudgetTest, IdleFramePoolStaysChargedUntilReleased) {
  ReleaseIdleDecoders(nullptr);  // decoders other tests left
  auto budget = std::make_shared<MemoryBudget>("frames");
  auto other = std::make_shared<MemoryBudget>("other frames");
  ReadKeptSizedVideo(budget);
  ReadKeptSizedVideo(other);
  EXPECT_EQ(budget->in_use(), budget->peak()) << "a kept decoder's pool";
  EXPECT_EQ(other->in_use(), other->peak()) << "a kept decoder's pool";
  ReleaseIdleDecoders(budget.get());
  EXPECT_EQ(budget->in_use(), 0);
  EXPECT_EQ(other->in_use(), other->peak());
  ReleaseIdleDecoders(other.get());
  EXPECT_EQ(other->in_use(), 0);
}

// The last 4 decoders given back are kept: a fifth replaces the oldest
// (kept ones no open matches must not hold the slots for good). The budget
// is part of what a decoder is kept for, so five budgets make five kinds,
// and a budget's charge tells whether its decoder is still kept.
TEST(VideoBudgetTest, TheLastFourDecodersGivenBackAreKept) {
  ReleaseIdleDecoders(nullptr);
  std::vector<std::shared_ptr<MemoryBudget>> budgets;
  for (int i = 0; i < 5; ++i) {
    budgets.push_back(
        std::make_shared<MemoryBudget>("frames " + std::to_string(i)));
    ReadKeptSizedVideo(budgets.back());
  }
  EXPECT_EQ(budgets[0]->in_use(), 0) << "the oldest, replaced";
  for (int i = 1; i < 5; ++i) EXPECT_GT(budgets[i]->in_use(), 0) << i;
  ReleaseIdleDecoders(nullptr);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(budgets[i]->in_use(), 0) << i;
}

TEST_F(NasaSeekTest, OneFrameDecodesFromItsKeyframe) {
  auto reader = Open();
  ASSERT_NE(reader, nullptr);
  Read(*reader, {250});
  // Frames 240..250 from the previous keyframe, less the ones before 250
  // that nothing references: the minimum.
  EXPECT_EQ(Handled(reader->stats()), 11u);
  EXPECT_EQ(reader->stats().frames_skipped, NonReferenceIn(240, 250));
  EXPECT_EQ(reader->stats().frames_decoded, 11u - NonReferenceIn(240, 250));
  EXPECT_EQ(reader->stats().seeks, 1u);
  EXPECT_EQ(reader->stats().frames_returned, 1u);
  // Repeats are decoded once.
  auto repeats = Open();
  ASSERT_NE(repeats, nullptr);
  Read(*repeats, {250, 250, 241, 250});
  EXPECT_EQ(Handled(repeats->stats()), 11u);
  EXPECT_EQ(repeats->stats().frames_returned, 4u);
}

// --------------------------------------------------------------- colour --

// Planes of one native frame (8-bit 4:2:0).
struct Planes {
  int width = 0, height = 0;
  std::vector<uint8_t> y, cb, cr;  // y: width x height; chroma: halves
  int chroma_width = 0;
  int format = -1;
  int color_range = -1;
};

Planes NativePlanes(const Buffer& bytes, const VideoProbe& probe,
                    uint64_t frame) {
  Planes p;
  auto decoder = FrameDecoder::Open(bytes, &probe, "planes");
  EXPECT_TRUE(decoder.ok()) << decoder.status();
  if (!decoder.ok()) return p;
  const Status s =
      (*decoder)->Decode(std::span(&frame, 1), [&](size_t, const AVFrame* f) {
        p.width = f->width;
        p.height = f->height;
        p.format = f->format;
        p.color_range = f->color_range;
        p.chroma_width = (f->width + 1) / 2;
        const int chroma_height = (f->height + 1) / 2;
        for (int r = 0; r < f->height; ++r) {
          const uint8_t* row = f->data[0] + r * f->linesize[0];
          p.y.insert(p.y.end(), row, row + f->width);
        }
        for (int r = 0; r < chroma_height; ++r) {
          const uint8_t* u = f->data[1] + r * f->linesize[1];
          const uint8_t* v = f->data[2] + r * f->linesize[2];
          p.cb.insert(p.cb.end(), u, u + p.chroma_width);
          p.cr.insert(p.cr.end(), v, v + p.chroma_width);
        }
        return Status::OK();
      });
  EXPECT_TRUE(s.ok()) << s;
  return p;
}

struct Equations {
  // R = Y + rv Cr, G = Y - gu Cb - gv Cr, B = Y + bu Cb.
  double rv, gu, gv, bu;
  bool limited;  // Y' = (Y - 16) 255/219, chroma (C - 128) 255/224
};
constexpr Equations kBt709Full = {1.5748, 0.1873, 0.4681, 1.8556, false};
constexpr Equations kBt709Limited = {1.5748, 0.1873, 0.4681, 1.8556, true};
constexpr Equations kBt601Full = {1.402, 0.344136, 0.714136, 1.772, false};
constexpr Equations kBt601Limited = {1.402, 0.344136, 0.714136, 1.772, true};

// Mean |expected - rgb| over the samples of the pixels `use` selects, the
// expected RGB computed from the planes with `e` (chroma of pixel (x, y) at
// (x/2, y/2)).
template <typename Use>
double MeanAbsDiff(const Planes& p, const Equations& e,
                   std::span<const std::byte> rgb, Use use,
                   size_t* used = nullptr) {
  EXPECT_EQ(rgb.size(), static_cast<size_t>(p.width) * p.height * 3);
  if (rgb.size() != static_cast<size_t>(p.width) * p.height * 3) return 1e9;
  double sum = 0;
  size_t samples = 0;
  for (int y = 0; y < p.height; ++y) {
    for (int x = 0; x < p.width; ++x) {
      if (!use(x, y)) continue;
      const size_t c = static_cast<size_t>(y / 2) * p.chroma_width + x / 2;
      double luma = p.y[static_cast<size_t>(y) * p.width + x];
      double cb = p.cb[c] - 128.0, cr = p.cr[c] - 128.0;
      if (e.limited) {
        luma = (luma - 16) * 255 / 219;
        cb = cb * 255 / 224;
        cr = cr * 255 / 224;
      }
      const double expected[3] = {
          luma + e.rv * cr, luma - e.gu * cb - e.gv * cr, luma + e.bu * cb};
      const std::byte* got = &rgb[(static_cast<size_t>(y) * p.width + x) * 3];
      for (int i = 0; i < 3; ++i) {
        const double want = std::clamp(std::round(expected[i]), 0.0, 255.0);
        sum += std::abs(want - static_cast<double>(got[i]));
        ++samples;
      }
    }
  }
  if (used != nullptr) *used = samples / 3;
  return samples == 0 ? 1e9 : sum / static_cast<double>(samples);
}

double MeanAbsDiff(const Planes& p, const Equations& e,
                   std::span<const std::byte> rgb) {
  return MeanAbsDiff(p, e, rgb, [](int, int) { return true; });
}

// Pixels whose chroma is strong (where the matrices differ) and the same
// in the neighbouring chroma samples (so chroma interpolation does not
// matter).
auto StrongFlatChroma(const Planes& p, int strength) {
  return [&p, strength](int x, int y) {
    const int cx = x / 2, cy = y / 2;
    const int cw = p.chroma_width, ch = (p.height + 1) / 2;
    if (cx == 0 || cy == 0 || cx + 1 >= cw || cy + 1 >= ch) return false;
    auto at = [&](const std::vector<uint8_t>& plane, int i, int j) {
      return static_cast<int>(plane[static_cast<size_t>(j) * cw + i]);
    };
    const int cb = at(p.cb, cx, cy), cr = at(p.cr, cx, cy);
    if (std::abs(cb - 128) + std::abs(cr - 128) < strength) return false;
    for (int j = cy - 1; j <= cy + 1; ++j) {
      for (int i = cx - 1; i <= cx + 1; ++i) {
        if (std::abs(at(p.cb, i, j) - cb) > 1 ||
            std::abs(at(p.cr, i, j) - cr) > 1) {
          return false;
        }
      }
    }
    return true;
  };
}

std::vector<std::byte> ReadRgb(VideoReader& reader, uint64_t frame,
                               const VideoReadOptions& options = {}) {
  Guarded out(reader.FrameBytes(options));
  const Status s = reader.ReadFrames(std::span(&frame, 1), options, out.span());
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(out.Overrun(), 0u) << "frame " << frame;
  return {out.data(), out.data() + out.size()};
}

// Mean of (rgb - expected) over all samples whose expected value is in
// 0..255: a bias (all channels too dark or too bright) shows here.
double MeanSignedDiff(const Planes& p, const Equations& e,
                      std::span<const std::byte> rgb) {
  double sum = 0;
  size_t samples = 0;
  for (int y = 0; y < p.height; ++y) {
    for (int x = 0; x < p.width; ++x) {
      const size_t c = static_cast<size_t>(y / 2) * p.chroma_width + x / 2;
      double luma = p.y[static_cast<size_t>(y) * p.width + x];
      double cb = p.cb[c] - 128.0, cr = p.cr[c] - 128.0;
      if (e.limited) {
        luma = (luma - 16) * 255 / 219;
        cb = cb * 255 / 224;
        cr = cr * 255 / 224;
      }
      const double expected[3] = {
          luma + e.rv * cr, luma - e.gu * cb - e.gv * cr, luma + e.bu * cb};
      const std::byte* got = &rgb[(static_cast<size_t>(y) * p.width + x) * 3];
      for (int i = 0; i < 3; ++i) {
        if (expected[i] < 0 || expected[i] > 255) continue;
        sum += static_cast<double>(got[i]) - expected[i];
        ++samples;
      }
    }
  }
  return samples == 0 ? 0 : sum / static_cast<double>(samples);
}

// bt709_full_range.mp4 (yuvj420p, BT.709, full range): the RGB is what the
// BT.709 full-range equations give, far from the limited-range ones; where
// chroma is strong and flat, far from BT.601's too. The bounds leave room
// for swscale's fast YUV->RGB path (reader.cc does not ask for
// SWS_ACCURATE_RND), which comes out about 0.7 levels dark on average.
TEST(VideoColourTest, FullRangeBt709) {
  const Buffer bytes = ReadVideo(kFullRange);
  const VideoProbe probe = MustProbe(bytes, kFullRange);
  ASSERT_EQ(probe.info.color_range, "pc");
  ASSERT_EQ(probe.info.color_space, "bt709");
  auto reader = OpenReader(bytes, probe, kFullRange);
  ASSERT_NE(reader, nullptr);
  for (uint64_t frame : {0u, 17u}) {
    const Planes planes = NativePlanes(bytes, probe, frame);
    ASSERT_EQ(planes.format, AV_PIX_FMT_YUVJ420P);
    const std::vector<std::byte> rgb = ReadRgb(*reader, frame);
    const double full = MeanAbsDiff(planes, kBt709Full, rgb);
    const double limited = MeanAbsDiff(planes, kBt709Limited, rgb);
    const double bias = MeanSignedDiff(planes, kBt709Full, rgb);
    size_t pixels = 0;
    const auto strong = StrongFlatChroma(planes, 20);
    const double strong709 =
        MeanAbsDiff(planes, kBt709Full, rgb, strong, &pixels);
    const double strong601 = MeanAbsDiff(planes, kBt601Full, rgb, strong);
    std::printf(
        "[ measured ] %s frame %d: mean |diff| to BT.709 full range %.3f "
        "(bias %+.3f), to BT.709 limited range %.3f; on %d pixels of strong "
        "flat chroma: BT.709 %.3f, BT.601 %.3f\n",
        kFullRange, static_cast<int>(frame), full, bias, limited,
        static_cast<int>(pixels), strong709, strong601);
    EXPECT_LT(full, 1.5) << "frame " << frame;
    EXPECT_GT(limited, 8.0) << "frame " << frame;
    EXPECT_LT(std::abs(bias), 1.0) << "frame " << frame;
    EXPECT_GT(pixels, 10000u) << "frame " << frame;
    EXPECT_LT(strong709, 1.0) << "frame " << frame;
    EXPECT_GT(strong601, 10.0) << "frame " << frame;
  }
}

// nasa_13013.mp4 (yuv420p, BT.709, tv range): the limited-range equations.
// Its chroma is weak, so this tells the range, not the matrix.
TEST(VideoColourTest, LimitedRangeBt709) {
  const Buffer bytes = ReadVideo(kNasa);
  const VideoProbe probe = MustProbe(bytes, kNasa);
  ASSERT_EQ(probe.info.color_range, "tv");
  ASSERT_EQ(probe.info.color_space, "bt709");
  auto reader = OpenReader(bytes, probe, kNasa);
  ASSERT_NE(reader, nullptr);
  for (uint64_t frame : {100u, 300u}) {
    const Planes planes = NativePlanes(bytes, probe, frame);
    ASSERT_EQ(planes.format, AV_PIX_FMT_YUV420P);
    const std::vector<std::byte> rgb = ReadRgb(*reader, frame);
    const double limited = MeanAbsDiff(planes, kBt709Limited, rgb);
    const double full = MeanAbsDiff(planes, kBt709Full, rgb);
    const double bias = MeanSignedDiff(planes, kBt709Limited, rgb);
    std::printf(
        "[ measured ] %s frame %d: mean |diff| to BT.709 limited range %.3f "
        "(bias %+.3f), to BT.709 full range %.3f\n",
        kNasa, static_cast<int>(frame), limited, bias, full);
    EXPECT_LT(limited, 1.5) << "frame " << frame;
    EXPECT_LT(std::abs(bias), 1.2) << "frame " << frame;
    EXPECT_GT(full, 10.0) << "frame " << frame;
  }
}

// --------------------------------------------------------------- resize --

// Area-average downscale of packed RGB (each output pixel the mean of the
// source area it covers, fractional pixels weighted).
std::vector<double> BoxDownscale(std::span<const std::byte> rgb, int sw, int sh,
                                 int dw, int dh) {
  // weights[d] = (source index, weight) pairs, the weights summing to 1.
  auto weights = [](int src, int dst) {
    std::vector<std::vector<std::pair<int, double>>> w(dst);
    const double scale = static_cast<double>(src) / dst;
    for (int d = 0; d < dst; ++d) {
      const double a = d * scale, b = (d + 1) * scale;
      for (int s = static_cast<int>(a); s < src && s < b; ++s) {
        const double overlap =
            std::min<double>(b, s + 1) - std::max<double>(a, s);
        if (overlap > 0) w[d].emplace_back(s, overlap / scale);
      }
    }
    return w;
  };
  const auto wx = weights(sw, dw);
  const auto wy = weights(sh, dh);
  std::vector<double> rows(static_cast<size_t>(sh) * dw * 3);
  for (int y = 0; y < sh; ++y) {
    for (int x = 0; x < dw; ++x) {
      for (const auto& [s, w] : wx[x]) {
        for (int c = 0; c < 3; ++c) {
          rows[(static_cast<size_t>(y) * dw + x) * 3 + c] +=
              w * static_cast<double>(
                      rgb[(static_cast<size_t>(y) * sw + s) * 3 + c]);
        }
      }
    }
  }
  std::vector<double> out(static_cast<size_t>(dh) * dw * 3);
  for (int y = 0; y < dh; ++y) {
    for (const auto& [s, w] : wy[y]) {
      for (size_t i = 0; i < static_cast<size_t>(dw) * 3; ++i) {
        out[static_cast<size_t>(y) * dw * 3 + i] +=
            w * rows[static_cast<size_t>(s) * dw * 3 + i];
      }
    }
  }
  return out;
}

double MeanAbsDiff(std::span<const std::byte> a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double sum = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    sum += std::abs(static_cast<double>(a[i]) - b[i]);
  }
  return sum / static_cast<double>(a.size());
}

TEST(VideoResizeTest, ResizedFramesAreDownscaledFrames) {
  const Buffer bytes = ReadVideo(kNasa);
  const VideoProbe probe = MustProbe(bytes, kNasa);
  auto reader = OpenReader(bytes, probe, kNasa);
  ASSERT_NE(reader, nullptr);
  const VideoReadOptions small{.height = 112, .width = 200};
  ASSERT_EQ(reader->FrameBytes(small), 112u * 200 * 3);
  const uint64_t frames[] = {100, 101, 300};
  Guarded guarded(3 * reader->FrameBytes(small));
  ASSERT_TRUE(reader->ReadFrames(frames, small, guarded.span()).ok());
  EXPECT_EQ(guarded.Overrun(), 0u);
  const std::span<std::byte> resized = guarded.span();
  const uint64_t fb = reader->FrameBytes(small);
  std::vector<std::vector<double>> box;
  for (uint64_t k : frames) {
    box.push_back(BoxDownscale(ReadRgb(*reader, k), 480, 270, 200, 112));
  }
  auto part = [&](int j) { return std::span(resized).subspan(j * fb, fb); };
  const double own = MeanAbsDiff(part(0), box[0]);
  const double neighbour = MeanAbsDiff(part(0), box[1]);
  const double far = MeanAbsDiff(part(0), box[2]);
  const double own300 = MeanAbsDiff(part(2), box[2]);
  std::printf(
      "[ measured ] nasa 480x270 -> 200x112 vs box downscale: frame "
      "100 %.3f, frame 300 %.3f; frame 100 vs box of 101 %.3f, of "
      "300 %.3f\n",
      own, own300, neighbour, far);
  EXPECT_LT(own, 2.0);
  EXPECT_LT(own300, 2.0);
  EXPECT_GT(far, 4 * own);
  EXPECT_NE(Hash(part(0).data(), fb), Hash(part(1).data(), fb));

  // The same bytes again, after full-size reads, alone and in another
  // request order.
  for (uint64_t j = 0; j < 3; ++j) {
    const std::vector<std::byte> again = ReadRgb(*reader, frames[j], small);
    EXPECT_TRUE(std::equal(again.begin(), again.end(), part(j).begin()))
        << "frame " << frames[j];
  }
  // An upscale has its size too.
  const VideoReadOptions big{.height = 300, .width = 500};
  EXPECT_EQ(ReadRgb(*reader, 5, big).size(), 300u * 500 * 3);
}

// --------------------------------------------------------------- errors --

bool Contains(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string_view::npos;
}

TEST(VideoErrorTest, CorruptedGopFramesAreErrors) {
  const Buffer bytes = ReadVideo(kCorrupted);
  const VideoProbe probe = MustProbe(bytes, kCorrupted);
  ASSERT_EQ(probe.info.frame_count, 50u);
  const std::string name = "dataset d, tensor videos, sample 7";
  auto reader = OpenReader(bytes, probe, name);
  ASSERT_NE(reader, nullptr);
  const uint64_t fb = reader->FrameBytes({});
  std::vector<std::byte> out(29 * fb);
  const Status first = reader->ReadRange(0, 29, 1, {}, out);
  EXPECT_TRUE(first.ok()) << first;

  // Frame 29 is decoded after the refused packet (frame 30, pts 30720) in
  // the same GOP; frame 30 never comes out; the file has one GOP, so every
  // later frame is in the damaged GOP too.
  for (uint64_t k = 29; k < 50; ++k) {
    auto fresh = OpenReader(bytes, probe, name);
    ASSERT_NE(fresh, nullptr);
    std::vector<std::byte> one(fb);
    const Status s = fresh->ReadFrames(std::span(&k, 1), {}, one);
    ASSERT_FALSE(s.ok()) << "frame " << k;
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << s;
    EXPECT_TRUE(Contains(s, name)) << s;
    EXPECT_TRUE(Contains(s, "frame " + std::to_string(k) + " ")) << s;
    if (k == 29 || k == 30 || k == 49) {
      std::printf("[ measured ] frame %d: %s\n", static_cast<int>(k),
                  s.ToString().c_str());
    }
  }
  // The same reader goes on: errors for the damaged frames, then the good
  // ones again (it seeks back), equal to a fresh decode.
  std::vector<std::byte> one(fb);
  for (uint64_t k : {30u, 29u, 49u}) {
    const Status s = reader->ReadFrames(std::span(&k, 1), {}, one);
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << s;
    EXPECT_TRUE(Contains(s, "frame " + std::to_string(k) + " ")) << s;
  }
  const uint64_t good = 28;
  ASSERT_TRUE(reader->ReadFrames(std::span(&good, 1), {}, one).ok());
  EXPECT_TRUE(std::equal(one.begin(), one.end(), out.begin() + 28 * fb));
  // A request mixing good and damaged frames fails, naming the damaged one.
  const uint64_t mixed[] = {3, 35};
  std::vector<std::byte> two(2 * fb);
  const Status s = reader->ReadFrames(mixed, {}, two);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s;
  EXPECT_TRUE(Contains(s, "frame 35 ")) << s;
}

// The same damage found by a decoder on several threads. Frame threads
// (which the decoder does not use) report the refused packet (frame 30)
// late or not at all: frame 29 then came out unflagged, and different from
// ffmpeg's frame 29 and from one thread count to the next. So the threads
// are slice threads, and the damage is found as on one thread: the frames
// that come out are ffmpeg's, the good ones equal the single-threaded
// decode's, and every frame from 30 on is an error.
TEST(VideoErrorTest, CorruptedGopFramesAreErrorsOnThreads) {
  const Buffer bytes = ReadVideo(kCorrupted);
  const auto probe =
      std::make_shared<const VideoProbe>(MustProbe(bytes, kCorrupted));
  const Truth truth = LoadTruth(kCorrupted, probe->info.stream);
  auto single = OpenReader(bytes, *probe, "single");
  ASSERT_NE(single, nullptr);
  const uint64_t fb = single->FrameBytes({});
  std::vector<std::byte> want(29 * fb), got(29 * fb);
  ASSERT_TRUE(single->ReadRange(0, 29, 1, {}, want).ok());
  for (int threads : {2, 4}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    auto native =
        FrameDecoder::Open(bytes, probe.get(), "native", nullptr, threads);
    ASSERT_TRUE(native.ok()) << native.status();
    std::vector<uint64_t> all(50);
    for (uint64_t k = 0; k < 50; ++k) all[k] = k;
    size_t visited = 0;
    const Status status =
        (*native)->Decode(all, [&](size_t k, const AVFrame* frame) {
          EXPECT_EQ(k, visited);
          EXPECT_EQ(Describe(frame).md5, truth.md5[k]) << "frame " << k;
          ++visited;
          return Status::OK();
        });
    EXPECT_EQ(status.code(), StatusCode::kCorruption) << status;
    EXPECT_TRUE(visited == 29 || visited == 30) << visited;
    EXPECT_TRUE(Contains(status, "frame " + std::to_string(visited) + " "))
        << status;

    auto reader = VideoReader::Open(bytes, probe, "threaded", nullptr, threads);
    ASSERT_TRUE(reader.ok()) << reader.status();
    const Status s = (*reader)->ReadRange(0, 29, 1, {}, got);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_TRUE(got == want);
    for (uint64_t k = 30; k < 50; k += 4) {
      auto fresh =
          VideoReader::Open(bytes, probe, "threaded", nullptr, threads);
      ASSERT_TRUE(fresh.ok());
      std::vector<std::byte> one(fb);
      const Status e = (*fresh)->ReadFrames(std::span(&k, 1), {}, one);
      EXPECT_EQ(e.code(), StatusCode::kCorruption)
          << "frame " << k << ": " << e;
      EXPECT_TRUE(Contains(e, "frame " + std::to_string(k) + " ")) << e;
    }
  }
}

// ffmpeg's framemd5 of `file` (native frames, output order).
std::vector<std::string> FfmpegFrameMd5(const std::string& file) {
  const std::string command = "ffmpeg -v error -i '" + file +
                              "' -map 0:v:0 -vsync passthrough -f framemd5 - "
                              "2>/dev/null";
  std::vector<std::string> md5;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return md5;
  char line[512];
  while (std::fgets(line, sizeof(line), pipe) != nullptr) {
    if (line[0] == '#') continue;
    std::string text(line);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
      text.pop_back();
    }
    md5.push_back(text.substr(text.rfind(' ') + 1));
  }
  EXPECT_EQ(pclose(pipe), 0) << command;
  return md5;
}

// A thread's next decoder is its last one, flushed, when the streams have
// the same parameters (ReleaseDecoder): two different videos encoded alike
// (the same SPS/PPS) decoded one after the other, from the middle of a GOP
// and whole, give ffmpeg's frames.
TEST(VideoDecoderReuseTest, VideosEncodedAlikeDecodeExactlyInTurn) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("shoal-reuse-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::vector<std::string> files;
  for (const char* source : {"testsrc", "testsrc2"}) {
    const std::string file = (dir / (std::string(source) + ".mp4")).string();
    const std::string command =
        std::string("ffmpeg -v error -y -f lavfi -i ") + source +
        "=size=160x120:rate=25 -t 2 -c:v libx264 -g 12 -pix_fmt yuv420p "
        "-threads 1 '" +
        file + "'";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    files.push_back(file);
  }
  std::vector<Buffer> bytes;
  std::vector<VideoProbe> probes;
  std::vector<std::vector<std::string>> truth;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream all;
    all << in.rdbuf();
    bytes.push_back(Buffer::FromString(all.str()));
    probes.push_back(MustProbe(bytes.back(), f));
    truth.push_back(FfmpegFrameMd5(f));
    ASSERT_EQ(truth.back().size(), probes.back().index.pts.size()) << f;
  }
  std::filesystem::remove_all(dir);
  auto decode = [&](size_t v, std::vector<uint64_t> frames) {
    auto decoder = FrameDecoder::Open(bytes[v], &probes[v], files[v]);
    ASSERT_TRUE(decoder.ok()) << decoder.status();
    const Status s =
        (*decoder)->Decode(frames, [&](size_t j, const AVFrame* frame) {
          EXPECT_EQ(Describe(frame).md5, truth[v][frames[j]])
              << files[v] << " frame " << frames[j];
          return Status::OK();
        });
    EXPECT_TRUE(s.ok()) << s;
  };
  std::vector<uint64_t> all(probes[1].index.pts.size());
  for (uint64_t k = 0; k < all.size(); ++k) all[k] = k;
  for (int round = 0; round < 2; ++round) {
    decode(0, {15, 16, 17});  // leaves references of the second GOP
    decode(1, all);
    decode(1, {30, 31});
    decode(0, {2, 40});
  }
}

TEST(VideoErrorTest, BadRequests) {
  const Buffer bytes = ReadVideo(kNasa);
  const VideoProbe probe = MustProbe(bytes, kNasa);
  auto reader = OpenReader(bytes, probe, "bad requests");
  ASSERT_NE(reader, nullptr);
  const uint64_t fb = reader->FrameBytes({});
  ASSERT_EQ(fb, 480u * 270 * 3);
  std::vector<std::byte> out(2 * fb);
  const MutableByteSpan one(out.data(), fb);

  for (uint64_t k : {uint64_t{390}, uint64_t{391}, UINT64_MAX}) {
    const Status s = reader->ReadFrames(std::span(&k, 1), {}, one);
    EXPECT_EQ(s.code(), StatusCode::kOutOfRange) << k << ": " << s;
    EXPECT_TRUE(Contains(s, "bad requests")) << s;
  }
  const uint64_t some_bad[] = {3, 390};
  EXPECT_EQ(reader->ReadFrames(some_bad, {}, out).code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(reader->ReadRange(389, 391, 1, {}, out).code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(reader->ReadRange(5, 4, 1, {}, {}).code(), StatusCode::kOutOfRange);
  EXPECT_FALSE(reader->ReadRange(0, 2, 0, {}, out).ok());  // step 0

  // Output of the wrong size.
  const uint64_t k = 7;
  for (size_t size : {size_t{0}, fb - 1, fb + 1, 2 * fb}) {
    const Status s = reader->ReadFrames(std::span(&k, 1), {},
                                        MutableByteSpan(out.data(), size));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << size << ": " << s;
  }
  EXPECT_EQ(reader->ReadRange(0, 2, 1, {}, one).code(),
            StatusCode::kInvalidArgument);
  // One output dimension only, or too large.
  for (const VideoReadOptions& o :
       {VideoReadOptions{.height = 10}, VideoReadOptions{.width = 10},
        VideoReadOptions{.height = 100000, .width = 10}}) {
    std::vector<std::byte> buffer(reader->FrameBytes(o));
    EXPECT_EQ(reader->ReadFrames(std::span(&k, 1), o, buffer).code(),
              StatusCode::kInvalidArgument);
  }
  // Empty requests are fine; a good request still works afterwards.
  EXPECT_TRUE(reader->ReadFrames({}, {}, {}).ok());
  EXPECT_TRUE(reader->ReadRange(5, 5, 1, {}, {}).ok());
  EXPECT_TRUE(reader->ReadFrames(std::span(&k, 1), {}, one).ok());
}

TEST(VideoErrorTest, ProbeOfTheWrongStreamDoesNotOpen) {
  const Buffer bytes = ReadVideo(kNasa);
  const VideoProbe probe = MustProbe(bytes, kNasa);
  for (int stream : {1, 2, 4, 5, 6, 1000, -1}) {  // audio, subtitles, none
    VideoProbe wrong = probe;
    wrong.info.stream = stream;
    auto reader = VideoReader::Open(bytes, wrong, "wrong stream");
    ASSERT_FALSE(reader.ok()) << "stream " << stream;
    EXPECT_TRUE(Contains(reader.status(), "wrong stream")) << reader.status();
  }
  // Stream 0 is a video stream, but of another size and time base: its
  // frames do not pass for stream 3's.
  VideoProbe other_stream = probe;
  other_stream.info.stream = 0;
  auto reader = VideoReader::Open(bytes, other_stream, "other stream");
  if (reader.ok()) {
    const uint64_t k = 0;
    std::vector<std::byte> out((*reader)->FrameBytes({}));
    const Status s = (*reader)->ReadFrames(std::span(&k, 1), {}, out);
    EXPECT_FALSE(s.ok());
    std::printf("[ measured ] nasa's probe with stream 0: %s\n",
                s.ToString().c_str());
  }
  // nasa's probe (stream 3) over a file with two streams.
  auto other = VideoReader::Open(ReadVideo("bbb_480p_vp9_opus_1second.webm"),
                                 probe, "other file");
  EXPECT_FALSE(other.ok());
}

// Found by the video fuzz target: a 3.5 KiB WebM whose track says colour
// space 116, a value AVColorSpace does not have, which FFmpeg's demuxer
// copies as is; reading it as the enum was undefined behaviour (UBSan:
// "load of value 116", under `make test-asan` and the fuzz build). The
// probe treats it as unspecified, and its JSON reads back equal.
TEST(VideoErrorTest, OutOfRangeColourFieldsAreUnspecified) {
  const Buffer bytes = ReadFile(std::string(SHOAL_TEST_DATA) +
                                "/video_hostile/colorspace_116.webm");
  ASSERT_GT(bytes.size(), 0u);
  auto probe = ProbeVideo(bytes, "colorspace_116.webm");
  if (!probe.ok()) {
    EXPECT_TRUE(Contains(probe.status(), "colorspace_116.webm"))
        << probe.status();
    return;
  }
  EXPECT_EQ(probe->info.color_space, "");
  auto back = VideoProbeFromJson(VideoProbeToJson(*probe));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == *probe);
}

TEST(VideoErrorTest, NotAVideo) {
  auto empty = ProbeVideo(Buffer(), "empty");
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(Contains(empty.status(), "empty")) << empty.status();

  SplitMix64 rng(7);
  for (size_t size : {size_t{1}, size_t{100}, size_t{4096}, size_t{65536}}) {
    std::string noise(size, '\0');
    for (char& c : noise) c = static_cast<char>(rng.Next());
    auto probe = ProbeVideo(Buffer::FromString(noise), "noise");
    EXPECT_FALSE(probe.ok()) << size << " random bytes";
  }
  // A real header followed by noise.
  const Buffer nasa = ReadVideo(kNasa);
  std::string head(nasa.view().substr(0, 4096));
  for (size_t i = 48; i < head.size(); ++i)
    head[i] = static_cast<char>(rng.Next());
  EXPECT_FALSE(ProbeVideo(Buffer::FromString(head), "head").ok());
  // A reader over noise with a good probe.
  const VideoProbe probe = MustProbe(nasa, kNasa);
  std::string noise(nasa.size(), '\0');
  for (char& c : noise) c = static_cast<char>(rng.Next());
  EXPECT_FALSE(VideoReader::Open(Buffer::FromString(noise), probe, "x").ok());
  EXPECT_FALSE(VideoReader::Open(Buffer(), probe, "x").ok());
}

// Top-level MP4 boxes: (type, offset, size).
std::vector<std::tuple<std::string, size_t, size_t>> Boxes(ByteSpan bytes) {
  std::vector<std::tuple<std::string, size_t, size_t>> boxes;
  size_t at = 0;
  while (at + 8 <= bytes.size()) {
    size_t size = 0;
    for (int i = 0; i < 4; ++i) {
      size = size << 8 | static_cast<uint8_t>(bytes[at + i]);
    }
    if (size < 8 || at + size > bytes.size()) break;
    boxes.emplace_back(std::string(AsStringView(bytes.subspan(at + 4, 4))), at,
                       size);
    at += size;
  }
  return boxes;
}

struct Outcome {
  bool probed = false;
  uint64_t frames = 0;
  uint64_t ok = 0;         // frames read, equal to the intact file's
  uint64_t errors = 0;     // frames refused with an error
  uint64_t different = 0;  // frames read that differ from the intact file's
  uint64_t unchecked = 0;  // frames read that the intact file has no RGB of
  uint64_t new_pts = 0;    // frames the intact file does not have
  std::string probe_error;
};

// Probes `bytes` and, when that works, reads every frame alone and all at
// once: nothing may crash; errors are Status values.
// `reference`: the intact file's RGB hashes by pts.
Outcome ReadDamaged(const Buffer& bytes,
                    const std::map<int64_t, uint64_t>& reference,
                    const std::vector<int64_t>& intact_pts,
                    const std::string& what) {
  Outcome o;
  auto probe = ProbeVideo(bytes, what);
  if (!probe.ok()) {
    EXPECT_TRUE(Contains(probe.status(), what)) << probe.status();
    o.probe_error = probe.status().ToString();
    return o;
  }
  o.probed = true;
  o.frames = probe->info.frame_count;
  for (int64_t pts : probe->index.pts) {
    if (!std::binary_search(intact_pts.begin(), intact_pts.end(), pts)) {
      ++o.new_pts;
    }
  }
  auto reader = VideoReader::Open(bytes, *probe, what);
  if (!reader.ok()) return o;
  const uint64_t fb = (*reader)->FrameBytes({});
  Guarded out(fb);
  for (uint64_t k = 0; k < o.frames; ++k) {
    const Status s = (*reader)->ReadFrames(std::span(&k, 1), {}, out.span());
    EXPECT_EQ(out.Overrun(), 0u) << what << ", frame " << k;
    if (!s.ok()) {
      EXPECT_TRUE(Contains(s, what)) << s;
      ++o.errors;
    } else if (auto it = reference.find(probe->index.pts[k]);
               it == reference.end()) {
      ++o.unchecked;
    } else if (Hash(out.data(), fb) == it->second) {
      ++o.ok;
    } else {
      ++o.different;
    }
  }
  Guarded all(o.frames * fb);
  (void)(*reader)->ReadRange(0, o.frames, 1, {}, all.span());
  EXPECT_EQ(all.Overrun(), 0u) << what;
  const VideoReadOptions small{.height = 16, .width = 16};
  Guarded smalls(o.frames * (*reader)->FrameBytes(small));
  (void)(*reader)->ReadRange(0, o.frames, 1, small, smalls.span());
  EXPECT_EQ(smalls.Overrun(), 0u) << what;
  return o;
}

void Report(const std::string& what, const Outcome& o) {
  if (!o.probed) {
    std::printf("[ measured ] %s: no probe (%s)\n", what.c_str(),
                o.probe_error.c_str());
    return;
  }
  std::printf(
      "[ measured ] %s: %d frames, %d as before, %d errors, %d different, %d "
      "unchecked\n",
      what.c_str(), static_cast<int>(o.frames), static_cast<int>(o.ok),
      static_cast<int>(o.errors), static_cast<int>(o.different),
      static_cast<int>(o.unchecked));
}

// Truncated files, and MP4s whose media data is cut while the index (moov)
// is kept: ProbeVideo fails cleanly or the reader returns frames or errors.
TEST(VideoErrorTest, TruncatedFiles) {
  for (const Facts& f : AllFacts()) {
    const Buffer bytes = ReadVideo(f.file);
    // The intact file's RGB by pts (corrupted.mp4: its good frames 0..28).
    std::map<int64_t, uint64_t> reference;
    const VideoProbe intact = MustProbe(bytes, f.file);
    if (f.file == kCorrupted) {
      auto reader = OpenReader(bytes, intact, f.file);
      ASSERT_NE(reader, nullptr);
      const uint64_t fb = reader->FrameBytes({});
      std::vector<std::byte> out(29 * fb);
      ASSERT_TRUE(reader->ReadRange(0, 29, 1, {}, out).ok());
      for (uint64_t k = 0; k < 29; ++k) {
        reference[intact.index.pts[k]] = Hash(out.data() + k * fb, fb);
      }
    } else {
      const std::vector<uint64_t>& rgb = ReferenceOf(f.file).rgb;
      for (uint64_t k = 0; k < rgb.size(); ++k) {
        reference[intact.index.pts[k]] = rgb[k];
      }
    }
    const auto boxes = Boxes(bytes.span());
    auto box = [&](const char* type) {
      return std::find_if(boxes.begin(), boxes.end(), [&](const auto& b) {
        return std::get<0>(b) == type;
      });
    };
    for (const double fraction : {0.0, 0.1, 0.5, 0.9}) {
      const size_t cut =
          fraction == 0 ? 100 : static_cast<size_t>(bytes.size() * fraction);
      const std::string what =
          f.file + " cut at " + std::to_string(cut) + " bytes";
      const Outcome o =
          ReadDamaged(bytes.Slice(0, cut), reference, intact.index.pts, what);
      Report(what, o);
      // Each frame is either as before or an error.
      EXPECT_EQ(o.different, 0u) << what;
      EXPECT_EQ(o.new_pts, 0u) << what;

      // The media data (mdat) cut at the same place, the index (moov)
      // moved up behind it.
      if (box("moov") == boxes.end() || box("mdat") == boxes.end() ||
          fraction == 0) {
        continue;
      }
      const auto [moov_name, moov_at, moov_size] = *box("moov");
      const size_t mdat_at = std::get<1>(*box("mdat"));
      if (cut <= mdat_at + 8) continue;
      std::string spliced(bytes.view().substr(0, cut));
      for (int i = 0; i < 4; ++i) {  // the mdat's new size
        spliced[mdat_at + i] =
            static_cast<char>((cut - mdat_at) >> (8 * (3 - i)) & 0xff);
      }
      spliced += bytes.view().substr(moov_at, moov_size);
      const std::string what2 = f.file + " mdat cut at " + std::to_string(cut);
      const Outcome o2 = ReadDamaged(Buffer::FromString(spliced), reference,
                                     intact.index.pts, what2);
      Report(what2, o2);
      EXPECT_EQ(o2.new_pts, 0u) << what2;
    }
  }
}

// --------------------------------------------------------------- threads --

// Readers on 8 threads over one shared Buffer, two readers per thread used
// in turn (the second one sharing its probe), switching between the coded
// size and a resize: every frame equals the sequential decode's.
TEST(VideoThreadTest, ReadersOnManyThreads) {
  const Reference& ref = ReferenceOf(kNasa);
  ASSERT_EQ(ref.rgb.size(), 390u);
  const VideoReadOptions small{.height = 112, .width = 200};
  const std::vector<uint64_t> small_ref =
      SequentialRgbHashes(ref.bytes, ref.probe, small);
  ASSERT_EQ(small_ref.size(), 390u);
  const auto shared_probe = std::make_shared<const VideoProbe>(ref.probe);
  constexpr int kThreads = 8;
  std::vector<std::string> failures(kThreads);
  std::vector<uint64_t> frames_read(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string name = "thread " + std::to_string(t);
      auto own = VideoReader::Open(ref.bytes, ref.probe, name);
      auto shared = VideoReader::Open(ref.bytes, shared_probe, name);
      if (!own.ok() || !shared.ok()) {
        failures[t] = (own.ok() ? shared.status() : own.status()).ToString();
        return;
      }
      SplitMix64 rng(1000 + t);

      for (int r = 0; r < 8; ++r) {
        VideoReader& reader = r % 2 == 0 ? **own : **shared;
        const bool resize = (r / 2) % 2 == 1;
        const VideoReadOptions options = resize ? small : VideoReadOptions{};
        const std::vector<uint64_t>& reference = resize ? small_ref : ref.rgb;
        const uint64_t fb = reader.FrameBytes(options);
        std::vector<uint64_t> frames(1 + rng.Bounded(6));
        for (uint64_t& k : frames) k = rng.Bounded(390);
        Guarded out(frames.size() * fb);
        const Status s = reader.ReadFrames(frames, options, out.span());
        if (!s.ok()) {
          failures[t] = s.ToString();
          return;
        }
        if (out.Overrun() != 0) {
          failures[t] =
              std::to_string(out.Overrun()) + " bytes written past the output";
          return;
        }
        for (size_t j = 0; j < frames.size(); ++j) {
          if (Hash(out.data() + j * fb, fb) != reference[frames[j]]) {
            failures[t] = "frame " + std::to_string(frames[j]) +
                          (resize ? " resized" : "") + " differs";
            return;
          }
        }
        frames_read[t] += frames.size();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(failures[t], "") << "thread " << t;
    EXPECT_GT(frames_read[t], 0u) << "thread " << t;
  }
}

}  // namespace
}  // namespace shoal
