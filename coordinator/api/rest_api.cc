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

RestApi::RestApi(TxnService* service, TxnQueries* queries, Readiness* readiness,
                 TaskRunner* blocking, RestApiOptions options)
    : service_(service),
      queries_(queries),
      readiness_(readiness),
      blocking_(blocking),
      options_(options) {
  AccessGateOptions open;
  open.listener_loopback = false;                   // any Host
  auto gate = AccessGate::Create(std::move(open));  // no host list: cannot fail
  own_gate_ = std::move(*gate);
  gate_ = own_gate_.get();
  AddRoutes();
}

// The REST routes, each with the access it needs (docs/security.md "Roles").
void RestApi::AddRoutes() {
  Router& r = router_;
  r.Add({"GET"}, "/healthz", RouteAccess::Probe(), [](const RouteCall&, HttpResponder& respond) {
    respond(JsonResponse(200, R"({"status":"ok"})"));
  });
  r.Add({"GET"}, "/readyz", RouteAccess::Probe(),
        [this](const RouteCall&, HttpResponder& respond) { Ready(std::move(respond)); });
  r.Add({"POST"}, "/v1/sagas", RouteAccess::Needs(Role::kSubmit),
        [this](const RouteCall& call, HttpResponder& respond) {
          SubmitSaga(call.req, std::move(respond));
        });
  r.Add({"GET"}, "/v1/transactions", RouteAccess::Needs(Role::kRead),
        [this](const RouteCall& call, HttpResponder& respond) {
          ListTransactions(call.req, std::move(respond));
        });
  r.Add({"GET"}, "/v1/transactions/{gtid}", RouteAccess::Needs(Role::kRead),
        [this](const RouteCall& call, HttpResponder& respond) {
          GetTransaction(call, std::move(respond));
        });
  // Operator actions: audited, admitted or refused.
  for (const char* action : {"retry", "abort", "pause", "resume"}) {
    r.Add({"POST"}, std::string("/v1/transactions/{gtid}/") + action,
          RouteAccess::Audited(Role::kOperate, action, /*when_admitted=*/true),
          [this, action](const RouteCall& call, HttpResponder& respond) {
            OperatorAction(call, action, std::move(respond));
          });
  }
  r.Add({"POST"}, "/v1/transactions/{gtid}/branches/{branch}/resolve",
        RouteAccess::Audited(Role::kOperate, "resolve", /*when_admitted=*/true),
        [this](const RouteCall& call, HttpResponder& respond) {
          OperatorAction(call, "resolve", std::move(respond));
        });
  r.Add({"POST"}, "/v1/2pc", RouteAccess::Needs(Role::kSubmit),
        [this](const RouteCall& call, HttpResponder& respond) {
          Begin2pc(call, std::move(respond));
        });
  for (const char* action : {"branches", "commit", "abort"}) {
    r.Add({"POST"}, std::string("/v1/2pc/{gtid}/") + action, RouteAccess::Needs(Role::kSubmit),
          [this, action](const RouteCall& call, HttpResponder& respond) {
            Call2pc(call, action, std::move(respond));
          });
  }
  r.Add({"GET"}, "/v1/cluster", RouteAccess::Needs(Role::kRead),
        [this](const RouteCall&, HttpResponder& respond) { Cluster(std::move(respond)); });
  // The dashboard's sign-in (dashboard_session.h): signing in and out is
  // open, "who am I" needs read.
  const RouteHandler session = [this](const RouteCall& call, HttpResponder& respond) {
    gate_->sessions().Handle(call.req, call.who, respond);
  };
  r.Add({"POST", "DELETE"}, "/v1/session", RouteAccess::Open(), session);
  r.Add({"GET", "HEAD"}, "/v1/session", RouteAccess::Needs(Role::kRead), session);
}

void RestApi::Handle(HttpRequest req, HttpResponder respond) {
  // Security headers on every answer, the 500 of a dropped request included.
  respond = OwedResponder(gate_->Secure(std::move(respond)));
  AnswerGuarded(respond, "REST handler", [&] {
    std::optional<Identity> who = gate_->Admit(req, router_, respond);
    if (!who) return;
    if (router_.Dispatch(req, *who, respond) != Router::Outcome::kMatched) {
      respond(ErrorResponse(NoRoute(req)));  // a wrong method too: see router.h
    }
  });
}

bool RestApi::RefuseNewWork(HttpResponder& respond) {
  Status admitted = readiness_->AdmitNewWork();
  if (admitted.ok()) return false;
  respond(ErrorResponse(admitted));
  return true;
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
  if (auto s = CheckQueryParameters(req, {"wait_timeout_ms"}); !s.ok()) {
    respond(ErrorResponse(s));
    return;
  }
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

void RestApi::Ready(HttpResponder respond) {
  readiness_->Check([respond = std::move(respond)](Status s) {
    AnswerGuarded(respond, "GET /readyz", [&] {
      respond(s.ok() ? JsonResponse(200, R"({"status":"ready"})") : ErrorResponse(s));
    });
  });
}

}  // namespace treaty
