#include "treaty/participant_server.h"

#include <map>
#include <mutex>
#include <optional>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include "http_transport.h"
#include "thrift_endpoint.h"

namespace treaty {
inline namespace sdk {

using nlohmann::json;
using treaty_sdk_detail::EndpointRequest;
using treaty_sdk_detail::EndpointResponse;
using treaty_sdk_detail::ThriftOutcome;

const char* VoteName(Vote vote) {
  switch (vote) {
    case Vote::kYes: return "yes";
    case Vote::kNo: return "no";
    case Vote::kReadOnly: return "readonly";
  }
  return "unknown";
}

namespace {

// Adapts three functions to the ResourceManager interface.
class FunctionResourceManager : public ResourceManager {
 public:
  FunctionResourceManager(PrepareHandler p, StepHandler c, StepHandler a)
      : prepare_(std::move(p)), commit_(std::move(c)), abort_(std::move(a)) {}
  Result<Vote> Prepare(const CallContext& ctx) override { return prepare_(ctx); }
  Status Commit(const CallContext& ctx) override { return commit_(ctx); }
  Status Abort(const CallContext& ctx) override { return abort_(ctx); }

 private:
  PrepareHandler prepare_;
  StepHandler commit_, abort_;
};

struct Step {
  StepHandler action, compensate;
};

EndpointResponse Reply(int status, json body) { return {status, body.dump()}; }

EndpointResponse ErrorReply(int status, const std::string& code, const std::string& message) {
  return Reply(status, {{"error", {{"code", code}, {"message", message}}}});
}

EndpointResponse FromStatus(const Status& s) {
  if (s.ok()) return Reply(200, {{"result", "ok"}});
  if (s.code() == StatusCode::kBusinessFailure) {
    return ErrorReply(409, "BusinessFailure", s.message());
  }
  return ErrorReply(500, StatusCodeName(s.code()), s.message());
}

}  // namespace

class ParticipantServer::Impl {
 public:
  explicit Impl(ParticipantServerOptions o)
      : options(std::move(o)),
        pool(options.handler_threads < 1 ? 1 : options.handler_threads),
        endpoint(options.http_host, options.http_port, options.io_threads,
                 [this](EndpointRequest req, treaty_sdk_detail::EndpointResponder respond) {
                   boost::asio::post(pool, [this, req = std::move(req),
                                            respond = std::move(respond)]() mutable {
                     respond(Handle(req));
                   });
                 }) {
    if (options.thrift_port) {
      thrift = std::make_unique<treaty_sdk_detail::ThriftEndpoint>(
          options.http_host, *options.thrift_port, options.handler_threads,
          [this](const CallContext& ctx) { return DispatchThrift(ctx); });
    }
  }

  EndpointResponse Handle(const EndpointRequest& req);
  // What a registered handler answered, whatever the protocol.
  struct Invocation {
    bool found = true;         // a handler for (name, op) exists
    Status status;             // kNo vote: BusinessFailure
    std::optional<Vote> vote;  // prepare that returned a vote
  };
  // Runs the handler registered under `name` for ctx.op; exceptions become
  // Internal (transient). Calls options.on_call.
  Invocation Invoke(const std::string& name, const CallContext& ctx);
  // The protocols' mappings of an Invocation (see participant_server.h).
  EndpointResponse Dispatch(const std::string& name, const CallContext& ctx);
  ThriftOutcome DispatchThrift(const CallContext& ctx);

  ParticipantServerOptions options;
  std::mutex mu;
  std::map<std::string, Step> steps;                                 // guarded by mu
  std::map<std::string, std::shared_ptr<ResourceManager>> managers;  // guarded by mu
  boost::asio::thread_pool pool;
  treaty_sdk_detail::HttpEndpoint endpoint;
  std::unique_ptr<treaty_sdk_detail::ThriftEndpoint> thrift;  // null: no Thrift
  bool started = false;
};

EndpointResponse ParticipantServer::Impl::Handle(const EndpointRequest& req) {
  if (req.method != "POST") return ErrorReply(405, "InvalidArgument", "POST only");
  // /{name} or /{name}/{anything}
  std::string name = req.path.size() > 1 ? req.path.substr(1) : "";
  if (auto slash = name.find('/'); slash != std::string::npos) name.resize(slash);
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return ErrorReply(400, "InvalidArgument", "expected Treaty's JSON body");
  }
  auto header = [&](const char* h) {
    auto it = req.headers.find(h);
    return it == req.headers.end() ? std::string() : it->second;
  };
  CallContext ctx;
  auto text = [&](const char* field, const char* h) {
    auto it = body.find(field);
    if (it != body.end() && it->is_string()) return it->get<std::string>();
    return header(h);
  };
  ctx.gtid = text("gtid", "treaty-gtid");
  ctx.branch = text("branch", "treaty-branch");
  ctx.op = text("op", "treaty-op");
  auto p = body.find("payload");
  ctx.payload = p == body.end() ? "null" : p->dump();
  ctx.traceparent = header("traceparent");
  ctx.idempotency_key = header("idempotency-key");
  if (ctx.idempotency_key.empty()) ctx.idempotency_key = ctx.gtid + "/" + ctx.branch + "/" + ctx.op;
  if (ctx.gtid.empty() || ctx.op.empty()) {
    return ErrorReply(400, "InvalidArgument", "gtid and op are required");
  }
  if (ctx.branch.empty()) ctx.branch = name;
  // Handlers are found by the URL's name; ctx.branch is the coordinator's
  // name for the step (usually the same).
  return Dispatch(name, ctx);
}

ParticipantServer::Impl::Invocation ParticipantServer::Impl::Invoke(const std::string& name,
                                                                    const CallContext& ctx) {
  StepHandler step_fn;
  std::shared_ptr<ResourceManager> rm;
  {
    std::lock_guard<std::mutex> l(mu);
    if (auto it = steps.find(name); it != steps.end()) {
      if (ctx.op == "action") step_fn = it->second.action;
      if (ctx.op == "compensate") step_fn = it->second.compensate;
    }
    if (auto it = managers.find(name); it != managers.end()) rm = it->second;
  }
  const bool rm_op = ctx.op == "prepare" || ctx.op == "commit" || ctx.op == "abort";
  Invocation out;
  if (!step_fn && !(rm && rm_op)) {
    out.found = false;
    out.status = Status::NotFound("no handler for " + ctx.op + " of '" + name + "'");
    return out;
  }
  try {
    if (step_fn) {
      out.status = step_fn(ctx);
    } else if (ctx.op == "prepare") {
      Result<Vote> vote = rm->Prepare(ctx);
      out.status = vote.status();
      if (vote.ok()) {
        out.vote = *vote;
        if (*vote == Vote::kNo) out.status = Status::BusinessFailure("voted no");
      }
    } else {
      // Commit and abort must not fail on business grounds; whatever the
      // handler says, a non-OK answer is retried by the coordinator.
      out.status = ctx.op == "commit" ? rm->Commit(ctx) : rm->Abort(ctx);
    }
  } catch (const std::exception& e) {
    out.vote.reset();
    out.status = Status::Internal(std::string("handler threw: ") + e.what());
  } catch (...) {
    out.vote.reset();
    out.status = Status::Internal("handler threw");
  }
  if (options.on_call) options.on_call(ctx, out.status);
  return out;
}

EndpointResponse ParticipantServer::Impl::Dispatch(const std::string& name,
                                                   const CallContext& ctx) {
  Invocation r = Invoke(name, ctx);
  if (!r.found) return ErrorReply(404, "NotFound", r.status.message());
  if (r.vote == Vote::kNo) return Reply(409, {{"vote", "no"}});
  if (r.vote) return Reply(200, {{"vote", VoteName(*r.vote)}});
  if (ctx.op == "prepare" && r.status.code() == StatusCode::kBusinessFailure) {
    return Reply(409, {{"vote", "no"},
                       {"error", {{"code", "BusinessFailure"}, {"message", r.status.message()}}}});
  }
  return FromStatus(r.status);
}

ThriftOutcome ParticipantServer::Impl::DispatchThrift(const CallContext& ctx) {
  using Kind = ThriftOutcome::Kind;
  Invocation r = Invoke(ctx.branch, ctx);
  if (!r.found) return {Kind::kRetry, std::nullopt, r.status.message()};
  if (r.vote == Vote::kNo) return {Kind::kFailed, Vote::kNo, "voted no"};
  if (r.vote) return {Kind::kOk, r.vote, ""};
  if (r.status.ok()) return {Kind::kOk, std::nullopt, ""};
  if (r.status.code() == StatusCode::kBusinessFailure) {
    return {Kind::kFailed, ctx.op == "prepare" ? std::optional<Vote>(Vote::kNo) : std::nullopt,
            r.status.message()};
  }
  return {Kind::kRetry, std::nullopt,
          std::string(StatusCodeName(r.status.code())) + ": " + r.status.message()};
}

ParticipantServer::ParticipantServer(ParticipantServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

ParticipantServer::~ParticipantServer() { Stop(); }

void ParticipantServer::AddSagaStep(const std::string& name, StepHandler action,
                                    StepHandler compensate) {
  std::lock_guard<std::mutex> l(impl_->mu);
  impl_->steps[name] = Step{std::move(action), std::move(compensate)};
}

void ParticipantServer::AddResourceManager(const std::string& name,
                                           std::shared_ptr<ResourceManager> rm) {
  std::lock_guard<std::mutex> l(impl_->mu);
  impl_->managers[name] = std::move(rm);
}

void ParticipantServer::AddResourceManager(const std::string& name, PrepareHandler prepare,
                                           StepHandler commit, StepHandler abort) {
  AddResourceManager(name, std::make_shared<FunctionResourceManager>(
                               std::move(prepare), std::move(commit), std::move(abort)));
}

Status ParticipantServer::Start() {
  std::string err = impl_->endpoint.Start();
  if (!err.empty()) return Status::Unavailable("participant server: " + err);
  if (impl_->thrift) {
    err = impl_->thrift->Start();
    if (!err.empty()) {
      impl_->endpoint.Stop();
      return Status::Unavailable("participant server: " + err);
    }
  }
  impl_->started = true;
  return Status::Ok();
}

void ParticipantServer::Stop() {
  if (!impl_ || !impl_->started) return;
  impl_->started = false;
  impl_->endpoint.Stop();
  if (impl_->thrift) impl_->thrift->Stop();
  impl_->pool.join();
}

uint16_t ParticipantServer::http_port() const { return impl_->endpoint.port(); }

std::string ParticipantServer::http_url() const {
  std::string host = impl_->options.http_host;
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  return "http://" + host + ":" + std::to_string(http_port());
}

std::string ParticipantServer::Url(const std::string& name, const std::string& op) const {
  return http_url() + "/" + name + "/" + op;
}

uint16_t ParticipantServer::thrift_port() const {
  return impl_->thrift ? impl_->thrift->port() : 0;
}

std::string ParticipantServer::thrift_url() const {
  if (thrift_port() == 0) return "";
  std::string host = impl_->options.http_host;
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  return "thrift://" + host + ":" + std::to_string(thrift_port());
}

}  // namespace sdk
}  // namespace treaty
