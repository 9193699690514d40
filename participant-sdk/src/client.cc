#include "treaty/client.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <initializer_list>
#include <map>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "common/mutex.h"
#include "coordinator_transport.h"
#include "input_rules.h"

namespace treaty {
inline namespace sdk {

using nlohmann::json;
using treaty_sdk_detail::CoordinatorReply;
using treaty_sdk_detail::CoordinatorTransport;
using treaty_sdk_detail::Delivery;
using treaty_sdk_detail::EscapeControl;
using treaty_sdk_detail::TransportOptions;

namespace {

constexpr int kMaxBackoffMs = 5000;  // the backoff between rounds stops doubling here

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

Result<TxnStatus> ToTxnStatus(const Result<json>& r) {
  if (!r.ok()) return r.status();
  return TxnStatus{StringField(*r, "gtid"), StringField(*r, "state")};
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

// InvalidArgument unless each value of `trace` is printable ASCII within its
// bound (client.h, TraceContext): they travel as HTTP header values.
Status CheckTrace(const TraceContext& trace) {
  const struct {
    const std::string& value;
    const char* name;
    size_t max_bytes;
  } fields[] = {{trace.traceparent, "traceparent", 128}, {trace.tracestate, "tracestate", 512}};
  for (const auto& f : fields) {
    if (f.value.size() > f.max_bytes) {
      return Status::InvalidArgument("client: 'trace." + std::string(f.name) + "' is longer than " +
                                     std::to_string(f.max_bytes) + " bytes");
    }
    for (char c : f.value) {
      if (c < 0x20 || c > 0x7e) {
        return Status::InvalidArgument("client: 'trace." + std::string(f.name) +
                                       "' must be printable ASCII");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

// One call of Client as the fail-over loop sees it (client.h, "Fail-over").
struct CallPlan {
  // The 2PC transaction this call drives (Begin, Enlist, Commit, Abort), or
  // "": it starts at that transaction's coordinator and a Conflict from
  // another one may mean "not the owner".
  std::string pin_gtid;
  // True for Enlist, Commit and Abort: only the owner acts on them.
  bool owner_only = false;
  std::function<CoordinatorReply(CoordinatorTransport&, int timeout_ms)> send;
  // Commit and Abort: called with a final Conflict when an earlier attempt's
  // outcome was unknown (that attempt may have finished the transaction);
  // answers what a first successful attempt would have, or the Conflict.
  std::function<Result<nlohmann::json>(const Status& conflict)> after_lost_answer;
};

class Client::Impl {
 public:
  explicit Impl(ClientOptions o) : options(std::move(o)) {
    TransportOptions t;
    t.token = options.token;
    t.ca_file = options.ca_file;
    t.cert_file = options.cert_file;
    t.key_file = options.key_file;
    t.pool_size = std::max(0, options.keepalive_connections);
    t.idle_ms = std::max(0, options.keepalive_idle_ms);
    for (auto& c : options.coordinators) {
      while (!c.empty() && c.back() == '/') c.pop_back();
      transports.push_back(treaty_sdk_detail::MakeCoordinatorTransport(c, t));
    }
  }

  Result<json> Call(const CallPlan& plan);
  // After a Conflict that followed a lost answer: {"gtid","state"} when
  // Get finds `gtid` in one of the `decided` states, else `conflict`.
  Result<json> DecidedState(const std::string& gtid, const Status& conflict,
                            std::initializer_list<const char*> decided);

  ClientOptions options;
  std::vector<std::unique_ptr<CoordinatorTransport>> transports;  // one per coordinator
  std::atomic<size_t> preferred{0};  // the coordinator that answered last (sticky)
  treaty::Mutex mu;
  std::map<std::string, size_t> owner_of TREATY_GUARDED_BY(mu);  // 2PC gtid -> coordinator index
};

Result<json> Client::Impl::Call(const CallPlan& plan) {
  const size_t n = transports.size();
  if (n == 0) return Status::InvalidArgument("client: no coordinators configured");
  size_t start = preferred.load() % n;
  size_t owner = n;  // unknown
  if (!plan.pin_gtid.empty()) {
    treaty::MutexLock l(&mu);
    if (auto it = owner_of.find(plan.pin_gtid); it != owner_of.end() && it->second < n) {
      start = owner = it->second;
    }
  }
  const auto takeover_deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options.failover_timeout_ms);
  const int attempts = options.max_attempts < 1 ? 1 : options.max_attempts;
  const int timeout_ms = options.request_timeout_ms;
  std::vector<bool> conflicted(n, false);
  bool outcome_unknown = false;    // an attempt may have acted though no answer came back
  bool awaiting_takeover = false;  // a coordinator said another one owns the transaction
  int backoff = options.backoff_ms;
  std::string last_error = "no attempt";
  for (int i = 0;
       i < attempts || (awaiting_takeover && std::chrono::steady_clock::now() < takeover_deadline);
       ++i) {
    if (i > 0 && i % n == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
      backoff = std::min(backoff * 2, kMaxBackoffMs);
    }
    const size_t at = (start + i) % n;
    CoordinatorReply r = plan.send(*transports[at], timeout_ms);
    // Every text below that comes from outside (the coordinator's message,
    // a library's error) is shown escaped: control characters and invalid
    // UTF-8 made visible, so a Status message is safe to log.
    const std::string why = EscapeControl(r.message);
    if (r.resent) outcome_unknown = true;
    switch (r.delivery) {
      case Delivery::kBadConfig:
        return Status::InvalidArgument(why);
      case Delivery::kNotSent:  // never reached the coordinator: safe anywhere
        last_error = why;
        continue;
      case Delivery::kNoAnswer:   // outcome unknown: every call is safe to repeat (client.h)
      case Delivery::kBadAnswer:  // not a coordinator's answer: as kNoAnswer
        outcome_unknown = true;
        last_error = why;
        continue;
      case Delivery::kAnswered:
        break;
    }
    const std::string name = EscapeControl(options.coordinators[at]);
    const std::string msg = name + ": " + why;
    switch (r.code) {
      case StatusCode::kOk:
        preferred.store(at);
        if (!plan.pin_gtid.empty()) {
          treaty::MutexLock l(&mu);
          owner_of[plan.pin_gtid] = at;
          if (owner_of.size() > 100000) owner_of.clear();  // a cache, not a registry
        }
        return std::move(r.body);
      // Credentials are the same for every coordinator: asking the others
      // with a bad token only adds load.
      case StatusCode::kUnauthenticated:
        return Status::Unauthenticated(
            name + ": " +
            (options.token.empty() ? "the coordinator needs a token (ClientOptions::token): "
                                   : "the token was refused: ") +
            why);
      case StatusCode::kPermissionDenied:
        return Status::PermissionDenied(msg);
      case StatusCode::kInvalidArgument:
      case StatusCode::kTooLarge:
        return Status::InvalidArgument(why);
      case StatusCode::kNotFound:
        return Status::NotFound(why);
      case StatusCode::kConflict:
      case StatusCode::kBusinessFailure:  // a participant's code, never a coordinator's: as its 409
        // For Enlist/Commit/Abort a coordinator that does not own the
        // transaction answers Conflict too: final only from the owner, or
        // once every coordinator said so (the owner among them).
        conflicted[at] = true;
        if (!plan.owner_only || at == owner ||
            std::all_of(conflicted.begin(), conflicted.end(), [](bool b) { return b; })) {
          if (outcome_unknown && plan.after_lost_answer) {
            return plan.after_lost_answer(Status::Conflict(why));
          }
          return Status::Conflict(why);
        }
        awaiting_takeover = true;
        last_error = msg;
        continue;
      case StatusCode::kLostOwnership:  // "not_owner": another coordinator takes over
        outcome_unknown = true;         // it may have acted before it noticed
        awaiting_takeover = true;
        last_error = msg;
        continue;
      case StatusCode::kUnavailable:  // draining, not ready, store down
      case StatusCode::kTimedOut:
      case StatusCode::kInternal:
        outcome_unknown = true;  // e.g. a 504 after the coordinator acted
        last_error = name + ": " + ErrorCodeName(r.code) + ": " + why;
        continue;
    }
  }
  if (awaiting_takeover) {
    // Get has no pinned gtid: it names none rather than "transaction :".
    const std::string subject =
        plan.pin_gtid.empty() ? std::string("the call") : "transaction " + plan.pin_gtid;
    return Status::Unavailable(
        subject + ": no coordinator acted for it within failover_timeout_ms (" +
        std::to_string(options.failover_timeout_ms) + " ms); last: " + last_error);
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
  if (Status s = CheckTrace(saga.trace); !s.ok()) return s;
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
  // REST tells the coordinator to hold at most `wait_ms`; Thrift cannot, so
  // there the bound covers the coordinator's own hold (client.h).
  const int wait_bound = wait ? std::max(wait_ms, 1) : 0;
  return ToTxnStatus(impl_->Call({.send = [&](CoordinatorTransport& t, int ms) {
    return t.SubmitSaga(body, ms + (wait ? t.SagaWaitHoldMs(wait_bound) : 0), wait_bound,
                        saga.trace);
  }}));
}

Result<TxnStatus> Client::Begin(const std::string& gtid_or_empty, int64_t timeout_ms,
                                const TraceContext& trace) {
  const std::string gtid = gtid_or_empty.empty() ? NewGtid() : gtid_or_empty;
  if (Status s = CheckGtid(gtid); !s.ok()) return s;
  if (Status s = CheckTrace(trace); !s.ok()) return s;
  // One-phase commit is declared per branch at enlistment; "false" keeps an
  // older coordinator (whose default was one phase for a single branch) on
  // two phases too.
  json body = {{"gtid", gtid}, {"one_phase", false}};
  if (timeout_ms > 0) body["timeout_ms"] = timeout_ms;
  return ToTxnStatus(impl_->Call({.pin_gtid = gtid, .send = [&](CoordinatorTransport& t, int ms) {
                                    return t.Begin(body, ms, trace);
                                  }}));
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
  auto r = impl_->Call(
      {.pin_gtid = gtid, .owner_only = true, .send = [&](CoordinatorTransport& t, int ms) {
         return t.Enlist(gtid, body, ms);
       }});
  return r.ok() ? Status::Ok() : r.status();
}

Result<json> Client::Impl::DecidedState(const std::string& gtid, const Status& conflict,
                                        std::initializer_list<const char*> decided) {
  auto r = Call({.send = [&](CoordinatorTransport& t, int ms) { return t.Get(gtid, ms); }});
  if (!r.ok()) return conflict;
  const std::string state = StringField(*r, "state");
  for (const char* d : decided) {
    if (state == d) return json{{"gtid", StringField(*r, "gtid", gtid)}, {"state", state}};
  }
  return conflict;
}

Result<TxnStatus> Client::Commit(const std::string& gtid) {
  if (Status s = CheckGtid(gtid); !s.ok()) return s;
  return ToTxnStatus(
      impl_->Call({.pin_gtid = gtid,
                   .owner_only = true,
                   .send = [&](CoordinatorTransport& t, int ms) { return t.Commit(gtid, ms); },
                   // "already COMMITTED/ABORTED": a lost attempt decided it.
                   .after_lost_answer =
                       [&](const Status& conflict) {
                         return impl_->DecidedState(
                             gtid, conflict, {"COMMITTED", "COMMITTING", "ABORTED", "ABORTING"});
                       }}));
}

Result<TxnStatus> Client::Abort(const std::string& gtid) {
  if (Status s = CheckGtid(gtid); !s.ok()) return s;
  return ToTxnStatus(
      impl_->Call({.pin_gtid = gtid,
                   .owner_only = true,
                   .send = [&](CoordinatorTransport& t, int ms) { return t.Abort(gtid, ms); },
                   // "already ABORTED": a lost attempt aborted it. COMMITTING or
                   // COMMITTED stays a Conflict: the abort did not happen.
                   .after_lost_answer =
                       [&](const Status& conflict) {
                         return impl_->DecidedState(gtid, conflict, {"ABORTED", "ABORTING"});
                       }}));
}

Result<TransactionInfo> Client::Get(const std::string& gtid) {
  if (Status s = CheckGtid(gtid); !s.ok()) return s;
  auto r = impl_->Call({.send = [&](CoordinatorTransport& t, int ms) { return t.Get(gtid, ms); }});
  if (!r.ok()) return r.status();
  const json& j = *r;
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
