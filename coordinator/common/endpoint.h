#pragma once

// Endpoint: a participant (or coordinator) URL, parsed once, and the one
// reader of "HOST[:PORT]" text in Treaty. ParseEndpoint validates URLs at
// submission and is used by every caller (HTTP, Thrift, the SDK, treatyctl),
// so a URL accepted is a URL that can be called. ParseHostPort reads listen
// addresses. Both are made of common/host_port.h (SplitAuthority,
// ParsePortNumber), which the readers with rules of their own share.
//
// Accepted (docs/input-rules.md):
//   http://HOST[:PORT][/PATH][?QUERY]     PORT defaults to 80
//   https://HOST[:PORT][/PATH][?QUERY]    HTTP over TLS; PORT defaults to 443
//   thrift://HOST:PORT[/ANYTHING]         PORT required
//   thrifts://HOST:PORT[/ANYTHING]        Thrift over TLS; PORT required
// HOST: a DNS name (letters, digits, '-', '.', '_'), an IPv4 address, or an
// IPv6 address in brackets. PORT: 1..65535, digits only. PATH and QUERY:
// printable ASCII without space, '\\', '"', '<', '>', '{', '}', '|', '^',
// '`' (percent-encode anything else). No user-info ('@'), no fragment, no
// control characters, at most limits::kMaxUrlBytes bytes. The scheme is
// case-insensitive; any other scheme is refused.
//
// Stateless, thread-safe, never throws.

#include <cstdint>
#include <string>
#include <string_view>

#include "common/host_port.h"
#include "treaty/status.h"

namespace treaty {

struct Endpoint {
  std::string scheme;  // "http", "https", "thrift" or "thrifts", lower case
  std::string host;    // without brackets for IPv6
  uint16_t port = 0;   // 1..65535
  std::string target;  // "/path?query" for http(s) ("/" when absent); "" for thrift(s)

  // "host:port", with brackets around an IPv6 host (FormatHostPort).
  std::string Authority() const;
  // True for https and thrifts: the call runs over TLS.
  bool tls() const { return scheme == "https" || scheme == "thrifts"; }
  // True for http and https: an HTTP participant (else a Thrift one).
  bool http() const { return scheme == "http" || scheme == "https"; }
};

// Parses `url`. InvalidArgument naming `field` (e.g. "step 'a': 'action'")
// and the rule broken otherwise; the message never echoes control bytes.
Result<Endpoint> ParseEndpoint(std::string_view url, std::string_view field = "URL");

// A listen address "HOST:PORT" (treatyd --http / --thrift): HOST as in a URL
// (a DNS name, an IPv4 address or a bracketed IPv6 address, stored without
// brackets), PORT 0..65535 where 0 asks the system for a free port.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};

// Parses `text`. InvalidArgument naming `field` (e.g. "--http") and the rule
// broken otherwise; the message never echoes the text.
Result<HostPort> ParseHostPort(std::string_view text, std::string_view field);

}  // namespace treaty
