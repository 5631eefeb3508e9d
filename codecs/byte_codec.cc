// The codec registry and spec parsing. Codec implementations live in
// internal/*.cc and register themselves from static initializers, so adding a
// codec touches no file here.
#include "codecs/byte_codec.h"

#include <charconv>
#include <string>
#include <utility>

#include "codecs/internal/shuffle.h"

namespace shoal {
namespace {

constexpr std::string_view kShuffleSuffix = "+shuffle";

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

template class Registry<ByteCodecKind>;

Result<std::shared_ptr<const ByteCodec>> MakeByteCodec(
    std::string_view spec, const ByteCodecOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(ParsedSpec parsed, ParseSpec(spec));
  Result<ByteCodecRegistry::Factory> factory =
      ByteCodecRegistry::Find(parsed.name);
  if (!factory.ok()) {
    return factory.status().WithContext("byte codec spec '" +
                                        std::string(spec) + "'");
  }
  Result<std::shared_ptr<const ByteCodec>> codec = (*factory)(parsed.level);
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
