#pragma once

// The text boundary: every string that comes from outside (request fields,
// paths, queries, Thrift strings, participant answers) passes through these
// before it is stored, logged, serialized or sent on. Stateless, thread-safe,
// never throw.
//
// UTF-8 validity follows RFC 3629 (no overlongs, no surrogates, nothing past
// U+10FFFF).

#include <string>
#include <string_view>

#include "treaty/status.h"

namespace treaty {

// True when `s` is well-formed UTF-8 (RFC 3629). NUL is valid UTF-8.
bool IsValidUtf8(std::string_view s);

// `s` with every ill-formed sequence replaced by U+FFFD and every NUL
// replaced by U+FFFD (neither PostgreSQL text nor C strings can hold NUL).
std::string ToValidUtf8(std::string_view s);

// ToValidUtf8(s) cut to at most `max_bytes` bytes on a code-point boundary;
// "..." is appended when something was cut (and counts towards max_bytes).
std::string Excerpt(std::string_view s, size_t max_bytes);

// For log lines and HTTP header values: valid UTF-8 (ToValidUtf8) with every
// control character (C0, DEL and C1) written as \n, \r, \t or \xNN, and a
// backslash as \\, so a value can neither forge a line nor send a terminal
// escape.
std::string EscapeControl(std::string_view s);

// True for the bytes an identifier may hold (see ValidateIdentifier): printable
// ASCII 0x21..0x7E other than '/', '?', '#', '%' and '\\'.
bool IsIdentifierChar(char c);

// Identifier rules for gtids, step and branch names and the SDK's op:
// 1..128 bytes of printable ASCII (0x21..0x7E) other than '/', '?', '#',
// '%' and '\\', and neither "." nor "..". On failure: InvalidArgument whose
// message names `field` (e.g. "'gtid'", "steps[2].name") and the rule, and
// never echoes the offending bytes raw.
Status ValidateIdentifier(std::string_view value, std::string_view field);

// A free-text field from outside (an error message, a reason): must be
// valid UTF-8 without NUL, at most `max_bytes` bytes. InvalidArgument naming
// `field` otherwise.
Status ValidateText(std::string_view value, std::string_view field, size_t max_bytes);

}  // namespace treaty
