// AWS Signature Version 4 (format/internal/sigv4.h).
#include "format/internal/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>

namespace shoal::internal {
namespace {

constexpr char kHex[] = "0123456789abcdef";

std::string Hex(const unsigned char* bytes, size_t n) {
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 15];
  }
  return out;
}

using Digest = std::vector<unsigned char>;

Digest Hmac(const Digest& key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
       &n);
  return Digest(out, out + n);
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(c));
  return out;
}

// A header value as signed: leading and trailing spaces dropped, runs of
// spaces inside made one.
std::string Trimmed(std::string_view value) {
  std::string out;
  bool space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

}  // namespace

std::string UriEncode(std::string_view text, bool encode_slash) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (c == '/' && !encode_slash)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += "0123456789ABCDEF"[c >> 4];
      out += "0123456789ABCDEF"[c & 15];
    }
  }
  return out;
}

std::string Sha256Hex(ByteSpan data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), out, &n, EVP_sha256(), nullptr);
  return Hex(out, n);
}

namespace {
std::string Unquoted(std::string_view etag) {
  while (!etag.empty() && etag.front() == '"') etag.remove_prefix(1);
  while (!etag.empty() && etag.back() == '"') etag.remove_suffix(1);
  return Lower(etag);
}
}  // namespace

bool EtagMatches(std::string_view etag, ByteSpan data,
                 std::span<const std::string> part_etags) {
  unsigned char md5[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  const std::string want = Unquoted(etag);
  if (want.find('-') == std::string::npos) {
    EVP_Digest(data.data(), data.size(), md5, &n, EVP_md5(), nullptr);
    return want == Hex(md5, n);
  }
  std::string digests;  // the parts' MD5s, binary, in order
  for (const std::string& part : part_etags) {
    const std::string hex = Unquoted(part);
    if (hex.size() != 32) return false;
    for (size_t i = 0; i < hex.size(); i += 2) {
      unsigned byte = 0;
      const auto [end, error] =
          std::from_chars(hex.data() + i, hex.data() + i + 2, byte, 16);
      if (error != std::errc() || end != hex.data() + i + 2) return false;
      digests += static_cast<char>(byte);
    }
  }
  EVP_Digest(digests.data(), digests.size(), md5, &n, EVP_md5(), nullptr);
  return want == Hex(md5, n) + "-" + std::to_string(part_etags.size());
}

std::string AmzDate(std::chrono::system_clock::time_point when) {
  const std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char out[20];
  std::strftime(out, sizeof(out), "%Y%m%dT%H%M%SZ", &utc);
  return out;
}

SigV4Signature SignV4(const SigV4Request& request,
                      const AwsCredentials& credentials,
                      std::string_view region, std::string_view service,
                      std::string_view amz_date) {
  SigV4Signature s;
  // Headers: lower-case names, sorted; values of one name joined by ','.
  std::vector<std::pair<std::string, std::string>> headers;
  headers.emplace_back("host", Trimmed(request.host));
  headers.emplace_back("x-amz-date", std::string(amz_date));
  if (!credentials.session_token.empty()) {
    headers.emplace_back("x-amz-security-token", credentials.session_token);
  }
  for (const auto& [name, value] : request.headers) {
    headers.emplace_back(Lower(name), Trimmed(value));
  }
  std::stable_sort(
      headers.begin(), headers.end(),
      [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string canonical_headers, signed_headers;
  for (size_t i = 0; i < headers.size(); ++i) {
    const bool same = i > 0 && headers[i].first == headers[i - 1].first;
    if (same) {
      canonical_headers.back() = ',';  // the previous line's '\n'
    } else {
      if (!signed_headers.empty()) signed_headers += ';';
      signed_headers += headers[i].first;
      canonical_headers += headers[i].first + ":";
    }
    canonical_headers += headers[i].second + "\n";
  }
  // Query: names and values encoded, sorted by name, then value.
  std::vector<std::pair<std::string, std::string>> query;
  for (const auto& [name, value] : request.query) {
    query.emplace_back(UriEncode(name, true), UriEncode(value, true));
  }
  std::sort(query.begin(), query.end());
  std::string canonical_query;
  for (const auto& [name, value] : query) {
    if (!canonical_query.empty()) canonical_query += '&';
    canonical_query += name + "=" + value;
  }
  s.canonical_request =
      request.method + "\n" +
      UriEncode(request.path.empty() ? "/" : request.path, false) + "\n" +
      canonical_query + "\n" + canonical_headers + "\n" + signed_headers +
      "\n" + request.payload_sha256;
  const std::string date(amz_date.substr(0, 8));
  const std::string scope = date + "/" + std::string(region) + "/" +
                            std::string(service) + "/aws4_request";
  s.string_to_sign = "AWS4-HMAC-SHA256\n" + std::string(amz_date) + "\n" +
                     scope + "\n" + Sha256Hex(AsBytes(s.canonical_request));
  const std::string secret = "AWS4" + credentials.secret_access_key;
  Digest key = Hmac(Digest(secret.begin(), secret.end()), date);
  key = Hmac(key, region);
  key = Hmac(key, service);
  key = Hmac(key, "aws4_request");
  const Digest signature = Hmac(key, s.string_to_sign);
  s.signature = Hex(signature.data(), signature.size());
  s.authorization = "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id +
                    "/" + scope + ", SignedHeaders=" + signed_headers +
                    ", Signature=" + s.signature;
  for (const auto& [name, value] : headers) {
    if (name != "host") s.headers.emplace_back(name, value);
  }
  s.headers.emplace_back("authorization", s.authorization);
  return s;
}

}  // namespace shoal::internal
