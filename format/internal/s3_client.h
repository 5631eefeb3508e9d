// S3Client: signed, retried requests to one S3 bucket, the request layer of
// the s3:// store (format/internal/s3_store.cc), which maps the Store
// contract onto them. Requests are signed with AWS Signature Version 4
// (format/internal/sigv4.h), anew for each attempt, and sent over
// HttpClient (format/internal/http_client.h). 500/502/503/504, SlowDown and
// transport failures are retried with exponential backoff and jitter, at
// most kAttempts times and for at most kRetry's time; 403 and 404 never.
//
// Thread-safety: all methods are const and thread-safe (HttpClient is).
#ifndef SHOAL_FORMAT_INTERNAL_S3_CLIENT_H_
#define SHOAL_FORMAT_INTERNAL_S3_CLIENT_H_

#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "format/internal/http_client.h"
#include "format/internal/s3_location.h"

namespace shoal::internal {

class S3Client {
 public:
  using Pairs = std::vector<std::pair<std::string, std::string>>;

  explicit S3Client(const S3Location& where);

  /// "BUCKET/PREFIX/KEY" with the scheme, for messages.
  std::string Where(std::string_view key) const;
  /// The object's key in the bucket: the store's key under the prefix.
  std::string ObjectKey(std::string_view key) const;
  const std::string& bucket() const { return bucket_; }
  const std::string& prefix() const { return prefix_; }
  /// "s3://BUCKET" or "gs://BUCKET", for messages.
  std::string name() const { return name_ + bucket_; }

  /// An error answer as a Status naming `op`, bucket, key, HTTP status, S3
  /// error code and the server's request id (404: NotFound, 403:
  /// FailedPrecondition, else IOError).
  Status Error(std::string_view op, std::string_view key,
               const HttpResponse& r) const;

  /// A request ready to be signed: signed anew for every attempt, since a
  /// signature carries its time.
  struct Prepared {
    std::string method;
    std::string path;
    std::string query_text;
    Pairs query;
    Pairs headers;
    ByteSpan body;
    std::string payload;  // SHA-256 of the body, hex
  };
  /// `object_path` "/KEY" (under the prefix already), or empty for the
  /// bucket itself.
  Prepared Prepare(std::string_view method, const std::string& object_path,
                   Pairs query, Pairs headers, ByteSpan body) const;

  /// One request on the object `key` (validated), retried.
  Result<HttpResponse> Call(std::string_view method, std::string_view key,
                            Pairs query, Pairs headers, ByteSpan body) const;
  /// One request on the bucket, retried.
  Result<HttpResponse> CallBucket(std::string_view method, Pairs query) const;
  /// Many requests at once: up to kRequestsInFlight in flight, each retried
  /// on its own; one answer per request, in order. Bodies go into buffers
  /// from `allocate`.
  std::vector<Result<HttpResponse>> SendMany(
      std::span<const Prepared> prepared,
      const BufferAllocator& allocate = {}) const;

 private:
  Result<HttpResponse> Send(std::string_view method,
                            const std::string& object_path, Pairs query,
                            Pairs headers, ByteSpan body) const;
  HttpRequest Sign(const Prepared& p) const;

  std::string name_;  // "s3://" or "gs://", for messages
  std::string bucket_;
  std::string prefix_;
  std::string region_;
  AwsCredentials credentials_;
  std::string scheme_;
  std::string host_;
  bool path_style_ = false;
  HttpClient http_;
};

}  // namespace shoal::internal

#endif  // SHOAL_FORMAT_INTERNAL_S3_CLIENT_H_
