#pragma once

// Status and Result<T>: how every fallible call in Treaty reports failure.
// No exception crosses a module boundary; library exceptions (libpqxx,
// Thrift, Beast) are caught in one wrapper per library and turned into a
// Status with a domain code.

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace treaty {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // the caller's input is wrong; retrying will not help
  kNotFound,          // no such transaction / branch / coordinator
  kConflict,          // the request contradicts what is already logged
  kTimedOut,          // a deadline passed before the operation finished
  kUnavailable,       // a dependency (log store, participant) cannot be reached now
  kLostOwnership,     // fencing: this coordinator no longer owns the transaction
  kTooLarge,          // a body or field exceeds a configured limit
  kUnauthenticated,   // no valid credentials (REST 401)
  kPermissionDenied,  // valid credentials without the role needed (REST 403)
  kInternal,          // a bug or an unexpected library failure
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status Conflict(std::string m) { return {StatusCode::kConflict, std::move(m)}; }
  static Status TimedOut(std::string m) { return {StatusCode::kTimedOut, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status LostOwnership(std::string m) { return {StatusCode::kLostOwnership, std::move(m)}; }
  static Status TooLarge(std::string m) { return {StatusCode::kTooLarge, std::move(m)}; }
  static Status Unauthenticated(std::string m) {
    return {StatusCode::kUnauthenticated, std::move(m)};
  }
  static Status PermissionDenied(std::string m) {
    return {StatusCode::kPermissionDenied, std::move(m)};
  }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NotFound: transaction abc not found", or "OK".
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(v_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace treaty
