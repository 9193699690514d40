#pragma once

// The query parameters of the REST routes (docs/input-rules.md): integers
// are an optional '-' and digits within a range, `state` a known
// transaction state, `kind` saga|2pc, `gtid_prefix` identifier characters,
// `needs_attention` and `paused` true|false, `cursor` exactly as a previous
// page returned it. Each refusal is InvalidArgument naming the parameter,
// never echoing its bytes. Stateless and thread-safe.

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"
#include "http/http_types.h"
#include "store/log_store.h"

namespace treaty {

// The optional integer query parameter `key` within [min, max]; unset when
// absent or empty.
Status QueryInt(const HttpRequest& req, const std::string& key, int64_t min, int64_t max,
                std::optional<int64_t>* out);

// The ListFilter of GET /v1/transactions; `max_limit` bounds `limit`,
// `now_ms` (wall clock) anchors `min_age_ms`.
Result<ListFilter> ParseListFilter(const HttpRequest& req, int max_limit, int64_t now_ms);

}  // namespace treaty
