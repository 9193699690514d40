#pragma once

// Request signatures: proof, for a participant, that an HTTP call comes from
// a Treaty coordinator holding the shared key (docs/security.md
// "Participants can trust the caller"; docs/2pc.md "What participants
// receive"). With --participant-hmac-key FILE, every participant call carries
//
//   Treaty-Signature: t=UNIX_SECONDS,v1=HEX
//
// HEX = lower-case hex HMAC-SHA256(key, T "\n" METHOD "\n" TARGET "\n" BODY)
// where T is the decimal t, METHOD the request method ("POST"), TARGET the
// request target as sent (path and query) and BODY the exact body bytes.
// The participant recomputes it with each key it accepts (several during a
// key rotation), compares in constant time and refuses a t more than
// `max_skew_s` from its clock (replays later than that). Replays inside the
// window are harmless: every participant call is idempotent by contract.
//
// Keys: the file's bytes with one trailing newline removed; at least 32
// bytes. Stateless functions; thread-safe.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "treaty/status.h"

namespace treaty {

inline constexpr const char* kSignatureHeader = "Treaty-Signature";

// The header value for a request signed at `unix_s`.
std::string SignRequest(std::string_view key, int64_t unix_s, std::string_view method,
                        std::string_view target, std::string_view body);

// Ok if `header` is a valid signature by one of `keys` within `max_skew_s`
// of `now_unix_s`; else Unauthenticated with a reason that never echoes
// the header (missing, malformed, expired, bad signature). The header must
// be exactly "t=DIGITS" and one or more ",v1=HEX" (64 hex digits, either
// case; at most 8) in any order, nothing else; any v1 matching any key
// passes.
Status VerifyRequestSignature(const std::vector<std::string>& keys, std::string_view header,
                              int64_t now_unix_s, int64_t max_skew_s, std::string_view method,
                              std::string_view target, std::string_view body);

// Reads a key file (one trailing newline is dropped). InvalidArgument naming
// `option` and the path when it is not a readable regular file, is larger
// than 64 KiB, or the key is shorter than 32 bytes. Never throws.
Result<std::string> LoadSigningKey(const std::string& path, std::string_view option);

}  // namespace treaty
