// VideoReader: FrameDecoder plus conversion to RGB24 in the caller's buffer.
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

extern "C" {
#include <libavutil/pixdesc.h>
}

#include "video/internal/frame_decoder.h"
#include "video/video.h"

namespace shoal {

using internal::FrameDecoder;

namespace {

// swscale wants the full-range "J" formats spelled as the plain ones plus
// a range flag.
AVPixelFormat WithoutJ(AVPixelFormat f, bool* full_range) {
  switch (f) {
    case AV_PIX_FMT_YUVJ420P:
      *full_range = true;
      return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P:
      *full_range = true;
      return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P:
      *full_range = true;
      return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P:
      *full_range = true;
      return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P:
      *full_range = true;
      return AV_PIX_FMT_YUV411P;
    default:
      return f;
  }
}

// The colour converter of the calling thread, with what it was set up for:
// a loader opens a reader per clip, and the clips of one dataset mostly
// share their geometry, so the context outlives readers (swscale contexts
// take tables and buffers to build).
struct Converter {
  struct Key {
    int src_w = 0, src_h = 0, src_format = -1, dst_w = 0, dst_h = 0;
    int colorspace = -1;
    bool full_range = false;
    bool operator==(const Key&) const = default;
  } key;
  internal::SwsContextPtr sws;
};
thread_local Converter converter;

}  // namespace

class VideoReader::Impl {
 public:
  std::shared_ptr<const VideoProbe> probe;
  std::unique_ptr<FrameDecoder> decoder;
  std::vector<std::pair<uint64_t, size_t>> order;  // (frame, position)
  std::vector<uint64_t> unique;
  std::vector<size_t> first_position;  // of each unique frame

