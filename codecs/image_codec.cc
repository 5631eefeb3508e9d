#include "codecs/image_codec.h"

namespace shoal {

template class Registry<ImageCodecKind>;

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
