#pragma once

// Saga: the driver of one saga (docs/architecture.md; states in docs/schema.md).
//
//   transaction:   RUNNING ───────────────► COMMITTED   (every step SUCCEEDED)
//                     │ step FAILED, deadline, operator abort
//                     ▼
//                  COMPENSATING ──────────► ABORTED     (every attempted step COMPENSATED)
//
//   step:  PENDING ─► RUNNING ─► SUCCEEDED ─┐
//                       │  ▲ transient,      ├─► COMPENSATING ─► COMPENSATED
//                       │  └ attempts left   │     ▲  └ any failure: retried forever
//                       └─► FAILED ──────────┘     │    (needs_attention after N)
//                           (409, or attempts exhausted)
//
// A step starts when its dependencies have SUCCEEDED (the previous step, or
// its `after` list when concurrent). The saga's create (every step, PENDING,
// and the first steps RUNNING) is durable before any action is sent. After
// that, a step's FIRST action attempt goes out as soon as its dependencies
// succeed, its RUNNING and their SUCCEEDED written behind it
// (EngineOptions::write_behind_ms; when it may: TxnDriver::CallWhenDurable;
// otherwise durable first). Every other call (a retry, a compensation, a
// call after a decision) waits for its change to be logged. So after a
// crash the log may lag the participants only by happy-path progress, and
// by how much it cannot say: every PENDING step of a restored RUNNING saga
// "may have started", unless it has no dependencies (those start in the
// create write, or not at all; MarkMaybeStarted). Recovery resends forward
// from the first step not logged SUCCEEDED (participants are idempotent per
// (gtid, branch, op)); if the saga aborts instead, a step that may have
// started is compensated like an attempted one (a participant must accept a
// compensate for an action it never received: docs/protocol.md).
// Compensation runs for every attempted step (RUNNING, SUCCEEDED, FAILED, or
// may have started), a step only after every attempted step that depends on
// it is COMPENSATED (reverse dependency order), and never while its own
// action call is still in flight. A decision (COMPENSATING, COMMITTED) is
// written with every change before it, and compensations wait for it; the
// steps that may have started are logged RUNNING with COMPENSATING, so a
// later restore of the COMPENSATING saga compensates them too.
//
// A URL that can never be called (kUncallable: only a log written by an older
// release can hold one) is a permanent failure: an action fails the step at
// once (no retry; compensation follows). A compensation sets needs_attention
// with a history event and is not retried; that step stays COMPENSATING for
// an operator and no longer holds back the compensation of the steps it
// depends on, so every other effect is still undone.
//
// Operator actions (txn_service.h): force abort (RUNNING -> COMPENSATING),
// retry now, pause / resume (every call held while paused; deadlines still
// decide), and resolve by hand: a COMPENSATING step of a COMPENSATING saga ->
// COMPENSATED (its retry cancelled, the answer of a call in flight ignored),
// after which compensation of the steps it held back goes on.
//
// Attempts (docs/schema.md "Attempts and retries"): a step's `attempts`
// counts its action attempts, each once, when it is planned. A retry (action
// or compensation) is logged as planned (next_attempt_at_ms = when) and,
// when its timer fires, as sent (next_attempt_at_ms = 0) before the call
// goes out.
//
// Calls, retry timers, operator retry-now and the recovery of logged
// attempts go through TxnDriver's branch calls (txn_driver.h); this class
// holds only the transitions above.
//
// Recovery (restart, takeover by a peer, hand-back on SIGTERM: all restore
// from the log): Restore() rebuilds the driver; Start() then
//  - compensates at once if the saga deadline (absolute) passed meanwhile;
//  - sends a planned attempt after the rest of its backoff (its logged time),
//    as that same attempt;
//  - resends an attempt logged as sent whose outcome was not logged, as the
//    same attempt (no attempt is used up by a restart; the participant's
//    Idempotency-Key makes the resend harmless);
//  - keeps a planned compensation's backoff where it was (its level is read
//    back from the logged delay: next_attempt_at_ms - updated_at_ms); one
//    whose call was in flight starts its backoff over.
//
// Threading: runs on ctx->runner only, asserted (txn_driver.h).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/participant_caller.h"
#include "engine/saga_spec.h"
#include "engine/txn_driver.h"
#include "store/records.h"

namespace treaty {

class Saga : public TxnDriver {
 public:
  // A new submission: the create write is the first thing Start() sends.
  // `spec.gtid` must be set.
  static std::shared_ptr<Saga> Create(EngineContext* ctx, SagaSpec spec);
  // A saga read back from the log (branches in idx order).
  static Result<std::shared_ptr<Saga>> Restore(EngineContext* ctx, const TxnDetail& detail);

  void Start() override;
  // Conflict unless RUNNING (a COMPENSATING saga is already undoing: resolve
  // its stuck step or wait).
  Status ForceAbort(const OperatorRequest& who) override;

 protected:
  void CancelTimers() override;
  ParticipantRequest CallRequest(int i, BranchOp op) override;
  void OnCallResult(int i, BranchOp op, const ParticipantResponse& r) override;
  bool RetryStillDue(int i, BranchOp op) const override;
  std::optional<int> AttemptOfCall(int i, BranchOp op) const override;
  bool SendStillWanted(BranchOp op) const override;
  void OnOperatorRetry(int i) override;
  const std::string& BranchName(int i) const override { return steps_[i].spec.name; }
  int BranchCount() const override { return static_cast<int>(steps_.size()); }
  const char* TxnNoun() const override { return "saga"; }
  const char* BranchNoun() const override { return "step"; }
  // Resolve (TxnDriver): "COMPENSATED" for a COMPENSATING step of a
  // COMPENSATING saga (even one whose compensation cannot be called);
  // compensation then goes on.
  Status CheckResolve(int i, BranchState outcome) const override;
  int MarkResolved(int i, BranchState outcome) override;

 private:
  struct Step {
    SagaStep spec;
    std::vector<int> deps;
    std::vector<int> dependents;
    BranchState state = BranchState::kPending;
    int attempts = 0;            // action attempts, as logged
    int comp_failures = 0;       // failed compensations since an operator retry
    int64_t planned_at_ms = 0;   // restored: attempt `attempts` not sent before
    bool uncallable = false;     // its compensate URL can never be called (in memory)
    bool maybe_started = false;  // restored PENDING, may have started (MarkMaybeStarted)
    std::string last_error;
    bool Attempted() const;
  };

  Saga(EngineContext* ctx, SagaSpec spec);
  void Pump() override;
  void PumpForward();
  void PumpCompensation();
  void BeginCompensation(const std::string& reason);
  void SetStep(int i, BranchState state, const std::string& detail);
  void OnActionResult(int i, const ParticipantResponse& r);
  void OnCompensateResult(int i, const ParticipantResponse& r);
  // A restored saga: picks every step's call up where the log left it.
  void ResumeSteps();
  // Restore: flags the steps of a RUNNING saga that may have started with
  // their progress written behind (see above).
  void MarkMaybeStarted();

  SagaSpec spec_;
  std::vector<Step> steps_;
  int64_t deadline_ms_ = 0;
  bool is_new_ = false;
  std::shared_ptr<TaskRunner::Timer> deadline_timer_;
};

}  // namespace treaty
