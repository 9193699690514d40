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
#include <thrift/transport/TVirtualTransport.h>
#include <nlohmann/json.hpp>

#include "CoordinatorService.h"
#include "common/endpoint.h"
#include "common/idle_socket.h"
#include "common/mutex.h"
#include "common/socket_deadline.h"
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

// Between the framed transport and the socket: what one call put on the
// wire, so that a failed call tells "the coordinator may have acted" (the
// request was written) and "an answer had begun" (not a connection closed
// while idle) apart. Used by one call at a time.
class WireMeter : public at::transport::TVirtualTransport<WireMeter> {
 public:
  explicit WireMeter(std::shared_ptr<at::transport::TTransport> socket)
      : TVirtualTransport(socket->getConfiguration()), socket_(std::move(socket)) {}
  bool isOpen() const override { return socket_->isOpen(); }
  bool peek() override { return socket_->peek(); }
  void open() override { socket_->open(); }
  void close() override { socket_->close(); }
  uint32_t read(uint8_t* buf, uint32_t len) {
    const uint32_t n = socket_->read(buf, len);
    if (n > 0) answer_begun_ = true;
    return n;
  }
  // The framed transport writes a whole frame at once (on flush).
  void write(const uint8_t* buf, uint32_t len) {
    socket_->write(buf, len);
    written_ = true;
  }
  void flush() override { socket_->flush(); }

  void Reset() { written_ = answer_begun_ = false; }
  bool written() const { return written_; }
  bool answer_begun() const { return answer_begun_; }

 private:
  std::shared_ptr<at::transport::TTransport> socket_;
  bool written_ = false;
  bool answer_begun_ = false;
};

// One open connection; used by one call at a time.
struct ThriftConnection {
  std::shared_ptr<at::transport::TSocket> socket;
  std::shared_ptr<WireMeter> meter;  // over `socket`, under `transport`
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
  // Opens (and authenticates) a connection by `deadline` (`timeout_ms`, for
  // messages, after the call began), or answers why not (kNotSent).
  std::unique_ptr<ThriftConnection> Open(int timeout_ms, Clock::time_point deadline,
                                         CoordinatorReply* failure);

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
                                                          Clock::time_point deadline,
                                                          CoordinatorReply* failure) {
  const std::string timed_out = "timed out after " + std::to_string(timeout_ms) + " ms";
  auto c = std::make_unique<ThriftConnection>();
  // The client socket treatyd calls participants with (thrift_client_tls.h):
  // lookup, connect and TLS handshake (certificate and host name checked)
  // by the call's deadline; the limits of thrift_limits.h on the answer, so
  // one that exceeds them fails the call, it never costs more memory.
  treaty::ThriftConnectOptions connect;
  connect.timeout_ms = std::min(timeout_ms, 5000);
  connect.deadline = deadline;
  treaty::ThriftConnectFailure why;
  c->socket = treaty::ConnectThriftSocket(endpoint_, tls_, connect, why);
  if (!c->socket) {
    const bool tls = why.stage == treaty::ThriftConnectFailure::Stage::kTls;
    *failure =
        Failed(Delivery::kNotSent,
               address_ + ": " +
                   (why.timed_out && why.stage != treaty::ThriftConnectFailure::Stage::kConnect
                        ? (tls ? "TLS handshake: " : "resolve: ") + timed_out
                        : ConnectFailureText(why)));
    return nullptr;
  }
  opened_.fetch_add(1);
  try {
    c->meter = std::make_shared<WireMeter>(c->socket);
    c->transport =
        std::make_shared<at::transport::TFramedTransport>(c->meter, treaty::ThriftConfiguration());
    c->client = std::make_unique<rpc::CoordinatorServiceClient>(
        treaty::LimitedBinaryProtocol(c->transport));
  } catch (const std::exception& e) {
    c->socket->close();
    *failure = Failed(Delivery::kNotSent, address_ + ": connect: " + Excerpt(e.what(), 200));
    return nullptr;
  }
  if (options_.token.empty()) return c;
  std::optional<treaty::SocketDeadline> limit(std::in_place, c->socket->getSocketFD(), deadline);
  try {
    treaty::SetTimeoutsUntil(*c->socket, *limit);
    c->client->authenticate(options_.token);
    if (!limit->Release()) return c;
    *failure = Failed(Delivery::kNotSent, address_ + ": authenticate: " + timed_out);
  } catch (const rpc::Unauthenticated& e) {
    *failure = Answered(StatusCode::kUnauthenticated, e.message);
  } catch (const std::exception& e) {
    const auto* te = dynamic_cast<const at::transport::TTransportException*>(&e);
    if (limit->expired() ||
        (te != nullptr && te->getType() == at::transport::TTransportException::TIMED_OUT)) {
      *failure = Failed(Delivery::kNotSent, address_ + ": authenticate: " + timed_out);
    } else {
      // With TLS 1.3 a coordinator refuses a missing client certificate only
      // now, after the client's handshake completed.
      std::string refusal = TlsRefusalText(treaty::TlsRefusalAfterExchange(*c->socket, e.what()));
      *failure =
          Failed(Delivery::kNotSent,
                 address_ + ": " +
                     (!refusal.empty() ? refusal : "authenticate: " + Excerpt(e.what(), 200)));
    }
  }
  limit.reset();  // disarmed before the socket is closed
  c->Close();
  return nullptr;
}

