// FrameDecoder: the seek-and-decode core of VideoReader, handing out
// decoded frames (native pixel format) by display-order index. Tests use it
// to compare native frames with ffmpeg's framemd5.
//
// Thread-safety: one thread at a time.
#ifndef SHOAL_VIDEO_INTERNAL_FRAME_DECODER_H_
#define SHOAL_VIDEO_INTERNAL_FRAME_DECODER_H_

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "video/internal/av.h"
#include "video/video.h"

namespace shoal::internal {

class FrameDecoder {
 public:
  /// `probe` must outlive the decoder. Decoded frames are charged to
  /// `frame_budget`, when given, while they exist (see OpenDecoder).
  /// `threads`: the decoder's (see OpenDecoder).
  static Result<std::unique_ptr<FrameDecoder>> Open(
      Buffer bytes, const VideoProbe* probe, std::string name,
      std::shared_ptr<MemoryBudget> frame_budget = nullptr, int threads = 1);

  /// Called with (position in `sorted`, the frame); its Status stops the
  /// decode when not OK.
  using Visit = std::function<Status(size_t, const AVFrame*)>;
  /// Decodes frames `sorted` (strictly increasing indices, each below the
  /// frame count) and visits each in order.
  Status Decode(std::span<const uint64_t> sorted, const Visit& visit);

  /// Gives the decoder back for this thread's next video (ReleaseDecoder)
  /// unless a packet was refused.
  ~FrameDecoder();

  const VideoReadStats& stats() const { return stats_; }
  /// The reader counts the frames it hands out here too.
  VideoReadStats& mutable_stats() { return stats_; }
  const std::string& name() const { return name_; }

 private:
  FrameDecoder() = default;
  // Seeks to seek point `point` (an index into seek_points).
  Status SeekTo(size_t point);
  // Gets the next decoded frame into frame_; false at the end of stream.
  Result<bool> NextFrame();
  Status FrameError(uint64_t k, std::string_view what) const;

  std::unique_ptr<MemoryInput> input_;
  const VideoProbe* probe_ = nullptr;
  std::string name_;
  int stream_ = 0;
  CodecContextPtr codec_;
  PacketPtr packet_;
  FramePtr frame_;
  VideoReadStats stats_;
  // Where the decoder is: the seek point of the GOP it decodes, the pts of
  // the last frame it gave (INT64_MIN: none since the last seek), whether
  // the demuxer ran out (the decoder is then drained), and the last packet
  // the decoder refused.
  size_t point_ = 0;
  // The seek point last sought, and whether its first packet is yet to be
  // checked.
  size_t sought_ = 0;
  bool check_landing_ = false;
  int64_t last_pts_ = INT64_MIN;
  // The pts of the frame being decoded to: packets of earlier frames go to
  // the decoder with skip_frame = AVDISCARD_NONREF (INT64_MIN: none).
  int64_t target_pts_ = INT64_MIN;
  bool draining_ = false;
  bool ended_ = false;
  std::string packet_error_;
  // Damage tracking: frames decoded after a packet the decoder refused may
  // reference what it lost. Packets read since the last seek, in decode
  // order, until their frame comes out: pts, decode sequence number, and
  // the sequence number and pts of their GOP's keyframe.
  struct Pending {
    int64_t pts;
    uint64_t seq;
    uint64_t key_seq;
    int64_t key_pts;
    bool skippable;  // sent while non-reference frames were skipped
  };
  std::vector<Pending> pending_;
  uint64_t seq_ = 0;
  uint64_t key_seq_ = 0;
  int64_t key_pts_ = INT64_MIN;
  bool failed_ = false;
  bool ever_failed_ = false;  // a packet was refused since Open
  uint64_t failed_seq_ = 0;
  uint64_t failed_key_seq_ = 0;
  bool damaged_ = false;  // the frame in frame_
};

}  // namespace shoal::internal

#endif  // SHOAL_VIDEO_INTERNAL_FRAME_DECODER_H_
