// ByteCodec: lossless compression of byte strings, used for chunk blocks
// (chunk_compression) and for generic array samples (sample_compression).
//
// Codecs are named by a spec string: "raw", "lz4", "lz4hc", "lz4hc:12",
// "zstd", "zstd:19". A "+shuffle" suffix ("zstd:3+shuffle") puts a byte
// shuffle filter in front (the bytes of each element are grouped by
// significance, which helps typed arrays); its element size is passed at
// creation. Each codec is a plug-in registered by name in its own .cc file.
//
// Levels: "raw" and "lz4" take none; "lz4hc" takes 1..12 (default 9); "zstd"
// takes 1..22 and the fast levels -7..-1 (default 3; 0 is refused). spec()
// always spells the level out ("zstd" gives "zstd:3") so a stored spec keeps
// its meaning even if a default changes. The shuffle element size is not part
// of the spec: the caller derives it (e.g. from the dtype) and must pass the
// same value when decoding.
//
// Decoding treats the input as hostile: Decompress() is told the exact size
// the caller expects (from trusted-by-checksum metadata, itself capped by the
// caller) and fails with Corruption unless the input decodes to exactly that
// many bytes. It never writes outside `dst` and never allocates in proportion
// to a size found in the input.
//
// Thread-safety: ByteCodec objects are immutable; Compress and Decompress may
// run concurrently on one object.
#ifndef SHOAL_CODECS_BYTE_CODEC_H_
#define SHOAL_CODECS_BYTE_CODEC_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/buffer.h"
#include "base/registry.h"
#include "base/result.h"

namespace shoal {

class ByteCodec {
 public:
  virtual ~ByteCodec() = default;

  /// The normalized spec, e.g. "zstd:3+shuffle"; parsing it gives an equal
  /// codec.
  virtual std::string spec() const = 0;

  /// An upper bound on Compress() output for `input_size` bytes.
  virtual size_t MaxCompressedSize(size_t input_size) const = 0;

  /// Compresses `src` into `dst` (at least MaxCompressedSize(src.size())
  /// bytes) and returns the number of bytes written.
  virtual Result<size_t> Compress(ByteSpan src, MutableByteSpan dst) const = 0;

  /// Decompresses `src`, which must decode to exactly dst.size() bytes.
  virtual Status Decompress(ByteSpan src, MutableByteSpan dst) const = 0;

  /// Whether a block that compressed from `raw_size` to `compressed_size`
  /// bytes is stored compressed; if not, it is stored as it is (chunks mark
  /// each block), and reading it is a copy. By default any saving counts.
  virtual bool WorthKeeping(size_t raw_size, size_t compressed_size) const {
    return compressed_size < raw_size;
  }
};

/// Options a codec is created with.
struct ByteCodecOptions {
  /// Element size in bytes for "+shuffle" (1 makes shuffle a no-op).
  size_t element_size = 1;
};

/// Creates the codec for `spec`. InvalidArgument for an unknown name or a bad
/// level.
Result<std::shared_ptr<const ByteCodec>> MakeByteCodec(
    std::string_view spec, const ByteCodecOptions& options = {});

struct ByteCodecKind {
  static constexpr std::string_view kKind = "byte codec";
  /// `level` is the number after ':' in the spec, nullopt when absent; the
  /// factory validates it.
  using Factory = std::function<Result<std::shared_ptr<const ByteCodec>>(
      std::optional<int> level)>;
};
/// Codec implementations by name ("raw", "lz4", "lz4hc", "zstd").
using ByteCodecRegistry = Registry<ByteCodecKind>;
extern template class Registry<ByteCodecKind>;

}  // namespace shoal

#endif  // SHOAL_CODECS_BYTE_CODEC_H_
