#pragma once

// The opaque cursor of ListTransactions pages. Pages are ordered by
// (created_at_ms DESC, gtid DESC); a cursor names the last row of the previous
// page, so the next page is every row strictly after it in that order. Rows
// that share created_at_ms are therefore neither repeated nor skipped.
//
// Wire form: "<created_at_ms>.<hex of gtid>" (ASCII, URL-safe): the decimal
// as std::to_string writes it, lower-case hex.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "treaty/status.h"

namespace treaty {

struct ListCursor {
  int64_t created_at_ms = 0;
  std::string gtid;
};

std::string EncodeListCursor(const ListCursor& cursor);

// Strict: accepts exactly the text EncodeListCursor makes of a cursor whose
// gtid a store can hold and compare (1..kMaxIdentifierBytes bytes of valid
// UTF-8 without control characters or NUL), so a decoded cursor can be bound
// into any store's query. Anything else (no dot, signs, leading zeros,
// upper-case or odd-length hex, an empty or ill-formed gtid):
// InvalidArgument naming 'cursor', never echoing the text.
[[nodiscard]] Result<ListCursor> DecodeListCursor(const std::string& text);

// The gtid_prefix filter as a range of the gtid key, in byte order (both
// stores compare gtids byte by byte): the gtids that start with `prefix` are
// those >= prefix and < PrefixUpperBound(prefix), the least string that is
// greater than all of them: `prefix` cut after its last byte below 0xFF, that
// byte incremented. nullopt when there is none (an empty prefix, or only 0xFF
// bytes): then `gtid >= prefix` alone is the filter. Meant for prefixes the
// API accepts (printable ASCII, coordinator/api/list_query.cc), whose bound is
// ASCII too; for other bytes the bound may not be valid UTF-8, which
// PostgreSQL refuses as a text parameter.
std::optional<std::string> PrefixUpperBound(std::string_view prefix);

}  // namespace treaty
