#pragma once

// Barrier: exactly-once effects of participant handlers on the participant's
// own PostgreSQL database, although the coordinator delivers at least once
// and may deliver out of order. See docs/barrier.md for the algorithm and
// its proof sketch.
//
// Run() opens a transaction on the participant's database, records the
// delivery in the `treaty_barrier` table (migrations/participant/) and runs
// the business code in that same transaction, so that:
//   - a duplicate delivery of the same (gtid, branch, op) does nothing and
//     succeeds (BarrierEffect::kDuplicate);
//   - a compensation (or abort) for an action (or prepare) that was never
//     applied succeeds without running the business code
//     (kNullCompensation), and leaves a tombstone behind, so that
//   - an action (prepare) that arrives after its compensation (abort) is
//     refused with a BusinessFailure and does nothing (no hanging effects).
// Ops pair up as action/compensate (sagas) and prepare/abort (TCC). A
// commit is de-duplicated, and runs only when the records prove it may:
//   - two-phase (ctx.one_phase false): only after a prepare of the branch
//     committed here; else Conflict without calling `body` (never prepared,
//     or aborted: a commit that must not be acknowledged);
//   - one-phase (ctx.one_phase true): `body` does the whole work; the commit
//     takes the prepare slot too (reason "commit"), so a late prepare is
//     refused and an abort after it finds work to undo. After an abort:
//     BusinessFailure (the one-phase commit is refused).
//
// Thread-safe: any number of threads (and processes) may call Run at once;
// concurrent deliveries of the same op serialize on the table's primary key
// and exactly one of them runs the business code.

#include <functional>
#include <memory>
#include <string>

#include "treaty/call_context.h"
#include "treaty/sql.h"
#include "treaty/status.h"

namespace treaty {
inline namespace sdk {

struct BarrierOptions {
  // The participant's database: "postgresql://user@host:port/db" or a conninfo.
  std::string pg_uri;
  int max_connections = 8;      // pooled connections; Run blocks when all are busy
  int lock_timeout_ms = 10000;  // waiting on a concurrent delivery longer is Unavailable
  bool migrate = true;          // apply migrations/participant/ in Open
  // Deadline of every database call (Open's connect and migration, each Run
  // and Purge), in ms; 0: none. A call still waiting on the database then
  // has its connection closed and fails with Unavailable (for a Run whose
  // commit was under way: outcome unknown, as after any lost connection; a
  // redelivery finds out through the barrier). Waiting for a free
  // connection counts too. PostgreSQL also ends a session of ours that stays
  // idle inside a transaction this long (10 s without a deadline), so a
  // `body` must not pause that long between its statements.
  int call_timeout_ms = 0;
};

enum class BarrierEffect {
  kApplied,           // the business code ran and its effects committed
  kDuplicate,         // this op was applied before; nothing done
  kNullCompensation,  // compensate/abort of something never applied; nothing done
};

const char* BarrierEffectName(BarrierEffect effect);

using BarrierBody = std::function<Status(SqlTx& tx)>;

class Barrier {
 public:
  // Connects (and migrates when options.migrate). Unavailable when the
  // database cannot be reached. Blocks.
  static Result<std::unique_ptr<Barrier>> Open(BarrierOptions options);
  ~Barrier();
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  // Runs `body` at most once for (ctx.gtid, ctx.branch, ctx.op), atomically
  // with the barrier record. `body` returning non-OK rolls everything back
  // and Run returns that Status (a later redelivery runs it again). An action
  // or prepare arriving after its compensation or abort returns
  // BusinessFailure without calling `body`. InvalidArgument, before the
  // database is touched, unless ctx.gtid, ctx.branch and ctx.op are
  // identifiers (docs/input-rules.md). Blocks.
  Result<BarrierEffect> Run(const CallContext& ctx, const BarrierBody& body);

  // Deletes barrier rows older than `older_than_seconds` (choose well past
  // any transaction's deadline). Returns the number deleted.
  Result<int64_t> Purge(int64_t older_than_seconds);

 private:
  class Impl;
  explicit Barrier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdk
}  // namespace treaty
