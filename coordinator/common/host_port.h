#pragma once

// HOST[:PORT] text: the one place that knows how Treaty cuts it (brackets
// around IPv6, which ':' separates the port) and reads a port number, and
// how it writes one back. ParseEndpoint and ParseHostPort (common/endpoint.h)
// are built on it, and so are the readers that keep rules of their own: the
// Host header and --allowed-hosts (api/access_gate_rules.cc), the
// --participant-allow entries (security/participant_policy.cc), socket peer
// addresses (api/dashboard_session.cc). Free of Status, so the SDK's sources
// can use it beside their own treaty/status.h.
//
// Stateless, thread-safe, never throws.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace treaty {

// How SplitAuthority reads an unbracketed text holding more than one ':'.
enum class ExtraColons {
  kFirstSplits,  // "a:b:c" -> host "a", port "b:c" (URLs and listen addresses,
                 // whose port check then refuses it)
  kNoPort,       // the whole text is the host: a bare IPv6 address or network
                 // ("::1", "fd00::/8"), without a port
  kLastSplits,   // "::1:5678" -> host "::1", port "5678": a socket peer written
                 // ADDRESS:PORT without brackets
  kRefuse,       // an error (kSeveralColons)
};

// "HOST[:PORT]" cut in two. Only the brackets and colons are judged; what
// HOST and PORT hold is left to the caller. The views point into the text.
struct AuthorityParts {
  enum class Error {
    kNone,
    kUnclosedBracket,  // "[::1": no ']' (host, port empty)
    kAfterBracket,     // "[::1]x": not ':' after ']' (host and bracketed still set)
    kSeveralColons,    // "a:b:c" under ExtraColons::kRefuse
  };
  Error error = Error::kNone;
  std::string_view host;   // between the brackets for "[v6]"; may be empty
  std::string_view port;   // after the ':'; empty when absent or written "host:"
  bool bracketed = false;  // HOST was written "[...]"
  bool has_port = false;   // a ':' introduced a PORT, even an empty one
};

// Cuts `text`: "[HOST]" or "[HOST]:PORT" when it starts with '[' (the first
// ']' closes it); else no ':' is a host alone, one ':' splits, and several
// are read as `extra` says.
AuthorityParts SplitAuthority(std::string_view text, ExtraColons extra);

// PORT text as a number: ASCII digits only, leading zeros allowed, at most
// 65535. nullopt for empty text, any other character ('+', '-', space) or a
// larger value. 0 is returned as 0: callers that need 1..65535 refuse it.
std::optional<uint16_t> ParsePortNumber(std::string_view text);

// "host:port", with brackets around a host holding ':' (IPv6): the form
// SplitAuthority and ParseHostPort read back.
std::string FormatHostPort(std::string_view host, uint16_t port);

}  // namespace treaty