  Status Convert(const AVFrame* frame, uint64_t k,
                 const VideoReadOptions& options, std::byte* out);
};

Status VideoReader::Impl::Convert(const AVFrame* frame, uint64_t k,
                                  const VideoReadOptions& options,
                                  std::byte* out) {
  const VideoInfo& info = probe->info;
  if (frame->width != static_cast<int>(info.width) ||
      frame->height != static_cast<int>(info.height)) {
    return Unimplemented(
        decoder->name() + ": frame " + std::to_string(k) + " is " +
        std::to_string(frame->width) + "x" + std::to_string(frame->height) +
        ", the video's frames are " + std::to_string(info.width) + "x" +
        std::to_string(info.height) + " (size changes are not supported)");
  }
  bool full_range = frame->color_range == AVCOL_RANGE_JPEG;
  const AVPixelFormat src =
      WithoutJ(static_cast<AVPixelFormat>(frame->format), &full_range);
  using Key = Converter::Key;
  internal::SwsContextPtr& sws = converter.sws;
  Key& key = converter.key;
  Key want{frame->width,
           frame->height,
           src,
           static_cast<int>(options.width ? options.width : info.width),
           static_cast<int>(options.height ? options.height : info.height),
           frame->colorspace,
           full_range};
  if (!sws || !(want == key)) {
    // Bilinear when resizing; at the coded size swscale then takes its fast
    // YUV->RGB path (SWS_ACCURATE_RND would force the exact but ~6x slower
    // generic one: 30 % of a 360p decode; results differ by about a level).
    sws.reset(sws_getContext(want.src_w, want.src_h, src, want.dst_w,
                             want.dst_h, AV_PIX_FMT_RGB24, SWS_BILINEAR,
                             nullptr, nullptr, nullptr));
    if (!sws) {
      const char* name = av_get_pix_fmt_name(src);
      return Unimplemented(decoder->name() + ": cannot convert " +
                           (name ? name : "this pixel format") + " to RGB");
    }
    // The matrix of the stream (BT.601 when unspecified, as FFmpeg does)
    // and its range; RGB out is full range.
    const int* coefficients = sws_getCoefficients(want.colorspace);
    sws_setColorspaceDetails(sws.get(), coefficients, full_range ? 1 : 0,
                             sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16,
                             1 << 16);
    key = want;
  }
  uint8_t* dst[4] = {reinterpret_cast<uint8_t*>(out), nullptr, nullptr,
                     nullptr};
  int dst_stride[4] = {want.dst_w * 3, 0, 0, 0};
  const int rows = sws_scale(sws.get(), frame->data, frame->linesize, 0,
                             frame->height, dst, dst_stride);
  if (rows != want.dst_h) {
    return Internal(decoder->name() + ": frame " + std::to_string(k) +
                    ": colour conversion gave " + std::to_string(rows) +
                    " rows");
  }
  return Status::OK();
}

VideoReader::VideoReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VideoReader::~VideoReader() = default;

Result<std::unique_ptr<VideoReader>> VideoReader::Open(Buffer bytes,
                                                       VideoProbe probe,
                                                       std::string name) {
  return Open(std::move(bytes),
              std::make_shared<const VideoProbe>(std::move(probe)),
              std::move(name));
}

Result<std::unique_ptr<VideoReader>> VideoReader::Open(
    Buffer bytes, std::shared_ptr<const VideoProbe> probe, std::string name) {
  if (!probe) return InvalidArgument(name + ": no video probe");
  auto impl = std::make_unique<Impl>();
  impl->probe = std::move(probe);
  SHOAL_ASSIGN_OR_RETURN(
      impl->decoder,
      FrameDecoder::Open(std::move(bytes), impl->probe.get(), std::move(name)));
  return std::unique_ptr<VideoReader>(new VideoReader(std::move(impl)));
}

const VideoProbe& VideoReader::probe() const { return *impl_->probe; }
const VideoReadStats& VideoReader::stats() const {
  return impl_->decoder->stats();
}

uint64_t VideoReader::FrameBytes(const VideoReadOptions& options) const {
  const VideoInfo& info = impl_->probe->info;
  const uint64_t h = options.height ? options.height : info.height;
  const uint64_t w = options.width ? options.width : info.width;
  return h * w * 3;
}

Status VideoReader::ReadFrames(std::span<const uint64_t> frames,
                               const VideoReadOptions& options,
                               MutableByteSpan out) {
  Impl& m = *impl_;
  const std::string& name = m.decoder->name();
  if ((options.height == 0) != (options.width == 0) || options.height > 16384 ||
      options.width > 16384) {
    return InvalidArgument(name + ": output size " +
                           std::to_string(options.height) + "x" +
                           std::to_string(options.width) +
                           " (give both or neither, at most 16384)");
  }
  const uint64_t frame_bytes = FrameBytes(options);
  if (out.size() != frames.size() * frame_bytes) {
    return InvalidArgument(name + ": output of " + std::to_string(out.size()) +
                           " bytes for " + std::to_string(frames.size()) +
                           " frames of " + std::to_string(frame_bytes));
  }
  m.order.clear();
  for (size_t j = 0; j < frames.size(); ++j) {
    if (frames[j] >= frame_count()) {
      return OutOfRange(name + ": frame " + std::to_string(frames[j]) +
                        " of a video with " + std::to_string(frame_count()) +
                        " frames");
    }
    m.order.emplace_back(frames[j], j);
  }
  std::sort(m.order.begin(), m.order.end());
  m.unique.clear();
  m.first_position.clear();
  for (const auto& [frame, position] : m.order) {
    if (m.unique.empty() || m.unique.back() != frame) {
      m.unique.push_back(frame);
      m.first_position.push_back(position);
    }
  }
  auto& stats = const_cast<VideoReadStats&>(m.decoder->stats());
  SHOAL_RETURN_IF_ERROR(
      m.decoder->Decode(m.unique, [&](size_t u, const AVFrame* frame) {
        ++stats.frames_returned;
        return m.Convert(frame, m.unique[u], options,
                         out.data() + m.first_position[u] * frame_bytes);
      }));
  // Repeats copy the frame decoded once.
  size_t u = 0;
  for (const auto& [frame, position] : m.order) {
    while (m.unique[u] != frame) ++u;
    if (position != m.first_position[u]) {
      std::memcpy(out.data() + position * frame_bytes,
                  out.data() + m.first_position[u] * frame_bytes, frame_bytes);
      ++stats.frames_returned;
    }
  }
  return Status::OK();
}

Status VideoReader::ReadRange(uint64_t begin, uint64_t end, uint64_t step,
                              const VideoReadOptions& options,
                              MutableByteSpan out) {
  if (step == 0 || begin > end || end > frame_count()) {
    return OutOfRange(impl_->decoder->name() + ": frames " +
                      std::to_string(begin) + ":" + std::to_string(end) + ":" +
                      std::to_string(step) + " of a video with " +
                      std::to_string(frame_count()) + " frames");
  }
  std::vector<uint64_t> frames;
  for (uint64_t k = begin; k < end; k += step) frames.push_back(k);
  return ReadFrames(frames, options, out);
}

}  // namespace shoal
