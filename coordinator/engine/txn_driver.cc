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

void MergeWrite(TxnWrite& base, TxnWrite&& later) {
  if (later.create) base.create = std::move(later.create);
  if (later.state) base.state = std::move(later.state);
  if (later.needs_attention) base.needs_attention = later.needs_attention;
  if (later.next_attempt_at_ms) base.next_attempt_at_ms = later.next_attempt_at_ms;
  if (later.attempts) base.attempts = later.attempts;
  if (later.deadline_ms) base.deadline_ms = later.deadline_ms;
  if (later.paused) base.paused = later.paused;
  if (later.last_error) base.last_error = std::move(later.last_error);
  base.release_owner = base.release_owner || later.release_owner;
  for (auto& b : later.new_branches) base.new_branches.push_back(std::move(b));
  for (auto& u : later.branch_updates) base.branch_updates.push_back(std::move(u));
  for (auto& e : later.events) base.events.push_back(std::move(e));
}

namespace {

// A create inserts rows as given: fold the planned updates into them.
void FoldIntoCreate(TxnWrite& w) {
  TxnRow& row = *w.create;
  if (w.state) row.state = *w.state;
  if (w.needs_attention) row.needs_attention = *w.needs_attention;
  if (w.next_attempt_at_ms) row.next_attempt_at_ms = *w.next_attempt_at_ms;
  if (w.attempts) row.attempts = *w.attempts;
  if (w.deadline_ms) row.deadline_ms = *w.deadline_ms;
  if (w.paused) row.paused = *w.paused;
  if (w.last_error) row.last_error = *w.last_error;
  for (const auto& u : w.branch_updates) {
    for (auto& b : w.new_branches) {
      if (b.name != u.name) continue;
      if (u.state) b.state = *u.state;
      if (u.attempts) b.attempts = *u.attempts;
      if (u.last_error) b.last_error = *u.last_error;
      if (u.next_attempt_at_ms) b.next_attempt_at_ms = *u.next_attempt_at_ms;
    }
  }
  w.branch_updates.clear();
}

}  // namespace

TxnDriver::TxnDriver(EngineContext* ctx, std::string gtid, TxnKind kind)
    : ctx_(ctx), gtid_(std::move(gtid)), kind_(kind) {}

TxnWrite& TxnDriver::Pending() {
  has_pending_ = true;
  return pending_;
}

void TxnDriver::AfterDurable(std::function<void()> then) {
  has_pending_ = true;
  pending_then_.push_back(std::move(then));
}

void TxnDriver::Event(const std::string& branch, const std::string& type,
                      const std::string& detail) {
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
  if (needs_attention_ == on) return;
  needs_attention_ = on;
  Pending().needs_attention = on;
  if (on) {
    spdlog::warn("gtid={} needs attention: {}", gtid_, why);
    Event("", "attention", why);
  }
}

void TxnDriver::NoteCallFailed(const std::string& error) {
  if (!error.empty()) Pending().last_error = error;
}

void TxnDriver::FlagConfigError(const std::string& noun, const std::string& branch, BranchOp op,
                                const std::string& error, int64_t retry_ms) {
  SetNeedsAttention(true, std::string(ToString(op)) + " of " + noun + " '" + branch +
                              "' hit a configuration error (fix the participant or its URL): " +
                              error + "; retried every " + std::to_string(retry_ms) + " ms");
}

void TxnDriver::WatchDeadline(int64_t deadline_ms) {
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
  static const char kHex[] = "0123456789abcdef";
  auto hex = [](uint64_t v, std::string& out) {
    for (int i = 60; i >= 0; i -= 4) out.push_back(kHex[(v >> i) & 0xf]);
  };
  std::hash<std::string> h;
  std::string out = "00-";
  hex(h(gtid_), out);
  hex(h(gtid_ + "#trace"), out);
  out += "-";
  hex(ctx_->rng(), out);
  out += "-01";
  return out;
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
  std::weak_ptr<TxnDriver> weak = shared_from_this();
  return ctx_->runner->PostAfter(delay_ms, [weak, fn = std::move(fn)] {
    auto self = weak.lock();
    if (self && !self->dropped()) fn();
  });
}

void TxnDriver::CallWhenDurable(ParticipantRequest request,
                                std::function<void(const ParticipantResponse&)> on_result,
                                std::function<bool()> still_wanted) {
  std::weak_ptr<TxnDriver> weak = shared_from_this();
  AfterDurable([this, weak, request = std::move(request), on_result = std::move(on_result),
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
  });
}

