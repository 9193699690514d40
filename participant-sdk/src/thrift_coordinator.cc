#include "thrift_coordinator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <thrift/transport/TTransportException.h>
#include <nlohmann/json.hpp>

#include "CoordinatorService.h"
#include "common/endpoint.h"
#include "common/idle_socket.h"
#include "common/mutex.h"
#include "input_rules.h"
#include "thrift/thrift_client_tls.h"
#include "thrift/thrift_limits.h"

namespace treaty_sdk_detail {

namespace at = apache::thrift;
namespace rpc = treaty::rpc;
using nlohmann::json;
using treaty::StatusCode;
using Clock = std::chrono::steady_clock;

namespace {

json StatusJson(const rpc::TxnStatus& s) { return {{"gtid", s.gtid}, {"state", s.state}}; }

json TransactionJson(const rpc::Transaction& t) {
  json j = {{"gtid", t.gtid},
            {"kind", t.kind},
            {"state", t.state},
            {"owner", t.owner},
            {"needs_attention", t.needs_attention},
            {"deadline_ms", t.deadline_ms},
            {"attempts", t.attempts},
            {"created_at_ms", t.created_at_ms},
            {"updated_at_ms", t.updated_at_ms}};
  // Depth-limited: a deep spec would overflow the stack when dumped.
  auto spec = ParseJsonInput(t.spec, "spec");
  j["spec"] = spec.ok() ? std::move(spec.value) : json(ToValidUtf8(t.spec));
  j["branches"] = json::array();
  for (const auto& b : t.branches) {
    j["branches"].push_back({{"name", b.name},
                             {"idx", b.idx},
                             {"state", b.state},
                             {"attempts", b.attempts},
                             {"last_error", b.last_error},
                             {"next_attempt_at_ms", b.next_attempt_at_ms},
                             {"updated_at_ms", b.updated_at_ms}});
  }
  j["history"] = json::array();
  for (const auto& e : t.history) {
    j["history"].push_back({{"id", e.id},
                            {"at_ms", e.at_ms},
                            {"branch", e.branch},
                            {"type", e.type},
                            {"detail", e.detail}});
  }
  return j;
}

std::string PayloadText(const json& obj) {
  auto it = obj.find("payload");
  return it == obj.end() ? "null" : it->dump();
}

rpc::SagaRequest SagaRequest(const json& body) {
  rpc::SagaRequest req;
  if (body.contains("gtid")) req.__set_gtid(body["gtid"].get<std::string>());
  if (body.contains("timeout_ms")) req.__set_timeout_ms(body["timeout_ms"].get<int64_t>());
  if (body.contains("concurrent")) req.__set_concurrent(body["concurrent"].get<bool>());
  if (body.contains("wait")) req.__set_wait(body["wait"].get<bool>());
  for (const auto& s : body["steps"]) {
    rpc::SagaStep step;
    step.name = s["name"].get<std::string>();
    step.action = s["action"].get<std::string>();
    step.compensate = s["compensate"].get<std::string>();
    step.__set_payload(PayloadText(s));
    if (s.contains("after")) step.__set_after(s["after"].get<std::vector<std::string>>());
    if (s.contains("timeout_ms")) step.__set_timeout_ms(s["timeout_ms"].get<int64_t>());
    if (s.contains("retry")) {
      const json& r = s["retry"];
      rpc::RetryPolicy p;
      if (r.contains("max_attempts")) p.__set_max_attempts(r["max_attempts"].get<int32_t>());
      if (r.contains("initial_backoff_ms")) {
        p.__set_initial_backoff_ms(r["initial_backoff_ms"].get<int64_t>());
      }
      if (r.contains("max_backoff_ms")) p.__set_max_backoff_ms(r["max_backoff_ms"].get<int64_t>());
      step.__set_retry_policy(p);
    }
    req.steps.push_back(std::move(step));
  }
  return req;
}

constexpr size_t kMessageBytes = 200;  // error messages are cut to this
// How long treatyd holds a waiting submit when it is not told (docs/api.md).
constexpr int kCoordinatorWaitHoldMs = 30000;

CoordinatorReply Answered(StatusCode code, const std::string& message) {
  CoordinatorReply r;
  r.delivery = Delivery::kAnswered;
  r.code = code;
  r.message = Excerpt(message, kMessageBytes);
  return r;
}

// A Conflict's `code` (idl/coordinator.thrift): "not_owner" is
// kLostOwnership; "conflict", a code newer than this SDK, or none (an older
// coordinator) is kConflict.
StatusCode ConflictCode(const rpc::Conflict& e) {
  const bool not_owner =
      e.__isset.code && e.code == treaty::ErrorCodeName(StatusCode::kLostOwnership);
  return not_owner ? StatusCode::kLostOwnership : StatusCode::kConflict;
}

CoordinatorReply Failed(Delivery d, std::string message) {
  CoordinatorReply r;
  r.delivery = d;
  r.message = std::move(message);
  return r;
}

// A TLS refusal as the REST transport words it; "" for kNone.
std::string TlsRefusalText(const treaty::TlsFailure& tls) {
  switch (tls.kind) {
    case treaty::TlsFailure::Kind::kCertificate:
      return "the server's certificate was refused: " + tls.reason;
    case treaty::TlsFailure::Kind::kRefused:
      return "the coordinator refused TLS: " + tls.reason;
    case treaty::TlsFailure::Kind::kNone:
      break;
  }
  return "";
}

// Why a connection could not be opened (nothing was sent).
std::string ConnectFailureText(const treaty::ThriftConnectFailure& why) {
  if (std::string refusal = TlsRefusalText(why.tls); !refusal.empty()) return refusal;
  const bool tls = why.stage == treaty::ThriftConnectFailure::Stage::kTls;
  return (tls ? "TLS handshake: " : "connect: ") + why.error;
}

// One open connection; used by one call at a time.
struct ThriftConnection {
  std::shared_ptr<at::transport::TSocket> socket;
  std::shared_ptr<at::transport::TTransport> transport;
  std::unique_ptr<rpc::CoordinatorServiceClient> client;
  Clock::time_point idle_since;

