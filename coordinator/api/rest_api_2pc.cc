// RestApi: the 2PC routes (docs/2pc.md "Client calls").
//
//   POST /v1/2pc                    {"gtid"?, "timeout_ms"?, "one_phase"?}
//        -> 201 {"gtid","state":"ACTIVE"} (200 for a repeated identical begin)
//   POST /v1/2pc/{gtid}/branches    {"name","prepare","commit","abort","payload"?,"timeout_ms"?}
//        -> 201 {"gtid","branch","state"}
//   POST /v1/2pc/{gtid}/commit      -> 200 {"gtid","state"}: the durable decision
//   POST /v1/2pc/{gtid}/abort       -> 200 {"gtid","state"}; 409 once COMMITTING
//
// With authentication on, the client that began a transaction is the only
// one that may enlist, commit or abort it (or repeat its begin): others get
// 403 "forbidden" (TxnService::Begin2pc).

#include <nlohmann/json.hpp>

#include "api/rest_api.h"
#include "api/txn_json.h"
#include "common/json_input.h"
#include "common/trace_context.h"
#include "engine/two_phase_spec.h"

namespace treaty {
namespace {

using nlohmann::json;

// The caller's name for the 2PC client binding; empty with authentication off.
std::string ClientName(const Identity& who) {
  return who.method == AuthMethod::kNone ? std::string() : who.name;
}

TwoPhaseLimits Limits(const SpecLimits& spec) {
  TwoPhaseLimits limits;
  limits.max_gtid_length = spec.max_gtid_length;
  limits.max_name_length = spec.max_name_length;
  return limits;
}

}  // namespace

void RestApi::Begin2pc(const RouteCall& call, HttpResponder respond) {
  if (RefuseNewWork(respond)) return;
  const HttpRequest& req = call.req;
  Result<json> body =
      req.body.empty() ? Result<json>(json::object()) : ParseJson(req.body, "the request body");
  if (!body.ok()) {
    respond(ErrorResponse(body.status()));
    return;
  }
  auto spec = ParseTwoPhaseSpec(*body, Limits(options_.limits));
  if (!spec.ok()) {
    respond(ErrorResponse(spec.status()));
    return;
  }
  spec->client = ClientName(call.who);
  spec->trace = TraceFromHeaders(req.Header("traceparent"), req.Header("tracestate"));
  service_->Begin2pc(
      std::move(*spec),
      AnswerWith<SubmitResult>(std::move(respond), "POST /v1/2pc", [](const SubmitResult& r) {
        return JsonResponse(r.created ? 201 : 200, TxnStateJson(r.gtid, r.state));
      }));
}

void RestApi::Call2pc(const RouteCall& call, std::string_view action, HttpResponder respond) {
  const TwoPhaseLimits limits = Limits(options_.limits);
  const std::string& gtid = call.params["gtid"];
  if (auto s = ValidateGtid(gtid, limits.max_gtid_length); !s.ok()) {
    respond(ErrorResponse(s));
    return;
  }
  const auto state_200 = [](const SubmitResult& r) {
    return JsonResponse(200, TxnStateJson(r.gtid, r.state));
  };
  const std::string client = ClientName(call.who);
  if (action == "commit") {
    service_->Commit2pc(
        gtid, client,
        AnswerWith<SubmitResult>(std::move(respond), "POST /v1/2pc/{gtid}/commit", state_200));
  } else if (action == "abort") {
    service_->Abort2pc(
        gtid, client,
        AnswerWith<SubmitResult>(std::move(respond), "POST /v1/2pc/{gtid}/abort", state_200));
  } else {
    Result<json> body = ParseJson(call.req.body, "the request body");
    if (!body.ok()) {
      respond(ErrorResponse(body.status()));
      return;
    }
    auto branch = ParseBranchSpec(*body, limits);
    if (!branch.ok()) {
      respond(ErrorResponse(branch.status()));
      return;
    }
    std::string name = branch->name;
    service_->RegisterBranch(
        gtid, std::move(*branch), client,
        AnswerWith<SubmitResult>(
            std::move(respond), "POST /v1/2pc/{gtid}/branches", [name](const SubmitResult& r) {
              return JsonResponse(
                  201, DumpJson({{"gtid", r.gtid}, {"branch", name}, {"state", r.state}}));
            }));
  }
}

}  // namespace treaty
