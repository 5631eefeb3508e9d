// AWS Signature Version 4, as S3 and S3-compatible servers check it: the
// canonical request, the string to sign, the signing key and the
// Authorization header, with OpenSSL's SHA-256 and HMAC. Tested against
// AWS's published vectors (tests/format/sigv4_test.cc).
//
// The canonical URI is S3's: the object key URI-encoded once, '/' kept, no
// path normalisation (other AWS services normalise and encode twice).
//
// Thread-safety: the functions are reentrant.
#ifndef SHOAL_FORMAT_INTERNAL_SIGV4_H_
#define SHOAL_FORMAT_INTERNAL_SIGV4_H_

#include <chrono>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/buffer.h"

namespace shoal::internal {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  /// Temporary credentials' token (sent and signed as
  /// x-amz-security-token); empty for long-term keys.
  std::string session_token;
};

struct SigV4Request {
  std::string method;  // "GET", "PUT", ...
  /// The Host header: "bucket.s3.us-east-1.amazonaws.com", "127.0.0.1:9000".
  std::string host;
  /// The path as sent, not yet encoded: "/bucket/key with spaces".
  std::string path;
  /// Query parameters, not yet encoded, in any order ("lifecycle" has an
  /// empty value).
  std::vector<std::pair<std::string, std::string>> query;
  /// Headers to sign besides host and x-amz-date (which the signer adds),
  /// e.g. x-amz-content-sha256, range, if-none-match. Names in any case.
  std::vector<std::pair<std::string, std::string>> headers;
  /// Hex SHA-256 of the body, or "UNSIGNED-PAYLOAD".
  std::string payload_sha256;
};

struct SigV4Signature {
  std::string canonical_request;
  std::string string_to_sign;
  /// Hex HMAC of the string to sign.
  std::string signature;
  /// The Authorization header's value.
  std::string authorization;
  /// Every header the request must carry for the signature to hold, the
  /// signed ones and Authorization (Host is the caller's to send).
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Signs `request` at `amz_date` ("20130524T000000Z") for `region` and
/// `service` ("s3").
SigV4Signature SignV4(const SigV4Request& request,
                      const AwsCredentials& credentials,
                      std::string_view region, std::string_view service,
                      std::string_view amz_date);

/// RFC 3986 encoding as SigV4 wants it: unreserved characters stay, every
/// other byte becomes %XX (upper-case hex); '/' stays unless `encode_slash`.
std::string UriEncode(std::string_view text, bool encode_slash);
/// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(ByteSpan data);
/// Whether `etag` (as S3 answers it, quoted or not) names an object made of
/// `data`: its MD5 (one PUT; s3rver for multipart objects too), or S3's
/// multipart form, the MD5 of the parts' MD5s and "-" their count, the parts'
/// ETags as their PUTs answered. How a client whose answer to
/// CompleteMultipartUpload was lost learns that the upload went through.
bool EtagMatches(std::string_view etag, ByteSpan data,
                 std::span<const std::string> part_etags);
/// "20130524T000000Z" for `when` (UTC).
std::string AmzDate(std::chrono::system_clock::time_point when);

}  // namespace shoal::internal

#endif  // SHOAL_FORMAT_INTERNAL_SIGV4_H_
