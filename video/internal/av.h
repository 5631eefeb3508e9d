// FFmpeg plumbing shared by the video component: owners for every AV*
// handle, AVERROR -> Status, an AVIOContext reading a Buffer in memory, and
// the capture of FFmpeg's log lines (the decoder says *why* a packet is
// bad only through av_log).
//
// Thread-safety: the types are used by one thread at a time; OpenDecoder,
// ReleaseDecoder and DropKeptDecoders are thread-safe. The log
// capture is per thread (FFmpeg logs on the thread that calls it, and
// shoal's decoders are single-threaded).
#ifndef SHOAL_VIDEO_INTERNAL_AV_H_
#define SHOAL_VIDEO_INTERNAL_AV_H_

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "base/buffer.h"
#include "base/memory.h"
#include "base/result.h"

namespace shoal::internal {

struct AVFrameFree {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct AVPacketFree {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct AVCodecContextFree {
  // Also frees what OpenDecoder keeps in the context's opaque.
  void operator()(AVCodecContext* c) const;
};
struct SwsContextFree {
  void operator()(SwsContext* c) const { sws_freeContext(c); }
};
using FramePtr = std::unique_ptr<AVFrame, AVFrameFree>;
using PacketPtr = std::unique_ptr<AVPacket, AVPacketFree>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, AVCodecContextFree>;
using SwsContextPtr = std::unique_ptr<SwsContext, SwsContextFree>;

/// "<what>: <FFmpeg's text for err>[ (<last FFmpeg log line>)]" as a Status
/// whose code follows the error (INVALIDDATA -> Corruption, ENOMEM ->
/// ResourceExhausted, ...).
Status AvError(int err, std::string_view what);

/// An FFmpeg enum field's value as stored. Demuxers copy some of them
/// (colour space, range, primaries, ...) from the file unchecked, so the
/// field may hold a value its enum does not have, and reading it as the
/// enum is undefined behaviour (the video fuzz target found colour space
/// 116): read its bytes as an int instead, and range-check before use.
template <typename Enum>
int RawEnum(const Enum& field) {
  static_assert(std::is_enum_v<Enum> && sizeof(Enum) == sizeof(int));
  int value;
  std::memcpy(&value, &field, sizeof value);
  return value;
}

/// The largest block FFmpeg may allocate at once in a process using shoal's
/// video (av_max_alloc; FFmpeg's own default is INT_MAX).
inline constexpr size_t kMaxFfmpegBlock = size_t{256} << 20;

/// Sets up FFmpeg once per process: caps its single allocations at
/// kMaxFfmpegBlock, and installs the log callback that keeps each thread's
/// last FFmpeg warning or error instead of printing it (SHOAL_FFMPEG_LOG=1
/// in the environment prints FFmpeg's log as usual).
void InitFfmpeg();
/// The calling thread's last FFmpeg warning/error line ("" when none), and
/// clearing it.
const std::string& LastFfmpegLog();
void ClearFfmpegLog();

/// An opened container reading `bytes` from memory through a custom
/// AVIOContext (reads return AVERROR_EOF at the end; seeks are bounds
/// checked; AVSEEK_SIZE answers the size). Owns the format context, the IO
/// context and its buffer, and keeps `bytes` alive.
class MemoryInput {
 public:
  /// Opens the container (avformat_open_input; no stream-info scan).
  static Result<std::unique_ptr<MemoryInput>> Open(Buffer bytes,
                                                   std::string_view name);
  ~MemoryInput();
  MemoryInput(const MemoryInput&) = delete;
  MemoryInput& operator=(const MemoryInput&) = delete;

  AVFormatContext* format() const { return format_; }

 private:
  MemoryInput() = default;
  static int Read(void* opaque, uint8_t* buf, int size);
  static int64_t Seek(void* opaque, int64_t offset, int whence);

  Buffer bytes_;
  size_t position_ = 0;
  AVIOContext* io_ = nullptr;
  AVFormatContext* format_ = nullptr;
};

/// A decoder for stream `stream` of `format` on `threads` threads (slice
/// threads: they help only streams with several slices per frame). With a
/// `frame_budget`, the decoder's frame pool is charged to it: the most bytes
/// its frames held at once (the pool keeps that much), until the decoder and
/// its last frame are gone (`frame_budget` is kept alive by them).
///
/// The decoder may be one given back (ReleaseDecoder) for a
/// stream with the same codec parameters (extradata and time base
/// included), flushed: opening a decoder costs a fifth of a short clip's
/// decode at 320x240 (its tables and frame pool are allocated and zeroed
/// anew, page by page). A flushed decoder starts again from the next
/// keyframe as a new one would; parameter sets come from the same
/// extradata or, in-band, with the new stream's keyframes.
Result<CodecContextPtr> OpenDecoder(
    const AVFormatContext* format, int stream, std::string_view name,
    std::shared_ptr<MemoryBudget> frame_budget = nullptr, int threads = 1);

/// Gives a decoder from OpenDecoder back for the next OpenDecoder (on any
/// thread) of the same kind of stream. The process keeps the last 4 given
/// back, and only if their frames are small (up to 1280x720): a kept
/// decoder keeps its frame pool, still charged to its budget. Give back
/// only decoders that decoded without error.
void ReleaseDecoder(CodecContextPtr decoder);

/// Frees the kept decoders whose frames are charged to `budget` (every kept
/// decoder when null): its owner is done, and no other open would match
/// them (the budget is part of the key).
void DropKeptDecoders(const MemoryBudget* budget);

}  // namespace shoal::internal

#endif  // SHOAL_VIDEO_INTERNAL_AV_H_
