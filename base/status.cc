#include "base/status.h"

#include <cerrno>
#include <cstring>

namespace shoal {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kInvalidArgument:
      return "InvalidArgument";
    case StatusCode::kNotFound:
      return "NotFound";
    case StatusCode::kAlreadyExists:
      return "AlreadyExists";
    case StatusCode::kOutOfRange:
      return "OutOfRange";
    case StatusCode::kFailedPrecondition:
      return "FailedPrecondition";
    case StatusCode::kCorruption:
      return "Corruption";
    case StatusCode::kIOError:
      return "IOError";
    case StatusCode::kUnimplemented:
      return "Unimplemented";
    case StatusCode::kCancelled:
      return "Cancelled";
    case StatusCode::kResourceExhausted:
      return "ResourceExhausted";
    case StatusCode::kInternal:
      return "Internal";
  }
  return "Unknown";
}

Status::Status(StatusCode code, std::string message) {
  if (code == StatusCode::kOk) return;  // OK never carries a message.
  state_ = std::make_shared<const State>(State{code, std::move(message)});
}

std::string_view Status::message() const {
  return ok() ? std::string_view() : std::string_view(state_->message);
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(state_->code));
  if (!state_->message.empty()) {
    out += ": ";
    out += state_->message;
  }
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok() || context.empty()) return *this;
  std::string message(context);
  if (!state_->message.empty()) {
    message += ": ";
    message += state_->message;
  }
  return Status(state_->code, std::move(message));
}

std::ostream& operator<<(std::ostream& os, const Status& status) {
  return os << status.ToString();
}

Status InvalidArgument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
Status AlreadyExists(std::string m) {
  return {StatusCode::kAlreadyExists, std::move(m)};
}
Status OutOfRange(std::string m) {
  return {StatusCode::kOutOfRange, std::move(m)};
}
Status FailedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
Status Corruption(std::string m) {
  return {StatusCode::kCorruption, std::move(m)};
}
Status IOError(std::string m) { return {StatusCode::kIOError, std::move(m)}; }
Status Unimplemented(std::string m) {
  return {StatusCode::kUnimplemented, std::move(m)};
}
Status Cancelled(std::string m) {
  return {StatusCode::kCancelled, std::move(m)};
}
Status ResourceExhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

Status ErrnoStatus(std::string_view what, int errnum) {
  std::string message(what);
  message += ": ";
  message += std::strerror(errnum);
  if (errnum == ENOENT) return NotFound(std::move(message));
  if (errnum == ENOSPC || errnum == ENOMEM)
    return ResourceExhausted(std::move(message));
  return IOError(std::move(message));
}

}  // namespace shoal

#include <cstdio>

#include "base/result.h"

namespace shoal {

void AbortOnBadResultAccess(const Status& status) {
  std::fprintf(stderr, "shoal: value() called on a failed Result: %s\n",
               status.ToString().c_str());
  std::abort();
}

}  // namespace shoal
