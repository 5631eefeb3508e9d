// Byte shuffle filter (as in Blosc): groups the bytes of fixed-size elements
// by significance so that a general-purpose compressor sees long runs of
// similar bytes (the high bytes of a float ramp are nearly constant). Used by
// the "+shuffle" spec suffix.
//
// Layout, for n bytes and element size t: the first (n / t) * t bytes are
// transposed (byte j of element i goes to position j * (n / t) + i); the last
// n % t bytes are copied unchanged.
//
// Thread-safety: the functions are stateless; the codec made by
// MakeShuffleCodec is immutable and, like every ByteCodec, may be used from
// several threads at once.
#ifndef SHOAL_CODECS_INTERNAL_SHUFFLE_H_
#define SHOAL_CODECS_INTERNAL_SHUFFLE_H_

#include <cstddef>
#include <memory>

#include "base/buffer.h"
#include "base/result.h"
#include "codecs/byte_codec.h"

namespace shoal::internal {

/// Largest element size the shuffle codec accepts (a complex128 / 16 bytes).
inline constexpr size_t kMaxShuffleElementSize = 16;

/// Shuffles `src` into `dst`. Preconditions: dst.size() == src.size(),
/// element_size >= 1, and the spans do not overlap.
void ShuffleBytes(ByteSpan src, MutableByteSpan dst, size_t element_size);

/// The inverse of ShuffleBytes, with the same preconditions.
void UnshuffleBytes(ByteSpan src, MutableByteSpan dst, size_t element_size);

/// A codec that shuffles with `element_size` and then applies `inner`.
/// InvalidArgument unless 1 <= element_size <= kMaxShuffleElementSize.
///
/// Each thread keeps one scratch buffer, as large as the largest input it has
/// shuffled, so steady-state calls do not allocate; that memory stays with
/// the thread until it exits and is not charged to a MemoryBudget.
Result<std::shared_ptr<const ByteCodec>> MakeShuffleCodec(
    std::shared_ptr<const ByteCodec> inner, size_t element_size);

}  // namespace shoal::internal

#endif  // SHOAL_CODECS_INTERNAL_SHUFFLE_H_
