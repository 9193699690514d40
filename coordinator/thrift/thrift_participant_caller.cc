#include "thrift/thrift_participant_caller.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "ParticipantService.h"
#include "common/endpoint.h"
#include "common/limits.h"
#include "common/mutex.h"
#include "common/socket_deadline.h"
#include "common/text.h"
#include "engine/states.h"
#include "thrift/thrift_limits.h"
#include "thrift/thrift_participant_connection.h"

namespace treaty {
namespace {

namespace at = apache::thrift;
using Clock = std::chrono::steady_clock;

using Connection = ParticipantConnection;

// What the caller keeps for one host:port.
struct EndpointState {
  std::vector<std::unique_ptr<Connection>> idle;  // most recent last
  int in_flight = 0;                              // calls using the endpoint now
  Clock::time_point last_used;                    // last call start or end
};

ParticipantResponse FromReply(BranchOp op, const rpc::ParticipantReply& reply) {
  ParticipantResponse r;
  switch (reply.outcome) {
    case rpc::Outcome::OK:
      r.outcome = CallOutcome::kOk;
      if (op == BranchOp::kPrepare && reply.__isset.vote) {
        if (reply.vote == rpc::Vote::NO) {
          r.outcome = CallOutcome::kBusinessFailure;
          r.error = "voted NO";
        } else if (reply.vote == rpc::Vote::READONLY) {
          r.readonly_vote = true;
        }
      }
      break;
    case rpc::Outcome::FAILED:
      r.outcome = CallOutcome::kBusinessFailure;
      r.error = "FAILED";
      break;
    default:
      r.outcome = CallOutcome::kTransient;
      r.error = "RETRY";
      break;
  }
  if (reply.__isset.message && !reply.message.empty()) {
    // The participant's text: valid UTF-8, cut on a code point.
    r.error += (r.error.empty() ? "" : ": ") + Excerpt(reply.message, limits::kErrorExcerptBytes);
  }
  return r;
}

}  // namespace

struct ThriftParticipantCaller::Impl {
  ThriftCallerOptions options;
  Mutex tls_mu;
  // Made on the first thrifts:// call.
  std::shared_ptr<ClientTlsFactory> tls_factory TREATY_GUARDED_BY(tls_mu);
  // Created on the first thrift:// call: a coordinator whose participants
  // all speak HTTP starts no threads for Thrift.
  std::once_flag pool_once;
  std::unique_ptr<boost::asio::thread_pool> pool;
  mutable Mutex mu;
  std::map<std::string, EndpointState> endpoints TREATY_GUARDED_BY(mu);
  // On `pool`; declared after it, so destroyed before it.
  std::unique_ptr<boost::asio::steady_timer> prune_timer TREATY_GUARDED_BY(mu);
  bool prune_armed TREATY_GUARDED_BY(mu) = false;

  explicit Impl(ThriftCallerOptions o) : options(o) {}

  boost::asio::thread_pool& Pool() {
    std::call_once(pool_once, [this] {
      pool = std::make_unique<boost::asio::thread_pool>(
          static_cast<size_t>(std::max(1, options.threads)));
      MutexLock l(&mu);
      prune_timer = std::make_unique<boost::asio::steady_timer>(pool->get_executor());
    });
    return *pool;
  }

  // A call to `key` starts: counts it in flight and returns an idle
  // connection that has not outlived idle_timeout_ms, if any.
  std::unique_ptr<Connection> Begin(const std::string& key) {
    std::vector<std::unique_ptr<Connection>> expired;
    std::unique_ptr<Connection> c;
    {
      MutexLock l(&mu);
      EndpointState& e = endpoints[key];
      ++e.in_flight;
      e.last_used = Clock::now();
      while (!e.idle.empty() && !c) {
        c = std::move(e.idle.back());
        e.idle.pop_back();
        if (e.last_used - c->idle_since >= std::chrono::milliseconds(options.idle_timeout_ms)) {
          expired.push_back(std::move(c));
        }
      }
      ArmPrune();
    }
    for (auto& old : expired) old->Close();
    return c;
  }

  // The call to `key` ends; `c` (if any) is kept for reuse.
  void End(const std::string& key, std::unique_ptr<Connection> c) {
    MutexLock l(&mu);
    EndpointState& e = endpoints[key];
    --e.in_flight;
    e.last_used = Clock::now();
    if (c && static_cast<int>(e.idle.size()) < options.max_idle_per_host) {
      c->idle_since = e.last_used;
      e.idle.push_back(std::move(c));
    } else if (c) {
      c->Close();
    }
  }

