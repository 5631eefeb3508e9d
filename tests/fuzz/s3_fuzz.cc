// libFuzzer target for what the s3:// store takes from a server or a URL:
// S3's XML answers (ListObjectsV2 pages, Error documents, multipart
// answers; format/internal/s3_xml.h) and SigV4's canonicalisation of
// hostile paths, queries and headers (format/internal/sigv4.h). Each must
// answer any input without a crash, hang or huge allocation (run under
// ASan/UBSan by `make fuzz`).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "format/internal/s3_xml.h"
#include "format/internal/sigv4.h"

using namespace shoal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ByteSpan bytes(reinterpret_cast<const std::byte*>(data), size);
  (void)internal::ParseS3Error(bytes);
  (void)internal::ParseS3ListPage(bytes);
  (void)internal::ParseS3UploadId(bytes);

  // The same bytes as a request to sign: newline-separated path, query
  // names and values, header names and values.
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string fields[6];
  size_t at = 0;
  for (std::string& f : fields) {
    const size_t end = text.find('\n', at);
    f = std::string(text.substr(
        at, end == std::string_view::npos ? std::string_view::npos : end - at));
    if (end == std::string_view::npos) break;
    at = end + 1;
  }
  internal::SigV4Request request{
      .method = "GET",
      .host = "bucket.example",
      .path = "/" + fields[0],
      .query = {{fields[1], fields[2]}, {fields[2], fields[1]}},
      .headers = {{fields[3], fields[4]}, {"x-amz-meta-a", fields[5]}},
      .payload_sha256 = internal::Sha256Hex(bytes)};
  const internal::AwsCredentials credentials{.access_key_id = "AKID",
                                             .secret_access_key = fields[5]};
  (void)internal::SignV4(request, credentials, "us-east-1", "s3",
                         "20260101T000000Z");
  (void)internal::UriEncode(text, true);
  return 0;
}
