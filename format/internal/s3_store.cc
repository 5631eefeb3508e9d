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
// id. Signing, sending and retrying are the request layer's
// (format/internal/s3_client.h).
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <optional>

#include "format/internal/s3_client.h"
#include "format/internal/s3_location.h"
#include "format/internal/s3_xml.h"
#include "format/store.h"

namespace shoal {
namespace {

using internal::HttpResponse;
using Prepared = internal::S3Client::Prepared;

class S3Store final : public Store {
 public:
  explicit S3Store(internal::S3Location where)
      : url_(std::move(where.url)),
        client_(where),
        multipart_threshold_(where.multipart_threshold),
        part_size_(where.part_size) {}
  std::string url() const override { return url_; }
  int useful_reads_in_flight() const override { return 64; }  // hides latency

  Result<Buffer> Read(std::string_view key) const override {
    SHOAL_ASSIGN_OR_RETURN(HttpResponse r,
                           client_.Call("GET", key, {}, {}, {}));
    if (r.status != 200) return client_.Error("GET", key, r);
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
      return OutOfRange(client_.Where(key) + ": range overflows");
    }
    SHOAL_ASSIGN_OR_RETURN(
        HttpResponse r,
        client_.Call("GET", key, {}, {{"range", RangeHeader(offset, length)}},
                     {}));
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
          return client_.Prepare("GET", "/" + client_.ObjectKey(r.key), {},
                                 {{"range", RangeHeader(r.offset, r.length)}},
                                 {});
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
          return client_.Prepare("GET", "/" + client_.ObjectKey(keys[i]), {},
                                 {}, {});
        },
        [&](size_t i) { return Read(keys[i]); },
        [&](size_t i, HttpResponse& r) -> Result<Buffer> {
          if (r.status != 200) return client_.Error("GET", keys[i], r);
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
      prepared.push_back(client_.Prepare("PUT", "/" + client_.ObjectKey(w.key),
                                         {}, {}, w.data));
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
      prepared.push_back(client_.Prepare(
          "DELETE", "/" + client_.ObjectKey(keys[i]), {}, {}, {}));
      sent_for.emplace_back(i, keys[i]);
    }
    SendForStatus("DELETE", prepared, sent_for, {200, 204, 404}, out);
    return out;
  }

  Result<uint64_t> Size(std::string_view key) const override {
    SHOAL_ASSIGN_OR_RETURN(HttpResponse r,
                           client_.Call("HEAD", key, {}, {}, {}));
    if (r.status != 200) return client_.Error("HEAD", key, r);
    auto it = r.headers.find("content-length");
    if (it == r.headers.end()) {
      return Corruption(client_.Where(key) + ": HEAD without Content-Length");
    }
    return std::strtoull(it->second.c_str(), nullptr, 10);
  }

  Result<bool> Exists(std::string_view key) const override {
    SHOAL_ASSIGN_OR_RETURN(HttpResponse r,
                           client_.Call("HEAD", key, {}, {}, {}));
    if (r.status == 404) return false;
    if (r.status != 200) return client_.Error("HEAD", key, r);
    return true;
  }

  Status Write(std::string_view key, ByteSpan data) override {
    SHOAL_RETURN_IF_ERROR(ValidateStoreKey(key));
    if (data.size() > multipart_threshold_) return PutMultipart(key, data);
    SHOAL_ASSIGN_OR_RETURN(HttpResponse r,
                           client_.Call("PUT", key, {}, {}, data));
    if (r.status != 200) return client_.Error("PUT", key, r);
    return Status::OK();
  }
  Status WriteAtomic(std::string_view key, ByteSpan data) override {
    return Write(key, data);
  }
  Status WriteIfAbsent(std::string_view key, ByteSpan data) override {
    SHOAL_RETURN_IF_ERROR(ValidateStoreKey(key));
    SHOAL_ASSIGN_OR_RETURN(
        HttpResponse r,
        client_.Call("PUT", key, {}, {{"if-none-match", "*"}}, data));
    if (r.status == 412 || r.status == 409) {
      // A retry whose first attempt went through finds these very bytes.
      auto there = Read(key);
      if (there.ok() && there->view() == AsStringView(data)) return Status();
      return AlreadyExists(client_.Where(key) + " already exists");
    }
    if (r.status != 200) return client_.Error("PUT", key, r);
    return Status::OK();
  }
  Status Sync() override { return Status::OK(); }

