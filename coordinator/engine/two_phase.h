#pragma once

// TwoPhase: the driver of one two-phase-commit transaction (docs/2pc.md, the
// rules as clients and participants see them). Presumed abort: without a
// logged commit decision, the outcome is abort.
//
//   transaction:
//
//     ACTIVE ──commit──► PREPARING ──all yes──► COMMITTING ──all acked──► COMMITTED
//       │  (enlist)          │       (commit point:        (commit retried
//       │                    │        durable before        until acked)
//       │                    │        any commit is sent)
//       │ abort, deadline    │ a no vote, prepare failed after retries,
//       │                    │ deadline, abort, operator abort
//       └────────────────────┴─────► ABORTING ──all acked──► ABORTED
//                                     (abort retried until acked)
//
//     Shortcuts: commit with no branches, or with every vote READONLY, goes
//     straight to COMMITTED (nothing to do in phase 2). One-phase commit
//     (exactly one branch, which declared one_phase at enlistment, or a
//     legacy stored spec with one_phase): ACTIVE -> COMMITTING (logged) ->
//     one `commit` call with one_phase set, no prepare; 2xx -> COMMITTED,
//     409 (the participant refused) -> ABORTED, anything else is retried.
//     Any other transaction, a single branch included, prepares first.
//
//   branch:
//
//     ENLISTED ─► PREPARING ─┬─ yes ──────► PREPARED ─► COMMITTING ─► COMMITTED
//                            ├─ readonly ─► READONLY (no phase 2)
//                            └─ no / failed after retries ─┐
//     ENLISTED, PREPARING, PREPARED ──────────────────────┴─► ABORTING ─► ABORTED
//
// Rules:
//  - Branches enlist only while ACTIVE; later enlistments are Conflict.
//    Re-enlisting the same name with the same spec is idempotent.
//  - Prepares go out in parallel once PREPARING is durable. 409 is a no
//    vote; other failures are retried per spec.prepare_retry, then count as
//    a no vote.
//  - Abort goes to every branch that is not READONLY, including one that
//    voted no (idempotent at the participant) and one never prepared; never
//    while that branch's prepare call is still in flight.
//  - Commit and abort calls are retried until acknowledged, with capped
//    backoff (options.retry_*); needs_attention after
//    options.attention_after_attempts failures of one branch.
//  - A URL that can never be called (kUncallable: only a log written by an
//    older release can hold one) is a no vote for prepare and a refusal for
//    a one-phase commit (nothing was sent). For commit/abort it sets
//    needs_attention with a history event at once and is not retried: the
//    transaction stays COMMITTING/ABORTING for an operator while every other
//    branch finishes.
//  - The deadline (begin + spec.timeout_ms) aborts an ACTIVE or PREPARING
//    transaction.
//  - Operator actions (txn_service.h): force abort (ACTIVE/PREPARING ->
//    ABORTING), retry now, pause / resume (every call held while paused;
//    the deadline still decides), and resolve by hand: a COMMITTING branch of
//    a COMMITTING transaction -> COMMITTED, a branch of an ABORTING one ->
//    ABORTED (never while its prepare is in flight); its retry is cancelled,
//    the answer of a call in flight ignored, and phase 2 goes on.
//
// Attempts (docs/schema.md "Attempts and retries"): a branch's `attempts`
// counts the attempts of its current op (prepare, then commit or abort), each
// counted once, when it is planned. A retry is logged as planned (attempt n,
// next_attempt_at_ms = when) and, when its timer fires, as sent
// (next_attempt_at_ms = 0) before the call goes out.
//
// Calls, retry timers, operator retry-now and the recovery of logged
// attempts go through TxnDriver's branch calls (txn_driver.h); this class
// holds only the transitions above.
//
// Recovery (Restore + Start, after a crash, a takeover or a hand-back): ACTIVE
// or PREPARING -> ABORTING (presumed abort: no decision was logged, so a
// participant asking the coordinator is told "not committed"); COMMITTING ->
// commit to every branch not yet COMMITTED; ABORTING -> abort to every branch
// not yet ABORTED. A commit/abort logged as planned is sent after the rest of
// its backoff (its logged time), one logged as sent is resent at once as the
// same attempt, and the backoff goes on where it was (failures = attempts -
// 1). Delivery is at least once.
// A transaction still ACTIVE when its coordinator drains (SIGTERM) or dies
// is taken over by a peer and so aborted: clients re-run it under a new gtid.
//
// Threading: runs on ctx->runner only, asserted (txn_driver.h). Reply callbacks run there too.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/participant_caller.h"
#include "engine/two_phase_spec.h"
#include "engine/txn_driver.h"
#include "store/records.h"