template <class Fn>
CoordinatorReply ThriftCoordinator::Call(int timeout_ms, Fn fn) {
  // OpenSSL writes without MSG_NOSIGNAL, on the application's thread.
  std::optional<treaty::ScopedSigpipeBlock> no_sigpipe;
  if (tls_) no_sigpipe.emplace();
  // Everything below (both rounds) ends by this, however slowly the
  // coordinator sends: the socket is shut down at the deadline.
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(std::max(1, timeout_ms));
  const std::string timed_out = "timed out after " + std::to_string(timeout_ms) + " ms";
  // Round 0 wrote the request on a reused connection and found it closed:
  // it may have acted, so round 1's reply is marked resent.
  bool resent = false;
  CoordinatorReply first_failure;  // round 0's, when round 1 cannot connect
  for (int round = 0;; ++round) {
    std::unique_ptr<ThriftConnection> c = round == 0 ? TakeIdle() : nullptr;
    const bool reused = c != nullptr;
    if (!c) {
      CoordinatorReply failure;
      c = Open(timeout_ms, deadline, &failure);
      // Round 1 could not connect after round 0 wrote the call: round 0's
      // failure (no answer) stands.
      if (!c) return resent ? first_failure : failure;
    }
    c->meter->Reset();
    std::optional<treaty::SocketDeadline> limit(std::in_place, c->socket->getSocketFD(), deadline);
    // An answer was read: the connection is kept unless the deadline shut
    // its socket down meanwhile.
    auto keep = [&] {
      if (limit->Release()) {
        c->Close();
      } else {
        GiveBack(std::move(c));
      }
    };
    auto reply = [&](CoordinatorReply r) {
      r.resent = resent;
      return r;
    };
    try {
      treaty::SetTimeoutsUntil(*c->socket, *limit);
      CoordinatorReply r;
      r.delivery = Delivery::kAnswered;
      json raw = fn(*c->client);
      keep();
      // Strings made valid UTF-8 (DumpJson), as a REST answer would be.
      ParsedJson clean = ParseJsonInput(DumpJson(raw), "the coordinator's answer",
                                        treaty::limits::kMaxJsonDepth + 2);
      if (!clean.ok()) return reply(Failed(Delivery::kBadAnswer, address_ + ": " + clean.error));
      r.body = std::move(clean.value);
      return reply(std::move(r));
    } catch (const rpc::InvalidRequest& e) {
      keep();
      return reply(Answered(StatusCode::kInvalidArgument, e.message));
    } catch (const rpc::NotFound& e) {
      keep();
      return reply(Answered(StatusCode::kNotFound, e.message));
    } catch (const rpc::Conflict& e) {
      keep();
      return reply(Answered(ConflictCode(e), e.message));
    } catch (const rpc::Unavailable& e) {
      keep();
      return reply(Answered(StatusCode::kUnavailable, e.message));
    } catch (const rpc::Unauthenticated& e) {
      keep();
      return reply(Answered(StatusCode::kUnauthenticated, e.message));
    } catch (const rpc::Forbidden& e) {
      keep();
      return reply(Answered(StatusCode::kPermissionDenied, e.message));
    } catch (const json::exception& e) {
      // The request could not be converted: nothing was sent.
      keep();
      return reply(
          Failed(Delivery::kBadConfig, std::string("request body: ") + Excerpt(e.what(), 200)));
    } catch (const at::transport::TTransportException& e) {
      const bool expired =
          limit->expired() || e.getType() == at::transport::TTransportException::TIMED_OUT;
      limit.reset();  // disarmed before the socket is closed
      const bool written = c->meter->written();
      // A fresh TLS connection's first call may meet the coordinator's
      // refusal (TLS 1.3, no client certificate): it never read the call.
      std::string refusal;
      if (!reused && !expired && options_.token.empty()) {
        refusal = TlsRefusalText(treaty::TlsRefusalAfterExchange(*c->socket, e.what()));
      }
      const bool answer_begun = c->meter->answer_begun();
      c->Close();
      if (!refusal.empty()) return reply(Failed(Delivery::kNotSent, address_ + ": " + refusal));
      // Not completely written: the coordinator never read the call.
      CoordinatorReply failed =
          Failed(written ? Delivery::kNoAnswer : Delivery::kNotSent,
                 address_ + ": " + (expired ? timed_out : Excerpt(e.what(), 200)));
      // A kept-alive connection the coordinator closed while it was idle:
      // no answer began and time is left, so once more on a fresh one. If
      // the request was written it may have acted: round 1 is a resend.
      if (reused && round == 0 && !expired && !answer_begun && Clock::now() < deadline) {
        resent = written;
        first_failure = std::move(failed);
        continue;
      }
      return reply(std::move(failed));
    } catch (const std::exception& e) {
      // TApplicationException, protocol errors, a reply beyond the limits:
      // the call was sent; its outcome is unknown.
      const bool expired = limit->expired();
      limit.reset();
      c->Close();
      return reply(Failed(expired ? Delivery::kNoAnswer : Delivery::kBadAnswer,
                          address_ + ": " + (expired ? timed_out : Excerpt(e.what(), 200))));
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
