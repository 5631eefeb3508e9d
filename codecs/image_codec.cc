#include "codecs/image_codec.h"

namespace shoal {

template class Registry<ImageCodecKind>;

Status ImageCodec::Check(ByteSpan bytes,
                         std::vector<std::byte>& scratch) const {
  SHOAL_ASSIGN_OR_RETURN(ImageInfo info, ReadInfo(bytes));
  SHOAL_ASSIGN_OR_RETURN(Shape shape, OutputShape(info, {}));
  SHOAL_ASSIGN_OR_RETURN(uint64_t size, shape.ByteSize(info.dtype));
  scratch.resize(size);
  return Decode(bytes, {}, scratch);
}

Result<std::shared_ptr<const ImageCodec>> MakeImageCodec(
    std::string_view name, const ImageLimits& limits) {
  SHOAL_ASSIGN_OR_RETURN(ImageCodecRegistry::Factory factory,
                         ImageCodecRegistry::Find(name));
  return factory(limits);
}

Result<std::shared_ptr<const ImageCodec>> SniffImageCodec(
    ByteSpan bytes, const ImageLimits& limits) {
  for (const std::string& name : ImageCodecRegistry::Names()) {
    SHOAL_ASSIGN_OR_RETURN(auto codec, MakeImageCodec(name, limits));
    if (codec->Sniff(bytes)) return codec;
  }
  return InvalidArgument("not an image in a known format (known: JPEG, PNG)");
}

}  // namespace shoal
