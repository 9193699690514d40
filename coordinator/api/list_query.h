#pragma once

// The query parameters of the REST routes (docs/input-rules.md): integers
// are an optional '-' and digits within a range, `state` a known
// transaction state, `kind` saga|2pc, `gtid_prefix` identifier characters,
// `needs_attention` and `paused` true|false, `cursor` exactly as a previous
// page returned it. A parameter the route does not take, or one given more
// than once, is refused too: a misspelt filter (`?stat=ABORTED`) would
// otherwise be ignored and the answer list everything. Each refusal is
// InvalidArgument naming the parameter, never echoing a value's bytes (an
// unknown name is quoted cut to 64 bytes, control characters escaped).
// Stateless and thread-safe.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "http/http_types.h"
#include "store/log_store.h"
#include "treaty/status.h"

namespace treaty {

// Ok when every query parameter of `req` is one of `known` and none is
// given twice (by its percent-decoded name, in `req.target`; a request
// without a target is checked against `req.query` alone).
Status CheckQueryParameters(const HttpRequest& req, std::initializer_list<std::string_view> known);

// The optional integer query parameter `key` within [min, max]; unset when
// absent or empty.
Status QueryInt(const HttpRequest& req, const std::string& key, int64_t min, int64_t max,
                std::optional<int64_t>* out);

// The ListFilter of GET /v1/transactions (CheckQueryParameters first);
// `max_limit` bounds `limit`, `now_ms` (wall clock) anchors `min_age_ms`.
Result<ListFilter> ParseListFilter(const HttpRequest& req, int max_limit, int64_t now_ms);

}  // namespace treaty
