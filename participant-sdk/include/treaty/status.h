#pragma once

// treaty::Status and treaty::Result<T>: how every fallible call of the
// participant SDK (libtreaty) reports failure. No exception leaves the SDK;
// libpqxx, HTTP and Thrift errors are turned into a Status with a code.
//
// The SDK's public names live in the inline namespace `treaty::sdk`, so user
// code writes `treaty::Status`, `treaty::Client`, ... while the symbols never
// collide with the coordinator's or Thrift-generated types linked into the
// same binary.

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace treaty {
inline namespace sdk {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // the caller's input is wrong; retrying will not help
  kNotFound,         // no such transaction (for the coordinator: presumed aborted)
  kConflict,         // contradicts what is already recorded (e.g. gtid reused with another body)
  kBusinessFailure,  // a handler refused on business grounds: 409 / FAILED / vote NO; never retried
  kTimedOut,         // a deadline passed before the operation finished
  kUnavailable,      // a dependency (coordinator, database) cannot be reached now; retry
  kInternal,         // a bug or an unexpected library failure; treated as transient by the protocol
  kUnauthenticated,  // no valid credentials (HTTP 401): a missing or wrong token; never retried
  kPermissionDenied,  // valid credentials without the role needed (HTTP 403); never retried
};

// "InvalidArgument", "BusinessFailure", ...: the name in Status::ToString,
// spelled as the coordinator spells its own StatusCode names.
const char* StatusCodeName(StatusCode code);

// "invalid_argument", "not_found", "conflict", "business_failure",
// "timed_out", "unavailable", "internal", "unauthenticated", "forbidden":
// the "code" of a JSON error body {"error":{"code":...,"message":...}},
// spelled as the coordinator's REST API spells it (docs/input-rules.md).
// The participant server answers with these.
const char* ErrorCodeName(StatusCode code);

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
  static Status BusinessFailure(std::string m) {
    return {StatusCode::kBusinessFailure, std::move(m)};
  }
  static Status TimedOut(std::string m) { return {StatusCode::kTimedOut, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status Unauthenticated(std::string m) {
    return {StatusCode::kUnauthenticated, std::move(m)};
  }
  static Status PermissionDenied(std::string m) {
    return {StatusCode::kPermissionDenied, std::move(m)};
  }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "BusinessFailure: no cars left", or "OK".
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

}  // namespace sdk
}  // namespace treaty
