#include "treaty/participant_server.h"

#include <map>
#include <mutex>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include "http_transport.h"

namespace treaty {
inline namespace sdk {

using nlohmann::json;
using treaty_sdk_detail::EndpointRequest;
using treaty_sdk_detail::EndpointResponse;

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
                 }) {}

  EndpointResponse Handle(const EndpointRequest& req);
  // Runs the registered handler; exceptions become Internal (transient).
  EndpointResponse Dispatch(const std::string& name, const CallContext& ctx);

  ParticipantServerOptions options;
  std::mutex mu;
  std::map<std::string, Step> steps;                                 // guarded by mu
  std::map<std::string, std::shared_ptr<ResourceManager>> managers;  // guarded by mu
  boost::asio::thread_pool pool;
  treaty_sdk_detail::HttpEndpoint endpoint;
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

EndpointResponse ParticipantServer::Impl::Dispatch(const std::string& name,
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
  if (!step_fn && !(rm && rm_op)) {
    return ErrorReply(404, "NotFound", "no handler for " + ctx.op + " of '" + name + "'");
  }
  Status status;
  EndpointResponse out;
  try {
    if (step_fn) {
      status = step_fn(ctx);
      out = FromStatus(status);
    } else if (ctx.op == "prepare") {
      Result<Vote> vote = rm->Prepare(ctx);
      status = vote.status();
      if (vote.ok() && *vote == Vote::kNo) {
        status = Status::BusinessFailure("voted no");
        out = Reply(409, {{"vote", "no"}});
      } else if (vote.ok()) {
        out = Reply(200, {{"vote", VoteName(*vote)}});
      } else if (status.code() == StatusCode::kBusinessFailure) {
        out = Reply(409, {{"vote", "no"}, {"error", {{"code", "BusinessFailure"},
                                                      {"message", status.message()}}}});
      } else {
        out = FromStatus(status);
      }
    } else {
      status = ctx.op == "commit" ? rm->Commit(ctx) : rm->Abort(ctx);
      // Commit and abort must not fail on business grounds; whatever the
      // handler says, a non-OK answer is retried by the coordinator.
      out = FromStatus(status);
    }
  } catch (const std::exception& e) {
    status = Status::Internal(std::string("handler threw: ") + e.what());
    out = FromStatus(status);
  } catch (...) {
    status = Status::Internal("handler threw");
    out = FromStatus(status);
  }
  if (options.on_call) options.on_call(ctx, status);
  return out;
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
  impl_->started = true;
  return Status::Ok();
}

void ParticipantServer::Stop() {
  if (!impl_ || !impl_->started) return;
  impl_->started = false;
  impl_->endpoint.Stop();
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

}  // namespace sdk
}  // namespace treaty
