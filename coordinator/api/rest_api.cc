#include "api/rest_api.h"

#include <charconv>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/json_input.h"
#include "common/text.h"
#include "engine/states.h"
#include "store/list_cursor.h"

namespace treaty {
namespace {

using nlohmann::json;

const char* ErrorCode(StatusCode c) {
  switch (c) {
    case StatusCode::kInvalidArgument:
      return "invalid_argument";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kConflict:
      return "conflict";
    case StatusCode::kLostOwnership:
      return "not_owner";
    case StatusCode::kTooLarge:
      return "too_large";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kTimedOut:
      return "timed_out";
    case StatusCode::kUnauthenticated:
      return "unauthenticated";
    case StatusCode::kPermissionDenied:
      return "forbidden";
    default:
      return "internal";
  }
}

int HttpStatusOf(StatusCode c) {
  switch (c) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kConflict:
    case StatusCode::kLostOwnership:
      return 409;
    case StatusCode::kTooLarge:
      return 413;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kTimedOut:
      return 504;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kPermissionDenied:
      return 403;
    default:
      return 500;
  }
}

// Outside text (a method, a path) as it may appear in an error message:
// valid UTF-8, control characters escaped, at most 200 bytes.
std::string Shown(std::string_view s) { return Excerpt(EscapeControl(s), 200); }

// A stored spec as JSON; the stored text itself when it does not parse. The
// depth limit is generous (stored specs wrap payloads that were themselves
// limited at submission) but keeps serialization's recursion bounded.
json StoredJson(const std::string& text) {
  if (text.empty()) return nullptr;
  Result<json> parsed = ParseJson(text, "the stored spec", 2 * limits::kMaxJsonDepth);
  return parsed.ok() ? std::move(*parsed) : json(text);
}

json RowJson(const TxnRow& r) {
  return {{"gtid", r.gtid},
          {"kind", r.kind},
          {"state", r.state},
          {"owner", r.owner},
          {"needs_attention", r.needs_attention},
          {"paused", r.paused},
          {"last_error", r.last_error},
          {"deadline_ms", r.deadline_ms},
          {"next_attempt_at_ms", r.next_attempt_at_ms},
          {"attempts", r.attempts},
          {"version", r.version},
          {"created_at_ms", r.created_at_ms},
          {"updated_at_ms", r.updated_at_ms},
          {"spec", StoredJson(r.spec)}};
}

// Parses an optional integer query parameter: an optional '-' and digits,
// nothing else, within [min, max].
Status QueryInt(const HttpRequest& req, const std::string& key, int64_t min, int64_t max,
                std::optional<int64_t>* out) {
  auto it = req.query.find(key);
  if (it == req.query.end() || it->second.empty()) return Status::Ok();
  const std::string& text = it->second;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text[0] == '+' || v < min ||
      v > max) {
    return Status::InvalidArgument("query parameter '" + key + "' must be an integer from " +
                                   std::to_string(min) + " to " + std::to_string(max));
  }
  *out = v;
  return Status::Ok();
}

bool IsTransactionState(const std::string& s) {
  for (const char* known :
       {states::kRunning, states::kCompensating, states::kActive, states::kPreparing,
        states::kCommitting, states::kAborting, states::kCommitted, states::kAborted}) {
    if (s == known) return true;
  }
  return false;
}

