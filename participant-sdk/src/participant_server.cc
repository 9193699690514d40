#include "treaty/participant_server.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <optional>
#include <tuple>
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include "caller_proof.h"
#include "common/host_port.h"
#include "common/mutex.h"
#include "http_transport.h"
#include "input_rules.h"
#include "thrift_endpoint.h"

namespace treaty {
inline namespace sdk {

using nlohmann::json;
using treaty_sdk_detail::EndpointRequest;
using treaty_sdk_detail::EndpointResponse;
using treaty_sdk_detail::EscapeControl;
using treaty_sdk_detail::IdentifierError;
using treaty_sdk_detail::ThriftOutcome;

const char* VoteName(Vote vote) {
  switch (vote) {
    case Vote::kYes:
      return "yes";
    case Vote::kNo:
      return "no";
    case Vote::kReadOnly:
      return "readonly";
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

// DumpJson: a handler's message with ill-formed UTF-8 cannot make it throw.
EndpointResponse Reply(int status, const json& body) {
  return {status, treaty_sdk_detail::DumpJson(body)};
}

EndpointResponse ErrorReply(int status, const std::string& code, const std::string& message) {
  return Reply(status, {{"error", {{"code", code}, {"message", message}}}});
}

EndpointResponse ErrorReply(int status, StatusCode code, const std::string& message) {
  return ErrorReply(status, ErrorCodeName(code), message);
}

// A handler's answer that retrying cannot change: BusinessFailure (refused),
// InvalidArgument (the call's input is wrong for it) and Conflict (it
// contradicts the handler's records, e.g. a commit of a branch never
// prepared). Answered 409 / FAILED rather than 500 / RETRY, which the
// coordinator would retry forever.
bool IsFinalRefusal(const Status& s) {
  return s.code() == StatusCode::kBusinessFailure || s.code() == StatusCode::kInvalidArgument ||
         s.code() == StatusCode::kConflict;
}

EndpointResponse FromStatus(const Status& s) {
  if (s.ok()) return Reply(200, {{"result", "ok"}});
  return ErrorReply(IsFinalRefusal(s) ? 409 : 500, s.code(), s.message());
}

EndpointResponse InvalidArgument(const std::string& message) {
  return ErrorReply(400, StatusCode::kInvalidArgument, message);
}

// The one-phase flag: the body's "one_phase" (a boolean) and the header
// Treaty-One-Phase ("true" or "false"), both optional; when both are given
// they must agree. Only a commit may carry true. Returns "" or why not.
std::string ReadOnePhase(const json& body, const std::map<std::string, std::string>& headers,
                         const std::string& op, bool* out) {
  std::optional<bool> from_body, from_header;
  if (auto it = body.find("one_phase"); it != body.end()) {
    if (!it->is_boolean()) return "'one_phase' must be true or false";
    from_body = it->get<bool>();
  }
  if (auto it = headers.find("treaty-one-phase"); it != headers.end()) {
    if (it->second != "true" && it->second != "false") {
      return "header Treaty-One-Phase must be \"true\" or \"false\"";
    }
    from_header = it->second == "true";
  }
  if (from_body && from_header && *from_body != *from_header) {
    return "'one_phase' in the body and header Treaty-One-Phase differ";
  }
  *out = from_body.value_or(from_header.value_or(false));
  if (*out && op != "commit") return "'one_phase' may be true only for op \"commit\"";
  return "";
}

// The handler name of a request path: /{name} or /{name}/{anything}.
std::string NameOfPath(const std::string& path) {
  std::string name = path.size() > 1 ? path.substr(1) : "";
  if (auto slash = name.find('/'); slash != std::string::npos) name.resize(slash);
  return name;
}

// A name from the URL, fit to appear in a message or a log line.
std::string Printable(const std::string& name) {
  return EscapeControl(treaty_sdk_detail::Excerpt(name, 160));
}

// One of gtid / branch / op: the body's `key` and the header `header` (its
// canonical spelling; names in `headers` are lower case) are both optional,
// but each one present must be an identifier, and both must agree. Sets
// *out to the value ("" when neither is present); returns "" or why not.
std::string ReadIdentifier(const json& body, const std::map<std::string, std::string>& headers,
                           const std::string& key, const std::string& header, std::string* out) {
  const std::string field = "'" + key + "'";
  const std::string header_field = "header " + header;
  std::optional<std::string> from_body, from_header;
  if (auto it = body.find(key); it != body.end()) {
    if (!it->is_string()) return field + " must be a string";
    from_body = it->get<std::string>();
    if (std::string e = IdentifierError(*from_body, field); !e.empty()) return e;
  }
  std::string lower = header;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (auto it = headers.find(lower); it != headers.end()) {
    from_header = it->second;
    if (std::string e = IdentifierError(*from_header, header_field); !e.empty()) return e;
  }
  if (from_body && from_header && *from_body != *from_header) {
    return field + " in the body and " + header_field + " differ";
  }
  *out = from_body ? *from_body : from_header.value_or("");
  return "";
}

// A W3C traceparent is lower-case hex and dashes ("00-{32}-{16}-{2}", longer
// in later versions); anything else is dropped, as the W3C spec asks.
bool LooksLikeTraceparent(const std::string& value) {
  if (value.size() < 55 || value.size() > 256) return false;
  for (char c : value) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-')) return false;
  }
  return true;
}

}  // namespace

class ParticipantServer::Impl {
 public:
  explicit Impl(ParticipantServerOptions o)
      : options(std::move(o)),
        pool(options.handler_threads < 1 ? 1 : options.handler_threads),
        endpoint(
            options.http_host, options.http_port, options.io_threads,
            [this](EndpointRequest req, treaty_sdk_detail::EndpointResponder respond) {
              boost::asio::post(
                  pool, [this, req = std::move(req), respond = std::move(respond)]() mutable {
                    Serve(req, respond);
                  });
            },
            options.max_body_bytes,
            treaty_sdk_detail::EndpointTls{options.tls_cert_file, options.tls_key_file,
                                           options.tls_client_ca_file}) {
    if (options.thrift_port) {
      treaty_sdk_detail::ThriftEndpointLimits limits;
      limits.max_connections = options.thrift_max_connections;
      limits.idle_timeout_ms = options.thrift_idle_timeout_ms;
      limits.request_timeout_ms = options.thrift_request_timeout_ms;
      thrift = std::make_unique<treaty_sdk_detail::ThriftEndpoint>(
          options.http_host, *options.thrift_port, options.handler_threads,
          [this](const CallContext& ctx) { return DispatchThrift(ctx); }, limits);
    }
  }

  // Answers one HTTP request on a pool thread. Nothing escapes: a failure
  // of the server's own code answers 500 and logs one line. Once Stop()
  // began, a request still queued is not run: 503 "unavailable" (by then
  // Stop() has closed its connection, so the coordinator sees the
  // connection closed and retries).
  void Serve(const EndpointRequest& req, const treaty_sdk_detail::EndpointResponder& respond);
  // The HTTP request's CallContext (input rules: docs/input-rules.md), then
  // Dispatch; 400 naming the field when the request breaks a rule.
  EndpointResponse Handle(const EndpointRequest& req);
  // The answer refusing a request whose caller is not trusted (401: no valid
  // signature; 403: a client certificate CN not allowed), or none.
  std::optional<EndpointResponse> RefuseCaller(const EndpointRequest& req) const;
  // Why the options (security, Thrift limits) cannot be used, or "".
  std::string OptionsError() const;
  // What a registered handler answered, whatever the protocol.
  struct Invocation {
    std::string invalid;       // why ctx breaks the identifier rules; no handler ran
    bool found = true;         // a handler for (name, op) exists
    Status status;             // kNo vote: BusinessFailure
    std::optional<Vote> vote;  // prepare that returned a vote
  };
  // Runs the handler registered under `name` for ctx.op, if gtid / branch /
  // op are identifiers; exceptions become Internal (transient) and a log
  // line. Calls options.on_call after a handler ran.
  Invocation Invoke(const std::string& name, const CallContext& ctx);
  // The protocols' mappings of an Invocation (see participant_server.h).
  EndpointResponse Dispatch(const std::string& name, const CallContext& ctx);
  ThriftOutcome DispatchThrift(const CallContext& ctx);

  ParticipantServerOptions options;
  treaty::Mutex mu;
  std::map<std::string, Step> steps TREATY_GUARDED_BY(mu);
  std::map<std::string, std::shared_ptr<ResourceManager>> managers TREATY_GUARDED_BY(mu);
  boost::asio::thread_pool pool;
  treaty_sdk_detail::HttpEndpoint endpoint;
  std::unique_ptr<treaty_sdk_detail::ThriftEndpoint> thrift;  // null: no Thrift
  bool started = false;
  // Set by Stop(): HTTP requests still queued for the pool are not run.
  // Read on pool threads.
  std::atomic<bool> stopping{false};
};

void ParticipantServer::Impl::Serve(const EndpointRequest& req,
                                    const treaty_sdk_detail::EndpointResponder& respond) {
  EndpointResponse out;
  try {
    out = stopping.load() ? ErrorReply(503, StatusCode::kUnavailable,
                                       "the participant server is stopping; the call was not run")
                          : Handle(req);
  } catch (const std::exception& e) {
    spdlog::error("participant server: request to {} failed: {}", Printable(req.path),
                  EscapeControl(e.what()));
    out = ErrorReply(500, StatusCode::kInternal, "the participant server failed on this request");
  } catch (...) {
    spdlog::error("participant server: request to {} failed", Printable(req.path));
    out = ErrorReply(500, StatusCode::kInternal, "the participant server failed on this request");
  }
  try {
    respond(std::move(out));
  } catch (const std::exception& e) {
    spdlog::error("participant server: cannot answer: {}", EscapeControl(e.what()));
  } catch (...) {
    spdlog::error("participant server: cannot answer");
  }
}

std::optional<EndpointResponse> ParticipantServer::Impl::RefuseCaller(
    const EndpointRequest& req) const {
  if (!options.signing_keys.empty()) {
    auto it = req.headers.find("treaty-signature");
    const std::string header = it == req.headers.end() ? "" : it->second;
    if (std::string e = treaty_sdk_detail::SignatureError(options.signing_keys, header, req.method,
                                                          req.target, req.body);
        !e.empty()) {
      return ErrorReply(401, StatusCode::kUnauthenticated,
                        "header Treaty-Signature does not prove the caller: " + e);
    }
  }
  const auto& cns = options.allowed_client_cns;
  if (!cns.empty() && std::find(cns.begin(), cns.end(), req.tls_peer_cn) == cns.end()) {
    return ErrorReply(403, StatusCode::kPermissionDenied,
                      "the client certificate's name is not among the allowed callers");
  }
  return std::nullopt;
}

std::string ParticipantServer::Impl::OptionsError() const {
  if (options.tls_cert_file.empty() &&
      (!options.tls_key_file.empty() || !options.tls_client_ca_file.empty())) {
    return "tls_key_file and tls_client_ca_file need tls_cert_file";
  }
  if (!options.allowed_client_cns.empty() && options.tls_client_ca_file.empty()) {
    return "allowed_client_cns needs tls_client_ca_file";
  }
  for (const std::string& key : options.signing_keys) {
    if (key.size() < 32) return "a signing key is shorter than 32 bytes";
  }
  for (auto [name, value] :
       {std::pair{"thrift_max_connections", options.thrift_max_connections},
        std::pair{"thrift_idle_timeout_ms", options.thrift_idle_timeout_ms},
        std::pair{"thrift_request_timeout_ms", options.thrift_request_timeout_ms}}) {
    if (value < 1) return std::string(name) + " must be at least 1";
  }
  return "";
}

EndpointResponse ParticipantServer::Impl::Handle(const EndpointRequest& req) {
  if (auto refusal = RefuseCaller(req)) return *refusal;
  if (req.method != "POST") return ErrorReply(405, StatusCode::kInvalidArgument, "POST only");
  const std::string name = NameOfPath(req.path);
  treaty_sdk_detail::ParsedJson parsed =
      treaty_sdk_detail::ParseJsonInput(req.body, "the request body");
  if (!parsed.ok()) return InvalidArgument(parsed.error);
  const json& body = parsed.value;
  if (!body.is_object()) return InvalidArgument("the request body must be a JSON object");
  CallContext ctx;
  for (auto [key, header, out] : {std::tuple{"gtid", "Treaty-Gtid", &ctx.gtid},
                                  std::tuple{"branch", "Treaty-Branch", &ctx.branch},
                                  std::tuple{"op", "Treaty-Op", &ctx.op}}) {
    if (std::string e = ReadIdentifier(body, req.headers, key, header, out); !e.empty()) {
      return InvalidArgument(e);
    }
  }
  if (ctx.gtid.empty() || ctx.op.empty()) {
    return InvalidArgument("'gtid' and 'op' are required (body or Treaty-Gtid / Treaty-Op)");
  }
  // Handlers are found by the URL's name; ctx.branch is the coordinator's
  // name for the step (usually the same).
  if (ctx.branch.empty()) {
    if (std::string e = IdentifierError(name, "the name in the URL path"); !e.empty()) {
      return InvalidArgument(e + " (or give 'branch')");
    }
    ctx.branch = name;
  }
  ctx.idempotency_key = ctx.gtid + "/" + ctx.branch + "/" + ctx.op;
  if (auto it = req.headers.find("idempotency-key");
      it != req.headers.end() && it->second != ctx.idempotency_key) {
    return InvalidArgument("header Idempotency-Key must be \"{gtid}/{branch}/{op}\" of the call");
  }
  if (std::string e = ReadOnePhase(body, req.headers, ctx.op, &ctx.one_phase); !e.empty()) {
    return InvalidArgument(e);
  }
  if (auto it = body.find("payload"); it != body.end()) {
    ctx.payload = treaty_sdk_detail::DumpJson(*it);
  }
  if (auto it = req.headers.find("traceparent");
      it != req.headers.end() && LooksLikeTraceparent(it->second)) {
    ctx.traceparent = it->second;
  }
  return Dispatch(name, ctx);
}

ParticipantServer::Impl::Invocation ParticipantServer::Impl::Invoke(const std::string& name,
                                                                    const CallContext& ctx) {
  if (std::string e = treaty_sdk_detail::CallContextError(ctx); !e.empty()) {
    Invocation out;
    out.invalid = e;
    out.status = Status::InvalidArgument(e);
    return out;
  }
  StepHandler step_fn;
  std::shared_ptr<ResourceManager> rm;
  {
    treaty::MutexLock l(&mu);
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
    out.status = Status::NotFound("no handler for " + ctx.op + " of '" + Printable(name) + "'");
    return out;
  }
  bool threw = false;
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
      // A two-phase commit or an abort has no business failure: the
      // coordinator retries any non-OK answer (409 included) until one
      // succeeds. A refused one-phase commit (409) aborts the transaction.
      out.status = ctx.op == "commit" ? rm->Commit(ctx) : rm->Abort(ctx);
    }
  } catch (const std::exception& e) {
    out.vote.reset();
    out.status = Status::Internal(std::string("handler threw: ") + e.what());
    threw = true;
  } catch (...) {
    out.vote.reset();
    out.status = Status::Internal("handler threw");
    threw = true;
  }
  if (threw) {
    spdlog::error("participant server: {} of '{}' (gtid {}): {}", ctx.op, Printable(name), ctx.gtid,
                  EscapeControl(out.status.message()));
  }
  if (options.on_call) {
    try {
      options.on_call(ctx, out.status);
    } catch (const std::exception& e) {
      spdlog::error("participant server: on_call threw: {}", EscapeControl(e.what()));
    } catch (...) {
      spdlog::error("participant server: on_call threw");
    }
  }
  return out;
}

