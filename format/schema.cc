#include "format/schema.h"

#include <nlohmann/json.hpp>

#include "codecs/byte_codec.h"
#include "format/internal/sample_codec.h"

namespace shoal {
namespace {

struct HTypeInfo {
  HType htype;
  std::string_view name;
  std::optional<DType> default_dtype;
  int default_rank;
};

constexpr HTypeInfo kHTypes[] = {
    {HType::kGeneric, "generic", std::nullopt, -1},
    {HType::kClassLabel, "class_label", DType::kUInt32, -1},
    {HType::kImage, "image", DType::kUInt8, 3},
    {HType::kVideo, "video", DType::kUInt8, 4},
    {HType::kText, "text", DType::kUInt8, 1},
    {HType::kJson, "json", DType::kUInt8, 1},
    {HType::kBBox, "bbox", DType::kFloat32, 2},
    {HType::kEmbedding, "embedding", DType::kFloat32, 1},
};

const HTypeInfo& Info(HType htype) {
  for (const auto& info : kHTypes) {
    if (info.htype == htype) return info;
  }
  return kHTypes[0];
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

}  // namespace

std::string_view HTypeName(HType htype) { return Info(htype).name; }

Result<HType> ParseHType(std::string_view name) {
  for (const auto& info : kHTypes) {
    if (info.name == name) return info.htype;
  }
  return InvalidArgument("unknown htype '" + std::string(name) +
                         "' (expected generic, class_label, image, video, "
                         "text, json, bbox or embedding)");
}

Status ValidateTensorName(std::string_view name) {
  auto bad = [&](std::string_view why) {
    return InvalidArgument("invalid tensor name '" + std::string(name) +
                           "': " + std::string(why));
  };
  if (name.empty()) return bad("empty");
  if (name.size() > 255) return bad("longer than 255 characters");
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view part = name.substr(start, end - start);
    if (part.empty())
      return bad("empty group component (leading, trailing or double '/')");
    if (part == "." || part == "..") return bad("'.' and '..' are not names");
    if (part[0] == '_')
      return bad("names starting with '_' are reserved for hidden tensors");
    if (part[0] == '.') return bad("components must not start with '.'");
    for (char c : part) {
      if (!IsNameChar(c)) {
        return bad("only letters, digits, '_', '-', '.' and '/' are allowed");
      }
    }
    start = end + 1;
  }
  return Status::OK();
}

Result<TensorSpec> NormalizeTensorSpec(TensorSpec spec) {
  const std::string where = "tensor '" + spec.name + "'";
  const HTypeInfo& info = Info(spec.htype);
  if (!spec.dtype) spec.dtype = info.default_dtype;
  if (!spec.dtype) {
    return InvalidArgument(where + ": a generic tensor needs a dtype");
  }
  if (spec.rank == -1) spec.rank = info.default_rank;
  if (spec.rank < -1 || spec.rank > static_cast<int>(Shape::kMaxRank)) {
    return InvalidArgument(where +
                           ": rank must be -1 (from the first sample) "
                           "or 0.." +
                           std::to_string(Shape::kMaxRank));
  }
  switch (spec.htype) {
    case HType::kClassLabel:
      if (!IsIntegerDType(*spec.dtype)) {
        return InvalidArgument(where + ": class_label needs an integer dtype");
      }
      break;
    case HType::kImage:
      if (*spec.dtype != DType::kUInt8 && *spec.dtype != DType::kUInt16) {
        return InvalidArgument(where + ": image needs dtype uint8 or uint16");
      }
      if (spec.rank != 3)
        return InvalidArgument(where +
                               ": image samples are [H, W, C] (rank 3)");
      break;
    case HType::kVideo:
      if (*spec.dtype != DType::kUInt8 || spec.rank != 4) {
        return InvalidArgument(
            where + ": video samples are [frames, H, W, 3] uint8 (rank 4)");
      }
      // Videos are never tiled: a frame range is read by seeking in the
      // file, which needs the whole file in one piece.
      if (internal::SampleCodec::IsVideoCodec(spec.sample_compression)) {
        spec.tiling_threshold = kNoTiling;
      }
      break;
    case HType::kText:
    case HType::kJson:
      if (*spec.dtype != DType::kUInt8 || spec.rank != 1) {
        return InvalidArgument(
            where + ": text and json samples are rank-1 uint8 bytes");
      }
      break;
    case HType::kBBox:
    case HType::kEmbedding:
    case HType::kGeneric:
      break;
  }
  if (!spec.info.empty()) {
    const auto info =
        nlohmann::json::parse(spec.info, nullptr, /*allow_exceptions=*/false);
    if (info.is_discarded() || !info.is_object()) {
      return InvalidArgument("tensor '" + spec.name +
                             "': info must be a JSON object");
    }
    spec.info = info.dump();
  }
  if (!spec.class_names.empty() && spec.htype != HType::kClassLabel) {
    return InvalidArgument(where +
                           ": class_names are only for class_label tensors");
  }
  if (!spec.sample_compression.empty() && !spec.chunk_compression.empty()) {
    return InvalidArgument(where +
                           ": sample_compression and chunk_compression "
                           "exclude each other");
  }
  if (spec.chunk_compression == "raw" || spec.chunk_compression == "none") {
    spec.chunk_compression.clear();
  }
  if (spec.sample_compression == "raw" || spec.sample_compression == "none") {
    spec.sample_compression.clear();
  }
  // Parse the specs now so a typo fails at creation, not at the first flush;
  // keep the canonical spelling ("zstd" -> "zstd:3").
  const ByteCodecOptions codec_options{DTypeSize(*spec.dtype)};
  if (internal::SampleCodec::IsVideoCodec(spec.sample_compression) &&
      spec.htype != HType::kVideo) {
    return InvalidArgument(where + ": sample_compression '" +
                           spec.sample_compression + "' is for video tensors");
  }
  if (internal::SampleCodec::IsImageCodec(spec.sample_compression)) {
    if (spec.htype != HType::kImage) {
      return InvalidArgument(where + ": sample_compression '" +
                             spec.sample_compression +
                             "' is for image tensors");
    }
    if (spec.sample_compression == "jpeg" && *spec.dtype != DType::kUInt8) {
      return InvalidArgument(where + ": jpeg images are uint8");
    }
  }
  for (std::string* codec :
       {&spec.sample_compression, &spec.chunk_compression}) {
    if (codec->empty()) continue;
    if (codec == &spec.sample_compression &&
        (internal::SampleCodec::IsImageCodec(*codec) ||
         internal::SampleCodec::IsVideoCodec(*codec)))
      continue;
    auto made = MakeByteCodec(*codec, codec_options);
    if (!made.ok()) return made.status().WithContext(where);
    *codec = (*made)->spec();
  }
  if (spec.max_chunk_bytes < 4096 || spec.max_chunk_bytes > (1ull << 31)) {
    return InvalidArgument(where + ": max_chunk_bytes must be 4 KiB .. 2 GiB");
  }
  if (spec.block_bytes < 4096 || spec.block_bytes > (16ull << 20)) {
    return InvalidArgument(where + ": block_bytes must be 4 KiB .. 16 MiB");
  }
  if (spec.tiling_threshold == 0) spec.tiling_threshold = spec.max_chunk_bytes;
  return spec;
}

}  // namespace shoal