  Result<std::vector<std::string>> List(
      std::string_view prefix) const override {
    std::vector<std::string> keys;
    std::string token;
    const std::string full = client_.prefix().empty()
                                 ? std::string(prefix)
                                 : client_.prefix() + "/" + std::string(prefix);
    while (true) {
      std::vector<std::pair<std::string, std::string>> query = {
          {"list-type", "2"}, {"prefix", full}};
      if (!token.empty()) query.emplace_back("continuation-token", token);
      SHOAL_ASSIGN_OR_RETURN(HttpResponse r,
                             client_.CallBucket("GET", std::move(query)));
      if (r.status != 200) return client_.Error("LIST", prefix, r);
      auto page = internal::ParseS3ListPage(r.body.span());
      if (!page.ok()) {
        return page.status().WithContext(client_.name() + ": LIST prefix '" +
                                         full + "'");
      }
      for (std::string& key : page->keys) {
        if (!client_.prefix().empty()) {
          if (!key.starts_with(client_.prefix() + "/")) continue;
          key.erase(0, client_.prefix().size() + 1);
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
    if (!exists) return NotFound(client_.Where(key) + ": no such object");
    SHOAL_ASSIGN_OR_RETURN(HttpResponse r,
                           client_.Call("DELETE", key, {}, {}, {}));
    if (r.status != 204 && r.status != 200)
      return client_.Error("DELETE", key, r);
    return Status::OK();
  }

 private:
  // An object larger than the threshold goes up in parts (S3 takes at most
  // 5 GB in one PUT, and a failed part is retried alone): initiate, the
  // parts (in flight together, SendMany), complete; a failure aborts the
  // upload, so no parts are left behind to be billed. The object appears only
  // at the completion.
  Status PutMultipart(std::string_view key, ByteSpan data) {
    SHOAL_ASSIGN_OR_RETURN(
        HttpResponse init,
        client_.Call("POST", key, {{"uploads", ""}}, {}, {}));
    if (init.status != 200) return client_.Error("POST ?uploads", key, init);
    const std::string upload_id = internal::ParseS3UploadId(init.body.span());
    if (upload_id.empty()) {
      return Corruption(client_.Where(key) +
                        ": no UploadId in the answer to POST ?uploads");
    }
    std::vector<Prepared> parts;
    for (uint64_t offset = 0; offset < data.size(); offset += part_size_) {
      const uint64_t n = std::min<uint64_t>(part_size_, data.size() - offset);
      parts.push_back(
          client_.Prepare("PUT", "/" + client_.ObjectKey(key),
                          {{"partNumber", std::to_string(parts.size() + 1)},
                           {"uploadId", upload_id}},
                          {}, data.subspan(offset, n)));
    }
    std::vector<Result<HttpResponse>> sent = client_.SendMany(parts);
    std::string complete = "<CompleteMultipartUpload>";
    std::vector<std::string> etags;
    Status failure;
    for (size_t k = 0; k < sent.size() && failure.ok(); ++k) {
      const std::string part = std::to_string(k + 1);
      if (!sent[k].ok()) {
        failure = sent[k].status();
      } else if (sent[k]->status != 200) {
        failure = client_.Error("PUT part " + part, key, *sent[k]);
      } else {
        etags.push_back(sent[k]->headers["etag"]);
        complete += "<Part><PartNumber>" + part + "</PartNumber><ETag>" +
                    etags.back() + "</ETag></Part>";
      }
    }
    if (failure.ok()) {
      complete += "</CompleteMultipartUpload>";
      auto done = client_.Call("POST", key, {{"uploadId", upload_id}},
                               {{"content-type", "application/xml"}},
                               AsBytes(complete));
      if (!done.ok()) {
        failure = done.status();
      } else if (done->status != 200) {
        failure = client_.Error("POST ?uploadId", key, *done);
      } else {
        // S3 may answer 200 and still fail, with an Error document.
        const internal::S3ErrorFields error =
            internal::ParseS3Error(done->body.span());
        if (error.is_error) {
          failure = IOError(client_.Where(key) +
                            ": completing the upload failed: " + error.code +
                            " (" + error.message + ")");
        } else {
          return Status::OK();
        }
      }
      // When the answer to a completion that went through is lost, its
      // retry finds the upload gone (S3: 404 NoSuchUpload; s3rver: 500):
      // the object itself tells.
      auto head = client_.Call("HEAD", key, {}, {}, {});
      if (head.ok() && head->status == 200 &&
          head->headers["content-length"] == std::to_string(data.size()) &&
          internal::EtagMatches(head->headers["etag"], data, etags)) {
        return Status::OK();
      }
    }
    (void)client_.Call("DELETE", key, {{"uploadId", upload_id}}, {}, {});
    return failure;
  }

  Status RangeError(std::string_view key, uint64_t offset, uint64_t length,
                    uint64_t size) const {
    return OutOfRange(client_.Where(key) + ": bytes [" +
                      std::to_string(offset) + ", +" + std::to_string(length) +
                      ") pass the end (" + std::to_string(size) + " bytes)");
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
    std::vector<Result<HttpResponse>> sent =
        client_.SendMany(prepared, allocate);
    for (size_t k = 0; k < sent.size(); ++k) {
      done[sent_for[k]] = sent[k].ok() ? answer(sent_for[k], *sent[k])
                                       : Result<Buffer>(sent[k].status());
    }
    std::vector<Result<Buffer>> out;
    out.reserve(n);
    for (auto& d : done) out.push_back(std::move(*d));
    return out;
  }

  // SendMany() for answers that are a status alone: out[i] of each (i, key)
  // becomes an error naming `op` and key unless the status is `accepted`.
  void SendForStatus(
      std::string_view op, std::span<const Prepared> prepared,
      std::span<const std::pair<size_t, std::string_view>> sent_for,
      std::initializer_list<long> accepted, std::vector<Status>& out) const {
    std::vector<Result<HttpResponse>> sent = client_.SendMany(prepared);
    for (size_t k = 0; k < sent.size(); ++k) {
      const auto [i, key] = sent_for[k];
      if (!sent[k].ok()) {
        out[i] = sent[k].status();
      } else if (std::find(accepted.begin(), accepted.end(), sent[k]->status) ==
                 accepted.end()) {
        out[i] = client_.Error(op, key, *sent[k]);
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
    if (r.status != 206 && r.status != 200) return client_.Error("GET", key, r);
    // Where the body starts in the object: Content-Range says for a 206
    // (which may hold more than was asked: servers differ), a 200 is the
    // whole object (a server that ignores ranges).
    uint64_t start = 0;
    if (r.status == 206) {
      auto it = r.headers.find("content-range");
      if (it == r.headers.end() ||
          std::sscanf(it->second.c_str(), "bytes %" SCNu64, &start) != 1) {
        return Corruption(client_.Where(key) +
                          ": a 206 without a Content-Range");
      }
    }
    const Buffer& body = r.body;
    if (start > offset || body.size() < offset - start + length) {
      SHOAL_ASSIGN_OR_RETURN(uint64_t size, Size(key));
      return RangeError(key, offset, length, size);
    }
    return body.Slice(offset - start, length);
  }

  std::string url_;
  internal::S3Client client_;
  // Objects above the threshold are uploaded in parts (S3's smallest part,
  // but for the last, is 5 MiB).
  uint64_t multipart_threshold_;
  uint64_t part_size_;
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
