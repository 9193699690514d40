#include "engine/two_phase.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "engine/states.h"

namespace treaty {
namespace {

bool IsDecision(TxnState s) {
  return s == TxnState::kCommitting || s == TxnState::kAborting || IsTerminal(s);
}

}  // namespace

TwoPhase::TwoPhase(EngineContext* ctx, TwoPhaseSpec spec)
    : TxnDriver(ctx, spec.gtid, TxnKind::k2pc), spec_(std::move(spec)) {}

std::shared_ptr<TwoPhase> TwoPhase::Create(EngineContext* ctx, TwoPhaseSpec spec) {
  if (spec.trace.empty()) spec.trace.trace_id = NewTraceId(ctx->rng);  // no caller's trace
  std::shared_ptr<TwoPhase> t(new TwoPhase(ctx, std::move(spec)));
  t->trace_ = t->spec_.trace;
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
  t->SetState(TxnState::kActive, "");
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
  const auto state = ParseTxnState(d.txn.state);
  if (!state) return Status::Internal("stored 2PC state '" + d.txn.state + "' is unknown");
  if (spec->trace.empty()) spec->trace.trace_id = DerivedTraceId(d.txn.gtid);  // older log
  std::shared_ptr<TwoPhase> t(new TwoPhase(ctx, std::move(*spec)));
  t->trace_ = t->spec_.trace;
  t->RestoreState(*state);
  t->spec_json_ = d.txn.spec;
  t->deadline_ms_ = d.txn.deadline_ms;
  t->needs_attention_ = d.txn.needs_attention;
  t->paused_ = d.txn.paused;  // its calls stay held until Resume
  t->decision_durable_ = IsDecision(*state);
  for (const auto& row : d.branches) {
    json bj = json::parse(row.spec, nullptr, false);
    if (bj.is_object()) bj["name"] = row.name;
    auto b = ParseBranchSpec(bj, stored);
    if (!b.ok()) {
      return Status::Internal("stored branch '" + row.name +
                              "' is invalid: " + b.status().message());
    }
    const auto branch_state = ParseBranchState(row.state);
    if (!branch_state) {
      return Status::Internal("stored branch '" + row.name + "' has an unknown state '" +
                              row.state + "'");
    }
    Branch br;
    br.spec = std::move(*b);
    br.state = *branch_state;
    br.attempts = row.attempts;
    br.last_error = row.last_error;
    br.planned_at_ms = row.next_attempt_at_ms;
    if (br.state == BranchState::kCommitting || br.state == BranchState::kAborting) {
      br.failures = std::max(0, br.attempts - 1);
    }
    t->branches_.push_back(std::move(br));
  }
  return t;
}

void TwoPhase::Start() {
  TREATY_ASSERT_ON(*ctx()->runner);
  if (!is_new_) {
    spdlog::info("gtid={} resuming 2PC in state {}", gtid(), state_name());
    Event("", "recovery", "resumed by coordinator " + ctx()->owner + " in state " + state_name());
    if (state() == TxnState::kActive || state() == TxnState::kPreparing) {
      Decide(TxnState::kAborting, "presumed abort: recovered without a logged commit decision");
    }
    ResumeBranches();
    if (state() == TxnState::kCommitting || state() == TxnState::kAborting) {
      WatchDeadline(deadline_ms_);
    }
  }
  StartDeadline();
  Pump();
}

void TwoPhase::ResumeBranches() {
  TREATY_ASSERT_ON(*ctx()->runner);
  const bool commit = state() == TxnState::kCommitting;
  if (!commit && state() != TxnState::kAborting) return;
  const BranchOp op = commit ? BranchOp::kCommit : BranchOp::kAbort;
  for (size_t i = 0; i < branches_.size(); ++i) {
    Branch& b = branches_[i];
    // A branch not yet moved to the decision's state starts its op afresh.
    if (b.state != (commit ? BranchState::kCommitting : BranchState::kAborting)) continue;
    const std::string attempt =
        std::string(ToString(op)) + " attempt " + std::to_string(b.attempts);
    ResumeRestoredCall(static_cast<int>(i), op, b.spec.name, attempt, b.planned_at_ms,
                       ctx()->options.retry_max_backoff_ms);
    b.planned_at_ms = 0;
  }
}

void TwoPhase::StartDeadline() {
  TREATY_ASSERT_ON(*ctx()->runner);
  if (deadline_ms_ <= 0 || Decided()) return;
  deadline_timer_ = After(deadline_ms_ - ctx()->runner->NowMs(), [this] {
    if (Decided()) return;
    Decide(TxnState::kAborting, "transaction deadline passed");
    Pump();
  });
}

bool TwoPhase::Decided() const { return IsDecision(state()); }

void TwoPhase::Pump() {
  TREATY_ASSERT_ON(*ctx()->runner);
  if (dropped() || finished()) return;
  if (state() == TxnState::kPreparing) PumpPreparing();
  if (state() == TxnState::kCommitting) PumpPhaseTwo(BranchOp::kCommit);
  if (state() == TxnState::kAborting) PumpPhaseTwo(BranchOp::kAbort);
  Flush();
}

void TwoPhase::PumpPreparing() {
  TREATY_ASSERT_ON(*ctx()->runner);
  bool all_voted = true, any_prepared = false;
  for (const auto& b : branches_) {
    if (b.voted_no) {
      Decide(TxnState::kAborting, "branch '" + b.spec.name + "' voted no: " + b.last_error);
      return;
    }
    if (b.state == BranchState::kPrepared) any_prepared = true;
    if (b.state != BranchState::kPrepared && b.state != BranchState::kReadOnly) {
      all_voted = false;
    }
  }
  if (!all_voted) return;
  if (any_prepared) {
    Decide(TxnState::kCommitting, "every branch voted yes");
    for (size_t i = 0; i < branches_.size(); ++i) {
      if (branches_[i].state != BranchState::kPrepared) continue;
      branches_[i].attempts = 1;
      SetBranch(static_cast<int>(i), BranchState::kCommitting, "");
    }
  } else {
    Decide(TxnState::kCommitted, "every branch voted read-only; no phase 2");
  }
}

void TwoPhase::PumpPhaseTwo(BranchOp op) {
  TREATY_ASSERT_ON(*ctx()->runner);
  const bool commit = op == BranchOp::kCommit;
  const BranchState done_state = commit ? BranchState::kCommitted : BranchState::kAborted;
  const BranchState doing_state = commit ? BranchState::kCommitting : BranchState::kAborting;
  bool done = true;
  for (size_t n = 0; n < branches_.size(); ++n) {
    const int i = static_cast<int>(n);
    Branch& b = branches_[n];
    if (b.state == BranchState::kReadOnly || b.state == done_state) continue;
    if (!commit && b.state == BranchState::kCommitted) continue;  // impossible by construction
    done = false;
    if (call_in_flight(i) || retry_scheduled(i) || b.uncallable) continue;
    if (b.state != doing_state) {
      b.attempts = 1;
      b.failures = 0;
      SetBranch(i, doing_state, "");
    }
    LaunchCall(i, op);
  }
  if (done) {
    SetState(commit ? TxnState::kCommitted : TxnState::kAborted,
             commit ? "every branch committed" : "every branch aborted");
  }
}

void TwoPhase::Decide(TxnState decision, const std::string& why) {
  TREATY_ASSERT_ON(*ctx()->runner);
  if (Decided()) return;
  spdlog::info("gtid={} decision {}: {}", gtid(), ToString(decision), why);
  SetState(decision, why);
  if (deadline_timer_) deadline_timer_->Cancel();
  WatchDeadline(deadline_ms_);  // COMMITTING / ABORTING (a no-op once terminal)
  // Prepare retries still scheduled are abandoned: those branches get abort.
  CancelRetries();
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
  TREATY_ASSERT_ON(*ctx()->runner);
  if (decision_durable_) {
    done(state());
  } else {
    decision_waiters_.push_back(std::move(done));
  }
}

void TwoPhase::Enlist(BranchSpec branch, size_t max_branches, std::function<void(Status)> done) {
  TREATY_ASSERT_ON(*ctx()->runner);
  if (state() != TxnState::kActive) {
    done(Status::Conflict("transaction " + gtid() + " is " + state_name() +
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
    b.state = BranchState::kEnlisted;
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
  TREATY_ASSERT_ON(*ctx()->runner);
  if (state() != TxnState::kActive) {
    // Already preparing or decided: answer with the decision.
    AnswerWhenDecided(std::move(done));
    return;
  }
  decision_waiters_.push_back(std::move(done));
  if (branches_.empty()) {
    Decide(TxnState::kCommitted, "commit with no branches enlisted");
  } else if (OnePhase()) {
    Decide(TxnState::kCommitting, "one-phase commit of the single branch");
    branches_[0].attempts = 1;
    SetBranch(0, BranchState::kCommitting, "one-phase commit (no prepare)");
  } else {
    SetState(TxnState::kPreparing,
             "commit requested; preparing " + std::to_string(branches_.size()) + " branches");
    for (size_t i = 0; i < branches_.size(); ++i) {
      branches_[i].attempts = 1;
      SetBranch(static_cast<int>(i), BranchState::kPreparing, "attempt 1");
      LaunchCall(static_cast<int>(i), BranchOp::kPrepare);
    }
  }
  Pump();
}

void TwoPhase::RequestAbort(const std::string& reason, DecisionCallback done) {
  TREATY_ASSERT_ON(*ctx()->runner);
  if (state() == TxnState::kCommitting || state() == TxnState::kCommitted) {
    done(Status::Conflict("transaction " + gtid() + " is " + state_name() +
                          ": the commit decision is logged; it cannot be aborted"));
    return;
  }
  if (!Decided()) Decide(TxnState::kAborting, reason);
  AnswerWhenDecided(std::move(done));
  Pump();
}

Status TwoPhase::ForceAbort(const OperatorRequest& who) {
  TREATY_ASSERT_ON(*ctx()->runner);
  if (state() == TxnState::kCommitting) {
    return Status::Conflict("transaction " + gtid() + " is " + state_name() +
                            ": the commit decision is durable; it cannot be aborted (resolve "
                            "a stuck branch as COMMITTED once it is committed, or wait)");
  }
  if (finished() || IsTerminal(state())) {
    return Status::Conflict("transaction " + gtid() + " is already " + state_name() +
                            "; it cannot be aborted");
  }
  if (state() == TxnState::kAborting) {
    return Status::Conflict("transaction " + gtid() +
                            " is already aborting (resolve a stuck branch as ABORTED or wait)");
  }
  Event("", "operator", OperatorDetail("force abort", who));
  Decide(TxnState::kAborting,
         "operator abort by " + who.actor + (who.reason.empty() ? "" : ": " + who.reason));
  Pump();
  return Status::Ok();
}

Status TwoPhase::CheckResolve(int i, BranchState outcome) const {
  const Branch& b = branches_[i];
  const std::string where = "branch '" + b.spec.name + "' is " + ToString(b.state) + " in a " +
                            state_name() + " transaction";
  if (outcome == BranchState::kCommitted) {
    if (state() != TxnState::kCommitting || b.state != BranchState::kCommitting) {
      return Status::Conflict(where +
                              "; only a COMMITTING branch of a COMMITTING transaction "
                              "can be resolved as COMMITTED");
    }
  } else if (outcome == BranchState::kAborted) {
    const bool abortable = b.state == BranchState::kAborting || b.state == BranchState::kEnlisted ||
                           b.state == BranchState::kPreparing || b.state == BranchState::kPrepared;
    if (state() != TxnState::kAborting || !abortable) {
      return Status::Conflict(where +
                              "; only a branch of an ABORTING transaction not yet "
                              "ABORTED (nor READONLY) can be resolved as ABORTED");
    }
    if (op_in_flight(i) == BranchOp::kPrepare) {
      return Status::Conflict(where + " and its prepare call is in flight; wait for its answer");
    }
  } else {
    return Status::Conflict(where + "; a 2PC branch is resolved as COMMITTED or ABORTED");
  }
  return Status::Ok();
}

int TwoPhase::MarkResolved(int i, BranchState outcome) {
  TREATY_ASSERT_ON(*ctx()->runner);
  Branch& b = branches_[i];
  b.uncallable = false;
  b.state = outcome;
  b.last_error.clear();
  return b.attempts;
}

void TwoPhase::SetBranch(int i, BranchState state, const std::string& detail) {
  TREATY_ASSERT_ON(*ctx()->runner);
  Branch& b = branches_[i];
  b.state = state;
  RecordBranchState(b.spec.name, state, b.attempts, b.last_error, "branch", detail);
}

void TwoPhase::CancelTimers() {
  TREATY_ASSERT_ON(*ctx()->runner);
  if (deadline_timer_) deadline_timer_->Cancel();
  CancelRetries();
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
