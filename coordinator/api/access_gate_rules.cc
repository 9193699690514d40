// AccessGate's tables: the role of every REST route, the Host allow-list
// and the security headers (access_gate.h).

#include <algorithm>
#include <cctype>

#include <boost/asio/ip/address.hpp>

#include "api/access_gate.h"
#include "common/host_port.h"
#include "common/text.h"

namespace treaty {
namespace {

std::vector<std::string_view> Split(std::string_view s) {
  std::vector<std::string_view> parts;
  while (true) {
    const size_t slash = s.find('/');
    parts.push_back(s.substr(0, slash));
    if (slash == std::string_view::npos) return parts;
    s.remove_prefix(slash + 1);
  }
}

RouteRule Open() {
  RouteRule r;
  r.access = RouteRule::Access::kOpen;
  return r;
}

RouteRule Needs(Role role) {
  RouteRule r;
  r.access = RouteRule::Access::kRole;
  r.role = role;
  return r;
}

RouteRule Audited(Role role, std::string action, bool when_admitted) {
  RouteRule r = Needs(role);
  r.audit_action = std::move(action);
  r.audit_when_admitted = when_admitted;
  return r;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Splits "name:port", "[v6]:port", "[v6]", "name" (SplitAuthority) into a
// lower-case host (IPv6 without brackets, one trailing dot dropped) and a
// port 1..65535 (0: none). `bare_ipv6`: a value with several colons and no
// brackets is an IPv6 address without port (allowed in the option, not in a
// Host header).
bool SplitHostPort(std::string_view in, bool bare_ipv6, std::string* host, int* port) {
  const AuthorityParts parts =
      SplitAuthority(in, bare_ipv6 ? ExtraColons::kNoPort : ExtraColons::kRefuse);
  if (parts.error != AuthorityParts::Error::kNone) return false;
  *port = 0;
  if (parts.has_port) {
    const std::optional<uint16_t> number = ParsePortNumber(parts.port);
    if (!number || *number == 0) return false;
    *port = *number;
  }
  std::string_view h = parts.host;
  if (!h.empty() && h.back() == '.') h.remove_suffix(1);
  if (h.empty()) return false;
  *host = Lower(h);
  return true;
}

bool IsName(std::string_view h) {
  if (h.size() > 253) return false;
  return std::all_of(h.begin(), h.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.' || c == '_';
  });
}

// Whether two host strings name the same host: equal text, or two IP
// addresses that are equal once parsed.
bool SameHost(const std::string& a, const std::string& b) {
  if (a == b) return true;
  boost::system::error_code ea, eb;
  auto x = boost::asio::ip::make_address(a, ea);
  auto y = boost::asio::ip::make_address(b, eb);
  return !ea && !eb && x == y;
}

}  // namespace

RouteRule RuleFor(std::string_view method, std::string_view path, bool metrics_open) {
  const bool get = method == "GET" || method == "HEAD";
  const bool post = method == "POST";
  if (get && (path == "/healthz" || path == "/readyz" || path == "/" || path == "/index.html" ||
              path.rfind("/ui/", 0) == 0)) {
    return Open();
  }
  if (path == "/v1/session") {
    if (post || method == "DELETE") return Open();
    if (get) return Needs(Role::kRead);
  }
  // The OpenAPI document is public (docs/openapi.json) but needs read like the
  // other reads: strangers learn nothing of what this listener serves.
  if (get && (path == "/v1/transactions" || path == "/v1/cluster" || path == "/v1/stats" ||
              path == "/v1/openapi.json")) {
    return Needs(Role::kRead);
  }
  if (get && path == "/metrics") return metrics_open ? Open() : Needs(Role::kRead);
  if (post && (path == "/v1/sagas" || path == "/v1/2pc")) return Needs(Role::kSubmit);
  static constexpr std::string_view k2pc = "/v1/2pc/";
  if (post && path.rfind(k2pc, 0) == 0) {
    const auto parts = Split(path.substr(k2pc.size()));
    if (parts.size() == 2 && !parts[0].empty() &&
        (parts[1] == "branches" || parts[1] == "commit" || parts[1] == "abort")) {
      return Needs(Role::kSubmit);
    }
  }
  static constexpr std::string_view kTxns = "/v1/transactions/";
  if (path.rfind(kTxns, 0) == 0 && path.size() > kTxns.size()) {
    const auto parts = Split(path.substr(kTxns.size()));
    RouteRule r;
    if (get && parts.size() == 1) return Needs(Role::kRead);
    if (post && parts.size() == 2 &&
        (parts[1] == "retry" || parts[1] == "abort" || parts[1] == "pause" ||
         parts[1] == "resume")) {
      r = Audited(Role::kOperate, std::string(parts[1]), true);
    } else if (post && parts.size() == 4 && parts[1] == "branches" && parts[3] == "resolve") {
      r = Audited(Role::kOperate, "resolve", true);
      r.branch = std::string(parts[2]);
    } else {
      return RouteRule{};
    }
    r.gtid = std::string(parts[0]);
    return r;
  }
  if (path == "/v1/admin/log-level") {
    if (get) return Audited(Role::kAdmin, "log-level", false);
    if (method == "PUT") return Audited(Role::kAdmin, "log-level", true);
  }
  return RouteRule{};  // no such route: authentication only, then 404
}

Result<HostAllowList> HostAllowList::Parse(const std::vector<std::string>& entries,
                                           bool listener_loopback) {
  HostAllowList list;
  if (entries.empty()) {
    if (listener_loopback) {
      list.entries_ = {{"localhost", 0}, {"127.0.0.1", 0}, {"::1", 0}};
    } else {
      list.any_ = true;
    }
    return list;
  }
  for (const std::string& e : entries) {
    if (e == "*") {
      list.any_ = true;
      continue;
    }
    Entry entry;
    boost::system::error_code ec;
    bool ok = SplitHostPort(e, true, &entry.host, &entry.port);
    if (ok) boost::asio::ip::make_address(entry.host, ec);
    if (!ok || (ec && !IsName(entry.host))) {
      return Status::InvalidArgument("--allowed-hosts: entry '" + Excerpt(EscapeControl(e), 100) +
                                     "' is not NAME, IP or [IPv6], with an optional :PORT, or *");
    }
    list.entries_.push_back(std::move(entry));
  }
  return list;
}

bool HostAllowList::Allows(std::string_view value, int default_port) const {
  if (any_) return true;
  std::string host;
  int port = 0;
  if (!SplitHostPort(value, false, &host, &port)) return false;
  if (port == 0) port = default_port;
  for (const Entry& e : entries_) {
    if ((e.port == 0 || e.port == port) && SameHost(e.host, host)) return true;
  }
  return false;
}

std::vector<std::pair<std::string, std::string>> SecurityHeaders(bool tls) {
  std::vector<std::pair<std::string, std::string>> h = {
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "no-referrer"},
      {"X-Frame-Options", "DENY"},
      {"Content-Security-Policy",
       "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
       "object-src 'none'"},
  };
  if (tls) h.push_back({"Strict-Transport-Security", "max-age=31536000"});
  return h;
}

}  // namespace treaty
