#include "engine/txn_driver.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/limits.h"
#include "common/text.h"
#include "engine/states.h"

namespace treaty {

int64_t EngineContext::Backoff(int attempt, int64_t initial_ms, int64_t max_ms) {
  int64_t d = initial_ms;
  for (int i = 1; i < attempt && d < max_ms; ++i) d *= 2;
  if (d > max_ms) d = max_ms;
  if (d <= 1) return d;
  std::uniform_int_distribution<int64_t> jitter(d / 2, d);
  return jitter(rng);
}

int EngineContext::BackoffLevel(int64_t delay_ms, int64_t initial_ms, int64_t max_ms) {
  if (initial_ms <= 0) return 1;
  int level = 1;
  for (int64_t d = initial_ms; d < delay_ms && d < max_ms && level < 62; d *= 2) ++level;
  return level;
}

TxnDriver::TxnDriver(EngineContext* ctx, std::string gtid, TxnKind kind)
    : ctx_(ctx), gtid_(std::move(gtid)), kind_(kind) {}

void TxnDriver::MarkPending() {
  if (!has_pending_) pending_since_ms_ = ctx_->runner->MonotonicMs();
  has_pending_ = true;
}

TxnWrite& TxnDriver::Pending() {
  TREATY_ASSERT_ON(*ctx_->runner);
  MarkPending();
  return pending_;
}

void TxnDriver::AfterDurable(std::function<void()> then) {
  TREATY_ASSERT_ON(*ctx_->runner);
  MarkPending();
  pending_then_.push_back(std::move(then));
}

void TxnDriver::Event(const std::string& branch, const std::string& type,
                      const std::string& detail) {
  TREATY_ASSERT_ON(*ctx_->runner);
  EventRow e;
  e.gtid = gtid_;
  e.branch = branch;
  e.type = type;
  e.detail = ToValidUtf8(detail);  // may quote an operator's reason or a participant
  e.at_ms = ctx_->runner->NowMs();
  Pending().events.push_back(std::move(e));
  if (branch.empty()) {
    spdlog::debug("gtid={} {}: {}", gtid_, type, detail);
  } else {
    spdlog::debug("gtid={} branch={} {}: {}", gtid_, branch, type, detail);
  }
}

void TxnDriver::SetState(TxnState state, const std::string& why) {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (has_state_ && state_ == state) return;
  const bool first = !has_state_;
  state_ = state;
  has_state_ = true;
  const std::string name = ToString(state);
  Pending().state = name;
  if (!first) Event("", "state", name + (why.empty() ? "" : ": " + why));
  if (IsTerminal(state)) {
    if (needs_attention_) SetNeedsAttention(false, "");
    Pending().last_error = "";  // a finished transaction shows no error
    if (paused_) {              // nor is it paused: nothing is left to hold
      paused_ = false;
      Pending().paused = false;
    }
    if (deadline_watch_) deadline_watch_->Cancel();
    spdlog::info("gtid={} kind={} finished {}", gtid_, kind_name(), name);
    AfterDurable([this] {
      finished_ = true;
      CancelTimers();
      if (ctx_->observer) ctx_->observer->OnFinished(gtid_, kind_name(), state_name());
    });
  }
}

void TxnDriver::SetNeedsAttention(bool on, const std::string& why) {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (needs_attention_ == on) return;
  needs_attention_ = on;
  Pending().needs_attention = on;
  if (on) {
    spdlog::warn("gtid={} needs attention: {}", gtid_, why);
    Event("", "attention", why);
  }
}

void TxnDriver::NoteCallFailed(const std::string& error) {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (!error.empty()) Pending().last_error = error;
}

void TxnDriver::FlagConfigError(const std::string& noun, const std::string& branch, BranchOp op,
                                const std::string& error, int64_t retry_ms) {
  TREATY_ASSERT_ON(*ctx_->runner);
  SetNeedsAttention(true, std::string(ToString(op)) + " of " + noun + " '" + branch +
                              "' hit a configuration error (fix the participant or its URL): " +
                              error + "; retried every " + std::to_string(retry_ms) + " ms");
}

void TxnDriver::WatchDeadline(int64_t deadline_ms) {
  TREATY_ASSERT_ON(*ctx_->runner);
  const int64_t stuck_after = ctx_->options.stuck_after_ms;
  if (deadline_ms <= 0 || stuck_after <= 0 || IsTerminal(state_)) return;
  const int64_t now = ctx_->runner->NowMs();
  const bool decided_in_time = now < deadline_ms;
  const int64_t flag_at = decided_in_time ? deadline_ms : deadline_ms + stuck_after;
  if (deadline_watch_) deadline_watch_->Cancel();
  deadline_watch_ =
      After(std::max<int64_t>(flag_at - now, 0), [this, decided_in_time, flag_at, deadline_ms] {
        if (finished_ || IsTerminal(state_)) return;
        const std::string name = state_name();
        SetNeedsAttention(true, decided_in_time ? "still " + name + " past its deadline"
                                                : "still " + name + " " +
                                                      std::to_string(flag_at - deadline_ms) +
                                                      " ms past its deadline");
        Pump();
      });
}

std::string TxnDriver::TraceParent() {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (trace_.empty()) trace_.trace_id = DerivedTraceId(gtid_);  // a subclass always sets it
  return FormatTraceParent(trace_, NewSpanId(ctx_->rng));
}

std::string DescribeResponse(const ParticipantResponse& r) {
  std::string s;
  switch (r.outcome) {
    case CallOutcome::kOk:
      s = "ok";
      break;
    case CallOutcome::kBusinessFailure:
      s = "business failure";
      break;
    case CallOutcome::kTransient:
      s = "transient failure";
      break;
    case CallOutcome::kUncallable:
      s = "not callable";
      break;
  }
  if (!r.error.empty()) {
    s += ": " + r.error;  // the caller's text names the HTTP status when there was one
  } else if (r.http_status) {
    s += " (HTTP " + std::to_string(r.http_status) + ")";
  }
  // Stored as last_error and in history: whatever a caller put in `error`,
  // keep it valid UTF-8 without NUL and bounded, cut on a code point.
  return Excerpt(s, limits::kErrorExcerptBytes);
}

std::shared_ptr<TaskRunner::Timer> TxnDriver::After(int64_t delay_ms, std::function<void()> fn) {
  TREATY_ASSERT_ON(*ctx_->runner);
  std::weak_ptr<TxnDriver> weak = shared_from_this();
  return ctx_->runner->PostAfter(delay_ms, [weak, fn = std::move(fn)] {
    auto self = weak.lock();
    if (self && !self->dropped()) fn();
  });
}

bool TxnDriver::MaySendAhead() const {
  const int64_t behind_ms = ctx_->options.write_behind_ms;
  if (behind_ms <= 0 || !created_ || durable_seq_ < 1 || create_outcome_unknown_ || log_failing_ ||
      durable_seq_ < hold_ahead_until_seq_) {
    return false;
  }
  const int64_t now = ctx_->runner->MonotonicMs();
  if (write_in_flight_ && now - in_flight_since_ms_ >= behind_ms) return false;
  if (has_pending_ && now - pending_since_ms_ >= behind_ms) return false;
  return !ctx_->lease_held || ctx_->lease_held(ctx_->owner);
}

void TxnDriver::HoldAheadUntilLogged() {
  TREATY_ASSERT_ON(*ctx_->runner);
  MarkPending();
  hold_ahead_until_seq_ = sent_seq_ + 1;
}

void TxnDriver::CallWhenDurable(ParticipantRequest request,
                                std::function<void(const ParticipantResponse&)> on_result,
                                std::function<bool()> still_wanted, bool ahead) {
  TREATY_ASSERT_ON(*ctx_->runner);
  std::weak_ptr<TxnDriver> weak = shared_from_this();
  auto send = [this, weak, request = std::move(request), on_result = std::move(on_result),
               still_wanted = std::move(still_wanted)]() mutable {
    if (still_wanted && !still_wanted()) {
      ParticipantResponse skipped;
      skipped.outcome = CallOutcome::kTransient;
      skipped.error =
          "not sent: no longer wanted once the log had it (the decision changed or an operator "
          "resolved the branch)";
      on_result(skipped);
      Pump();
      return;
    }
    request.traceparent = TraceParent();
    request.tracestate = trace_.tracestate;
    EngineContext* c = ctx_;
    const std::string op = request.op;
    c->caller->Call(std::move(request), [weak, c, op, on_result](ParticipantResponse r) {
      c->runner->Post([weak, c, op, on_result, r = std::move(r)] {
        auto self = weak.lock();
        if (!self || self->dropped()) return;
        if (c->observer) c->observer->OnCall(op, r.outcome, r.latency_ms);
        on_result(r);
        self->Pump();
      });
    });
  };
  if (ahead && MaySendAhead()) {
    send();
  } else {
    AfterDurable(std::move(send));
  }
}

void TxnDriver::RecordBranchState(const std::string& name, BranchState branch_state, int attempts,
                                  const std::string& last_error, const std::string& event_type,
                                  const std::string& detail) {
  TREATY_ASSERT_ON(*ctx_->runner);
  const std::string state = ToString(branch_state);
  BranchUpdate u;
  u.name = name;
  u.state = state;
  u.attempts = attempts;
  u.last_error = last_error;
  u.next_attempt_at_ms = 0;
  Pending().branch_updates.push_back(std::move(u));
  NoteCallFailed(last_error);
  Event(name, event_type, state + (detail.empty() ? "" : ": " + detail));
}

void TxnDriver::RecordRetry(const std::string& name, std::optional<int> attempts,
                            const std::string& last_error, int64_t delay_ms,
                            const std::string& detail) {
  TREATY_ASSERT_ON(*ctx_->runner);
  BranchUpdate u;
  u.name = name;
  u.attempts = attempts;
  u.last_error = last_error;
  u.next_attempt_at_ms = ctx_->runner->NowMs() + delay_ms;
  Pending().branch_updates.push_back(std::move(u));
  NoteCallFailed(last_error);
  Event(name, "retry", detail);
  Pending().events.back().collapse = true;  // one event per run of retries
}

int64_t TxnDriver::RemainingWait(int64_t planned_at_ms, int64_t max_ms) {
  TREATY_ASSERT_ON(*ctx_->runner);
  const int64_t wait = planned_at_ms - ctx_->runner->NowMs();
  return std::clamp<int64_t>(wait, 0, std::max<int64_t>(max_ms, 0));
}

void TxnDriver::RecordAttemptSent(const std::string& name, std::optional<int> attempt) {
  TREATY_ASSERT_ON(*ctx_->runner);
  BranchUpdate u;
  u.name = name;
  u.attempts = attempt;
  u.next_attempt_at_ms = 0;
  Pending().branch_updates.push_back(std::move(u));
}

std::string TxnDriver::OperatorDetail(const std::string& action, const OperatorRequest& who) {
  return action + " by " + who.actor + ": " + (who.reason.empty() ? "no reason given" : who.reason);
}

Status TxnDriver::RetryNow(const OperatorRequest& who) {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (finished() || IsTerminal(state_)) {
    return Status::Conflict(std::string(TxnNoun()) + " " + gtid_ + " is already " + state_name() +
                            "; there is nothing to retry");
  }
  const int fired = RetryScheduledNow();
  Event("", "operator",
        OperatorDetail("retry", who) + " (" + std::to_string(fired) + " calls resent" +
            (paused() ? "; paused: calls are held until resume)" : ")"));
  Pump();
  return Status::Ok();
}

Status TxnDriver::Resolve(const std::string& branch, const std::string& outcome,
                          const OperatorRequest& who) {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (who.reason.empty()) {
    return Status::InvalidArgument("reason is required to resolve a branch by hand");
  }
  const auto resolved = ParseBranchState(outcome);
  if (!resolved || (*resolved != BranchState::kCompensated &&
                    *resolved != BranchState::kCommitted && *resolved != BranchState::kAborted)) {
    return Status::InvalidArgument("outcome must be COMPENSATED, COMMITTED or ABORTED");
  }
  int i = -1;
  for (int n = 0; n < BranchCount(); ++n) {
    if (BranchName(n) == branch) i = n;
  }
  if (i < 0) {
    return Status::NotFound(std::string(TxnNoun()) + " " + gtid_ + " has no " + BranchNoun() +
                            " '" + branch + "'");
  }
  if (Status rules = CheckResolve(i, *resolved); !rules.ok()) return rules;
  DiscardCall(i);
  const int attempts = MarkResolved(i, *resolved);
  const std::string as = ToString(*resolved);
  RecordBranchState(branch, *resolved, attempts, "", "operator",
                    OperatorDetail("resolve branch '" + branch + "' as " + as, who));
  Pump();
  return Status::Ok();
}

Status TxnDriver::Pause(const OperatorRequest& who) {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (finished() || IsTerminal(state_)) {
    return Status::Conflict("transaction " + gtid_ + " is already " + state_name() +
                            "; there is nothing to pause");
  }
  if (paused_) return Status::Conflict("transaction " + gtid_ + " is already paused");
  paused_ = true;
  Pending().paused = true;
  Event("", "operator", OperatorDetail("pause", who));
  Pump();
  return Status::Ok();
}

Status TxnDriver::Resume(const OperatorRequest& who) {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (!paused_) return Status::Conflict("transaction " + gtid_ + " is not paused");
  paused_ = false;
  Pending().paused = false;
  HoldAheadUntilLogged();  // nothing starts before the log says resumed
  Event("", "operator", OperatorDetail("resume", who));
  ReleaseHeldCalls();
  Pump();
  return Status::Ok();
}

void TxnDriver::WhenDurable(std::function<void(Status)> done) {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (dropped_) {
    done(Status::Unavailable("coordinator stopped driving " + gtid_ + "; ask for its state"));
    return;
  }
  // Changes not yet sent go with the next write; otherwise the newest sent.
  const uint64_t target = has_pending_ ? sent_seq_ + 1 : sent_seq_;
  if (target <= durable_seq_) {
    done(Status::Ok());
    return;
  }
  durable_waiters_.emplace_back(target, std::move(done));
  Flush();  // a change written behind is now waited for
}

void TxnDriver::Drop(const Status& why) {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (dropped_) return;
  dropped_ = true;
  if (deadline_watch_) deadline_watch_->Cancel();
  CancelTimers();
  pending_ = TxnWrite();
  pending_then_.clear();
  has_pending_ = false;
  auto waiters = std::move(durable_waiters_);
  durable_waiters_.clear();
  for (auto& [seq, done] : waiters) {
    done(Status::Unavailable("coordinator stopped driving " + gtid_ + "; ask for its state"));
  }
  if (on_created) {
    AnswerCreate(Status::Unavailable("the coordinator stopped before the log answered the create"));
  }
  if (ctx_->observer) ctx_->observer->OnDropped(gtid_, why);
}

}  // namespace treaty
