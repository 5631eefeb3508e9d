// SampleCodec: how a tensor compresses each sample on its own, over the two
// codec kinds of codecs/ (byte codecs for arrays: lz4, zstd; image codecs
// for image tensors: jpeg, png, or "image" = whichever of them each sample
// is in), so the tensor code has one path for both.
//
// Thread-safety: immutable; Encode and Decode may run concurrently.
#ifndef SHOAL_FORMAT_INTERNAL_SAMPLE_CODEC_H_
#define SHOAL_FORMAT_INTERNAL_SAMPLE_CODEC_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "base/types.h"
#include "codecs/image_codec.h"

namespace shoal::internal {

class SampleCodec {
 public:
  virtual ~SampleCodec() = default;

  /// Null for "" (samples stored raw). `spec` is a byte codec spec or an
  /// image codec name.
  static Result<std::shared_ptr<const SampleCodec>> Make(std::string_view spec,
                                                         DType dtype);
  /// The spec of tensors whose samples are each in any image format.
  static constexpr std::string_view kAnyImage = "image";
  /// True for names of image codecs ("jpeg", "png") and kAnyImage.
  static bool IsImageCodec(std::string_view spec);
  /// The spec of video tensors whose samples are video files stored as
  /// they came (any container FFmpeg reads: mp4, mov, mkv, webm).
  static constexpr std::string_view kVideo = "mp4";
  static bool IsVideoCodec(std::string_view spec) { return spec == kVideo; }

  /// True for video pass-through: samples are decoded by video/, not here.
  virtual bool video() const { return false; }

  /// The canonical spec stored in metadata and chunk headers.
  virtual std::string spec() const = 0;
  /// The image codec that encodes pixels appended to the tensor, or null
  /// for byte codecs.
  virtual const ImageCodec* image() const { return nullptr; }
  /// True when encoded images of `format` ("jpeg", "png") are stored as
  /// they come (pass-through) rather than decoded and re-encoded.
  virtual bool StoresAsIs(std::string_view format) const {
    (void)format;
    return false;
  }
  /// The image codec that decodes the stored sample `stored`: image() for
  /// one-format tensors, the sniffed one for kAnyImage; InvalidArgument for
  /// byte codecs, Corruption for bytes of no known image format.
  virtual Result<const ImageCodec*> ImageFor(ByteSpan stored) const;
  /// Encodes the raw C-order bytes of a sample (or tile) of `shape` into
  /// `out` (replacing its contents).
  virtual Status Encode(const Shape& shape, ByteSpan raw,
                        std::vector<std::byte>* out) const = 0;
  /// Decodes `stored` into `out`, which holds exactly the raw bytes of
  /// `shape`; Corruption when the stored bytes disagree with the shape.
  virtual Status Decode(ByteSpan stored, const Shape& shape,
                        MutableByteSpan out) const = 0;
};

}  // namespace shoal::internal

#endif  // SHOAL_FORMAT_INTERNAL_SAMPLE_CODEC_H_
