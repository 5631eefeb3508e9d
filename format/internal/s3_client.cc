#include "format/internal/s3_client.h"

#include <chrono>
#include <optional>

#include "format/internal/s3_xml.h"
#include "format/internal/sigv4.h"
#include "format/store.h"

namespace shoal::internal {
namespace {

constexpr int kAttempts = 6;
// Waits of 50 ms doubling up to 2 s; no retry starts 30 s after the first.
constexpr RetryPolicy kRetry{std::chrono::milliseconds(50),
                             std::chrono::milliseconds(2000),
                             std::chrono::seconds(30)};
// Requests of one SendMany() call in flight at once: enough to cover a
// round trip of tens of milliseconds at the rate one machine decodes, few
// enough not to look like a flood to the server.
constexpr size_t kRequestsInFlight = 32;

// The body is looked at only for a 400: copying every answer's body to
// search it cost more CPU than reading it (measured: 6 % of a loader's
// time over s3://).
bool Retryable(long status, std::string_view body) {
  return status == 500 || status == 502 || status == 503 || status == 504 ||
         (status == 400 && body.find("SlowDown") != std::string_view::npos);
}

// Whether an attempt may pass on a second try.
bool Again(const Result<HttpResponse>& r) {
  return !r.ok() ? r.status().code() == StatusCode::kIOError
                 : Retryable(r->status, r->body.view());
}

}  // namespace

S3Client::S3Client(const S3Location& where)
    : name_(where.scheme + "://"),
      bucket_(where.bucket),
      prefix_(where.prefix),
      region_(where.region),
      credentials_(where.credentials) {
  const std::string& endpoint = where.endpoint;
  if (endpoint.empty()) {
    scheme_ = "https";
    host_ = where.path_style ? "s3." + region_ + ".amazonaws.com"
                             : bucket_ + ".s3." + region_ + ".amazonaws.com";
  } else {
    const size_t sep = endpoint.find("://");
    scheme_ = sep == std::string::npos ? "https" : endpoint.substr(0, sep);
    host_ = sep == std::string::npos ? endpoint : endpoint.substr(sep + 3);
    while (!host_.empty() && host_.back() == '/') host_.pop_back();
  }
  path_style_ = where.path_style || !endpoint.empty();
}

std::string S3Client::Where(std::string_view key) const {
  return name_ + bucket_ + "/" + ObjectKey(key);
}

std::string S3Client::ObjectKey(std::string_view key) const {
  return prefix_.empty() ? std::string(key) : prefix_ + "/" + std::string(key);
}

Status S3Client::Error(std::string_view op, std::string_view key,
                       const HttpResponse& r) const {
  S3ErrorFields e = ParseS3Error(r.body.span());
  if (auto it = r.headers.find("x-amz-request-id"); it != r.headers.end())
    e.request_id = it->second;
  std::string what =
      std::string(op) + " " + Where(key) + ": HTTP " + std::to_string(r.status);
  if (!e.code.empty()) what += " " + e.code;
  if (!e.message.empty()) what += " (" + e.message + ")";
  if (!e.request_id.empty()) what += ", request id " + e.request_id;
  if (r.status == 404) return NotFound(what);
  if (r.status == 403) return FailedPrecondition(what + ": access denied");
  return IOError(what);
}

S3Client::Prepared S3Client::Prepare(std::string_view method,
                                     const std::string& object_path,
                                     Pairs query, Pairs headers,
                                     ByteSpan body) const {
  Prepared p;
  p.method = std::string(method);
  p.path = (path_style_ ? "/" + bucket_ : std::string()) +
           (object_path.empty() ? "/" : object_path);
  for (const auto& [name, value] : query) {
    p.query_text += (p.query_text.empty() ? "?" : "&") + UriEncode(name, true) +
                    "=" + UriEncode(value, true);
  }
  p.query = std::move(query);
  p.payload = Sha256Hex(body);
  headers.emplace_back("x-amz-content-sha256", p.payload);
  p.headers = std::move(headers);
  p.body = body;
  return p;
}

HttpRequest S3Client::Sign(const Prepared& p) const {
  SigV4Request signing{.method = p.method,
                       .host = host_,
                       .path = p.path,
                       .query = p.query,
                       .headers = p.headers,
                       .payload_sha256 = p.payload};
  const SigV4Signature signature =
      SignV4(signing, credentials_, region_, "s3",
             AmzDate(std::chrono::system_clock::now()));
  HttpRequest request;
  request.method = p.method;
  request.url =
      scheme_ + "://" + host_ + UriEncode(p.path, false) + p.query_text;
  request.headers = signature.headers;
  request.body = p.body;
  return request;
}

Result<HttpResponse> S3Client::Call(std::string_view method,
                                    std::string_view key, Pairs query,
                                    Pairs headers, ByteSpan body) const {
  SHOAL_RETURN_IF_ERROR(ValidateStoreKey(key));
  return Send(method, "/" + ObjectKey(key), std::move(query),
              std::move(headers), body);
}

Result<HttpResponse> S3Client::CallBucket(std::string_view method,
                                          Pairs query) const {
  return Send(method, "", std::move(query), {}, {});
}

Result<HttpResponse> S3Client::Send(std::string_view method,
                                    const std::string& object_path, Pairs query,
                                    Pairs headers, ByteSpan body) const {
  const Prepared p =
      Prepare(method, object_path, std::move(query), std::move(headers), body);
  RetryBackoff backoff(kRetry);
  for (int attempt = 1;; ++attempt) {
    Result<HttpResponse> r = http_.Send(Sign(p));
    if (!Again(r) || attempt == kAttempts || !backoff.more()) {
      if (!r.ok()) {
        return r.status().WithContext(name() + " after " +
                                      std::to_string(attempt) + " attempt(s)");
      }
      return r;
    }
    backoff.Wait();
  }
}

std::vector<Result<HttpResponse>> S3Client::SendMany(
    std::span<const Prepared> prepared, const BufferAllocator& allocate) const {
  std::vector<std::optional<Result<HttpResponse>>> done(prepared.size());
  std::vector<size_t> pending(prepared.size());
  for (size_t i = 0; i < pending.size(); ++i) pending[i] = i;
  RetryBackoff backoff(kRetry);
  std::vector<HttpRequest> requests;
  for (int attempt = 1; !pending.empty(); ++attempt) {
    requests.clear();
    for (size_t i : pending) {
      requests.push_back(Sign(prepared[i]));
      requests.back().allocate = allocate;
    }
    std::vector<Result<HttpResponse>> sent =
        http_.SendAll(requests, kRequestsInFlight);
    std::vector<size_t> again;
    for (size_t k = 0; k < pending.size(); ++k) {
      const size_t i = pending[k];
      if (Again(sent[k]) && attempt < kAttempts && backoff.more()) {
        again.push_back(i);
      } else if (!sent[k].ok()) {
        done[i] = sent[k].status().WithContext(
            name() + " after " + std::to_string(attempt) + " attempt(s)");
      } else {
        done[i] = std::move(sent[k]);
      }
    }
    pending = std::move(again);
    if (!pending.empty()) backoff.Wait();
  }
  std::vector<Result<HttpResponse>> out;
  out.reserve(done.size());
  for (auto& d : done) out.push_back(std::move(*d));
  return out;
}

}  // namespace shoal::internal
