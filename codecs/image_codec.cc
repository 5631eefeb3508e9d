#include "codecs/image_codec.h"

#include <map>
#include <mutex>

namespace shoal {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, ImageCodecRegistry::Factory, std::less<>> factories;
};

Registry& GetRegistry() {
  static Registry* registry = new Registry;
  return *registry;
}

}  // namespace

bool ImageCodecRegistry::Register(std::string name, Factory factory) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.factories.emplace(std::move(name), std::move(factory)).second;
}

std::vector<std::string> ImageCodecRegistry::Names() {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (const auto& [name, factory] : r.factories) names.push_back(name);
  return names;
}

Result<std::shared_ptr<const ImageCodec>> MakeImageCodec(
    std::string_view name, const ImageLimits& limits) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.factories.find(name);
  if (it == r.factories.end()) {
    std::string known;
    for (const auto& [n, f] : r.factories)
      known += (known.empty() ? "" : ", ") + n;
    return InvalidArgument("unknown image codec '" + std::string(name) +
                           "' (known: " + known + ")");
  }
  return it->second(limits);
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
