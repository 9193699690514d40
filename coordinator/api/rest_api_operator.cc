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

#include <vector>

#include <nlohmann/json.hpp>

#include "api/operator_input.h"
#include "api/rest_api.h"
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

std::vector<std::string> SplitPath(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = s.find('/', start);
    parts.push_back(s.substr(start, slash - start));
    if (slash == std::string::npos) return parts;
    start = slash + 1;
  }
}

HttpResponse OperatorAnswer(const SubmitResult& r) {
  return JsonResponse(
      200,
      DumpJson(
          {{"gtid", r.gtid}, {"state", r.state}, {"paused", r.paused}, {"finished", r.finished}}));
}

}  // namespace

void RestApi::TransactionRoute(const HttpRequest& req, const Identity& who_called,
                               HttpResponder respond) {
  static const std::string kTxns = "/v1/transactions/";
  const std::vector<std::string> parts = SplitPath(req.path.substr(kTxns.size()));
  const bool post = req.method == "POST";
  const bool get = parts.size() == 1 && req.method == "GET";
  const bool action =
      parts.size() == 2 && post &&
      (parts[1] == "retry" || parts[1] == "abort" || parts[1] == "pause" || parts[1] == "resume");
  const bool resolve = parts.size() == 4 && post && parts[1] == "branches" && parts[3] == "resolve";
  if (!get && !action && !resolve) {
    respond(ErrorResponse(NoRoute(req)));
    return;
  }
  const std::string& gtid = parts[0];
  if (auto s = ValidateGtid(gtid, options_.limits.max_gtid_length); !s.ok()) {
    respond(ErrorResponse(s));
    return;
  }
  if (get) {
    GetTransaction(gtid, std::move(respond));
    return;
  }
  if (resolve) {
    if (auto s = CheckBranchName(parts[2], options_.limits.max_name_length); !s.ok()) {
      respond(ErrorResponse(s));
      return;
    }
  }
  Result<OperatorBody> body = ParseOperatorBody(req.body, resolve);
  if (!body.ok()) {
    respond(ErrorResponse(body.status()));
    return;
  }
  OperatorRequest who{ActorOf(who_called, req), body->reason};
  if (resolve) {
    service_->Resolve(gtid, parts[2], body->outcome, std::move(who),
                      AnswerWith<SubmitResult>(std::move(respond),
                                               "POST /v1/transactions/{gtid}/branches/{branch}/"
                                               "resolve",
                                               OperatorAnswer));
    return;
  }
  const std::string& name = parts[1];
  if (name == "retry") {
    service_->Retry(gtid, std::move(who),
                    AnswerWith<SubmitResult>(std::move(respond),
                                             "POST /v1/transactions/{gtid}/retry", OperatorAnswer));
  } else if (name == "abort") {
    service_->ForceAbort(
        gtid, std::move(who),
        AnswerWith<SubmitResult>(std::move(respond), "POST /v1/transactions/{gtid}/abort",
                                 OperatorAnswer));
  } else if (name == "pause") {
    service_->Pause(gtid, std::move(who),
                    AnswerWith<SubmitResult>(std::move(respond),
                                             "POST /v1/transactions/{gtid}/pause", OperatorAnswer));
  } else {
    service_->Resume(
        gtid, std::move(who),
        AnswerWith<SubmitResult>(std::move(respond), "POST /v1/transactions/{gtid}/resume",
                                 OperatorAnswer));
  }
}

}  // namespace treaty
