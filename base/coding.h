// Little-endian fixed-width and LEB128 varint encoding, and a bounds-checked
// reader for decoding untrusted bytes.
//
// Every decoder of stored bytes goes through ByteReader, so a truncated or
// size-lying object becomes a Corruption status instead of an out-of-bounds
// read. format/FORMAT.md defines the on-disk encodings in these terms.
//
// Thread-safety: ByteWriter and ByteReader are single-owner values.
#ifndef SHOAL_BASE_CODING_H_
#define SHOAL_BASE_CODING_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "base/buffer.h"

namespace shoal {

/// Appends encoded values to a growing byte string.
class ByteWriter {
 public:
  void PutU8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void PutU16(uint16_t v) { PutLittleEndian(v, 2); }
  void PutU32(uint32_t v) { PutLittleEndian(v, 4); }
  void PutU64(uint64_t v) { PutLittleEndian(v, 8); }
  /// Unsigned LEB128: 7 bits a byte, low bits first, high bit = more follows.
  void PutVarint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void PutBytes(ByteSpan bytes) {
    out_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  void PutBytes(std::string_view bytes) { out_.append(bytes); }
  /// A varint length followed by the bytes.
  void PutLengthPrefixed(std::string_view bytes) {
    PutVarint(bytes.size());
    out_.append(bytes);
  }
  /// Overwrites 4 bytes at `offset` (for lengths known only at the end).
  void PatchU32(size_t offset, uint32_t v) {
    for (int i = 0; i < 4; ++i)
      out_[offset + i] = static_cast<char>(v >> (8 * i));
  }

  size_t size() const { return out_.size(); }
  const std::string& bytes() const { return out_; }
  std::string Release() && { return std::move(out_); }

 private:
  void PutLittleEndian(uint64_t v, int width) {
    for (int i = 0; i < width; ++i)
      out_.push_back(static_cast<char>(v >> (8 * i)));
  }
  std::string out_;
};

/// Reads encoded values from untrusted bytes. Every getter fails with
/// Corruption naming `what` (e.g. "chunk header") instead of reading past
/// the end. `what` is not copied: pass a string that outlives the reader.
class ByteReader {
 public:
  ByteReader(ByteSpan bytes, std::string_view what)
      : data_(bytes.data()), size_(bytes.size()), what_(what) {}

  size_t position() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  Result<uint8_t> GetU8() { return GetLittleEndian<uint8_t>(1); }
  Result<uint16_t> GetU16() { return GetLittleEndian<uint16_t>(2); }
  Result<uint32_t> GetU32() { return GetLittleEndian<uint32_t>(4); }
  Result<uint64_t> GetU64() { return GetLittleEndian<uint64_t>(8); }
  Result<uint64_t> GetVarint();
  /// A varint that must not exceed `max` (e.g. a count that sizes a vector).
  Result<uint64_t> GetVarintAtMost(uint64_t max, std::string_view field);
  Result<ByteSpan> GetBytes(size_t n);
  Result<std::string_view> GetLengthPrefixed(size_t max_length);
  Status Skip(size_t n);

  /// Corruption("<what>: <message> at byte <position>").
  Status Error(std::string_view message) const;

 private:
  template <typename T>
  Result<T> GetLittleEndian(int width) {
    if (remaining() < static_cast<size_t>(width)) return Error("truncated");
    uint64_t v = 0;
    for (int i = 0; i < width; ++i) {
      v |= static_cast<uint64_t>(data_[pos_ + i]) << (8 * i);
    }
    pos_ += width;
    return static_cast<T>(v);
  }

  const std::byte* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string_view what_;
};

inline uint32_t DecodeU32(const std::byte* src) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(src[i]) << (8 * i);
  return v;
}
inline uint64_t DecodeU64(const std::byte* src) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(src[i]) << (8 * i);
  return v;
}

/// XXH3-64 (seed 0) of `bytes`: the checksum of every stored object.
uint64_t Checksum64(ByteSpan bytes);

/// Whether `bytes` have the checksum `expected`. Fuzzing builds
/// (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, the libFuzzer convention)
/// accept any checksum, so that mutated inputs reach the parsers behind it.
inline bool ChecksumMatches(ByteSpan bytes, uint64_t expected) {
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  (void)bytes;
  (void)expected;
  return true;
#else
  return Checksum64(bytes) == expected;
#endif
}

/// Lower-case hex of `bytes`.
std::string HexString(ByteSpan bytes);
/// 16 lower-case hex digits of `v`.
std::string Hex64(uint64_t v);

}  // namespace shoal

#endif  // SHOAL_BASE_CODING_H_
