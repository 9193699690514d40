#pragma once

// SqliteLogStore: the embedded LogStore engine ("sqlite:PATH"), for a single
// coordinator with no database server.
//
// Concurrency: ONE sqlite3 connection guarded by `mu_`; every method takes it
// for its whole duration, so calls are serialized (SQLite allows one writer
// anyway). Prepared statements are cached on that connection. The connection
// holds an exclusive lock on the file while open (sqlite_statement.h): no
// other process or connection can use the file meanwhile, so a second
// treatyd (or a tool) pointed at it waits busy_timeout (5 s) and fails.
//
// Durability: WAL journal with synchronous=FULL, so a committed ApplyBatch
// survives a power loss. Each ApplyBatch is one BEGIN IMMEDIATE transaction;
// each write in it runs under its own SAVEPOINT so a failed (fenced) write is
// undone alone.
//
// A full, read-only or failing file system never crashes the process (no
// memory-mapped file, sqlite_statement.h): every call fails with Unavailable
// saying why, e.g. "database or disk is full". A call that met such a file
// failure closes the connection when it ends; the next call opens the file
// again, so the store resumes by itself once the file system is writable
// (every call keeps failing with Unavailable until then). From such a
// failure until a write succeeds again, every call closes the file when it
// ends, so that treatyd holds no handle on a failing file system (it can be
// remounted). A commit that failed was not acknowledged; every acknowledged
// one is in the WAL.
//
// Clock: "now" is the database clock, julianday('now') in ms since the epoch.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/mutex.h"
#include "store/log_store.h"
#include "store/sqlite_statement.h"

namespace treaty {

struct PlannedEvent;

class SqliteLogStore final : public LogStore {
 public:
  // Opens (creating the file and its parent folders) the database at `path`.
  // Does not migrate. Touches conn_ before the store is shared, without mu_.
  [[nodiscard]] static Result<std::unique_ptr<SqliteLogStore>> Open(const std::string& path)
      TREATY_NO_THREAD_SAFETY_ANALYSIS;

  std::string Engine() const override { return "sqlite"; }
  Status Migrate() override;
  Status CheckReady() override;
  Result<TxnDetail> GetTransaction(const std::string& gtid) override;
  Result<TxnDetail> GetTransactionNoEvents(const std::string& gtid) override;
  Result<TxnPage> ListTransactions(const ListFilter& filter) override;
  Result<std::vector<StateCount>> CountByState() override;

  Status RegisterCoordinator(const CoordinatorRow& row) override;
  Status Heartbeat(const std::string& id) override;
  Status SetCoordinatorState(const std::string& id, const std::string& state) override;
  Result<std::vector<std::string>> MarkExpiredCoordinators(int64_t lease_ms) override;
  Result<std::vector<CoordinatorRow>> ListCoordinators() override;
  Status DeleteCoordinator(const std::string& id) override;
  Result<std::vector<TxnDetail>> ClaimOrphans(const std::string& new_owner, int limit) override;
  Result<OrphanCensus> CountOrphans(int64_t heartbeat_within_ms) override;
  Result<int64_t> ReleaseOwned(const std::string& owner) override;
  Result<int64_t> PurgeFinished(int64_t before_ms, int limit) override;

  // Runs `use` with the open connection under the lock of every call
  // (serialized with them), for the online backup (sqlite_backup.h
  // BackupLiveSqliteLog); Unavailable without calling it when the file
  // could not be opened. `use` must not keep the pointer nor call the store.
  Status LendConnection(const std::function<Status(sqlite3*)>& use) TREATY_EXCLUDES(mu_);

  // The database clock in SQL, ms since the epoch.
  static constexpr const char* kNowSql =
      "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
  // Columns of a TxnRow, in the order ReadTxn expects.
  static constexpr const char* kTxnColumns =
      "gtid, kind, state, spec, deadline_ms, COALESCE(owner, ''), next_attempt_at_ms, attempts, "
      "needs_attention, version, created_at_ms, updated_at_ms, paused, last_error";

 protected:
  Result<std::vector<Status>> ApplyStorable(const std::vector<TxnWrite>& writes) override;

 private:
  SqliteLogStore() = default;

  using Body = std::function<Status()>;
  // Runs `body` (which may assume mu_ held) between BEGIN IMMEDIATE and
  // COMMIT (ROLLBACK when it fails).
  Status InTransaction(const Body& body) TREATY_REQUIRES(mu_);
  // Prepares a cached statement, or returns nullopt with `*status` set.
  std::optional<SqliteStatement> Prepare(const std::string& sql, Status* status)
      TREATY_REQUIRES(mu_) {
    return conn_.Prepare(sql, status);
  }
  // One write of a batch; a non-OK result means the write was not applied
  // (the caller rolls back its savepoint); Unavailable/Internal mean the
  // database failed and the whole batch must be abandoned.
  Status ApplyOne(const TxnWrite& w) TREATY_REQUIRES(mu_);
  // Collapses `p` into the newest stored event of its gtid and branch, or
  // inserts it (event_collapse.h). Inside ApplyOne.
  Status ApplyEvent(const PlannedEvent& p) TREATY_REQUIRES(mu_);
  // Why a fenced write of `w` matched no row: NotFound or LostOwnership.
  Status NotOwnedOrMissing(const TxnWrite& w) TREATY_REQUIRES(mu_);
  Status LoadDetail(const std::string& gtid, bool with_events, TxnDetail* out) TREATY_REQUIRES(mu_);
  Result<TxnDetail> GetDetail(const std::string& gtid, bool with_events) TREATY_EXCLUDES(mu_);
  static TxnRow ReadTxn(const SqliteStatement& st);

  // The lock of every call, held through a CallScope: Lock() opens the
  // connection again if an earlier call closed it; Unlock(), when the
  // call's statements are gone, closes a connection the call broke, and any
  // connection while failing (see above).
  class TREATY_CAPABILITY("mutex") CallLock {
   public:
    explicit CallLock(SqliteConnection* conn) : conn_(conn) {}
    // Both implement this capability on top of mu_, which the analysis
    // cannot relate to it.
    void Lock() TREATY_ACQUIRE() TREATY_NO_THREAD_SAFETY_ANALYSIS;
    void Unlock() TREATY_RELEASE() TREATY_NO_THREAD_SAFETY_ANALYSIS;

   private:
    Mutex mu_;
    SqliteConnection* const conn_;
    int64_t last_warning_ms_ TREATY_GUARDED_BY(mu_) = 0;  // steady clock
    int closes_since_warning_ TREATY_GUARDED_BY(mu_) = 0;
    bool failing_ TREATY_GUARDED_BY(mu_) = false;  // no write since a file failure
  };
  // Holds a CallLock for its lifetime (one call).
  class TREATY_SCOPED_CAPABILITY CallScope {
   public:
    explicit CallScope(CallLock* lock) TREATY_ACQUIRE(lock) : lock_(lock) { lock_->Lock(); }
    ~CallScope() TREATY_RELEASE() { lock_->Unlock(); }
    CallScope(const CallScope&) = delete;
    CallScope& operator=(const CallScope&) = delete;

   private:
    CallLock* const lock_;
  };

  SqliteConnection conn_ TREATY_GUARDED_BY(mu_);
  CallLock mu_{&conn_};
};

}  // namespace treaty
