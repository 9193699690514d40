// RestApi: one transaction's routes (docs/operations.md "Operator actions").
//
//   GET  /v1/transactions/{gtid}                         -> the transaction with history
//   POST /v1/transactions/{gtid}/retry                   {"reason"?}
//   POST /v1/transactions/{gtid}/abort                   {"reason"?}
//   POST /v1/transactions/{gtid}/pause                   {"reason"?}
//   POST /v1/transactions/{gtid}/resume                  {"reason"?}
//   POST /v1/transactions/{gtid}/branches/{branch}/resolve
//        {"outcome": "COMPENSATED"|"COMMITTED"|"ABORTED", "reason": "..." (required)}
//
// The body is optional except for resolve; when present it is a JSON object
// with only the fields above (unknown fields: 400 naming them). Answers:
// 200 {"gtid","state","paused","finished"}; 404 unknown gtid or branch; 409
// with the core's reason why the action cannot apply in this state; 400
// naming the field. The actor of the operator event is
// "<identity name>@<peer ip:port>" (the AccessGate checked the operate role
// and writes the audit record).

#include <nlohmann/json.hpp>

#include "api/operator_input.h"
#include "api/rest_api.h"
#include "api/txn_json.h"
#include "common/json_input.h"

namespace treaty {
namespace {

using nlohmann::json;

struct OperatorBody {
  std::string reason;
  std::string outcome;
};

// Reads an operator action's body: empty or a JSON object holding only
// "reason" (and, for resolve, "outcome"), each a string.
Result<OperatorBody> ParseOperatorBody(const std::string& text, bool resolve) {
  OperatorBody out;
  json body = json::object();
  if (!text.empty()) {
    Result<json> parsed = ParseJson(text, "the request body");
    if (!parsed.ok()) return parsed.status();
    if (!parsed->is_object()) return Status::InvalidArgument("the request body must be an object");
    body = std::move(*parsed);
  }
  for (const auto& [key, value] : body.items()) {
    if (key != "reason" && !(resolve && key == "outcome")) {
      return Status::InvalidArgument("unknown field '" + Excerpt(EscapeControl(key), 64) +
                                     "' (allowed: " + (resolve ? "outcome, reason" : "reason") +
                                     ")");
    }
  }
  const auto read = [&](const char* key, std::string* into) -> Status {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return Status::Ok();
    if (!it->is_string()) {
      return Status::InvalidArgument(std::string("'") + key + "' must be a string");
    }
    *into = it->get<std::string>();
    return Status::Ok();
  };
  if (auto s = read("reason", &out.reason); !s.ok()) return s;
  if (auto s = CheckReason(out.reason, resolve); !s.ok()) return s;
  if (resolve) {
    if (auto s = read("outcome", &out.outcome); !s.ok()) return s;
    if (out.outcome.empty()) {
      return Status::InvalidArgument(
          "missing required field 'outcome' (COMPENSATED, COMMITTED or ABORTED)");
    }
    if (auto s = CheckOutcome(out.outcome); !s.ok()) return s;
  }
  return out;
}

HttpResponse OperatorAnswer(const SubmitResult& r) {
  return JsonResponse(
      200,
      DumpJson(
          {{"gtid", r.gtid}, {"state", r.state}, {"paused", r.paused}, {"finished", r.finished}}));
}

}  // namespace

void RestApi::GetTransaction(const RouteCall& call, HttpResponder respond) {
  const std::string& gtid = call.params["gtid"];
  if (auto s = ValidateGtid(gtid, options_.limits.max_gtid_length); !s.ok()) {
    respond(ErrorResponse(s));
    return;
  }
  queries_->Get(gtid, true,
                AnswerWith<TxnDetail>(
                    std::move(respond), "GET /v1/transactions/{gtid}",
                    [](const TxnDetail& d) { return JsonResponse(200, TxnDetailJson(d, true)); }));
}

void RestApi::OperatorAction(const RouteCall& call, std::string_view action,
                             HttpResponder respond) {
  const std::string& gtid = call.params["gtid"];
  if (auto s = ValidateGtid(gtid, options_.limits.max_gtid_length); !s.ok()) {
    respond(ErrorResponse(s));
    return;
  }
  const bool resolve = action == "resolve";
  const std::string& branch = call.params["branch"];
  if (resolve) {
    if (auto s = CheckBranchName(branch, options_.limits.max_name_length); !s.ok()) {
      respond(ErrorResponse(s));
      return;
    }
  }
  Result<OperatorBody> body = ParseOperatorBody(call.req.body, resolve);
  if (!body.ok()) {
    respond(ErrorResponse(body.status()));
    return;
  }
  OperatorRequest who{ActorOf(call.who, call.req), body->reason};
  const auto answer = [&respond](const char* where) {
    return AnswerWith<SubmitResult>(std::move(respond), where, OperatorAnswer);
  };
  if (resolve) {
    service_->Resolve(gtid, branch, body->outcome, std::move(who),
                      answer("POST /v1/transactions/{gtid}/branches/{branch}/resolve"));
  } else if (action == "retry") {
    service_->Retry(gtid, std::move(who), answer("POST /v1/transactions/{gtid}/retry"));
  } else if (action == "abort") {
    service_->ForceAbort(gtid, std::move(who), answer("POST /v1/transactions/{gtid}/abort"));
  } else if (action == "pause") {
    service_->Pause(gtid, std::move(who), answer("POST /v1/transactions/{gtid}/pause"));
  } else {
    service_->Resume(gtid, std::move(who), answer("POST /v1/transactions/{gtid}/resume"));
  }
}

}  // namespace treaty
