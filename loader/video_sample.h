// Video samples of a dataset: the probe kept in a sample's info, and a
// VideoReader over the stored file (a zero-copy slice of its chunk).
//
// Thread-safety: the functions are thread-safe (Tensor reads are); each
// VideoReader is used by one thread at a time.
#ifndef SHOAL_LOADER_VIDEO_SAMPLE_H_
#define SHOAL_LOADER_VIDEO_SAMPLE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"
#include "format/dataset.h"
#include "video/video.h"

namespace shoal {

/// The info JSON `shoal ingest videos` writes for a video: {"path": source
/// path relative to the ingested folder, "video": VideoProbeToJson(probe)}.
std::string VideoSampleInfo(std::string_view path, const VideoProbe& probe);

/// The probe in sample `index`'s info (no video bytes are read).
/// InvalidArgument for a tensor that does not hold videos; Corruption when
/// the info lacks or garbles it.
Result<VideoProbe> ReadVideoProbe(const Tensor& tensor, uint64_t index);

/// The probe from an info JSON text (as ReadVideoProbe, for callers that
/// already have the info); `where` prefixes errors.
Result<VideoProbe> VideoProbeFromInfo(std::string_view info_json,
                                      std::string_view where);

/// A reader over sample `index` of a video tensor; its errors name the
/// dataset, tensor and sample.
Result<std::unique_ptr<VideoReader>> OpenVideoSample(const Tensor& tensor,
                                                     uint64_t index);

/// "dataset 'u': tensor 't': chunk 'k': sample 7", the prefix of a video
/// sample's errors (without the chunk when `chunk_key` is empty).
std::string VideoSampleName(const Tensor& tensor, uint64_t index,
                            std::string_view chunk_key = {});

}  // namespace shoal

#endif  // SHOAL_LOADER_VIDEO_SAMPLE_H_
