#include "video/internal/av.h"

#include <new>

extern "C" {
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
}

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace shoal::internal {
namespace {

thread_local std::string last_log;

void OnLog(void* avcl, int level, const char* fmt, va_list args) {
  if (level > AV_LOG_WARNING) return;
  char line[512];
  std::vsnprintf(line, sizeof(line), fmt, args);
  std::string_view text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  if (text.empty()) return;
  last_log.assign(text);
}

}  // namespace

void InitFfmpeg() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Some demuxers size tables from a file's claims before reading them (a
    // 1 KiB MOV found by the fuzz target asked for 898 MB). No frame or
    // index shoal reads needs a block this large (an 8K frame, 16-bit 4:4:4,
    // is 199 MB), so a claim beyond it fails as ENOMEM, named by AvError.
    av_max_alloc(kMaxFfmpegBlock);
    const char* env = std::getenv("SHOAL_FFMPEG_LOG");
    if (env != nullptr && env[0] == '1') return;
    av_log_set_callback(OnLog);
  });
}

const std::string& LastFfmpegLog() { return last_log; }
void ClearFfmpegLog() { last_log.clear(); }

Status AvError(int err, std::string_view what) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, text, sizeof(text));
  std::string message = std::string(what) + ": " + text;
  if (!last_log.empty()) message += " (FFmpeg: " + last_log + ")";
  switch (err) {
    case AVERROR_INVALIDDATA:
    case AVERROR_EOF:
    case AVERROR_BUG:
      return Corruption(std::move(message));
    case AVERROR(ENOMEM):
      return ResourceExhausted(std::move(message) +
                               " (FFmpeg's blocks are capped at " +
                               std::to_string(kMaxFfmpegBlock >> 20) +
                               " MiB: a size in the file may be false)");
    case AVERROR_DECODER_NOT_FOUND:
    case AVERROR_DEMUXER_NOT_FOUND:
    case AVERROR_PATCHWELCOME:
      return Unimplemented(std::move(message));
    default:
      // The input is bytes in memory: whatever else FFmpeg reports (EIO on
      // a cut file, EINVAL on a bad header value) is about the data.
      return Corruption(std::move(message));
  }
}

// ------------------------------------------------------------ MemoryInput --

int MemoryInput::Read(void* opaque, uint8_t* buf, int size) {
  auto* self = static_cast<MemoryInput*>(opaque);
  if (size <= 0) return 0;
  const size_t left = self->bytes_.size() - self->position_;
  if (left == 0) return AVERROR_EOF;
  const size_t n = std::min(left, static_cast<size_t>(size));
  std::memcpy(buf, self->bytes_.data() + self->position_, n);
  self->position_ += n;
  return static_cast<int>(n);
}

int64_t MemoryInput::Seek(void* opaque, int64_t offset, int whence) {
  auto* self = static_cast<MemoryInput*>(opaque);
  const auto size = static_cast<int64_t>(self->bytes_.size());
  int64_t target;
  switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
      return size;
    case SEEK_SET:
      target = offset;
      break;
    case SEEK_CUR:
      target = static_cast<int64_t>(self->position_) + offset;
      break;
    case SEEK_END:
      target = size + offset;
      break;
    default:
      return AVERROR(EINVAL);
  }
  if (target < 0 || target > size) return AVERROR(EINVAL);
  self->position_ = static_cast<size_t>(target);
  return target;
}

