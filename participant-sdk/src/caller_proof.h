#pragma once

// Private to the SDK: checks of the proof a coordinator's call carries
// (docs/security.md "Participants can trust the caller"), over the
// coordinator's own signature code (security/request_signature.h), so that
// a participant checks exactly what treatyd signs.
//
// Stateless, thread-safe; nothing here throws except std::bad_alloc.

#include <cstdint>
#include <string>
#include <vector>

namespace treaty_sdk_detail {

// How far a signature's timestamp may be from the participant's clock.
inline constexpr int64_t kMaxSignatureSkewSeconds = 300;

// "" when `header` (the Treaty-Signature value; "" when absent) is a valid
// signature of the request by one of `keys`, made within
// kMaxSignatureSkewSeconds of now (the system clock), else why not (missing,
// malformed, expired, bad signature; never echoes the header).
std::string SignatureError(const std::vector<std::string>& keys, const std::string& header,
                           const std::string& method, const std::string& target,
                           const std::string& body);

}  // namespace treaty_sdk_detail
