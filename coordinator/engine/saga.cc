#include "engine/saga.h"

#include <optional>

#include <spdlog/spdlog.h>

#include "engine/states.h"

namespace treaty {

bool Saga::Step::Attempted() const {
  return state == BranchState::kRunning || state == BranchState::kSucceeded ||
         state == BranchState::kFailed || state == BranchState::kCompensating ||
         (state == BranchState::kPending && maybe_started);
}

Saga::Saga(EngineContext* ctx, SagaSpec spec)
    : TxnDriver(ctx, spec.gtid, TxnKind::kSaga), spec_(std::move(spec)) {
  steps_.resize(spec_.steps.size());
  for (size_t i = 0; i < spec_.steps.size(); ++i) {
    steps_[i].spec = spec_.steps[i];
    steps_[i].state = BranchState::kPending;
    steps_[i].deps = StepDependencies(spec_, i);
    for (int d : steps_[i].deps) steps_[d].dependents.push_back(static_cast<int>(i));
  }
}

std::shared_ptr<Saga> Saga::Create(EngineContext* ctx, SagaSpec spec) {
  if (spec.trace.empty()) spec.trace.trace_id = NewTraceId(ctx->rng);  // no caller's trace
  std::shared_ptr<Saga> saga(new Saga(ctx, std::move(spec)));
  saga->trace_ = saga->spec_.trace;
  saga->is_new_ = true;
  const int64_t now = ctx->runner->NowMs();
  TxnRow row;
  row.gtid = saga->gtid();
  row.kind = states::kSaga;
  row.state = states::kRunning;
  row.spec = ToJson(saga->spec_).dump();
  saga->spec_json_ = row.spec;
  row.deadline_ms = saga->spec_.timeout_ms > 0 ? now + saga->spec_.timeout_ms : 0;
  row.created_at_ms = now;
  row.updated_at_ms = now;
  saga->deadline_ms_ = row.deadline_ms;
  TxnWrite& w = saga->Pending();
  w.create = row;
  for (size_t i = 0; i < saga->steps_.size(); ++i) {
    BranchRow b;
    b.gtid = row.gtid;
    b.name = saga->steps_[i].spec.name;
    b.idx = static_cast<int>(i);
    b.state = states::kPending;
    b.updated_at_ms = now;
    w.new_branches.push_back(std::move(b));
  }
  saga->SetState(TxnState::kRunning, "");
  saga->Event("", "state",
              "RUNNING: saga submitted with " + std::to_string(saga->steps_.size()) + " steps");
  return saga;
}

Result<std::shared_ptr<Saga>> Saga::Restore(EngineContext* ctx, const TxnDetail& detail) {
  nlohmann::json body = nlohmann::json::parse(detail.txn.spec, nullptr, false);
  if (body.is_discarded()) return Status::Internal("stored saga spec is not JSON");
  SpecLimits stored;
  stored.stored = true;  // an older release's log may hold names/URLs today's rules refuse
  auto spec = ParseSagaSpec(body, stored);
  if (!spec.ok())
    return Status::Internal("stored saga spec is invalid: " + spec.status().message());
  spec->gtid = detail.txn.gtid;
  const auto state = ParseTxnState(detail.txn.state);
  if (!state) return Status::Internal("stored saga state '" + detail.txn.state + "' is unknown");
  if (spec->trace.empty()) spec->trace.trace_id = DerivedTraceId(detail.txn.gtid);  // older log
  std::shared_ptr<Saga> saga(new Saga(ctx, std::move(*spec)));
  saga->trace_ = saga->spec_.trace;
  saga->RestoreState(*state);
  saga->spec_json_ = detail.txn.spec;
  saga->deadline_ms_ = detail.txn.deadline_ms;
  saga->needs_attention_ = detail.txn.needs_attention;
  saga->paused_ = detail.txn.paused;  // its calls stay held until Resume
  for (const auto& b : detail.branches) {
    for (auto& s : saga->steps_) {
      if (s.spec.name != b.name) continue;
      const auto step_state = ParseBranchState(b.state);
      if (!step_state) {
        return Status::Internal("stored step '" + b.name + "' has an unknown state '" + b.state +
                                "'");
      }
      s.state = *step_state;
      s.attempts = b.attempts;
      s.last_error = b.last_error;
      s.planned_at_ms = b.next_attempt_at_ms;
      if (s.state == BranchState::kCompensating && b.next_attempt_at_ms > 0) {
        const auto& o = ctx->options;
        s.comp_failures =
            EngineContext::BackoffLevel(b.next_attempt_at_ms - b.updated_at_ms,
                                        o.retry_initial_backoff_ms, o.retry_max_backoff_ms);
      }
    }
  }
  saga->MarkMaybeStarted();
  return saga;
}

void Saga::MarkMaybeStarted() {
  if (state() != TxnState::kRunning) return;  // a decision's write carried all progress
  // Every dependency chain of a PENDING step leads to steps the create
  // logged RUNNING, and any of them may have succeeded, unlogged, and let
  // the chain start; the log cannot say how far it went. A step without
  // dependencies started in the create write if at all.
  for (Step& s : steps_) {
    s.maybe_started = s.state == BranchState::kPending && !s.deps.empty();
  }
}

void Saga::Start() {
  TREATY_ASSERT_ON(*ctx()->runner);
  if (!is_new_) {
    spdlog::info("gtid={} resuming saga in state {}", gtid(), state_name());
    std::string maybe;
    for (const Step& s : steps_) {
      if (s.maybe_started) maybe += (maybe.empty() ? "'" : ", '") + s.spec.name + "'";
    }
    Event("", "recovery",
          "resumed by coordinator " + ctx()->owner + " in state " + state_name() +
              (maybe.empty() ? ""
                             : "; logged PENDING but may have started (progress written "
                               "behind), so compensated should the saga abort: " +
                                   maybe));
  }
  if (deadline_ms_ > 0 && state() == TxnState::kRunning) {
    if (deadline_ms_ <= ctx()->runner->NowMs()) {
      BeginCompensation("saga deadline passed");  // while this saga was not driven
    } else {
      deadline_timer_ = After(deadline_ms_ - ctx()->runner->NowMs(), [this] {
        if (state() != TxnState::kRunning) return;
        BeginCompensation("saga deadline passed");
        Pump();
      });
    }
  }
  if (!is_new_ && state() == TxnState::kCompensating) WatchDeadline(deadline_ms_);
  if (!is_new_) ResumeSteps();
  Pump();
}

void Saga::ResumeSteps() {
  TREATY_ASSERT_ON(*ctx()->runner);
  for (size_t i = 0; i < steps_.size(); ++i) {
    Step& s = steps_[i];
    const bool action = state() == TxnState::kRunning && s.state == BranchState::kRunning;
    const bool compensate =
        state() == TxnState::kCompensating && s.state == BranchState::kCompensating;
    if (!action && !compensate) continue;
    const std::string attempt =
        action ? "action attempt " + std::to_string(s.attempts) : "compensation";
    const int64_t max = action ? s.spec.retry.max_backoff_ms : ctx()->options.retry_max_backoff_ms;
    ResumeRestoredCall(static_cast<int>(i), action ? BranchOp::kAction : BranchOp::kCompensate,
                       s.spec.name, attempt, s.planned_at_ms, max);
    s.planned_at_ms = 0;
  }
}

void Saga::Pump() {
  TREATY_ASSERT_ON(*ctx()->runner);
  if (dropped() || finished()) return;
  if (state() == TxnState::kRunning) PumpForward();
  if (state() == TxnState::kCompensating) PumpCompensation();
  Flush();
}

void Saga::PumpForward() {
  TREATY_ASSERT_ON(*ctx()->runner);
  bool all_succeeded = true;
  for (size_t i = 0; i < steps_.size(); ++i) {
    if (steps_[i].state == BranchState::kFailed) {
      BeginCompensation("step '" + steps_[i].spec.name + "' failed: " + steps_[i].last_error);
      return;
    }
    if (steps_[i].state != BranchState::kSucceeded) all_succeeded = false;
  }
  if (all_succeeded) {
    SetState(TxnState::kCommitted, "every step succeeded");
    return;
  }
  for (size_t n = 0; n < steps_.size(); ++n) {
    const int i = static_cast<int>(n);
    Step& s = steps_[n];
    if (call_in_flight(i) || retry_scheduled(i)) continue;
    if (s.state == BranchState::kPending) {
      if (paused()) continue;  // no step starts while paused (Resume pumps again)
      bool ready = true;
      for (int d : s.deps) ready = ready && steps_[d].state == BranchState::kSucceeded;
      if (!ready) continue;
      s.attempts = 1;
      SetStep(i, BranchState::kRunning, "attempt 1");
      LaunchCall(i, BranchOp::kAction, /*ahead=*/true);  // written behind (txn_driver.h)
    } else if (s.state == BranchState::kRunning) {
      // Restored with its attempt sent and the outcome not logged: send that
      // same attempt again (it was counted when it was planned).
      LaunchCall(i, BranchOp::kAction);
    }
  }
}

void Saga::BeginCompensation(const std::string& reason) {
  TREATY_ASSERT_ON(*ctx()->runner);
  if (state() != TxnState::kRunning) return;
  spdlog::info("gtid={} compensating: {}", gtid(), reason);
  SetState(TxnState::kCompensating, reason);
  if (deadline_timer_) deadline_timer_->Cancel();
  WatchDeadline(deadline_ms_);
  for (size_t n = 0; n < steps_.size(); ++n) {
    const int i = static_cast<int>(n);
    Step& s = steps_[n];
    // Pending action retries are abandoned: those steps are compensated.
    if (s.state == BranchState::kRunning) CancelRetry(i);
    // Steps that may have started (restored, MarkMaybeStarted) are logged
    // RUNNING with the decision: a coordinator that restores the saga
    // COMPENSATING later must compensate them too.
    if (s.state == BranchState::kPending && s.maybe_started) {
      SetStep(i, BranchState::kRunning,
              "may have started (its progress was written behind before a crash): compensated");
    }
  }
}

void Saga::PumpCompensation() {
  TREATY_ASSERT_ON(*ctx()->runner);
  bool done = true;
  for (size_t n = 0; n < steps_.size(); ++n) {
    const int i = static_cast<int>(n);
    Step& s = steps_[n];
    if (!s.Attempted()) continue;
    done = false;
    if (call_in_flight(i) || retry_scheduled(i) || s.uncallable) continue;
    bool ready = true;
    for (int d : s.dependents) {
      const Step& dependent = steps_[d];
      // A dependent whose compensation can never be called waits for an
      // operator; it does not hold this step's compensation back.
      ready = ready && (!dependent.Attempted() || dependent.state == BranchState::kCompensated ||
                        dependent.uncallable);
    }
    if (!ready) continue;
    if (s.state != BranchState::kCompensating) {
      s.comp_failures = 0;
      SetStep(i, BranchState::kCompensating, "compensating");
    }
    LaunchCall(i, BranchOp::kCompensate);
  }
  if (done) SetState(TxnState::kAborted, "every attempted step compensated");
}

void Saga::SetStep(int i, BranchState state, const std::string& detail) {
  TREATY_ASSERT_ON(*ctx()->runner);
  Step& s = steps_[i];
  s.state = state;
  RecordBranchState(s.spec.name, state, s.attempts, s.last_error, "step", detail);
}

ParticipantRequest Saga::CallRequest(int i, BranchOp op) {
  TREATY_ASSERT_ON(*ctx()->runner);
  const Step& s = steps_[i];
  ParticipantRequest req;
  req.url = op == BranchOp::kAction ? s.spec.action : s.spec.compensate;
  req.gtid = gtid();
  req.branch = s.spec.name;
  req.payload_json = s.spec.payload;
  req.timeout_ms =
      s.spec.timeout_ms > 0 ? s.spec.timeout_ms : ctx()->options.default_call_timeout_ms;
  return req;
}

// An action planned while the saga ran is not sent once it compensates
// (deadline, a failed step, an operator abort while its write waited).
bool Saga::SendStillWanted(BranchOp op) const {
  return op != BranchOp::kAction || state() == TxnState::kRunning;
}

void Saga::OnCallResult(int i, BranchOp op, const ParticipantResponse& r) {
  TREATY_ASSERT_ON(*ctx()->runner);
  if (op == BranchOp::kAction) {
    OnActionResult(i, r);
  } else {
    OnCompensateResult(i, r);
  }
}

bool Saga::RetryStillDue(int i, BranchOp op) const {
  return op == BranchOp::kAction ? state() == TxnState::kRunning
                                 : steps_[i].state == BranchState::kCompensating;
}

std::optional<int> Saga::AttemptOfCall(int i, BranchOp op) const {
  if (op == BranchOp::kAction) return steps_[i].attempts;
  return std::nullopt;  // compensations are not counted
}

void Saga::OnOperatorRetry(int i) { steps_[i].comp_failures = 0; }

void Saga::OnActionResult(int i, const ParticipantResponse& r) {
  TREATY_ASSERT_ON(*ctx()->runner);
  Step& s = steps_[i];
  if (r.outcome == CallOutcome::kOk) {
    s.last_error.clear();
    SetStep(i, BranchState::kSucceeded, "action " + DescribeResponse(r));
    return;
  }
  s.last_error = DescribeResponse(r);
  if (state() != TxnState::kRunning) {
    // Compensation began meanwhile: no more attempts; the step will be compensated.
    NoteCallFailed(s.last_error);
    Event(s.spec.name, "call", "action " + s.last_error + " (saga is compensating)");
    return;
  }
  if (r.outcome == CallOutcome::kBusinessFailure || r.outcome == CallOutcome::kUncallable) {
    SetStep(i, BranchState::kFailed, "action " + s.last_error);
    return;
  }
  if (s.attempts >= s.spec.retry.max_attempts) {
    SetStep(i, BranchState::kFailed,
            "action " + s.last_error + "; " + std::to_string(s.attempts) + " attempts used");
    return;
  }
  const int failed = s.attempts;
  const int64_t delay = r.config_error ? s.spec.retry.max_backoff_ms
                                       : ctx()->Backoff(s.attempts, s.spec.retry.initial_backoff_ms,
                                                        s.spec.retry.max_backoff_ms);
  ++s.attempts;
  RecordRetry(s.spec.name, s.attempts, s.last_error, delay,
              "action " + s.last_error + "; failed " + std::to_string(failed) + " times, attempt " +
                  std::to_string(s.attempts) + " in " + std::to_string(delay) + " ms");
  if (r.config_error) {
    FlagConfigError("step", s.spec.name, BranchOp::kAction, s.last_error, delay);
  } else if (failed >= ctx()->options.attention_after_attempts) {
    SetNeedsAttention(true, "action of step '" + s.spec.name + "' failed " +
                                std::to_string(failed) + " times: " + s.last_error);
  }
  ScheduleRetry(i, BranchOp::kAction, delay);
}

void Saga::OnCompensateResult(int i, const ParticipantResponse& r) {
  TREATY_ASSERT_ON(*ctx()->runner);
  Step& s = steps_[i];
  if (r.outcome == CallOutcome::kOk) {
    s.last_error.clear();
    SetStep(i, BranchState::kCompensated, "compensate " + DescribeResponse(r));
    return;
  }
  s.last_error = DescribeResponse(r);
  if (r.outcome == CallOutcome::kUncallable) {
    // Retrying cannot help: the URL is in the spec. Flag it for an operator.
    s.uncallable = true;
    RecordBranchState(s.spec.name, s.state, s.attempts, s.last_error, "step",
                      "compensate " + s.last_error + "; not retried");
    SetNeedsAttention(
        true, "compensation of step '" + s.spec.name + "' cannot be called: " + s.last_error);
    return;
  }
  ++s.comp_failures;
  const auto& o = ctx()->options;
  const int64_t delay = r.config_error ? o.retry_max_backoff_ms
                                       : ctx()->Backoff(s.comp_failures, o.retry_initial_backoff_ms,
                                                        o.retry_max_backoff_ms);
  RecordRetry(s.spec.name, std::nullopt, s.last_error, delay,
              "compensate " + s.last_error + "; failed " + std::to_string(s.comp_failures) +
                  " times, next try in " + std::to_string(delay) + " ms");
  if (r.config_error) {
    FlagConfigError("step", s.spec.name, BranchOp::kCompensate, s.last_error, delay);
  } else if (s.comp_failures >= o.attention_after_attempts) {
    SetNeedsAttention(true, "compensation of step '" + s.spec.name + "' failed " +
                                std::to_string(s.comp_failures) + " times: " + s.last_error);
  }
  ScheduleRetry(i, BranchOp::kCompensate, delay);
}

Status Saga::ForceAbort(const OperatorRequest& who) {
  TREATY_ASSERT_ON(*ctx()->runner);
  if (finished() || IsTerminal(state())) {
    return Status::Conflict("saga " + gtid() + " is already " + state_name() +
                            "; it cannot be aborted");
  }
  if (state() == TxnState::kCompensating) {
    return Status::Conflict("saga " + gtid() +
                            " is already compensating; the abort is under way (resolve the "
                            "stuck step or wait)");
  }
  Event("", "operator", OperatorDetail("force abort", who));
  BeginCompensation("operator abort by " + who.actor +
                    (who.reason.empty() ? "" : ": " + who.reason));
  Pump();
  return Status::Ok();
}

Status Saga::CheckResolve(int i, BranchState outcome) const {
  const Step& s = steps_[i];
  if (outcome != BranchState::kCompensated || state() != TxnState::kCompensating ||
      s.state != BranchState::kCompensating) {
    return Status::Conflict("step '" + s.spec.name + "' is " + ToString(s.state) + " in a " +
                            state_name() + " saga; only a COMPENSATING step of a COMPENSATING " +
                            "saga can be resolved, and only as COMPENSATED");
  }
  return Status::Ok();
}

int Saga::MarkResolved(int i, BranchState outcome) {
  TREATY_ASSERT_ON(*ctx()->runner);
  Step& s = steps_[i];
  s.uncallable = false;
  s.state = outcome;
  s.last_error.clear();
  return s.attempts;
}

void Saga::CancelTimers() {
  TREATY_ASSERT_ON(*ctx()->runner);
  if (deadline_timer_) deadline_timer_->Cancel();
  CancelRetries();
}

}  // namespace treaty
