#include "base/types.h"

#include <cstdlib>
#include <limits>

namespace shoal {
namespace {

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;
  std::string_view numpy;
  bool integer;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kBool, "bool", 1, "|b1", false},
    {DType::kUInt8, "uint8", 1, "|u1", true},
    {DType::kUInt16, "uint16", 2, "<u2", true},
    {DType::kUInt32, "uint32", 4, "<u4", true},
    {DType::kUInt64, "uint64", 8, "<u8", true},
    {DType::kInt8, "int8", 1, "|i1", true},
    {DType::kInt16, "int16", 2, "<i2", true},
    {DType::kInt32, "int32", 4, "<i4", true},
    {DType::kInt64, "int64", 8, "<i8", true},
    {DType::kFloat16, "float16", 2, "<f2", false},
    {DType::kFloat32, "float32", 4, "<f4", false},
    {DType::kFloat64, "float64", 8, "<f8", false},
};

const DTypeInfo& Info(DType dtype) {
  for (const auto& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  std::abort();  // Every enumerator is in the table.
}

}  // namespace

size_t DTypeSize(DType dtype) { return Info(dtype).size; }
std::string_view DTypeName(DType dtype) { return Info(dtype).name; }
std::string_view DTypeNumpyDescr(DType dtype) { return Info(dtype).numpy; }
bool IsIntegerDType(DType dtype) { return Info(dtype).integer; }

Result<DType> ParseDType(std::string_view name) {
  for (const auto& info : kDTypes) {
    if (info.name == name) return info.dtype;
  }
  return InvalidArgument("unknown dtype '" + std::string(name) +
                         "' (expected bool, uint8..uint64, int8..int64, "
                         "float16, float32 or float64)");
}

Result<DType> DTypeFromCode(uint8_t code) {
  for (const auto& info : kDTypes) {
    if (static_cast<uint8_t>(info.dtype) == code) return info.dtype;
  }
  return Corruption("unknown dtype code " + std::to_string(code));
}

Shape::Shape(std::initializer_list<uint64_t> dims)
    : Shape(std::span<const uint64_t>(dims.begin(), dims.size())) {}

Shape::Shape(std::span<const uint64_t> dims) {
  if (dims.size() > kMaxRank) std::abort();
  rank_ = dims.size();
  for (size_t i = 0; i < rank_; ++i) dims_[i] = dims[i];
}

Result<Shape> Shape::Make(std::span<const uint64_t> dims) {
  if (dims.size() > kMaxRank) {
    return InvalidArgument("rank " + std::to_string(dims.size()) +
                           " exceeds the maximum of " +
                           std::to_string(kMaxRank));
  }
  return Shape(dims);
}

Shape Shape::Zeros(size_t rank) {
  Shape s;
  s.rank_ = rank < kMaxRank ? rank : kMaxRank;
  return s;
}

uint64_t Shape::num_elements() const {
  for (size_t i = 0; i < rank_; ++i) {
    if (dims_[i] == 0) return 0;
  }
  uint64_t n = 1;
  for (size_t i = 0; i < rank_; ++i) {
    if (n > std::numeric_limits<uint64_t>::max() / dims_[i]) {
      return std::numeric_limits<uint64_t>::max();
    }
    n *= dims_[i];
  }
  return n;
}

Result<uint64_t> Shape::ByteSize(DType dtype) const {
  // Checked product (num_elements() saturates, which would hide overflow).
  uint64_t n = DTypeSize(dtype);
  for (size_t i = 0; i < rank_; ++i) {
    if (dims_[i] == 0) return 0;
  }
  for (size_t i = 0; i < rank_; ++i) {
    if (n > std::numeric_limits<uint64_t>::max() / dims_[i]) {
      return ResourceExhausted("shape " + ToString() + " of " +
                               std::string(DTypeName(dtype)) +
                               " overflows 64 bits");
    }
    n *= dims_[i];
  }
  return n;
}

std::string Shape::ToString() const {
  std::string out = "[";
  for (size_t i = 0; i < rank_; ++i) {
    if (i) out += ", ";
    out += std::to_string(dims_[i]);
  }
  return out + "]";
}

bool Shape::operator==(const Shape& other) const {
  if (rank_ != other.rank_) return false;
  for (size_t i = 0; i < rank_; ++i) {
    if (dims_[i] != other.dims_[i]) return false;
  }
  return true;
}

}  // namespace shoal
