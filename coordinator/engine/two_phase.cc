#include "engine/two_phase.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "engine/states.h"

namespace treaty {
namespace {

bool IsDecision(const std::string& s) {
  return s == states::kCommitting || s == states::kAborting || states::IsTerminal(s);
}

}  // namespace

TwoPhase::TwoPhase(EngineContext* ctx, TwoPhaseSpec spec)
    : TxnDriver(ctx, spec.gtid, states::k2pc), spec_(std::move(spec)) {}

std::shared_ptr<TwoPhase> TwoPhase::Create(EngineContext* ctx, TwoPhaseSpec spec) {
  std::shared_ptr<TwoPhase> t(new TwoPhase(ctx, std::move(spec)));
  t->is_new_ = true;
  const int64_t now = ctx->runner->NowMs();
  TxnRow row;
  row.gtid = t->gtid();
  row.kind = states::k2pc;
  row.state = states::kActive;
  row.spec = ToJson(t->spec_).dump();
  t->spec_json_ = row.spec;
  row.deadline_ms = now + t->spec_.timeout_ms;
  row.created_at_ms = now;
  row.updated_at_ms = now;
  t->deadline_ms_ = row.deadline_ms;
  t->Pending().create = row;
  t->SetState(states::kActive, "");
  t->Event("", "state",
           "ACTIVE: 2PC begun, deadline in " + std::to_string(t->spec_.timeout_ms) + " ms");
  return t;
}

Result<std::shared_ptr<TwoPhase>> TwoPhase::Restore(EngineContext* ctx, const TxnDetail& d) {
  using nlohmann::json;
  json body = json::parse(d.txn.spec, nullptr, false);
  if (body.is_discarded()) return Status::Internal("stored 2PC spec is not JSON");
  TwoPhaseLimits stored;
  stored.stored = true;  // an older release's log may hold names/URLs today's rules refuse
  auto spec = ParseTwoPhaseSpec(body, stored);
  if (!spec.ok()) return Status::Internal("stored 2PC spec is invalid: " + spec.status().message());
  spec->gtid = d.txn.gtid;
  std::shared_ptr<TwoPhase> t(new TwoPhase(ctx, std::move(*spec)));
  t->RestoreState(d.txn.state);
  t->spec_json_ = d.txn.spec;
  t->deadline_ms_ = d.txn.deadline_ms;
  t->needs_attention_ = d.txn.needs_attention;
  t->decision_durable_ = IsDecision(d.txn.state);
  for (const auto& row : d.branches) {
    json bj = json::parse(row.spec, nullptr, false);
    if (bj.is_object()) bj["name"] = row.name;
    auto b = ParseBranchSpec(bj, stored);
    if (!b.ok()) {
      return Status::Internal("stored branch '" + row.name +
                              "' is invalid: " + b.status().message());
    }
    Branch br;
    br.spec = std::move(*b);
    br.state = row.state;
    br.attempts = row.attempts;
    br.last_error = row.last_error;
    br.planned_at_ms = row.next_attempt_at_ms;
    if (br.state == states::kCommitting || br.state == states::kAborting) {
      br.failures = std::max(0, br.attempts - 1);
    }
    t->branches_.push_back(std::move(br));
  }
  return t;
}

void TwoPhase::Start() {
  if (!is_new_) {
    spdlog::info("gtid={} resuming 2PC in state {}", gtid(), state());
    Event("", "recovery", "resumed by coordinator " + ctx()->owner + " in state " + state());
    if (state() == states::kActive || state() == states::kPreparing) {
      Decide(states::kAborting, "presumed abort: recovered without a logged commit decision");
    }
    ResumeBranches();
  }
  StartDeadline();
  Pump();
}

void TwoPhase::ResumeBranches() {
  const bool commit = state() == states::kCommitting;
  if (!commit && state() != states::kAborting) return;
  const std::string op = commit ? "commit" : "abort";
  for (size_t i = 0; i < branches_.size(); ++i) {
    Branch& b = branches_[i];
    // A branch not yet moved to the decision's state starts its op afresh.
    if (b.state != (commit ? states::kCommitting : states::kAborting)) continue;
    const std::string attempt = op + " attempt " + std::to_string(b.attempts);
    if (b.planned_at_ms > 0) {
      const int64_t wait = RemainingWait(b.planned_at_ms, ctx()->options.retry_max_backoff_ms);
      Event(b.spec.name, "recovery",
            attempt + " was planned, not sent; sending it in " + std::to_string(wait) + " ms");
      ScheduleRetry(static_cast<int>(i), op, wait);
    } else {
      // Pump sends it again: the same attempt, whose outcome was not logged.
      Event(b.spec.name, "recovery", attempt + " was sent, its outcome not logged; resending it");
    }
    b.planned_at_ms = 0;
  }
}

void TwoPhase::StartDeadline() {
  if (deadline_ms_ <= 0 || Decided()) return;
  deadline_timer_ = After(deadline_ms_ - ctx()->runner->NowMs(), [this] {
    if (Decided()) return;
    Decide(states::kAborting, "transaction deadline passed");
    Pump();
  });
}

bool TwoPhase::Decided() const { return IsDecision(state()); }

void TwoPhase::Pump() {
  if (dropped() || finished()) return;
  if (state() == states::kPreparing) PumpPreparing();
  if (state() == states::kCommitting) PumpPhaseTwo("commit");
  if (state() == states::kAborting) PumpPhaseTwo("abort");
  Flush();
}

void TwoPhase::PumpPreparing() {
  bool all_voted = true, any_prepared = false;
  for (const auto& b : branches_) {
    if (b.voted_no) {
      Decide(states::kAborting, "branch '" + b.spec.name + "' voted no: " + b.last_error);
      return;
    }
    if (b.state == states::kPrepared) any_prepared = true;
    if (b.state != states::kPrepared && b.state != states::kReadOnly) all_voted = false;
  }
  if (!all_voted) return;
  if (any_prepared) {
    Decide(states::kCommitting, "every branch voted yes");
    for (size_t i = 0; i < branches_.size(); ++i) {
      if (branches_[i].state != states::kPrepared) continue;
      branches_[i].attempts = 1;
      SetBranch(static_cast<int>(i), states::kCommitting, "");
    }
  } else {
    Decide(states::kCommitted, "every branch voted read-only; no phase 2");
  }
}

// Drives phase 2: `op` is "commit" (COMMITTING) or "abort" (ABORTING).
void TwoPhase::PumpPhaseTwo(const std::string& op) {
  const bool commit = op == "commit";
  const char* done_state = commit ? states::kCommitted : states::kAborted;
  const char* doing_state = commit ? states::kCommitting : states::kAborting;
  bool done = true;
  for (size_t i = 0; i < branches_.size(); ++i) {
    Branch& b = branches_[i];
    if (b.state == states::kReadOnly || b.state == done_state) continue;
    if (!commit && b.state == states::kCommitted) continue;  // impossible by construction
    done = false;
    if (b.in_flight || b.timer || b.uncallable) continue;
    if (b.state != doing_state) {
      b.attempts = 1;
      b.failures = 0;
      SetBranch(static_cast<int>(i), doing_state, "");
    }
    Launch(static_cast<int>(i), op);
  }
  if (done) {
    SetState(done_state, commit ? "every branch committed" : "every branch aborted");
  }
}

void TwoPhase::Decide(const std::string& state_name, const std::string& why) {
  if (Decided()) return;
  spdlog::info("gtid={} decision {}: {}", gtid(), state_name, why);
  SetState(state_name, why);
  if (deadline_timer_) deadline_timer_->Cancel();
  // Prepare retries still scheduled are abandoned: those branches get abort.
  for (auto& b : branches_) {
    if (b.timer) {
      b.timer->Cancel();
      b.timer.reset();
    }
  }
  std::weak_ptr<TxnDriver> weak = shared_from_this();
  AfterDurable([weak] {
    auto self = std::static_pointer_cast<TwoPhase>(weak.lock());
    if (!self) return;
    self->decision_durable_ = true;
    auto waiters = std::move(self->decision_waiters_);
    self->decision_waiters_.clear();
    for (auto& w : waiters) w(self->state());
  });
}

void TwoPhase::AnswerWhenDecided(DecisionCallback done) {
  if (decision_durable_) {
    done(state());
  } else {
    decision_waiters_.push_back(std::move(done));
  }
}

void TwoPhase::Enlist(BranchSpec branch, size_t max_branches, std::function<void(Status)> done) {
  if (state() != states::kActive) {
    done(Status::Conflict("transaction " + gtid() + " is " + state() +
                          "; branches can enlist only while it is ACTIVE"));
    return;
  }
  const std::string spec_json = ToJson(branch).dump();
  for (const auto& b : branches_) {
    if (b.spec.name != branch.name) continue;
    if (ToJson(b.spec).dump() != spec_json) {
      done(Status::Conflict("branch '" + branch.name + "' is already enlisted in " + gtid() +
                            " with different URLs or payload"));
      return;
    }
    Event(branch.name, "branch", "enlisted again (same spec; no change)");
  }
  const bool repeat = std::any_of(branches_.begin(), branches_.end(),
                                  [&](const Branch& b) { return b.spec.name == branch.name; });
  if (!repeat) {
    if (branches_.size() >= max_branches) {
      done(Status::InvalidArgument("transaction " + gtid() + " already has the maximum of " +
                                   std::to_string(max_branches) + " branches"));
      return;
    }
    BranchRow row;
    row.gtid = gtid();
    row.name = branch.name;
    row.idx = static_cast<int>(branches_.size());
    row.state = states::kEnlisted;
    row.spec = spec_json;
    row.updated_at_ms = ctx()->runner->NowMs();
    Pending().new_branches.push_back(std::move(row));
    Event(branch.name, "branch", std::string("ENLISTED: prepare ") + branch.prepare);
    Branch b;
    b.spec = std::move(branch);
    b.state = states::kEnlisted;
    branches_.push_back(std::move(b));
  }
  const uint64_t id = next_reply_++;
  enlist_replies_[id] = std::move(done);
  std::weak_ptr<TxnDriver> weak = shared_from_this();
  AfterDurable([weak, id] {
    auto self = std::static_pointer_cast<TwoPhase>(weak.lock());
    if (!self) return;
    auto it = self->enlist_replies_.find(id);
    if (it == self->enlist_replies_.end()) return;
    auto reply = std::move(it->second);
    self->enlist_replies_.erase(it);
    reply(Status::Ok());
  });
  Flush();
}

void TwoPhase::RequestCommit(DecisionCallback done) {
  if (state() != states::kActive) {
    // Already preparing or decided: answer with the decision.
    AnswerWhenDecided(std::move(done));
    return;
  }
  decision_waiters_.push_back(std::move(done));
  if (branches_.empty()) {
    Decide(states::kCommitted, "commit with no branches enlisted");
  } else if (OnePhase()) {
    Decide(states::kCommitting, "one-phase commit of the single branch");
    branches_[0].attempts = 1;
    SetBranch(0, states::kCommitting, "one-phase commit (no prepare)");
  } else {
    SetState(states::kPreparing,
             "commit requested; preparing " + std::to_string(branches_.size()) + " branches");
    for (size_t i = 0; i < branches_.size(); ++i) {
      branches_[i].attempts = 1;
      SetBranch(static_cast<int>(i), states::kPreparing, "attempt 1");
      Launch(static_cast<int>(i), "prepare");
    }
  }
  Pump();
}

void TwoPhase::RequestAbort(const std::string& reason, DecisionCallback done) {
  if (state() == states::kCommitting || state() == states::kCommitted) {
    done(Status::Conflict("transaction " + gtid() + " is " + state() +
                          ": the commit decision is logged; it cannot be aborted"));
    return;
  }
  if (!Decided()) Decide(states::kAborting, reason);
  AnswerWhenDecided(std::move(done));
  Pump();
}

Status TwoPhase::ForceAbort(const std::string& reason) {
  if (state() == states::kCommitting || state() == states::kCommitted) {
    return Status::Conflict("transaction " + gtid() + " is " + state() +
                            ": the commit decision is logged; it cannot be aborted");
  }
  if (!Decided()) {
    Event("", "operator", "force abort: " + reason);
    Decide(states::kAborting, "operator: " + reason);
  }
  Pump();
  return Status::Ok();
}

Status TwoPhase::RetryNow() {
  if (finished()) return Status::Conflict("transaction " + gtid() + " is already " + state());
  int fired = 0;
  for (size_t i = 0; i < branches_.size(); ++i) {
    Branch& b = branches_[i];
    if (!b.timer) continue;
    b.timer->Cancel();
    b.timer.reset();
    b.failures = 0;
    const std::string op = state() == states::kPreparing    ? "prepare"
                           : state() == states::kCommitting ? "commit"
                                                            : "abort";
    RecordAttemptSent(b.spec.name, b.attempts);
    Launch(static_cast<int>(i), op);
    ++fired;
  }
  Event("", "operator", "retry now (" + std::to_string(fired) + " calls resent)");
  Pump();
  return Status::Ok();
}

void TwoPhase::SetBranch(int i, const std::string& state_name, const std::string& detail) {
  Branch& b = branches_[i];
  b.state = state_name;
  RecordBranchState(b.spec.name, state_name, b.attempts, b.last_error, "branch", detail);
}

void TwoPhase::Launch(int i, const std::string& op) {
  Branch& b = branches_[i];
  b.in_flight = true;
  ParticipantRequest req;
  req.url = op == "prepare" ? b.spec.prepare : op == "commit" ? b.spec.commit : b.spec.abort;
  req.gtid = gtid();
  req.branch = b.spec.name;
  req.op = op;
  req.payload_json = b.spec.payload;
  req.one_phase = op == "commit" && OnePhase();
  req.timeout_ms =
      b.spec.timeout_ms > 0 ? b.spec.timeout_ms : ctx()->options.default_call_timeout_ms;
  // The call goes out only once everything planned so far is durable: for
  // commit, that includes the COMMITTING decision.
  CallWhenDurable(std::move(req), [this, i, op](const ParticipantResponse& r) {
    branches_[i].in_flight = false;
    if (op == "prepare") {
      OnPrepareResult(i, r);
    } else {
      OnPhaseTwoResult(i, op, r);
    }
  });
}

void TwoPhase::OnPrepareResult(int i, const ParticipantResponse& r) {
  Branch& b = branches_[i];
  if (state() != states::kPreparing) {
    // Abort was decided meanwhile; Pump sends this branch its abort now.
    Event(b.spec.name, "call",
          "prepare " + DescribeResponse(r) + " (transaction is " + state() + ")");
    return;
  }
  if (r.outcome == CallOutcome::kOk) {
    b.last_error.clear();
    SetBranch(i, r.readonly_vote ? states::kReadOnly : states::kPrepared,
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
  const int64_t delay = ctx()->Backoff(b.attempts, spec_.prepare_retry.initial_backoff_ms,
                                       spec_.prepare_retry.max_backoff_ms);
  ++b.attempts;
  RecordRetry(b.spec.name, b.attempts, b.last_error, delay,
              "prepare " + b.last_error + "; attempt " + std::to_string(b.attempts) + " in " +
                  std::to_string(delay) + " ms");
  ScheduleRetry(i, "prepare", delay);
}

void TwoPhase::OnPhaseTwoResult(int i, const std::string& op, const ParticipantResponse& r) {
  Branch& b = branches_[i];
  if (r.outcome == CallOutcome::kOk) {
    b.last_error.clear();
    SetBranch(i, op == "commit" ? states::kCommitted : states::kAborted,
              op + " " + DescribeResponse(r));
    return;
  }
  b.last_error = DescribeResponse(r);
  if (op == "commit" && OnePhase() &&
      (r.outcome == CallOutcome::kBusinessFailure || r.outcome == CallOutcome::kUncallable)) {
    // The single participant refused its one-phase commit, or it was never
    // sent: nothing applied.
    SetBranch(i, states::kAborted, "one-phase commit " + b.last_error);
    SetState(states::kAborted, "the single branch refused its one-phase commit");
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
  const int64_t delay =
      ctx()->Backoff(b.failures, o.retry_initial_backoff_ms, o.retry_max_backoff_ms);
  ++b.attempts;
  RecordRetry(b.spec.name, b.attempts, b.last_error, delay,
              op + " " + b.last_error + "; failed " + std::to_string(b.failures) +
                  " times, next try in " + std::to_string(delay) + " ms");
  if (b.failures >= o.attention_after_attempts) {
    SetNeedsAttention(true, op + " of branch '" + b.spec.name + "' failed " +
                                std::to_string(b.failures) + " times: " + b.last_error);
  }
  ScheduleRetry(i, op, delay);
}

void TwoPhase::ScheduleRetry(int i, const std::string& op, int64_t delay_ms) {
  branches_[i].timer = After(delay_ms, [this, i, op] {
    Branch& b = branches_[i];
    if (!b.timer) return;  // cancelled
    b.timer.reset();
    const bool still = op == "prepare"  ? state() == states::kPreparing
                       : op == "commit" ? state() == states::kCommitting
                                        : state() == states::kAborting;
    if (still) {
      RecordAttemptSent(b.spec.name, b.attempts);
      Launch(i, op);
    }
    Pump();
  });
}

void TwoPhase::CancelTimers() {
  if (deadline_timer_) deadline_timer_->Cancel();
  for (auto& b : branches_) {
    if (b.timer) b.timer->Cancel();
    b.timer.reset();
  }
  // Dropped (or finished): nobody will answer these any more.
  auto replies = std::move(enlist_replies_);
  enlist_replies_.clear();
  for (auto& [id, reply] : replies) {
    reply(Status::Unavailable("coordinator stopped driving " + gtid() + "; retry"));
  }
  auto waiters = std::move(decision_waiters_);
  decision_waiters_.clear();
  for (auto& w : waiters) {
    if (finished()) {
      w(state());
    } else {
      w(Status::Unavailable("coordinator stopped driving " + gtid() + "; ask for its state"));
    }
  }
}

}  // namespace treaty
