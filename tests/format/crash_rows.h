// The rows the crash-consistency writer appends (tests/format/crash_writer.cc)
// and the crash test checks (tests/format/crash_test.cc): row i's shapes and
// bytes are a pure function of i, so the test knows every committed sample
// without talking to the killed writer.
//
// Thread-safety: pure functions.
#ifndef SHOAL_TESTS_FORMAT_CRASH_ROWS_H_
#define SHOAL_TESTS_FORMAT_CRASH_ROWS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/types.h"
#include "format/schema.h"

namespace shoal::crash_rows {

// Tensor "a": uint16 [h, w], small, with a tiled sample every 50th row.
// Tensor "b": float32 [n], n may be 0.
inline Shape ShapeA(uint64_t i) {
  if (i % 50 == 49) return Shape{40, 64};  // 5120 bytes > the 4096 threshold
  return Shape{i % 7 + 1, i % 5 + 1};
}
inline Shape ShapeB(uint64_t i) { return Shape{i % 13}; }

inline TensorSpec SpecA() {
  return {.name = "a",
          .dtype = DType::kUInt16,
          .chunk_compression = "lz4",
          .max_chunk_bytes = 4096,
          .block_bytes = 4096};
}
inline TensorSpec SpecB() {
  return {.name = "b",
          .dtype = DType::kFloat32,
          .rank = 1,
          .chunk_compression = "zstd",
          .max_chunk_bytes = 4096,
          .block_bytes = 4096};
}

inline uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// The bytes of row `i` of tensor `tensor` (0 = "a", 1 = "b").
inline std::vector<std::byte> Bytes(int tensor, uint64_t i) {
  const Shape shape = tensor == 0 ? ShapeA(i) : ShapeB(i);
  uint64_t n = tensor == 0 ? 2 : 4;
  for (uint64_t d : shape.dims()) n *= d;
  std::vector<std::byte> out(n);
  const uint64_t h = Mix(i * 2 + static_cast<uint64_t>(tensor));
  for (size_t k = 0; k < n; ++k) {
    out[k] =
        static_cast<std::byte>((k % 3 == 0 ? Mix(h + k) : h + k / 4) & 0xff);
  }
  return out;
}

}  // namespace shoal::crash_rows

#endif  // SHOAL_TESTS_FORMAT_CRASH_ROWS_H_
