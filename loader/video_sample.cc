#include "loader/video_sample.h"

#include <nlohmann/json.hpp>

namespace shoal {

std::string VideoSampleInfo(std::string_view path, const VideoProbe& probe) {
  return "{\"path\": " + nlohmann::json(std::string(path)).dump() +
         ", \"video\": " + VideoProbeToJson(probe) + "}";
}

std::string VideoSampleName(const Tensor& tensor, uint64_t index,
                            std::string_view chunk_key) {
  std::string name = tensor.where();
  if (!chunk_key.empty()) name += ": chunk '" + std::string(chunk_key) + "'";
  return name + ": sample " + std::to_string(index);
}

Result<VideoProbe> VideoProbeFromInfo(std::string_view info_json,
                                      std::string_view where) {
  const nlohmann::json info = nlohmann::json::parse(info_json, nullptr, false);
  if (info.is_discarded() || !info.is_object() || !info.contains("video") ||
      !info["video"].is_object()) {
    return Corruption(std::string(where) +
                      ": the sample's info has no video frame index (was it "
                      "ingested with `shoal ingest videos`?)");
  }
  auto probe = VideoProbeFromJson(info["video"].dump());
  if (!probe.ok()) return probe.status().WithContext(where);
  return probe;
}

Result<VideoProbe> ReadVideoProbe(const Tensor& tensor, uint64_t index) {
  if (tensor.htype() != HType::kVideo ||
      tensor.spec().sample_compression != "mp4") {
    return InvalidArgument(tensor.where() +
                           ": not a video tensor (htype video, "
                           "sample_compression mp4)");
  }
  SHOAL_ASSIGN_OR_RETURN(std::string info, tensor.ReadInfo(index));
  return VideoProbeFromInfo(info, VideoSampleName(tensor, index));
}

Result<std::unique_ptr<VideoReader>> OpenVideoSample(const Tensor& tensor,
                                                     uint64_t index) {
  SHOAL_ASSIGN_OR_RETURN(VideoProbe probe, ReadVideoProbe(tensor, index));
  SHOAL_ASSIGN_OR_RETURN(Buffer file, tensor.ReadStored(index));
  std::string chunk;
  for (const TensorExtent& e : tensor.Extents()) {
    if (e.first_sample <= index && index < e.first_sample + e.num_samples) {
      chunk = e.chunk_key;
      break;
    }
  }
  return VideoReader::Open(std::move(file), std::move(probe),
                           VideoSampleName(tensor, index, chunk));
}

}  // namespace shoal