EndpointResponse ParticipantServer::Impl::Dispatch(const std::string& name,
                                                   const CallContext& ctx) {
  Invocation r = Invoke(name, ctx);
  if (!r.invalid.empty()) return InvalidArgument(r.invalid);
  if (!r.found) return ErrorReply(404, StatusCode::kNotFound, r.status.message());
  if (r.vote == Vote::kNo) return Reply(409, {{"vote", "no"}});
  if (r.vote) return Reply(200, {{"vote", VoteName(*r.vote)}});
  if (ctx.op == "prepare" && IsFinalRefusal(r.status)) {
    return Reply(
        409,
        {{"vote", "no"},
         {"error", {{"code", ErrorCodeName(r.status.code())}, {"message", r.status.message()}}}});
  }
  return FromStatus(r.status);
}

ThriftOutcome ParticipantServer::Impl::DispatchThrift(const CallContext& ctx) {
  using Kind = ThriftOutcome::Kind;
  Invocation r = Invoke(ctx.branch, ctx);
  // ThriftEndpoint refuses such calls first; this is the backstop.
  // Retrying a call that breaks the input rules cannot help.
  if (!r.invalid.empty()) return {Kind::kFailed, std::nullopt, "InvalidArgument: " + r.invalid};
  if (!r.found) return {Kind::kRetry, std::nullopt, r.status.message()};
  if (r.vote == Vote::kNo) return {Kind::kFailed, Vote::kNo, "voted no"};
  if (r.vote) return {Kind::kOk, r.vote, ""};
  if (r.status.ok()) return {Kind::kOk, std::nullopt, ""};
  if (IsFinalRefusal(r.status)) {
    return {Kind::kFailed, ctx.op == "prepare" ? std::optional<Vote>(Vote::kNo) : std::nullopt,
            r.status.code() == StatusCode::kBusinessFailure
                ? r.status.message()
                : std::string(StatusCodeName(r.status.code())) + ": " + r.status.message()};
  }
  return {Kind::kRetry, std::nullopt,
          std::string(StatusCodeName(r.status.code())) + ": " + r.status.message()};
}