void TxnDriver::RecordBranchState(const std::string& name, BranchState branch_state, int attempts,
                                  const std::string& last_error, const std::string& event_type,
                                  const std::string& detail) {
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
  const int64_t wait = planned_at_ms - ctx_->runner->NowMs();
  return std::clamp<int64_t>(wait, 0, std::max<int64_t>(max_ms, 0));
}

void TxnDriver::RecordAttemptSent(const std::string& name, std::optional<int> attempt) {
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
  if (!paused_) return Status::Conflict("transaction " + gtid_ + " is not paused");
  paused_ = false;
  Pending().paused = false;
  Event("", "operator", OperatorDetail("resume", who));
  ReleaseHeldCalls();
  Pump();
  return Status::Ok();
}

void TxnDriver::WhenDurable(std::function<void(Status)> done) {
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
}

void TxnDriver::Drop(const Status& why) {
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
  if (ctx_->observer) ctx_->observer->OnDropped(gtid_, why);
}

void TxnDriver::Flush() {
  if (dropped_ || write_in_flight_ || !has_pending_) return;
  TxnWrite w = std::move(pending_);
  auto thens = std::move(pending_then_);
  pending_ = TxnWrite();
  pending_then_.clear();
  has_pending_ = false;
  w.gtid = gtid_;
  w.owner = ctx_->owner;
  w.now_ms = ctx_->runner->NowMs();
  in_flight_seq_ = ++sent_seq_;
  if (w.create) {
    created_ = true;
    w.create->owner = ctx_->owner;
    FoldIntoCreate(w);
  }
  Send(std::move(w), std::move(thens));
}

void TxnDriver::Send(TxnWrite w, std::vector<std::function<void()>> thens) {
  write_in_flight_ = true;
  auto self = shared_from_this();
  TxnWrite copy = w;
  ctx_->log->Write(std::move(copy), [self, w = std::move(w),
                                     thens = std::move(thens)](Status s) mutable {
    TaskRunner* runner = self->ctx_->runner;
    runner->Post([self, s = std::move(s), w = std::move(w), thens = std::move(thens)]() mutable {
      self->OnWritten(std::move(s), std::move(w), std::move(thens));
    });
  });
}

