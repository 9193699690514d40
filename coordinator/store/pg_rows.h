#pragma once

// SQL fragments and row readers shared by PgLogStore's .cc files. Private to
// treaty_store (includes libpqxx); implemented in pg_log_store_queries.cc.

#include <string>

#include <pqxx/pqxx>

#include "store/records.h"
#include "treaty/status.h"

namespace treaty::pg {

// The database clock in SQL, ms since the epoch.
inline const std::string kNow = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
// Columns of a TxnRow, in the order ReadTxn expects.
inline const std::string kTxnColumns =
    "gtid, kind, state, spec, deadline_ms, COALESCE(owner, ''), next_attempt_at_ms, attempts, "
    "needs_attention, version, created_at_ms, updated_at_ms, paused, last_error";
inline const std::string kUnfinished = "state NOT IN ('COMMITTED', 'ABORTED')";

TxnRow ReadTxn(const pqxx::row& r);
// Reads a transaction with its branches (and events) inside `tx`; NotFound
// when there is no such gtid.
Status LoadDetail(pqxx::transaction_base& tx, const std::string& gtid, bool with_events,
                  TxnDetail* out);

}  // namespace treaty::pg
