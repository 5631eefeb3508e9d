#include "format/internal/sample_codec.h"

#include <cstring>

#include "codecs/byte_codec.h"

namespace shoal::internal {
namespace {

class ByteSampleCodec final : public SampleCodec {
 public:
  explicit ByteSampleCodec(std::shared_ptr<const ByteCodec> codec)
      : codec_(std::move(codec)) {}
  std::string spec() const override { return codec_->spec(); }
  Status Encode(const Shape&, ByteSpan raw,
                std::vector<std::byte>* out) const override {
    out->resize(codec_->MaxCompressedSize(raw.size()));
    SHOAL_ASSIGN_OR_RETURN(size_t n, codec_->Compress(raw, *out));
    out->resize(n);
    return Status::OK();
  }
  Status Decode(ByteSpan stored, const Shape&,
                MutableByteSpan out) const override {
    return codec_->Decompress(stored, out);
  }

 private:
  std::shared_ptr<const ByteCodec> codec_;
};

// Decodes a stored image whose decoded shape must be `shape`.
Status DecodeImage(const ImageCodec& codec, ByteSpan stored, const Shape& shape,
                   MutableByteSpan out) {
  SHOAL_ASSIGN_OR_RETURN(ImageInfo info, codec.ReadInfo(stored));
  SHOAL_ASSIGN_OR_RETURN(Shape decoded, codec.OutputShape(info, {}));
  if (decoded != shape) {
    return Corruption("stored " + std::string(codec.name()) + " image is " +
                      decoded.ToString() + ", the chunk says " +
                      shape.ToString());
  }
  return codec.Decode(stored, {}, out);
}

class ImageSampleCodec final : public SampleCodec {
 public:
  ImageSampleCodec(std::shared_ptr<const ImageCodec> codec, DType dtype)
      : codec_(std::move(codec)), dtype_(dtype) {}
  std::string spec() const override { return std::string(codec_->name()); }
  const ImageCodec* image() const override { return codec_.get(); }
  bool StoresAsIs(std::string_view format) const override {
    return format == codec_->name();
  }
  Result<const ImageCodec*> ImageFor(ByteSpan) const override {
    return codec_.get();
  }
  Status Encode(const Shape& shape, ByteSpan raw,
                std::vector<std::byte>* out) const override {
    SHOAL_ASSIGN_OR_RETURN(
        Buffer encoded,
        codec_->Encode(shape, dtype_, raw, ImageEncodeOptions{}));
    out->assign(encoded.data(), encoded.data() + encoded.size());
    return Status::OK();
  }
  Status Decode(ByteSpan stored, const Shape& shape,
                MutableByteSpan out) const override {
    return DecodeImage(*codec_, stored, shape, out);
  }

 private:
  std::shared_ptr<const ImageCodec> codec_;
  DType dtype_;
};

// kAnyImage: each sample is a complete file of any registered image format,
// told apart by its signature; pixels are encoded losslessly as PNG.
class AnyImageSampleCodec final : public SampleCodec {
 public:
  AnyImageSampleCodec(std::vector<std::shared_ptr<const ImageCodec>> codecs,
                      std::shared_ptr<const ImageCodec> encoder, DType dtype)
      : codecs_(std::move(codecs)),
        encoder_(std::move(encoder)),
        dtype_(dtype) {}
  std::string spec() const override { return std::string(kAnyImage); }
  const ImageCodec* image() const override { return encoder_.get(); }
  bool StoresAsIs(std::string_view) const override { return true; }
  Result<const ImageCodec*> ImageFor(ByteSpan stored) const override {
    for (const auto& codec : codecs_) {
      if (codec->Sniff(stored)) return codec.get();
    }
    return Corruption("stored sample is no known image format (" +
                      std::to_string(stored.size()) + " bytes)");
  }
  Status Encode(const Shape& shape, ByteSpan raw,
                std::vector<std::byte>* out) const override {
    SHOAL_ASSIGN_OR_RETURN(
        Buffer encoded,
        encoder_->Encode(shape, dtype_, raw, ImageEncodeOptions{}));
    out->assign(encoded.data(), encoded.data() + encoded.size());
    return Status::OK();
  }
  Status Decode(ByteSpan stored, const Shape& shape,
                MutableByteSpan out) const override {
    SHOAL_ASSIGN_OR_RETURN(const ImageCodec* codec, ImageFor(stored));
    return DecodeImage(*codec, stored, shape, out);
  }

 private:
  std::vector<std::shared_ptr<const ImageCodec>> codecs_;
  std::shared_ptr<const ImageCodec> encoder_;
  DType dtype_;
};

// Video files stored as they came. The format holds their bytes and shape
// [frames, height, width, 3]; decoding frames is video/'s job (it depends on
// FFmpeg, which the format does not).
class VideoSampleCodec final : public SampleCodec {
 public:
  std::string spec() const override { return std::string(kVideo); }
  bool video() const override { return true; }
  Status Encode(const Shape&, ByteSpan,
                std::vector<std::byte>*) const override {
    return Unimplemented(
        "video tensors store video files (Tensor::AppendVideo); frames "
        "cannot be appended as pixels");
  }
  Status Decode(ByteSpan, const Shape&, MutableByteSpan) const override {
    return Unimplemented(
        "video samples are decoded frame by frame with shoal::VideoReader "
        "(video/video.h; `shoal get --frames`), not as one array");
  }
};

}  // namespace

Result<const ImageCodec*> SampleCodec::ImageFor(ByteSpan) const {
  return InvalidArgument("sample compression '" + spec() +
                         "' is not an image codec");
}

bool SampleCodec::IsImageCodec(std::string_view spec) {
  if (spec == kAnyImage) return true;
  for (const std::string& name : ImageCodecRegistry::Names()) {
    if (name == spec) return true;
  }
  return false;
}

Result<std::shared_ptr<const SampleCodec>> SampleCodec::Make(
    std::string_view spec, DType dtype) {
  if (spec.empty()) return std::shared_ptr<const SampleCodec>();
  if (IsVideoCodec(spec)) {
    return std::shared_ptr<const SampleCodec>(
        std::make_shared<VideoSampleCodec>());
  }
  if (spec == kAnyImage) {
    std::vector<std::shared_ptr<const ImageCodec>> codecs;
    for (const std::string& name : ImageCodecRegistry::Names()) {
      SHOAL_ASSIGN_OR_RETURN(auto codec, MakeImageCodec(name));
      codecs.push_back(std::move(codec));
    }
    SHOAL_ASSIGN_OR_RETURN(auto encoder, MakeImageCodec("png"));
    return std::shared_ptr<const SampleCodec>(
        std::make_shared<AnyImageSampleCodec>(std::move(codecs),
                                              std::move(encoder), dtype));
  }
  if (IsImageCodec(spec)) {
    SHOAL_ASSIGN_OR_RETURN(auto codec, MakeImageCodec(spec));
    return std::shared_ptr<const SampleCodec>(
        std::make_shared<ImageSampleCodec>(std::move(codec), dtype));
  }
  SHOAL_ASSIGN_OR_RETURN(auto codec, MakeByteCodec(spec, {DTypeSize(dtype)}));
  return std::shared_ptr<const SampleCodec>(
      std::make_shared<ByteSampleCodec>(std::move(codec)));
}

}  // namespace shoal::internal
