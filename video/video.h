// Video samples: what a stored video holds (ProbeVideo), the frame index
// built at ingestion, and frame-exact partial decoding (VideoReader).
//
// Videos are stored as they came (mp4, mov, mkv, webm); nothing is
// re-encoded. At ingestion ProbeVideo demuxes the packets of the video
// stream — without decoding — and records every frame's pts in display
// order plus where decoding can start (the keyframes). The probe is kept in
// the sample's info, so reading frames never rescans the file.
//
//   SHOAL_ASSIGN_OR_RETURN(VideoProbe probe, ProbeVideo(bytes));
//   SHOAL_ASSIGN_OR_RETURN(auto reader, VideoReader::Open(bytes, probe));
//   std::vector<std::byte> rgb(16 * reader->FrameBytes(options));
//   SHOAL_RETURN_IF_ERROR(reader->ReadRange(32, 48, 1, options, rgb));
//
// A VideoReader decodes frames by seeking to the keyframe at or before the
// first wanted frame and decoding forward, matching frames by pts (never by
// counting), so it returns exactly the frames asked for. Requests are sorted
// and deduplicated; a seek happens only when the next wanted frame is behind
// the decoder or beyond the next keyframe. Frames come out as RGB24
// (honouring the stream's colour matrix and range), optionally resized,
// written straight into the caller's buffer. Frames are returned as coded:
// a display rotation is reported in VideoInfo::rotation, not applied.
//
// Errors: every FFmpeg error becomes a Status carrying FFmpeg's message and
// the reader's name (dataset, tensor, sample); a frame the decoder cannot
// produce or marks corrupt is Corruption naming the frame, and the frames
// before it still decode.
//
// Thread-safety: ProbeVideo, ReleaseIdleDecoders and the JSON functions
// are reentrant. A VideoReader holds one decoder (single-threaded unless
// opened with more) and is used by one thread at a time; decode many videos
// at once with one reader each.
#ifndef SHOAL_VIDEO_VIDEO_H_
#define SHOAL_VIDEO_VIDEO_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/buffer.h"
#include "base/memory.h"
#include "base/result.h"

namespace shoal {

struct Rational {
  int64_t num = 0;
  int64_t den = 1;
  double value() const {
    return den == 0 ? 0.0 : static_cast<double>(num) / den;
  }
  friend bool operator==(const Rational&, const Rational&) = default;
};

/// What the container says about the video stream that is read.
struct VideoInfo {
  std::string container;  // "mp4", "mov", "matroska", "webm", ...
  std::string codec;      // FFmpeg's codec name: "h264", "vp9", ...
  int stream = 0;         // index of the video stream in the container
  uint32_t width = 0;     // coded frame size
  uint32_t height = 0;
  /// Display rotation in degrees, as ffprobe prints it (-90 = the frames
  /// are shown turned 90 degrees clockwise); 0 when none.
  int rotation = 0;
  Rational frame_rate;  // average frames per second
  Rational time_base;   // the unit of pts
  double duration_seconds = 0;
  uint64_t frame_count = 0;  // frames in the index
  std::string pixel_format;  // "yuv420p", ...; "" when not known
  std::string color_range;   // "tv", "pc" or ""
  std::string color_space;   // "bt709", "bt470bg", ... or ""

  friend bool operator==(const VideoInfo&, const VideoInfo&) = default;
};

/// The frames of the video stream in display order, and its seek points.
struct FrameIndex {
  /// pts of frame k, strictly increasing.
  std::vector<int64_t> pts;
  /// Frames that are keyframes (indices into pts, increasing).
  std::vector<uint64_t> keyframes;
  /// pts of every keyframe packet, increasing: the keyframes' own, plus
  /// keyframes the container marks to be discarded (an edit list starting
  /// inside a GOP), from which decoding the first frames must start.
  std::vector<int64_t> seek_points;

  /// pts of the last seek point at or before frame k (the first seek point
  /// when none is).
  int64_t SeekPointFor(uint64_t k) const;
  /// Largest run of frames from one keyframe to the next (the GOP length).
  uint64_t MaxKeyframeInterval() const;

