#include "thrift_endpoint.h"

#include <utility>

#include <thrift/TApplicationException.h>

#include "ParticipantService.h"
#include "common/limits.h"
#include "common/mutex.h"
#include "input_rules.h"
#include "thrift/framed_thrift_server.h"

namespace treaty_sdk_detail {

namespace at = apache::thrift;
namespace rpc = treaty::rpc;

namespace {

static_assert(ThriftEndpointLimits{}.max_frame_bytes ==
                  static_cast<size_t>(treaty::limits::kThriftMaxMessageBytes),
              "the SDK's Thrift frames are bounded by the Thrift message limit");

// At most `count` handlers at once across all connections: a counting
// semaphore whose waits Stop() ends. After Stop() no slot is handed out any
// more (a call still waiting, or arriving later, is told to go), so Stop()
// of the endpoint waits only for handlers already running. Thread-safe.
class HandlerSlots {
 public:
  explicit HandlerSlots(int count) : free_(count < 1 ? 1 : count) {}

  // Blocks until a slot is free (true: the caller must Release() it) or
  // Stop() was called (false, at once).
  [[nodiscard]] bool Acquire() {
    treaty::MutexLock lock(&mu_);
    wake_.Wait(&mu_, [this]() TREATY_REQUIRES(mu_) { return stopping_ || free_ > 0; });
    if (stopping_) return false;
    --free_;
    return true;
  }
  void Release() {
    {
      treaty::MutexLock lock(&mu_);
      ++free_;
    }
    wake_.NotifyOne();
  }
  // Ends every wait in Acquire() and refuses later ones. Idempotent.
  void Stop() {
    {
      treaty::MutexLock lock(&mu_);
      stopping_ = true;
    }
    wake_.NotifyAll();
  }

 private:
  treaty::Mutex mu_;
  treaty::CondVar wake_;  // a slot was released, or stopping_ was set
  int free_ TREATY_GUARDED_BY(mu_);
  bool stopping_ TREATY_GUARDED_BY(mu_) = false;
};

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
// runs the handler when one of the `slots` is free (waiting for one on the
// calling connection's thread), converts the outcome to a ParticipantReply.
// A call that gets no slot because the endpoint is stopping is answered
// RETRY without running the handler (the coordinator retries it, here after
// a restart or at another replica). Shared by every connection; thread-safe
// (the handler is).
class ParticipantService : public rpc::ParticipantServiceIf {
 public:
  ParticipantService(ThriftEndpoint::Handler* handler, HandlerSlots* slots)
      : handler_(handler), slots_(slots) {}

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
    if (!slots_->Acquire()) {
      r = {ThriftOutcome::Kind::kRetry, std::nullopt,
           "the participant server is stopping; the call was not run"};
    } else {
      try {
        r = (*handler_)(ctx);
      } catch (const std::exception& e) {
        r = {ThriftOutcome::Kind::kRetry, std::nullopt, std::string("handler threw: ") + e.what()};
      } catch (...) {
        r = {ThriftOutcome::Kind::kRetry, std::nullopt, "handler threw"};
      }
      slots_->Release();
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

  ThriftEndpoint::Handler* const handler_;  // owned by ThriftEndpoint::Impl
  HandlerSlots* const slots_;               // owned by ThriftEndpoint::Impl
};

}  // namespace

struct ThriftEndpoint::Impl {
  Handler handler;
  HandlerSlots slots;
  treaty::FramedThriftServer loop;

  Impl(std::string host, uint16_t port, int handler_threads, Handler h,
       const ThriftEndpointLimits& limits)
      : handler(std::move(h)),
        slots(handler_threads),
        loop(LoopOptions(std::move(host), port, limits), Connections(this)) {}

  static treaty::FramedThriftServerOptions LoopOptions(std::string host, uint16_t port,
                                                       const ThriftEndpointLimits& limits) {
    treaty::FramedThriftServerOptions out;
    out.host = std::move(host);
    out.port = port;
    out.max_connections = limits.max_connections;
    out.idle_timeout_ms = limits.idle_timeout_ms;
    out.request_timeout_ms = limits.request_timeout_ms;
    out.max_frame_bytes = limits.max_frame_bytes;
    out.log_name = "participant thrift";
    out.request_timeout_name = "the participant server's Thrift request time-out";
    return out;
  }

  // Every connection is served by one ParticipantService processor over
  // the handler (the generated processor keeps no per-call state).
  static treaty::ThriftConnectionFactory Connections(Impl* impl) {
    auto processor = std::make_shared<rpc::ParticipantServiceProcessor>(
        std::make_shared<ParticipantService>(&impl->handler, &impl->slots));
    return [processor](const std::string& /*peer*/) {
      treaty::ThriftConnectionService service;
      service.processor = processor;
      return service;
    };
  }
};

ThriftEndpoint::ThriftEndpoint(std::string host, uint16_t port, int handler_threads,
                               Handler handler, ThriftEndpointLimits limits)
    : impl_(std::make_unique<Impl>(std::move(host), port, handler_threads, std::move(handler),
                                   limits)) {}

ThriftEndpoint::~ThriftEndpoint() { Stop(); }

std::string ThriftEndpoint::Start() {
  // The loop answers a request refused by the limits of thrift_limits.h
  // with a TApplicationException (docs/input-rules.md); the generated
  // processor answers the "invalid request: ..." of CallError the same way.
  treaty::Status s = impl_->loop.Start();
  return s.ok() ? "" : s.message();
}

void ThriftEndpoint::Stop() {
  // First the slots: calls waiting for one (which the loop's Stop would
  // wait for, one handler time each) are answered RETRY at once; then the
  // loop waits only for the handlers already running.
  impl_->slots.Stop();
  impl_->loop.Stop();
}

uint16_t ThriftEndpoint::port() const { return impl_->loop.port(); }

}  // namespace treaty_sdk_detail
