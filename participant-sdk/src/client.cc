#include "treaty/client.h"

#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "common/mutex.h"
#include "http_transport.h"
#include "input_rules.h"
#include "thrift_coordinator.h"

namespace treaty {
inline namespace sdk {

using nlohmann::json;
using treaty_sdk_detail::FetchError;

namespace {

// A coordinator's answer: 2xx with a JSON object body.
struct Reply {
  int status = 0;
  json body;  // an object
};

// Coordinators' answers are parsed with the input rules too (depth limit,
// UTF-8): a garbage answer is an error, never a crash. These read fields
// tolerantly: a missing field or one of another type reads as `fallback`.
std::string StringField(const json& j, const char* key, const std::string& fallback = "") {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

int64_t IntField(const json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

bool BoolField(const json& j, const char* key) {
  if (!j.is_object()) return false;
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

// What an error answer says: {"error":{"message":...}}, else an excerpt of
// the raw body (valid UTF-8, at most kAnswerExcerptBytes).
constexpr size_t kAnswerExcerptBytes = 200;
std::string ErrorMessage(const json& body, const std::string& raw) {
  std::string excerpt = treaty_sdk_detail::Excerpt(raw, kAnswerExcerptBytes);
  if (body.is_object()) {
    if (auto it = body.find("error"); it != body.end()) return StringField(*it, "message", excerpt);
  }
  return excerpt;
}

Result<TxnStatus> ToTxnStatus(const Result<Reply>& r) {
  if (!r.ok()) return r.status();
  return TxnStatus{StringField(r->body, "gtid"), StringField(r->body, "state")};
}

// A step's or branch's payload (JSON text) as JSON. Text that is not JSON is
// sent as a JSON string (as before); JSON nested deeper than the input rules
// allow is refused, since the coordinator would refuse it.
Result<json> ParsePayload(const std::string& text) {
  if (text.empty()) return json(nullptr);
  auto parsed =
      treaty_sdk_detail::ParseJsonInput(text, "the payload", treaty::limits::kMaxPayloadDepth);
  if (parsed.ok()) return std::move(parsed.value);
  if (treaty_sdk_detail::IsJsonSyntax(text)) return Status::InvalidArgument(parsed.error);
  return json(text);
}

// InvalidArgument unless `gtid` is an identifier (it goes into URL paths).
Status CheckGtid(const std::string& gtid) {
  std::string e = treaty_sdk_detail::IdentifierError(gtid, "'gtid'");
  return e.empty() ? Status::Ok() : Status::InvalidArgument("client: " + e);
}

}  // namespace

class Client::Impl {
 public:
  explicit Impl(ClientOptions o) : options(std::move(o)) {
    for (auto& c : options.coordinators) {
      while (!c.empty() && c.back() == '/') c.pop_back();
    }
  }

  // One logical request with fail-over (see client.h). With `pin_gtid`, the
  // request starts at the coordinator that last answered for that 2PC
  // transaction (its owner) and re-pins to whichever answers.
  Result<Reply> Call(const std::string& method, const std::string& path, const json& body,
                     int extra_timeout_ms = 0, const std::string& pin_gtid = "");

  ClientOptions options;
  std::atomic<uint64_t> next{0};
  treaty::Mutex mu;
  std::map<std::string, size_t> owner_of TREATY_GUARDED_BY(mu);  // 2PC gtid -> coordinator index
};

Result<Reply> Client::Impl::Call(const std::string& method, const std::string& path,
                                 const json& body, int extra_timeout_ms,
                                 const std::string& pin_gtid) {
  const auto& cs = options.coordinators;
  if (cs.empty()) return Status::InvalidArgument("client: no coordinators configured");
  size_t start = next.fetch_add(1) % cs.size();
  if (!pin_gtid.empty()) {
    treaty::MutexLock l(&mu);
    if (auto it = owner_of.find(pin_gtid); it != owner_of.end()) start = it->second;
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options.failover_timeout_ms);
  bool not_owner = false;
  const std::string text = body.is_null() ? "" : treaty_sdk_detail::DumpJson(body);
  std::map<std::string, std::string> headers = {{"Content-Type", "application/json"}};
  if (!options.token.empty()) headers["Authorization"] = "Bearer " + options.token;
  const treaty_sdk_detail::FetchTls tls{options.ca_file, options.cert_file, options.key_file};
  int backoff = options.backoff_ms;
  std::string last_error = "no attempt";
  const int attempts = options.max_attempts < 1 ? 1 : options.max_attempts;
  for (int i = 0; i < attempts || (not_owner && std::chrono::steady_clock::now() < deadline); ++i) {
    if (i > 0 && i % cs.size() == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
      backoff = std::min(backoff * 2, 5000);
    }
    const std::string& base = cs[(start + i) % cs.size()];
    const int timeout_ms = options.request_timeout_ms + extra_timeout_ms;
    auto f =
        treaty_sdk_detail::IsThriftUrl(base)
            ? treaty_sdk_detail::ThriftFetch(method, base, path, text, timeout_ms, options.token)
            : treaty_sdk_detail::Fetch(method, base + path, text, headers, timeout_ms, tls);
    if (f.error == FetchError::kInvalidArgument) {
      return Status::InvalidArgument(
          "coordinator URL " +
          treaty_sdk_detail::EscapeControl(treaty_sdk_detail::Excerpt(base, 200)) + ": " +
          treaty_sdk_detail::EscapeControl(f.error_message));
    }
    if (f.error != FetchError::kNone) {
      last_error = base + ": " + f.error_message;
      continue;  // connection refused/reset or time-out: the next coordinator
    }
    treaty_sdk_detail::ParsedJson answer =
        treaty_sdk_detail::ParseJsonInput(f.body, "the coordinator's answer");
    const json& parsed = answer.value;  // null when the answer is not JSON
    if (f.http_status >= 200 && f.http_status < 300) {
      if (!parsed.is_object()) {
        // Not a Treaty coordinator, or a broken one: try the next.
        last_error = base + ": HTTP " + std::to_string(f.http_status) + " but " +
                     (answer.ok() ? "the coordinator's answer is not a JSON object" : answer.error);
        continue;
      }
      if (!pin_gtid.empty()) {
        treaty::MutexLock l(&mu);
        owner_of[pin_gtid] = (start + i) % cs.size();
        if (owner_of.size() > 100000) owner_of.clear();  // a cache, not a registry
      }
      return Reply{f.http_status, parsed};
    }
    const std::string msg = ErrorMessage(parsed, f.body);
    // A 2PC transaction is driven by the coordinator that began it; the
    // others answer 409 naming it (until one of them takes it over after a
    // crash). Try the next one, for up to failover_timeout_ms.
    if (f.http_status == 409 && msg.find("driven by coordinator") != std::string::npos) {
      not_owner = true;
      last_error = base + ": " + msg;
      continue;
    }
    switch (f.http_status) {
      // Credentials are the same for every coordinator: asking the others
      // with a bad token only adds load.
      case 401:
        return Status::Unauthenticated(
            base + ": " +
            (options.token.empty() ? "the coordinator needs a token (ClientOptions::token): "
                                   : "the token was refused: ") +
            msg);
      case 403:
        return Status::PermissionDenied(base + ": " + msg);
      case 400:
      case 413:
      case 422:
        return Status::InvalidArgument(msg);
      case 404:
        return Status::NotFound(msg);
      case 409:
        return Status::Conflict(msg);
      default:
        break;
    }
    // 503 (draining, not ready) and other 5xx: try another coordinator.
    last_error = base + ": HTTP " + std::to_string(f.http_status) + " " + msg;
  }
  return Status::Unavailable("no coordinator answered after " + std::to_string(attempts) +
                             " attempts; last: " + last_error);
}

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Client::~Client() = default;

std::string Client::NewGtid() { return NewUuid(); }

Result<TxnStatus> Client::SubmitSaga(const SagaSpec& saga, bool wait, int wait_ms) {
  const std::string gtid = saga.gtid.empty() ? NewGtid() : saga.gtid;
  if (Status s = CheckGtid(gtid); !s.ok()) return s;
  json steps = json::array();
  for (const auto& s : saga.steps) {
    auto payload = ParsePayload(s.payload);
    if (!payload.ok()) {
      return Status::InvalidArgument("client: step '" + treaty_sdk_detail::Excerpt(s.name, 128) +
                                     "': " + payload.status().message());
    }
    json step = {{"name", s.name},
                 {"action", s.action},
                 {"compensate", s.compensate},
                 {"payload", std::move(*payload)}};
    if (!s.after.empty()) step["after"] = s.after;
    if (s.timeout_ms > 0) step["timeout_ms"] = s.timeout_ms;
    if (s.retry.max_attempts > 0 || s.retry.initial_backoff_ms > 0 || s.retry.max_backoff_ms > 0) {
      json retry = json::object();
      if (s.retry.max_attempts > 0) retry["max_attempts"] = s.retry.max_attempts;
      if (s.retry.initial_backoff_ms > 0) retry["initial_backoff_ms"] = s.retry.initial_backoff_ms;
      if (s.retry.max_backoff_ms > 0) retry["max_backoff_ms"] = s.retry.max_backoff_ms;
      step["retry"] = retry;
    }
    steps.push_back(std::move(step));
  }
  json body = {{"gtid", gtid}, {"steps", steps}};
  if (saga.timeout_ms > 0) body["timeout_ms"] = saga.timeout_ms;
  if (saga.concurrent) body["concurrent"] = true;
  if (wait) body["wait"] = true;
  return ToTxnStatus(impl_->Call("POST", "/v1/sagas", body, wait ? wait_ms : 0));
}

Result<TxnStatus> Client::Begin(const std::string& gtid_or_empty, int64_t timeout_ms) {
  const std::string gtid = gtid_or_empty.empty() ? NewGtid() : gtid_or_empty;
  if (Status s = CheckGtid(gtid); !s.ok()) return s;
  // One-phase commit is declared per branch at enlistment; "false" keeps an
  // older coordinator (whose default was one phase for a single branch) on
  // two phases too.
  json body = {{"gtid", gtid}, {"one_phase", false}};
  if (timeout_ms > 0) body["timeout_ms"] = timeout_ms;
  return ToTxnStatus(impl_->Call("POST", "/v1/2pc", body, 0, gtid));
}

Status Client::Enlist(const std::string& gtid, const BranchSpec& b) {
  if (Status s = CheckGtid(gtid); !s.ok()) return s;
  auto payload = ParsePayload(b.payload);
  if (!payload.ok()) return Status::InvalidArgument("client: " + payload.status().message());
  json body = {{"name", b.name},
               {"prepare", b.prepare},
               {"commit", b.commit},
               {"abort", b.abort},
               {"payload", std::move(*payload)}};
  if (b.one_phase) body["one_phase"] = true;  // absent: older coordinators accept the body
  auto r = impl_->Call("POST", "/v1/2pc/" + gtid + "/branches", body, 0, gtid);
  return r.ok() ? Status::Ok() : r.status();
}

Result<TxnStatus> Client::Commit(const std::string& gtid) {
  if (Status s = CheckGtid(gtid); !s.ok()) return s;
  return ToTxnStatus(impl_->Call("POST", "/v1/2pc/" + gtid + "/commit", json::object(), 0, gtid));
}

Result<TxnStatus> Client::Abort(const std::string& gtid) {
  if (Status s = CheckGtid(gtid); !s.ok()) return s;
  return ToTxnStatus(impl_->Call("POST", "/v1/2pc/" + gtid + "/abort", json::object(), 0, gtid));
}

Result<TransactionInfo> Client::Get(const std::string& gtid) {
  if (Status s = CheckGtid(gtid); !s.ok()) return s;
  auto r = impl_->Call("GET", "/v1/transactions/" + gtid, json());
  if (!r.ok()) return r.status();
  const json& j = r->body;
  TransactionInfo t;
  t.gtid = StringField(j, "gtid");
  t.kind = StringField(j, "kind");
  t.state = StringField(j, "state");
  t.needs_attention = BoolField(j, "needs_attention");
  if (auto it = j.find("branches"); it != j.end() && it->is_array()) {
    for (const auto& b : *it) {
      BranchInfo bi;
      bi.name = StringField(b, "name");
      bi.state = StringField(b, "state");
      bi.attempts = IntField(b, "attempts");
      bi.last_error = StringField(b, "last_error");
      t.branches.push_back(std::move(bi));
    }
  }
  t.json = treaty_sdk_detail::DumpJson(j);
  return t;
}

Result<TxnStatus> Client::WaitForOutcome(const std::string& gtid, int timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int sleep_ms = 20;
  std::string last = "unknown";
  while (true) {
    auto t = Get(gtid);
    if (t.ok()) {
      TxnStatus s{t->gtid, t->state};
      if (s.terminal()) return s;
      last = s.state;
    } else if (t.status().code() != StatusCode::kUnavailable) {
      return t.status();
    }
    if (std::chrono::steady_clock::now() >= end) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    sleep_ms = std::min(sleep_ms * 2, 500);
  }
  return Status::TimedOut("transaction " + gtid + " still " + last + " after " +
                          std::to_string(timeout_ms) + " ms");
}

}  // namespace sdk
}  // namespace treaty