// The ListFilter of GET /v1/transactions, or InvalidArgument naming the
// query parameter. `now_ms` anchors min_age_ms.
Result<ListFilter> ParseListFilter(const HttpRequest& req, int max_limit, int64_t now_ms) {
  ListFilter f;
  std::optional<int64_t> limit, age;
  if (auto s = QueryInt(req, "limit", 1, max_limit, &limit); !s.ok()) return s;
  if (auto s = QueryInt(req, "min_age_ms", 0, INT64_MAX / 2, &age); !s.ok()) return s;
  if (limit) f.limit = static_cast<int>(*limit);
  if (age) f.created_before_ms = now_ms - *age;
  auto q = [&](const char* k) -> std::optional<std::string> {
    auto it = req.query.find(k);
    if (it == req.query.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
  f.state = q("state");
  f.kind = q("kind");
  f.gtid_prefix = q("gtid_prefix");
  f.cursor = q("cursor").value_or("");
  if (f.state && !IsTransactionState(*f.state)) {
    return Status::InvalidArgument(
        "query parameter 'state' must be one of RUNNING, COMPENSATING, ACTIVE, PREPARING, "
        "COMMITTING, ABORTING, COMMITTED, ABORTED");
  }
  if (f.kind && *f.kind != states::kSaga && *f.kind != states::k2pc) {
    return Status::InvalidArgument("query parameter 'kind' must be saga or 2pc");
  }
  if (f.gtid_prefix) {
    bool ok = f.gtid_prefix->size() <= limits::kMaxIdentifierBytes;
    for (char c : *f.gtid_prefix) ok = ok && IsIdentifierChar(c);
    if (!ok) {
      return Status::InvalidArgument(
          "query parameter 'gtid_prefix' must be at most " +
          std::to_string(limits::kMaxIdentifierBytes) +
          " bytes of the gtid characters (printable ASCII other than space, '/', '?', '#', '%' "
          "and '\\')");
    }
  }
  if (!f.cursor.empty() && !DecodeListCursor(f.cursor).ok()) {
    return Status::InvalidArgument(
        "query parameter 'cursor' is malformed: pass back the 'next' value of the previous page");
  }
  if (auto na = q("needs_attention")) {
    if (*na != "true" && *na != "false") {
      return Status::InvalidArgument("query parameter 'needs_attention' must be true or false");
    }
    f.needs_attention = *na == "true";
  }
  if (auto paused = q("paused")) {
    if (*paused != "true" && *paused != "false") {
      return Status::InvalidArgument("query parameter 'paused' must be true or false");
    }
    f.paused = *paused == "true";
  }
  return f;
}

HttpResponse StateAnswer(int status, const SubmitResult& r) {
  return JsonResponse(status, DumpJson({{"gtid", r.gtid}, {"state", r.state}}));
}

}  // namespace

Status NoRoute(const HttpRequest& req) {
  return Status::NotFound("no route for " + Shown(req.method) + " " + Shown(req.path));
}

HttpResponse JsonResponse(int status, const std::string& body) {
  HttpResponse r;
  r.status = status;
  r.body = body;
  return r;
}

HttpResponse ErrorResponse(const Status& status) {
  HttpResponse r =
      ErrorAnswer(HttpStatusOf(status.code()), ErrorCode(status.code()), status.message());
  if (status.code() == StatusCode::kUnauthenticated) {
    r.headers.push_back({"WWW-Authenticate", "Bearer realm=\"treaty\""});
  }
  return r;
}

HttpResponse ErrorAnswer(int http_status, std::string_view code, const std::string& message) {
  json body = {{"error", {{"code", std::string(code)}, {"message", message}}}};
  return JsonResponse(http_status, DumpJson(body));
}

std::string TxnRowJson(const TxnRow& row) { return DumpJson(RowJson(row)); }

std::string TxnDetailJson(const TxnDetail& d, bool with_events) {
  json out = RowJson(d.txn);
  json branches = json::array();
  for (const auto& b : d.branches) {
    branches.push_back({{"name", b.name},
                        {"idx", b.idx},
                        {"state", b.state},
                        {"attempts", b.attempts},
                        {"last_error", b.last_error},
                        {"next_attempt_at_ms", b.next_attempt_at_ms},
                        {"updated_at_ms", b.updated_at_ms},
                        {"spec", StoredJson(b.spec)}});
  }
  out["branches"] = std::move(branches);
  if (with_events) {
    json history = json::array();
    for (const auto& e : d.events) {
      history.push_back({{"id", e.id},
                         {"at_ms", e.at_ms},
                         {"branch", e.branch},
                         {"type", e.type},
                         {"detail", e.detail},
                         {"count", e.count},
                         {"first_at_ms", e.first_at_ms > 0 ? e.first_at_ms : e.at_ms}});
    }
    out["history"] = std::move(history);
  }
  return DumpJson(out);
}

RestApi::RestApi(TxnService* service, LogStore* store, TaskRunner* blocking, RestApiOptions options)
    : service_(service), store_(store), blocking_(blocking), options_(options) {
  AccessGateOptions open;
  open.listener_loopback = false;                   // any Host
  auto gate = AccessGate::Create(std::move(open));  // no host list: cannot fail
  own_gate_ = std::move(*gate);
  gate_ = own_gate_.get();
}

void RestApi::Handle(HttpRequest req, HttpResponder respond) {
  // Security headers on every answer, the 500 of a dropped request included.
  respond = OwedResponder(gate_->Secure(std::move(respond)));
  AnswerGuarded(respond, "REST handler", [&] {
    std::optional<Identity> who = gate_->Admit(req, respond);
    if (who) Route(req, *who, respond);
  });
}

void RestApi::Route(const HttpRequest& req, const Identity& who, HttpResponder& respond) {
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
    TransactionRoute(req, who, std::move(respond));  // rest_api_operator.cc
  } else if (p == "/v1/2pc" || p.rfind("/v1/2pc/", 0) == 0) {
    Handle2pc(req, who, std::move(respond));
  } else if (p == "/v1/cluster" && m == "GET") {
    Cluster(std::move(respond));
  } else if (p == "/v1/session") {
    gate_->sessions().Handle(req, who, respond);  // dashboard sign-in (dashboard_session.h)
  } else if (extra_ && extra_(req, who, respond)) {
    // served by an extra route
  } else {
    respond(ErrorResponse(NoRoute(req)));
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
        // 201 created, 200 known (identical
        // re-submission), 202 when `wait` ran
        // out before the saga finished.
        int status = r.wait_expired ? 202 : r.created ? 201 : 200;
        return StateAnswer(status, r);
      }));
}

void RestApi::GetTransaction(const std::string& gtid, HttpResponder respond) {
  service_->Get(gtid, true,
                AnswerWith<TxnDetail>(
                    std::move(respond), "GET /v1/transactions/{gtid}",
                    [](const TxnDetail& d) { return JsonResponse(200, TxnDetailJson(d, true)); }));
}

void RestApi::ListTransactions(const HttpRequest& req, HttpResponder respond) {
  Result<ListFilter> f = ParseListFilter(req, options_.max_list_limit, blocking_->NowMs());
  if (!f.ok()) {
    respond(ErrorResponse(f.status()));
    return;
  }
  service_->List(
      *f, AnswerWith<TxnPage>(std::move(respond), "GET /v1/transactions", [](const TxnPage& page) {
        json items = json::array();
        for (const auto& row : page.items) {
          json j = RowJson(row);
          j.erase("spec");
          items.push_back(std::move(j));
        }
        json out = {{"items", std::move(items)}, {"next", page.next}};
        return JsonResponse(200, DumpJson(out));
      }));
}

void RestApi::Cluster(HttpResponder respond) {
  blocking_->Post([this, respond = std::move(respond)] {
    AnswerGuarded(respond, "GET /v1/cluster", [&] {
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
      respond(JsonResponse(200, DumpJson({{"coordinators", std::move(members)}})));
    });
  });
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
