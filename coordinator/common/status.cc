#include "treaty/status.h"

namespace treaty {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kInvalidArgument:
      return "InvalidArgument";
    case StatusCode::kNotFound:
      return "NotFound";
    case StatusCode::kConflict:
      return "Conflict";
    case StatusCode::kBusinessFailure:
      return "BusinessFailure";
    case StatusCode::kTimedOut:
      return "TimedOut";
    case StatusCode::kUnavailable:
      return "Unavailable";
    case StatusCode::kLostOwnership:
      return "LostOwnership";
    case StatusCode::kTooLarge:
      return "TooLarge";
    case StatusCode::kUnauthenticated:
      return "Unauthenticated";
    case StatusCode::kPermissionDenied:
      return "PermissionDenied";
    case StatusCode::kInternal:
      return "Internal";
  }
  return "Unknown";
}

const char* ErrorCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      return "invalid_argument";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kConflict:
      return "conflict";
    case StatusCode::kBusinessFailure:
      return "business_failure";
    case StatusCode::kTimedOut:
      return "timed_out";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kLostOwnership:
      return "not_owner";
    case StatusCode::kTooLarge:
      return "too_large";
    case StatusCode::kUnauthenticated:
      return "unauthenticated";
    case StatusCode::kPermissionDenied:
      return "forbidden";
    case StatusCode::kInternal:
      return "internal";
  }
  return "internal";
}

StatusCode ErrorCodeFromName(const std::string& name) {
  for (int c = static_cast<int>(StatusCode::kOk); c <= static_cast<int>(StatusCode::kInternal);
       ++c) {
    const auto code = static_cast<StatusCode>(c);
    if (name == ErrorCodeName(code)) return code;
  }
  return StatusCode::kInternal;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

}  // namespace treaty
