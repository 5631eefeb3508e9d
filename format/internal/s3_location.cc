// Parsing s3:// and gs:// URLs (format/internal/s3_location.h).
#include "format/internal/s3_location.h"

#include <algorithm>
#include <cstdlib>
#include <map>

namespace shoal::internal {
namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

}  // namespace

Result<S3Location> ParseS3Location(std::string_view scheme,
                                   std::string_view location) {
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
  for (const auto& [option, value] : query) {
    if (option != "endpoint" && option != "region" && option != "path_style" &&
        option != "multipart_threshold" && option != "part_size") {
      return InvalidArgument(
          name + std::string(location) + ": unknown option '" + option +
          "' (endpoint, region, path_style, multipart_threshold, part_size)");
    }
  }
  S3Location out;
  out.scheme = std::string(scheme);
  out.url = name + std::string(location);
  const size_t slash = rest.find('/');
  out.bucket = rest.substr(0, slash);
  out.prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
  while (!out.prefix.empty() && out.prefix.back() == '/') out.prefix.pop_back();
  if (out.bucket.empty()) {
    return InvalidArgument(name + " URL without a bucket: " + name +
                           std::string(location));
  }
  out.endpoint = query.count("endpoint") ? query["endpoint"]
                 : gcs                   ? "https://storage.googleapis.com"
                 : !Env("AWS_ENDPOINT_URL_S3").empty()
                     ? Env("AWS_ENDPOINT_URL_S3")
                     : Env("AWS_ENDPOINT_URL");
  out.region = query.count("region")                ? query["region"]
               : gcs                                ? "auto"
               : !Env("AWS_REGION").empty()         ? Env("AWS_REGION")
               : !Env("AWS_DEFAULT_REGION").empty() ? Env("AWS_DEFAULT_REGION")
                                                    : "us-east-1";
  out.path_style =
      query.count("path_style") &&
      (query["path_style"] == "true" || query["path_style"] == "1");
  out.credentials = {Env("AWS_ACCESS_KEY_ID"), Env("AWS_SECRET_ACCESS_KEY"),
                     Env("AWS_SESSION_TOKEN")};
  if (out.credentials.access_key_id.empty() ||
      out.credentials.secret_access_key.empty()) {
    return FailedPrecondition(
        name + out.bucket +
        ": no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
  }
  if (query.count("multipart_threshold")) {
    out.multipart_threshold =
        std::strtoull(query["multipart_threshold"].c_str(), nullptr, 10);
  }
  if (query.count("part_size")) {
    out.part_size = std::strtoull(query["part_size"].c_str(), nullptr, 10);
    if (out.part_size == 0) {
      return InvalidArgument(name + std::string(location) +
                             ": part_size must be a positive byte count");
    }
  }
  return out;
}

}  // namespace shoal::internal
