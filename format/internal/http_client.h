// A small HTTP/1.1 client over libcurl for the object stores: a pool of
// easy handles, each keeping its connections open between requests, so
// that many requests run at once (one per calling thread) and none pays for
// a new connection; SendAll() keeps many requests in flight from one thread
// (curl's multi interface, whose handles are pooled too, each with its
// connections); connect and stall timeouts; the response body written
// straight into one buffer.
//
// Transport failures (refused, reset, timed out) come back as IOError
// naming the URL; HTTP statuses, errors included, come back as responses:
// what a status means is the caller's (the S3 store) to say.
//
// Thread-safety: Send() may be called from any number of threads at once.
#ifndef SHOAL_FORMAT_INTERNAL_HTTP_CLIENT_H_
#define SHOAL_FORMAT_INTERNAL_HTTP_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"

namespace shoal::internal {

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  ByteSpan body;
  /// The body is at most this long (a ranged GET knows its length); a
  /// longer one is an error rather than an allocation.
  uint64_t max_body = uint64_t{1} << 34;
  /// Where the response body goes (e.g. recycled buffers: fresh memory for
  /// every chunk costs the kernel's page work); default: fresh memory.
  BufferAllocator allocate;
};

struct HttpResponse {
  long status = 0;
  /// Lower-case names.
  std::map<std::string, std::string> headers;
  Buffer body;
};

struct HttpOptions {
  /// Time to set up a connection.
  long connect_timeout_ms = 5000;
  /// A transfer slower than `low_speed_bytes` per second for this long is
  /// abandoned (a stalled server), whatever the object's size.
  long low_speed_seconds = 20;
  long low_speed_bytes = 1024;
};

/// How requests that may pass on a second try are retried.
struct RetryPolicy {
  std::chrono::milliseconds first_wait;
  std::chrono::milliseconds max_wait;
  /// No retry starts later than this after the first attempt.
  std::chrono::milliseconds total;
};

/// Exponential backoff with full jitter: each wait is random, up to a bound
/// that doubles, so that many clients pushed back at once do not come back
/// at once. One per request (or set of requests); not thread-safe.
class RetryBackoff {
 public:
  explicit RetryBackoff(const RetryPolicy& policy);
  /// Whether another wait still ends within the policy's total time.
  bool more() const;
  void Wait();

 private:
  RetryPolicy policy_;
  std::mt19937_64 jitter_;
  std::chrono::milliseconds bound_;
  std::chrono::steady_clock::time_point give_up_;
};

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  Result<HttpResponse> Send(const HttpRequest& request) const;
  /// Sends every request, at most `max_in_flight` at once, and returns
  /// their results in the same order. The latency of a store is paid once
  /// for a whole set of reads rather than once each.
  std::vector<Result<HttpResponse>> SendAll(
      std::span<const HttpRequest> requests, size_t max_in_flight) const;

 private:
  struct Handle;
  struct Exchange;
  std::unique_ptr<Handle> Take() const;
  void Give(std::unique_ptr<Handle> handle) const;
  void Setup(Exchange& e, const HttpRequest& request) const;
  Result<HttpResponse> Finish(Exchange& e, const HttpRequest& request,
                              int code) const;
  void* TakeMulti() const;
  void GiveMulti(void* multi) const;

  HttpOptions options_;
  mutable std::mutex mu_;
  mutable std::vector<std::unique_ptr<Handle>> idle_;
  mutable std::vector<void*> idle_multi_;  // CURLM*
};

}  // namespace shoal::internal

#endif  // SHOAL_FORMAT_INTERNAL_HTTP_CLIENT_H_
