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
  std::vector<uint64_t> range;         // ReadRange's frames
  struct Slot {
    std::byte* at;         // where output frame j goes
    const std::byte* end;  // the end of its part
  };
  std::vector<Slot> slots;

  // Converts `frame` into out[0, frame bytes); `out_end` is the end of the
  // caller's whole buffer.
  Status Convert(const AVFrame* frame, uint64_t k,
                 const VideoReadOptions& options, std::byte* out,
                 const std::byte* out_end);
};

// swscale's fast YUV->RGB path converts whole groups of pixels and, for
// widths that are not a multiple of the group, writes up to 24 bytes past
// the end of a row: harmless inside a frame, where the next row overwrites
// it, but not past a frame's last row. Convert() avoids that path for such
// widths; as a second line of defence against other builds of swscale, a
// frame is converted in place with the bytes after it saved and put back,
// and the last frame of the caller's buffer through a padded scratch.
constexpr size_t kOverrun = 256;

Status VideoReader::Impl::Convert(const AVFrame* frame, uint64_t k,
                                  const VideoReadOptions& options,
                                  std::byte* out, const std::byte* out_end) {
  const VideoInfo& info = probe->info;
  if (frame->width != static_cast<int>(info.width) ||
      frame->height != static_cast<int>(info.height)) {
    return Unimplemented(
        decoder->name() + ": frame " + std::to_string(k) + " is " +
        std::to_string(frame->width) + "x" + std::to_string(frame->height) +
        ", the video's frames are " + std::to_string(info.width) + "x" +
        std::to_string(info.height) + " (size changes are not supported)");
  }
  bool full_range = internal::RawEnum(frame->color_range) == AVCOL_RANGE_JPEG;
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
           internal::RawEnum(frame->colorspace),
           full_range};
  if (!sws || !(want == key)) {
    // At the coded size swscale has a fast YUV->RGB path, but it works on
    // groups of 16 pixels: with other widths it writes past the end of a
    // row or leaves the last pixels of every row unwritten (measured on
    // FFmpeg 5.1 for every even width up to 1024). So the fast path only
    // for widths that are a multiple of 16; SWS_ACCURATE_RND forces the
    // exact generic path (about 6x slower) for the others. Resizing always
    // takes the generic scaler.
    const bool same_size = want.dst_w == want.src_w && want.dst_h == want.src_h;
    const int flags = same_size && want.src_w % 16 != 0
                          ? SWS_BILINEAR | SWS_ACCURATE_RND
                          : SWS_BILINEAR;
    sws.reset(sws_getContext(want.src_w, want.src_h, src, want.dst_w,
                             want.dst_h, AV_PIX_FMT_RGB24, flags, nullptr,
                             nullptr, nullptr));
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
  const size_t frame_bytes = static_cast<size_t>(want.dst_w) * want.dst_h * 3;
  const bool in_place =
      static_cast<size_t>(out_end - out) >= frame_bytes + kOverrun;
  thread_local std::vector<std::byte> scratch;
  std::byte saved[kOverrun];
  std::byte* target = out;
  if (in_place) {
    std::memcpy(saved, out + frame_bytes, kOverrun);
  } else {
    scratch.resize(frame_bytes + kOverrun);
    target = scratch.data();
  }
  uint8_t* dst[4] = {reinterpret_cast<uint8_t*>(target), nullptr, nullptr,
                     nullptr};
  int dst_stride[4] = {want.dst_w * 3, 0, 0, 0};
  const int rows = sws_scale(sws.get(), frame->data, frame->linesize, 0,
                             frame->height, dst, dst_stride);
  if (in_place) {
    std::memcpy(out + frame_bytes, saved, kOverrun);
  } else {
    std::memcpy(out, scratch.data(), frame_bytes);
  }
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
    Buffer bytes, std::shared_ptr<const VideoProbe> probe, std::string name,
    std::shared_ptr<MemoryBudget> frame_budget, int threads) {
  if (!probe) return InvalidArgument(name + ": no video probe");
  auto impl = std::make_unique<Impl>();
  impl->probe = std::move(probe);
  SHOAL_ASSIGN_OR_RETURN(
      impl->decoder,
      FrameDecoder::Open(std::move(bytes), impl->probe.get(), std::move(name),
                         std::move(frame_budget), threads));
  return std::unique_ptr<VideoReader>(new VideoReader(std::move(impl)));
}

const VideoProbe& VideoReader::probe() const { return *impl_->probe; }
const VideoReadStats& VideoReader::stats() const {
  return impl_->decoder->stats();
}

void ReleaseIdleDecoders(const MemoryBudget* frame_budget) {
  internal::DropKeptDecoders(frame_budget);
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
  return ReadFramesInParts(frames, options,
                           std::span<const MutableByteSpan>(&out, 1));
}

Status VideoReader::ReadFramesInParts(std::span<const uint64_t> frames,
                                      const VideoReadOptions& options,
                                      std::span<const MutableByteSpan> parts) {
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
  if (frame_bytes == 0) {
    return InvalidArgument(name + ": the video's frames have no pixels");
  }
  // Where each frame goes: its part and that part's end (Convert guards the
  // bytes past a frame up to the end of its part).
  m.slots.clear();
  for (const MutableByteSpan& part : parts) {
    if (part.size() % frame_bytes != 0) {
      return InvalidArgument(
          name + ": an output part of " + std::to_string(part.size()) +
          " bytes is not whole frames of " + std::to_string(frame_bytes));
    }
    for (uint64_t at = 0; at < part.size(); at += frame_bytes) {
      m.slots.push_back({part.data() + at, part.data() + part.size()});
    }
  }
  if (m.slots.size() != frames.size()) {
    return InvalidArgument(name + ": output of " +
                           std::to_string(m.slots.size() * frame_bytes) +
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
  VideoReadStats& stats = m.decoder->mutable_stats();
  SHOAL_RETURN_IF_ERROR(
      m.decoder->Decode(m.unique, [&](size_t u, const AVFrame* frame) {
        ++stats.frames_returned;
        const Impl::Slot& slot = m.slots[m.first_position[u]];
        return m.Convert(frame, m.unique[u], options, slot.at, slot.end);
      }));
  // Repeats copy the frame decoded once.
  size_t u = 0;
  for (const auto& [frame, position] : m.order) {
    while (m.unique[u] != frame) ++u;
    if (position != m.first_position[u]) {
      std::memcpy(m.slots[position].at, m.slots[m.first_position[u]].at,
                  frame_bytes);
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
  // A member, reused: a loader calls this for every clip.
  std::vector<uint64_t>& frames = impl_->range;
  frames.clear();
  for (uint64_t k = begin; k < end; k += step) frames.push_back(k);
  return ReadFrames(frames, options, out);
}

}  // namespace shoal
