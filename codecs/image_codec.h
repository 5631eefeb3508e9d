// ImageCodec: decoding and encoding of one image sample (JPEG, PNG), the
// sample codecs of image tensors.
//
// A decode is two steps so that no bytes are copied: ReadInfo() reads the
// header only (dimensions, channels, subsampling) and OutputShape() says
// what Decode() will write for given options; the caller then sizes the
// destination (e.g. a slot of a batch buffer) and Decode() writes straight
// into it. Output is C-order [height, width, channels], uint8 (uint16 for
// 16-bit PNG).
//
// Input is hostile: any malformed, truncated or size-lying image gives a
// Status (Corruption for damaged data, Unimplemented for valid features
// this build does not decode, ResourceExhausted for images over the
// limits), never a crash or an allocation sized by the header before the
// header was checked against ImageLimits. C library errors (libjpeg and
// libpng longjmp) are caught inside each codec's own .cc file.
//
// Each codec is a plug-in registered by name in its own .cc file.
//
// Thread-safety: codec objects are immutable; every method may run
// concurrently on one object (per-call decoder state is per thread).
#ifndef SHOAL_CODECS_IMAGE_CODEC_H_
#define SHOAL_CODECS_IMAGE_CODEC_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/buffer.h"
#include "base/registry.h"
#include "base/result.h"
#include "base/types.h"

namespace shoal {

/// What an image's header says, read without decoding pixels.
struct ImageInfo {
  std::string format;  // "jpeg", "png"
  uint32_t height = 0;
  uint32_t width = 0;
  /// Channels of the default decode: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
  uint8_t channels = 0;
  DType dtype = DType::kUInt8;
  // JPEG.
  std::string colorspace;   // "gray", "ycbcr", "rgb", "cmyk", "ycck"
  std::string subsampling;  // "4:4:4", "4:2:2", "4:2:0", "4:4:0", "4:1:1",
                            // "gray", "other"
  bool progressive = false;
  bool arithmetic = false;
  int precision = 8;  // bits per sample
  // PNG.
  int bit_depth = 8;
  bool interlaced = false;
};

/// A rectangle of the (scaled) output image.
struct ImageRegion {
  uint32_t y = 0, x = 0, height = 0, width = 0;
};

struct ImageDecodeOptions {
  enum class Channels {
    kDefault,  // the image's own (ImageInfo::channels)
    kRgb,      // 3 channels (gray is replicated; JPEG only)
    kGray,     // 1 channel (JPEG only; color images are converted)
  };
  Channels channels = Channels::kDefault;
  /// JPEG DCT-domain scaling: the output is ceil(size * scale_eighths / 8).
  /// JPEG supports 1..16 (libjpeg-turbo's scaling factors); PNG only 8.
  uint8_t scale_eighths = 8;
  /// Decode only this rectangle of the scaled image (JPEG skips the MCU rows
  /// and columns outside it). Must lie inside the scaled image.
  std::optional<ImageRegion> region;
};

struct ImageEncodeOptions {
  int quality = 90;                   // JPEG 1..100
  std::string subsampling = "4:2:0";  // JPEG: "4:4:4", "4:2:2", "4:2:0", "gray"
  int compression_level = 6;          // PNG zlib level 0..9
};

/// Caps checked on the header before anything is allocated.
struct ImageLimits {
  uint32_t max_dimension = 65500;
  uint64_t max_pixels = 1ull << 28;  // 268 M pixels (e.g. 16384 x 16384)
};

class ImageCodec {
 public:
  virtual ~ImageCodec() = default;

  /// "jpeg" or "png": the sample_compression name.
  virtual std::string_view name() const = 0;
  /// True when `bytes` begin with this format's signature.
  virtual bool Sniff(ByteSpan bytes) const = 0;

  virtual Result<ImageInfo> ReadInfo(ByteSpan bytes) const = 0;
  /// The shape [H, W, C] Decode() writes for `options`; InvalidArgument for
  /// options the format does not support (e.g. a PNG scale).
  virtual Result<Shape> OutputShape(
      const ImageInfo& info, const ImageDecodeOptions& options) const = 0;
  /// Decodes into `out`, which must hold exactly OutputShape() bytes.
  virtual Status Decode(ByteSpan bytes, const ImageDecodeOptions& options,
                        MutableByteSpan out) const = 0;

  /// Checks that `bytes` decode: reads the whole encoded stream as
  /// Decode() does and fails as it would on damage, at the least cost.
  /// `scratch` is the caller's (reused between calls). The default decodes
  /// in full; JPEG decodes at 1/8 scale, which still entropy-decodes every
  /// coefficient of every block (the only part of a JPEG whose damage a
  /// decode can find) but skips most of the inverse DCT, upsampling and
  /// colour conversion.
  virtual Status Check(ByteSpan bytes, std::vector<std::byte>& scratch) const;

  /// Encodes C-order pixels of `shape` [H, W, C] and `dtype`.
  virtual Result<Buffer> Encode(const Shape& shape, DType dtype,
                                ByteSpan pixels,
                                const ImageEncodeOptions& options) const = 0;
};

/// The codec named `name`; InvalidArgument listing the known ones otherwise.
/// `limits` apply to every header it reads.
Result<std::shared_ptr<const ImageCodec>> MakeImageCodec(
    std::string_view name, const ImageLimits& limits = {});
/// The codec whose signature `bytes` start with; InvalidArgument if none.
Result<std::shared_ptr<const ImageCodec>> SniffImageCodec(
    ByteSpan bytes, const ImageLimits& limits = {});

struct ImageCodecKind {
  static constexpr std::string_view kKind = "image codec";
  using Factory =
      std::function<std::shared_ptr<const ImageCodec>(const ImageLimits&)>;
};
/// Image codecs by name ("jpeg", "png").
using ImageCodecRegistry = Registry<ImageCodecKind>;
extern template class Registry<ImageCodecKind>;

}  // namespace shoal

#endif  // SHOAL_CODECS_IMAGE_CODEC_H_
