// AccessGate's tables: the Host allow-list and the security headers
// (access_gate.h). The role of every route is not here: each route carries
// its own (Router::Add, api/router.h).

#include <algorithm>
#include <cctype>

#include <boost/asio/ip/address.hpp>

#include "api/access_gate.h"
#include "common/host_port.h"
#include "common/text.h"

namespace treaty {
namespace {

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
