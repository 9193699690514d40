#pragma once

// Set-based group commit for PgLogStore: applies a whole batch of TxnWrites
// with a fixed handful of statements (one INSERT ... SELECT or UPDATE ...
// FROM per table) instead of several round trips per write, so a batch of
// hundreds of writes costs about six round trips.
//
// Every value is bound: each statement takes ONE parameter, a JSON array of
// row objects (built with nlohmann, never by hand) that the SQL expands with
// json_to_recordset. No SQL text is assembled from data. The statements are
// prepared once per connection (named treaty_*), so PostgreSQL does not
// parse and plan them again for every batch. PgLogStore takes this path for
// a batch of one write too.
// Private to treaty_store (includes libpqxx).

#include <optional>
#include <vector>

#include <pqxx/pqxx>

#include "store/records.h"
#include "treaty/status.h"

namespace treaty::pg {

// Run first in every write transaction: turns hash and merge joins off for
// this transaction only (SET LOCAL). Every batch statement joins a handful of
// JSON rows against a table by its key, and PostgreSQL estimates 100 rows
// for json_to_recordset; while a table is small (a new log, up to about
// 100,000 rows) it then prefers a hash join over a sequential scan of the
// whole table, whose cost grows with the table (measured: 1-2 ms of server
// CPU per statement with 20,000 branches). Without them the plan is an index
// nested loop, whose cost is the rows given. Prepared statements keep the
// plan made under these settings.
void PreferIndexJoins(pqxx::transaction_base& tx);

// Whether ApplySetBased can take `writes`: no two writes of one gtid, and no
// update that enlists branches (those need per-write conflict handling).
bool SetBasedEligible(const std::vector<TxnWrite>& writes);

// Applies `writes` inside `tx` and returns one Status per write (OK,
// Conflict for a create of an existing gtid, LostOwnership, NotFound), with
// the same meaning as the per-write path. Returns nullopt when a write turned
// out to need per-write handling (a branch that exists already or is
// missing): the caller must roll `tx` back and use the per-write path.
// Database errors are thrown as libpqxx exceptions; a write whose data the
// database refuses fails the whole statement (a data error, see
// PgErrorStatus): the caller rolls back and applies write by write.
std::optional<std::vector<Status>> ApplySetBased(pqxx::transaction_base& tx,
                                                 const std::vector<TxnWrite>& writes);

// Appends the events of `writes` (each applied, no two of one gtid) inside
// `tx`, collapsing them (event_collapse.h), with at most two statements: one
// UPDATE of the events they collapse into (the newest of each gtid and
// branch, by index events_gtid_branch), one INSERT of the rest in order.
void AppendEvents(pqxx::transaction_base& tx, const std::vector<const TxnWrite*>& writes);

}  // namespace treaty::pg