void TxnDriver::OnWritten(Status status, TxnWrite write, std::vector<std::function<void()>> thens) {
  write_in_flight_ = false;
  // The follow-ups below may Pump and so Flush the next write, which moves
  // in_flight_seq_ on: what this answer makes durable is the write sent
  // before them.
  const uint64_t written_seq = in_flight_seq_;
  if (dropped_) return;
  const bool was_create = write.create.has_value();
  if (status.ok()) {
    refused_writes_ = 0;
    if (was_create && create_outcome_unknown_) {
      create_outcome_unknown_ = false;
      spdlog::warn("gtid={} the log confirmed the create after all; driving it", gtid_);
      if (on_confirmed_late) on_confirmed_late();
    } else if (was_create && on_created) {
      on_created(Status::Ok());
    }
    for (auto& t : thens) {
      if (dropped_) return;
      t();
    }
    durable_seq_ = std::max(durable_seq_, written_seq);
    std::vector<std::function<void(Status)>> ready;
    for (auto it = durable_waiters_.begin(); it != durable_waiters_.end();) {
      if (it->first <= durable_seq_) {
        ready.push_back(std::move(it->second));
        it = durable_waiters_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& done : ready) done(Status::Ok());
    Flush();
    return;
  }
  if (was_create) {
    OnCreateFailed(std::move(status), std::move(write), std::move(thens));
    return;
  }
  if (status.code() == StatusCode::kLostOwnership || status.code() == StatusCode::kNotFound) {
    spdlog::warn("gtid={} stopped driving: {}", gtid_, status.ToString());
    Drop(status);
    return;
  }
  if (status.code() == StatusCode::kInvalidArgument) {
    RewriteRefused(status, std::move(write), std::move(thens));
    return;
  }
  refused_writes_ = 0;
  // The log is unavailable: keep the change and its follow-ups, retry later.
  spdlog::warn("gtid={} log write failed, retrying: {}", gtid_, status.ToString());
  TxnWrite newer = std::move(pending_);
  auto newer_then = std::move(pending_then_);
  pending_ = std::move(write);
  pending_.create.reset();
  MergeWrite(pending_, std::move(newer));
  pending_then_ = std::move(thens);
  for (auto& t : newer_then) pending_then_.push_back(std::move(t));
  has_pending_ = true;
  write_in_flight_ = true;  // hold off other flushes until the retry
  auto self = shared_from_this();
  ctx_->runner->PostAfter(ctx_->options.log_retry_backoff_ms, [self] {
    self->write_in_flight_ = false;
    self->Flush();
  });
}

void TxnDriver::OnCreateFailed(Status status, TxnWrite write,
                               std::vector<std::function<void()>> thens) {
  const bool unknown = status.code() == StatusCode::kUnavailable ||
                       status.code() == StatusCode::kInternal ||
                       (status.code() == StatusCode::kTimedOut && create_outcome_unknown_);
  if (!unknown) {
    spdlog::warn("gtid={} create failed: {}", gtid_, status.ToString());
    if (!create_outcome_unknown_ && on_created) on_created(status);
    Drop(status);
    return;
  }
  if (!create_outcome_unknown_) {
    create_outcome_unknown_ = true;
    spdlog::warn("gtid={} the log did not confirm the create ({}); sending it again until it does",
                 gtid_, status.ToString());
    if (on_created) on_created(status);
    if (dropped_) return;
  }
  // The very same create again (so that its own row is recognized), flagged;
  // later changes stay in pending_ until it is confirmed.
  write.create_outcome_unknown = true;
  write_in_flight_ = true;  // hold off other flushes until the create is confirmed
  std::weak_ptr<TxnDriver> weak = shared_from_this();
  ctx_->runner->PostAfter(ctx_->options.log_retry_backoff_ms,
                          [weak, write = std::move(write), thens = std::move(thens)]() mutable {
                            auto self = weak.lock();
                            if (!self || self->dropped_) return;
                            self->Send(std::move(write), std::move(thens));
                          });
}

namespace {

// `w` without what a refused write may not store (see RewriteRefused): at
// `level` 1 every free text cut to a short valid excerpt; at level 2 only
// the transaction-level fields.
TxnWrite ReducedWrite(TxnWrite w, int level) {
  if (level == 1) {
    for (BranchRow& b : w.new_branches) {
      b.last_error = Excerpt(b.last_error, limits::kErrorExcerptBytes);
    }
    for (BranchUpdate& u : w.branch_updates) {
      if (u.last_error) u.last_error = Excerpt(*u.last_error, limits::kErrorExcerptBytes);
    }
    for (EventRow& e : w.events) e.detail = Excerpt(e.detail, limits::kErrorExcerptBytes);
    if (w.last_error) w.last_error = Excerpt(*w.last_error, limits::kErrorExcerptBytes);
  } else {
    w.last_error.reset();
    w.new_branches.clear();
    w.branch_updates.clear();
    w.events.clear();
  }
  return w;
}

}  // namespace

void TxnDriver::RewriteRefused(const Status& why, TxnWrite refused,
                               std::vector<std::function<void()>> thens) {
  ++refused_writes_;
  const std::string reason = Excerpt(why.message(), limits::kErrorExcerptBytes);
  if (refused_writes_ > 2) {
    // Even the transaction-level change was refused: this coordinator cannot
    // log this transaction. Drop it as if the log had failed, so that it is
    // handed back and recovered from what the log holds.
    spdlog::error("gtid={} the log refused even a minimal write ({}); handing it back", gtid_,
                  EscapeControl(reason));
    Drop(Status::Internal("the log refused every write of " + gtid_ + ": " + reason));
    return;
  }
  spdlog::warn("gtid={} the log refused a write for its data ({}); writing it {}", gtid_,
               EscapeControl(reason),
               refused_writes_ == 1 ? "with its free text cut" : "without its branch changes");
  TxnWrite newer = std::move(pending_);
  auto newer_then = std::move(pending_then_);
  refused.create.reset();
  MergeWrite(refused, std::move(newer));
  pending_ = ReducedWrite(std::move(refused), refused_writes_);
  needs_attention_ = true;
  pending_.needs_attention = true;
  EventRow e;
  e.gtid = gtid_;
  e.type = "attention";
  e.detail =
      "the log refused a write for its data (" + reason + "); stored " +
      (refused_writes_ == 1 ? "with its free text cut" : "without its branch changes and history");
  e.at_ms = ctx_->runner->NowMs();
  pending_.events.push_back(std::move(e));
  pending_then_ = std::move(thens);
  for (auto& t : newer_then) pending_then_.push_back(std::move(t));
  has_pending_ = true;
  Flush();
}

}  // namespace treaty
