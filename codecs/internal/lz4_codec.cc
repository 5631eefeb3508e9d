// "lz4" and "lz4hc[:level]": LZ4 block format. lz4 is the fastest codec to
// decode; lz4hc spends more time compressing for a better ratio and decodes
// with the same decoder. Blocks carry no size header: the caller's expected
// size bounds the output.
#include <lz4.h>
#include <lz4hc.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "codecs/byte_codec.h"
#include "codecs/internal/registry.h"

namespace shoal::internal {
namespace {

// Fixed here rather than taken from lz4hc.h: specs are stored in datasets, so
// their meaning must not move with the library version.
constexpr int kLz4HcMinLevel = 1;
constexpr int kLz4HcMaxLevel = 12;
constexpr int kLz4HcDefaultLevel = 9;

// Both codecs share the block decoder and the size checks; they differ only
// in how they compress.
class Lz4CodecBase : public ByteCodec {
 public:
  size_t MaxCompressedSize(size_t input_size) const override {
    if (input_size <= LZ4_MAX_INPUT_SIZE) {
      return static_cast<size_t>(
          LZ4_compressBound(static_cast<int>(input_size)));
    }
    // Compress() refuses such inputs; the bound stays a sane number anyway
    // (saturating rather than wrapping around).
    const size_t extra = input_size / 255 + 16;
    return input_size > SIZE_MAX - extra ? SIZE_MAX : input_size + extra;
  }

  // LZ4 decodes a block that barely compresses (a photo's) at about 1.5
  // GB/s per core, ten times slower than a copy: a saving under an eighth
  // is not worth that. Measured on three photos by
  // benchmarks/large_image_bench: whole reads 25-35 % faster for 1-2 % of
  // the ratio (benchmarks/RESULTS.md).
  bool WorthKeeping(size_t raw_size, size_t compressed_size) const override {
    return compressed_size <= raw_size - raw_size / 8;
  }

  Result<size_t> Compress(ByteSpan src, MutableByteSpan dst) const override {
    if (src.size() > LZ4_MAX_INPUT_SIZE) {
      return InvalidArgument(spec() + ": input of " +
                             std::to_string(src.size()) +
                             " bytes exceeds the lz4 block limit of " +
                             std::to_string(LZ4_MAX_INPUT_SIZE));
    }
    if (dst.size() < MaxCompressedSize(src.size())) {
      return InvalidArgument(spec() + ": output holds " +
                             std::to_string(dst.size()) + " bytes, need " +
                             std::to_string(MaxCompressedSize(src.size())));
    }
    const int capacity = static_cast<int>(
        std::min<size_t>(dst.size(), static_cast<size_t>(INT_MAX)));
    SHOAL_ASSIGN_OR_RETURN(
        int written, CompressBlock(InPtr(src), OutPtr(dst),
                                   static_cast<int>(src.size()), capacity));
    // With a bound-sized output lz4 cannot fail, so 0 means a broken state.
    if (written <= 0) return Internal(spec() + ": compression failed");
    return static_cast<size_t>(written);
  }

  Status Decompress(ByteSpan src, MutableByteSpan dst) const override {
    // No valid block decodes to more than LZ4_MAX_INPUT_SIZE bytes, and
    // LZ4_decompress_safe counts in int.
    if (dst.size() > LZ4_MAX_INPUT_SIZE || src.size() > INT_MAX) {
      return Corruption("lz4: expected " + std::to_string(dst.size()) +
                        " bytes from " + std::to_string(src.size()) +
                        ", beyond what an lz4 block holds");
    }
    const int got = LZ4_decompress_safe(InPtr(src), OutPtr(dst),
                                        static_cast<int>(src.size()),
                                        static_cast<int>(dst.size()));
    // lz4 returns the same negative result for a malformed block and for one
    // that would decode to more than dst.size(); the message names both.
    if (got < 0) {
      return Corruption("lz4: malformed block of " +
                        std::to_string(src.size()) +
                        " bytes (or it decodes to more than the expected " +
                        std::to_string(dst.size()) + " bytes)");
    }
    if (static_cast<size_t>(got) != dst.size()) {
      return Corruption("lz4: expected " + std::to_string(dst.size()) +
                        " bytes, got " + std::to_string(got));
    }
    return Status::OK();
  }

 protected:
  virtual Result<int> CompressBlock(const char* src, char* dst, int src_size,
                                    int capacity) const = 0;
};

class Lz4Codec final : public Lz4CodecBase {
 public:
  std::string spec() const override { return "lz4"; }

 protected:
  Result<int> CompressBlock(const char* src, char* dst, int src_size,
                            int capacity) const override {
    return LZ4_compress_default(src, dst, src_size, capacity);
  }
};

class Lz4HcCodec final : public Lz4CodecBase {
 public:
  explicit Lz4HcCodec(int level) : level_(level) {}

  std::string spec() const override {
    return "lz4hc:" + std::to_string(level_);
  }

 protected:
  Result<int> CompressBlock(const char* src, char* dst, int src_size,
                            int capacity) const override {
    // LZ4_compress_HC() mallocs its ~256 KiB state on every call; a state per
    // thread avoids that. The _extStateHC variant fully re-initializes it.
    thread_local std::vector<std::byte> state;
    if (state.empty()) {
      try {
        state.resize(static_cast<size_t>(LZ4_sizeofStateHC()));
      } catch (const std::bad_alloc&) {
        return ResourceExhausted("lz4hc: cannot allocate compression state");
      }
    }
    return LZ4_compress_HC_extStateHC(state.data(), src, dst, src_size,
                                      capacity, level_);
  }

 private:
  int level_;
};

[[maybe_unused]] const bool kLz4Registered = ByteCodecRegistry::Register(
    "lz4",
    [](std::optional<int> level) -> Result<std::shared_ptr<const ByteCodec>> {
      SHOAL_RETURN_IF_ERROR(CheckNoLevel("lz4", level));
      return std::shared_ptr<const ByteCodec>(std::make_shared<Lz4Codec>());
    });

[[maybe_unused]] const bool kLz4HcRegistered = ByteCodecRegistry::Register(
    "lz4hc",
    [](std::optional<int> level) -> Result<std::shared_ptr<const ByteCodec>> {
      SHOAL_ASSIGN_OR_RETURN(int checked,
                             CheckLevel("lz4hc", level, kLz4HcMinLevel,
                                        kLz4HcMaxLevel, kLz4HcDefaultLevel));
      return std::shared_ptr<const ByteCodec>(
          std::make_shared<Lz4HcCodec>(checked));
    });

}  // namespace
}  // namespace shoal::internal
