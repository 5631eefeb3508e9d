// Saved sampler positions (EncodeSamplerState / DecodeSamplerState): the
// byte layout sampler.h specifies, checked against the sampler it is
// restored into.
#include <string>
#include <utility>

#include "base/buffer.h"
#include "base/coding.h"
#include "loader/sampler.h"

namespace shoal {
namespace {

constexpr std::string_view kStateMagic = "SHSS";
constexpr uint8_t kStateVersion = 1;

uint64_t LayoutFingerprint(const ChunkLayout& layout) {
  ByteWriter writer;
  const uint64_t chunks = layout.UsedChunks();
  for (uint64_t c = 0; c < chunks; ++c) writer.PutVarint(layout.ChunkEnd(c));
  return Checksum64(AsBytes(writer.bytes()));
}

Status Mismatch(std::string_view field, uint64_t saved, uint64_t current) {
  return InvalidArgument("sampler state was saved with " + std::string(field) +
                         " " + std::to_string(saved) +
                         ", but this sampler has " + std::to_string(current));
}

}  // namespace

std::string EncodeSamplerState(const ChunkLayout& layout,
                               const SamplerOptions& options,
                               const SamplerPosition& position) {
  ByteWriter writer;
  writer.PutBytes(kStateMagic);
  writer.PutU8(kStateVersion);
  writer.PutVarint(position.epoch);
  writer.PutVarint(position.batch);
  writer.PutVarint(options.seed);
  writer.PutVarint(layout.num_samples);
  writer.PutU64(LayoutFingerprint(layout));
  writer.PutVarint(options.batch_size);
  writer.PutU8(options.drop_last ? 1 : 0);
  writer.PutU8(static_cast<uint8_t>(options.shuffle));
  writer.PutVarint(options.shuffle_buffer);
  writer.PutVarint(options.world_size);
  writer.PutU64(Checksum64(AsBytes(writer.bytes())));
  return std::move(writer).Release();
}

Result<SamplerPosition> DecodeSamplerState(std::string_view state,
                                           const ChunkLayout& layout,
                                           const SamplerOptions& options) {
  SHOAL_RETURN_IF_ERROR(ValidateSampler(layout, options));
  if (!state.starts_with(kStateMagic)) {
    return InvalidArgument("not a shoal sampler state (bad magic)");
  }
  constexpr size_t kHeader = 5;  // magic + version
  if (state.size() < kHeader + 8) {
    return Corruption("sampler state: truncated (" +
                      std::to_string(state.size()) + " bytes)");
  }
  const auto version = static_cast<uint8_t>(state[4]);
  if (version > kStateVersion) {
    return Unimplemented("sampler state version " + std::to_string(version) +
                         " is newer than this build reads (" +
                         std::to_string(kStateVersion) + ")");
  }
  const std::string_view body = state.substr(0, state.size() - 8);
  if (!ChecksumMatches(AsBytes(body),
                       DecodeU64(AsBytes(state.substr(body.size())).data()))) {
    return Corruption("sampler state: checksum mismatch");
  }
  if (version != kStateVersion) {
    return Corruption("sampler state: bad version " + std::to_string(version));
  }

  ByteReader reader(AsBytes(body.substr(kHeader)), "sampler state");
  SamplerPosition position;
  SHOAL_ASSIGN_OR_RETURN(position.epoch, reader.GetVarint());
  SHOAL_ASSIGN_OR_RETURN(position.batch, reader.GetVarint());
  SHOAL_ASSIGN_OR_RETURN(const uint64_t seed, reader.GetVarint());
  SHOAL_ASSIGN_OR_RETURN(const uint64_t num_samples, reader.GetVarint());
  SHOAL_ASSIGN_OR_RETURN(const uint64_t fingerprint, reader.GetU64());
  SHOAL_ASSIGN_OR_RETURN(const uint64_t batch_size, reader.GetVarint());
  SHOAL_ASSIGN_OR_RETURN(const uint8_t drop_last, reader.GetU8());
  SHOAL_ASSIGN_OR_RETURN(const uint8_t shuffle, reader.GetU8());
  SHOAL_ASSIGN_OR_RETURN(const uint64_t shuffle_buffer, reader.GetVarint());
  SHOAL_ASSIGN_OR_RETURN(const uint64_t world_size, reader.GetVarint());
  if (reader.remaining() != 0) {
    return reader.Error(std::to_string(reader.remaining()) + " trailing bytes");
  }
  if (drop_last > 1) return reader.Error("drop_last is not 0 or 1");
  if (shuffle > 2) return reader.Error("unknown shuffle mode");

  if (num_samples != layout.num_samples) {
    return Mismatch("a dataset of num_samples", num_samples,
                    layout.num_samples);
  }
  if (fingerprint != LayoutFingerprint(layout)) {
    return InvalidArgument(
        "sampler state was saved for another chunk layout of the dataset "
        "(the chunk boundaries differ)");
  }
  if (seed != options.seed) return Mismatch("seed", seed, options.seed);
  if (batch_size != options.batch_size) {
    return Mismatch("batch_size", batch_size, options.batch_size);
  }
  if ((drop_last == 1) != options.drop_last) {
    return Mismatch("drop_last", drop_last, options.drop_last ? 1 : 0);
  }
  if (shuffle != static_cast<uint8_t>(options.shuffle)) {
    return InvalidArgument(
        "sampler state was saved with shuffle " +
        std::string(ShuffleModeName(static_cast<ShuffleMode>(shuffle))) +
        ", but this sampler has " +
        std::string(ShuffleModeName(options.shuffle)));
  }
  if (shuffle_buffer != options.shuffle_buffer) {
    return Mismatch("shuffle_buffer", shuffle_buffer, options.shuffle_buffer);
  }
  if (world_size != options.world_size) {
    return Mismatch("world_size", world_size, options.world_size);
  }
  const uint64_t batches = BatchesPerEpoch(num_samples, options);
  if (position.batch > batches) {
    return InvalidArgument("sampler state: batch " +
                           std::to_string(position.batch) +
                           " is past the end of the epoch (" +
                           std::to_string(batches) + " batches)");
  }
  return position;
}

std::string Sampler::State() const {
  return EncodeSamplerState(layout_, options_, position_);
}

Status Sampler::Restore(std::string_view state) {
  SHOAL_ASSIGN_OR_RETURN(SamplerPosition position,
                         DecodeSamplerState(state, layout_, options_));
  position_ = position;
  return Status::OK();
}

}  // namespace shoal
