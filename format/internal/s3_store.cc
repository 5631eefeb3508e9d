// The s3:// store (format/store.h): objects of an S3 bucket under a prefix,
// over HTTP (format/internal/http_client.h) with SigV4 signatures
// (format/internal/sigv4.h). Registered as "s3", and as "gs" for Google
// Cloud Storage's S3-compatible XML API (HMAC keys in AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY; endpoint https://storage.googleapis.com and region
// "auto" unless the URL says otherwise).
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
//
// Contract mapping: Write and WriteAtomic are PUTs (S3 makes an object
// visible whole, and durable, when the PUT returns); WriteIfAbsent is a PUT
// with If-None-Match: * (412 = AlreadyExists); Sync has nothing to do.
// Delete reports NotFound for a missing key (S3's DELETE does not say).
// Errors name the bucket, the key, the HTTP status and the server's request
// id. 500/502/503/504, SlowDown and transport failures are retried with
// exponential backoff and jitter, at most kAttempts times and for at most
// kRetryTime; 403 and 404 never.
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>

#include "format/internal/http_client.h"
#include "format/internal/sigv4.h"
#include "format/store.h"

namespace shoal {
namespace {

using internal::AwsCredentials;
using internal::HttpClient;
using internal::HttpRequest;
using internal::HttpResponse;

constexpr int kAttempts = 6;
constexpr auto kFirstBackoff = std::chrono::milliseconds(50);
constexpr auto kMaxBackoff = std::chrono::milliseconds(2000);
// No retry starts later than this after the first attempt.
constexpr auto kRetryTime = std::chrono::seconds(30);

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

// The text of the first element named `name` under `node`, depth first.
std::string XmlText(xmlNode* node, std::string_view name) {
  for (xmlNode* n = node; n != nullptr; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    if (name == reinterpret_cast<const char*>(n->name)) {
      xmlChar* text = xmlNodeGetContent(n);
      std::string out = text ? reinterpret_cast<const char*>(text) : "";
      xmlFree(text);
      return out;
    }
    std::string inner = XmlText(n->children, name);
    if (!inner.empty()) return inner;
  }
  return "";
}

struct XmlDoc {
  xmlDoc* doc = nullptr;
  explicit XmlDoc(const Buffer& body) {
    doc = xmlReadMemory(
        reinterpret_cast<const char*>(body.data()),
        static_cast<int>(body.size()), "response.xml", nullptr,
        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  }
  ~XmlDoc() {
    if (doc) xmlFreeDoc(doc);
  }
  xmlNode* root() const { return doc ? xmlDocGetRootElement(doc) : nullptr; }
};

class S3Store final : public Store {
 public:
  S3Store(std::string scheme, std::string url, std::string bucket,
          std::string prefix, std::string endpoint, std::string region,
          bool path_style, AwsCredentials credentials)
      : name_(std::move(scheme) + "://"),
        url_(std::move(url)),
        bucket_(std::move(bucket)),
        prefix_(std::move(prefix)),
        region_(std::move(region)),
        credentials_(std::move(credentials)) {
    if (endpoint.empty()) {
      scheme_ = "https";
      host_ = path_style ? "s3." + region_ + ".amazonaws.com"
                         : bucket_ + ".s3." + region_ + ".amazonaws.com";
    } else {
      const size_t sep = endpoint.find("://");
      scheme_ = sep == std::string::npos ? "https" : endpoint.substr(0, sep);
      host_ = sep == std::string::npos ? endpoint : endpoint.substr(sep + 3);
      while (!host_.empty() && host_.back() == '/') host_.pop_back();
    }
    path_style_ = path_style || !endpoint.empty();
  }

  std::string url() const override { return url_; }

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
    const std::string range = "bytes=" + std::to_string(offset) + "-" +
                              std::to_string(offset + length - 1);
    SHOAL_ASSIGN_OR_RETURN(HttpResponse r,
                           Call("GET", key, {}, {{"range", range}}, {}));
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
      XmlDoc xml(r.body);
      xmlNode* root = xml.root();
      if (root == nullptr) {
        return Corruption(name_ + bucket_ + ": LIST prefix '" + full +
                          "': the response is not XML");
      }
      for (xmlNode* n = root->children; n != nullptr; n = n->next) {
        if (n->type != XML_ELEMENT_NODE ||
            std::string_view(reinterpret_cast<const char*>(n->name)) !=
                "Contents") {
          continue;
        }
        std::string key = XmlText(n->children, "Key");
        if (!prefix_.empty()) {
          if (!key.starts_with(prefix_ + "/")) continue;
          key.erase(0, prefix_.size() + 1);
        }
        keys.push_back(std::move(key));
      }
      if (XmlText(root->children, "IsTruncated") != "true") break;
      token = XmlText(root->children, "NextContinuationToken");
      if (token.empty()) {
        return Corruption(name_ + bucket_ +
                          ": LIST truncated without a continuation token");
      }
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  Status Delete(std::string_view key) override {
    SHOAL_ASSIGN_OR_RETURN(bool exists, Exists(key));
    if (!exists) return NotFound(Where(key) + ": no such object");
    SHOAL_ASSIGN_OR_RETURN(HttpResponse r, Call("DELETE", key, {}, {}, {}));
    if (r.status != 204 && r.status != 200) {
      return Error("DELETE", key, r);
    }
    return Status::OK();
  }

