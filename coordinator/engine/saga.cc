#include "engine/saga.h"

#include <optional>

#include <spdlog/spdlog.h>

#include "engine/states.h"

namespace treaty {

bool Saga::Step::Attempted() const {
  return state == states::kRunning || state == states::kSucceeded || state == states::kFailed ||
         state == states::kCompensating;
}

Saga::Saga(EngineContext* ctx, SagaSpec spec)
    : TxnDriver(ctx, spec.gtid, states::kSaga), spec_(std::move(spec)) {
  steps_.resize(spec_.steps.size());
  for (size_t i = 0; i < spec_.steps.size(); ++i) {
    steps_[i].spec = spec_.steps[i];
    steps_[i].state = states::kPending;
    steps_[i].deps = StepDependencies(spec_, i);
    for (int d : steps_[i].deps) steps_[d].dependents.push_back(static_cast<int>(i));
  }
}

std::shared_ptr<Saga> Saga::Create(EngineContext* ctx, SagaSpec spec) {
  std::shared_ptr<Saga> saga(new Saga(ctx, std::move(spec)));
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
  saga->SetState(states::kRunning, "");
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
  std::shared_ptr<Saga> saga(new Saga(ctx, std::move(*spec)));
  saga->RestoreState(detail.txn.state);
  saga->spec_json_ = detail.txn.spec;
  saga->deadline_ms_ = detail.txn.deadline_ms;
  saga->needs_attention_ = detail.txn.needs_attention;
  for (const auto& b : detail.branches) {
    for (auto& s : saga->steps_) {
      if (s.spec.name != b.name) continue;
      s.state = b.state;
      s.attempts = b.attempts;
      s.last_error = b.last_error;
      s.planned_at_ms = b.next_attempt_at_ms;
      if (s.state == states::kCompensating && b.next_attempt_at_ms > 0) {
        const auto& o = ctx->options;
        s.comp_failures =
            EngineContext::BackoffLevel(b.next_attempt_at_ms - b.updated_at_ms,
                                        o.retry_initial_backoff_ms, o.retry_max_backoff_ms);
      }
    }
  }
  return saga;
}

void Saga::Start() {
  if (!is_new_) {
    spdlog::info("gtid={} resuming saga in state {}", gtid(), state());
    Event("", "recovery", "resumed by coordinator " + ctx()->owner + " in state " + state());
  }
  if (deadline_ms_ > 0 && state() == states::kRunning) {
    if (deadline_ms_ <= ctx()->runner->NowMs()) {
      BeginCompensation("saga deadline passed");  // while this saga was not driven
    } else {
      deadline_timer_ = After(deadline_ms_ - ctx()->runner->NowMs(), [this] {
        if (state() != states::kRunning) return;
        BeginCompensation("saga deadline passed");
        Pump();
      });
    }
  }
  if (!is_new_) ResumeSteps();
  Pump();
}

void Saga::ResumeSteps() {
  for (size_t i = 0; i < steps_.size(); ++i) {
    Step& s = steps_[i];
    const bool action = state() == states::kRunning && s.state == states::kRunning;
    const bool compensate = state() == states::kCompensating && s.state == states::kCompensating;
    if (!action && !compensate) continue;
    const std::string op = action ? "action" : "compensate";
    const std::string attempt =
        action ? "action attempt " + std::to_string(s.attempts) : "compensation";
    if (s.planned_at_ms > 0) {
      const int64_t max =
          action ? s.spec.retry.max_backoff_ms : ctx()->options.retry_max_backoff_ms;
      const int64_t wait = RemainingWait(s.planned_at_ms, max);
      Event(s.spec.name, "recovery",
            attempt + " was planned, not sent; sending it in " + std::to_string(wait) + " ms");
      ScheduleRetry(static_cast<int>(i), op, wait);
    } else {
      // Pump sends it again: the same attempt, whose outcome was not logged.
      Event(s.spec.name, "recovery", attempt + " was sent, its outcome not logged; resending it");
    }
    s.planned_at_ms = 0;
  }
}

void Saga::Pump() {
  if (dropped() || finished()) return;
  if (state() == states::kRunning) PumpForward();
  if (state() == states::kCompensating) PumpCompensation();
  Flush();
}

void Saga::PumpForward() {
  bool all_succeeded = true;
  for (size_t i = 0; i < steps_.size(); ++i) {
    if (steps_[i].state == states::kFailed) {
      BeginCompensation("step '" + steps_[i].spec.name + "' failed: " + steps_[i].last_error);
      return;
    }
    if (steps_[i].state != states::kSucceeded) all_succeeded = false;
  }
  if (all_succeeded) {
    SetState(states::kCommitted, "every step succeeded");
    return;
  }
  for (size_t i = 0; i < steps_.size(); ++i) {
    Step& s = steps_[i];
    if (s.in_flight || s.timer) continue;
    if (s.state == states::kPending) {
      bool ready = true;
      for (int d : s.deps) ready = ready && steps_[d].state == states::kSucceeded;
      if (!ready) continue;
      s.attempts = 1;
      SetStep(static_cast<int>(i), states::kRunning, "attempt 1");
      Launch(static_cast<int>(i), "action");
    } else if (s.state == states::kRunning) {
      // Restored with its attempt sent and the outcome not logged: send that
      // same attempt again (it was counted when it was planned).
      Launch(static_cast<int>(i), "action");
    }
  }
}

void Saga::BeginCompensation(const std::string& reason) {
  if (state() != states::kRunning) return;
  spdlog::info("gtid={} compensating: {}", gtid(), reason);
  SetState(states::kCompensating, reason);
  if (deadline_timer_) deadline_timer_->Cancel();
  // Pending action retries are abandoned: those steps are compensated.
  for (auto& s : steps_) {
    if (s.timer && s.state == states::kRunning) {
      s.timer->Cancel();
      s.timer.reset();
    }
  }
}

void Saga::PumpCompensation() {
  bool done = true;
  for (size_t i = 0; i < steps_.size(); ++i) {
    Step& s = steps_[i];
    if (!s.Attempted()) continue;
    done = false;
    if (s.in_flight || s.timer || s.uncallable) continue;
    bool ready = true;
    for (int d : s.dependents) {
      const Step& dependent = steps_[d];
      // A dependent whose compensation can never be called waits for an
      // operator; it does not hold this step's compensation back.
      ready = ready && (!dependent.Attempted() || dependent.state == states::kCompensated ||
                        dependent.uncallable);
    }
    if (!ready) continue;
    if (s.state != states::kCompensating) {
      s.comp_failures = 0;
      SetStep(static_cast<int>(i), states::kCompensating, "compensating");
    }
    Launch(static_cast<int>(i), "compensate");
  }
  if (done) SetState(states::kAborted, "every attempted step compensated");
}

void Saga::SetStep(int i, const std::string& state, const std::string& detail) {
  Step& s = steps_[i];
  s.state = state;
  RecordBranchState(s.spec.name, state, s.attempts, s.last_error, "step", detail);
}

void Saga::Launch(int i, const std::string& op) {
  Step& s = steps_[i];
  s.in_flight = true;
  ParticipantRequest req;
  req.url = op == "action" ? s.spec.action : s.spec.compensate;
  req.gtid = gtid();
  req.branch = s.spec.name;
  req.op = op;
  req.payload_json = s.spec.payload;
  req.timeout_ms =
      s.spec.timeout_ms > 0 ? s.spec.timeout_ms : ctx()->options.default_call_timeout_ms;
  // An action planned while the saga ran is not sent once it compensates
  // (deadline, a failed step, an operator abort while its write waited).
  std::function<bool()> still_wanted;
  if (op == "action") still_wanted = [this] { return state() == states::kRunning; };
  CallWhenDurable(
      std::move(req),
      [this, i, op](const ParticipantResponse& r) {
        steps_[i].in_flight = false;
        if (op == "action") {
          OnActionResult(i, r);
        } else {
          OnCompensateResult(i, r);
        }
      },
      std::move(still_wanted));
}

void Saga::OnActionResult(int i, const ParticipantResponse& r) {
  Step& s = steps_[i];
  if (r.outcome == CallOutcome::kOk) {
    s.last_error.clear();
    SetStep(i, states::kSucceeded, "action " + DescribeResponse(r));
    return;
  }
  s.last_error = DescribeResponse(r);
  if (state() != states::kRunning) {
    // Compensation began meanwhile: no more attempts; the step will be compensated.
    Event(s.spec.name, "call", "action " + s.last_error + " (saga is compensating)");
    return;
  }
  if (r.outcome == CallOutcome::kBusinessFailure || r.outcome == CallOutcome::kUncallable) {
    SetStep(i, states::kFailed, "action " + s.last_error);
    return;
  }
  if (s.attempts >= s.spec.retry.max_attempts) {
    SetStep(i, states::kFailed,
            "action " + s.last_error + "; " + std::to_string(s.attempts) + " attempts used");
    return;
  }
  int64_t delay =
      ctx()->Backoff(s.attempts, s.spec.retry.initial_backoff_ms, s.spec.retry.max_backoff_ms);
  ++s.attempts;
  RecordRetry(s.spec.name, s.attempts, s.last_error, delay,
              "action " + s.last_error + "; attempt " + std::to_string(s.attempts) + " in " +
                  std::to_string(delay) + " ms");
  ScheduleRetry(i, "action", delay);
}

void Saga::OnCompensateResult(int i, const ParticipantResponse& r) {
  Step& s = steps_[i];
  if (r.outcome == CallOutcome::kOk) {
    s.last_error.clear();
    SetStep(i, states::kCompensated, "compensate " + DescribeResponse(r));
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
  int64_t delay =
      ctx()->Backoff(s.comp_failures, o.retry_initial_backoff_ms, o.retry_max_backoff_ms);
  RecordRetry(s.spec.name, std::nullopt, s.last_error, delay,
              "compensate " + s.last_error + "; failed " + std::to_string(s.comp_failures) +
                  " times, next try in " + std::to_string(delay) + " ms");
  if (s.comp_failures >= o.attention_after_attempts) {
    SetNeedsAttention(true, "compensation of step '" + s.spec.name + "' failed " +
                                std::to_string(s.comp_failures) + " times: " + s.last_error);
  }
  ScheduleRetry(i, "compensate", delay);
}

void Saga::ScheduleRetry(int i, const std::string& op, int64_t delay_ms) {
  steps_[i].timer = After(delay_ms, [this, i, op] {
    Step& s = steps_[i];
    if (!s.timer) return;  // cancelled
    s.timer.reset();
    const bool still =
        op == "action" ? state() == states::kRunning : s.state == states::kCompensating;
    if (still) {
      RecordAttemptSent(s.spec.name,
                        op == "action" ? std::optional<int>(s.attempts) : std::nullopt);
      Launch(i, op);
    }
    Pump();
  });
}

Status Saga::RetryNow() {
  if (finished()) return Status::Conflict("saga " + gtid() + " is already " + state());
  int fired = 0;
  for (size_t i = 0; i < steps_.size(); ++i) {
    Step& s = steps_[i];
    if (!s.timer) continue;
    s.timer->Cancel();
    s.timer.reset();
    s.comp_failures = 0;
    const std::string op = s.state == states::kCompensating ? "compensate" : "action";
    if (op == "action" && state() != states::kRunning) continue;
    RecordAttemptSent(s.spec.name, op == "action" ? std::optional<int>(s.attempts) : std::nullopt);
    Launch(static_cast<int>(i), op);
    ++fired;
  }
  Event("", "operator", "retry now (" + std::to_string(fired) + " calls resent)");
  Pump();
  return Status::Ok();
}

Status Saga::ForceAbort(const std::string& reason) {
  if (state() == states::kCommitted) {
    return Status::Conflict("saga " + gtid() + " is already COMMITTED; it cannot be aborted");
  }
  if (state() == states::kRunning) {
    Event("", "operator", "force abort: " + reason);
    BeginCompensation(reason);
  }
  Pump();
  return Status::Ok();
}

void Saga::CancelTimers() {
  if (deadline_timer_) deadline_timer_->Cancel();
  for (auto& s : steps_) {
    if (s.timer) s.timer->Cancel();
    s.timer.reset();
  }
}

}  // namespace treaty
