// The video clips of a batch: which frames a clip is, one forward decode
// for all the clips of a video in an epoch (ClipShare), and its GOPs
// decoded in parallel when the loader's other threads have no video to
// decode.
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <cstring>

#include "base/tsan.h"
#include "loader/internal/loader_impl.h"

namespace shoal {
namespace {

// The frames of clip `c` of a video of `count` frames: `frames` frames
// `step` apart from a start that is random (from `seed`) or spread evenly
// over the video for the clips of an epoch. A video shorter than a clip
// repeats its last frame.
void ClipFrames(const VideoClipOptions& o, uint64_t count, uint32_t c,
                uint64_t seed, std::vector<uint64_t>& out) {
  const uint64_t span = static_cast<uint64_t>(o.frames - 1) * o.step + 1;
  const uint64_t room = count > span ? count - span : 0;  // last start
  uint64_t start = 0;
  if (o.sampling == VideoClipOptions::Sampling::kRandom) {
    // Lemire's multiply-shift: uniform enough for 2^64 >> room.
    start = static_cast<uint64_t>(
        (static_cast<unsigned __int128>(seed) * (room + 1)) >> 64);
  } else if (o.clips_per_video == 1) {
    start = room / 2;
  } else {
    start = room * c / (o.clips_per_video - 1);
  }
  out.clear();
  for (uint32_t i = 0; i < o.frames; ++i) {
    out.push_back(
        std::min(start + static_cast<uint64_t>(i) * o.step, count - 1));
  }
}

}  // namespace

// Hands the batch the shares of its videos (see ClipShare): a video's
// first clip in the epoch opens one, its last closes it.
void Loader::Impl::ShareClips(LoaderBatchWork& item) {
  item.shares.resize(tensors.size());
  item.deferred.clear();
  feed.shares.resize(tensors.size());
  for (size_t t = 0; t < tensors.size(); ++t) {
    auto& shares = item.shares[t];
    shares.clear();
    if (!tensors[t].clip || clips_per_video == 1) continue;
    shares.resize(item.indices.size());
    for (size_t k = 0; k < item.indices.size(); ++k) {
      Feed::OpenShare& open = feed.shares[t][item.indices[k]];
      if (!open.share) open.share = std::make_shared<ClipShare>();
      shares[k] = open.share;
      if (++open.seen == clips_per_video) feed.shares[t].erase(item.indices[k]);
    }
  }
}

// Sample k's clip of tensor t. With a share (clips_per_video > 1) the
// first batch to get here decodes every clip of the video in one pass;
// the others copy theirs, or decode alone when the budget had no room for
// the share or its decode failed (then each gets its own clip's error).
Status Loader::Impl::DecodeClip(LoaderBatchWork& item, size_t k, size_t t,
                                Buffer file, std::string name,
                                MutableByteSpan dest, bool wait) {
  const LoadedTensor& lt = tensors[t];
  const VideoClipOptions& o = *lt.clip;
  const uint64_t sample = item.indices[k];
  const uint32_t clip = item.clips[k];
  const auto& probe = lt.probes[sample];
  const uint64_t count = probe->index.pts.size();
  ClipShare* const share =
      item.shares[t].empty() ? nullptr : item.shares[t][k].get();
  bool produce = false;
  while (share != nullptr) {
    uint32_t state = share->state.load(std::memory_order_acquire);
    if (state == ClipShare::kIdle) {
      if (!share->state.compare_exchange_strong(state, ClipShare::kDecoding,
                                                std::memory_order_acquire)) {
        continue;
      }
      produce = true;
      break;
    }
    if (state == ClipShare::kDecoding) {
      if (!wait) {
        item.deferred.emplace_back(k, t);
        return Status::OK();
      }
      share->state.wait(ClipShare::kDecoding, std::memory_order_acquire);
      continue;
    }
    if (state == ClipShare::kReady && clip != share->producer_clip &&
        share->clip_bytes == dest.size()) {
      std::memcpy(dest.data(), share->clips.data() + share->Offset(clip),
                  dest.size());
      clips_shared.fetch_add(1, std::memory_order_relaxed);
      frames_returned.fetch_add(o.frames, std::memory_order_relaxed);
      return Status::OK();
    }
    break;  // kAbsent: decode alone
  }
  // The clip's frames, then (producing) those of the video's other clips.
  thread_local std::vector<uint64_t> frames, more;
  auto clip_seed = [&](uint32_t c) {
    return SampleSeed(options.seed, item.epoch, c * n + sample);
  };
  ClipFrames(o, count, clip, clip_seed(clip), frames);
  const size_t own = frames.size();
  const uint64_t others = uint64_t{clips_per_video} - 1;
  if (produce) {
    // Room in the budget for the other clips, taken at once (two decoders
    // that both saw room went past the budget together); without it the
    // share goes back to idle for a later batch. The room taken becomes
    // the buffer's charge. A share also leaves room for one more batch:
    // shares that filled the budget held the next batches back until the
    // pipeline was empty, and then one went through past the budget
    // (native 640x360, K = 4, 256 MiB: 295 MiB accounted, 319 MiB RSS).
    const uint64_t want = others * dest.size();
    const uint64_t next_batch = item.tensors[t].bytes_;
    Result<MutableBuffer> buffer = ResourceExhausted("no room");
    if (budget->HasRoom(want + next_batch) && budget->TryAdmit(want, false)) {
      buffer = MutableBuffer::AllocateAdmitted(want, budget);
      if (!buffer.ok()) budget->Charge(-static_cast<int64_t>(want));
    }
    if (buffer.ok()) {
      share->clips = std::move(*buffer);
      share->clip_bytes = dest.size();
      share->producer_clip = clip;
      for (uint32_t c = 0; c < clips_per_video; ++c) {
        if (c == clip) continue;
        ClipFrames(o, count, c, clip_seed(c), more);
        frames.insert(frames.end(), more.begin(), more.end());
      }
    } else {
      produce = false;
      share->state.store(ClipShare::kIdle, std::memory_order_release);
      share->state.notify_all();
    }
  }
  const VideoReadOptions read_options{.height = o.height, .width = o.width};
  Status read = DecodeFrames(produce ? file : std::move(file), probe, name,
                             read_options, frames, own, dest,
                             produce ? share->clips.span() : MutableByteSpan());
  if (produce) {
    share->state.store(read.ok() ? ClipShare::kReady : ClipShare::kAbsent,
                       std::memory_order_release);
    share->state.notify_all();
    if (!read.ok()) {
      // An error in any clip: this one alone tells whether it is its own.
      share->clips = MutableBuffer();
      frames.resize(own);
      read = DecodeFrames(std::move(file), probe, name, read_options, frames,
                          own, dest, MutableByteSpan());
    }
  }
  if (read.ok()) frames_returned.fetch_add(own, std::memory_order_relaxed);
  return read;
}

// Decodes `frames` (clip after clip, `per_clip` frames each) into `first`
// (the first clip) and `rest` (the others, in order). Frames that decode
// from different keyframes are independent, so when fewer clips are being
// decoded than the loader has threads the GOPs are split into parts, each
// decoded by its own reader in the pipeline's task arena (idle threads
// take parts; busy ones leave them to the caller). The frames are the same
// either way; a part's error is the earliest part's, as a single decode
// would meet it first.
Status Loader::Impl::DecodeFrames(
    Buffer file, const std::shared_ptr<const VideoProbe>& probe,
    const std::string& name, const VideoReadOptions& read_options,
    std::span<const uint64_t> frames, size_t per_clip, MutableByteSpan first,
    MutableByteSpan rest) {
  struct Active {
    std::atomic<int>& count;
    int now;
    explicit Active(std::atomic<int>& c) : count(c), now(c.fetch_add(1) + 1) {}
    ~Active() { count.fetch_sub(1); }
  } active(active_decodes);
  const int spare = ResolveThreads(options.threads) - active.now + 1;
  const FrameIndex& index = probe->index;
  // Part boundaries: frame indices where the seek point changes, among the
  // wanted frames (sorted), split into at most `spare` runs of about equal
  // numbers of GOPs.
  thread_local std::vector<uint64_t> sorted, starts, cuts;
  cuts.clear();
  if (spare > 1 && frames.size() > 1) {
    sorted.assign(frames.begin(), frames.end());
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    starts.clear();  // the first wanted frame of each GOP
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (i == 0 ||
          index.SeekPointFor(sorted[i]) != index.SeekPointFor(sorted[i - 1])) {
        starts.push_back(sorted[i]);
      }
    }
    const size_t gops = starts.size();
    const size_t parts = std::min<size_t>(gops, static_cast<size_t>(spare));
    for (size_t p = 1; p < parts; ++p) cuts.push_back(starts[gops * p / parts]);
  }
  const uint64_t frame_bytes = first.size() / std::max<size_t>(per_clip, 1);
  auto decode = [&](uint64_t lo, uint64_t hi, std::vector<uint64_t>& mine,
                    std::vector<MutableByteSpan>& spans) -> Status {
    // Each clip's frames in [lo, hi): a run of it (its frames never go
    // back), written to the matching run of its output.
    mine.clear();
    spans.clear();
    for (size_t c = 0; c * per_clip < frames.size(); ++c) {
      const auto clip = frames.subspan(c * per_clip, per_clip);
      const size_t b = static_cast<size_t>(
          std::lower_bound(clip.begin(), clip.end(), lo) - clip.begin());
      const size_t e = static_cast<size_t>(
          std::lower_bound(clip.begin(), clip.end(), hi) - clip.begin());
      if (b == e) continue;
      mine.insert(mine.end(), clip.begin() + b, clip.begin() + e);
      std::byte* at = c == 0 ? first.data()
                             : rest.data() + (c - 1) * per_clip * frame_bytes;
      spans.emplace_back(at + b * frame_bytes, (e - b) * frame_bytes);
    }
    if (mine.empty()) return Status::OK();
    // The decoder's frames are charged to the budget while they exist.
    // Errors of the reader carry the name already.
    auto reader = VideoReader::Open(file, probe, name, budget);
    if (!reader.ok()) return reader.status();
    const Status s = (*reader)->ReadFramesInParts(mine, read_options, spans);
    const VideoReadStats& st = (*reader)->stats();
    frames_decoded.fetch_add(st.frames_decoded, std::memory_order_relaxed);
    frames_skipped.fetch_add(st.frames_skipped, std::memory_order_relaxed);
    return s;
  };
  if (cuts.empty()) {
    thread_local std::vector<uint64_t> mine;
    thread_local std::vector<MutableByteSpan> spans;
    return decode(0, UINT64_MAX, mine, spans);
  }
  const size_t parts = cuts.size() + 1;
  std::vector<Status> status(parts);
  const std::vector<uint64_t> bounds = [&] {
    std::vector<uint64_t> b{0};
    b.insert(b.end(), cuts.begin(), cuts.end());
    b.push_back(UINT64_MAX);
    return b;
  }();
  split_decodes.fetch_add(1, std::memory_order_relaxed);
  // Isolated: while it waits for the parts, this thread must take no other
  // task of the arena (another batch's decode would reuse this thread's
  // scratch, `frames` among it, under the parts still reading it). TSan
  // cannot see through TBB's scheduler (base/tsan.h) that the writes above
  // come before the parts and theirs before the caller goes on. The token
  // is static: a part that read its address from the closure would race
  // before it could acquire.
  [[maybe_unused]] static int token = 0;
  const auto body = [&](size_t p) {
    SHOAL_TSAN_ACQUIRE(&token);
    std::vector<uint64_t> mine;
    std::vector<MutableByteSpan> spans;
    status[p] = decode(bounds[p], bounds[p + 1], mine, spans);
    SHOAL_TSAN_RELEASE(&token);
  };
  const auto run = [&] { oneapi::tbb::parallel_for(size_t{0}, parts, body); };
  SHOAL_TSAN_RELEASE(&token);
  oneapi::tbb::this_task_arena::isolate(run);
  SHOAL_TSAN_ACQUIRE(&token);
  for (Status& s : status) {
    if (!s.ok()) return s;
  }
  return Status::OK();
}

}  // namespace shoal
