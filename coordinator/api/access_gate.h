#pragma once

// AccessGate: what every request to the coordinator's HTTP listener (REST,
// dashboard, /metrics) passes before it is routed (docs/security.md
// "Authentication and roles", "Browser protections"; docs/api.md "Every
// request"). RestApi::Handle calls Secure, then Admit, then routes with
// the identity Admit returns. In this order:
//
//   1. Host allow-list: the Host header must name this coordinator
//      (HostAllowList), else 421 misdirected_request. The probes' paths
//      (RouteAccess::Probe: /healthz, /readyz) are exempt so probes by IP
//      address work. Defeats DNS rebinding.
//   2. The route's rule, from the route table itself (Router::RuleFor: each
//      route is added with the RouteAccess it needs): open, a role, or, for
//      a route that does not exist, just authentication (so a stranger gets
//      401, never a 404 telling which routes exist).
//   3. Identity (not for open routes): authentication off -> "anonymous"
//      with every role; else `Authorization: Bearer TOKEN`, else a verified
//      client certificate's CN (mTLS), else the dashboard's session cookie
//      (DashboardSessions). None -> 401 with WWW-Authenticate: Bearer
//      realm="treaty"; a role missing -> 403 naming it.
//   4. CSRF, for POST, PUT, PATCH and DELETE: an Origin header that is not
//      http(s)://<Host> -> 403; a cookie-authenticated request without
//      Origin -> 403; a non-empty body whose Content-Type is not
//      application/json -> 415 unsupported_media_type. A browser cannot
//      send a cross-site JSON request without a CORS preflight, which this
//      server never grants.
//
// Every answer through a Secure responder carries the security headers
// (SecurityHeaders; HSTS on TLS). Operator and admin routes (retry, abort,
// pause, resume, resolve, log level) write an AuditRecord when answered,
// allowed or refused (401, 403, 415 and the route's own 400/404/409 too;
// an admitted GET of the log level is not recorded), with the reason and
// outcome or level read from the JSON body.
//
// Thread-safe; every check is in memory and never blocks.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/dashboard_session.h"
#include "api/router.h"
#include "http/http_types.h"
#include "security/audit_log.h"
#include "security/authenticator.h"
#include "security/identity.h"
#include "treaty/status.h"

namespace treaty {

struct AccessGateOptions {
  std::shared_ptr<Authenticator> auth;  // null: authentication off
  std::shared_ptr<AuditLog> audit;      // null: no audit records (tests)
  // --allowed-hosts entries: NAME, IP, [IPv6], each with an optional :PORT,
  // or "*" (any Host). Empty: localhost, 127.0.0.1 and [::1] (any port)
  // when `listener_loopback`, else any Host.
  std::vector<std::string> allowed_hosts;
  bool listener_loopback = true;
  bool tls = false;  // the listener is HTTPS: HSTS, Secure cookies
  DashboardSessionOptions sessions;
};

// The Host header allow-list.
class HostAllowList {
 public:
  // InvalidArgument naming the entry when one is not NAME|IP[:PORT] or "*".
  static Result<HostAllowList> Parse(const std::vector<std::string>& entries,
                                     bool listener_loopback);
  // Whether `host` (a Host header value: NAME[:PORT], IPv4[:PORT],
  // [IPv6][:PORT]) is allowed; a Host without port means `default_port`
  // (80 or 443). Names compare case-insensitively, addresses by value.
  bool Allows(std::string_view host, int default_port) const;

 private:
  struct Entry {
    std::string host;  // lower case, IPv6 without brackets
    int port = 0;      // 0: any
  };
  bool any_ = false;
  std::vector<Entry> entries_;
};

// The headers every answer of the coordinator's HTTP listener carries
// (docs/security.md "Browser protections"); `tls` adds HSTS.
std::vector<std::pair<std::string, std::string>> SecurityHeaders(bool tls);

class AccessGate {
 public:
  // InvalidArgument for a bad --allowed-hosts entry.
  static Result<std::unique_ptr<AccessGate>> Create(AccessGateOptions options);

  // `respond`, wrapped so that every answer gets the security headers
  // (existing ones are kept) and Cache-Control: no-store unless it sets one.
  HttpResponder Secure(HttpResponder respond) const;

  // Runs checks 1-4 for `req`, with the rule `routes` gives for it (the
  // router that serves it). Refused: answers through `respond` and
  // returns nullopt. Admitted: returns the identity to act as (open routes:
  // "anonymous", with every role when authentication is off, none
  // otherwise); for an audited route `respond` is replaced by one that
  // writes the AuditRecord when called (or, if dropped, as a 500).
  std::optional<Identity> Admit(const HttpRequest& req, const Router& routes,
                                HttpResponder& respond);

  DashboardSessions& sessions() { return sessions_; }
  bool auth_on() const { return options_.auth != nullptr; }

 private:
  AccessGate(AccessGateOptions options, HostAllowList hosts);
  // The identity of `req`'s credentials, or nullopt.
  std::optional<Identity> Identify(const HttpRequest& req);
  // The CSRF refusal of a state-changing `req`, or nullopt.
  std::optional<HttpResponse> CsrfRefusal(const HttpRequest& req, const Identity& who) const;
  // `respond`, wrapped to write the audit record of `rule` for `who`.
  HttpResponder Audited(HttpResponder respond, const HttpRequest& req, const Router::Rule& rule,
                        const Identity* who) const;

  const AccessGateOptions options_;
  const HostAllowList hosts_;
  DashboardSessions sessions_;
};

// The actor of an operator action: "<name>@<peer ip:port>".
std::string ActorOf(const Identity& who, const HttpRequest& req);

}  // namespace treaty