  void ArmPrune() TREATY_REQUIRES(mu) {
    if (prune_armed || !prune_timer) return;
    prune_armed = true;
    prune_timer->expires_after(
        std::chrono::milliseconds(std::max(1, options.endpoint_idle_ms / 4)));
    prune_timer->async_wait([this](const boost::system::error_code& ec) {
      if (!ec) Prune();
    });
  }

  // Closes idle connections past idle_timeout_ms and forgets endpoints with
  // nothing in flight, nothing idle and no use for endpoint_idle_ms.
  void Prune() {
    BlockSigpipeOnThisThread();
    std::vector<std::unique_ptr<Connection>> expired;
    {
      MutexLock l(&mu);
      prune_armed = false;
      const auto now = Clock::now();
      for (auto it = endpoints.begin(); it != endpoints.end();) {
        auto& idle = it->second.idle;
        auto keep = std::partition(idle.begin(), idle.end(), [&](const auto& c) {
          return now - c->idle_since >= std::chrono::milliseconds(options.idle_timeout_ms);
        });
        for (auto i = idle.begin(); i != keep; ++i) expired.push_back(std::move(*i));
        idle.erase(idle.begin(), keep);
        if (it->second.in_flight == 0 && idle.empty() &&
            now - it->second.last_used >= std::chrono::milliseconds(options.endpoint_idle_ms)) {
          it = endpoints.erase(it);
        } else {
          ++it;
        }
      }
      if (!endpoints.empty()) ArmPrune();
    }
    for (auto& c : expired) c->Close();
  }

  // The TLS context, made on the first thrifts:// call (not kept when it
  // fails, so a fixed file is picked up by a later call).
  std::shared_ptr<ClientTlsFactory> TlsFactory(OpenFailure& failure) {
    MutexLock l(&tls_mu);
    if (!tls_factory) tls_factory = MakeClientTlsFactory(options.tls, failure);
    return tls_factory;
  }

  std::unique_ptr<Connection> Open(const Endpoint& endpoint, const std::string& key,
                                   const ParticipantRequest& req, Clock::time_point deadline,
                                   OpenFailure& failure) {
    std::shared_ptr<ClientTlsFactory> tls;
    if (endpoint.tls() && !(tls = TlsFactory(failure))) return nullptr;
    return OpenParticipantConnection(endpoint, key, options, tls, deadline, req.timeout_ms,
                                     failure);
  }

  static rpc::ParticipantReply Invoke(Connection& c, const ParticipantRequest& req) {
    rpc::ParticipantCall call;
    call.gtid = req.gtid;
    call.branch = req.branch;
    call.op = req.op;
    call.payload = req.payload_json;
    call.idempotency_key = req.gtid + "/" + req.branch + "/" + req.op;
    call.traceparent = req.traceparent;
    if (!req.tracestate.empty()) call.__set_tracestate(req.tracestate);
    if (req.one_phase) call.__set_one_phase(true);
    rpc::ParticipantReply reply;
    const std::optional<BranchOp> op = ParseBranchOp(req.op);
    if (!op) throw std::invalid_argument("unknown op '" + req.op + "'");
    switch (*op) {
      case BranchOp::kAction:
        c.client->action(reply, call);
        break;
      case BranchOp::kCompensate:
        c.client->compensate(reply, call);
        break;
      case BranchOp::kPrepare:
        c.client->prepare(reply, call);
        break;
      case BranchOp::kCommit:
        c.client->commit(reply, call);
        break;
      case BranchOp::kAbort:
        c.client->abort(reply, call);
        break;
    }
    return reply;
  }

  // Blocking, until req.timeout_ms after it began at most; runs on the pool.
  ParticipantResponse CallNow(const ParticipantRequest& req) {
    BlockSigpipeOnThisThread();
    const Clock::time_point deadline =
        Clock::now() + std::chrono::milliseconds(std::max<int64_t>(1, req.timeout_ms));
    ParticipantResponse r;
    // The one URL parser (common/endpoint.h), as at submission. A URL it
    // refuses can never be called (kUncallable), never retried.
    auto endpoint = ParseEndpoint(req.url, "participant URL");
    if (!endpoint.ok() || endpoint->http()) {
      r.outcome = CallOutcome::kUncallable;
      r.error = endpoint.ok() ? "not a thrift:// or thrifts:// URL" : endpoint.status().message();
      return r;
    }
    // The scheme is part of the key: thrift:// and thrifts:// to one
    // host:port never share a connection.
    const std::string key = endpoint->scheme + "://" + endpoint->Authority();
    std::unique_ptr<Connection> c = Begin(key);
    r = CallOn(*endpoint, key, req, deadline, c);
    End(key, std::move(c));  // `c` is null unless it may be reused
    return r;
  }

