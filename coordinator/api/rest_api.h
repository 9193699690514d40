#pragma once

// RestApi: the REST front end (docs/api.md, docs/openapi.json; docs/2pc.md,
// docs/input-rules.md), a thin adapter from HTTP requests to TxnService calls
// (work) and TxnQueries calls (reads) and from results to JSON
// (api/txn_json.h). It validates input (JSON syntax, fields, limits) and maps
// Status codes to HTTP with the one table of api/http_answers.h; errors are
// {"error":{"code","message"}}. It never blocks the caller's thread: reads go
// through TxnQueries, and /readyz and the refusal of new work (503) are
// Readiness's answers (engine/readiness.h).
//
// Routing: one Router (api/router.h) holds every route of the listener, the
// REST routes below and those other parts add (OpsRoutes::AddRoutes), each
// with the access it needs; a request no route takes, or whose method its
// path does not serve, is a 404 "no route for METHOD PATH".
//
// Input rules (docs/input-rules.md): every body is parsed with ParseJson
// (depth <= 64, a payload within it <= 32, valid UTF-8); gtids in paths follow the identifier
// rules; query parameters are checked (integers digits only, `state` a known state, `kind`
// saga|2pc, `gtid_prefix` identifier characters, `needs_attention` and `paused` true|false,
// `cursor` exactly as a previous page returned it); each refusal is a 400 naming the field.
// Operator action bodies follow api/operator_input.h. Errors never echo raw input bytes. Every JSON
// answer is serialized with DumpJson (cannot throw on data), and every completion runs under
// AnswerGuarded: an exception becomes a 500 and one log line, and a request
// dropped unanswered gets a 500 (OwedResponder).
//
// Access (docs/security.md): every request passes the AccessGate first
// (Host allow-list, authentication, the role its route was added with, CSRF
// rules, security headers, the audit of operator actions); routes get the
// identity it admitted, and operator actions name "<name>@<peer ip:port>" as
// actor.

#include <functional>
#include <memory>
#include <string>

#include "api/access_gate.h"
#include "api/http_answers.h"
#include "api/router.h"
#include "common/task_runner.h"
#include "engine/readiness.h"
#include "engine/txn_queries.h"
#include "engine/txn_service.h"
#include "http/http_types.h"

namespace treaty {

struct RestApiOptions {
  SpecLimits limits;
  int max_list_limit = 1000;
};

class RestApi {
 public:
  // Every pointer is borrowed and must outlive this object. `readiness`
  // answers /readyz and whether new work (POST /v1/sagas, POST /v1/2pc) is
  // accepted; `blocking` gives the clock of list filters.
  RestApi(TxnService* service, TxnQueries* queries, Readiness* readiness, TaskRunner* blocking,
          RestApiOptions options);

  // The HttpHandler of the coordinator's HTTP server.
  void Handle(HttpRequest request, HttpResponder respond);

  // The route table; other parts add their routes to it before serving.
  Router* router() { return &router_; }

  // Not owned; set before serving. Without one, a gate with authentication
  // off that accepts any Host (in-process tests of the API alone).
  void set_access_gate(AccessGate* gate) { gate_ = gate; }

 private:
  // Adds the REST routes to router_ (the table is in rest_api.cc).
  void AddRoutes();
  void SubmitSaga(const HttpRequest& req, HttpResponder respond);
  void ListTransactions(const HttpRequest& req, HttpResponder respond);
  void Cluster(HttpResponder respond);
  void Ready(HttpResponder respond);
  // POST /v1/2pc and /v1/2pc/{gtid}/branches|commit|abort (rest_api_2pc.cc).
  // With authentication on, a transaction is bound to the caller at begin and
  // only that client may drive it (403 for others).
  void Begin2pc(const RouteCall& call, HttpResponder respond);
  void Call2pc(const RouteCall& call, std::string_view action, HttpResponder respond);
  // GET /v1/transactions/{gtid} and the operator actions under it
  // (rest_api_operator.cc).
  void GetTransaction(const RouteCall& call, HttpResponder respond);
  void OperatorAction(const RouteCall& call, std::string_view action, HttpResponder respond);

  TxnService* service_;
  TxnQueries* queries_;
  Readiness* readiness_;
  TaskRunner* blocking_;
  RestApiOptions options_;
  Router router_;
  // Answers 503 and returns true when Readiness does not admit new work.
  bool RefuseNewWork(HttpResponder& respond);
  std::unique_ptr<AccessGate> own_gate_;  // the gate without set_access_gate
  AccessGate* gate_;
};

}  // namespace treaty