Result<std::unique_ptr<MemoryInput>> MemoryInput::Open(Buffer bytes,
                                                       std::string_view name) {
  InitFfmpeg();
  ClearFfmpegLog();
  std::unique_ptr<MemoryInput> in(new MemoryInput());
  in->bytes_ = std::move(bytes);
  constexpr int kIoBufferBytes = 64 << 10;
  auto* io_buffer = static_cast<unsigned char*>(av_malloc(kIoBufferBytes));
  if (io_buffer == nullptr) {
    return ResourceExhausted(std::string(name) + ": no memory for FFmpeg IO");
  }
  in->io_ =
      avio_alloc_context(io_buffer, kIoBufferBytes, /*write_flag=*/0, in.get(),
                         &MemoryInput::Read, nullptr, &MemoryInput::Seek);
  if (in->io_ == nullptr) {
    av_free(io_buffer);
    return ResourceExhausted(std::string(name) + ": no memory for FFmpeg IO");
  }
  in->format_ = avformat_alloc_context();
  if (in->format_ == nullptr) {
    return ResourceExhausted(std::string(name) + ": no memory for FFmpeg");
  }
  in->format_->pb = in->io_;
  in->format_->flags |= AVFMT_FLAG_CUSTOM_IO;
  // On failure avformat_open_input frees the context (not the custom IO).
  const int err = avformat_open_input(&in->format_, nullptr, nullptr, nullptr);
  if (err < 0) {
    in->format_ = nullptr;
    return AvError(err, std::string(name) + ": cannot open the video");
  }
  return in;
}

MemoryInput::~MemoryInput() {
  if (format_ != nullptr) avformat_close_input(&format_);
  if (io_ != nullptr) {
    // libavformat may have replaced the buffer it was given: free its
    // current one.
    av_freep(&io_->buffer);
    avio_context_free(&io_);
  }
}

namespace {

// What makes two streams' decoders interchangeable once flushed: the codec
// parameters avcodec_parameters_to_context copies that describe the
// stream, the budget the frames are charged to, and the threads.
struct DecoderKey {
  int codec_id = 0;
  uint32_t codec_tag = 0;
  int format = -1, width = 0, height = 0, profile = 0, level = 0;
  int color_range = 0, color_primaries = 0, color_trc = 0, color_space = 0;
  int chroma_location = 0, field_order = 0, video_delay = 0;
  int bits_per_raw_sample = 0, bits_per_coded_sample = 0;
  int sar_num = 0, sar_den = 0;
  int tb_num = 0, tb_den = 0;  // the packets' time base
  std::string extradata;
  const MemoryBudget* budget = nullptr;
  int threads = 1;
  bool operator==(const DecoderKey&) const = default;
};

DecoderKey KeyOf(const AVStream* stream, const MemoryBudget* budget,
                 int threads) {
  const AVCodecParameters* par = stream->codecpar;
  DecoderKey k;
  k.tb_num = stream->time_base.num;
  k.tb_den = stream->time_base.den;
  k.codec_id = par->codec_id;
  k.codec_tag = par->codec_tag;
  k.format = par->format;
  k.width = par->width;
  k.height = par->height;
  k.profile = par->profile;
  k.level = par->level;
  k.color_range = RawEnum(par->color_range);
  k.color_primaries = RawEnum(par->color_primaries);
  k.color_trc = RawEnum(par->color_trc);
  k.color_space = RawEnum(par->color_space);
  k.chroma_location = RawEnum(par->chroma_location);
  k.field_order = RawEnum(par->field_order);
  k.video_delay = par->video_delay;
  k.bits_per_raw_sample = par->bits_per_raw_sample;
  k.bits_per_coded_sample = par->bits_per_coded_sample;
  k.sar_num = par->sample_aspect_ratio.num;
  k.sar_den = par->sample_aspect_ratio.den;
  if (par->extradata != nullptr && par->extradata_size > 0) {
    k.extradata.assign(reinterpret_cast<const char*>(par->extradata),
                       static_cast<size_t>(par->extradata_size));
  }
  k.budget = budget;
  k.threads = threads;
  return k;
}

// A decoder's frame pool as its budget sees it. libavcodec's pool keeps
// every buffer it has handed out until the decoder is freed (a buffer a
// frame lets go of waits there for the next frame), so the pool holds the
// most its frames ever held at once: that high-water mark is charged, from
// the first frame until the decoder and its last frame are gone, also while
// the decoder waits in a kept slot. (Charging only the frames in use left
// the idle part of every pool, a few MB per decoder at 640x360, out of the
// budget.)
class FramePoolCharge {
 public:
  explicit FramePoolCharge(std::shared_ptr<MemoryBudget> budget)
      : budget_(std::move(budget)) {}
  FramePoolCharge(const FramePoolCharge&) = delete;
  FramePoolCharge& operator=(const FramePoolCharge&) = delete;
  ~FramePoolCharge() { budget_->Charge(-charged_.load()); }

