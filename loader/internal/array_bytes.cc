#include "loader/internal/array_bytes.h"

#include <algorithm>
#include <limits>

namespace shoal::internal {

std::optional<uint64_t> CheckedByteSize(std::span<const uint64_t> dims,
                                        DType dtype) {
  if (std::find(dims.begin(), dims.end(), 0) != dims.end()) return 0;
  uint64_t bytes = DTypeSize(dtype);
  for (const uint64_t dim : dims) {
    if (bytes > std::numeric_limits<uint64_t>::max() / dim) return std::nullopt;
    bytes *= dim;
  }
  return bytes;
}

void SwapElementBytes(MutableByteSpan data, size_t element_size) {
  if (element_size <= 1) return;
  for (size_t i = 0; i + element_size <= data.size(); i += element_size) {
    std::reverse(data.begin() + i, data.begin() + i + element_size);
  }
}

}  // namespace shoal::internal
