#include "thrift_endpoint.h"

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include <thrift/TApplicationException.h>
#include <thrift/TOutput.h>
#include <thrift/concurrency/ThreadFactory.h>
#include <thrift/concurrency/ThreadManager.h>
#include <thrift/server/TNonblockingServer.h>
#include <thrift/transport/TNonblockingServerSocket.h>

#include "ParticipantService.h"
#include "input_rules.h"
#include "thrift/thrift_limits.h"

namespace treaty_sdk_detail {

namespace at = apache::thrift;
namespace rpc = treaty::rpc;

namespace {

// As the HTTP side: a W3C traceparent is lower-case hex and dashes; anything
// else is dropped.
bool LooksLikeTraceparent(const std::string& value) {
  if (value.size() < 55 || value.size() > 256) return false;
  for (char c : value) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-')) return false;
  }
  return true;
}

// The call's fields under the input rules of docs/input-rules.md, as the
// HTTP side checks them: gtid, branch and op are identifiers, the payload is
// JSON of bounded depth, an idempotency key (when given) is the call's
// "{gtid}/{branch}/{op}", one_phase only on a commit. "" when the call is acceptable, else why
// (naming the field, never echoing its bytes).
std::string CallError(treaty::CallContext* ctx, const rpc::ParticipantCall& c) {
  if (std::string e = CallContextError(*ctx); !e.empty()) return e;
  auto payload = ParseJsonInput(c.payload.empty() ? "null" : c.payload, "'payload'");
  if (!payload.ok()) return payload.error;
  ctx->payload = DumpJson(payload.value);
  const std::string key = ctx->gtid + "/" + ctx->branch + "/" + ctx->op;
  if (!c.idempotency_key.empty() && c.idempotency_key != key) {
    return "'idempotency_key' must be \"{gtid}/{branch}/{op}\" of the call";
  }
  ctx->idempotency_key = key;
  ctx->one_phase = c.__isset.one_phase && c.one_phase;
  if (ctx->one_phase && ctx->op != "commit") return "'one_phase' may be true only for commit";
  if (LooksLikeTraceparent(c.traceparent)) ctx->traceparent = c.traceparent;
  return "";
}

// ParticipantServiceIf over the endpoint's handler: fills the call context,
// converts the outcome to a ParticipantReply.
class ParticipantService : public rpc::ParticipantServiceIf {
 public:
  explicit ParticipantService(ThriftEndpoint::Handler* handler) : handler_(handler) {}

  void action(rpc::ParticipantReply& out, const rpc::ParticipantCall& c) override {
    Serve(out, "action", c);
  }
  void compensate(rpc::ParticipantReply& out, const rpc::ParticipantCall& c) override {
    Serve(out, "compensate", c);
  }
  void prepare(rpc::ParticipantReply& out, const rpc::ParticipantCall& c) override {
    Serve(out, "prepare", c);
  }
  void commit(rpc::ParticipantReply& out, const rpc::ParticipantCall& c) override {
    Serve(out, "commit", c);
  }
  void abort(rpc::ParticipantReply& out, const rpc::ParticipantCall& c) override {
    Serve(out, "abort", c);
  }

 private:
  void Serve(rpc::ParticipantReply& out, const char* op, const rpc::ParticipantCall& c) {
    treaty::CallContext ctx;
    ctx.gtid = c.gtid;
    ctx.branch = c.branch;
    ctx.op = op;  // the method, whatever the call's op field says
    if (std::string e = CallError(&ctx, c); !e.empty()) {
      // Answered with a TApplicationException (the generated processor
      // writes it); the handler never sees the call.
      throw at::TApplicationException(at::TApplicationException::UNKNOWN, "invalid request: " + e);
    }
    ThriftOutcome r;
    try {
      r = (*handler_)(ctx);
    } catch (const std::exception& e) {
      r = {ThriftOutcome::Kind::kRetry, std::nullopt, std::string("handler threw: ") + e.what()};
    } catch (...) {
      r = {ThriftOutcome::Kind::kRetry, std::nullopt, "handler threw"};
    }
    switch (r.kind) {
      case ThriftOutcome::Kind::kOk:
        out.outcome = rpc::Outcome::OK;
        break;
      case ThriftOutcome::Kind::kFailed:
        out.outcome = rpc::Outcome::FAILED;
        break;
      case ThriftOutcome::Kind::kRetry:
        out.outcome = rpc::Outcome::RETRY;
        break;
    }
    if (r.vote) {
      out.__set_vote(*r.vote == treaty::Vote::kNo         ? rpc::Vote::NO
                     : *r.vote == treaty::Vote::kReadOnly ? rpc::Vote::READONLY
                                                          : rpc::Vote::YES);
    }
    if (!r.message.empty()) out.__set_message(r.message);
  }

