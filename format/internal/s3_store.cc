// The s3:// store (format/store.h): objects of an S3 bucket under a prefix,
// over HTTP (format/internal/http_client.h) with SigV4 signatures
// (format/internal/sigv4.h). Registered as "s3", and as "gs" for Google
// Cloud Storage's S3-compatible XML API (HMAC keys in AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY; endpoint https://storage.googleapis.com and region
// "auto" unless the URL says otherwise). The URL and the settings it reads:
// format/internal/s3_location.h.
//
// Contract mapping: Write and WriteAtomic are PUTs (S3 makes an object
// visible whole, and durable, when the PUT returns); WriteIfAbsent is a PUT
// with If-None-Match: * (412 = AlreadyExists, unless the object holds these
// very bytes: a retry whose first attempt went through); Sync has nothing to
// do.
// Delete reports NotFound for a missing key (S3's DELETE does not say, so it
// asks first); DeleteMany does not ask. ReadRanges, ReadMany, WriteMany and
// DeleteMany have their requests in flight together.
// Errors name the bucket, the key, the HTTP status and the server's request
// id. 500/502/503/504, SlowDown and transport failures are retried with
// exponential backoff and jitter (internal::RetryBackoff), at most kAttempts
// times and for at most kRetry's time; 403 and 404 never.
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <optional>

#include "format/internal/http_client.h"
#include "format/internal/s3_location.h"
#include "format/internal/s3_xml.h"
#include "format/internal/sigv4.h"
#include "format/store.h"

