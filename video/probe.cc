// ProbeVideo: the frame index from demuxing alone, and its JSON form.
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

extern "C" {
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
}

#include "video/internal/av.h"
#include "video/internal/frame_decoder.h"
#include "video/video.h"

namespace shoal {

using internal::AvError;
using internal::MemoryInput;

int64_t FrameIndex::SeekPointFor(uint64_t k) const {
  if (seek_points.empty() || k >= pts.size()) return INT64_MIN;
  auto it = std::upper_bound(seek_points.begin(), seek_points.end(), pts[k]);
  return it == seek_points.begin() ? seek_points.front() : *std::prev(it);
}

uint64_t FrameIndex::MaxKeyframeInterval() const {
  if (pts.empty()) return 0;
  uint64_t longest = 0, from = 0;
  for (uint64_t k : keyframes) {
    longest = std::max(longest, k - from);
    from = k;
  }
  return std::max(longest, pts.size() - from);
}

namespace {

// "mov,mp4,m4a,3gp,3g2,mj2" names a family; the major brand tells mov from
// mp4, and the doctype webm from matroska.
std::string ContainerName(const AVFormatContext* f, ByteSpan bytes) {
  const std::string names = f->iformat->name;
  auto tag = [&](const char* key) -> std::string {
    const AVDictionaryEntry* e = av_dict_get(f->metadata, key, nullptr, 0);
    return e != nullptr ? e->value : "";
  };
  if (names.starts_with("mov,")) {
    const std::string brand = tag("major_brand");
    return brand.starts_with("qt") ? "mov" : "mp4";
  }
  if (names.starts_with("matroska")) {
    // The EBML header's DocType element (id 0x4282, a one-byte size
    // 0x84, "webm") within the first bytes.
    const std::string_view head =
        AsStringView(bytes.first(std::min<size_t>(bytes.size(), 64)));
    return head.find("\x42\x82\x84webm") != std::string_view::npos ? "webm"
                                                                   : "matroska";
  }
  return names.substr(0, names.find(','));
}

struct Packet {
  int64_t pts;
  bool key;
  bool discard;
};

}  // namespace

Result<VideoProbe> ProbeVideo(const Buffer& bytes, std::string_view name,
                              const VideoLimits& limits) {
  const std::string where = name.empty() ? "video" : std::string(name);
  SHOAL_ASSIGN_OR_RETURN(auto input, MemoryInput::Open(bytes, where));
  AVFormatContext* f = input->format();
  const int stream =
      av_find_best_stream(f, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (stream < 0) {
    return InvalidArgument(where + ": no video stream");
  }
  AVStream* st = f->streams[stream];
  const AVCodecParameters* par = st->codecpar;
  if (avcodec_find_decoder(par->codec_id) == nullptr) {
    return Unimplemented(where + ": no decoder for codec " +
                         avcodec_get_name(par->codec_id));
  }
  if (par->width <= 0 || par->height <= 0) {
    return Corruption(where + ": the video stream has no frame size");
  }
  if (static_cast<uint64_t>(par->width) > limits.max_width ||
      static_cast<uint64_t>(par->height) > limits.max_height) {
    return InvalidArgument(where + ": frames of " + std::to_string(par->width) +
                           "x" + std::to_string(par->height) +
                           " pass the limit of " +
                           std::to_string(limits.max_width) + "x" +
                           std::to_string(limits.max_height));
  }
  if (st->time_base.num <= 0 || st->time_base.den <= 0) {
    return Corruption(where + ": the video stream has no time base");
  }

  VideoProbe probe;
  VideoInfo& info = probe.info;
  info.container = ContainerName(f, bytes.span());
  info.codec = avcodec_get_name(par->codec_id);
  info.stream = stream;
  info.width = static_cast<uint32_t>(par->width);
  info.height = static_cast<uint32_t>(par->height);
  info.time_base = {st->time_base.num, st->time_base.den};
  if (const uint8_t* matrix =
          av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, nullptr)) {
    const double angle =
        av_display_rotation_get(reinterpret_cast<const int32_t*>(matrix));
    if (std::isfinite(angle))
      info.rotation = static_cast<int>(std::lround(angle));
  }
  if (par->format >= 0) {
    if (const char* n =
            av_get_pix_fmt_name(static_cast<AVPixelFormat>(par->format))) {
      info.pixel_format = n;
    }
  }
  const int range = internal::RawEnum(par->color_range);
  if (range == AVCOL_RANGE_MPEG || range == AVCOL_RANGE_JPEG) {
    info.color_range = range == AVCOL_RANGE_JPEG ? "pc" : "tv";
  }
  const int space = internal::RawEnum(par->color_space);
  if (space != AVCOL_SPC_UNSPECIFIED && space >= 0 && space < AVCOL_SPC_NB) {
    if (const char* n = av_color_space_name(static_cast<AVColorSpace>(space))) {
      info.color_space = n;
    }
  }

  // Demux the video stream's packets only (others are skipped by the
  // demuxer), without decoding.
  for (unsigned i = 0; i < f->nb_streams; ++i) {
    if (static_cast<int>(i) != stream) f->streams[i]->discard = AVDISCARD_ALL;
  }
  std::vector<Packet> packets;
  internal::PacketPtr pkt(av_packet_alloc());
  if (!pkt) return ResourceExhausted(where + ": no memory");
  for (;;) {
    const int err = av_read_frame(f, pkt.get());
    if (err == AVERROR_EOF) break;
    if (err < 0)
      return AvError(
          err, where + ": reading packet " + std::to_string(packets.size()));
    if (pkt->stream_index == stream) {
      const int64_t pts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
      if (pts == AV_NOPTS_VALUE) {
        av_packet_unref(pkt.get());
        return Unimplemented(where + ": packet " +
                             std::to_string(packets.size()) +
                             " of the video stream has no timestamp");
      }
      packets.push_back({pts, (pkt->flags & AV_PKT_FLAG_KEY) != 0,
                         (pkt->flags & AV_PKT_FLAG_DISCARD) != 0});
      if (packets.size() > limits.max_frames) {
        av_packet_unref(pkt.get());
        return InvalidArgument(where + ": more than " +
                               std::to_string(limits.max_frames) + " frames");
      }
    }
    av_packet_unref(pkt.get());
  }
  if (packets.empty()) return Corruption(where + ": the video has no frames");

  std::sort(packets.begin(), packets.end(),
            [](const Packet& a, const Packet& b) { return a.pts < b.pts; });
  FrameIndex& index = probe.index;
  for (const Packet& p : packets) {
    if (p.key) index.seek_points.push_back(p.pts);
    if (p.discard) continue;
    if (!index.pts.empty() && index.pts.back() == p.pts) {
      return Corruption(where + ": two frames have pts " +
                        std::to_string(p.pts));
    }
    if (p.key) index.keyframes.push_back(index.pts.size());
    index.pts.push_back(p.pts);
  }
  index.seek_points.erase(
      std::unique(index.seek_points.begin(), index.seek_points.end()),
      index.seek_points.end());
  if (index.pts.empty())
    return Corruption(where + ": every frame is discarded");
  if (index.seek_points.empty() || index.seek_points.front() > index.pts[0]) {
    return Corruption(where + ": no keyframe at or before the first frame");
  }
  info.frame_count = index.pts.size();

  // Duration and rate from the frames themselves: the last frame lasts as
  // long as the mean frame.
  const uint64_t n = index.pts.size();
  const int64_t span = index.pts.back() - index.pts.front();
  const double tb = info.time_base.value();
  if (st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0) {
    info.frame_rate = {st->avg_frame_rate.num, st->avg_frame_rate.den};
  } else if (n > 1 && span > 0) {
    AVRational r;
    av_reduce(&r.num, &r.den, static_cast<int64_t>(n - 1) * st->time_base.den,
              span * st->time_base.num, 1 << 20);
    info.frame_rate = {r.num, r.den};
  }
  info.duration_seconds =
      n > 1 ? static_cast<double>(span) * tb * n / (n - 1)
            : (info.frame_rate.num > 0 ? 1.0 / info.frame_rate.value() : 0.0);

  // Decode the first frame: it proves the stream decodes, and only a frame
  // tells the pixel format and colour of many containers.
  SHOAL_ASSIGN_OR_RETURN(auto decoder,
                         internal::FrameDecoder::Open(bytes, &probe, where));
  const uint64_t first = 0;
  SHOAL_RETURN_IF_ERROR(
      decoder->Decode(std::span(&first, 1), [&](size_t, const AVFrame* frame) {
        if (const char* n = av_get_pix_fmt_name(
                static_cast<AVPixelFormat>(frame->format))) {
          info.pixel_format = n;
        }
        const int frame_range = internal::RawEnum(frame->color_range);
        if (frame_range == AVCOL_RANGE_JPEG ||
            frame->format == AV_PIX_FMT_YUVJ420P ||
            frame->format == AV_PIX_FMT_YUVJ422P ||
            frame->format == AV_PIX_FMT_YUVJ444P) {
          info.color_range = "pc";
        } else if (frame_range == AVCOL_RANGE_MPEG) {
          info.color_range = "tv";
        }
        const int frame_space = internal::RawEnum(frame->colorspace);
        if (frame_space != AVCOL_SPC_UNSPECIFIED && frame_space >= 0 &&
            frame_space < AVCOL_SPC_NB) {
          if (const char* n =
                  av_color_space_name(static_cast<AVColorSpace>(frame_space))) {
            info.color_space = n;
          }
        }
        return Status::OK();
      }));
  return probe;
}

// ------------------------------------------------------------------ JSON --
//
// {"container": "mp4", "codec": "h264", "stream": 0, "width": 320,
//  "height": 180, "rotation": 0, "frame_rate": [25, 1],
//  "time_base": [1, 12800], "duration": 16.56, "frames": 325,
//  "pixel_format": "yuv420p", "color_range": "tv", "color_space": "bt709",
//  "pts": [[first, step, count], ...], "keyframes": [0, 202],
//  "seek_points": [0, 103424]}

std::string VideoProbeToJson(const VideoProbe& probe) {
  const VideoInfo& i = probe.info;
  nlohmann::json j;
  j["container"] = i.container;
  j["codec"] = i.codec;
  j["stream"] = i.stream;
  j["width"] = i.width;
  j["height"] = i.height;
  j["rotation"] = i.rotation;
  j["frame_rate"] = {i.frame_rate.num, i.frame_rate.den};
  j["time_base"] = {i.time_base.num, i.time_base.den};
  j["duration"] = i.duration_seconds;
  j["frames"] = i.frame_count;
  j["pixel_format"] = i.pixel_format;
  j["color_range"] = i.color_range;
  j["color_space"] = i.color_space;
  // pts as runs of a constant step.
  nlohmann::json runs = nlohmann::json::array();
  const auto& pts = probe.index.pts;
  for (size_t k = 0; k < pts.size();) {
    const int64_t step = k + 1 < pts.size() ? pts[k + 1] - pts[k] : 0;
    size_t end = k + 1;
    while (end < pts.size() && pts[end] - pts[end - 1] == step) ++end;
    runs.push_back({pts[k], step, end - k});
    k = end;
  }
  j["pts"] = std::move(runs);
  j["keyframes"] = probe.index.keyframes;
  j["seek_points"] = probe.index.seek_points;
  return j.dump();
}

Result<VideoProbe> VideoProbeFromJson(std::string_view text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Corruption("video info: not a JSON object");
  }
  VideoProbe probe;
  VideoInfo& i = probe.info;
  // Integers only (no booleans, no floats that would convert out of
  // range), within what ProbeVideo would ever write.
  auto integer = [](const nlohmann::json& v, int64_t lo, int64_t hi,
                    auto& out) {
    if (!v.is_number_integer()) throw std::invalid_argument("not an integer");
    if (v.is_number_unsigned() &&
        v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      throw std::invalid_argument("an integer out of range");
    }
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi)
      throw std::invalid_argument("an integer out of range");
    out = static_cast<std::remove_reference_t<decltype(out)>>(x);
  };
  const VideoLimits limits;
  constexpr int64_t kMax = INT64_MAX, kMin = INT64_MIN;
  try {
    i.container = j.at("container").get<std::string>();
    i.codec = j.at("codec").get<std::string>();
    integer(j.at("stream"), 0, 1 << 16, i.stream);
    integer(j.at("width"), 1, limits.max_width, i.width);
    integer(j.at("height"), 1, limits.max_height, i.height);
    integer(j.at("rotation"), -360, 360, i.rotation);
    integer(j.at("frame_rate").at(0), 0, kMax, i.frame_rate.num);
    integer(j.at("frame_rate").at(1), 0, kMax, i.frame_rate.den);
    integer(j.at("time_base").at(0), 1, kMax, i.time_base.num);
    integer(j.at("time_base").at(1), 1, kMax, i.time_base.den);
    if (!j.at("duration").is_number()) {
      throw std::invalid_argument("duration is not a number");
    }
    i.duration_seconds = j.at("duration").get<double>();
    integer(j.at("frames"), 1, static_cast<int64_t>(limits.max_frames),
            i.frame_count);
    i.pixel_format = j.at("pixel_format").get<std::string>();
    i.color_range = j.at("color_range").get<std::string>();
    i.color_space = j.at("color_space").get<std::string>();
    for (const char* key : {"pts", "keyframes", "seek_points"}) {
      if (!j.at(key).is_array()) {
        throw std::invalid_argument(std::string(key) + " is not an array");
      }
    }
    FrameIndex& index = probe.index;
    for (const auto& run : j.at("pts")) {
      int64_t first = 0, step = 0;
      uint64_t count = 0;
      integer(run.at(0), kMin, kMax, first);
      integer(run.at(1), kMin, kMax, step);
      integer(run.at(2), 1, static_cast<int64_t>(limits.max_frames), count);
      if (count > i.frame_count - index.pts.size()) {
        return Corruption("video info: pts runs do not add up to " +
                          std::to_string(i.frame_count) + " frames");
      }
      for (uint64_t c = 0; c < count; ++c) {
        int64_t offset = 0, pts = 0;
        if (__builtin_mul_overflow(static_cast<int64_t>(c), step, &offset) ||
            __builtin_add_overflow(first, offset, &pts)) {
          return Corruption("video info: pts overflow 64 bits");
        }
        index.pts.push_back(pts);
      }
    }
    for (const auto& k : j.at("keyframes")) {
      uint64_t x = 0;
      integer(k, 0, kMax, x);
      index.keyframes.push_back(x);
    }
    for (const auto& p : j.at("seek_points")) {
      int64_t x = 0;
      integer(p, kMin, kMax, x);
      index.seek_points.push_back(x);
    }
  } catch (const std::exception& e) {  // nlohmann's, and ours above
    return Corruption(std::string("video info: ") + e.what());
  }
  const FrameIndex& index = probe.index;
  if (index.pts.size() != i.frame_count || index.pts.empty()) {
    return Corruption("video info: " + std::to_string(index.pts.size()) +
                      " pts for " + std::to_string(i.frame_count) + " frames");
  }
  if (!std::is_sorted(index.pts.begin(), index.pts.end()) ||
      std::adjacent_find(index.pts.begin(), index.pts.end()) !=
          index.pts.end()) {
    return Corruption("video info: pts do not increase");
  }
  for (size_t k = 0; k < index.keyframes.size(); ++k) {
    if (index.keyframes[k] >= index.pts.size() ||
        (k > 0 && index.keyframes[k] <= index.keyframes[k - 1])) {
      return Corruption("video info: bad keyframe list");
    }
  }
  if (index.seek_points.empty() ||
      !std::is_sorted(index.seek_points.begin(), index.seek_points.end()) ||
      index.seek_points.front() > index.pts.front()) {
    return Corruption("video info: bad seek points");
  }

  return probe;
}

}  // namespace shoal
