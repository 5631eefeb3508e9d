// The libcurl HTTP client of the object stores (format/internal/
// http_client.h).
#include "format/internal/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <optional>
#include <thread>

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
  const BufferAllocator* allocate = nullptr;
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
    auto grown = t->allocate != nullptr && *t->allocate
                     ? (*t->allocate)(want)
                     : MutableBuffer::Allocate(want);
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

// One request on its way: the handle it runs on and what it gathers. Not
// moved once set up (curl holds pointers into it).
struct HttpClient::Exchange {
  std::unique_ptr<Handle> handle;
  HttpResponse response;
  Transfer transfer{&response, 0};
  curl_slist* headers = nullptr;
  size_t index = 0;  // in SendAll's requests
  Exchange() = default;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;
  ~Exchange() { curl_slist_free_all(headers); }
};

HttpClient::HttpClient(HttpOptions options) : options_(options) {
  GlobalInit();
}

HttpClient::~HttpClient() {
  for (void* multi : idle_multi_) curl_multi_cleanup(multi);
}

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

void* HttpClient::TakeMulti() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_multi_.empty()) {
      void* multi = idle_multi_.back();
      idle_multi_.pop_back();
      return multi;
    }
  }
  return curl_multi_init();
}

void HttpClient::GiveMulti(void* multi) const {
  std::lock_guard<std::mutex> lock(mu_);
  idle_multi_.push_back(multi);
}

void HttpClient::Setup(Exchange& e, const HttpRequest& request) const {
  CURL* curl = e.handle->curl;
  // Options are set afresh for every request; the connection cache stays.
  curl_easy_reset(curl);
  e.transfer.max_body = request.max_body;
  e.transfer.allocate = &request.allocate;
  e.transfer.upload = request.body;
  for (const auto& [name, value] : request.headers) {
    e.headers = curl_slist_append(e.headers, (name + ": " + value).c_str());
  }
  // curl would otherwise add "Expect: 100-continue" to larger uploads and
  // wait for the server's go-ahead, a round trip per PUT.
  e.headers = curl_slist_append(e.headers, "Expect:");
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, e.headers);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   options_.connect_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, options_.low_speed_seconds);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, options_.low_speed_bytes);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &e.transfer);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &e.transfer);
  curl_easy_setopt(curl, CURLOPT_PRIVATE, &e);
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT" || request.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, OnUpload);
    curl_easy_setopt(curl, CURLOPT_READDATA, &e.transfer);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    if (request.method == "POST") {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "POST");
    }
  } else if (request.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
}

Result<HttpResponse> HttpClient::Finish(Exchange& e, const HttpRequest& request,
                                        int code) const {
  if (code != CURLE_OK) {
    // A handle whose transfer failed may hold a broken connection: dropped.
    if (e.transfer.too_long) {
      return ResourceExhausted(request.method + " " + request.url +
                               ": the response is longer than the " +
                               std::to_string(request.max_body) +
                               " bytes expected");
    }
    return IOError(request.method + " " + request.url + ": " +
                   curl_easy_strerror(static_cast<CURLcode>(code)));
  }
  curl_easy_getinfo(e.handle->curl, CURLINFO_RESPONSE_CODE, &e.response.status);
  Give(std::move(e.handle));
  Transfer& t = e.transfer;
  e.response.body = t.size == t.body.size()
                        ? std::move(t.body).Freeze()
                        : std::move(t.body).Freeze().Slice(0, t.size);
  return std::move(e.response);
}

RetryBackoff::RetryBackoff(const RetryPolicy& policy)
    : policy_(policy),
      jitter_(std::random_device{}()),
      bound_(policy.first_wait),
      give_up_(std::chrono::steady_clock::now() + policy.total) {}

bool RetryBackoff::more() const {
  return std::chrono::steady_clock::now() + bound_ <= give_up_;
}

void RetryBackoff::Wait() {
  std::uniform_int_distribution<int64_t> wait(0, bound_.count());
  std::this_thread::sleep_for(std::chrono::milliseconds(wait(jitter_)));
  bound_ = std::min(bound_ * 2, policy_.max_wait);
}

Result<HttpResponse> HttpClient::Send(const HttpRequest& request) const {
  Exchange e;
  e.handle = Take();
  if (e.handle->curl == nullptr) {
    return ResourceExhausted("curl_easy_init failed");
  }
  Setup(e, request);
  return Finish(e, request, curl_easy_perform(e.handle->curl));
}

std::vector<Result<HttpResponse>> HttpClient::SendAll(
    std::span<const HttpRequest> requests, size_t max_in_flight) const {
  std::vector<Result<HttpResponse>> out;
  out.reserve(requests.size());
  if (requests.size() <= 1 || max_in_flight <= 1) {
    for (const HttpRequest& r : requests) out.push_back(Send(r));
    return out;
  }
  std::vector<std::optional<Result<HttpResponse>>> results(requests.size());
  CURLM* multi = TakeMulti();
  if (multi == nullptr) {
    for (size_t i = 0; i < requests.size(); ++i)
      out.push_back(ResourceExhausted("curl_multi_init failed"));
    return out;
  }
  size_t next = 0, running = 0;
  auto start = [&] {
    const size_t i = next++;
    auto e = std::make_unique<Exchange>();
    e->index = i;
    e->handle = Take();
    if (e->handle->curl == nullptr) {
      results[i] = ResourceExhausted("curl_easy_init failed");
      return;
    }
    Setup(*e, requests[i]);
    if (curl_multi_add_handle(multi, e->handle->curl) != CURLM_OK) {
      results[i] = ResourceExhausted("curl_multi_add_handle failed");
      return;
    }
    e.release();  // owned through CURLOPT_PRIVATE until it is done
    ++running;
  };
  while (next < requests.size() && running < max_in_flight) start();
  while (running > 0) {
    int still = 0;
    curl_multi_perform(multi, &still);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* curl = msg->easy_handle;
      const CURLcode code = msg->data.result;
      char* owner = nullptr;
      curl_easy_getinfo(curl, CURLINFO_PRIVATE, &owner);
      std::unique_ptr<Exchange> e(reinterpret_cast<Exchange*>(owner));
      curl_multi_remove_handle(multi, curl);
      results[e->index] = Finish(*e, requests[e->index], code);
      --running;
      while (next < requests.size() && running < max_in_flight) start();
    }
    if (running > 0) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  }
  GiveMulti(multi);
  for (auto& r : results) out.push_back(std::move(*r));
  return out;
}

}  // namespace shoal::internal
