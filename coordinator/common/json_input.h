#pragma once

// JSON from outside, in and out, with the input rules of docs/input-rules.md:
// a nesting-depth limit on parsing (the parser itself is iterative, but
// serializing and destroying deep values recurse), strict UTF-8 (nlohmann's
// lexer rejects ill-formed strings), and a serializer that cannot throw on
// data. Stateless, thread-safe, never throw.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/limits.h"
#include "treaty/status.h"

namespace treaty {

// Parses `text` as one JSON value. InvalidArgument, with a message naming
// `what` (e.g. "the request body"), when it is not JSON, not UTF-8, or nests
// arrays/objects deeper than `max_depth`.
Result<nlohmann::json> ParseJson(std::string_view text, std::string_view what,
                                 int max_depth = limits::kMaxJsonDepth);

// The deepest nesting of arrays/objects in `value` (a scalar is 0, `[]` is
// 1). Iterative: safe on any value.
int JsonDepth(const nlohmann::json& value);

// `value` as compact JSON text. Ill-formed UTF-8 in strings is replaced by
// U+FFFD instead of throwing. Callers keep depth bounded by ParseJson.
std::string DumpJson(const nlohmann::json& value);

}  // namespace treaty
