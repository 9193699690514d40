#include "api/rest_api.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/states.h"

namespace treaty {
namespace {

using nlohmann::json;

const char* ErrorCode(StatusCode c) {
  switch (c) {
    case StatusCode::kInvalidArgument: return "invalid_argument";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kConflict: return "conflict";
    case StatusCode::kLostOwnership: return "not_owner";
    case StatusCode::kTooLarge: return "too_large";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kTimedOut: return "timed_out";
    default: return "internal";
  }
}

int HttpStatusOf(StatusCode c) {
  switch (c) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kConflict:
    case StatusCode::kLostOwnership: return 409;
    case StatusCode::kTooLarge: return 413;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kTimedOut: return 504;
    default: return 500;
  }
}

json RowJson(const TxnRow& r) {
  json spec = json::parse(r.spec, nullptr, false);
  return {{"gtid", r.gtid},
          {"kind", r.kind},
          {"state", r.state},
          {"owner", r.owner},
          {"needs_attention", r.needs_attention},
          {"deadline_ms", r.deadline_ms},
          {"next_attempt_at_ms", r.next_attempt_at_ms},
          {"attempts", r.attempts},
          {"version", r.version},
          {"created_at_ms", r.created_at_ms},
          {"updated_at_ms", r.updated_at_ms},
          {"spec", spec.is_discarded() ? json(r.spec) : spec}};
}

// Parses an optional integer query parameter.
Status QueryInt(const HttpRequest& req, const std::string& key, int64_t min, int64_t max,
                std::optional<int64_t>* out) {
  auto it = req.query.find(key);
  if (it == req.query.end() || it->second.empty()) return Status::Ok();
  try {
    size_t used = 0;
    int64_t v = std::stoll(it->second, &used);
    if (used != it->second.size() || v < min || v > max) throw std::out_of_range(key);
    *out = v;
    return Status::Ok();
  } catch (const std::exception&) {
    return Status::InvalidArgument("query parameter '" + key + "' must be an integer from " +
                                   std::to_string(min) + " to " + std::to_string(max));
  }
}

}  // namespace

HttpResponse JsonResponse(int status, const std::string& body) {
  HttpResponse r;
  r.status = status;
  r.body = body;
  return r;
}

HttpResponse ErrorResponse(const Status& status) {
  json body = {{"error", {{"code", ErrorCode(status.code())}, {"message", status.message()}}}};
  return JsonResponse(HttpStatusOf(status.code()), body.dump());
}

std::string TxnRowJson(const TxnRow& row) { return RowJson(row).dump(); }

std::string TxnDetailJson(const TxnDetail& d, bool with_events) {
  json out = RowJson(d.txn);
  json branches = json::array();
  for (const auto& b : d.branches) {
    json spec = json::parse(b.spec.empty() ? "null" : b.spec, nullptr, false);
    branches.push_back({{"name", b.name},
                        {"idx", b.idx},
                        {"state", b.state},
                        {"attempts", b.attempts},
                        {"last_error", b.last_error},
                        {"next_attempt_at_ms", b.next_attempt_at_ms},
                        {"updated_at_ms", b.updated_at_ms},
                        {"spec", spec.is_discarded() ? json(b.spec) : spec}});
  }
  out["branches"] = branches;
  if (with_events) {
    json history = json::array();
    for (const auto& e : d.events) {
      history.push_back({{"id", e.id},
                         {"at_ms", e.at_ms},
                         {"branch", e.branch},
                         {"type", e.type},
                         {"detail", e.detail}});
    }
    out["history"] = history;
  }
  return out.dump();
}

RestApi::RestApi(TxnService* service, LogStore* store, TaskRunner* blocking,
                 RestApiOptions options)
    : service_(service), store_(store), blocking_(blocking), options_(options) {}

void RestApi::Handle(HttpRequest req, HttpResponder respond) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  static const std::string kTxns = "/v1/transactions/";
  if (p == "/healthz" && m == "GET") {
    respond(JsonResponse(200, R"({"status":"ok"})"));
  } else if (p == "/readyz" && m == "GET") {
    Ready(std::move(respond));
  } else if (p == "/v1/sagas" && m == "POST") {
    SubmitSaga(req, std::move(respond));
  } else if (p == "/v1/transactions" && m == "GET") {
    ListTransactions(req, std::move(respond));
  } else if (p.rfind(kTxns, 0) == 0 && p.size() > kTxns.size()) {
    std::string rest = p.substr(kTxns.size());
    auto slash = rest.find('/');
    std::string gtid = rest.substr(0, slash);
    std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
    if (action.empty() && m == "GET") {
      GetTransaction(gtid, std::move(respond));
    } else if ((action == "retry" || action == "abort") && m == "POST") {
      OperatorAction(gtid, action == "abort", std::move(respond));
    } else {
      respond(ErrorResponse(Status::NotFound("no route for " + m + " " + p)));
    }
  } else if (p == "/v1/2pc" || p.rfind("/v1/2pc/", 0) == 0) {
    Handle2pc(req, std::move(respond));
  } else if (p == "/v1/cluster" && m == "GET") {
    Cluster(std::move(respond));
  } else if (extra_ && extra_(req, respond)) {
    // served by an extra route
  } else {
    respond(ErrorResponse(Status::NotFound("no route for " + m + " " + p)));
  }
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
    respond(ErrorResponse(Status::Unavailable("the transaction log is unreachable; retry later")));
    return true;
  }
  return false;
}

