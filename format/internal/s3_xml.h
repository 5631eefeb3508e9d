// What the s3:// store reads out of S3's XML answers: ListObjectsV2 pages,
// Error documents and the answers of a multipart upload, parsed with
// libxml2 (no network access, no entity expansion). Pure functions of the
// bytes, so that they can be fuzzed alone (tests/fuzz/s3_xml_fuzz.cc).
// Thread-safe.
#ifndef SHOAL_FORMAT_INTERNAL_S3_XML_H_
#define SHOAL_FORMAT_INTERNAL_S3_XML_H_

#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/status.h"

namespace shoal::internal {

/// The fields of an <Error> document (or of any document that has them);
/// empty where the body is not XML or lacks them.
struct S3ErrorFields {
  bool is_error = false;  // the root element is <Error>
  std::string code;
  std::string message;
  std::string request_id;
};
S3ErrorFields ParseS3Error(ByteSpan body);

/// One page of a ListObjectsV2 answer: the keys as the server sent them.
struct S3ListPage {
  std::vector<std::string> keys;
  bool truncated = false;
  std::string continuation_token;
};
/// Corruption when the body is not XML, or is truncated without a
/// continuation token.
Result<S3ListPage> ParseS3ListPage(ByteSpan body);

/// The UploadId of an InitiateMultipartUploadResult; empty when missing.
std::string ParseS3UploadId(ByteSpan body);

}  // namespace shoal::internal

#endif  // SHOAL_FORMAT_INTERNAL_S3_XML_H_
