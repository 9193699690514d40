#pragma once

// SqliteLogStore: the embedded LogStore engine ("sqlite:PATH"), for a single
// coordinator with no database server.
//
// Concurrency: ONE sqlite3 connection guarded by `mu_`; every method takes the
// mutex for its whole duration, so calls are serialized (SQLite allows one
// writer anyway). Prepared statements are cached on that connection.
//
// Durability: WAL journal with synchronous=FULL, so a committed ApplyBatch
// survives a power loss. Each ApplyBatch is one BEGIN IMMEDIATE transaction;
// each write in it runs under its own SAVEPOINT so a failed (fenced) write is
// undone alone. Other processes opening the same file wait up to
// busy_timeout (5 s) for the lock, then the call fails with Unavailable.
//
// Clock: "now" is the database clock, julianday('now') in ms since the epoch.

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "store/log_store.h"
#include "store/sqlite_statement.h"

namespace treaty {

class SqliteLogStore final : public LogStore {
 public:
  // Opens (creating the file and its parent folders) the database at `path`.
  // Does not migrate.
  [[nodiscard]] static Result<std::unique_ptr<SqliteLogStore>> Open(const std::string& path);

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
  Result<int64_t> ReleaseOwned(const std::string& owner) override;
  Result<int64_t> PurgeFinished(int64_t before_ms, int limit) override;

  // The database clock in SQL, ms since the epoch.
  static constexpr const char* kNowSql =
      "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
  // Columns of a TxnRow, in the order ReadTxn expects.
  static constexpr const char* kTxnColumns =
      "gtid, kind, state, spec, deadline_ms, COALESCE(owner, ''), next_attempt_at_ms, attempts, "
      "needs_attention, version, created_at_ms, updated_at_ms";

 protected:
  Result<std::vector<Status>> ApplyStorable(const std::vector<TxnWrite>& writes) override;

 private:
  SqliteLogStore() = default;

  using Body = std::function<Status()>;
  // Runs `body` between BEGIN IMMEDIATE and COMMIT (ROLLBACK when it fails).
  // Requires mu_.
  Status InTransaction(const Body& body);
  // Prepares a cached statement, or returns nullopt with `*status` set.
  std::optional<SqliteStatement> Prepare(const std::string& sql, Status* status) {
    return conn_.Prepare(sql, status);
  }
  // One write of a batch; a non-OK result means the write was not applied
  // (the caller rolls back its savepoint); Unavailable/Internal mean the
  // database failed and the whole batch must be abandoned. Requires mu_.
  Status ApplyOne(const TxnWrite& w);
  Status LoadDetail(const std::string& gtid, bool with_events, TxnDetail* out);
  Result<TxnDetail> GetDetail(const std::string& gtid, bool with_events);
  static TxnRow ReadTxn(const SqliteStatement& st);

  std::mutex mu_;
  SqliteConnection conn_;  // guarded by mu_
};

}  // namespace treaty
