#pragma once

// Router: the HTTP listener's one route table. Each route is a set of methods,
// a path pattern and a handler; patterns are literal segments and captures:
//
//   /v1/transactions/{gtid}/branches/{branch}/resolve
//   /ui/{file...}            (a last capture that takes the rest, slashes too)
//
// Matching works on the percent-decoded path (HttpRequest::path), one
// segment between two '/' at a time:
//   - a literal matches the same text exactly (case-sensitive);
//   - a capture matches any one segment, an empty one included
//     ("/v1/2pc//commit" captures gtid ""; the handler validates it), except
//     an empty last segment: a trailing slash never fills a capture, so
//     "/v1/transactions/" matches no "/v1/transactions/{gtid}";
//   - an encoded slash ("%2F", kept encoded by the HTTP server) is data in a
//     segment, never a separator;
//   - a path that does not start with '/' matches nothing;
//   - a "{name...}" capture, last in its pattern, takes the rest of the path
//     (possibly empty).
// Captures are handed to the handler as they appear in the path; handlers
// check them (ValidateGtid, CheckBranchName). HEAD is served only by routes
// that list it. Routes are tried in the order added; the first whose pattern
// and method match wins.
//
// Find decides "no such path" (kNoPath) against "path known, method not"
// (kWrongMethod) in one place; the REST front end answers both with the same
// 404 "no route for METHOD PATH", as it always has (no 405, no Allow header).
//
// Access: every route is added with the RouteAccess it needs (an argument of
// Add, so no route exists without one): open, a role, or open to probes
// whatever their Host header. The AccessGate (api/access_gate.h) asks
// RuleFor before routing; that is the role table of docs/security.md
// "Roles", and nothing else holds one. RuleFor answers every request:
//   - the route Find takes, with its captures (the audit record's gtid and
//     branch);
//   - else, for HEAD, the route GET takes: a HEAD on a GET-only route needs
//     what the GET needs, then gets the 404;
//   - else RouteAccess::Authenticated(): a stranger gets 401 before the 404
//     of a path or method no route serves, so he cannot tell which routes
//     exist. A path a probe route serves stays exempt from the Host
//     allow-list whatever the method (then 401 or 404 as for any stranger).
//
// Routes lists the table as added (methods and pattern text), read-only: the
// OpenAPI document (docs/openapi.json) is checked against it by a test.
//
// Thread-safety: Add before serving; Find, Dispatch and Routes are const and
// may run on any thread at once.

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http_types.h"
#include "security/identity.h"

namespace treaty {

// The captures of one match, by name.
class PathParams {
 public:
  // The captured text of `name`; "" when the pattern has no such capture.
  const std::string& operator[](std::string_view name) const;
  void Add(std::string name, std::string value) {
    values_.emplace_back(std::move(name), std::move(value));
  }
  size_t size() const { return values_.size(); }

 private:
  std::vector<std::pair<std::string, std::string>> values_;
};

// What a route's handler is given. References are valid for the call only.
struct RouteCall {
  const HttpRequest& req;
  const Identity& who;  // the identity the AccessGate admitted
  const PathParams& params;
};

// Answers the request through `respond` (exactly once, possibly later).
using RouteHandler = std::function<void(const RouteCall& call, HttpResponder& respond)>;

// What a request needs to reach a route (docs/security.md "Roles"); the
// AccessGate enforces it before the route runs.
struct RouteAccess {
  enum class Kind {
    kOpen,           // anyone; credentials are not looked at
    kRole,           // an identity holding `role`
    kAuthenticated,  // any identity (also: what no route serves, see RuleFor)
  };
  Kind kind = Kind::kAuthenticated;
  Role role = Role::kRead;  // with kRole
  // Exempt from the Host allow-list, so probes by IP address work.
  bool any_host = false;
  // Operator and admin routes: the AuditRecord action ("retry", "log-level",
  // ...); "" for the others.
  std::string audit_action;
  bool audit_when_admitted = false;  // false: only refusals are recorded (a GET)

  // Anyone (the dashboard's files, its sign-in and sign-out).
  static RouteAccess Open();
  // Anyone, whatever the Host header (/healthz, /readyz).
  static RouteAccess Probe();
  // Any identity, whatever its roles.
  static RouteAccess Authenticated();
  // An identity holding `role`.
  static RouteAccess Needs(Role role);
  // An identity holding `role`; the request is audited as `action` when
  // refused, and also when admitted if `when_admitted`.
  static RouteAccess Audited(Role role, std::string action, bool when_admitted);
};

class Router {
 public:
  enum class Outcome { kMatched, kNoPath, kWrongMethod };
  // One route as it was added.
  struct RouteInfo {
    std::vector<std::string> methods;  // empty: any method
    std::string pattern;               // e.g. "/v1/transactions/{gtid}", "/ui/{file...}"
  };
  struct Match {
    Outcome outcome = Outcome::kNoPath;
    const RouteHandler* handler = nullptr;  // with kMatched
    PathParams params;                      // with kMatched
  };
  // What a request needs (RuleFor).
  struct Rule {
    RouteAccess access;
    PathParams params;  // the captures of the route whose access it is
  };

  // Adds a route. `methods`: e.g. {"GET", "HEAD"}; empty: any method.
  // `pattern`: starts with '/'; see the file comment for the syntax.
  // `access`: what a request needs to reach it.
  void Add(std::initializer_list<std::string_view> methods, std::string_view pattern,
           RouteAccess access, RouteHandler handler);

  Match Find(std::string_view method, std::string_view path) const;

  // What METHOD PATH needs to pass the AccessGate (see the file comment).
  Rule RuleFor(std::string_view method, std::string_view path) const;

  // Finds `req`'s route and runs its handler; returns the outcome (the
  // caller answers kNoPath and kWrongMethod).
  Outcome Dispatch(const HttpRequest& req, const Identity& who, HttpResponder& respond) const;

  // Every route, in the order added (a copy).
  std::vector<RouteInfo> Routes() const;

 private:
  struct Segment {
    enum class Kind { kLiteral, kCapture, kRest };
    Kind kind;
    std::string text;  // the literal, or the capture's name
  };
  struct Route {
    std::vector<std::string> methods;
    std::string pattern;
    std::vector<Segment> segments;
    RouteAccess access;
    RouteHandler handler;
  };
  // Whether `path`'s segments fit `route`'s pattern; fills `params` if so.
  static bool PathMatches(const Route& route, const std::vector<std::string_view>& path,
                          PathParams* params);
  // The first route taking METHOD PATH (with its captures in `params`), or
  // null; `outcome` says why not. `any_host` (optional): set when a route
  // whose pattern fits the path has RouteAccess::any_host, whatever the method.
  const Route* FindRoute(std::string_view method, std::string_view path, PathParams* params,
                         Outcome* outcome, bool* any_host = nullptr) const;

  std::vector<Route> routes_;
};

}  // namespace treaty
