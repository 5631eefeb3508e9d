// Result<T>: either a value of type T or a non-OK Status explaining why there
// is none. Returned by every fallible function that produces something.
//
// Thread-safety: like T; a const Result may be read from several threads.
#ifndef SHOAL_BASE_RESULT_H_
#define SHOAL_BASE_RESULT_H_

#include <cstdlib>
#include <type_traits>
#include <utility>
#include <variant>

#include "base/status.h"

namespace shoal {

template <typename T>
class [[nodiscard]] Result {
 public:
  /// A value. Implicit so `return value;` works.
  Result(T value) : v_(std::in_place_index<1>, std::move(value)) {}  // NOLINT
  /// An error. Implicit so `return status;` works. An OK status here is a bug
  /// in the caller and is turned into kInternal.
  Result(Status status)  // NOLINT
      : v_(std::in_place_index<0>,
           status.ok() ? Internal("Result built from an OK status")
                       : std::move(status)) {}

  bool ok() const { return v_.index() == 1; }
  /// OK when a value is present.
  Status status() const { return ok() ? Status() : std::get<0>(v_); }

  /// Preconditions for the accessors below: ok(). Violations abort with the
  /// error, since continuing would read a value that does not exist.
  T& value() & {
    CheckOk();
    return std::get<1>(v_);
  }
  const T& value() const& {
    CheckOk();
    return std::get<1>(v_);
  }
  T&& value() && {
    CheckOk();
    return std::get<1>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The value, or `fallback` when there is none.
  T value_or(T fallback) const& { return ok() ? std::get<1>(v_) : fallback; }

 private:
  void CheckOk() const;
  std::variant<Status, T> v_;
};

[[noreturn]] void AbortOnBadResultAccess(const Status& status);

template <typename T>
void Result<T>::CheckOk() const {
  if (!ok()) AbortOnBadResultAccess(std::get<0>(v_));
}

}  // namespace shoal

/// Evaluates `rexpr` (a Result<T>); on error returns its status from the
/// enclosing function, otherwise moves the value into `lhs` (which may be a
/// declaration: `SHOAL_ASSIGN_OR_RETURN(auto x, F());`).
#define SHOAL_ASSIGN_OR_RETURN(lhs, rexpr)                                  \
  SHOAL_ASSIGN_OR_RETURN_IMPL_(SHOAL_CONCAT_(shoal_result_, __LINE__), lhs, \
                               rexpr)

#define SHOAL_ASSIGN_OR_RETURN_IMPL_(result, lhs, rexpr) \
  auto result = (rexpr);                                 \
  if (!result.ok()) return result.status();              \
  lhs = std::move(result).value()

#endif  // SHOAL_BASE_RESULT_H_
