// TwoPhase's participant calls: the request of each op and what its
// answer does (votes, phase-2 acknowledgements, retries). See two_phase.h.

#include "engine/states.h"
#include "engine/two_phase.h"

namespace treaty {

ParticipantRequest TwoPhase::CallRequest(int i, BranchOp op) {
  TREATY_ASSERT_ON(*ctx()->runner);
  const Branch& b = branches_[i];
  ParticipantRequest req;
  req.url = op == BranchOp::kPrepare  ? b.spec.prepare
            : op == BranchOp::kCommit ? b.spec.commit
                                      : b.spec.abort;
  req.gtid = gtid();
  req.branch = b.spec.name;
  req.payload_json = b.spec.payload;
  req.one_phase = op == BranchOp::kCommit && OnePhase();
  req.timeout_ms =
      b.spec.timeout_ms > 0 ? b.spec.timeout_ms : ctx()->options.default_call_timeout_ms;
  // LaunchCall sends it only once everything planned so far is durable: for
  // commit, that includes the COMMITTING decision.
  return req;
}

void TwoPhase::OnCallResult(int i, BranchOp op, const ParticipantResponse& r) {
  TREATY_ASSERT_ON(*ctx()->runner);
  if (op == BranchOp::kPrepare) {
    OnPrepareResult(i, r);
  } else {
    OnPhaseTwoResult(i, op, r);
  }
}

bool TwoPhase::RetryStillDue(int, BranchOp op) const {
  switch (op) {
    case BranchOp::kPrepare:
      return state() == TxnState::kPreparing;
    case BranchOp::kCommit:
      return state() == TxnState::kCommitting;
    default:
      return state() == TxnState::kAborting;
  }
}

std::optional<int> TwoPhase::AttemptOfCall(int i, BranchOp) const { return branches_[i].attempts; }

void TwoPhase::OnOperatorRetry(int i) { branches_[i].failures = 0; }

void TwoPhase::OnPrepareResult(int i, const ParticipantResponse& r) {
  TREATY_ASSERT_ON(*ctx()->runner);
  Branch& b = branches_[i];
  if (state() != TxnState::kPreparing) {
    // Abort was decided meanwhile; Pump sends this branch its abort now.
    if (r.outcome != CallOutcome::kOk) NoteCallFailed(DescribeResponse(r));
    Event(b.spec.name, "call",
          "prepare " + DescribeResponse(r) + " (transaction is " + state_name() + ")");
    return;
  }
  if (r.outcome == CallOutcome::kOk) {
    b.last_error.clear();
    SetBranch(i, r.readonly_vote ? BranchState::kReadOnly : BranchState::kPrepared,
              std::string("voted ") + (r.readonly_vote ? "read-only" : "yes"));
    return;
  }
  b.last_error = DescribeResponse(r);
  if (r.outcome == CallOutcome::kBusinessFailure || r.outcome == CallOutcome::kUncallable) {
    b.voted_no = true;
    Event(b.spec.name, "vote", "voted no: " + b.last_error);
    return;
  }
  if (b.attempts >= spec_.prepare_retry.max_attempts) {
    b.voted_no = true;
    Event(b.spec.name, "vote",
          "prepare failed after " + std::to_string(b.attempts) + " attempts: " + b.last_error +
              " (counts as no)");
    return;
  }
  const int64_t delay = r.config_error
                            ? spec_.prepare_retry.max_backoff_ms
                            : ctx()->Backoff(b.attempts, spec_.prepare_retry.initial_backoff_ms,
                                             spec_.prepare_retry.max_backoff_ms);
  ++b.attempts;
  RecordRetry(b.spec.name, b.attempts, b.last_error, delay,
              "prepare " + b.last_error + "; attempt " + std::to_string(b.attempts) + " in " +
                  std::to_string(delay) + " ms");
  if (r.config_error) {
    FlagConfigError("branch", b.spec.name, BranchOp::kPrepare, b.last_error, delay);
  }
  ScheduleRetry(i, BranchOp::kPrepare, delay);
}

void TwoPhase::OnPhaseTwoResult(int i, BranchOp call, const ParticipantResponse& r) {
  TREATY_ASSERT_ON(*ctx()->runner);
  Branch& b = branches_[i];
  const std::string op = ToString(call);
  if (r.outcome == CallOutcome::kOk) {
    b.last_error.clear();
    SetBranch(i, call == BranchOp::kCommit ? BranchState::kCommitted : BranchState::kAborted,
              op + " " + DescribeResponse(r));
    return;
  }
  b.last_error = DescribeResponse(r);
  if (call == BranchOp::kCommit && OnePhase() &&
      (r.outcome == CallOutcome::kBusinessFailure || r.outcome == CallOutcome::kUncallable)) {
    // The single participant refused its one-phase commit, or it was never
    // sent: nothing applied.
    SetBranch(i, BranchState::kAborted, "one-phase commit " + b.last_error);
    SetState(TxnState::kAborted, "the single branch refused its one-phase commit");
    return;
  }
  if (r.outcome == CallOutcome::kUncallable) {
    // Retrying cannot help: the URL is in the spec. Flag it for an operator.
    b.uncallable = true;
    RecordBranchState(b.spec.name, b.state, b.attempts, b.last_error, "branch",
                      op + " " + b.last_error + "; not retried");
    SetNeedsAttention(true,
                      op + " of branch '" + b.spec.name + "' cannot be called: " + b.last_error);
    return;
  }
  ++b.failures;
  const auto& o = ctx()->options;
  const int64_t delay = r.config_error ? o.retry_max_backoff_ms
                                       : ctx()->Backoff(b.failures, o.retry_initial_backoff_ms,
                                                        o.retry_max_backoff_ms);
  ++b.attempts;
  RecordRetry(b.spec.name, b.attempts, b.last_error, delay,
              op + " " + b.last_error + "; failed " + std::to_string(b.failures) +
                  " times, next try in " + std::to_string(delay) + " ms");
  if (r.config_error) {
    FlagConfigError("branch", b.spec.name, call, b.last_error, delay);
  } else if (b.failures >= o.attention_after_attempts) {
    SetNeedsAttention(true, op + " of branch '" + b.spec.name + "' failed " +
                                std::to_string(b.failures) + " times: " + b.last_error);
  }
  ScheduleRetry(i, call, delay);
}

}  // namespace treaty
