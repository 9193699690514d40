#pragma once

// treaty::Status and treaty::Result<T>: how every fallible call in Treaty
// reports failure, in the coordinator and in the participant SDK (libtreaty)
// alike. This is the one Status of the project: it belongs to the base
// library (treaty_common) and is installed with the SDK's headers.
//
// No exception crosses a module boundary, and none leaves the SDK: library
// exceptions (libpqxx, Thrift, Beast) are caught in one wrapper per library
// and turned into a Status with a domain code.
//
// Thread-safety: a Status is a value; distinct objects may be used from
// distinct threads, one object needs outside synchronisation to be changed.

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace treaty {

// kInternal stays the last code (control_socket.cc iterates the codes up to
// it).
enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // the caller's input is wrong; retrying will not help
  kNotFound,         // no such transaction / branch (coordinator: presumed aborted)
  kConflict,         // contradicts what is already logged (e.g. a gtid reused with another body)
  kBusinessFailure,  // a participant refused on business grounds: 409 / FAILED / vote NO; never
                     // retried
  kTimedOut,         // a deadline passed before the operation finished
  kUnavailable,  // a dependency (log store, coordinator, participant) cannot be reached now; retry
  kLostOwnership,     // fencing: this coordinator no longer owns the transaction ("not_owner")
  kTooLarge,          // a body or field exceeds a configured limit
  kUnauthenticated,   // no valid credentials (HTTP 401): a missing or wrong token; never retried
  kPermissionDenied,  // valid credentials without the role needed (HTTP 403); never retried
  kInternal,          // a bug or an unexpected library failure; transient for the protocol
};

// "InvalidArgument", "BusinessFailure", "LostOwnership", ...: the name used by
// Status::ToString.
const char* StatusCodeName(StatusCode code);

// The "code" of a JSON error body {"error":{"code":...,"message":...}}:
// "invalid_argument", "not_found", "conflict", "business_failure",
// "timed_out", "unavailable", "not_owner", "too_large", "unauthenticated",
// "forbidden", "internal" ("ok" for kOk). The coordinator's REST API
// (docs/api.md) and the participant server (docs/protocol.md) both answer
// with these; ErrorCodeFromName reads them back.
const char* ErrorCodeName(StatusCode code);
// The code whose ErrorCodeName is `name`; kInternal for an unknown name.
StatusCode ErrorCodeFromName(const std::string& name);

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
