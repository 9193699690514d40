#pragma once

// The JSON answers every HTTP route of the coordinator shares (REST, the ops
// routes, the AccessGate, the dashboard's sign-in): one error body,
//   {"error":{"code": CODE, "message": MESSAGE}}
// built by JsonError (http/http_request_parsing.h, which the HTTP server
// also uses for the answers it writes itself), and the one table from a
// Status to an HTTP status and an error code:
//
//   StatusCode         HTTP  code
//   InvalidArgument    400   invalid_argument
//   Unauthenticated    401   unauthenticated (+ WWW-Authenticate: Bearer realm="treaty")
//   PermissionDenied   403   forbidden
//   NotFound           404   not_found
//   Conflict           409   conflict
//   BusinessFailure    409   business_failure (a participant's answer; not the coordinator's)
//   LostOwnership      409   not_owner
//   TooLarge           413   too_large
//   Unavailable        503   unavailable
//   TimedOut           504   timed_out
//   anything else      500   internal
//
// Every body is serialized with DumpJson (never throws on data; ill-formed
// UTF-8 becomes U+FFFD). Stateless and thread-safe.

#include <string>
#include <string_view>

#include "http/http_server.h"
#include "http/http_types.h"
#include "treaty/status.h"

namespace treaty {

// The HTTP status of a Status (the table above); its error code is
// ErrorCodeName (treaty/status.h).
int HttpStatusOf(StatusCode code);

// A JSON answer with `body` as it is.
HttpResponse JsonResponse(int status, const std::string& body);
// The JSON error answer of `status` (the table above).
HttpResponse ErrorResponse(const Status& status);
// A JSON error answer with an HTTP status no StatusCode maps to (415, 421,
// 429): {"error":{"code": code, "message": message}}.
HttpResponse ErrorAnswer(int http_status, std::string_view code, const std::string& message);
// NotFound "no route for METHOD PATH", the request's text shown safely
// (valid UTF-8, control characters escaped, cut to 200 bytes).
Status NoRoute(const HttpRequest& req);

// A completion callback that answers through `respond`: an error Status
// becomes ErrorResponse, a value becomes `answer(value)`; an exception on the
// way becomes a 500 and one log line naming `where` (AnswerGuarded).
template <class T, class Fn>
std::function<void(Result<T>)> AnswerWith(HttpResponder respond, const char* where, Fn answer) {
  return [respond = std::move(respond), where, answer = std::move(answer)](Result<T> r) mutable {
    AnswerGuarded(respond, where,
                  [&] { respond(r.ok() ? answer(*r) : ErrorResponse(r.status())); });
  };
}

}  // namespace treaty
