#include "thrift/thrift_participant_caller.h"

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "ParticipantService.h"
#include "common/endpoint.h"
#include "common/limits.h"
#include "common/text.h"
#include "thrift/thrift_limits.h"

namespace treaty {
namespace {

namespace at = apache::thrift;

struct Connection {
  std::shared_ptr<at::transport::TSocket> socket;
  std::shared_ptr<at::transport::TTransport> transport;
  std::unique_ptr<rpc::ParticipantServiceClient> client;
};

ParticipantResponse FromReply(const std::string& op, const rpc::ParticipantReply& reply) {
  ParticipantResponse r;
  switch (reply.outcome) {
    case rpc::Outcome::OK:
      r.outcome = CallOutcome::kOk;
      if (op == "prepare" && reply.__isset.vote) {
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
  // Created on the first thrift:// call: a coordinator whose participants
  // all speak HTTP starts no threads for Thrift.
  std::once_flag pool_once;
  std::unique_ptr<boost::asio::thread_pool> pool;
  std::mutex mu;
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> idle;  // guarded by mu

  explicit Impl(ThriftCallerOptions o) : options(o) {}

  boost::asio::thread_pool& Pool() {
    std::call_once(pool_once, [this] {
      pool = std::make_unique<boost::asio::thread_pool>(
          static_cast<size_t>(std::max(1, options.threads)));
    });
    return *pool;
  }

  std::unique_ptr<Connection> TakeIdle(const std::string& key) {
    std::lock_guard<std::mutex> l(mu);
    auto it = idle.find(key);
    if (it == idle.end() || it->second.empty()) return nullptr;
    auto c = std::move(it->second.back());
    it->second.pop_back();
    return c;
  }

  void GiveBack(const std::string& key, std::unique_ptr<Connection> c) {
    std::lock_guard<std::mutex> l(mu);
    auto& v = idle[key];
    if (static_cast<int>(v.size()) < options.max_idle_per_host) v.push_back(std::move(c));
  }

  // Every connection carries the limits of thrift_limits.h: a reply that
  // exceeds them fails the call (kTransient), it never costs more memory.
  std::unique_ptr<Connection> Open(const Endpoint& endpoint) {
    auto c = std::make_unique<Connection>();
    c->socket = std::make_shared<at::transport::TSocket>(endpoint.host, endpoint.port,
                                                         ThriftConfiguration());
    c->socket->setConnTimeout(options.connect_timeout_ms);
    c->socket->setNoDelay(true);
    c->transport =
        std::make_shared<at::transport::TFramedTransport>(c->socket, ThriftConfiguration());
    c->client =
        std::make_unique<rpc::ParticipantServiceClient>(LimitedBinaryProtocol(c->transport));
    c->transport->open();
    return c;
  }

  static rpc::ParticipantReply Invoke(Connection& c, const ParticipantRequest& req) {
    rpc::ParticipantCall call;
    call.gtid = req.gtid;
    call.branch = req.branch;
    call.op = req.op;
    call.payload = req.payload_json;
    call.idempotency_key = req.gtid + "/" + req.branch + "/" + req.op;
    call.traceparent = req.traceparent;
    if (req.one_phase) call.__set_one_phase(true);
    const int timeout = static_cast<int>(req.timeout_ms);
    c.socket->setRecvTimeout(timeout);
    c.socket->setSendTimeout(timeout);
    rpc::ParticipantReply reply;
    if (req.op == "action") {
      c.client->action(reply, call);
    } else if (req.op == "compensate") {
      c.client->compensate(reply, call);
    } else if (req.op == "prepare") {
      c.client->prepare(reply, call);
    } else if (req.op == "commit") {
      c.client->commit(reply, call);
    } else if (req.op == "abort") {
      c.client->abort(reply, call);
    } else {
      throw std::invalid_argument("unknown op '" + req.op + "'");
    }
    return reply;
  }

  // Blocking; runs on the pool.
  ParticipantResponse CallNow(const ParticipantRequest& req) {
    ParticipantResponse r;
    // The one URL parser (common/endpoint.h), as at submission. A URL it
    // refuses can never be called (kUncallable), never retried.
    auto endpoint = ParseEndpoint(req.url, "participant URL");
    if (!endpoint.ok() || endpoint->scheme != "thrift") {
      r.outcome = CallOutcome::kUncallable;
      r.error = endpoint.ok() ? "not a thrift:// URL" : endpoint.status().message();
      return r;
    }
    const std::string key = endpoint->Authority();
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::unique_ptr<Connection> c = attempt == 0 ? TakeIdle(key) : nullptr;
      const bool reused = c != nullptr;
      try {
        if (!c) c = Open(*endpoint);
        rpc::ParticipantReply reply = Invoke(*c, req);
        r = FromReply(req.op, reply);
        GiveBack(key, std::move(c));
        return r;
      } catch (const at::TApplicationException& e) {
        // The participant answered with an error: the connection is fine.
        r = ParticipantResponse();
        r.error = "participant raised: " + Excerpt(e.what(), limits::kErrorExcerptBytes);
        if (c) GiveBack(key, std::move(c));
        return r;
      } catch (const std::exception& e) {
        r = ParticipantResponse();
        r.error =
            "thrift call to " + key + " failed: " + Excerpt(e.what(), limits::kErrorExcerptBytes);
        if (c) {
          try {
            c->transport->close();
          } catch (const std::exception&) {
          }
        }
        if (!reused) return r;  // a fresh connection failed: do not hammer
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