 private:
  // An object larger than the threshold goes up in parts (S3 takes at most
  // 5 GB in one PUT, and a failed part is retried alone): initiate, the
  // parts in order, complete; a failure aborts the upload, so no parts are
  // left behind to be billed. The object appears only at the completion.
  Status PutMultipart(std::string_view key, ByteSpan data) {
    SHOAL_ASSIGN_OR_RETURN(HttpResponse init,
                           Call("POST", key, {{"uploads", ""}}, {}, {}));
    if (init.status != 200) return Error("POST ?uploads", key, init);
    XmlDoc init_xml(init.body);
    const std::string upload_id =
        init_xml.root() ? XmlText(init_xml.root(), "UploadId") : "";
    if (upload_id.empty()) {
      return Corruption(Where(key) +
                        ": no UploadId in the answer to POST ?uploads");
    }
    std::string complete = "<CompleteMultipartUpload>";
    Status failure;
    uint64_t part = 1;
    for (uint64_t offset = 0; offset < data.size(); ++part) {
      const uint64_t n = std::min<uint64_t>(part_size_, data.size() - offset);
      auto r =
          Call("PUT", key,
               {{"partNumber", std::to_string(part)}, {"uploadId", upload_id}},
               {}, data.subspan(offset, n));
      if (!r.ok()) {
        failure = r.status();
        break;
      }
      if (r->status != 200) {
        failure = Error("PUT part " + std::to_string(part), key, *r);
        break;
      }
      complete += "<Part><PartNumber>" + std::to_string(part) +
                  "</PartNumber><ETag>" + r->headers["etag"] + "</ETag></Part>";
      offset += n;
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
        XmlDoc xml(done->body);
        if (xml.root() != nullptr &&
            std::string_view(reinterpret_cast<const char*>(xml.root()->name)) ==
                "Error") {
          failure = IOError(Where(key) + ": completing the upload failed: " +
                            XmlText(xml.root(), "Code") + " (" +
                            XmlText(xml.root(), "Message") + ")");
        } else {
          return Status::OK();
        }
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
    std::string code, message, request_id;
    if (auto it = r.headers.find("x-amz-request-id"); it != r.headers.end())
      request_id = it->second;
    if (!r.body.empty()) {
      XmlDoc xml(r.body);
      if (xmlNode* root = xml.root()) {
        code = XmlText(root, "Code");
        message = XmlText(root, "Message");
        if (request_id.empty()) request_id = XmlText(root, "RequestId");
      }
    }
    std::string what = std::string(op) + " " + Where(key) + ": HTTP " +
                       std::to_string(r.status);
    if (!code.empty()) what += " " + code;
    if (!message.empty()) what += " (" + message + ")";
    if (!request_id.empty()) what += ", request id " + request_id;
    if (r.status == 404) return NotFound(what);
    if (r.status == 403) return FailedPrecondition(what + ": access denied");
    return IOError(what);
  }

  static bool Retryable(long status, const std::string& body) {
    return status == 500 || status == 502 || status == 503 || status == 504 ||
           (status == 400 && body.find("SlowDown") != std::string::npos);
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

  // Signs and sends, retrying what may pass on a second try.
  Result<HttpResponse> Send(
      std::string_view method, const std::string& object_path,
      std::vector<std::pair<std::string, std::string>> query,
      std::vector<std::pair<std::string, std::string>> headers,
      ByteSpan body) const {
    const std::string path = (path_style_ ? "/" + bucket_ : std::string()) +
                             (object_path.empty() ? "/" : object_path);
    std::string query_text;
    for (const auto& [name, value] : query) {
      query_text += (query_text.empty() ? "?" : "&") +
                    internal::UriEncode(name, true) + "=" +
                    internal::UriEncode(value, true);
    }
    const std::string payload = internal::Sha256Hex(body);
    headers.emplace_back("x-amz-content-sha256", payload);
    std::mt19937_64 jitter(std::random_device{}());
    auto backoff = kFirstBackoff;
    const auto give_up = std::chrono::steady_clock::now() + kRetryTime;
    for (int attempt = 1;; ++attempt) {
      internal::SigV4Request signing{.method = std::string(method),
                                     .host = host_,
                                     .path = path,
                                     .query = query,
                                     .headers = headers,
                                     .payload_sha256 = payload};
      const internal::SigV4Signature signature =
          internal::SignV4(signing, credentials_, region_, "s3",
                           internal::AmzDate(std::chrono::system_clock::now()));
      HttpRequest request;
      request.method = std::string(method);
      request.url = scheme_ + "://" + host_ + internal::UriEncode(path, false) +
                    query_text;
      request.headers = signature.headers;
      request.body = body;
      Result<HttpResponse> r = http_.Send(request);
      const bool again =
          !r.ok() ? r.status().code() == StatusCode::kIOError
                  : Retryable(r->status, std::string(r->body.view()));
      if (!again || attempt == kAttempts ||
          std::chrono::steady_clock::now() + backoff > give_up) {
        if (!r.ok()) {
          return r.status().WithContext(name_ + bucket_ + " after " +
                                        std::to_string(attempt) +
                                        " attempt(s)");
        }
        return r;
      }
      // Full jitter: a random wait up to the doubling bound, so that many
      // clients pushed back at once do not come back at once.
      std::uniform_int_distribution<int64_t> wait(0, backoff.count());
      std::this_thread::sleep_for(std::chrono::milliseconds(wait(jitter)));
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
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
  uint64_t multipart_threshold_ = uint64_t{64} << 20;
  uint64_t part_size_ = uint64_t{16} << 20;
  HttpClient http_;

 public:
  /// Objects above `threshold` bytes are uploaded in parts of `part_size`
  /// (S3's smallest part, but for the last, is 5 MiB).
  void SetMultipart(uint64_t threshold, uint64_t part_size) {
    multipart_threshold_ = threshold;
    part_size_ = part_size;
  }
};

// "BUCKET/PREFIX?name=value&...": the bucket, the prefix (no trailing '/')
// and the query's options.
// `scheme` is "s3" or "gs" (Google Cloud Storage's S3-compatible XML API:
// the same requests, another default endpoint and region).
Result<std::shared_ptr<Store>> OpenBucket(std::string_view scheme,
                                          std::string_view location,
                                          const StoreOptions& options) {
  (void)options;  // a bucket is not created by opening it
  const std::string name = std::string(scheme) + "://";
  const bool gcs = scheme == "gs";
  std::string rest(location);
  std::map<std::string, std::string> query;
  if (const size_t q = rest.find('?'); q != std::string::npos) {
    std::string text = rest.substr(q + 1);
    rest.resize(q);
    for (size_t begin = 0; begin <= text.size();) {
      size_t end = std::min(text.find('&', begin), text.size());
      const std::string part = text.substr(begin, end - begin);
      const size_t eq = part.find('=');
      if (!part.empty()) {
        query[part.substr(0, eq)] =
            eq == std::string::npos ? "" : part.substr(eq + 1);
      }
      begin = end + 1;
    }
  }
  for (const auto& [name, value] : query) {
    if (name != "endpoint" && name != "region" && name != "path_style" &&
        name != "multipart_threshold" && name != "part_size") {
      return InvalidArgument(
          name + std::string(location) + ": unknown option '" + name +
          "' (endpoint, region, path_style, multipart_threshold, part_size)");
    }
  }
  const size_t slash = rest.find('/');
  const std::string bucket = rest.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (bucket.empty()) {
    return InvalidArgument(name + " URL without a bucket: " + name +
                           std::string(location));
  }
  std::string endpoint = query.count("endpoint") ? query["endpoint"]
                         : gcs ? "https://storage.googleapis.com"
                         : !Env("AWS_ENDPOINT_URL_S3").empty()
                             ? Env("AWS_ENDPOINT_URL_S3")
                             : Env("AWS_ENDPOINT_URL");
  std::string region = query.count("region")        ? query["region"]
                       : gcs                        ? "auto"
                       : !Env("AWS_REGION").empty() ? Env("AWS_REGION")
                       : !Env("AWS_DEFAULT_REGION").empty()
                           ? Env("AWS_DEFAULT_REGION")
                           : "us-east-1";
  const bool path_style =
      query.count("path_style") &&
      (query["path_style"] == "true" || query["path_style"] == "1");
  AwsCredentials credentials{Env("AWS_ACCESS_KEY_ID"),
                             Env("AWS_SECRET_ACCESS_KEY"),
                             Env("AWS_SESSION_TOKEN")};
  if (credentials.access_key_id.empty() ||
      credentials.secret_access_key.empty()) {
    return FailedPrecondition(
        name + bucket +
        ": no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
  }
  auto store = std::make_shared<S3Store>(
      std::string(scheme), name + std::string(location), bucket, prefix,
      endpoint, region, path_style, std::move(credentials));
  if (query.count("multipart_threshold") || query.count("part_size")) {
    const uint64_t threshold =
        query.count("multipart_threshold")
            ? std::strtoull(query["multipart_threshold"].c_str(), nullptr, 10)
            : uint64_t{64} << 20;
    const uint64_t part =
        query.count("part_size")
            ? std::strtoull(query["part_size"].c_str(), nullptr, 10)
            : uint64_t{16} << 20;
    if (part == 0) {
      return InvalidArgument(name + std::string(location) +
                             ": part_size must be a positive byte count");
    }
    store->SetMultipart(threshold, part);
  }
  return std::shared_ptr<Store>(std::move(store));
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
