#pragma once

// PgResourceManager: a 2PC resource manager on the participant's PostgreSQL
// database, using PostgreSQL's own two-phase commit.
//
//   prepare  BEGIN; barrier row; the service's work; PREPARE TRANSACTION gid
//   commit   COMMIT PREPARED gid; gid gone: the barrier row decides (below)
//   commit, one_phase (ctx.one_phase: the coordinator sent no prepare)
//            BEGIN; barrier row; the service's work; COMMIT (one local
//            transaction). kNo or a BusinessFailure refuses: BusinessFailure
//            (409: the transaction aborts); another error is transient.
//   abort    ROLLBACK PREPARED gid      (gid gone: never prepared or already
//            rolled back, OK) and a tombstone that refuses a late prepare
// gid = "{prefix}:{len(gtid)}:{gtid}:{branch}" (at most 200 bytes).
//
// A commit is acknowledged only when this database proves the branch's work
// committed. The barrier row (gtid, branch, 'prepare') is written inside
// the branch's own transaction, so it is visible only once that committed.
// A two-phase commit that finds no prepared transaction therefore answers:
//   barrier row by prepare / one-phase commit -> OK (committed before)
//   tombstone of an abort                     -> Conflict (aborted here)
//   no barrier row at all                     -> Conflict (never prepared)
// ParticipantServer answers Conflict with 409 {"error":{"code":"conflict"}}:
// the coordinator does not take it as committed; it retries the commit and
// flags the transaction needs_attention for an operator.
//
// Exactly once: the prepare writes a barrier row (gtid, branch, 'prepare')
// inside the prepared transaction, so a redelivered prepare after the commit
// does not redo the work, and a prepare arriving after its abort votes no
// (see docs/barrier.md). A duplicate prepare while the first is still
// prepared answers yes at once.
//
// Recovery: after a crash of the participant or the coordinator, prepared
// transactions would hold their locks forever. Open() (and Recover(), and
// the optional periodic loop) lists this manager's prepared transactions in
// pg_prepared_xacts, asks the coordinators for each outcome
// (GET /v1/transactions/{gtid}; unknown = aborted, presumed abort) and
// commits or rolls each back. Transactions the coordinator has not decided
// yet (ACTIVE, PREPARING) are left for it to finish.
//
// The server must allow prepared transactions: set max_prepared_transactions
// (postgresql.conf; at least the number of concurrently prepared branches,
// e.g. max_connections). Open() fails with InvalidArgument when it is 0.
//
// Thread-safe; every call blocks on the database.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "treaty/call_context.h"
#include "treaty/participant_server.h"
#include "treaty/sql.h"
#include "treaty/status.h"

namespace treaty {
inline namespace sdk {

struct PgResourceManagerOptions {
  std::string pg_uri;                     // the participant's database
  std::vector<std::string> coordinators;  // asked for outcomes during recovery
  std::string gid_prefix = "treaty";      // which prepared transactions are ours
  int max_connections = 8;
  int lock_timeout_ms = 10000;
  bool migrate = true;              // apply migrations/participant/ in Open
  bool recover_on_open = true;      // run Recover() in Open (errors are reported, not fatal)
  int recovery_interval_ms = 0;     // > 0: also recover in the background this often
  int recovery_min_age_ms = 30000;  // background recovery skips younger prepared xacts
  // Deadline of every database call (Open's checks and migration, each
  // Prepare, Commit, Abort and Recover's listing), in ms; 0: none. A call
  // still waiting on the database then has its connection closed and fails
  // with Unavailable (outcome unknown: the coordinator retries, and a
  // branch left prepared is found again by Prepare or recovery). Waiting for
  // a free connection counts too. PostgreSQL also ends a session of ours that
  // stays idle inside a transaction this long (10 s without a deadline), so
  // the work must not pause that long between its statements.
  int call_timeout_ms = 0;
};

// The service's part of prepare: runs in the transaction that is then
// prepared. kYes prepares; kReadOnly commits it at once (no phase 2);
// kNo or a BusinessFailure rolls back and votes no; another error rolls back
// and is transient.
using PgWork = std::function<Result<Vote>(SqlTx& tx, const CallContext& ctx)>;

struct RecoveryReport {
  int committed = 0;
  int rolled_back = 0;
  int left_in_doubt = 0;            // coordinator undecided or unreachable
  std::vector<std::string> errors;  // one line per transaction that could not be resolved
};

class PgResourceManager : public ResourceManager {
 public:
  // Connects, checks max_prepared_transactions, migrates, recovers.
  static Result<std::shared_ptr<PgResourceManager>> Open(PgResourceManagerOptions options,
                                                         PgWork work);
  ~PgResourceManager() override;

  Result<Vote> Prepare(const CallContext& ctx) override;
  Status Commit(const CallContext& ctx) override;
  Status Abort(const CallContext& ctx) override;

  // Resolves this manager's prepared transactions older than `min_age_ms`.
  Result<RecoveryReport> Recover(int min_age_ms = 0);
  // The report of the recovery Open() ran.
  const RecoveryReport& open_recovery() const;

  // The PostgreSQL gid for a branch; InvalidArgument unless gtid and branch
  // are identifiers (docs/input-rules.md) and the gid fits in 200 bytes.
  // Prepare, Commit and Abort refuse such a ctx the same way.
  static Result<std::string> Gid(const std::string& prefix, const std::string& gtid,
                                 const std::string& branch);

 private:
  class Impl;
  explicit PgResourceManager(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdk
}  // namespace treaty
