#include "treaty/pg_resource_manager.h"

#include <thread>
#include <utility>

#include "common/mutex.h"
#include "input_rules.h"
#include "participant_migrations.h"
#include "sql_tx.h"
#include "store/pg_connection_pool.h"
#include "store/pg_error.h"
#include "treaty/client.h"

namespace treaty {
inline namespace sdk {

namespace {

const char* kBarrierInsert =
    "INSERT INTO treaty_barrier(gtid, branch, op, reason) VALUES ($1, $2, 'prepare', $3) "
    "ON CONFLICT DO NOTHING";

// Parses "{prefix}:{len}:{gtid}:{branch}" (a gid found in
// pg_prepared_xacts, which anyone with access to the database can write):
// false unless it is well-formed and gtid and branch are identifiers.
bool ParseGid(const std::string& prefix, const std::string& gid, std::string* gtid,
              std::string* branch) {
  const std::string head = prefix + ":";
  if (gid.rfind(head, 0) != 0) return false;
  size_t colon = gid.find(':', head.size());
  if (colon == std::string::npos || colon == head.size() || colon - head.size() > 3) return false;
  size_t len = 0;
  for (size_t i = head.size(); i < colon; ++i) {
    if (gid[i] < '0' || gid[i] > '9') return false;
    len = len * 10 + static_cast<size_t>(gid[i] - '0');
  }
  // len <= 999, so the sum cannot overflow.
  if (colon + 1 + len + 1 > gid.size() || gid[colon + 1 + len] != ':') return false;
  *gtid = gid.substr(colon + 1, len);
  *branch = gid.substr(colon + 1 + len + 1);
  return treaty_sdk_detail::IdentifierError(*gtid, "gtid").empty() &&
         treaty_sdk_detail::IdentifierError(*branch, "branch").empty();
}

bool IsUndefinedObject(const std::exception& e) {
  const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
  return sql != nullptr && sql->sqlstate() == "42704";
}

PgPoolOptions PoolOptions(const PgResourceManagerOptions& options) {
  PgPoolOptions pool;
  pool.size = options.max_connections;
  pool.call_timeout_ms = options.call_timeout_ms;
  return pool;
}

}  // namespace

class PgResourceManager::Impl {
 public:
  Impl(PgResourceManagerOptions o, PgWork w)
      : options(std::move(o)),
        work(std::move(w)),
        pool(options.pg_uri, PoolOptions(options)),
        client(ClientOptions{.coordinators = options.coordinators, .max_attempts = 2}) {}
  ~Impl() {
    {
      treaty::MutexLock l(&mu);
      stopping = true;
    }
    cv.NotifyAll();
    if (loop.joinable()) loop.join();
  }

  // The recovery loop's pause: waits options.recovery_interval_ms; false
  // once the destructor asked the loop to stop.
  bool WaitForNextRecovery() TREATY_EXCLUDES(mu) {
    treaty::MutexLock l(&mu);
    if (stopping) return false;
    cv.WaitFor(&mu, options.recovery_interval_ms,
               [this]() TREATY_REQUIRES(mu) { return stopping; });
    return !stopping;
  }

  // What ApplyWork did.
  struct Applied {
    // Non-empty: the barrier slot (gtid, branch, 'prepare') was taken
    // already, by a delivery of this op ("prepare", "commit" for a one-phase
    // commit) or by an abort's tombstone ("abort"). Nothing ran; the
    // transaction block is closed.
    std::string earlier;
    // Else the work's vote or error. kYes / kReadOnly: the block is still
    // open, for the caller to PREPARE or COMMIT; anything else rolled back.
    Result<Vote> answer = Vote::kYes;
  };

  // Runs `body` on a pooled connection, through a nontransaction whose
  // statements open and end their own transaction block (BEGIN ... PREPARE
  // TRANSACTION, COMMIT or ROLLBACK). When `body` throws, a block it left open
  // is rolled back first, so the connection goes back to the pool outside
  // any transaction (one that cannot even roll back is broken: the pool
  // drops it). Blocks; errors as PgConnectionPool::Run.
  Status RunSession(const char* what, const std::function<Status(pqxx::nontransaction&)>& body);

  // BEGIN; claim the barrier slot with `reason`; run the work. Throws what
  // libpqxx throws (RunSession turns it into a Status).
  Applied ApplyWork(pqxx::nontransaction& n, const CallContext& ctx, const char* reason);
  static bool IsPrepared(pqxx::nontransaction& n, const std::string& gid);
  // A commit flagged one_phase: the work and its barrier row in one local
  // transaction (see the header). Throws what libpqxx throws.
  Status CommitOnePhase(pqxx::nontransaction& n, const CallContext& ctx, const std::string& gid);
  // A two-phase commit found no prepared transaction: OK only if the
  // barrier row proves the branch committed. Throws what libpqxx throws.
  Status CommittedBefore(pqxx::nontransaction& n, const CallContext& ctx);

  PgResourceManagerOptions options;
  PgWork work;
  PgConnectionPool pool;  // thread-safe
  Client client;
  RecoveryReport open_report;
  treaty::Mutex mu;
  treaty::CondVar cv;
  bool stopping TREATY_GUARDED_BY(mu) = false;
  std::thread loop;
};

Status PgResourceManager::Impl::RunSession(
    const char* what, const std::function<Status(pqxx::nontransaction&)>& body) {
  return pool.Run(what, [&](pqxx::connection& c) -> Status {
    pqxx::nontransaction n(c);
    try {
      return body(n);
    } catch (...) {
      try {
        n.exec("ROLLBACK");  // outside a block only a warning
      } catch (...) {
      }
      throw;
    }
  });
}

bool PgResourceManager::Impl::IsPrepared(pqxx::nontransaction& n, const std::string& gid) {
  return !n.exec_params("SELECT 1 FROM pg_prepared_xacts WHERE gid = $1", gid).empty();
}

PgResourceManager::Impl::Applied PgResourceManager::Impl::ApplyWork(pqxx::nontransaction& n,
                                                                    const CallContext& ctx,
                                                                    const char* reason) {
  Applied out;
  n.exec("BEGIN");
  n.exec("SET LOCAL lock_timeout = " + std::to_string(options.lock_timeout_ms));
  pqxx::result r = n.exec_params(kBarrierInsert, ctx.gtid, ctx.branch, reason);
  if (r.affected_rows() == 0) {
    pqxx::result who = n.exec_params(
        "SELECT reason FROM treaty_barrier WHERE gtid = $1 AND branch = $2 AND op = 'prepare'",
        ctx.gtid, ctx.branch);
    n.exec("ROLLBACK");
    // What the table holds is text another writer may have put there.
    out.earlier = who.empty() ? "purged" : treaty_sdk_detail::Excerpt(who[0][0].c_str(), 64);
    return out;
  }
  SqlTx::Impl tx_impl(n);
  SqlTx tx(&tx_impl);
  try {
    out.answer = work(tx, ctx);
  } catch (const std::exception& e) {
    out.answer = Status::Internal(std::string("work threw: ") + e.what());
  }
  if (!out.answer.ok() || *out.answer == Vote::kNo) n.exec("ROLLBACK");
  return out;
}

Status PgResourceManager::Impl::CommitOnePhase(pqxx::nontransaction& n, const CallContext& ctx,
                                               const std::string& gid) {
  const std::string what = "one-phase commit of " + ctx.gtid + "/" + ctx.branch;
  // Prepared after all (a coordinator may have sent a prepare first): that
  // prepared transaction holds the work; commit it.
  if (IsPrepared(n, gid)) {
    try {
      n.exec("COMMIT PREPARED " + n.quote(gid));
      return Status::Ok();
    } catch (const pqxx::sql_error& e) {
      if (!IsUndefinedObject(e)) throw;
      return CommittedBefore(n, ctx);  // committed by a concurrent delivery
    }
  }
  Applied applied = ApplyWork(n, ctx, "commit");
  if (applied.earlier == "abort")
    return Status::BusinessFailure(what + " refused: already aborted");
  if (!applied.earlier.empty()) return Status::Ok();  // committed before: visible, so committed
  if (!applied.answer.ok()) return applied.answer.status();
  if (*applied.answer == Vote::kNo) return Status::BusinessFailure(what + " refused: voted no");
  n.exec("COMMIT");
  return Status::Ok();
}

Status PgResourceManager::Impl::CommittedBefore(pqxx::nontransaction& n, const CallContext& ctx) {
  const std::string what = "commit of " + ctx.gtid + "/" + ctx.branch;
  pqxx::result who = n.exec_params(
      "SELECT reason FROM treaty_barrier WHERE gtid = $1 AND branch = $2 AND op = 'prepare'",
      ctx.gtid, ctx.branch);
  if (who.empty()) {
    return Status::Conflict(what +
                            " not acknowledged: nothing was prepared for it here (no prepared "
                            "transaction, no barrier record)");
  }
  const std::string reason = treaty_sdk_detail::Excerpt(who[0][0].c_str(), 64);
  // The row was written inside the branch's own transaction (PREPARE'd,
  // or committed at once for a read-only vote or a one-phase commit): it is
  // visible only because that transaction committed.
  if (reason == "prepare" || reason == "commit") return Status::Ok();
  return Status::Conflict(what + " not acknowledged: the branch was aborted here (" + reason + ")");
}

PgResourceManager::PgResourceManager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PgResourceManager::~PgResourceManager() = default;

Result<std::string> PgResourceManager::Gid(const std::string& prefix, const std::string& gtid,
                                           const std::string& branch) {
  for (auto [value, field] : {std::pair{&gtid, "'gtid'"}, std::pair{&branch, "'branch'"}}) {
    if (std::string e = treaty_sdk_detail::IdentifierError(*value, field); !e.empty()) {
      return Status::InvalidArgument("PgResourceManager: " + e);
    }
  }
  std::string gid = prefix + ":" + std::to_string(gtid.size()) + ":" + gtid + ":" + branch;
  if (gid.size() > 199) {
    return Status::InvalidArgument("gid for " + gtid + "/" + branch +
                                   " exceeds PostgreSQL's 200-byte limit");
  }
  return gid;
}

Result<std::shared_ptr<PgResourceManager>> PgResourceManager::Open(PgResourceManagerOptions options,
                                                                   PgWork work) {
  if (options.pg_uri.empty()) return Status::InvalidArgument("PgResourceManager: pg_uri is empty");
  if (!work) return Status::InvalidArgument("PgResourceManager: no work function");
  auto impl = std::make_unique<Impl>(std::move(options), std::move(work));
  {
    std::string max_prepared;
    Status s = impl->pool.Run("PgResourceManager: connect", [&](pqxx::connection& c) {
      pqxx::nontransaction n(c);
      max_prepared = n.exec("SHOW max_prepared_transactions")[0][0].c_str();
      return Status::Ok();
    });
    if (!s.ok()) return s.code() == StatusCode::kInternal ? Status::Unavailable(s.message()) : s;
    if (max_prepared == "0") {
      return Status::InvalidArgument(
          "PgResourceManager: max_prepared_transactions is 0 on " + impl->options.pg_uri +
          ", so PREPARE TRANSACTION is disabled; set max_prepared_transactions (postgresql.conf, "
          "e.g. to max_connections) and restart PostgreSQL");
    }
    if (impl->options.migrate) {
      s = MigrateParticipantSchema(impl->pool);
      if (!s.ok()) return Status(s.code(), "participant migration: " + s.message());
    }
  }
  std::shared_ptr<PgResourceManager> rm(new PgResourceManager(std::move(impl)));
  if (rm->impl_->options.recover_on_open) {
    auto report = rm->Recover(0);
    if (report.ok()) {
      rm->impl_->open_report = *report;
    } else {
      rm->impl_->open_report.errors.push_back(report.status().ToString());
    }
  }
  if (rm->impl_->options.recovery_interval_ms > 0) {
    Impl* impl_ptr = rm->impl_.get();
    PgResourceManager* self = rm.get();
    impl_ptr->loop = std::thread([impl_ptr, self] {
      while (impl_ptr->WaitForNextRecovery()) {
        (void)self->Recover(impl_ptr->options.recovery_min_age_ms);
      }
    });
  }
  return rm;
}

const RecoveryReport& PgResourceManager::open_recovery() const { return impl_->open_report; }

Result<Vote> PgResourceManager::Prepare(const CallContext& ctx) {
  auto gid = Gid(impl_->options.gid_prefix, ctx.gtid, ctx.branch);
  if (!gid.ok()) return gid.status();
  Result<Vote> answer = Vote::kYes;
  bool prepare_disabled = false;
  Status s = impl_->RunSession("prepare", [&](pqxx::nontransaction& n) -> Status {
    // A duplicate while the first delivery is still prepared: same answer.
    if (impl_->IsPrepared(n, *gid)) return Status::Ok();
    Impl::Applied applied = impl_->ApplyWork(n, ctx, "prepare");
    if (!applied.earlier.empty()) {
      // Prepared and committed before (yes again; the commit is a no-op),
      // or aborted before: refused.
      if (applied.earlier == "abort") {
        answer = Status::BusinessFailure("prepare of " + ctx.gtid + "/" + ctx.branch +
                                         " refused: already aborted");
      }
      return Status::Ok();
    }
    if (!applied.answer.ok() || *applied.answer == Vote::kNo) {
      answer = applied.answer;
      return Status::Ok();
    }
    answer = *applied.answer;
    if (*applied.answer == Vote::kReadOnly) {
      n.exec("COMMIT");
    } else {
      try {
        n.exec("PREPARE TRANSACTION " + n.quote(*gid));
      } catch (const pqxx::sql_error& e) {
        // 55000 (object_not_in_prerequisite_state) from PREPARE TRANSACTION:
        // max_prepared_transactions is 0 ("prepared transactions are
        // disabled"); the statement has no other cause of this code.
        prepare_disabled = treaty::PgSqlStateOf(e) == "55000";
        throw;
      }
    }
    return Status::Ok();
  });
  if (!s.ok()) {
    if (prepare_disabled) {
      return Status::InvalidArgument(
          "max_prepared_transactions is 0 on the participant's PostgreSQL: " + s.message());
    }
    return s;
  }
  return answer;
}

Status PgResourceManager::Commit(const CallContext& ctx) {
  auto gid = Gid(impl_->options.gid_prefix, ctx.gtid, ctx.branch);
  if (!gid.ok()) return gid.status();
  Status answer;
  Status s = impl_->RunSession("commit", [&](pqxx::nontransaction& n) -> Status {
    if (ctx.one_phase) {
      answer = impl_->CommitOnePhase(n, ctx, *gid);
      return Status::Ok();
    }
    try {
      n.exec("COMMIT PREPARED " + n.quote(*gid));
      return Status::Ok();
    } catch (const pqxx::sql_error& e) {
      if (!IsUndefinedObject(e)) throw;
    }
    // Nothing prepared under this gid: only the records can tell a commit
    // delivered again (success) from one that must not be acknowledged.
    answer = impl_->CommittedBefore(n, ctx);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return answer;
}

Status PgResourceManager::Abort(const CallContext& ctx) {
  auto gid = Gid(impl_->options.gid_prefix, ctx.gtid, ctx.branch);
  if (!gid.ok()) return gid.status();
  return impl_->pool.Run("abort", [&](pqxx::connection& c) {
    {
      pqxx::nontransaction n(c);
      try {
        n.exec("ROLLBACK PREPARED " + n.quote(*gid));
      } catch (const pqxx::sql_error& e) {
        if (!IsUndefinedObject(e)) throw;
      }
    }
    // Tombstone: a prepare that arrives late must not apply. If a prepare is
    // in flight it holds this key; we wait (lock_timeout) and the coordinator
    // retries the abort, which then rolls that prepare back.
    pqxx::work w(c);
    w.exec("SET LOCAL lock_timeout = " + std::to_string(impl_->options.lock_timeout_ms));
    w.exec_params(kBarrierInsert, ctx.gtid, ctx.branch, "abort");
    w.commit();
    return Status::Ok();
  });
}

Result<RecoveryReport> PgResourceManager::Recover(int min_age_ms) {
  std::vector<std::string> gids;
  {
    Status s = impl_->pool.Run("recover", [&](pqxx::connection& c) {
      pqxx::nontransaction n(c);
      pqxx::result r = n.exec_params(
          "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() "
          "AND starts_with(gid, $1) AND prepared <= now() - make_interval(secs => $2) "
          "ORDER BY prepared",
          impl_->options.gid_prefix + ":", min_age_ms / 1000.0);
      for (const auto& row : r) gids.emplace_back(row[0].c_str());
      return Status::Ok();
    });
    if (!s.ok()) return s;
  }
  RecoveryReport report;
  for (const auto& gid : gids) {
    CallContext ctx;
    if (!ParseGid(impl_->options.gid_prefix, gid, &ctx.gtid, &ctx.branch)) continue;
    std::string state;
    if (impl_->options.coordinators.empty()) {
      report.left_in_doubt++;
      report.errors.push_back(gid + ": no coordinators configured to ask");
      continue;
    }
    auto t = impl_->client.Get(ctx.gtid);
    if (t.ok()) {
      state = t->state;
    } else if (t.status().code() == StatusCode::kNotFound) {
      state = "ABORTED";  // presumed abort: the coordinator never logged it
    } else {
      report.left_in_doubt++;
      report.errors.push_back(gid + ": " + t.status().ToString());
      continue;
    }
    Status s;
    if (state == "COMMITTED" || state == "COMMITTING") {
      ctx.op = "commit";
      s = Commit(ctx);
      if (s.ok()) report.committed++;
    } else if (state == "ABORTED" || state == "ABORTING") {
      ctx.op = "abort";
      s = Abort(ctx);
      if (s.ok()) report.rolled_back++;
    } else {
      report.left_in_doubt++;  // ACTIVE / PREPARING: the coordinator will decide
      continue;
    }
    if (!s.ok()) {
      report.left_in_doubt++;
      report.errors.push_back(gid + ": " + s.ToString());
    }
  }
  return report;
}

}  // namespace sdk
}  // namespace treaty
