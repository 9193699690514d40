#include "api/access_gate.h"

#include <algorithm>
#include <atomic>
#include <cctype>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "api/rest_api.h"
#include "common/json_input.h"

namespace treaty {
namespace {

using nlohmann::json;

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool StateChanging(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whether a Content-Type value is application/json (any parameters).
bool IsJsonType(std::string_view content_type) {
  return EqualsIgnoringCase(Trim(content_type.substr(0, content_type.find(';'))),
                            "application/json");
}

// The audit record of one request, written once: when it is answered, or
// (answered 500 by the OwedResponder inside) when it is dropped.
struct PendingAudit {
  std::shared_ptr<AuditLog> log;
  AuditRecord record;
  HttpResponder respond;
  std::atomic<bool> written{false};

  void Write(int status) noexcept {
    if (written.exchange(true)) return;
    record.result = status;
    try {
      log->Record(record);
    } catch (...) {
      spdlog::error("audit: a record could not be written");
    }
  }
  ~PendingAudit() { Write(500); }
};

}  // namespace

std::string ActorOf(const Identity& who, const HttpRequest& req) {
  return who.name + "@" + (req.remote.empty() ? std::string("unknown") : req.remote);
}

Result<std::unique_ptr<AccessGate>> AccessGate::Create(AccessGateOptions options) {
  auto hosts = HostAllowList::Parse(options.allowed_hosts, options.listener_loopback);
  if (!hosts.ok()) return hosts.status();
  return std::unique_ptr<AccessGate>(new AccessGate(std::move(options), std::move(*hosts)));
}

AccessGate::AccessGate(AccessGateOptions options, HostAllowList hosts)
    : options_(std::move(options)),
      hosts_(std::move(hosts)),
      sessions_(options_.auth, options_.tls, options_.sessions) {}

HttpResponder AccessGate::Secure(HttpResponder respond) const {
  return [respond = std::move(respond), tls = options_.tls](HttpResponse r) {
    const auto has = [&r](std::string_view name) {
      return std::any_of(r.headers.begin(), r.headers.end(),
                         [&](const auto& h) { return EqualsIgnoringCase(h.first, name); });
    };
    for (auto& [name, value] : SecurityHeaders(tls)) {
      if (!has(name)) r.headers.emplace_back(name, value);
    }
    if (!has("Cache-Control")) r.headers.emplace_back("Cache-Control", "no-store");
    respond(std::move(r));
  };
}

std::optional<Identity> AccessGate::Identify(const HttpRequest& req) {
  const std::string authorization = req.Header("authorization");
  if (!authorization.empty()) {
    // A request that names credentials is judged by them alone.
    static constexpr std::string_view kBearer = "bearer ";
    if (authorization.size() <= kBearer.size() ||
        !EqualsIgnoringCase(std::string_view(authorization).substr(0, kBearer.size()), kBearer)) {
      return std::nullopt;
    }
    return options_.auth->ForToken(Trim(std::string_view(authorization).substr(kBearer.size())));
  }
  if (!req.tls_peer_cn.empty()) {
    if (auto who = options_.auth->ForCertificate(req.tls_peer_cn)) return who;
  }
  const std::string cookie = DashboardSessions::CookieOf(req);
  if (!cookie.empty()) return sessions_.Find(cookie);
  return std::nullopt;
}

std::optional<HttpResponse> AccessGate::CsrfRefusal(const HttpRequest& req,
                                                    const Identity& who) const {
  if (!StateChanging(req.method)) return std::nullopt;
  const std::string origin = req.Header("origin");
  const std::string expected =
      std::string(options_.tls || req.tls ? "https://" : "http://") + req.Header("host");
  if (!origin.empty() && !EqualsIgnoringCase(origin, expected)) {
    return ErrorResponse(Status::PermissionDenied(
        "cross-origin request refused: its Origin is not this coordinator's"));
  }
  if (origin.empty() && who.method == AuthMethod::kSession) {
    return ErrorResponse(Status::PermissionDenied(
        "a request authenticated by the dashboard's session must carry an Origin header "
        "matching the host"));
  }
  if (!req.body.empty() && !IsJsonType(req.Header("content-type"))) {
    return ErrorAnswer(415, "unsupported_media_type",
                       "the request body must be JSON: send Content-Type: application/json");
  }
  return std::nullopt;
}

HttpResponder AccessGate::Audited(HttpResponder respond, const HttpRequest& req,
                                  const Router::Rule& rule, const Identity* who) const {
  if (!options_.audit) return respond;
  auto pending = std::make_shared<PendingAudit>();
  pending->log = options_.audit;
  pending->respond = std::move(respond);
  AuditRecord& rec = pending->record;
  rec.actor = who ? who->name : "(unauthenticated)";
  rec.method = who ? AuthMethodName(who->method) : "none";
  rec.peer = req.remote.empty() ? "unknown" : req.remote;
  rec.action = rule.access.audit_action;
  rec.gtid = rule.params["gtid"];
  rec.branch = rule.params["branch"];
  if (req.method == "GET" || req.method == "HEAD") rec.detail = "read";
  if (!req.body.empty()) {
    // Best effort: the route itself refuses a malformed body (and that
    // answer is recorded too).
    Result<json> body = ParseJson(req.body, "the request body");
    if (body.ok() && body->is_object()) {
      const auto text = [&](const char* key) {
        auto it = body->find(key);
        return it != body->end() && it->is_string() ? it->get<std::string>() : std::string();
      };
      rec.reason = text("reason");
      rec.detail = rule.access.audit_action == "log-level" ? text("level") : text("outcome");
    }
  }
  return [pending](HttpResponse r) {
    pending->Write(r.status);
    pending->respond(std::move(r));
  };
}

std::optional<Identity> AccessGate::Admit(const HttpRequest& req, const Router& routes,
                                          HttpResponder& respond) {
  const Router::Rule rule = routes.RuleFor(req.method, req.path);
  const RouteAccess& access = rule.access;
  if (!access.any_host && !hosts_.Allows(req.Header("host"), options_.tls || req.tls ? 443 : 80)) {
    respond(ErrorAnswer(421, "misdirected_request",
                        "the Host header does not name this coordinator (see --allowed-hosts)"));
    return std::nullopt;
  }
  const bool audited = !access.audit_action.empty();
  Identity who{"anonymous", RoleSet::All(), AuthMethod::kNone};
  if (options_.auth && access.kind == RouteAccess::Kind::kOpen) {
    who.roles = RoleSet();
  } else if (options_.auth) {
    std::optional<Identity> found = Identify(req);
    if (!found) {
      if (audited) respond = Audited(std::move(respond), req, rule, nullptr);
      respond(ErrorResponse(Status::Unauthenticated(
          req.Header("authorization").empty() && DashboardSessions::CookieOf(req).empty()
              ? "authentication required: send Authorization: Bearer TOKEN, or sign in to the "
                "dashboard"
              : "the credentials are not valid (unknown token, or the dashboard session ended: "
                "sign in again)")));
      return std::nullopt;
    }
    who = std::move(*found);
  }
  std::optional<HttpResponse> refusal;
  if (access.kind == RouteAccess::Kind::kRole && !who.roles.Has(access.role)) {
    refusal = ErrorResponse(Status::PermissionDenied(std::string("this request needs the '") +
                                                     RoleName(access.role) + "' role, which '" +
                                                     who.name + "' does not have"));
    // The role for programs (treatyctl names it), beside the message for people.
    nlohmann::json body = nlohmann::json::parse(refusal->body);
    body["error"]["required_role"] = RoleName(access.role);
    refusal->body = DumpJson(body);
  } else {
    refusal = CsrfRefusal(req, who);
  }
  if (audited && (refusal || access.audit_when_admitted)) {
    respond = Audited(std::move(respond), req, rule, &who);
  }
  if (refusal) {
    respond(std::move(*refusal));
    return std::nullopt;
  }
  return who;
}

}  // namespace treaty