  ThriftEndpoint::Handler* handler_;  // owned by ThriftEndpoint::Impl
};

}  // namespace

struct ThriftEndpoint::Impl {
  std::string host;
  uint16_t requested_port;
  int handler_threads;
  Handler handler;
  std::shared_ptr<at::concurrency::ThreadManager> workers;
  std::unique_ptr<at::server::TNonblockingServer> server;
  std::thread loop;
  std::atomic<bool> loop_done{false};
  std::atomic<uint16_t> port{0};
};

ThriftEndpoint::ThriftEndpoint(std::string host, uint16_t port, int handler_threads,
                               Handler handler)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->requested_port = port;
  impl_->handler_threads = handler_threads < 1 ? 1 : handler_threads;
  impl_->handler = std::move(handler);
}

ThriftEndpoint::~ThriftEndpoint() { Stop(); }

std::string ThriftEndpoint::Start() {
  Impl& m = *impl_;
  // Thrift's own chatter (loop start, closed connections) is dropped: the
  // SDK has no logger of its own. A library global.
  at::GlobalOutput.setOutputFunction([](const char*) {});
  try {
    // The limits of thrift_limits.h (docs/input-rules.md): frames up to
    // kThriftMaxMessageBytes read through a FrameReader by the bounded binary
    // protocol; a request refused by them is answered with a
    // TApplicationException, never an exit.
    auto processor = std::make_shared<treaty::GuardedProcessor>(
        std::make_shared<rpc::ParticipantServiceProcessor>(
            std::make_shared<ParticipantService>(&m.handler)),
        nullptr);
    auto protocol = treaty::LimitedBinaryProtocolFactory();
    m.workers = at::concurrency::ThreadManager::newSimpleThreadManager(
        static_cast<size_t>(m.handler_threads));
    m.workers->threadFactory(std::make_shared<at::concurrency::ThreadFactory>());
    m.workers->start();
    auto socket =
        std::make_shared<at::transport::TNonblockingServerSocket>(m.host, m.requested_port);
    m.server = std::make_unique<at::server::TNonblockingServer>(
        processor, treaty::LimitedServerInputTransportFactory(),
        std::make_shared<at::transport::TTransportFactory>(), protocol, protocol, socket,
        m.workers);
    m.server->setMaxFrameSize(static_cast<size_t>(treaty::limits::kThriftMaxMessageBytes));
  } catch (const std::exception& e) {
    m.server.reset();
    if (m.workers) m.workers->stop();
    m.workers.reset();
    return std::string("thrift: ") + e.what();
  }
  // Bind (registerEvents) and serve on the same thread: TNonblockingServer
  // remembers the registering thread as its loop thread, and stop() from
  // another thread relies on that to wake the loop.
  std::promise<std::string> bound;  // "" or why binding failed
  auto bound_future = bound.get_future();
  m.loop_done = false;
  m.loop = std::thread([&m, &bound] {
    try {
      m.server->registerEvents(nullptr);
      m.port = static_cast<uint16_t>(m.server->getListenPort());
      bound.set_value("");
    } catch (const std::exception& e) {
      bound.set_value(e.what());
      m.loop_done = true;
      return;
    }
    try {
      m.server->serve();
    } catch (const std::exception&) {
    }
    m.loop_done = true;
  });
  if (std::string error = bound_future.get(); !error.empty()) {
    m.loop.join();
    m.server.reset();
    m.workers->stop();
    m.workers.reset();
    return "cannot serve Thrift on " + m.host + ":" + std::to_string(m.requested_port) + ": " +
           error;
  }
  return "";
}

void ThriftEndpoint::Stop() {
  Impl& m = *impl_;
  if (!m.server) return;
  // A stop that lands before the event loop starts is lost: repeat it.
  while (m.loop.joinable() && !m.loop_done) {
    m.server->stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (m.loop.joinable()) m.loop.join();
  m.server.reset();
  if (m.workers) m.workers->stop();  // waits for running handlers
  m.workers.reset();
}

uint16_t ThriftEndpoint::port() const { return impl_->port; }

}  // namespace treaty_sdk_detail
