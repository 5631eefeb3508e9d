// "zstd[:level]": Zstandard frames, one frame per call. The best ratio of the
// byte codecs at a decode speed close to lz4's.
//
// Levels: 1..22 and the fast levels -7..-1; default 3. Level 0 is refused
// because zstd reads it as "default", which would give one codec two specs.
//
// Frames carry no zstd checksum (4 bytes and a hash pass per frame): shoal
// checksums every stored object with XXH3 (base/coding.h), so it would
// only repeat that check. Frames written elsewhere with a checksum are still
// verified by the decoder.
//
// Frames carry their content size, which is checked against the caller's
// expected size before anything is decoded. Decoding is single-pass into the
// caller's buffer, so zstd allocates no window buffer whatever the frame
// header claims; the window-size cap set on the decoder (kWindowLogMax) only
// matters if this file ever moves to the streaming API, and is there so such
// a change cannot silently open a memory hole.
#include <zstd.h>
#include <zstd_errors.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/coding.h"
#include "codecs/byte_codec.h"
#include "codecs/internal/registry.h"

namespace shoal::internal {
namespace {

// Fixed here rather than taken from zstd.h: specs are stored in datasets, so
// their meaning must not move with the library version.
constexpr int kMinLevel = -7;
constexpr int kMaxLevel = 22;
constexpr int kDefaultLevel = 3;
// 128 MiB, the largest window zstd itself picks (level 22 on large inputs).
constexpr int kWindowLogMax = 27;

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* cctx) const { ZSTD_freeCCtx(cctx); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* dctx) const { ZSTD_freeDCtx(dctx); }
};

// Contexts hold several hundred KiB of tables; one per thread, created on
// first use and freed at thread exit, avoids allocating them on every call.
// A thread only uses its own context, so no locking is needed.
Result<ZSTD_CCtx*> ThreadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx;
  if (cctx == nullptr) {
    cctx.reset(ZSTD_createCCtx());
    if (cctx == nullptr) {
      return ResourceExhausted("zstd: cannot allocate compression context");
    }
  }
  return cctx.get();
}

Result<ZSTD_DCtx*> ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx;
  if (dctx == nullptr) {
    std::unique_ptr<ZSTD_DCtx, DCtxDeleter> fresh(ZSTD_createDCtx());
    if (fresh == nullptr) {
      return ResourceExhausted("zstd: cannot allocate decompression context");
    }
    const size_t r =
        ZSTD_DCtx_setParameter(fresh.get(), ZSTD_d_windowLogMax, kWindowLogMax);
    if (ZSTD_isError(r)) {
      return Internal(std::string("zstd: cannot cap the window size: ") +
                      ZSTD_getErrorName(r));
    }
    dctx = std::move(fresh);
  }
  return dctx.get();
}

class ZstdCodec final : public ByteCodec {
 public:
  explicit ZstdCodec(int level) : level_(level) {}

  std::string spec() const override { return "zstd:" + std::to_string(level_); }

  size_t MaxCompressedSize(size_t input_size) const override {
    const size_t bound = ZSTD_compressBound(input_size);
    // Only inputs near SIZE_MAX have no bound; Compress() then fails.
    return ZSTD_isError(bound) ? SIZE_MAX : bound;
  }

  Result<size_t> Compress(ByteSpan src, MutableByteSpan dst) const override {
    const size_t bound = MaxCompressedSize(src.size());
    if (bound == SIZE_MAX || dst.size() < bound) {
      return InvalidArgument("zstd: output holds " +
                             std::to_string(dst.size()) + " bytes, need " +
                             std::to_string(bound) + " for " +
                             std::to_string(src.size()) + " input bytes");
    }
    SHOAL_ASSIGN_OR_RETURN(ZSTD_CCtx * cctx, ThreadCCtx());
    // The simple API resets every other parameter, so contexts shared by
    // codecs of different levels on one thread cannot leak settings; it also
    // records the content size in the frame header, which Decompress checks.
    const size_t written = ZSTD_compressCCtx(cctx, OutPtr(dst), dst.size(),
                                             InPtr(src), src.size(), level_);
    if (ZSTD_isError(written)) {
      const std::string message =
          spec() + ": compression failed: " + ZSTD_getErrorName(written);
      if (ZSTD_getErrorCode(written) == ZSTD_error_memory_allocation) {
        return ResourceExhausted(message);
      }
      return Internal(message);
    }
    return written;
  }

  Status Decompress(ByteSpan src, MutableByteSpan dst) const override {
    SHOAL_RETURN_IF_ERROR(CheckFrame(src, dst.size()));
    SHOAL_ASSIGN_OR_RETURN(ZSTD_DCtx * dctx, ThreadDCtx());
    const size_t got = ZSTD_decompressDCtx(dctx, OutPtr(dst), dst.size(),
                                           src.data(), src.size());
    if (ZSTD_isError(got)) {
      return Corruption("zstd: cannot decode " + std::to_string(src.size()) +
                        " bytes into the expected " +
                        std::to_string(dst.size()) + ": " +
                        ZSTD_getErrorName(got));
    }
    if (got != dst.size()) {
      return Corruption("zstd: expected " + std::to_string(dst.size()) +
                        " bytes, got " + std::to_string(got));
    }
    return Status::OK();
  }

 private:
  // Accepts exactly one regular frame whose declared content size, if any,
  // is `expected`. Skippable frames and trailing bytes are refused: Compress
  // never writes them, so they can only be damage.
  static Status CheckFrame(ByteSpan src, size_t expected) {
    if (src.size() < 4 || DecodeU32(src.data()) != ZSTD_MAGICNUMBER) {
      return Corruption("zstd: input of " + std::to_string(src.size()) +
                        " bytes does not start with a zstd frame");
    }
    const size_t frame_size =
        ZSTD_findFrameCompressedSize(src.data(), src.size());
    if (ZSTD_isError(frame_size)) {
      return Corruption(std::string("zstd: malformed frame: ") +
                        ZSTD_getErrorName(frame_size));
    }
    if (frame_size != src.size()) {
      return Corruption("zstd: " + std::to_string(src.size() - frame_size) +
                        " bytes after the end of the frame");
    }
    const unsigned long long content =
        ZSTD_getFrameContentSize(src.data(), src.size());
    if (content == ZSTD_CONTENTSIZE_ERROR) {
      return Corruption("zstd: malformed frame header");
    }
    if (content != ZSTD_CONTENTSIZE_UNKNOWN && content != expected) {
      return Corruption("zstd: frame holds " + std::to_string(content) +
                        " bytes, expected " + std::to_string(expected));
    }
    return Status::OK();
  }

  int level_;
};

[[maybe_unused]] const bool kRegistered = ByteCodecRegistry::Register(
    "zstd",
    [](std::optional<int> level) -> Result<std::shared_ptr<const ByteCodec>> {
      SHOAL_ASSIGN_OR_RETURN(int checked,
                             CheckLevel("zstd", level, kMinLevel, kMaxLevel,
                                        kDefaultLevel, /*allow_zero=*/false));
      return std::shared_ptr<const ByteCodec>(
          std::make_shared<ZstdCodec>(checked));
    });

}  // namespace
}  // namespace shoal::internal
