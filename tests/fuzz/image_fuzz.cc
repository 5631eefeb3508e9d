// libFuzzer target for the image decoders (JPEG, PNG): header reading and
// decoding at full size, at a DCT scale and of a region must answer any
// input with a Status, never a crash, hang or allocation sized by a lying
// header. Limits are small so the fuzzer does not spend its time on big
// legitimate images.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "codecs/image_codec.h"

using namespace shoal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ByteSpan bytes(reinterpret_cast<const std::byte*>(data), size);
  const ImageLimits limits{.max_dimension = 4096, .max_pixels = 1u << 22};
  for (const char* name : {"jpeg", "png"}) {
    auto codec = MakeImageCodec(name, limits);
    if (!codec.ok()) continue;
    auto info = (*codec)->ReadInfo(bytes);
    if (!info.ok()) continue;
    std::vector<ImageDecodeOptions> variants(1);
    ImageDecodeOptions scaled;
    scaled.scale_eighths = 2;
    variants.push_back(scaled);
    ImageDecodeOptions region;
    region.region = ImageRegion{info->height / 3, info->width / 4,
                                info->height / 2, info->width / 2};
    variants.push_back(region);
    std::vector<std::byte> out;
    for (const auto& options : variants) {
      auto shape = (*codec)->OutputShape(*info, options);
      if (!shape.ok()) continue;
      auto n = shape->ByteSize(info->dtype);
      if (!n.ok() || *n > (64u << 20)) continue;
      out.resize(*n);
      (void)(*codec)->Decode(bytes, options, out);
    }
  }
  return 0;
}
