// Where an s3:// or gs:// URL points and how to reach it: the bucket, the
// prefix, the endpoint, region and credentials (from the URL's query and the
// AWS tools' environment variables) and the multipart settings. Not
// installed.
//
//   s3://BUCKET/PREFIX[?endpoint=URL&region=R&path_style=true|false
//                       &multipart_threshold=BYTES&part_size=BYTES]
//
// Settings are read as the AWS tools read them: AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION or AWS_DEFAULT_REGION
// (default us-east-1), AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL for an
// S3-compatible server; the URL's query overrides them. With an endpoint,
// requests are path-style (ENDPOINT/BUCKET/KEY); without, virtual-hosted
// (https://BUCKET.s3.REGION.amazonaws.com/KEY).
#ifndef SHOAL_FORMAT_INTERNAL_S3_LOCATION_H_
#define SHOAL_FORMAT_INTERNAL_S3_LOCATION_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "format/internal/sigv4.h"

namespace shoal::internal {

struct S3Location {
  std::string scheme;  // "s3" or "gs"
  std::string url;     // as opened, "s3://BUCKET/PREFIX?..."
  std::string bucket;
  std::string prefix;    // no trailing '/'
  std::string endpoint;  // empty: AWS's own, virtual-hosted
  std::string region;
  bool path_style = false;
  AwsCredentials credentials;
  /// Objects above this many bytes are uploaded in parts of `part_size`.
  uint64_t multipart_threshold = uint64_t{64} << 20;
  uint64_t part_size = uint64_t{16} << 20;
};

/// Parses "BUCKET/PREFIX?name=value&..." (the URL after "scheme://").
/// `scheme` is "s3" or "gs" (Google Cloud Storage's S3-compatible XML API:
/// the same requests, another default endpoint and region).
/// InvalidArgument for a missing bucket or an unknown option;
/// FailedPrecondition without credentials.
Result<S3Location> ParseS3Location(std::string_view scheme,
                                   std::string_view location);

}  // namespace shoal::internal

#endif  // SHOAL_FORMAT_INTERNAL_S3_LOCATION_H_
