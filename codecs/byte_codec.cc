// The codec registry and spec parsing. Codec implementations live in
// internal/*.cc and register themselves from static initializers, so adding a
// codec touches no file here.
#include "codecs/byte_codec.h"

#include <charconv>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "codecs/internal/shuffle.h"

namespace shoal {
namespace {

constexpr std::string_view kShuffleSuffix = "+shuffle";

struct Registry {
  std::mutex mu;
  std::map<std::string, ByteCodecRegistry::Factory, std::less<>> factories;
};

// Function-local so that registrations from other files' static initializers
// never run before it exists; never destroyed so that codecs can still be
// made while the process exits.
Registry& GetRegistry() {
  static Registry* const registry = new Registry();
  return *registry;
}

std::string KnownNames() {
  std::string out;
  for (const std::string& name : ByteCodecRegistry::Names()) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

struct ParsedSpec {
  std::string_view name;
  std::optional<int> level;
  bool shuffle = false;
};

Result<ParsedSpec> ParseSpec(std::string_view spec) {
  ParsedSpec parsed;
  std::string_view rest = spec;
  if (rest.ends_with(kShuffleSuffix)) {
    parsed.shuffle = true;
    rest.remove_suffix(kShuffleSuffix.size());
  }
  if (rest.find('+') != std::string_view::npos) {
    return InvalidArgument("byte codec spec '" + std::string(spec) +
                           "': the only filter is a trailing '+shuffle'");
  }
  const size_t colon = rest.find(':');
  parsed.name = rest.substr(0, colon);
  if (colon != std::string_view::npos) {
    const std::string_view digits = rest.substr(colon + 1);
    int level = 0;
    const auto [end, ec] =
        std::from_chars(digits.data(), digits.data() + digits.size(), level);
    if (digits.empty() || ec != std::errc() ||
        end != digits.data() + digits.size()) {
      return InvalidArgument("byte codec spec '" + std::string(spec) +
                             "': level '" + std::string(digits) +
                             "' is not an integer");
    }
    parsed.level = level;
  }
  return parsed;
}

}  // namespace

bool ByteCodecRegistry::Register(std::string name, Factory factory) {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  // A second registration under one name is a build mistake; the first one
  // stays so the behaviour does not depend on static initialization order.
  return registry.factories.emplace(std::move(name), std::move(factory)).second;
}

std::vector<std::string> ByteCodecRegistry::Names() {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  std::vector<std::string> names;
  names.reserve(registry.factories.size());
  for (const auto& [name, factory] : registry.factories) names.push_back(name);
  return names;
}

Result<std::shared_ptr<const ByteCodec>> MakeByteCodec(
    std::string_view spec, const ByteCodecOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(ParsedSpec parsed, ParseSpec(spec));
  ByteCodecRegistry::Factory factory;
  {
    Registry& registry = GetRegistry();
    std::lock_guard<std::mutex> lock(registry.mu);
    auto it = registry.factories.find(parsed.name);
    if (it != registry.factories.end()) factory = it->second;
  }
  if (!factory) {
    return InvalidArgument("unknown byte codec '" + std::string(parsed.name) +
                           "' in spec '" + std::string(spec) +
                           "'; known: " + KnownNames());
  }
  // The factory runs outside the lock so that it may itself look up codecs.
  Result<std::shared_ptr<const ByteCodec>> codec = factory(parsed.level);
  if (!codec.ok()) {
    return codec.status().WithContext("byte codec spec '" + std::string(spec) +
                                      "'");
  }
  if (!parsed.shuffle) return codec;
  Result<std::shared_ptr<const ByteCodec>> shuffled =
      internal::MakeShuffleCodec(*std::move(codec), options.element_size);
  if (!shuffled.ok()) {
    return shuffled.status().WithContext("byte codec spec '" +
                                         std::string(spec) + "'");
  }
  return shuffled;
}

}  // namespace shoal
