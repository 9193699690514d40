#include "api/rest_api.h"

#include <nlohmann/json.hpp>

#include "api/list_query.h"
#include "api/txn_json.h"
#include "common/json_input.h"
#include "common/trace_context.h"

namespace treaty {
namespace {

using nlohmann::json;

}  // namespace

RestApi::RestApi(TxnService* service, TxnQueries* queries, LogStore* store, TaskRunner* blocking,
                 RestApiOptions options)
    : service_(service), queries_(queries), store_(store), blocking_(blocking), options_(options) {
  AccessGateOptions open;
  open.listener_loopback = false;                   // any Host
  auto gate = AccessGate::Create(std::move(open));  // no host list: cannot fail
  own_gate_ = std::move(*gate);
  gate_ = own_gate_.get();
  AddRoutes();
}

// The REST routes. Their roles are in the AccessGate's table
// (access_gate_rules.cc, docs/security.md "Roles").
void RestApi::AddRoutes() {
  Router& r = router_;
  r.Add({"GET"}, "/healthz", [](const RouteCall&, HttpResponder& respond) {
    respond(JsonResponse(200, R"({"status":"ok"})"));
  });
  r.Add({"GET"}, "/readyz",
        [this](const RouteCall&, HttpResponder& respond) { Ready(std::move(respond)); });
  r.Add({"POST"}, "/v1/sagas", [this](const RouteCall& call, HttpResponder& respond) {
    SubmitSaga(call.req, std::move(respond));
  });
  r.Add({"GET"}, "/v1/transactions", [this](const RouteCall& call, HttpResponder& respond) {
    ListTransactions(call.req, std::move(respond));
  });
  r.Add({"GET"}, "/v1/transactions/{gtid}", [this](const RouteCall& call, HttpResponder& respond) {
    GetTransaction(call, std::move(respond));
  });
  for (const char* action : {"retry", "abort", "pause", "resume"}) {
    r.Add({"POST"}, std::string("/v1/transactions/{gtid}/") + action,
          [this, action](const RouteCall& call, HttpResponder& respond) {
            OperatorAction(call, action, std::move(respond));
          });
  }
  r.Add({"POST"}, "/v1/transactions/{gtid}/branches/{branch}/resolve",
        [this](const RouteCall& call, HttpResponder& respond) {
          OperatorAction(call, "resolve", std::move(respond));
        });
  r.Add({"POST"}, "/v1/2pc", [this](const RouteCall& call, HttpResponder& respond) {
    Begin2pc(call, std::move(respond));
  });
  for (const char* action : {"branches", "commit", "abort"}) {
    r.Add({"POST"}, std::string("/v1/2pc/{gtid}/") + action,
          [this, action](const RouteCall& call, HttpResponder& respond) {
            Call2pc(call, action, std::move(respond));
          });
  }
  r.Add({"GET"}, "/v1/cluster",
        [this](const RouteCall&, HttpResponder& respond) { Cluster(std::move(respond)); });
  // The dashboard's sign-in (dashboard_session.h) serves its own methods.
  r.Add({}, "/v1/session", [this](const RouteCall& call, HttpResponder& respond) {
    gate_->sessions().Handle(call.req, call.who, respond);
  });
}

void RestApi::Handle(HttpRequest req, HttpResponder respond) {
  // Security headers on every answer, the 500 of a dropped request included.
  respond = OwedResponder(gate_->Secure(std::move(respond)));
  AnswerGuarded(respond, "REST handler", [&] {
    std::optional<Identity> who = gate_->Admit(req, respond);
    if (!who) return;
    if (router_.Dispatch(req, *who, respond) != Router::Outcome::kMatched) {
      respond(ErrorResponse(NoRoute(req)));  // a wrong method too: see router.h
    }
  });
}

bool RestApi::RefuseNewWork(HttpResponder& respond) {
  if (draining_) {
    respond(ErrorResponse(Status::Unavailable("this coordinator is draining; use another")));
    return true;
  }
  if (health_ && !health_->AcceptsNewWork()) {
    // Nothing is accepted that cannot be logged: answer now rather than
    // after the log writer's retry window (the client retries; the gtid
    // makes that safe).
    std::string why = health_->Problem();
    if (why.empty()) why = "the transaction log is unreachable";
    respond(ErrorResponse(Status::Unavailable(why + "; retry later")));
    return true;
  }
  return false;
}

void RestApi::SubmitSaga(const HttpRequest& req, HttpResponder respond) {
  if (RefuseNewWork(respond)) return;
  Result<json> body = ParseJson(req.body, "the request body");
  if (!body.ok()) {
    respond(ErrorResponse(body.status()));
    return;
  }
  auto spec = ParseSagaSpec(*body, options_.limits);
  if (!spec.ok()) {
    respond(ErrorResponse(spec.status()));
    return;
  }
  spec->trace = TraceFromHeaders(req.Header("traceparent"), req.Header("tracestate"));
  auto wait_field = body->find("wait");  // ParseSagaSpec checked: boolean or null
  const bool wait =
      wait_field != body->end() && wait_field->is_boolean() && wait_field->get<bool>();
  std::optional<int64_t> wait_ms;
  if (auto s = QueryInt(req, "wait_timeout_ms", 1, 3600000, &wait_ms); !s.ok()) {
    respond(ErrorResponse(s));
    return;
  }
  service_->SubmitSaga(
      std::move(*spec), wait, wait_ms.value_or(0),
      AnswerWith<SubmitResult>(std::move(respond), "POST /v1/sagas", [](const SubmitResult& r) {
        // 201 created, 200 known (identical re-submission), 202 when `wait`
        // ran out before the saga finished.
        int status = r.wait_expired ? 202 : r.created ? 201 : 200;
        return JsonResponse(status, TxnStateJson(r.gtid, r.state));
      }));
}

void RestApi::ListTransactions(const HttpRequest& req, HttpResponder respond) {
  Result<ListFilter> f = ParseListFilter(req, options_.max_list_limit, blocking_->NowMs());
  if (!f.ok()) {
    respond(ErrorResponse(f.status()));
    return;
  }
  queries_->List(
      *f, AnswerWith<TxnPage>(std::move(respond), "GET /v1/transactions", [](const TxnPage& page) {
        return JsonResponse(200, TxnPageJson(page));
      }));
}

void RestApi::Cluster(HttpResponder respond) {
  queries_->Coordinators(AnswerWith<std::vector<CoordinatorRow>>(
      std::move(respond), "GET /v1/cluster", [](const std::vector<CoordinatorRow>& rows) {
        return JsonResponse(200, ClusterJson(rows));
      }));
}

Status RestApi::ProbeWrites() {
  if (!write_probe_ || probing_.exchange(true)) return Status::Ok();
  Status s = write_probe_();
  probing_ = false;
  // The membership row may be gone or taken (LostOwnership, NotFound): the
  // database answered, but nothing was written, which proves no commit
  // completes (a write that changes nothing need not wait for a standby):
  // tell StoreHealth nothing then.
  const bool failed = s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kInternal;
  if (health_ && (failed || s.ok())) {
    health_->Report(failed ? Status::Unavailable(s.message()) : Status::Ok());
  }
  return failed ? Status::Unavailable("writes to the transaction log fail: " + s.message())
                : Status::Ok();
}

void RestApi::Ready(HttpResponder respond) {
  if (draining_) {
    respond(ErrorResponse(Status::Unavailable("draining")));
    return;
  }
  if (health_ && (health_->stalled() || !health_->up())) {
    // Answer at once (a stalled store would hold this answer for its whole
    // deadline); probe in the background so readiness returns on its own.
    std::string why = health_->Problem();
    respond(
        ErrorResponse(Status::Unavailable(why.empty() ? "the transaction log is unwell" : why)));
    if (write_probe_ && !probing_.load()) {
      blocking_->Post([this] { (void)ProbeWrites(); });
    }
    return;
  }
  blocking_->Post([this, respond = std::move(respond)] {
    AnswerGuarded(respond, "GET /readyz", [&] {
      Status s = ProbeWrites();
      if (s.ok()) {
        s = store_->CheckReady();
        if (!s.ok()) s = Status(s.code(), "the transaction log is not ready: " + s.message());
      }
      respond(s.ok() ? JsonResponse(200, R"({"status":"ready"})") : ErrorResponse(s));
    });
  });
}

}  // namespace treaty