  void Close() {
    try {
      transport->close();
    } catch (const std::exception&) {
      // closing a broken connection: nothing to do
    }
  }
};

class ThriftCoordinator : public CoordinatorTransport {
 public:
  // `tls`: non-null for thrifts://.
  ThriftCoordinator(std::string address, treaty::Endpoint endpoint, const TransportOptions& options,
                    std::shared_ptr<treaty::ClientTlsFactory> tls)
      : address_(std::move(address)),
        endpoint_(std::move(endpoint)),
        options_(options),
        tls_(std::move(tls)) {}
  ~ThriftCoordinator() override {
    // Closing an idle TLS connection writes close_notify (SIGPIPE).
    treaty::ScopedSigpipeBlock no_sigpipe;
    treaty::MutexLock l(&mu_);
    for (auto& c : idle_) c->Close();
    idle_.clear();
  }

  int SagaWaitHoldMs(int wait_ms) const override {
    return std::max(wait_ms, kCoordinatorWaitHoldMs);
  }
  // SagaRequest has no wait bound: the coordinator holds a waiting submit
  // up to its default (30 s), whatever the client's wait.
  CoordinatorReply SubmitSaga(const json& request, int timeout_ms, int = 0,
                              const treaty::sdk::TraceContext& trace = {}) override {
    return Call(timeout_ms, [&](rpc::CoordinatorServiceClient& c) {
      rpc::TxnStatus status;
      rpc::SagaRequest req = SagaRequest(request);
      if (!trace.traceparent.empty()) req.__set_traceparent(trace.traceparent);
      if (!trace.tracestate.empty()) req.__set_tracestate(trace.tracestate);
      c.submitSaga(status, req);
      return StatusJson(status);
    });
  }
  CoordinatorReply Begin(const json& request, int timeout_ms,
                         const treaty::sdk::TraceContext& trace = {}) override {
    return Call(timeout_ms, [&](rpc::CoordinatorServiceClient& c) {
      rpc::Begin2pcRequest req;
      if (!trace.traceparent.empty()) req.__set_traceparent(trace.traceparent);
      if (!trace.tracestate.empty()) req.__set_tracestate(trace.tracestate);
      if (request.contains("gtid")) req.__set_gtid(request["gtid"].get<std::string>());
      if (request.contains("timeout_ms")) {
        req.__set_timeout_ms(request["timeout_ms"].get<int64_t>());
      }
      if (request.contains("one_phase")) req.__set_one_phase(request["one_phase"].get<bool>());
      rpc::TxnStatus status;
      c.begin2pc(status, req);
      return StatusJson(status);
    });
  }
  CoordinatorReply Enlist(const std::string& gtid, const json& branch, int timeout_ms) override {
    return Call(timeout_ms, [&](rpc::CoordinatorServiceClient& c) {
      rpc::Branch2pc b;
      b.name = branch["name"].get<std::string>();
      b.prepare = branch["prepare"].get<std::string>();
      b.commit = branch["commit"].get<std::string>();
      b.abort = branch["abort"].get<std::string>();
      b.__set_payload(PayloadText(branch));
      if (branch.contains("one_phase")) b.__set_one_phase(branch["one_phase"].get<bool>());
      rpc::TxnStatus status;
      c.registerBranch(status, gtid, b);
      return StatusJson(status);
    });
  }
  CoordinatorReply Commit(const std::string& gtid, int timeout_ms) override {
    return Call(timeout_ms, [&](rpc::CoordinatorServiceClient& c) {
      rpc::TxnStatus status;
      c.commit2pc(status, gtid);
      return StatusJson(status);
    });
  }
  CoordinatorReply Abort(const std::string& gtid, int timeout_ms) override {
    return Call(timeout_ms, [&](rpc::CoordinatorServiceClient& c) {
      rpc::TxnStatus status;
      c.abort2pc(status, gtid);
      return StatusJson(status);
    });
  }
  CoordinatorReply Get(const std::string& gtid, int timeout_ms) override {
    return Call(timeout_ms, [&](rpc::CoordinatorServiceClient& c) {
      rpc::Transaction t;
      c.getTransaction(t, gtid);
      return TransactionJson(t);
    });
  }
  int64_t connections_opened() const override { return opened_.load(); }

