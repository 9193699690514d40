#pragma once

// PgLogStore: the production LogStore engine on PostgreSQL (and the
// PostgreSQL-compatible CockroachDB / YugabyteDB: plain SQL only).
//
// Connection: a postgresql:// or postgres:// URI, or libpq conninfo
// ("host=a,b port=5432 dbname=treaty target_session_attrs=read-write");
// libpq resolves multi-host lists, so a new connection follows a fail-over.
//
// Concurrency: a pool of `pool_size` connections (default 8, see
// PgConnectionPool), so the group-commit writer's lanes (WriteConcurrency:
// half the pool) commit concurrently and readers (API, recovery scan,
// dashboard) do not wait for them. A call that finds its
// connection broken fails with Unavailable; the next call reconnects.
//
// Durability: ApplyBatch is one READ COMMITTED transaction; each write runs
// under its own savepoint when the batch has several, so a fenced-out write
// is undone alone. When COMMIT's outcome is unknown (connection lost during
// COMMIT) the batch reports Unavailable although it may have committed;
// retrying it is safe for creates (Conflict) and fenced updates (re-applied).
//
// Clock: "now" is the database clock, clock_timestamp() in ms.

#include <memory>
#include <string>

#include "store/log_store.h"

namespace treaty {

class PgConnectionPool;

class PgLogStore final : public LogStore {
 public:
  static constexpr int kDefaultPoolSize = 8;
  // Deadline of every database call (PgConnectionPool: the connection is cut
  // and the call fails with Unavailable, outcome unknown).
  static constexpr int64_t kDefaultCallTimeoutMs = 3000;

  // Connects once to check that the database is reachable (Unavailable
  // otherwise). Does not migrate.
  [[nodiscard]] static Result<std::unique_ptr<PgLogStore>> Open(const std::string& conninfo,
                                                                int pool_size = kDefaultPoolSize);
  ~PgLogStore() override;
  // The deadline of calls that start from now on, in ms; 0: none (e.g. for
  // a long migration). Thread-safe.
  void set_call_timeout_ms(int64_t ms);

  std::string Engine() const override { return "postgres"; }
  // Half the pool (at least 1): the other half stays for reads, recovery
  // and cluster work, so a busy writer never starves them.
  int WriteConcurrency() const override;
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

 protected:
  Result<std::vector<Status>> ApplyStorable(const std::vector<TxnWrite>& writes) override;

 private:
  explicit PgLogStore(std::unique_ptr<PgConnectionPool> pool);
  Result<TxnDetail> GetDetail(const std::string& gtid, bool with_events);

  std::unique_ptr<PgConnectionPool> pool_;  // thread-safe
};

}  // namespace treaty
