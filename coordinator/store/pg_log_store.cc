#include "store/pg_log_store.h"

#include <algorithm>
#include <optional>

#include "store/migrations.h"
#include "store/pg_batch.h"
#include "store/pg_connection_pool.h"
#include "store/pg_migrations.h"
#include "store/pg_rows.h"
#include "store/write_rules.h"

namespace treaty {

namespace {

using pg::kNow;

// Key of the advisory lock serializing migrators of the log.
constexpr int64_t kMigrationLockKey = 0x7472656174790001;  // "treaty" + 1

bool IsDatabaseFailure(const Status& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kInternal;
}

// Why a fenced write of `w` matched no row: NotFound or LostOwnership.
Status NotOwnedOrMissing(pqxx::transaction_base& tx, const TxnWrite& w) {
  if (tx.exec_params("SELECT 1 FROM transactions WHERE gtid = $1", w.gtid).empty()) {
    return Status::NotFound("transaction " + w.gtid + " not found");
  }
  return Status::LostOwnership("transaction " + w.gtid + " is not owned by " + w.owner);
}

// One write of a batch inside `tx`. A non-OK Status means the write must not
// apply (the caller rolls it back); database errors are thrown as exceptions
// and caught by PgConnectionPool::Run.
Status ApplyOne(pqxx::transaction_base& tx, const TxnWrite& w) {
  if (w.create) {
    const TxnRow& c = *w.create;
    if (!c.gtid.empty() && c.gtid != w.gtid)
      return Status::InvalidArgument("create: gtid mismatch");
    const std::string owner = c.owner.empty() ? w.owner : c.owner;
    const int64_t created = c.created_at_ms ? c.created_at_ms : w.now_ms;
    pqxx::result r = tx.exec_params(
        "INSERT INTO transactions (gtid, kind, state, spec, deadline_ms, owner, "
        "next_attempt_at_ms, attempts, needs_attention, version, created_at_ms, updated_at_ms, "
        "paused, last_error) VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), $7, $8, $9, $10, "
        "COALESCE(NULLIF($11::bigint, 0), " +
            kNow + "), COALESCE(NULLIF($12::bigint, 0), NULLIF($11::bigint, 0), " + kNow +
            "), $13, $14) ON CONFLICT (gtid) DO NOTHING",
        w.gtid, c.kind, c.state, c.spec, c.deadline_ms, owner, c.next_attempt_at_ms, c.attempts,
        c.needs_attention, c.version, created, c.updated_at_ms, c.paused, c.last_error);
    if (r.affected_rows() == 0)
      return Status::Conflict("transaction " + w.gtid + " already exists");
  } else if (!ChangesTransactionRow(w)) {
    if (tx.exec_params("SELECT 1 FROM transactions WHERE gtid = $1 AND owner = $2 FOR SHARE",
                       w.gtid, w.owner)
            .empty()) {
      return NotOwnedOrMissing(tx, w);
    }
  } else {
    pqxx::result r = tx.exec_params(
        "UPDATE transactions SET state = COALESCE($3::text, state), needs_attention = "
        "COALESCE($4::boolean, needs_attention), next_attempt_at_ms = COALESCE($5::bigint, "
        "next_attempt_at_ms), attempts = COALESCE($6::integer, attempts), deadline_ms = "
        "COALESCE($7::bigint, deadline_ms), owner = CASE WHEN $8::boolean THEN NULL ELSE owner "
        "END, paused = COALESCE($10::boolean, paused), last_error = COALESCE($11::text, "
        "last_error), version = version + 1, updated_at_ms = COALESCE(NULLIF($9::bigint, 0), " +
            kNow + ") WHERE gtid = $1 AND owner = $2",
        w.gtid, w.owner, w.state, w.needs_attention, w.next_attempt_at_ms, w.attempts,
        w.deadline_ms, w.release_owner, w.now_ms, w.paused, w.last_error);
    if (r.affected_rows() == 0) return NotOwnedOrMissing(tx, w);
  }
  for (const BranchRow& b : w.new_branches) {
    pqxx::result r = tx.exec_params(
        "INSERT INTO branches (gtid, name, idx, state, attempts, last_error, next_attempt_at_ms, "
        "spec, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, COALESCE(NULLIF($9::bigint, "
        "0), " +
            kNow + ")) ON CONFLICT (gtid, name) DO NOTHING",
        w.gtid, b.name, b.idx, b.state, b.attempts, b.last_error, b.next_attempt_at_ms, b.spec,
        b.updated_at_ms ? b.updated_at_ms : w.now_ms);
    if (r.affected_rows() == 0) {
      return Status::Conflict("branch " + b.name + " of " + w.gtid + " already exists");
    }
  }
  for (const BranchUpdate& u : w.branch_updates) {
    pqxx::result r = tx.exec_params(
        "UPDATE branches SET state = COALESCE($3::text, state), attempts = COALESCE($4::integer, "
        "attempts), last_error = COALESCE($5::text, last_error), next_attempt_at_ms = "
        "COALESCE($6::bigint, next_attempt_at_ms), updated_at_ms = COALESCE(NULLIF($7::bigint, "
        "0), " +
            kNow + ") WHERE gtid = $1 AND name = $2",
        w.gtid, u.name, u.state, u.attempts, u.last_error, u.next_attempt_at_ms, w.now_ms);
    if (r.affected_rows() == 0) {
      return Status::NotFound("branch " + u.name + " of " + w.gtid + " not found");
    }
  }
  pg::AppendEvents(tx, {&w});
  return Status::Ok();
}

// ApplyOne, with the database refusing this write's data (a data error, or
// an unexpected unique violation) answered as this write's Status instead of
// failing the batch. The caller must then roll the write back (its savepoint,
// or the whole transaction).
Status ApplyIsolated(pqxx::transaction_base& tx, const TxnWrite& w) {
  try {
    return ApplyOne(tx, w);
  } catch (const pqxx::sql_error& e) {
    Status s = PgErrorStatus("write", PgSqlStateOf(e), e.what());
    if (IsDataError(s) || s.code() == StatusCode::kConflict) return s;
    throw;
  }
}

}  // namespace

PgLogStore::PgLogStore(std::unique_ptr<PgConnectionPool> pool) : pool_(std::move(pool)) {}
PgLogStore::~PgLogStore() = default;

void PgLogStore::set_call_timeout_ms(int64_t ms) { pool_->set_call_timeout_ms(ms); }

int PgLogStore::WriteConcurrency() const { return std::max(1, pool_->size() / 2); }

Result<std::unique_ptr<PgLogStore>> PgLogStore::Open(const std::string& conninfo, int pool_size) {
  PgPoolOptions options;
  options.size = pool_size;
  options.call_timeout_ms = kDefaultCallTimeoutMs;
  auto pool = std::make_unique<PgConnectionPool>(conninfo, std::move(options));
  Status s = pool->Run("connect", [](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    tx.exec("SELECT 1");
    return Status::Ok();
  });
  if (!s.ok()) {
    return s.code() == StatusCode::kInternal ? Status::Unavailable(s.message()) : s;
  }
  return std::unique_ptr<PgLogStore>(new PgLogStore(std::move(pool)));
}

Status PgLogStore::Migrate() {
  static const PgMigrationLog kLog{.table = "schema_migrations",
                                   .applied_at_column = "BIGINT NOT NULL",
                                   .applied_at_value = kNow,
                                   .lock_key = kMigrationLockKey,
                                   .subject = "the log",
                                   .program = "treatyd"};
  // A migration may rebuild indexes of a large log for minutes (measured:
  // docs/operations.md, "Upgrading"): it runs without the call deadline,
  // which is restored after. Nothing else uses the store meanwhile (treatyd
  // migrates before it serves; `treatyd migrate` does nothing else).
  const int64_t deadline_ms = pool_->call_timeout_ms();
  pool_->set_call_timeout_ms(0);
  Status s = pool_->Run("migrate", [](pqxx::connection& c) {
    return ApplyPgMigrations(c, kLog, EmbeddedMigrations("postgres"));
  });
  pool_->set_call_timeout_ms(deadline_ms);
  return s;
}

Status PgLogStore::CheckReady() {
  return pool_->Run("check ready", [](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    const int64_t want = LatestMigrationVersion("postgres");
    if (tx.exec("SELECT 1 FROM information_schema.tables WHERE table_name = 'schema_migrations' "
                "AND table_schema = current_schema()")
            .empty()) {
      return Status::Unavailable("schema not migrated");
    }
    const auto have =
        tx.exec("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")[0][0].as<int64_t>();
    if (have < want) {
      return Status::Unavailable("schema at version " + std::to_string(have) + ", want " +
                                 std::to_string(want));
    }
    return CheckSchemaNotNewer(have, want);
  });
}

Result<std::vector<Status>> PgLogStore::ApplyStorable(const std::vector<TxnWrite>& writes) {
  return pool_->Get<std::vector<Status>>("apply batch", [&](pqxx::connection& c,
                                                            std::vector<Status>* results) {
    // The set-based path also for one write: a statement per table (three
    // or four round trips for a saga's step) instead of one per row.
    if (pg::SetBasedEligible(writes)) {
      std::optional<std::vector<Status>> set_based;
      try {
        pg::WriteTransaction tx(c);
        set_based = pg::ApplySetBased(tx.tx(), writes);
        if (set_based) tx.Commit();
      } catch (const pqxx::sql_error& e) {
        // Some write's data was refused: find it write by write below.
        if (!IsDataError(PgErrorStatus("apply batch", PgSqlStateOf(e), e.what()))) throw;
      }
      if (set_based) {
        *results = std::move(*set_based);
        return Status::Ok();
      }
      // Rolled back; apply write by write below.
    }
    pg::WriteTransaction write(c);
    pqxx::transaction_base& tx = write.tx();
    if (writes.size() == 1) {
      // No savepoint needed: a failed write rolls the whole
      // transaction back.
      Status ws = ApplyIsolated(tx, writes[0]);
      if (IsDatabaseFailure(ws)) return ws;
      if (ws.ok()) write.Commit();
      results->push_back(std::move(ws));
      return Status::Ok();
    }
    // Explicit savepoints: libpqxx 6's subtransaction
    // does not issue SAVEPOINT before exec_params, so it
    // would not undo a write that failed half-way.
    for (const TxnWrite& w : writes) {
      tx.exec("SAVEPOINT treaty_write");
      Status ws = ApplyIsolated(tx, w);
      if (IsDatabaseFailure(ws)) return ws;
      tx.exec(ws.ok() ? "RELEASE SAVEPOINT treaty_write" : "ROLLBACK TO SAVEPOINT treaty_write");
      results->push_back(std::move(ws));
    }
    write.Commit();
    return Status::Ok();
  });
}

}  // namespace treaty
