#pragma once

// Private to the SDK: the input rules of docs/input-rules.md as the SDK
// applies them, each a thin call into the coordinator's own code
// (coordinator/common/text.h, json_input.h, limits.h), so that the SDK and
// treatyd accept and refuse exactly the same input. Where the SDK only needs
// a message the helpers answer a string ("" for success).
//
// Stateless, thread-safe; nothing here throws.

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/limits.h"
#include "treaty/call_context.h"

namespace treaty_sdk_detail {

// "" when `value` follows the identifier rules (1..128 bytes of printable
// ASCII other than '/', '?', '#', '%', '\\'; not "." or ".."), else why,
// naming `field` (e.g. "'gtid'", "header Treaty-Gtid") and never echoing
// the offending bytes.
std::string IdentifierError(std::string_view value, std::string_view field);

// "" when ctx.gtid, ctx.branch and ctx.op are identifiers (above), else why,
// naming the first field that is not.
std::string CallContextError(const treaty::CallContext& ctx);

// One JSON value from outside: at most `max_depth` levels of arrays/objects
// (the top-level value is level 1; 64 for bodies, limits::kMaxPayloadDepth
// = 32 for a payload on its own), valid UTF-8 only.
struct ParsedJson {
  nlohmann::json value;  // null when error is set
  std::string error;     // "" on success, else why, naming `what`
  bool ok() const { return error.empty(); }
};
ParsedJson ParseJsonInput(std::string_view text, std::string_view what,
                          int max_depth = treaty::limits::kMaxJsonDepth);

// True when `text` is syntactically JSON, whatever its depth (an iterative
// check that builds nothing).
bool IsJsonSyntax(std::string_view text);

// Compact JSON text; ill-formed UTF-8 in strings becomes U+FFFD. Keep the
// depth of `value` bounded (ParseJsonInput does).
std::string DumpJson(const nlohmann::json& value);

// See coordinator/common/text.h.
std::string ToValidUtf8(std::string_view s);
std::string Excerpt(std::string_view s, size_t max_bytes);
std::string EscapeControl(std::string_view s);

}  // namespace treaty_sdk_detail
