#pragma once

// LogStore: the durable transaction log. Every fact about a transaction lives
// here; coordinators keep nothing else that matters across a crash.
//
// Two engines implement it with the same schema (migrations/{sqlite,postgres}):
// SqliteLogStore (embedded, one coordinator) and PgLogStore (production,
// replicated by PostgreSQL). Open one with OpenLogStore().
//
// Thread-safety: every method may be called from any thread at any time; the
// engine serializes internally (SQLite: one connection under a mutex; PG: a
// small connection pool). Every method blocks on database I/O, so callers on
// an event loop must run them on a blocking pool (LogWriter does this for
// writes).
//
// Durability: when ApplyBatch returns, the writes it reports OK are committed
// (SQLite: WAL + synchronous=FULL; PG: COMMIT, synchronous replication when
// configured). A batch is one database transaction: all its OK writes commit
// together or none do.

#include <memory>
#include <string>
#include <vector>

#include "store/cluster_store.h"
#include "store/records.h"
#include "treaty/status.h"

namespace treaty {

class LogStore : public ClusterStore {
 public:
  virtual ~LogStore() = default;

  // "sqlite" or "postgres".
  virtual std::string Engine() const = 0;

  // Applies pending migrations from the engine's migration folder (compiled
  // in); records them in `schema_migrations`. Safe to run concurrently from
  // several coordinators (PG: advisory lock). All or nothing. Refuses
  // (Unavailable, naming both versions, nothing applied) a log that a newer
  // release migrated: one whose schema_migrations holds a version above the
  // newest compiled in (store/migrations.h). Runs without a deadline (on
  // PostgreSQL the call deadline is lifted for it): rebuilding the indexes
  // of a large log takes minutes. Not to be called while the store serves.
  virtual Status Migrate() = 0;

  // OK when the log can be reached and its schema is exactly at the newest
  // compiled-in version; Unavailable otherwise (not migrated yet, or
  // migrated by a newer release, naming both versions).
  virtual Status CheckReady() = 0;

  // Applies `writes` in one database transaction. Returns one Status per
  // write, in order: OK, Conflict (create of an existing gtid), LostOwnership
  // (update whose owner no longer matches), NotFound (update of an unknown
  // gtid) or a data error (InvalidArgument, see store/write_rules.h: the
  // write's own data cannot be stored; retrying cannot help). A failed write
  // is skipped; the others still commit. If the database itself fails,
  // returns Unavailable/Internal for the whole batch (nothing committed, as
  // far as the store can tell); never a data error for the whole batch.
  //
  // Every write first passes the storable-write rules (write_rules.h), here,
  // for every engine: free text is made storable, a write with unstorable
  // identifiers is refused alone without reaching the engine.
  [[nodiscard]] Result<std::vector<Status>> ApplyBatch(const std::vector<TxnWrite>& writes);

  // How many ApplyBatch calls may usefully run at the same time (writes of
  // different gtids; LogWriter runs that many lanes): 1 for an engine with
  // one writer (SQLite), more where each call has its own connection
  // (PostgreSQL). Thread-safe, constant.
  virtual int WriteConcurrency() const { return 1; }

  virtual Result<TxnDetail> GetTransaction(const std::string& gtid) = 0;
  // Same, without the (possibly long) history.
  virtual Result<TxnDetail> GetTransactionNoEvents(const std::string& gtid) = 0;
  virtual Result<TxnPage> ListTransactions(const ListFilter& filter) = 0;
  virtual Result<std::vector<StateCount>> CountByState() = 0;

  // --- Cluster (times by the database clock) ---

  // Inserts a fresh coordinator row in state alive with heartbeat = now.
  virtual Status RegisterCoordinator(const CoordinatorRow& row) = 0;
  // Sets heartbeat = now for `id`. LostOwnership if the row is marked dead
  // (or gone): the caller must drop its work and re-register.
  virtual Status Heartbeat(const std::string& id) = 0;
  // Sets state (alive/draining) for `id`.
  virtual Status SetCoordinatorState(const std::string& id, const std::string& state) = 0;
  // Marks dead every alive/draining coordinator whose heartbeat is older than
  // `lease_ms`; returns the ids marked.
  virtual Result<std::vector<std::string>> MarkExpiredCoordinators(int64_t lease_ms) = 0;
  virtual Result<std::vector<CoordinatorRow>> ListCoordinators() = 0;
  virtual Status DeleteCoordinator(const std::string& id) = 0;

  // Claims up to `limit` unfinished transactions that are unowned or owned by
  // a dead coordinator (or one whose row is gone), setting owner =
  // `new_owner`; returns them with their branches (no events), sorted by
  // creation time. Taken owner by owner, the owner with the oldest orphan
  // first, each owner's oldest first. PG uses FOR UPDATE SKIP LOCKED so peers
  // claiming at once get disjoint sets, and reads about `limit` rows per call
  // whatever a take-over has claimed before (the owner index).
  virtual Result<std::vector<TxnDetail>> ClaimOrphans(const std::string& new_owner, int limit) = 0;
  // Counts what ClaimOrphans would take now (every unfinished transaction
  // unowned or owned by a dead or vanished coordinator) and the live
  // coordinators: state 'alive' and a heartbeat within the last
  // `heartbeat_within_ms` by the database clock (one stopped, partitioned or
  // draining but not yet declared dead does not count). One read snapshot.
  // PG counts along the owner index, as ClaimOrphans finds them.
  virtual Result<OrphanCensus> CountOrphans(int64_t heartbeat_within_ms) = 0;
  // Hands back every unfinished transaction owned by `owner` (owner = NULL).
  virtual Result<int64_t> ReleaseOwned(const std::string& owner) = 0;

  // Deletes finished (COMMITTED/ABORTED) transactions, with their branches
  // and events, last updated before `before_ms`; at most `limit`, oldest
  // first, in one short store transaction. Reads only the rows it deletes
  // (the partial index transactions_finished_updated). PG picks them with
  // FOR UPDATE SKIP LOCKED, so coordinators purging at once delete disjoint
  // rows and wait for nobody. Returns how many were deleted; fewer than
  // `limit` means none older are left. Called by Retention (cluster/retention.h).
  virtual Result<int64_t> PurgeFinished(int64_t before_ms, int limit) = 0;

 protected:
  // ApplyBatch of the engine, on writes that passed the storable-write
  // rules, with the same contract. A write the database refuses for its data
  // fails alone with a data error.
  virtual Result<std::vector<Status>> ApplyStorable(const std::vector<TxnWrite>& writes) = 0;
};

// Opens a store from a URI: "sqlite:PATH" (parent folder created) or a
// PostgreSQL URI ("postgresql://...", "postgres://...") or libpq conninfo
// ("host=... dbname=..."). Does not migrate. InvalidArgument for an unknown
// scheme, Unavailable when the database cannot be reached.
Result<std::unique_ptr<LogStore>> OpenLogStore(const std::string& uri);

}  // namespace treaty