 private:
  // Runs `fn` on a pooled or fresh connection (thrift_coordinator.h).
  template <class Fn>
  CoordinatorReply Call(int timeout_ms, Fn fn);
  std::unique_ptr<ThriftConnection> TakeIdle();
  void GiveBack(std::unique_ptr<ThriftConnection> c);
  // Opens (and authenticates) a connection, or answers why not.
  std::unique_ptr<ThriftConnection> Open(int timeout_ms, CoordinatorReply* failure);

  const std::string address_;
  const treaty::Endpoint endpoint_;
  const TransportOptions options_;
  const std::shared_ptr<treaty::ClientTlsFactory> tls_;  // null for thrift://
  std::atomic<int64_t> opened_{0};
  treaty::Mutex mu_;
  std::vector<std::unique_ptr<ThriftConnection>> idle_ TREATY_GUARDED_BY(mu_);  // newest last
};

std::unique_ptr<ThriftConnection> ThriftCoordinator::TakeIdle() {
  const auto now = Clock::now();
  std::vector<std::unique_ptr<ThriftConnection>> stale;  // closed outside the lock
  std::unique_ptr<ThriftConnection> found;
  {
    treaty::MutexLock l(&mu_);
    while (!idle_.empty() && !found) {
      std::unique_ptr<ThriftConnection> c = std::move(idle_.back());
      idle_.pop_back();
      const bool fresh = now - c->idle_since < std::chrono::milliseconds(options_.idle_ms);
      if (fresh && treaty::IdleSocketUsable(c->socket->getSocketFD())) {
        found = std::move(c);
      } else {
        stale.push_back(std::move(c));
      }
    }
  }
  for (auto& c : stale) c->Close();
  return found;
}

void ThriftCoordinator::GiveBack(std::unique_ptr<ThriftConnection> c) {
  c->idle_since = Clock::now();
  {
    treaty::MutexLock l(&mu_);
    if (static_cast<int>(idle_.size()) < options_.pool_size) {
      idle_.push_back(std::move(c));
      return;
    }
  }
  c->Close();
}

std::unique_ptr<ThriftConnection> ThriftCoordinator::Open(int timeout_ms,
                                                          CoordinatorReply* failure) {
  auto c = std::make_unique<ThriftConnection>();
  // The client socket treatyd calls participants with (thrift_client_tls.h):
  // connect and TLS handshake (certificate and host name checked) each
  // bounded; the limits of thrift_limits.h on the answer, so one that
  // exceeds them fails the call, it never costs more memory.
  treaty::ThriftConnectOptions connect;
  connect.timeout_ms = std::min(timeout_ms, 5000);
  treaty::ThriftConnectFailure why;
  c->socket = treaty::ConnectThriftSocket(endpoint_, tls_, connect, why);
  if (!c->socket) {
    *failure = Failed(Delivery::kNotSent, address_ + ": " + ConnectFailureText(why));
    return nullptr;
  }
  opened_.fetch_add(1);
  try {
    c->socket->setRecvTimeout(timeout_ms);
    c->socket->setSendTimeout(timeout_ms);
    c->transport =
        std::make_shared<at::transport::TFramedTransport>(c->socket, treaty::ThriftConfiguration());
    c->client = std::make_unique<rpc::CoordinatorServiceClient>(
        treaty::LimitedBinaryProtocol(c->transport));
  } catch (const std::exception& e) {
    c->socket->close();
    *failure = Failed(Delivery::kNotSent, address_ + ": connect: " + Excerpt(e.what(), 200));
    return nullptr;
  }
  if (options_.token.empty()) return c;
  try {
    c->client->authenticate(options_.token);
    return c;
  } catch (const rpc::Unauthenticated& e) {
    *failure = Answered(StatusCode::kUnauthenticated, e.message);
  } catch (const std::exception& e) {
    // With TLS 1.3 a coordinator refuses a missing client certificate only
    // now, after the client's handshake completed.
    std::string refusal = TlsRefusalText(treaty::TlsRefusalAfterExchange(*c->socket, e.what()));
    *failure = Failed(
        Delivery::kNotSent,
        address_ + ": " + (!refusal.empty() ? refusal : "authenticate: " + Excerpt(e.what(), 200)));
  }
  c->Close();
  return nullptr;
}

template <class Fn>
CoordinatorReply ThriftCoordinator::Call(int timeout_ms, Fn fn) {
  // OpenSSL writes without MSG_NOSIGNAL, on the application's thread.
  std::optional<treaty::ScopedSigpipeBlock> no_sigpipe;
  if (tls_) no_sigpipe.emplace();
  for (int round = 0;; ++round) {
    std::unique_ptr<ThriftConnection> c = round == 0 ? TakeIdle() : nullptr;
    const bool reused = c != nullptr;
    if (!c) {
      CoordinatorReply failure;
      c = Open(timeout_ms, &failure);
      if (!c) return failure;
    } else {
      try {
        c->socket->setRecvTimeout(timeout_ms);
        c->socket->setSendTimeout(timeout_ms);
      } catch (const std::exception&) {
        c->Close();
        continue;
      }
    }
    try {
      CoordinatorReply r;
      r.delivery = Delivery::kAnswered;
      json raw = fn(*c->client);
      GiveBack(std::move(c));
      // Strings made valid UTF-8 (DumpJson), as a REST answer would be.
      ParsedJson clean = ParseJsonInput(DumpJson(raw), "the coordinator's answer",
                                        treaty::limits::kMaxJsonDepth + 2);
      if (!clean.ok()) return Failed(Delivery::kBadAnswer, address_ + ": " + clean.error);
      r.body = std::move(clean.value);
      return r;
    } catch (const rpc::InvalidRequest& e) {
      GiveBack(std::move(c));
      return Answered(StatusCode::kInvalidArgument, e.message);
    } catch (const rpc::NotFound& e) {
      GiveBack(std::move(c));
      return Answered(StatusCode::kNotFound, e.message);
    } catch (const rpc::Conflict& e) {
      GiveBack(std::move(c));
      return Answered(ConflictCode(e), e.message);
    } catch (const rpc::Unavailable& e) {
      GiveBack(std::move(c));
      return Answered(StatusCode::kUnavailable, e.message);
    } catch (const rpc::Unauthenticated& e) {
      GiveBack(std::move(c));
      return Answered(StatusCode::kUnauthenticated, e.message);
    } catch (const rpc::Forbidden& e) {
      GiveBack(std::move(c));
      return Answered(StatusCode::kPermissionDenied, e.message);
    } catch (const json::exception& e) {
      // The request could not be converted: nothing was sent.
      GiveBack(std::move(c));
      return Failed(Delivery::kBadConfig, std::string("request body: ") + Excerpt(e.what(), 200));
    } catch (const at::transport::TTransportException& e) {
      // A fresh TLS connection's first call may meet the coordinator's
      // refusal (TLS 1.3, no client certificate): it never read the call.
      std::string refusal;
      if (!reused && options_.token.empty()) {
        refusal = TlsRefusalText(treaty::TlsRefusalAfterExchange(*c->socket, e.what()));
      }
      c->Close();
      if (!refusal.empty()) return Failed(Delivery::kNotSent, address_ + ": " + refusal);
      const bool timed_out = e.getType() == at::transport::TTransportException::TIMED_OUT;
      if (reused && round == 0 && !timed_out) continue;  // closed while idle
      return Failed(Delivery::kNoAnswer,
                    address_ + ": " +
                        (timed_out ? "timed out after " + std::to_string(timeout_ms) + " ms"
                                   : Excerpt(e.what(), 200)));
    } catch (const std::exception& e) {
      // TApplicationException, protocol errors, a reply beyond the limits:
      // the call was sent; its outcome is unknown.
      c->Close();
      return Failed(Delivery::kBadAnswer, address_ + ": " + Excerpt(e.what(), 200));
    }
  }
}

}  // namespace

std::unique_ptr<CoordinatorTransport> MakeThriftCoordinator(const std::string& address,
                                                            const TransportOptions& options,
                                                            std::string* why) {
  // The coordinator's own URL parser, so the SDK calls what treatyd accepts.
  const treaty::Result<treaty::Endpoint> endpoint = treaty::ParseEndpoint(address);
  if (!endpoint.ok() || endpoint->http()) {
    *why = "coordinator URL " + EscapeControl(Excerpt(address, 200)) +
           ": expected thrift://HOST:PORT or thrifts://HOST:PORT";
    return nullptr;
  }
  std::shared_ptr<treaty::ClientTlsFactory> tls;
  if (endpoint->tls()) {
    auto factory = treaty::MakeClientTlsFactory(
        treaty::TlsClientFiles{options.ca_file, options.cert_file, options.key_file});
    if (!factory.ok()) {
      *why = "coordinator URL " + EscapeControl(Excerpt(address, 200)) + ": " +
             EscapeControl(factory.status().message());
      return nullptr;
    }
    tls = std::move(*factory);
  }
  return std::make_unique<ThriftCoordinator>(address, *endpoint, options, std::move(tls));
}

}  // namespace treaty_sdk_detail
