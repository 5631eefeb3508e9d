// Element types (DType) and sample shapes (Shape): the vocabulary that the
// format, the codecs and the loader share to describe an array.
//
// Shape holds its dimensions inline (no heap allocation), so describing a
// sample on a hot path costs nothing.
//
// Thread-safety: plain values.
#ifndef SHOAL_BASE_TYPES_H_
#define SHOAL_BASE_TYPES_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"

namespace shoal {

/// Element type of a tensor. The numeric values are stored on disk; never
/// renumber them.
enum class DType : uint8_t {
  kBool = 1,
  kUInt8 = 2,
  kUInt16 = 3,
  kUInt32 = 4,
  kUInt64 = 5,
  kInt8 = 6,
  kInt16 = 7,
  kInt32 = 8,
  kInt64 = 9,
  kFloat16 = 10,
  kFloat32 = 11,
  kFloat64 = 12,
};

/// Bytes per element (bool is one byte).
size_t DTypeSize(DType dtype);
/// "bool", "uint8", ..., "float64": the names used in metadata and the CLI.
std::string_view DTypeName(DType dtype);
Result<DType> ParseDType(std::string_view name);
/// For a dtype code read from disk.
Result<DType> DTypeFromCode(uint8_t code);
/// The NumPy array-interface descriptor, e.g. "<f4", "|u1", "|b1".
std::string_view DTypeNumpyDescr(DType dtype);
bool IsIntegerDType(DType dtype);

/// The dimensions of one sample (or tile, or batch). Rank is at most
/// kMaxRank. A rank-0 shape is a scalar of one element.
class Shape {
 public:
  static constexpr size_t kMaxRank = 8;

  Shape() = default;
  /// Precondition: dims.size() <= kMaxRank (aborts otherwise; use Make for
  /// untrusted input).
  Shape(std::initializer_list<uint64_t> dims);
  explicit Shape(std::span<const uint64_t> dims);
  /// InvalidArgument when there are more than kMaxRank dimensions.
  static Result<Shape> Make(std::span<const uint64_t> dims);
  /// A shape of `rank` zeros: the shape of an empty (padded) sample.
  static Shape Zeros(size_t rank);

  size_t rank() const { return rank_; }
  uint64_t operator[](size_t i) const { return dims_[i]; }
  uint64_t& operator[](size_t i) { return dims_[i]; }
  std::span<const uint64_t> dims() const { return {dims_.data(), rank_}; }
  /// Product of the dimensions (1 for rank 0). Saturates at UINT64_MAX.
  uint64_t num_elements() const;
  /// num_elements() * DTypeSize(dtype), or ResourceExhausted on overflow.
  Result<uint64_t> ByteSize(DType dtype) const;

  /// "[28, 28]".
  std::string ToString() const;

  bool operator==(const Shape& other) const;
  bool operator!=(const Shape& other) const { return !(*this == other); }

 private:
  std::array<uint64_t, kMaxRank> dims_{};
  size_t rank_ = 0;
};

}  // namespace shoal

#endif  // SHOAL_BASE_TYPES_H_