namespace treaty {

class TwoPhase : public TxnDriver {
 public:
  // Answers with the state once the decision (or the refusal) is durable.
  using DecisionCallback = std::function<void(Result<TxnState>)>;

  // A new transaction in ACTIVE: the create write is the first thing Start()
  // sends. `spec.gtid` must be set.
  static std::shared_ptr<TwoPhase> Create(EngineContext* ctx, TwoPhaseSpec spec);
  // A transaction read back from the log (branches in idx order).
  static Result<std::shared_ptr<TwoPhase>> Restore(EngineContext* ctx, const TxnDetail& detail);

  void Start() override;
  // ACTIVE/PREPARING -> ABORTING. Conflict otherwise: COMMITTING (the
  // commit decision is logged), ABORTING (already aborting), finished.
  Status ForceAbort(const OperatorRequest& who) override;

  // Enlists a branch; `done` runs once the enlistment is durable. Conflict
  // when not ACTIVE or when the name is taken by a different spec;
  // InvalidArgument past max_branches.
  void Enlist(BranchSpec branch, size_t max_branches, std::function<void(Status)> done);
  // Runs the protocol; `done` gets the decision (COMMITTING, COMMITTED,
  // ABORTING, ABORTED) once it is durable.
  void RequestCommit(DecisionCallback done);
  // Aborts; Conflict once the commit decision is logged.
  void RequestAbort(const std::string& reason, DecisionCallback done);

  const TwoPhaseSpec& spec() const { return spec_; }

 protected:
  void CancelTimers() override;
  ParticipantRequest CallRequest(int i, BranchOp op) override;
  void OnCallResult(int i, BranchOp op, const ParticipantResponse& r) override;
  bool RetryStillDue(int i, BranchOp op) const override;
  std::optional<int> AttemptOfCall(int i, BranchOp op) const override;
  void OnOperatorRetry(int i) override;
  const std::string& BranchName(int i) const override { return branches_[i].spec.name; }
  int BranchCount() const override { return static_cast<int>(branches_.size()); }
  const char* TxnNoun() const override { return "transaction"; }
  const char* BranchNoun() const override { return "branch"; }
  // Resolve (TxnDriver): "COMMITTED" for a COMMITTING branch of a COMMITTING
  // transaction; "ABORTED" for a branch of an ABORTING transaction that is
  // not yet ABORTED nor READONLY, unless its prepare call is in flight
  // (Conflict: wait for its answer). The transaction then goes on.
  Status CheckResolve(int i, BranchState outcome) const override;
  int MarkResolved(int i, BranchState outcome) override;

 private:
  struct Branch {
    BranchSpec spec;
    BranchState state = BranchState::kEnlisted;
    int attempts = 0;           // attempts of the current op, as logged
    int failures = 0;           // failed commit/abort attempts since an operator retry
    int64_t planned_at_ms = 0;  // restored: attempt `attempts` not sent before
    bool voted_no = false;      // no vote, or prepare failed after retries
    bool uncallable = false;    // its commit/abort URL can never be called (in memory)
    std::string last_error;
  };

  TwoPhase(EngineContext* ctx, TwoPhaseSpec spec);
  bool Decided() const;
  // Exactly one branch, and it declared one_phase (or the legacy stored flag).
  bool OnePhase() const {
    return branches_.size() == 1 && (branches_[0].spec.one_phase || spec_.legacy_one_phase);
  }
  void Pump() override;
  void PumpPreparing();
  // Phase 2: `op` is kCommit (COMMITTING) or kAbort (ABORTING).
  void PumpPhaseTwo(BranchOp op);
  // Logs a decision (COMMITTING/ABORTING or a direct terminal state).
  void Decide(TxnState state, const std::string& why);
  void AnswerWhenDecided(DecisionCallback done);
  void SetBranch(int i, BranchState state, const std::string& detail);
  void OnPrepareResult(int i, const ParticipantResponse& r);
  void OnPhaseTwoResult(int i, BranchOp op, const ParticipantResponse& r);
  void StartDeadline();
  // A restored transaction in phase 2: picks every branch's call up where
  // the log left it.
  void ResumeBranches();

  TwoPhaseSpec spec_;
  std::vector<Branch> branches_;
  int64_t deadline_ms_ = 0;
  bool is_new_ = false;
  bool decision_durable_ = false;
  std::shared_ptr<TaskRunner::Timer> deadline_timer_;
  std::vector<DecisionCallback> decision_waiters_;
  // Enlistment replies waiting for their write (failed if the driver drops).
  std::map<uint64_t, std::function<void(Status)>> enlist_replies_;
  uint64_t next_reply_ = 0;
};

}  // namespace treaty