namespace shoal {
namespace {

using internal::AwsCredentials;
using internal::HttpClient;
using internal::HttpRequest;
using internal::HttpResponse;

constexpr int kAttempts = 6;
// Waits of 50 ms doubling up to 2 s; no retry starts 30 s after the first.
constexpr internal::RetryPolicy kRetry{std::chrono::milliseconds(50),
                                       std::chrono::milliseconds(2000),
                                       std::chrono::seconds(30)};
// Requests of one ReadRanges(), ReadMany(), WriteMany() or DeleteMany()
// call in flight at once: enough to cover a round trip of tens of
// milliseconds at the rate one machine decodes, few enough not to look like
// a flood to the server.
constexpr size_t kRequestsInFlight = 32;

class S3Store final : public Store {
 public:
  explicit S3Store(internal::S3Location where)
      : name_(where.scheme + "://"),
        url_(std::move(where.url)),
        bucket_(std::move(where.bucket)),
        prefix_(std::move(where.prefix)),
        region_(std::move(where.region)),
        credentials_(std::move(where.credentials)),
        multipart_threshold_(where.multipart_threshold),
        part_size_(where.part_size) {
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
  std::string url() const override { return url_; }
  int useful_reads_in_flight() const override { return 64; }  // hides latency

  Result<Buffer> Read(std::string_view key) const override {
    SHOAL_ASSIGN_OR_RETURN(HttpResponse r, Call("GET", key, {}, {}, {}));
    if (r.status != 200) return Error("GET", key, r);
    return std::move(r.body);
  }

  Result<Buffer> ReadRange(std::string_view key, uint64_t offset,
                           uint64_t length) const override {
    if (length == 0) {
      SHOAL_ASSIGN_OR_RETURN(uint64_t size, Size(key));
      if (offset > size) return RangeError(key, offset, length, size);
      return Buffer();
    }
    if (offset > UINT64_MAX - length) {
      return OutOfRange(Where(key) + ": range overflows");
    }
    SHOAL_ASSIGN_OR_RETURN(
        HttpResponse r,
        Call("GET", key, {}, {{"range", RangeHeader(offset, length)}}, {}));
    return RangeBody(key, offset, length, r);
  }

  // The GETs go out together (GetMany).
  std::vector<Result<Buffer>> ReadRanges(
      std::span<const RangeRead> ranges,
      const BufferAllocator& allocate = {}) const override {
    return GetMany(
        ranges.size(),
        [&](size_t i) -> std::optional<Prepared> {
          const RangeRead& r = ranges[i];
          if (r.length == 0 || r.offset > UINT64_MAX - r.length ||
              !ValidateStoreKey(r.key).ok()) {
            return std::nullopt;
          }
          return Prepare("GET", "/" + ObjectKey(r.key), {},
                         {{"range", RangeHeader(r.offset, r.length)}}, {});
        },
        [&](size_t i) {
          return ReadRange(ranges[i].key, ranges[i].offset, ranges[i].length);
        },
        [&](size_t i, HttpResponse& r) {
          return RangeBody(ranges[i].key, ranges[i].offset, ranges[i].length,
                           r);
        },
        allocate);
  }

  std::vector<Result<Buffer>> ReadMany(
      std::span<const std::string_view> keys) const override {
    return GetMany(
        keys.size(),
        [&](size_t i) -> std::optional<Prepared> {
          if (!ValidateStoreKey(keys[i]).ok()) return std::nullopt;
          return Prepare("GET", "/" + ObjectKey(keys[i]), {}, {}, {});
        },
        [&](size_t i) { return Read(keys[i]); },
        [&](size_t i, HttpResponse& r) -> Result<Buffer> {
          if (r.status != 200) return Error("GET", keys[i], r);
          return std::move(r.body);
        });
  }

  // The PUTs go out together; an object for a multipart upload goes alone.
  std::vector<Status> WriteMany(std::span<const ObjectWrite> writes) override {
    std::vector<Status> out(writes.size());
    std::vector<Prepared> prepared;
    std::vector<std::pair<size_t, std::string_view>> sent_for;
    for (size_t i = 0; i < writes.size(); ++i) {
      const ObjectWrite& w = writes[i];
      if (w.data.size() > multipart_threshold_ ||
          !ValidateStoreKey(w.key).ok()) {
        out[i] = Write(w.key, w.data);
        continue;
      }
      prepared.push_back(
          Prepare("PUT", "/" + ObjectKey(w.key), {}, {}, w.data));
      sent_for.emplace_back(i, w.key);
    }
    SendForStatus("PUT", prepared, sent_for, {200}, out);
    return out;
  }

  // The DELETEs go out together, without Delete()'s existence check: S3
  // answers 204 for a missing key, which DeleteMany() counts as done.
  std::vector<Status> DeleteMany(std::span<const std::string> keys) override {
    std::vector<Status> out(keys.size());
    std::vector<Prepared> prepared;
    std::vector<std::pair<size_t, std::string_view>> sent_for;
    for (size_t i = 0; i < keys.size(); ++i) {
      out[i] = ValidateStoreKey(keys[i]);
      if (!out[i].ok()) continue;
      prepared.push_back(
          Prepare("DELETE", "/" + ObjectKey(keys[i]), {}, {}, {}));
      sent_for.emplace_back(i, keys[i]);
    }
    SendForStatus("DELETE", prepared, sent_for, {200, 204, 404}, out);
    return out;
  }

  Result<uint64_t> Size(std::string_view key) const override {
    SHOAL_ASSIGN_OR_RETURN(HttpResponse r, Call("HEAD", key, {}, {}, {}));
    if (r.status != 200) return Error("HEAD", key, r);
    auto it = r.headers.find("content-length");
    if (it == r.headers.end()) {
      return Corruption(Where(key) + ": HEAD without Content-Length");
    }
    return std::strtoull(it->second.c_str(), nullptr, 10);
  }

  Result<bool> Exists(std::string_view key) const override {
    SHOAL_ASSIGN_OR_RETURN(HttpResponse r, Call("HEAD", key, {}, {}, {}));
    if (r.status == 404) return false;
    if (r.status != 200) return Error("HEAD", key, r);
    return true;
  }

  Status Write(std::string_view key, ByteSpan data) override {
    SHOAL_RETURN_IF_ERROR(ValidateStoreKey(key));
    if (data.size() > multipart_threshold_) return PutMultipart(key, data);
    SHOAL_ASSIGN_OR_RETURN(HttpResponse r, Call("PUT", key, {}, {}, data));
    if (r.status != 200) return Error("PUT", key, r);
    return Status::OK();
  }
  Status WriteAtomic(std::string_view key, ByteSpan data) override {
    return Write(key, data);
  }
  Status WriteIfAbsent(std::string_view key, ByteSpan data) override {
    SHOAL_RETURN_IF_ERROR(ValidateStoreKey(key));
    SHOAL_ASSIGN_OR_RETURN(
        HttpResponse r, Call("PUT", key, {}, {{"if-none-match", "*"}}, data));
    if (r.status == 412 || r.status == 409) {
      // A retry whose first attempt went through finds these very bytes.
      auto there = Read(key);
      if (there.ok() && there->view() == AsStringView(data)) return Status();
      return AlreadyExists(Where(key) + " already exists");
    }
    if (r.status != 200) return Error("PUT", key, r);
    return Status::OK();
  }
  Status Sync() override { return Status::OK(); }

  Result<std::vector<std::string>> List(
      std::string_view prefix) const override {
    std::vector<std::string> keys;
    std::string token;
    const std::string full = prefix_.empty()
                                 ? std::string(prefix)
                                 : prefix_ + "/" + std::string(prefix);
    while (true) {
      std::vector<std::pair<std::string, std::string>> query = {
          {"list-type", "2"}, {"prefix", full}};
      if (!token.empty()) query.emplace_back("continuation-token", token);
      SHOAL_ASSIGN_OR_RETURN(HttpResponse r,
                             CallBucket("GET", std::move(query)));
      if (r.status != 200) return Error("LIST", prefix, r);
      auto page = internal::ParseS3ListPage(r.body.span());
      if (!page.ok()) {
        return page.status().WithContext(name_ + bucket_ + ": LIST prefix '" +
                                         full + "'");
      }
      for (std::string& key : page->keys) {
        if (!prefix_.empty()) {
          if (!key.starts_with(prefix_ + "/")) continue;
          key.erase(0, prefix_.size() + 1);
        }
        keys.push_back(std::move(key));
      }
      if (!page->truncated) break;
      token = std::move(page->continuation_token);
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  Status Delete(std::string_view key) override {
    SHOAL_ASSIGN_OR_RETURN(bool exists, Exists(key));
    if (!exists) return NotFound(Where(key) + ": no such object");
    SHOAL_ASSIGN_OR_RETURN(HttpResponse r, Call("DELETE", key, {}, {}, {}));
    if (r.status != 204 && r.status != 200) return Error("DELETE", key, r);
    return Status::OK();
  }

 private:
  // An object larger than the threshold goes up in parts (S3 takes at most
  // 5 GB in one PUT, and a failed part is retried alone): initiate, the
  // parts (in flight together, SendMany), complete; a failure aborts the
  // upload, so no parts are left behind to be billed. The object appears only
  // at the completion.
  Status PutMultipart(std::string_view key, ByteSpan data) {
    SHOAL_ASSIGN_OR_RETURN(HttpResponse init,
                           Call("POST", key, {{"uploads", ""}}, {}, {}));
    if (init.status != 200) return Error("POST ?uploads", key, init);
    const std::string upload_id = internal::ParseS3UploadId(init.body.span());
    if (upload_id.empty()) {
      return Corruption(Where(key) +
                        ": no UploadId in the answer to POST ?uploads");
    }
    std::vector<Prepared> parts;
    for (uint64_t offset = 0; offset < data.size(); offset += part_size_) {
      const uint64_t n = std::min<uint64_t>(part_size_, data.size() - offset);
      parts.push_back(Prepare("PUT", "/" + ObjectKey(key),
                              {{"partNumber", std::to_string(parts.size() + 1)},
                               {"uploadId", upload_id}},
                              {}, data.subspan(offset, n)));
    }
    std::vector<Result<HttpResponse>> sent = SendMany(parts);
    std::string complete = "<CompleteMultipartUpload>";
    std::vector<std::string> etags;
    Status failure;
    for (size_t k = 0; k < sent.size() && failure.ok(); ++k) {
      const std::string part = std::to_string(k + 1);
      if (!sent[k].ok()) {
        failure = sent[k].status();
      } else if (sent[k]->status != 200) {
        failure = Error("PUT part " + part, key, *sent[k]);
      } else {
        etags.push_back(sent[k]->headers["etag"]);
        complete += "<Part><PartNumber>" + part + "</PartNumber><ETag>" +
                    etags.back() + "</ETag></Part>";
      }
    }
    if (failure.ok()) {
      complete += "</CompleteMultipartUpload>";
      auto done =
          Call("POST", key, {{"uploadId", upload_id}},
               {{"content-type", "application/xml"}}, AsBytes(complete));
      if (!done.ok()) {
        failure = done.status();
      } else if (done->status != 200) {
        failure = Error("POST ?uploadId", key, *done);
      } else {
        // S3 may answer 200 and still fail, with an Error document.
        const internal::S3ErrorFields error =
            internal::ParseS3Error(done->body.span());
        if (error.is_error) {
          failure = IOError(Where(key) + ": completing the upload failed: " +
                            error.code + " (" + error.message + ")");
        } else {
          return Status::OK();
        }
      }
      // When the answer to a completion that went through is lost, its
      // retry finds the upload gone (S3: 404 NoSuchUpload; s3rver: 500):
      // the object itself tells.
      auto head = Call("HEAD", key, {}, {}, {});
      if (head.ok() && head->status == 200 &&
          head->headers["content-length"] == std::to_string(data.size()) &&
          internal::EtagMatches(head->headers["etag"], data, etags)) {
        return Status::OK();
      }
    }
    (void)Call("DELETE", key, {{"uploadId", upload_id}}, {}, {});
    return failure;
  }

  std::string Where(std::string_view key) const {
    return name_ + bucket_ + "/" + ObjectKey(key);
  }
  std::string ObjectKey(std::string_view key) const {
    return prefix_.empty() ? std::string(key)
                           : prefix_ + "/" + std::string(key);
  }

  Status RangeError(std::string_view key, uint64_t offset, uint64_t length,
                    uint64_t size) const {
    return OutOfRange(Where(key) + ": bytes [" + std::to_string(offset) +
                      ", +" + std::to_string(length) + ") pass the end (" +
                      std::to_string(size) + " bytes)");
  }

  // An error response as a Status naming bucket, key, status and request id.
  Status Error(std::string_view op, std::string_view key,
               const HttpResponse& r) const {
    internal::S3ErrorFields e = internal::ParseS3Error(r.body.span());
    if (auto it = r.headers.find("x-amz-request-id"); it != r.headers.end())
      e.request_id = it->second;
    std::string what = std::string(op) + " " + Where(key) + ": HTTP " +
                       std::to_string(r.status);
    if (!e.code.empty()) what += " " + e.code;
    if (!e.message.empty()) what += " (" + e.message + ")";
    if (!e.request_id.empty()) what += ", request id " + e.request_id;
    if (r.status == 404) return NotFound(what);
    if (r.status == 403) return FailedPrecondition(what + ": access denied");
    return IOError(what);
  }

  // The body is looked at only for a 400: copying every answer's body to
  // search it cost more CPU than reading it (measured: 6 % of a loader's
  // time over s3://).
  static bool Retryable(long status, std::string_view body) {
    return status == 500 || status == 502 || status == 503 || status == 504 ||
           (status == 400 && body.find("SlowDown") != std::string_view::npos);
  }

  Result<HttpResponse> Call(
      std::string_view method, std::string_view key,
      std::vector<std::pair<std::string, std::string>> query,
      std::vector<std::pair<std::string, std::string>> headers,
      ByteSpan body) const {
    SHOAL_RETURN_IF_ERROR(ValidateStoreKey(key));
    return Send(method, "/" + ObjectKey(key), std::move(query),
                std::move(headers), body);
  }
  Result<HttpResponse> CallBucket(
      std::string_view method,
      std::vector<std::pair<std::string, std::string>> query) const {
    return Send(method, "", std::move(query), {}, {});
  }

  // A request ready to be signed: signed anew for every attempt, since a
  // signature carries its time.
  struct Prepared {
    std::string method;
    std::string path;
    std::string query_text;
    std::vector<std::pair<std::string, std::string>> query;
    std::vector<std::pair<std::string, std::string>> headers;
    ByteSpan body;
    std::string payload;  // SHA-256 of the body, hex
  };

  Prepared Prepare(std::string_view method, const std::string& object_path,
                   std::vector<std::pair<std::string, std::string>> query,
                   std::vector<std::pair<std::string, std::string>> headers,
                   ByteSpan body) const {
    Prepared p;
    p.method = std::string(method);
    p.path = (path_style_ ? "/" + bucket_ : std::string()) +
             (object_path.empty() ? "/" : object_path);
    for (const auto& [name, value] : query) {
      p.query_text += (p.query_text.empty() ? "?" : "&") +
                      internal::UriEncode(name, true) + "=" +
                      internal::UriEncode(value, true);
    }
    p.query = std::move(query);
    p.payload = internal::Sha256Hex(body);
    headers.emplace_back("x-amz-content-sha256", p.payload);
    p.headers = std::move(headers);
    p.body = body;
    return p;
  }

  HttpRequest Sign(const Prepared& p) const {
    internal::SigV4Request signing{.method = p.method,
                                   .host = host_,
                                   .path = p.path,
                                   .query = p.query,
                                   .headers = p.headers,
                                   .payload_sha256 = p.payload};
    const internal::SigV4Signature signature =
        internal::SignV4(signing, credentials_, region_, "s3",
                         internal::AmzDate(std::chrono::system_clock::now()));
    HttpRequest request;
    request.method = p.method;
    request.url = scheme_ + "://" + host_ + internal::UriEncode(p.path, false) +
                  p.query_text;
    request.headers = signature.headers;
    request.body = p.body;
    return request;
  }

  // Whether an attempt may pass on a second try.
  static bool Again(const Result<HttpResponse>& r) {
    return !r.ok() ? r.status().code() == StatusCode::kIOError
                   : Retryable(r->status, r->body.view());
  }

  // Signs and sends, retrying what may pass on a second try.
  Result<HttpResponse> Send(
      std::string_view method, const std::string& object_path,
      std::vector<std::pair<std::string, std::string>> query,
      std::vector<std::pair<std::string, std::string>> headers,
      ByteSpan body) const {
    const Prepared p = Prepare(method, object_path, std::move(query),
                               std::move(headers), body);
    internal::RetryBackoff backoff(kRetry);
    for (int attempt = 1;; ++attempt) {
      Result<HttpResponse> r = http_.Send(Sign(p));
      if (!Again(r) || attempt == kAttempts || !backoff.more()) {
        if (!r.ok()) {
          return r.status().WithContext(name_ + bucket_ + " after " +
                                        std::to_string(attempt) +
                                        " attempt(s)");
        }
        return r;
      }
      backoff.Wait();
    }
  }

  // Reads 0 .. n-1 in flight together (SendMany): `prepare(i)` gives read
  // i's request, or nothing when it cannot be sent (an invalid key or
  // range), and then `alone(i)` says what is wrong; `answer(i, response)`
  // turns a response into the read's result.
  template <typename PrepareFn, typename AloneFn, typename AnswerFn>
  std::vector<Result<Buffer>> GetMany(
      size_t n, PrepareFn prepare, AloneFn alone, AnswerFn answer,
      const BufferAllocator& allocate = {}) const {
    std::vector<std::optional<Result<Buffer>>> done(n);
    std::vector<Prepared> prepared;
    std::vector<size_t> sent_for;  // prepared[k] is read sent_for[k]
    for (size_t i = 0; i < n; ++i) {
      std::optional<Prepared> p = prepare(i);
      if (!p) {
        done[i] = alone(i);
        continue;
      }
      prepared.push_back(std::move(*p));
      sent_for.push_back(i);
    }
    std::vector<Result<HttpResponse>> sent = SendMany(prepared, allocate);
    for (size_t k = 0; k < sent.size(); ++k) {
      done[sent_for[k]] = sent[k].ok() ? answer(sent_for[k], *sent[k])
                                       : Result<Buffer>(sent[k].status());
    }
    std::vector<Result<Buffer>> out;
    out.reserve(n);
    for (auto& d : done) out.push_back(std::move(*d));
    return out;
  }

  // Send() for many requests at once: up to kRequestsInFlight in flight,
  // each retried on its own; one answer per request, in order.
  std::vector<Result<HttpResponse>> SendMany(
      std::span<const Prepared> prepared,
      const BufferAllocator& allocate = {}) const {
    std::vector<std::optional<Result<HttpResponse>>> done(prepared.size());
    std::vector<size_t> pending(prepared.size());
    for (size_t i = 0; i < pending.size(); ++i) pending[i] = i;
    internal::RetryBackoff backoff(kRetry);
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
          done[i] = sent[k].status().WithContext(name_ + bucket_ + " after " +
                                                 std::to_string(attempt) +
                                                 " attempt(s)");
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

  // SendMany() for answers that are a status alone: out[i] of each (i, key)
  // becomes an error naming `op` and key unless the status is `accepted`.
  void SendForStatus(
      std::string_view op, std::span<const Prepared> prepared,
      std::span<const std::pair<size_t, std::string_view>> sent_for,
      std::initializer_list<long> accepted, std::vector<Status>& out) const {
    std::vector<Result<HttpResponse>> sent = SendMany(prepared);
    for (size_t k = 0; k < sent.size(); ++k) {
      const auto [i, key] = sent_for[k];
      if (!sent[k].ok()) {
        out[i] = sent[k].status();
      } else if (std::find(accepted.begin(), accepted.end(), sent[k]->status) ==
                 accepted.end()) {
        out[i] = Error(op, key, *sent[k]);
      }
    }
  }

  static std::string RangeHeader(uint64_t offset, uint64_t length) {
    return "bytes=" + std::to_string(offset) + "-" +
           std::to_string(offset + length - 1);
  }

  // The bytes [offset, +length) of `key` out of the answer to a ranged GET.
  Result<Buffer> RangeBody(std::string_view key, uint64_t offset,
                           uint64_t length, const HttpResponse& r) const {
    if (r.status == 416) {
      SHOAL_ASSIGN_OR_RETURN(uint64_t size, Size(key));
      return RangeError(key, offset, length, size);
    }
    if (r.status != 206 && r.status != 200) return Error("GET", key, r);
    // Where the body starts in the object: Content-Range says for a 206
    // (which may hold more than was asked: servers differ), a 200 is the
    // whole object (a server that ignores ranges).
    uint64_t start = 0;
    if (r.status == 206) {
      auto it = r.headers.find("content-range");
      if (it == r.headers.end() ||
          std::sscanf(it->second.c_str(), "bytes %" SCNu64, &start) != 1) {
        return Corruption(Where(key) + ": a 206 without a Content-Range");
      }
    }
    const Buffer& body = r.body;
    if (start > offset || body.size() < offset - start + length) {
      SHOAL_ASSIGN_OR_RETURN(uint64_t size, Size(key));
      return RangeError(key, offset, length, size);
    }
    return body.Slice(offset - start, length);
  }

  std::string name_;  // "s3://" or "gs://", for messages
  std::string url_;
  std::string bucket_;
  std::string prefix_;
  std::string region_;
  AwsCredentials credentials_;
  std::string scheme_;
  std::string host_;
  bool path_style_ = false;
  // Objects above the threshold are uploaded in parts (S3's smallest part,
  // but for the last, is 5 MiB).
  uint64_t multipart_threshold_;
  uint64_t part_size_;
  HttpClient http_;
};

// `scheme` is "s3" or "gs" (see internal::ParseS3Location).
Result<std::shared_ptr<Store>> OpenBucket(std::string_view scheme,
                                          std::string_view location,
                                          const StoreOptions& options) {
  (void)options;  // a bucket is not created by opening it
  SHOAL_ASSIGN_OR_RETURN(internal::S3Location where,
                         internal::ParseS3Location(scheme, location));
  return std::shared_ptr<Store>(std::make_shared<S3Store>(std::move(where)));
}

[[maybe_unused]] const bool kRegisteredS3 = StoreRegistry::Register(
    "s3", [](std::string_view location, const StoreOptions& options) {
      return OpenBucket("s3", location, options);
    });
[[maybe_unused]] const bool kRegisteredGs = StoreRegistry::Register(
    "gs", [](std::string_view location, const StoreOptions& options) {
      return OpenBucket("gs", location, options);
    });

}  // namespace
}  // namespace shoal