  friend bool operator==(const FrameIndex&, const FrameIndex&) = default;
};

struct VideoProbe {
  VideoInfo info;
  FrameIndex index;
  friend bool operator==(const VideoProbe&, const VideoProbe&) = default;
};

/// Limits on what a probe accepts (hostile files claim huge sizes).
struct VideoLimits {
  uint32_t max_width = 16384;
  uint32_t max_height = 16384;
  uint64_t max_frames = 10'000'000;
};

/// Demuxes `bytes` (no decoding) and returns the info and frame index of its
/// video stream (FFmpeg's best one). InvalidArgument when there is no video
/// stream or the codec has no decoder; Corruption when the container cannot
/// be read; `name` prefixes errors.
Result<VideoProbe> ProbeVideo(const Buffer& bytes, std::string_view name = {},
                              const VideoLimits& limits = {});

/// The probe as a JSON object (what `shoal ingest videos` stores under
/// "video" in a sample's info); pts are stored as runs, so a constant frame
/// rate costs a few bytes however long the video.
std::string VideoProbeToJson(const VideoProbe& probe);
/// Parses VideoProbeToJson's object; Corruption on anything malformed or
/// inconsistent (pts not increasing, keyframes out of range, ...).
Result<VideoProbe> VideoProbeFromJson(std::string_view json);

struct VideoReadOptions {
  /// Output frame size; 0 keeps the coded size (both or neither).
  uint32_t height = 0;
  uint32_t width = 0;
};

/// What a reader did: decoded frames over returned frames tells how much
/// work partial decoding saved or wasted.
struct VideoReadStats {
  uint64_t seeks = 0;
  uint64_t packets_read = 0;
  /// Frames the decoder output (every one is decoded in full).
  uint64_t frames_decoded = 0;
  /// Frames before a wanted one that no other frame references
  /// (non-reference B-frames): their packets went to the decoder with
  /// skip_frame = AVDISCARD_NONREF, so they were parsed but not decoded.
  uint64_t frames_skipped = 0;
  uint64_t frames_returned = 0;
};

class VideoReader {
 public:
  /// A reader over `bytes` (kept, not copied, while the reader lives) with
  /// the probe made at ingestion. `name` (e.g. "dataset d, tensor videos,
  /// sample 7") prefixes errors.
  static Result<std::unique_ptr<VideoReader>> Open(Buffer bytes,
                                                   VideoProbe probe,
                                                   std::string name = {});
  /// The same with a probe shared among readers (a loader opens a reader
  /// per clip; the index is not copied). With a `frame_budget`, the frame
  /// pool libavcodec decodes into (reference frames included) is charged to
  /// it, at the most its frames held at once, while the decoder exists; a
  /// reader gives its decoder back for the next reader of the same kind of
  /// video, still charged, until ReleaseIdleDecoders(frame_budget).
  /// `threads` > 1 decodes the slices of a frame on that many threads
  /// (only streams cut into several slices per frame gain); the frames are
  /// the same. Frame threads are never used: they can hide damage.
  static Result<std::unique_ptr<VideoReader>> Open(
      Buffer bytes, std::shared_ptr<const VideoProbe> probe,
      std::string name = {},
      std::shared_ptr<MemoryBudget> frame_budget = nullptr, int threads = 1);
  ~VideoReader();
  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;

  const VideoProbe& probe() const;
  uint64_t frame_count() const { return probe().index.pts.size(); }
  /// Bytes of one output frame: height * width * 3.
  uint64_t FrameBytes(const VideoReadOptions& options) const;

  /// Writes frames `frames` (display-order indices, any order, repeats
  /// allowed) as RGB24 into `out`, frame j at j * FrameBytes(options).
  /// `out` must hold exactly frames.size() frames. OutOfRange for an index
  /// past the end; Corruption for a frame that cannot be decoded.
  Status ReadFrames(std::span<const uint64_t> frames,
                    const VideoReadOptions& options, MutableByteSpan out);
  /// ReadFrames with the output in several parts: the frames fill `parts`
  /// in order, each part holding a whole number of frames, and together
  /// exactly frames.size(). One forward decode serves them all (the loader
  /// decodes the clips of one video into one batch and a share for others).
  Status ReadFramesInParts(std::span<const uint64_t> frames,
                           const VideoReadOptions& options,
                           std::span<const MutableByteSpan> parts);
  /// Frames begin, begin + step, ... below end.
  Status ReadRange(uint64_t begin, uint64_t end, uint64_t step,
                   const VideoReadOptions& options, MutableByteSpan out);

  const VideoReadStats& stats() const;

 private:
  class Impl;
  explicit VideoReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Frees the decoders that closed readers left for reuse whose frames are
/// charged to `frame_budget` (all of them when null), and their charges:
/// for the owner of a budget that is done decoding (a loader, when
/// destroyed). Thread-safe.
void ReleaseIdleDecoders(const MemoryBudget* frame_budget);

}  // namespace shoal

#endif  // SHOAL_VIDEO_VIDEO_H_