  void Take(int64_t bytes) {
    const int64_t now = held_.fetch_add(bytes) + bytes;
    int64_t high = charged_.load();
    while (now > high && !charged_.compare_exchange_weak(high, now)) {
    }
    if (now > high) budget_->Charge(now - high);
  }
  void Give(int64_t bytes) { held_.fetch_sub(bytes); }

 private:
  const std::shared_ptr<MemoryBudget> budget_;
  std::atomic<int64_t> held_{0};     // bytes in frames now
  std::atomic<int64_t> charged_{0};  // their high-water mark
};

// A decoder's opaque: the key it was opened for (with the budget its frames
// are charged to) and its pool's charge (null without a budget; it keeps
// the budget alive).
struct DecoderState {
  std::shared_ptr<FramePoolCharge> pool;
  DecoderKey key;
};

// Decoders given back (see ReleaseDecoder), for any thread's next open: a
// loader runs its decodes on whichever of its arena's threads is free, so a
// per-thread cache would miss often and keep a decoder per thread. A few
// slots, taken and filled with atomic exchanges; a kept decoder holds its
// tables, which no budget sees, and its frame pool, still charged, so there
// are few.
constexpr int kKeptSlots = 4;
std::atomic<AVCodecContext*> kept[kKeptSlots];

// A kept decoder whose state `match` accepts, taken from its slot, or null.
template <typename Match>
CodecContextPtr TakeKeptIf(const Match& match) {
  for (auto& slot : kept) {
    if (slot.load(std::memory_order_relaxed) == nullptr) continue;
    AVCodecContext* c = slot.exchange(nullptr, std::memory_order_acquire);
    if (c == nullptr) continue;
    if (match(*static_cast<const DecoderState*>(c->opaque))) {
      return CodecContextPtr(c);
    }
    AVCodecContext* empty = nullptr;
    if (!slot.compare_exchange_strong(empty, c, std::memory_order_release)) {
      CodecContextPtr drop(c);  // the slot was filled meanwhile
    }
  }
  return nullptr;
}

// What a charged frame buffer holds: the pool's buffer it stands for and
// the bytes to give back to the pool's count when the frame lets go of it.
struct ChargedBuffer {
  AVBufferRef* pooled = nullptr;
  std::shared_ptr<FramePoolCharge> pool;
  int64_t bytes = 0;
};

void FreeChargedBuffer(void* opaque, uint8_t* /*data*/) {
  auto* charged = static_cast<ChargedBuffer*>(opaque);
  av_buffer_unref(&charged->pooled);
  charged->pool->Give(charged->bytes);
  delete charged;
}

// get_buffer2: libavcodec's own buffers (so its alignment and pooling
// stay), with buf[0] swapped for a reference that counts all the frame's
// planes in the decoder's FramePoolCharge (kept alive by the frames too).
int GetChargedBuffer(AVCodecContext* ctx, AVFrame* frame, int flags) {
  const int err = avcodec_default_get_buffer2(ctx, frame, flags);
  if (err < 0 || frame->buf[0] == nullptr) return err;
  const std::shared_ptr<FramePoolCharge>& pool =
      static_cast<DecoderState*>(ctx->opaque)->pool;
  int64_t bytes = 0;
  for (const AVBufferRef* buf : frame->buf) {
    if (buf != nullptr) bytes += static_cast<int64_t>(buf->size);
  }
  for (int i = 0; i < frame->nb_extended_buf; ++i) {
    bytes += static_cast<int64_t>(frame->extended_buf[i]->size);
  }
  auto* charged = new (std::nothrow) ChargedBuffer{frame->buf[0], pool, bytes};
  if (charged == nullptr) {
    av_frame_unref(frame);
    return AVERROR(ENOMEM);
  }
  AVBufferRef* wrapped =
      av_buffer_create(charged->pooled->data, charged->pooled->size,
                       &FreeChargedBuffer, charged, 0);
  if (wrapped == nullptr) {
    delete charged;
    av_frame_unref(frame);
    return AVERROR(ENOMEM);
  }
  frame->buf[0] = wrapped;
  pool->Take(bytes);
  return 0;
}

}  // namespace

