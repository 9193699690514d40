#include "common/endpoint.h"

#include <boost/asio/ip/address.hpp>

#include "common/limits.h"
#include "common/text.h"

namespace treaty {
namespace {

Status Bad(std::string_view field, const std::string& why) {
  return Status::InvalidArgument(std::string(field) + " " + why);
}

bool IsHostNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

// RFC 3986 characters allowed unescaped in a path or query, minus '#'.
bool IsTargetChar(char c) {
  if (c <= 0x20 || c >= 0x7f) return false;
  switch (c) {
    case '\\':
    case '"':
    case '<':
    case '>':
    case '{':
    case '}':
    case '|':
    case '^':
    case '`':
    case '#':
      return false;
    default:
      return true;
  }
}

// HOST[:PORT] of a URL or a listen address. port is -1 when absent.
struct ParsedAuthority {
  std::string host;
  int port = -1;
};

Result<ParsedAuthority> ParseAuthority(std::string_view authority, std::string_view field) {
  using Error = AuthorityParts::Error;
  const AuthorityParts parts = SplitAuthority(authority, ExtraColons::kFirstSplits);
  if (parts.error == Error::kUnclosedBracket) {
    return Bad(field, "has an unclosed '[' in its host");
  }
  ParsedAuthority out;
  if (parts.bracketed) {
    std::string v6(parts.host);
    boost::system::error_code ec;
    auto addr = boost::asio::ip::make_address_v6(v6, ec);
    if (ec || v6.find('%') != std::string::npos) {
      return Bad(field, "has an invalid IPv6 address in its host");
    }
    if (parts.error == Error::kAfterBracket)
      return Bad(field, "has characters after its IPv6 host");
    out.host = addr.to_string();
  } else {
    if (parts.host.empty()) return Bad(field, "has no host");
    if (parts.host.size() > 253) return Bad(field, "has a host name longer than 253 bytes");
    for (char c : parts.host) {
      if (!IsHostNameChar(c)) {
        return Bad(field, "has an invalid host (letters, digits, '-', '.', '_' or [IPv6])");
      }
    }
    out.host = std::string(parts.host);
  }
  if (parts.has_port) {
    if (parts.port.empty() || parts.port.size() > 5 ||
        parts.port.find_first_not_of("0123456789") != std::string_view::npos) {
      return Bad(field, "has an invalid port (digits only, at most 65535)");
    }
    std::optional<uint16_t> port = ParsePortNumber(parts.port);
    if (!port) return Bad(field, "has an invalid port (at most 65535)");
    out.port = *port;
  }
  return out;
}

}  // namespace

std::string Endpoint::Authority() const { return FormatHostPort(host, port); }

Result<Endpoint> ParseEndpoint(std::string_view url, std::string_view field) {
  if (url.size() > limits::kMaxUrlBytes) {
    return Bad(field, "must be at most " + std::to_string(limits::kMaxUrlBytes) + " bytes");
  }
  for (char c : url) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u >= 0x7f) {
      return Bad(field,
                 "must not contain spaces, control characters or non-ASCII bytes "
                 "(percent-encode them)");
    }
  }
  Endpoint ep;
  constexpr const char* kSchemes = "an http://, https://, thrift:// or thrifts:// URL";
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) return Bad(field, std::string("must be ") + kSchemes);
  for (char c : url.substr(0, sep)) {
    ep.scheme.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (ep.scheme != "http" && ep.scheme != "https" && ep.scheme != "thrift" &&
      ep.scheme != "thrifts") {
    return Bad(field, std::string("must be ") + kSchemes);
  }
  std::string_view rest = url.substr(sep + 3);
  size_t auth_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, auth_end);
  std::string_view target = auth_end == std::string_view::npos ? "" : rest.substr(auth_end);
  if (authority.find('@') != std::string_view::npos) {
    return Bad(field, "must not carry user info ('user@host')");
  }
  auto parsed = ParseAuthority(authority, field);
  if (!parsed.ok()) return parsed.status();
  ep.host = std::move(parsed->host);
  if (parsed->port >= 0) {
    if (parsed->port == 0) return Bad(field, "has an invalid port (1..65535)");
    ep.port = static_cast<uint16_t>(parsed->port);
  } else if (!ep.http()) {
    return Bad(field, "must be " + ep.scheme + "://host:port (the port is required)");
  } else {
    ep.port = ep.tls() ? 443 : 80;
  }
  if (!target.empty() && target[0] == '#') return Bad(field, "must not carry a fragment ('#')");
  for (char c : target) {
    if (!IsTargetChar(c)) {
      return Bad(field, "has a character in its path that must be percent-encoded");
    }
  }
  if (ep.http()) {
    ep.target =
        target.empty() ? "/" : (target[0] == '?' ? "/" + std::string(target) : std::string(target));
  }
  return ep;
}

Result<HostPort> ParseHostPort(std::string_view text, std::string_view field) {
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u >= 0x7f) {
      return Bad(field, "must be HOST:PORT without spaces, control characters or non-ASCII bytes");
    }
  }
  if (text.size() > 300) return Bad(field, "must be HOST:PORT of at most 300 bytes");
  if (text.find_first_of("/?#@") != std::string_view::npos) {
    return Bad(field, "must be HOST:PORT (no scheme, path or user info)");
  }
  auto parsed = ParseAuthority(text, field);
  if (!parsed.ok()) return parsed.status();
  if (parsed->port < 0) return Bad(field, "must be HOST:PORT (the port is missing)");
  return HostPort{std::move(parsed->host), static_cast<uint16_t>(parsed->port)};
}

}  // namespace treaty
