#include "base/coding.h"

#include <xxhash.h>
#if defined(__x86_64__)
#include <immintrin.h>
#include <xxh_x86dispatch.h>
#endif

namespace shoal {
namespace {

#if defined(__x86_64__)
__attribute__((target("avx"))) void ZeroUpper() { _mm256_zeroupper(); }

bool HasAvx() {
  static const bool has_avx = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") != 0;
  }();
  return has_avx;
}

// libxxhash's plain XXH3_64bits is its SSE2 build; the dispatcher picks the
// widest vector unit of this CPU (several times faster on AVX2 machines) and
// gives the same hash. Clearing the upper vector halves afterwards keeps the
// SSE code that runs next from paying the AVX-to-SSE transition penalty.
uint64_t Xxh3(const void* data, size_t size) {
  const uint64_t h = XXH3_64bits_dispatch(data, size);
  if (HasAvx()) ZeroUpper();
  return h;
}
#else
uint64_t Xxh3(const void* data, size_t size) { return XXH3_64bits(data, size); }
#endif

}  // namespace

Result<uint64_t> ByteReader::GetVarint() {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos_ >= size_) return Error("truncated varint");
    const auto byte = static_cast<uint8_t>(data_[pos_++]);
    // The tenth byte may carry only the top bit of a 64-bit value.
    if (shift == 63 && byte > 1) return Error("varint overflows 64 bits");
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return v;
  }
  return Error("varint longer than 10 bytes");
}

Result<uint64_t> ByteReader::GetVarintAtMost(uint64_t max,
                                             std::string_view field) {
  SHOAL_ASSIGN_OR_RETURN(uint64_t v, GetVarint());
  if (v > max) {
    return Error(std::string(field) + " = " + std::to_string(v) +
                 " exceeds the limit " + std::to_string(max));
  }
  return v;
}

Result<ByteSpan> ByteReader::GetBytes(size_t n) {
  if (remaining() < n) {
    return Error("truncated: need " + std::to_string(n) + " bytes, have " +
                 std::to_string(remaining()));
  }
  ByteSpan out(data_ + pos_, n);
  pos_ += n;
  return out;
}

Result<std::string_view> ByteReader::GetLengthPrefixed(size_t max_length) {
  SHOAL_ASSIGN_OR_RETURN(uint64_t n, GetVarintAtMost(max_length, "length"));
  SHOAL_ASSIGN_OR_RETURN(ByteSpan bytes, GetBytes(n));
  return AsStringView(bytes);
}

Status ByteReader::Skip(size_t n) { return GetBytes(n).status(); }

Status ByteReader::Error(std::string_view message) const {
  return Corruption(std::string(what_) + ": " + std::string(message) +
                    " at byte " + std::to_string(pos_));
}

uint64_t Checksum64(ByteSpan bytes) { return Xxh3(bytes.data(), bytes.size()); }

std::string HexString(ByteSpan bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::byte b : bytes) {
    out.push_back(kDigits[static_cast<uint8_t>(b) >> 4]);
    out.push_back(kDigits[static_cast<uint8_t>(b) & 15]);
  }
  return out;
}

std::string Hex64(uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[i] = kDigits[v & 15];
  return out;
}

}  // namespace shoal