ParticipantServer::ParticipantServer(ParticipantServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

ParticipantServer::~ParticipantServer() { Stop(); }

void ParticipantServer::AddSagaStep(const std::string& name, StepHandler action,
                                    StepHandler compensate) {
  treaty::MutexLock l(&impl_->mu);
  impl_->steps[name] = Step{std::move(action), std::move(compensate)};
}

void ParticipantServer::AddResourceManager(const std::string& name,
                                           std::shared_ptr<ResourceManager> rm) {
  treaty::MutexLock l(&impl_->mu);
  impl_->managers[name] = std::move(rm);
}

void ParticipantServer::AddResourceManager(const std::string& name, PrepareHandler prepare,
                                           StepHandler commit, StepHandler abort) {
  AddResourceManager(name, std::make_shared<FunctionResourceManager>(
                               std::move(prepare), std::move(commit), std::move(abort)));
}

Status ParticipantServer::Start() {
  // Stop() joined the handler pool and stopped the endpoints for good.
  if (impl_->stopping) {
    return Status::InvalidArgument(
        "participant server: stopped; a stopped server cannot be started again (make a new one)");
  }
  if (impl_->started) return Status::InvalidArgument("participant server: already started");
  if (std::string e = impl_->OptionsError(); !e.empty()) {
    return Status::InvalidArgument("participant server: " + e);
  }
  bool bad_tls_files = false;
  std::string err = impl_->endpoint.Start(&bad_tls_files);
  if (bad_tls_files) return Status::InvalidArgument("participant server: TLS: " + err);
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
  // Handlers not yet started never run (HTTP: the flag, 503; Thrift: the
  // endpoint answers RETRY); the running ones finish and their answers are
  // handed to the connections before these are closed: the pool is joined
  // before the HTTP endpoint stops (a response posted to a connection is
  // written before the close posted after it), so a caller of a handler
  // that did its work gets the answer rather than an empty reply (which it
  // would retry).
  impl_->stopping = true;
  if (impl_->thrift) impl_->thrift->Stop();
  impl_->pool.join();
  impl_->endpoint.Stop();
}

uint16_t ParticipantServer::http_port() const { return impl_->endpoint.port(); }

std::string ParticipantServer::http_url() const {
  std::string host = impl_->options.http_host;
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  const char* scheme = impl_->options.tls_cert_file.empty() ? "http://" : "https://";
  return scheme + treaty::FormatHostPort(host, http_port());
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
  return "thrift://" + treaty::FormatHostPort(host, thrift_port());
}

}  // namespace sdk
}  // namespace treaty
