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

class ImageSampleCodec final : public SampleCodec {
 public:
  ImageSampleCodec(std::shared_ptr<const ImageCodec> codec, DType dtype)
      : codec_(std::move(codec)), dtype_(dtype) {}
  std::string spec() const override { return std::string(codec_->name()); }
  const ImageCodec* image() const override { return codec_.get(); }
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
    SHOAL_ASSIGN_OR_RETURN(ImageInfo info, codec_->ReadInfo(stored));
    SHOAL_ASSIGN_OR_RETURN(Shape decoded, codec_->OutputShape(info, {}));
    if (decoded != shape) {
      return Corruption("stored " + std::string(codec_->name()) + " image is " +
                        decoded.ToString() + ", the chunk says " +
                        shape.ToString());
    }
    return codec_->Decode(stored, {}, out);
  }

 private:
  std::shared_ptr<const ImageCodec> codec_;
  DType dtype_;
};

}  // namespace

bool SampleCodec::IsImageCodec(std::string_view spec) {
  for (const std::string& name : ImageCodecRegistry::Names()) {
    if (name == spec) return true;
  }
  return false;
}

Result<std::shared_ptr<const SampleCodec>> SampleCodec::Make(
    std::string_view spec, DType dtype) {
  if (spec.empty()) return std::shared_ptr<const SampleCodec>();
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
