// libFuzzer target for the video reader: arbitrary bytes as a video file
// (probe, then decode a few frames by index, forwards and backwards) and as
// the frame-index JSON kept in a sample's info. Any outcome but a crash,
// hang, leak or sanitizer report is fine. FFmpeg itself (Debian's build) is
// not instrumented; shoal's wrapper code is.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "video/video.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)shoal::VideoProbeFromJson(text);

  const shoal::Buffer bytes = shoal::Buffer::CopyOf(text);
  // Small limits keep frames cheap to decode whatever the header claims.
  auto probe = shoal::ProbeVideo(bytes, "fuzz",
                                 {.max_width = 512, .max_height = 512,
                                  .max_frames = 2000});
  if (!probe.ok()) return 0;
  // The JSON form of a real probe must parse back to it.
  auto back = shoal::VideoProbeFromJson(shoal::VideoProbeToJson(*probe));
  if (!back.ok() || !(*back == *probe)) __builtin_trap();
  auto reader = shoal::VideoReader::Open(bytes, *probe, "fuzz");
  if (!reader.ok()) return 0;
  const uint64_t n = (*reader)->frame_count();
  const std::vector<uint64_t> frames = {n - 1, 0, n / 2, n - 1};
  const shoal::VideoReadOptions options{.height = 16, .width = 16};
  std::vector<std::byte> out(frames.size() * (*reader)->FrameBytes(options));
  (void)(*reader)->ReadFrames(frames, options, out);
  return 0;
}