  // Calls with `c` (or a fresh connection), all by `deadline` however slowly
  // the participant sends (SocketDeadline); leaves in `c` a connection fit
  // for reuse, or null.
  ParticipantResponse CallOn(const Endpoint& endpoint, const std::string& key,
                             const ParticipantRequest& req, Clock::time_point deadline,
                             std::unique_ptr<Connection>& c) {
    ParticipantResponse r;
    const std::string timed_out = "thrift call to " + key + " failed: timed out after " +
                                  std::to_string(req.timeout_ms) + " ms";
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool reused = c != nullptr;
      if (!c) {
        OpenFailure failure;
        c = Open(endpoint, key, req, deadline, failure);
        if (!c) {
          r = ParticipantResponse();
          r.error = std::move(failure.error);
          r.config_error = failure.config_error;
          return r;  // a fresh connection failed: do not hammer
        }
      }
      std::optional<SocketDeadline> limit(std::in_place, c->socket->getSocketFD(), deadline);
      try {
        SetTimeoutsUntil(*c->socket, *limit);
        rpc::ParticipantReply reply = Invoke(*c, req);
        if (limit->Release()) {  // answered just as the socket was shut down
          c->Close();
          c.reset();
        }
        return FromReply(ParseBranchOp(req.op).value_or(BranchOp::kAction), reply);
      } catch (const at::TApplicationException& e) {
        // The participant answered with an error: the connection is fine.
        if (limit->Release()) {
          c->Close();
          c.reset();
        }
        r = ParticipantResponse();
        r.error = "participant raised: " + Excerpt(e.what(), limits::kErrorExcerptBytes);
        if (e.getType() == at::TApplicationException::UNKNOWN_METHOD ||
            e.getType() == at::TApplicationException::WRONG_METHOD_NAME) {
          r.config_error = true;
          r.error = "the service at " + key + " does not know the method '" + req.op +
                    "': it is not a Treaty participant, or not this version (" + r.error + ")";
        }
        return r;
      } catch (const at::transport::TTransportException& e) {
        const bool expired =
            limit->expired() || e.getType() == at::transport::TTransportException::TIMED_OUT;
        limit.reset();  // disarmed before the socket is closed
        r = ParticipantResponse();
        r.error =
            "thrift call to " + key + " failed: " + Excerpt(e.what(), limits::kErrorExcerptBytes);
        if (expired) {
          r.error = timed_out;
        } else if (!reused) {
          if (std::string refusal = c->TlsRefusal(e.what(), key, endpoint.host); !refusal.empty()) {
            r.config_error = true;
            r.error = std::move(refusal);
          }
        }
        c->Close();
        c.reset();
        // A fresh connection failed (do not hammer), or no time is left.
        if (!reused || expired || Clock::now() >= deadline) return r;
      } catch (const std::exception& e) {
        const bool expired = limit->expired();
        limit.reset();
        r = ParticipantResponse();
        r.error = expired ? timed_out
                          : "thrift call to " + key +
                                " failed: " + Excerpt(e.what(), limits::kErrorExcerptBytes);
        c->Close();
        c.reset();
        if (!reused || expired || Clock::now() >= deadline) return r;
      }
    }
    return r;
  }
};

ThriftParticipantCaller::ThriftParticipantCaller(ThriftCallerOptions options)
    : impl_(std::make_unique<Impl>(options)) {}

ThriftParticipantCaller::~ThriftParticipantCaller() {
  if (impl_->pool) {
    impl_->pool->stop();
    impl_->pool->join();
  }
  ScopedSigpipeBlock no_sigpipe;  // idle TLS connections send close_notify
  MutexLock l(&impl_->mu);
  impl_->endpoints.clear();
}

size_t ThriftParticipantCaller::endpoint_count() const {
  MutexLock l(&impl_->mu);
  return impl_->endpoints.size();
}

void ThriftParticipantCaller::Call(ParticipantRequest request, Callback done) {
  Impl* impl = impl_.get();
  boost::asio::post(impl->Pool(), [impl, request = std::move(request), done = std::move(done)] {
    const auto start = std::chrono::steady_clock::now();
    ParticipantResponse r = impl->CallNow(request);
    r.latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - start)
                       .count();
    done(std::move(r));
  });
}

}  // namespace treaty
