// Status: the outcome of an operation that can fail, with a fixed code that
// callers branch on and a message that people read.
//
// Corrupt input, missing objects and I/O failures are expected in a data tool,
// so they are values, not exceptions. Each layer adds context on the way up
// (dataset, tensor, chunk, sample) with WithContext().
//
// Thread-safety: a Status is an immutable value; copies may be used from any
// thread.
#ifndef SHOAL_BASE_STATUS_H_
#define SHOAL_BASE_STATUS_H_

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

namespace shoal {

enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalidArgument,     // the caller asked for something malformed
  kNotFound,            // an object, tensor or file does not exist
  kAlreadyExists,       // creating something that is already there
  kOutOfRange,          // an index past the end
  kFailedPrecondition,  // e.g. a write on a read-only dataset
  kCorruption,          // stored bytes fail a check (checksum, bounds, codec)
  kIOError,             // the operating system refused a read or write
  kUnimplemented,       // a valid request this build cannot serve
  kCancelled,           // stopped on request
  kResourceExhausted,   // a size cap or memory budget would be exceeded
  kInternal,            // a broken invariant inside shoal (a bug)
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  /// The OK status. Cheap: holds no allocation.
  Status() = default;
  Status(StatusCode code, std::string message);

  static Status OK() { return Status(); }

  bool ok() const { return state_ == nullptr; }
  StatusCode code() const { return ok() ? StatusCode::kOk : state_->code; }
  /// The message without the code name; empty when OK.
  std::string_view message() const;
  /// "Corruption: tensor 'images': chunk 'c0f3...': block 2 checksum mismatch".
  std::string ToString() const;

  /// Returns this status with `context` prepended to the message
  /// ("context: message"); OK stays OK.
  Status WithContext(std::string_view context) const;

  bool operator==(const Status& other) const {
    return code() == other.code() && message() == other.message();
  }

 private:
  struct State {
    StatusCode code;
    std::string message;
  };
  // Shared so copies are cheap; never mutated after construction.
  std::shared_ptr<const State> state_;
};

std::ostream& operator<<(std::ostream& os, const Status& status);

// Helpers so call sites read as the error they raise.
Status InvalidArgument(std::string message);
Status NotFound(std::string message);
Status AlreadyExists(std::string message);
Status OutOfRange(std::string message);
Status FailedPrecondition(std::string message);
Status Corruption(std::string message);
Status IOError(std::string message);
Status Unimplemented(std::string message);
Status Cancelled(std::string message);
Status ResourceExhausted(std::string message);
Status Internal(std::string message);

/// An IOError whose message ends with strerror(errnum), e.g.
/// "open /data/x: No such file or directory". ENOENT becomes NotFound.
Status ErrnoStatus(std::string_view what, int errnum);

}  // namespace shoal

#define SHOAL_CONCAT_INNER_(a, b) a##b
#define SHOAL_CONCAT_(a, b) SHOAL_CONCAT_INNER_(a, b)

/// Evaluates `expr` (a Status); returns it from the enclosing function if it
/// is not OK.
#define SHOAL_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::shoal::Status shoal_status_ = (expr);        \
    if (!shoal_status_.ok()) return shoal_status_; \
  } while (false)

#endif  // SHOAL_BASE_STATUS_H_
