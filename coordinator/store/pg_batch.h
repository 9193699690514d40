#pragma once

// Set-based group commit for PgLogStore: applies a whole batch of TxnWrites
// with a fixed handful of statements instead of several round trips per
// write. A batch of any size, in the common case (no event collapses into a
// stored one), costs four round trips: BEGIN with the join settings
// (WriteTransaction), one statement on transactions (insert, update or
// fence), one for branches and events together (WriteBranchesAndEvents),
// COMMIT.
//
// Every value is bound: a statement takes its rows as JSON arrays of row
// objects (built with nlohmann, never by hand), one parameter per table,
// that the SQL expands with json_to_recordset. No SQL text is assembled from data. The statements
// are prepared once per connection (named treaty_*), so PostgreSQL does not parse and plan them
// again for every batch. PgLogStore takes this path for a batch of one write too. Private to
// treaty_store (includes libpqxx).

#include <optional>
#include <vector>

#include <nlohmann/json.hpp>
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
// `tx`, collapsing them (event_collapse.h), with at most two statements:
// CollapseEvents, then WriteBranchesAndEvents with the rest.
void AppendEvents(pqxx::transaction_base& tx, const std::vector<const TxnWrite*>& writes);

// The events of `writes` (as AppendEvents) that collapse into a stored one
// update it now (one UPDATE of the newest event of each gtid and branch, by
// the events primary key (gtid, branch, id), only when some may collapse);
// returns the rest, the rows still to insert, in order, as
// WriteBranchesAndEvents takes them.
nlohmann::json CollapseEvents(pqxx::transaction_base& tx,
                              const std::vector<const TxnWrite*>& writes);

struct BranchCounts {
  size_t inserted = 0;  // new branch rows that went in (not already there)
  size_t updated = 0;   // branch updates that found their row
};

// One statement (a WITH of data-modifying parts, only those given) that
// inserts `new_branches` (ON CONFLICT DO NOTHING), applies `branch_updates`
// and inserts `events` (CollapseEvents' rows), so a write costs one round
// trip for all three tables. The rows of the three arrays must be of
// different gtids than each other's branch rows (one write per gtid in a
// batch). Returns how many branch rows went in and were updated; the caller
// compares them with what it sent. Throws what libpqxx throws.
BranchCounts WriteBranchesAndEvents(pqxx::transaction_base& tx, const nlohmann::json& new_branches,
                                    const nlohmann::json& branch_updates,
                                    const nlohmann::json& events);

// A write transaction in one round trip fewer than pqxx::work plus
// PreferIndexJoins: BEGIN and both SET LOCALs go as one simple query (the
// block stays open after it), Commit() sends COMMIT, and the destructor rolls
// back what was not committed (ignoring a broken session, which the pool
// drops because of the error that unwinds). tx() is the transaction to run
// the statements in. A COMMIT whose answer is lost throws broken_connection,
// which CaughtPgError maps as it maps in_doubt_error (Unavailable, dropped):
// the outcome is unknown either way. Not thread-safe (one connection).
class WriteTransaction {
 public:
  explicit WriteTransaction(pqxx::connection& c);
  ~WriteTransaction();
  WriteTransaction(const WriteTransaction&) = delete;
  WriteTransaction& operator=(const WriteTransaction&) = delete;
  pqxx::transaction_base& tx() { return tx_; }
  void Commit();

 private:
  pqxx::nontransaction tx_;
  bool open_ = false;
};

}  // namespace treaty::pg