void RestApi::SubmitSaga(const HttpRequest& req, HttpResponder respond) {
  if (RefuseNewWork(respond)) return;
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded()) {
    respond(ErrorResponse(Status::InvalidArgument("the request body is not valid JSON")));
    return;
  }
  auto spec = ParseSagaSpec(body, options_.limits);
  if (!spec.ok()) {
    respond(ErrorResponse(spec.status()));
    return;
  }
  bool wait = body.value("wait", false);
  std::optional<int64_t> wait_ms;
  if (auto s = QueryInt(req, "wait_timeout_ms", 1, 3600000, &wait_ms); !s.ok()) {
    respond(ErrorResponse(s));
    return;
  }
  service_->SubmitSaga(std::move(*spec), wait, wait_ms.value_or(0),
                       [respond = std::move(respond)](Result<SubmitResult> r) {
                         if (!r.ok()) {
                           respond(ErrorResponse(r.status()));
                           return;
                         }
                         json out = {{"gtid", r->gtid}, {"state", r->state}};
                         // 201 created, 200 known (identical re-submission),
                         // 202 when `wait` ran out before the saga finished.
                         int status = r->wait_expired ? 202 : r->created ? 201 : 200;
                         respond(JsonResponse(status, out.dump()));
                       });
}

void RestApi::GetTransaction(const std::string& gtid, HttpResponder respond) {
  service_->Get(gtid, true, [respond = std::move(respond)](Result<TxnDetail> r) {
    respond(r.ok() ? JsonResponse(200, TxnDetailJson(*r, true)) : ErrorResponse(r.status()));
  });
}

void RestApi::ListTransactions(const HttpRequest& req, HttpResponder respond) {
  ListFilter f;
  std::optional<int64_t> limit, age;
  if (auto s = QueryInt(req, "limit", 1, options_.max_list_limit, &limit); !s.ok()) {
    respond(ErrorResponse(s));
    return;
  }
  if (auto s = QueryInt(req, "min_age_ms", 0, INT64_MAX / 2, &age); !s.ok()) {
    respond(ErrorResponse(s));
    return;
  }
  if (limit) f.limit = static_cast<int>(*limit);
  auto q = [&](const char* k) -> std::optional<std::string> {
    auto it = req.query.find(k);
    if (it == req.query.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
  f.state = q("state");
  f.kind = q("kind");
  f.gtid_prefix = q("gtid_prefix");
  f.cursor = q("cursor").value_or("");
  if (auto na = q("needs_attention")) {
    if (*na != "true" && *na != "false") {
      respond(ErrorResponse(Status::InvalidArgument("'needs_attention' must be true or false")));
      return;
    }
    f.needs_attention = *na == "true";
  }
  if (f.kind && *f.kind != states::kSaga && *f.kind != states::k2pc) {
    respond(ErrorResponse(Status::InvalidArgument("'kind' must be saga or 2pc")));
    return;
  }
  if (age) f.created_before_ms = blocking_->NowMs() - *age;
  service_->List(f, [respond = std::move(respond)](Result<TxnPage> r) {
    if (!r.ok()) {
      respond(ErrorResponse(r.status()));
      return;
    }
    json items = json::array();
    for (const auto& row : r->items) {
      json j = json::parse(TxnRowJson(row));
      j.erase("spec");
      items.push_back(std::move(j));
    }
    json out = {{"items", items}, {"next", r->next}};
    respond(JsonResponse(200, out.dump()));
  });
}

void RestApi::OperatorAction(const std::string& gtid, bool abort, HttpResponder respond) {
  auto done = [respond = std::move(respond)](Result<SubmitResult> r) {
    if (!r.ok()) {
      respond(ErrorResponse(r.status()));
      return;
    }
    respond(JsonResponse(200, json({{"gtid", r->gtid}, {"state", r->state}}).dump()));
  };
  if (abort) {
    service_->ForceAbort(gtid, std::move(done));
  } else {
    service_->Retry(gtid, std::move(done));
  }
}

void RestApi::Cluster(HttpResponder respond) {
  blocking_->Post([this, respond = std::move(respond)] {
    auto rows = store_->ListCoordinators();
    if (!rows.ok()) {
      respond(ErrorResponse(rows.status()));
      return;
    }
    json members = json::array();
    for (const auto& c : *rows) {
      members.push_back({{"id", c.id},
                         {"node_name", c.node_name},
                         {"http", c.http_addr},
                         {"thrift", c.thrift_addr},
                         {"state", c.state},
                         {"started_at_ms", c.started_at_ms},
                         {"heartbeat_at_ms", c.heartbeat_at_ms},
                         {"heartbeat_age_ms", c.heartbeat_age_ms},
                         {"owned", c.owned}});
    }
    respond(JsonResponse(200, json({{"coordinators", members}}).dump()));
  });
}

void RestApi::Ready(HttpResponder respond) {
  if (draining_) {
    respond(ErrorResponse(Status::Unavailable("draining")));
    return;
  }
  blocking_->Post([this, respond = std::move(respond)] {
    Status s = store_->CheckReady();
    respond(s.ok() ? JsonResponse(200, R"({"status":"ready"})") : ErrorResponse(s));
  });
}

}  // namespace treaty
