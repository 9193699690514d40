#include "treaty/barrier.h"

#include "input_rules.h"
#include "participant_migrations.h"
#include "sql_tx.h"
#include "store/pg_connection_pool.h"

namespace treaty {
inline namespace sdk {

namespace {

// The op whose effects `op` undoes ("" when it undoes nothing).
std::string OriginOf(const std::string& op) {
  if (op == "compensate") return "action";
  if (op == "abort") return "prepare";
  return "";
}

bool IsForwardOp(const std::string& op) { return op == "action" || op == "prepare"; }

const char* kInsert =
    "INSERT INTO treaty_barrier(gtid, branch, op, reason) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT DO NOTHING";

// What the table says of (gtid, branch, 'prepare'), or "" when it holds
// no such row. Another writer may have put the text there: cut short.
std::string PrepareReason(pqxx::work& w, const CallContext& ctx) {
  pqxx::result who = w.exec_params(
      "SELECT reason FROM treaty_barrier WHERE gtid = $1 AND branch = $2 AND op = 'prepare'",
      ctx.gtid, ctx.branch);
  return who.empty() ? "" : treaty_sdk_detail::Excerpt(who[0][0].c_str(), 64);
}

// A commit runs only for a branch these records show prepared (a two-phase
// commit) or, for a one-phase commit, that no abort closed; the one-phase
// commit then takes the prepare slot itself (reason "commit"), so a late
// prepare or abort finds it. OK, or why the commit must not be acknowledged.
Status ProveCommittable(pqxx::work& w, const CallContext& ctx) {
  const std::string what =
      (ctx.one_phase ? "barrier: one-phase commit of " : "barrier: commit of ") + ctx.gtid + "/" +
      ctx.branch;
  if (ctx.one_phase) {
    pqxx::result r = w.exec_params(kInsert, ctx.gtid, ctx.branch, "prepare", "commit");
    if (r.affected_rows() == 1) return Status::Ok();
  }
  const std::string reason = PrepareReason(w, ctx);
  if (reason == "abort") {
    return ctx.one_phase ? Status::BusinessFailure(what + " refused: already aborted")
                         : Status::Conflict(what + " not acknowledged: the branch was aborted");
  }
  if (reason.empty()) {
    return Status::Conflict(what + " not acknowledged: it was never prepared here");
  }
  if (ctx.one_phase && reason != "commit") {
    return Status::Conflict(what + " not acknowledged: the branch was prepared (" + reason +
                            "), so its commit must not be one-phase");
  }
  return Status::Ok();  // two-phase after a prepare, or a duplicate one-phase commit
}

PgPoolOptions PoolOptions(const BarrierOptions& options) {
  PgPoolOptions pool;
  pool.size = options.max_connections;
  pool.call_timeout_ms = options.call_timeout_ms;
  return pool;
}

}  // namespace

const char* BarrierEffectName(BarrierEffect effect) {
  switch (effect) {
    case BarrierEffect::kApplied:
      return "applied";
    case BarrierEffect::kDuplicate:
      return "duplicate";
    case BarrierEffect::kNullCompensation:
      return "null-compensation";
  }
  return "unknown";
}

class Barrier::Impl {
 public:
  explicit Impl(BarrierOptions o)
      : options(std::move(o)), pool(options.pg_uri, PoolOptions(options)) {}
  BarrierOptions options;
  PgConnectionPool pool;  // thread-safe
};

Barrier::Barrier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Barrier::~Barrier() = default;

Result<std::unique_ptr<Barrier>> Barrier::Open(BarrierOptions options) {
  if (options.pg_uri.empty()) return Status::InvalidArgument("Barrier: pg_uri is empty");
  auto impl = std::make_unique<Impl>(std::move(options));
  Status s = impl->pool.Run("barrier: connect", [](pqxx::connection& c) {
    pqxx::nontransaction(c).exec("SELECT 1");
    return Status::Ok();
  });
  if (!s.ok()) return s.code() == StatusCode::kInternal ? Status::Unavailable(s.message()) : s;
  if (impl->options.migrate) {
    s = MigrateParticipantSchema(impl->pool);
    if (!s.ok()) return Status(s.code(), "barrier migration: " + s.message());
  }
  return std::unique_ptr<Barrier>(new Barrier(std::move(impl)));
}

Result<BarrierEffect> Barrier::Run(const CallContext& ctx, const BarrierBody& body) {
  // Only identifiers reach the table (and the messages below).
  if (std::string e = treaty_sdk_detail::CallContextError(ctx); !e.empty()) {
    return Status::InvalidArgument("barrier: " + e);
  }
  BarrierEffect effect = BarrierEffect::kApplied;
  Status body_status;
  Status s = impl_->pool.Run("barrier", [&](pqxx::connection& c) -> Status {
    pqxx::work w(c);
    w.exec("SET LOCAL lock_timeout = " + std::to_string(impl_->options.lock_timeout_ms));
    if (ctx.op == "commit") {
      if (Status proof = ProveCommittable(w, ctx); !proof.ok()) {
        body_status = proof;
        return Status::Ok();  // nothing written: the work's destructor rolls back
      }
    }
    const std::string origin = OriginOf(ctx.op);
    bool never_applied = false;
    if (!origin.empty()) {
      // Claim the origin's slot: if we get it, the action never ran (and now
      // never will: the row is its tombstone).
      pqxx::result r = w.exec_params(kInsert, ctx.gtid, ctx.branch, origin, ctx.op);
      never_applied = r.affected_rows() == 1;
    }
    pqxx::result r = w.exec_params(kInsert, ctx.gtid, ctx.branch, ctx.op, ctx.op);
    if (r.affected_rows() == 0) {
      if (IsForwardOp(ctx.op)) {
        pqxx::result who = w.exec_params(
            "SELECT reason FROM treaty_barrier WHERE gtid = $1 AND branch = $2 AND op = $3",
            ctx.gtid, ctx.branch, ctx.op);
        // What the table holds is text another writer may have put there.
        std::string reason =
            who.empty() ? ctx.op : treaty_sdk_detail::Excerpt(who[0][0].c_str(), 64);
        if (reason != ctx.op) {
          return Status::BusinessFailure("barrier: " + ctx.op + " of " + ctx.gtid + "/" +
                                         ctx.branch + " refused: already " +
                                         (reason == "abort"    ? "aborted"
                                          : reason == "commit" ? "committed (one-phase)"
                                                               : reason + "d"));
        }
      }
      effect = BarrierEffect::kDuplicate;
      return Status::Ok();  // nothing written: the work's destructor rolls back
    }
    if (never_applied) {
      w.commit();
      effect = BarrierEffect::kNullCompensation;
      return Status::Ok();
    }
    SqlTx::Impl tx_impl(w);
    SqlTx tx(&tx_impl);
    try {
      body_status = body(tx);
    } catch (const std::exception& e) {
      body_status = Status::Internal(std::string("handler threw: ") + e.what());
    } catch (...) {
      body_status = Status::Internal("handler threw");
    }
    if (!body_status.ok()) return Status::Ok();  // roll back, report body_status
    w.commit();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!body_status.ok()) return body_status;
  return effect;
}

Result<int64_t> Barrier::Purge(int64_t older_than_seconds) {
  int64_t n = 0;
  Status s = impl_->pool.Run("barrier: purge", [&](pqxx::connection& c) {
    pqxx::work w(c);
    pqxx::result r = w.exec_params(
        "DELETE FROM treaty_barrier WHERE created_at < now() - make_interval(secs => $1)",
        older_than_seconds);
    w.commit();
    n = static_cast<int64_t>(r.affected_rows());
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return n;
}

}  // namespace sdk
}  // namespace treaty
