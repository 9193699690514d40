#pragma once

// The input rules of the operator actions (docs/operations.md "Operator
// actions"), shared by the REST and Thrift front ends so both accept and
// refuse exactly the same things: a reason is free text of at most
// kMaxReasonBytes bytes of valid UTF-8 without control characters, an outcome
// one of the three names TxnService::Resolve knows, a branch name follows
// the identifier rules. Every refusal is InvalidArgument naming the field,
// never echoing the offending bytes. Header-only, stateless, thread-safe.

#include <string>
#include <string_view>

#include "common/text.h"
#include "treaty/status.h"

namespace treaty {

// The longest reason an operator may give (bytes).
inline constexpr size_t kMaxReasonBytes = 1024;

// The outcomes of a resolve by hand (TxnService::Resolve).
inline constexpr const char* kResolveOutcomes[] = {"COMPENSATED", "COMMITTED", "ABORTED"};

// `reason`: at most kMaxReasonBytes bytes of valid UTF-8 with no control
// character (C0, DEL, C1); when `required`, at least one byte.
inline Status CheckReason(std::string_view reason, bool required) {
  if (required && reason.empty()) {
    return Status::InvalidArgument("'reason' is required: say why (1 to " +
                                   std::to_string(kMaxReasonBytes) + " bytes)");
  }
  if (auto s = ValidateText(reason, "'reason'", kMaxReasonBytes); !s.ok()) return s;
  for (size_t i = 0; i < reason.size(); ++i) {
    const auto c = static_cast<unsigned char>(reason[i]);
    const bool c1 = c == 0xC2 && i + 1 < reason.size() &&
                    static_cast<unsigned char>(reason[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(reason[i + 1]) <= 0x9F;
    if (c < 0x20 || c == 0x7F || c1) {
      return Status::InvalidArgument("'reason' must not contain control characters");
    }
    // Bidirectional marks, embeddings, overrides and isolates (U+200E-200F,
    // U+202A-202E, U+2066-2069; Unicode TR9): in an audit line they can
    // reorder how the text around them reads.
    if (c == 0xE2 && i + 2 < reason.size()) {
      const auto b1 = static_cast<unsigned char>(reason[i + 1]);
      const auto b2 = static_cast<unsigned char>(reason[i + 2]);
      const bool bidi = (b1 == 0x80 && (b2 == 0x8E || b2 == 0x8F || (b2 >= 0xAA && b2 <= 0xAE))) ||
                        (b1 == 0x81 && b2 >= 0xA6 && b2 <= 0xA9);
      if (bidi) {
        return Status::InvalidArgument(
            "'reason' must not contain bidirectional control characters (U+200E, U+200F, "
            "U+202A to U+202E, U+2066 to U+2069)");
      }
    }
  }
  return Status::Ok();
}

// `outcome`: COMPENSATED, COMMITTED or ABORTED.
inline Status CheckOutcome(std::string_view outcome) {
  for (const char* known : kResolveOutcomes) {
    if (outcome == known) return Status::Ok();
  }
  return Status::InvalidArgument("'outcome' must be one of COMPENSATED, COMMITTED, ABORTED");
}

// A branch (saga step or 2PC branch) name: the identifier rules, at most
// `max_length` bytes.
inline Status CheckBranchName(std::string_view name, size_t max_length) {
  if (auto s = ValidateIdentifier(name, "'branch'"); !s.ok()) return s;
  if (name.size() > max_length) {
    return Status::InvalidArgument("'branch' must be 1 to " + std::to_string(max_length) +
                                   " bytes long");
  }
  return Status::Ok();
}

}  // namespace treaty
