#include "api/http_answers.h"

#include "common/text.h"
#include "http/http_request_parsing.h"

namespace treaty {

int HttpStatusOf(StatusCode c) {
  switch (c) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kConflict:
    case StatusCode::kBusinessFailure:
    case StatusCode::kLostOwnership:
      return 409;
    case StatusCode::kTooLarge:
      return 413;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kTimedOut:
      return 504;
    default:
      return 500;
  }
}

HttpResponse JsonResponse(int status, const std::string& body) {
  HttpResponse r;
  r.status = status;
  r.body = body;
  return r;
}

HttpResponse ErrorResponse(const Status& status) {
  HttpResponse r =
      ErrorAnswer(HttpStatusOf(status.code()), ErrorCodeName(status.code()), status.message());
  if (status.code() == StatusCode::kUnauthenticated) {
    r.headers.push_back({"WWW-Authenticate", "Bearer realm=\"treaty\""});
  }
  return r;
}

HttpResponse ErrorAnswer(int http_status, std::string_view code, const std::string& message) {
  return JsonResponse(http_status, JsonError(code, message));
}

Status NoRoute(const HttpRequest& req) {
  const auto shown = [](std::string_view s) { return Excerpt(EscapeControl(s), 200); };
  return Status::NotFound("no route for " + shown(req.method) + " " + shown(req.path));
}

}  // namespace treaty
