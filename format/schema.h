// The schema of a dataset: what each tensor (column) holds and how it is
// stored. A TensorSpec is what a user passes to Dataset::CreateTensor; after
// creation it is fixed and recorded in the dataset's metadata.
//
// Thread-safety: plain values.
#ifndef SHOAL_FORMAT_SCHEMA_H_
#define SHOAL_FORMAT_SCHEMA_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/types.h"

namespace shoal {

/// What a tensor's samples mean. It picks defaults (dtype, rank) and checks
/// appended samples; the stored values do not depend on it otherwise.
enum class HType : uint8_t {
  kGeneric,     // any array; dtype required
  kClassLabel,  // integer class indices; default uint32; class_names optional
  kImage,       // [H, W, C] uint8 (or uint16); C in 1..4
  kVideo,       // [frames, H, W, 3] uint8
  kText,        // UTF-8 bytes, rank 1 uint8
  kJson,        // a JSON document as UTF-8 bytes, rank 1 uint8
  kBBox,        // [N, 4] float32 boxes
  kEmbedding,   // [D] float32 vectors
};

std::string_view HTypeName(HType htype);
Result<HType> ParseHType(std::string_view name);

inline constexpr uint64_t kDefaultMaxChunkBytes = 8ull << 20;
inline constexpr uint64_t kDefaultBlockBytes = 128ull << 10;
/// Samples above this many raw bytes are tiled when the spec leaves
/// tiling_threshold at 0 (= "same as max_chunk_bytes").
inline constexpr uint64_t kNoTiling = UINT64_MAX;

struct TensorSpec {
  /// "labels", or "group/name". Components: letters, digits, '_', '-', '.';
  /// not starting with '_' (reserved for hidden tensors) nor '.'.
  std::string name;
  HType htype = HType::kGeneric;
  /// Element type; when unset, the htype's default (generic has none).
  std::optional<DType> dtype;
  /// Number of dimensions of every sample; -1 takes it from the first
  /// sample appended. Image defaults to 3, text/json/embedding to 1, bbox 2.
  int rank = -1;
  /// Per-sample compression: "" (none), a byte codec spec ("lz4",
  /// "zstd:3"), or for image tensors an image codec: "jpeg", "png", or
  /// "image" (each sample in whichever image format it came; pixels
  /// appended as arrays are stored as PNG). Excludes chunk_compression.
  std::string sample_compression;
  /// Block-wise chunk compression: "" (none) or a byte codec spec ("lz4",
  /// "zstd:3", "zstd:3+shuffle"). Excludes sample_compression.
  std::string chunk_compression;
  /// Target size of a chunk's sample data (a chunk is closed before it
  /// would grow past this).
  uint64_t max_chunk_bytes = kDefaultMaxChunkBytes;
  /// Uncompressed bytes per block of a chunk (also the granularity of
  /// checksums and of partial reads). 4 KiB .. 16 MiB.
  uint64_t block_bytes = kDefaultBlockBytes;
  /// Samples with more raw bytes than this are split into tiles, each in its
  /// own chunk. 0 means max_chunk_bytes; kNoTiling never tiles.
  uint64_t tiling_threshold = 0;
  /// Tiles of a sample of rank >= 3 hold one element of the last dimension
  /// each: the channels of a large (tiled) image are stored as planes, as
  /// c-blosc based image stores keep them. Reads return the usual
  /// interleaved [..., C] layout either way; untiled samples are not
  /// affected. Off by default: on photos it compressed less and read slower
  /// (benchmarks/RESULTS.md, issue 16).
  bool planar = false;
  /// Names of the classes of a class_label tensor (index = label value).
  std::vector<std::string> class_names;
  /// Facts about the tensor as a whole, a JSON object ("" for none): e.g.
  /// where its samples came from, recorded once rather than per sample.
  std::string info;
};

/// InvalidArgument naming the problem unless `name` is a valid user tensor
/// name (see TensorSpec::name).
Status ValidateTensorName(std::string_view name);

/// Fills defaults (dtype and rank from the htype, tiling threshold) and
/// checks the combination; InvalidArgument naming the tensor otherwise.
Result<TensorSpec> NormalizeTensorSpec(TensorSpec spec);

}  // namespace shoal

#endif  // SHOAL_FORMAT_SCHEMA_H_
