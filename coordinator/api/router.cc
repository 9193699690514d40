#include "api/router.h"

#include <algorithm>
#include <cstdlib>

namespace treaty {
namespace {

// "/a/b/" -> {"a", "b", ""}; "/" -> {""}. `path` starts with '/'.
std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  path.remove_prefix(1);
  while (true) {
    const size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) return out;
    path.remove_prefix(slash + 1);
  }
}

}  // namespace

RouteAccess RouteAccess::Open() {
  RouteAccess a;
  a.kind = Kind::kOpen;
  return a;
}

RouteAccess RouteAccess::Probe() {
  RouteAccess a = Open();
  a.any_host = true;
  return a;
}

RouteAccess RouteAccess::Authenticated() { return RouteAccess(); }

RouteAccess RouteAccess::Needs(Role role) {
  RouteAccess a;
  a.kind = Kind::kRole;
  a.role = role;
  return a;
}

RouteAccess RouteAccess::Audited(Role role, std::string action, bool when_admitted) {
  RouteAccess a = Needs(role);
  a.audit_action = std::move(action);
  a.audit_when_admitted = when_admitted;
  return a;
}

const std::string& PathParams::operator[](std::string_view name) const {
  static const std::string kNone;
  for (const auto& [key, value] : values_) {
    if (key == name) return value;
  }
  return kNone;
}

void Router::Add(std::initializer_list<std::string_view> methods, std::string_view pattern,
                 RouteAccess access, RouteHandler handler) {
  if (pattern.empty() || pattern.front() != '/') std::abort();  // a programming error
  Route route;
  for (std::string_view m : methods) route.methods.emplace_back(m);
  route.pattern = std::string(pattern);
  const std::vector<std::string_view> parts = Segments(pattern);
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string_view p = parts[i];
    Segment seg{Segment::Kind::kLiteral, std::string(p)};
    if (p.size() >= 2 && p.front() == '{' && p.back() == '}') {
      p = p.substr(1, p.size() - 2);
      seg.kind = Segment::Kind::kCapture;
      if (p.size() > 3 && p.substr(p.size() - 3) == "...") {
        if (i + 1 != parts.size()) std::abort();  // "{rest...}" must come last
        seg.kind = Segment::Kind::kRest;
        p.remove_suffix(3);
      }
      seg.text = std::string(p);
    }
    route.segments.push_back(std::move(seg));
  }
  route.access = std::move(access);
  route.handler = std::move(handler);
  routes_.push_back(std::move(route));
}

bool Router::PathMatches(const Route& route, const std::vector<std::string_view>& path,
                         PathParams* params) {
  const std::vector<Segment>& pattern = route.segments;
  const bool rest = !pattern.empty() && pattern.back().kind == Segment::Kind::kRest;
  if (rest ? path.size() < pattern.size() : path.size() != pattern.size()) return false;
  PathParams found;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const Segment& seg = pattern[i];
    switch (seg.kind) {
      case Segment::Kind::kLiteral:
        if (path[i] != seg.text) return false;
        break;
      case Segment::Kind::kCapture:
        // A trailing slash never fills a capture.
        if (path[i].empty() && i + 1 == path.size()) return false;
        found.Add(seg.text, std::string(path[i]));
        break;
      case Segment::Kind::kRest: {
        std::string tail(path[i]);
        for (size_t j = i + 1; j < path.size(); ++j) {
          tail += '/';
          tail += path[j];
        }
        found.Add(seg.text, std::move(tail));
        break;
      }
    }
  }
  *params = std::move(found);
  return true;
}

const Router::Route* Router::FindRoute(std::string_view method, std::string_view path,
                                       PathParams* params, Outcome* outcome, bool* any_host) const {
  *outcome = Outcome::kNoPath;
  if (path.empty() || path.front() != '/') return nullptr;
  const std::vector<std::string_view> segments = Segments(path);
  for (const Route& route : routes_) {
    PathParams found;
    if (!PathMatches(route, segments, &found)) continue;
    if (any_host != nullptr && route.access.any_host) *any_host = true;
    const bool method_ok =
        route.methods.empty() ||
        std::find(route.methods.begin(), route.methods.end(), method) != route.methods.end();
    if (!method_ok) {
      *outcome = Outcome::kWrongMethod;
      continue;
    }
    *outcome = Outcome::kMatched;
    *params = std::move(found);
    return &route;
  }
  return nullptr;
}

Router::Match Router::Find(std::string_view method, std::string_view path) const {
  Match match;
  if (const Route* route = FindRoute(method, path, &match.params, &match.outcome)) {
    match.handler = &route->handler;
  }
  return match;
}

Router::Rule Router::RuleFor(std::string_view method, std::string_view path) const {
  Rule rule;
  Outcome outcome;
  bool any_host = false;
  const Route* route = FindRoute(method, path, &rule.params, &outcome, &any_host);
  if (route == nullptr && method == "HEAD") route = FindRoute("GET", path, &rule.params, &outcome);
  if (route != nullptr) {
    rule.access = route->access;
    return rule;
  }
  rule.access = RouteAccess::Authenticated();  // no such route: 401 before 404
  rule.access.any_host = any_host;
  return rule;
}

Router::Outcome Router::Dispatch(const HttpRequest& req, const Identity& who,
                                 HttpResponder& respond) const {
  Match match = Find(req.method, req.path);
  if (match.outcome == Outcome::kMatched) {
    (*match.handler)(RouteCall{req, who, match.params}, respond);
  }
  return match.outcome;
}

std::vector<Router::RouteInfo> Router::Routes() const {
  std::vector<RouteInfo> out;
  out.reserve(routes_.size());
  for (const Route& route : routes_) out.push_back({route.methods, route.pattern});
  return out;
}

}  // namespace treaty
