#include "video/internal/frame_decoder.h"

#include <algorithm>

namespace shoal::internal {

Result<std::unique_ptr<FrameDecoder>> FrameDecoder::Open(
    Buffer bytes, const VideoProbe* probe, std::string name,
    std::shared_ptr<MemoryBudget> frame_budget, int threads) {
  std::unique_ptr<FrameDecoder> d(new FrameDecoder());
  d->probe_ = probe;
  d->name_ = name.empty() ? "video" : std::move(name);
  SHOAL_ASSIGN_OR_RETURN(d->input_,
                         MemoryInput::Open(std::move(bytes), d->name_));
  AVFormatContext* f = d->input_->format();
  d->stream_ = probe->info.stream;
  if (d->stream_ < 0 || static_cast<unsigned>(d->stream_) >= f->nb_streams ||
      f->streams[d->stream_]->codecpar->codec_type != AVMEDIA_TYPE_VIDEO) {
    return Corruption(d->name_ + ": stream " + std::to_string(d->stream_) +
                      " of the video info is not a video stream");
  }
  for (unsigned i = 0; i < f->nb_streams; ++i) {
    if (static_cast<int>(i) != d->stream_)
      f->streams[i]->discard = AVDISCARD_ALL;
  }
  SHOAL_ASSIGN_OR_RETURN(
      d->codec_,
      OpenDecoder(f, d->stream_, d->name_, std::move(frame_budget), threads));
  d->packet_.reset(av_packet_alloc());
  d->frame_.reset(av_frame_alloc());
  if (!d->packet_ || !d->frame_)
    return ResourceExhausted(d->name_ + ": no memory");
  return d;
}

FrameDecoder::~FrameDecoder() {
  if (!ever_failed_) ReleaseDecoder(std::move(codec_));
}

Status FrameDecoder::FrameError(uint64_t k, std::string_view what) const {
  std::string message = name_ + ": frame " + std::to_string(k) + " (pts " +
                        std::to_string(probe_->index.pts[k]) + ") " +
                        std::string(what);
  if (!packet_error_.empty()) message += "; " + packet_error_;
  return Corruption(std::move(message));
}

Status FrameDecoder::SeekTo(size_t point) {
  const int64_t ts = probe_->index.seek_points[point];
  ClearFfmpegLog();
  const int err =
      avformat_seek_file(input_->format(), stream_, INT64_MIN, ts, ts, 0);
  if (err < 0) {
    return AvError(err, name_ + ": seeking to pts " + std::to_string(ts));
  }
  avcodec_flush_buffers(codec_.get());
  ++stats_.seeks;
  point_ = point;
  sought_ = point;
  check_landing_ = true;
  last_pts_ = INT64_MIN;
  draining_ = false;
  ended_ = false;
  packet_error_.clear();
  pending_.clear();
  failed_ = false;
  key_pts_ = INT64_MIN;
  return Status::OK();
}

Result<bool> FrameDecoder::NextFrame() {
  AVCodecContext* c = codec_.get();
  for (;;) {
    int err = avcodec_receive_frame(c, frame_.get());
    if (err == 0) {
      ++stats_.frames_decoded;
      const int64_t pts = frame_->pts != AV_NOPTS_VALUE
                              ? frame_->pts
                              : frame_->best_effort_timestamp;
      last_pts_ = pts;
      damaged_ = false;
      // Frames come out in display order: a packet of an earlier frame
      // that is still pending never gave one (skipped, or dropped).
      size_t kept = 0;
      for (size_t i = 0; i < pending_.size(); ++i) {
        const Pending& p = pending_[i];
        if (p.pts == pts) {
          // Decoded after the lost packet, in its GOP (or leading frames of
          // the next, which may reference it).
          damaged_ = failed_ && p.seq > failed_seq_ &&
                     (p.key_seq == failed_key_seq_ || pts < p.key_pts);
        } else if (p.pts < pts && p.pts != AV_NOPTS_VALUE) {
          stats_.frames_skipped += p.skippable;
        } else {
          pending_[kept++] = p;
        }
      }
      pending_.resize(kept);
      const auto& points = probe_->index.seek_points;
      auto it = std::upper_bound(points.begin(), points.end(), pts);
      point_ = it == points.begin() ? 0 : (it - points.begin()) - 1;
      return true;
    }
    if (err == AVERROR_EOF) {
      ended_ = true;
      return false;
    }
    if (err != AVERROR(EAGAIN)) {
      return AvError(err, name_ + ": decoding");
    }
    if (draining_) {  // a decoder must not ask for input once drained
      ended_ = true;
      return false;
    }
    ClearFfmpegLog();
    err = av_read_frame(input_->format(), packet_.get());
    if (err == AVERROR_EOF) {
      // Drain: the frames the decoder still holds (B-frame delay) come out.
      draining_ = true;
      err = avcodec_send_packet(c, nullptr);
      if (err < 0 && err != AVERROR_EOF)
        return AvError(err, name_ + ": draining");
      continue;
    }
    if (err < 0) return AvError(err, name_ + ": reading packets");
    if (packet_->stream_index != stream_) {
      av_packet_unref(packet_.get());
      continue;
    }
    const int64_t pts = packet_->pts;
    if (check_landing_) {
      // A demuxer that seeks by decode timestamps (mov with B-frames) can
      // land on a later keyframe than asked for; then start one earlier.
      check_landing_ = false;
      if (pts != AV_NOPTS_VALUE && sought_ > 0 &&
          pts > probe_->index.seek_points[sought_]) {
        av_packet_unref(packet_.get());
        SHOAL_RETURN_IF_ERROR(SeekTo(sought_ - 1));
        continue;
      }
    }
    ++stats_.packets_read;
    ++seq_;
    if ((packet_->flags & AV_PKT_FLAG_KEY) != 0) {
      key_seq_ = seq_;
      key_pts_ = pts;
    }
    // Decode less: a frame before the wanted one that no frame references
    // (a non-reference B-frame) is not needed for it. The decoder judges
    // what is a reference (H.264 nal_ref_idc, HEVC NAL types), so what it
    // does decode is what a full decode gives. The pts decides per packet,
    // so the wanted frame and every later one decode in full.
    const bool skippable = pts != AV_NOPTS_VALUE && pts < target_pts_ &&
                           (packet_->flags & AV_PKT_FLAG_KEY) == 0;
    c->skip_frame = skippable ? AVDISCARD_NONREF : AVDISCARD_DEFAULT;
    // Frames that never come out (dropped, discarded) must not pile up.
    if (pending_.size() >= 256) pending_.erase(pending_.begin());
    pending_.push_back({pts, seq_, key_seq_, key_pts_, skippable});
    err = avcodec_send_packet(c, packet_.get());
    av_packet_unref(packet_.get());
    if (err < 0 && err != AVERROR(EAGAIN)) {
      // The decoder drops this packet; the frame it held is then missing
      // and the pts matching below names it. Keep the reason.
      packet_error_ = AvError(err, "the packet with pts " +
                                       std::to_string(pts) + " did not decode")
                          .message();
      failed_ = true;
      ever_failed_ = true;
      failed_seq_ = seq_;
      failed_key_seq_ = key_seq_;
    }
  }
}

Status FrameDecoder::Decode(std::span<const uint64_t> sorted,
                            const Visit& visit) {
  const FrameIndex& index = probe_->index;
  const auto& points = index.seek_points;
  for (size_t j = 0; j < sorted.size(); ++j) {
    const uint64_t k = sorted[j];
    if (k >= index.pts.size() || (j > 0 && k <= sorted[j - 1])) {
      return Internal(name_ + ": frame requests must increase and exist");
    }
    const int64_t target = index.pts[k];
    const size_t want = static_cast<size_t>(
        std::upper_bound(points.begin(), points.end(), target) -
        points.begin());
    const size_t point = want == 0 ? 0 : want - 1;
    // Seek only when the target is behind the decoder, or when frames lie
    // between the decoder and the keyframe the target needs (decoding
    // them would be wasted). A fresh decoder starts at the first keyframe.
    bool seek = ended_ || target <= last_pts_;
    if (!seek && point > point_) {
      const auto next =
          std::upper_bound(index.pts.begin(), index.pts.end(), last_pts_);
      seek = next != index.pts.end() && *next < points[point];
    }
    if (seek) SHOAL_RETURN_IF_ERROR(SeekTo(point));
    target_pts_ = target;
    for (;;) {
      SHOAL_ASSIGN_OR_RETURN(bool got, NextFrame());
      if (!got) {
        return FrameError(k, "is missing: the stream ended before it");
      }
      const int64_t pts = last_pts_;
      if (pts < target) continue;
      if (pts > target) {
        return FrameError(k, "did not decode (the decoder went on to pts " +
                                 std::to_string(pts) + ")");
      }
      if ((frame_->flags & AV_FRAME_FLAG_CORRUPT) != 0 ||
          frame_->decode_error_flags != 0) {
        return FrameError(k, "decoded with errors");
      }
      if (damaged_) {
        return FrameError(
            k,
            "may be damaged: it was decoded after a packet of its GOP "
            "that did not decode");
      }
      SHOAL_RETURN_IF_ERROR(visit(j, frame_.get()));
      break;
    }
  }
  return Status::OK();
}

}  // namespace shoal::internal
