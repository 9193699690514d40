// RestApi: the 2PC routes (DESIGN.md "Client API").
//
//   POST /v1/2pc                    {"gtid"?, "timeout_ms"?, "one_phase"?}
//        -> 201 {"gtid","state":"ACTIVE"} (200 for a repeated identical begin)
//   POST /v1/2pc/{gtid}/branches    {"name","prepare","commit","abort","payload"?,"timeout_ms"?}
//        -> 201 {"gtid","branch","state"}
//   POST /v1/2pc/{gtid}/commit      -> 200 {"gtid","state"}: the durable decision
//   POST /v1/2pc/{gtid}/abort       -> 200 {"gtid","state"}; 409 once COMMITTING

#include <nlohmann/json.hpp>

#include "api/rest_api.h"
#include "engine/two_phase_spec.h"

namespace treaty {
namespace {

using nlohmann::json;

void AnswerState(HttpResponder respond, int ok_status, Result<SubmitResult> r) {
  if (!r.ok()) {
    respond(ErrorResponse(r.status()));
    return;
  }
  respond(JsonResponse(ok_status, json({{"gtid", r->gtid}, {"state", r->state}}).dump()));
}

}  // namespace

void RestApi::Handle2pc(const HttpRequest& req, HttpResponder respond) {
  if (req.method != "POST") {
    respond(ErrorResponse(Status::NotFound("no route for " + req.method + " " + req.path)));
    return;
  }
  TwoPhaseLimits limits;
  limits.max_gtid_length = options_.limits.max_gtid_length;
  limits.max_name_length = options_.limits.max_name_length;

  if (req.path == "/v1/2pc") {
    if (RefuseNewWork(respond)) return;
    json body = req.body.empty() ? json::object() : json::parse(req.body, nullptr, false);
    if (body.is_discarded()) {
      respond(ErrorResponse(Status::InvalidArgument("the request body is not valid JSON")));
      return;
    }
    auto spec = ParseTwoPhaseSpec(body, limits);
    if (!spec.ok()) {
      respond(ErrorResponse(spec.status()));
      return;
    }
    service_->Begin2pc(std::move(*spec), [respond = std::move(respond)](Result<SubmitResult> r) {
      AnswerState(respond, r.ok() && !r->created ? 200 : 201, std::move(r));
    });
    return;
  }

  // /v1/2pc/{gtid}/{action}
  const std::string rest = req.path.substr(std::string("/v1/2pc/").size());
  const auto slash = rest.find('/');
  const std::string gtid = rest.substr(0, slash);
  const std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (action != "branches" && action != "commit" && action != "abort") {
    respond(ErrorResponse(Status::NotFound("no route for POST " + req.path)));
    return;
  }
  if (auto s = ValidateGtid(gtid, limits.max_gtid_length); !s.ok()) {
    respond(ErrorResponse(s));
    return;
  }
  if (action == "commit") {
    service_->Commit2pc(gtid, [respond = std::move(respond)](Result<SubmitResult> r) {
      AnswerState(respond, 200, std::move(r));
    });
  } else if (action == "abort") {
    service_->Abort2pc(gtid, [respond = std::move(respond)](Result<SubmitResult> r) {
      AnswerState(respond, 200, std::move(r));
    });
  } else {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded()) {
      respond(ErrorResponse(Status::InvalidArgument("the request body is not valid JSON")));
      return;
    }
    auto branch = ParseBranchSpec(body, limits);
    if (!branch.ok()) {
      respond(ErrorResponse(branch.status()));
      return;
    }
    std::string name = branch->name;
    service_->RegisterBranch(
        gtid, std::move(*branch), [respond = std::move(respond), name](Result<SubmitResult> r) {
          if (!r.ok()) {
            respond(ErrorResponse(r.status()));
            return;
          }
          respond(JsonResponse(
              201, json({{"gtid", r->gtid}, {"branch", name}, {"state", r->state}}).dump()));
        });
  }
}

}  // namespace treaty
