// libFuzzer target for the format's decoders of stored bytes: chunk headers
// and blocks, chunk indexes, dataset metadata (and merging writers' segments
// into it) and HEAD / commit objects. Each must answer any
// input with a Status, never a crash, hang or huge allocation (run under
// ASan/UBSan by `make fuzz`).
#include <cstddef>
#include <cstdint>

#include "codecs/byte_codec.h"
#include "format/chunk.h"
#include "format/internal/metadata.h"

using namespace shoal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ByteSpan bytes(reinterpret_cast<const std::byte*>(data), size);

  // A chunk: the header, then every block through the codec it names.
  if (auto header = ChunkHeader::Decode(bytes, size); header.ok()) {
    const ChunkHeader& h = **header;
    std::shared_ptr<const ByteCodec> codec;
    if (!h.format().chunk_codec.empty()) {
      auto made = MakeByteCodec(h.format().chunk_codec,
                                {DTypeSize(h.format().dtype)});
      if (made.ok()) codec = *made;
    }
    // Decode only plausible sizes: the header is checksummed, so a fuzzer
    // that forges a valid one may claim big blocks legitimately.
    if (!h.blocks().empty() && h.data_size() <= (64u << 20) &&
        (codec || h.format().chunk_codec.empty())) {
      const Buffer stored = Buffer::CopyOf(bytes.subspan(h.header_size()));
      (void)DecodeBlocks(h, 0, h.blocks().size() - 1, stored, codec.get());
    }
    for (uint64_t i = 0; i < h.num_samples() && i < 1000; ++i) {
      (void)h.layout().shape(i);
      (void)h.layout().range(i);
    }
  }
  for (uint8_t rank = 0; rank <= 3; ++rank) {
    (void)internal::TensorIndex::Decode(bytes, rank);
  }
  // Metadata (version 1, or 2 with writer segments): decoded, merged as a
  // writer's commit would merge it, and encoded again.
  if (auto meta = internal::DecodeDatasetMeta(bytes); meta.ok()) {
    auto merged = internal::MergeWriter(*meta, *meta, 1);
    if (merged.ok()) {
      (void)internal::DecodeDatasetMeta(
          AsBytes(internal::EncodeDatasetMeta(*merged)));
    }
  }
  // HEAD and commit objects share a payload.
  (void)internal::DecodeHead(bytes);
  return 0;
}
