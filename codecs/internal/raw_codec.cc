// "raw": stores bytes as they are. For data that does not compress (already
// encoded media, random tensors) and as the baseline of the codec tests.
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "codecs/byte_codec.h"
#include "codecs/internal/registry.h"

namespace shoal::internal {
namespace {

class RawCodec final : public ByteCodec {
 public:
  std::string spec() const override { return "raw"; }

  size_t MaxCompressedSize(size_t input_size) const override {
    return input_size;
  }

  Result<size_t> Compress(ByteSpan src, MutableByteSpan dst) const override {
    if (dst.size() < src.size()) {
      return InvalidArgument("raw: output holds " + std::to_string(dst.size()) +
                             " bytes, need " + std::to_string(src.size()));
    }
    if (!src.empty()) std::memcpy(dst.data(), src.data(), src.size());
    return src.size();
  }

  Status Decompress(ByteSpan src, MutableByteSpan dst) const override {
    if (src.size() != dst.size()) {
      return Corruption("raw: expected " + std::to_string(dst.size()) +
                        " bytes, got " + std::to_string(src.size()));
    }
    if (!src.empty()) std::memcpy(dst.data(), src.data(), src.size());
    return Status::OK();
  }
};

[[maybe_unused]] const bool kRegistered = ByteCodecRegistry::Register(
    "raw",
    [](std::optional<int> level) -> Result<std::shared_ptr<const ByteCodec>> {
      SHOAL_RETURN_IF_ERROR(CheckNoLevel("raw", level));
      return std::shared_ptr<const ByteCodec>(std::make_shared<RawCodec>());
    });

}  // namespace
}  // namespace shoal::internal
