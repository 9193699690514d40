#pragma once

// The opaque cursor of ListTransactions pages. Pages are ordered by
// (created_at_ms DESC, gtid DESC); a cursor names the last row of the previous
// page, so the next page is every row strictly after it in that order. Rows
// that share created_at_ms are therefore neither repeated nor skipped.
//
// Wire form: "<created_at_ms>.<hex of gtid>" (ASCII, URL-safe).

#include <cstdint>
#include <string>

#include "common/status.h"

namespace treaty {

struct ListCursor {
  int64_t created_at_ms = 0;
  std::string gtid;
};

std::string EncodeListCursor(const ListCursor& cursor);
// InvalidArgument for text that EncodeListCursor did not make.
[[nodiscard]] Result<ListCursor> DecodeListCursor(const std::string& text);

}  // namespace treaty