void AVCodecContextFree::operator()(AVCodecContext* ctx) const {
  delete static_cast<DecoderState*>(ctx->opaque);
  ctx->opaque = nullptr;
  avcodec_free_context(&ctx);
}

void ReleaseDecoder(CodecContextPtr decoder) {
  if (!decoder || decoder->opaque == nullptr) return;
  const DecoderKey& key = static_cast<DecoderState*>(decoder->opaque)->key;
  // Larger frames would keep a pool of tens of MB per thread.
  if (int64_t{key.width} * key.height > 1280 * 720) return;
  // Its frames go back to the pool (charged still, as the pool keeps them).
  avcodec_flush_buffers(decoder.get());
  decoder->skip_frame = AVDISCARD_DEFAULT;
  for (auto& slot : kept) {
    AVCodecContext* empty = nullptr;
    if (slot.compare_exchange_strong(empty, decoder.get(),
                                     std::memory_order_release)) {
      (void)decoder.release();
      return;
    }
  }
  // Every slot is taken: this one takes the place of the one kept longest
  // ago, roughly (slots in turn). Keeping the slots' decoders instead let
  // videos whose parameters are rare hold them for good: on 40 x264 videos
  // (8 kinds of parameter sets, 32 videos of one) only 47 of 161 opens found
  // a decoder.
  static std::atomic<unsigned> turn{0};
  auto& slot = kept[turn.fetch_add(1, std::memory_order_relaxed) % kKeptSlots];
  CodecContextPtr evicted(
      slot.exchange(decoder.release(), std::memory_order_acq_rel));
}

void DropKeptDecoders(const MemoryBudget* budget) {
  auto charged_to_budget = [budget](const DecoderState& state) {
    return budget == nullptr || state.key.budget == budget;
  };
  while (CodecContextPtr dropped = TakeKeptIf(charged_to_budget)) {
  }
}

Result<CodecContextPtr> OpenDecoder(const AVFormatContext* format, int stream,
                                    std::string_view name,
                                    std::shared_ptr<MemoryBudget> frame_budget,
                                    int threads) {
  const AVCodecParameters* par = format->streams[stream]->codecpar;
  const AVCodec* codec = avcodec_find_decoder(par->codec_id);
  if (codec == nullptr) {
    return Unimplemented(std::string(name) + ": no decoder for codec " +
                         avcodec_get_name(par->codec_id));
  }
  auto state = std::make_unique<DecoderState>();
  state->key = KeyOf(format->streams[stream], frame_budget.get(),
                     std::clamp(threads, 1, 16));
  auto same_kind = [&key = state->key](const DecoderState& other) {
    return other.key == key;
  };
  if (CodecContextPtr reused = TakeKeptIf(same_kind)) return reused;
  CodecContextPtr ctx(avcodec_alloc_context3(codec));
  if (!ctx) return ResourceExhausted(std::string(name) + ": no memory");
  int err = avcodec_parameters_to_context(ctx.get(), par);
  if (err < 0) return AvError(err, std::string(name) + ": decoder setup");
  // One thread per video unless asked: parallelism comes from decoding
  // many videos (or GOPs) at once. More threads are slice threads only:
  // frame threads report a refused packet late or not at all, and the
  // frames decoded meanwhile from its broken reference come out unflagged
  // and differ with the thread count (corrupted.mp4's frame 29; see
  // VideoErrorTest.CorruptedGopFramesAreErrorsOnThreads).
  ctx->thread_count = state->key.threads;
  ctx->thread_type = FF_THREAD_SLICE;
  ctx->pkt_timebase = format->streams[stream]->time_base;
  if (frame_budget != nullptr) {
    ctx->get_buffer2 = &GetChargedBuffer;
    state->pool = std::make_shared<FramePoolCharge>(std::move(frame_budget));
  }
  ctx->opaque = state.release();
  err = avcodec_open2(ctx.get(), codec, nullptr);
  if (err < 0) return AvError(err, std::string(name) + ": cannot open decoder");
  return ctx;
}

}  // namespace shoal::internal
