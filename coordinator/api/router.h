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

  // Adds a route. `methods`: e.g. {"GET", "HEAD"}; empty: any method.
  // `pattern`: starts with '/'; see the file comment for the syntax.
  void Add(std::initializer_list<std::string_view> methods, std::string_view pattern,
           RouteHandler handler);

  Match Find(std::string_view method, std::string_view path) const;

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
    RouteHandler handler;
  };
  // Whether `path`'s segments fit `route`'s pattern; fills `params` if so.
  static bool PathMatches(const Route& route, const std::vector<std::string_view>& path,
                          PathParams* params);

  std::vector<Route> routes_;
};

}  // namespace treaty
