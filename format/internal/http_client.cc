// The libcurl HTTP client of the object stores (format/internal/
// http_client.h).
#include "format/internal/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

namespace shoal::internal {
namespace {

// curl_global_init is not thread-safe; it runs once, before any handle.
void GlobalInit() {
  static const bool done = [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return true;
  }();
  (void)done;
}

// What one transfer gathers while curl runs it.
struct Transfer {
  HttpResponse* response;
  uint64_t max_body;
  MutableBuffer body;
  uint64_t size = 0;
  bool too_long = false;
  ByteSpan upload;
  uint64_t uploaded = 0;
};

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  std::string_view line(data, n);
  if (line.starts_with("HTTP/")) {
    t->response->headers.clear();  // a 100 Continue came before
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;
  std::string name(line.substr(0, colon));
  for (char& c : name) c = static_cast<char>(std::tolower(c));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
    value.remove_prefix(1);
  while (!value.empty() &&
         (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
    value.remove_suffix(1);
  t->response->headers[name] = std::string(value);
  return n;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (t->size + n > t->max_body) {
    t->too_long = true;
    return 0;  // aborts the transfer
  }
  if (t->size + n > t->body.size()) {
    // The length the server announced, or doubling: one allocation for a
    // body whose Content-Length came first (every S3 response).
    uint64_t want = std::max<uint64_t>(t->size + n, 2 * t->body.size());
    const auto& headers = t->response->headers;
    if (auto it = headers.find("content-length"); it != headers.end()) {
      uint64_t announced = 0;
      std::from_chars(it->second.data(), it->second.data() + it->second.size(),
                      announced);
      if (announced >= t->size + n && announced <= t->max_body) {
        want = announced;
      }
    }
    want = std::min(want, t->max_body);
    auto grown = MutableBuffer::Allocate(want);
    if (!grown.ok()) return 0;
    if (t->size) std::memcpy(grown->data(), t->body.data(), t->size);
    t->body = std::move(*grown);
  }
  std::memcpy(t->body.data() + t->size, data, n);
  t->size += n;
  return n;
}

size_t OnUpload(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n =
      std::min<uint64_t>(size * count, t->upload.size() - t->uploaded);
  if (n) std::memcpy(data, t->upload.data() + t->uploaded, n);
  t->uploaded += n;
  return n;
}

}  // namespace

struct HttpClient::Handle {
  CURL* curl = nullptr;
  ~Handle() {
    if (curl) curl_easy_cleanup(curl);
  }
};

HttpClient::HttpClient(HttpOptions options) : options_(options) {
  GlobalInit();
}

HttpClient::~HttpClient() = default;

std::unique_ptr<HttpClient::Handle> HttpClient::Take() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      auto handle = std::move(idle_.back());
      idle_.pop_back();
      return handle;
    }
  }
  auto handle = std::make_unique<Handle>();
  handle->curl = curl_easy_init();
  return handle;
}

void HttpClient::Give(std::unique_ptr<Handle> handle) const {
  std::lock_guard<std::mutex> lock(mu_);
  idle_.push_back(std::move(handle));
}

Result<HttpResponse> HttpClient::Send(const HttpRequest& request) const {
  std::unique_ptr<Handle> handle = Take();
  CURL* curl = handle->curl;
  if (curl == nullptr) return ResourceExhausted("curl_easy_init failed");
  // Options are set afresh for every request; the connection cache stays.
  curl_easy_reset(curl);
  HttpResponse response;
  Transfer t{&response, request.max_body};
  t.upload = request.body;
  curl_slist* headers = nullptr;
  for (const auto& [name, value] : request.headers) {
    headers = curl_slist_append(headers, (name + ": " + value).c_str());
  }
  // curl would otherwise add "Expect: 100-continue" to larger uploads and
  // wait for the server's go-ahead, a round trip per PUT.
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   options_.connect_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, options_.low_speed_seconds);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, options_.low_speed_bytes);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT" || request.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, OnUpload);
    curl_easy_setopt(curl, CURLOPT_READDATA, &t);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    if (request.method == "POST") {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "POST");
    }
  } else if (request.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  const CURLcode code = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (code != CURLE_OK) {
    // A handle whose transfer failed may hold a broken connection: dropped.
    if (t.too_long) {
      return ResourceExhausted(request.method + " " + request.url +
                               ": the response is longer than the " +
                               std::to_string(request.max_body) +
                               " bytes expected");
    }
    return IOError(request.method + " " + request.url + ": " +
                   curl_easy_strerror(code));
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  Give(std::move(handle));
  response.body = t.size == t.body.size()
                      ? std::move(t.body).Freeze()
                      : std::move(t.body).Freeze().Slice(0, t.size);
  return response;
}

}  // namespace shoal::internal
