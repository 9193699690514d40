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
#include "common/json_input.h"
#include "engine/two_phase_spec.h"

namespace treaty {
namespace {

using nlohmann::json;

HttpResponse StateAnswer(int status, const SubmitResult& r) {
  return JsonResponse(status, DumpJson({{"gtid", r.gtid}, {"state", r.state}}));
}

// The caller's name for the 2PC client binding; empty with authentication off.
std::string ClientName(const Identity& who) {
  return who.method == AuthMethod::kNone ? std::string() : who.name;
}

}  // namespace

void RestApi::Handle2pc(const HttpRequest& req, const Identity& who, HttpResponder respond) {
  if (req.method != "POST") {
    respond(ErrorResponse(NoRoute(req)));
    return;
  }
  TwoPhaseLimits limits;
  limits.max_gtid_length = options_.limits.max_gtid_length;
  limits.max_name_length = options_.limits.max_name_length;

  if (req.path == "/v1/2pc") {
    if (RefuseNewWork(respond)) return;
    Result<json> body =
        req.body.empty() ? Result<json>(json::object()) : ParseJson(req.body, "the request body");
    if (!body.ok()) {
      respond(ErrorResponse(body.status()));
      return;
    }
    auto spec = ParseTwoPhaseSpec(*body, limits);
    if (!spec.ok()) {
      respond(ErrorResponse(spec.status()));
      return;
    }
    spec->client = ClientName(who);
    service_->Begin2pc(
        std::move(*spec),
        AnswerWith<SubmitResult>(std::move(respond), "POST /v1/2pc", [](const SubmitResult& r) {
          return StateAnswer(r.created ? 201 : 200, r);
        }));
    return;
  }

  // /v1/2pc/{gtid}/{action}
  const std::string rest = req.path.substr(std::string("/v1/2pc/").size());
  const auto slash = rest.find('/');
  const std::string gtid = rest.substr(0, slash);
  const std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (action != "branches" && action != "commit" && action != "abort") {
    respond(ErrorResponse(NoRoute(req)));
    return;
  }
  if (auto s = ValidateGtid(gtid, limits.max_gtid_length); !s.ok()) {
    respond(ErrorResponse(s));
    return;
  }
  const auto state_200 = [](const SubmitResult& r) { return StateAnswer(200, r); };
  const std::string client = ClientName(who);
  if (action == "commit") {
    service_->Commit2pc(
        gtid, client,
        AnswerWith<SubmitResult>(std::move(respond), "POST /v1/2pc/{gtid}/commit", state_200));
  } else if (action == "abort") {
    service_->Abort2pc(
        gtid, client,
        AnswerWith<SubmitResult>(std::move(respond), "POST /v1/2pc/{gtid}/abort", state_200));
  } else {
    Result<json> body = ParseJson(req.body, "the request body");
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
