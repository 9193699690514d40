#pragma once

// RestApi: the REST front end (README "Submitting a saga", docs/2pc.md, docs/input-rules.md), a
// thin adapter from HTTP requests to TxnService calls and from results to JSON. It validates input
// (JSON syntax, fields, limits) and maps Status codes to HTTP:
//   InvalidArgument 400, NotFound 404, Conflict/LostOwnership 409,
//   TooLarge 413, Unavailable 503, TimedOut 504, Internal 500;
// errors are {"error":{"code","message"}}. It never blocks the caller's
// thread: store reads go through TxnService or the blocking runner.
//
// Input rules (docs/input-rules.md): every body is parsed with ParseJson
// (depth <= 64, valid UTF-8); gtids in paths follow the identifier rules;
// query parameters are checked (integers digits only, `state` a known
// state, `kind` saga|2pc, `gtid_prefix` identifier characters,
// `needs_attention` and `paused` true|false, `cursor` exactly as a previous
// page returned it); each refusal is a 400 naming the field. Operator
// action bodies follow api/operator_input.h. Errors never echo raw input bytes. Every JSON answer
// is serialized with DumpJson (cannot throw on data), and every completion runs under
// AnswerGuarded: an exception becomes a 500 and one log line, and a request
// dropped unanswered gets a 500 (OwedResponder).
//
// Access (docs/security.md): every request passes the AccessGate first
// (Host allow-list, authentication, the route's role, CSRF rules, security
// headers, the audit of operator actions); routes get the identity it
// admitted, and operator actions name "<name>@<peer ip:port>" as actor.

#include <atomic>
#include <functional>
#include <string>

#include "api/access_gate.h"
#include "common/task_runner.h"
#include "engine/txn_service.h"
#include "http/http_server.h"
#include "http/http_types.h"
#include "store/log_store.h"
#include "store/store_health.h"

namespace treaty {

struct RestApiOptions {
  SpecLimits limits;
  int max_list_limit = 1000;
};

// Extra routes served beside the REST API (dashboard, metrics), given the
// identity the AccessGate admitted; return false to fall through.
using ExtraRoute = std::function<bool(const HttpRequest&, const Identity&, HttpResponder&)>;

class RestApi {
 public:
  RestApi(TxnService* service, LogStore* store, TaskRunner* blocking, RestApiOptions options);

  // The HttpHandler of the coordinator's HTTP server.
  void Handle(HttpRequest request, HttpResponder respond);

  // While draining, new work is refused (503) and /readyz fails.
  void set_draining(bool on) { draining_ = on; }
  // Optional, not owned: while it reports the log store unreachable or
  // stalled, new work (POST /v1/sagas, POST /v1/2pc) is refused at once with
  // 503 and /readyz answers 503 with the reason, without a store call.
  void set_store_health(StoreHealth* health) { health_ = health; }
  // Optional: a small committed write (blocking, bounded by the store's
  // deadline) that /readyz runs before its read check, so readiness fails
  // while writes fail (e.g. a read-only database) even when SELECT works.
  // Its outcome is reported to the StoreHealth. At most one runs at a time;
  // while the health is bad /readyz answers 503 at once and runs the probe
  // in the background, so readiness comes back by itself without traffic.
  void set_write_probe(std::function<Status()> probe) { write_probe_ = std::move(probe); }
  void set_extra_routes(ExtraRoute route) { extra_ = std::move(route); }
  // Not owned; set before serving. Without one, a gate with authentication
  // off that accepts any Host (in-process tests of the API alone).
  void set_access_gate(AccessGate* gate) { gate_ = gate; }

 private:
  void Route(const HttpRequest& req, const Identity& who, HttpResponder& respond);
  void SubmitSaga(const HttpRequest& req, HttpResponder respond);
  // POST /v1/2pc[/{gtid}/branches|commit|abort] (rest_api_2pc.cc). With
  // authentication on, a transaction is bound to `who` at begin and only
  // that client may drive it (403 for others).
  void Handle2pc(const HttpRequest& req, const Identity& who, HttpResponder respond);
  void GetTransaction(const std::string& gtid, HttpResponder respond);
  void ListTransactions(const HttpRequest& req, HttpResponder respond);
  // GET /v1/transactions/{gtid} and the operator actions under it
  // (rest_api_operator.cc).
  void TransactionRoute(const HttpRequest& req, const Identity& who, HttpResponder respond);
  void Cluster(HttpResponder respond);
  void Ready(HttpResponder respond);

  TxnService* service_;
  LogStore* store_;
  TaskRunner* blocking_;
  RestApiOptions options_;
  std::atomic<bool> draining_{false};
  StoreHealth* health_ = nullptr;
  std::function<Status()> write_probe_;
  std::atomic<bool> probing_{false};
  // Runs the write probe unless one is running (then OK: that one reports);
  // blocking.
  Status ProbeWrites();
  // 503 for new work while draining or while the log store is unreachable.
  bool RefuseNewWork(HttpResponder& respond);
  ExtraRoute extra_;
  std::unique_ptr<AccessGate> own_gate_;  // the gate without set_access_gate
  AccessGate* gate_;
};

// JSON helpers shared with other front ends and tools.
HttpResponse JsonResponse(int status, const std::string& body);
// The JSON error answer of `status` (DumpJson: never throws on data):
// Unauthenticated is 401 "unauthenticated" with WWW-Authenticate: Bearer
// realm="treaty", PermissionDenied 403 "forbidden".
HttpResponse ErrorResponse(const Status& status);
// A JSON error answer with an HTTP status no StatusCode maps to (415, 421,
// 429): {"error":{"code": code, "message": message}}.
HttpResponse ErrorAnswer(int http_status, std::string_view code, const std::string& message);
// NotFound "no route for METHOD PATH", the request's text shown safely
// (valid UTF-8, control characters escaped, cut to 200 bytes).
Status NoRoute(const HttpRequest& req);
std::string TxnDetailJson(const TxnDetail& detail, bool with_events);
std::string TxnRowJson(const TxnRow& row);

// A TxnService callback that answers through `respond`: an error Status
// becomes ErrorResponse, a value becomes `answer(value)`; an exception on the
// way becomes a 500 and one log line naming `where` (AnswerGuarded).
template <class T, class Fn>
TxnService::Callback<T> AnswerWith(HttpResponder respond, const char* where, Fn answer) {
  return [respond = std::move(respond), where, answer = std::move(answer)](Result<T> r) mutable {
    AnswerGuarded(respond, where,
                  [&] { respond(r.ok() ? answer(*r) : ErrorResponse(r.status())); });
  };
}

}  // namespace treaty
