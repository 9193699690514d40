// TxnDriver's branch calls: launching a participant call, scheduling and
// firing retries, operator retry-now, cancellation and recovery of logged
// attempts, shared by Saga and TwoPhase (see txn_driver.h "Branch calls").

#include <spdlog/spdlog.h>

#include "engine/txn_driver.h"

namespace treaty {

TxnDriver::BranchCall& TxnDriver::Call(int i) {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (static_cast<size_t>(i) >= calls_.size()) calls_.resize(i + 1);
  return calls_[i];
}

bool TxnDriver::call_in_flight(int i) const {
  return static_cast<size_t>(i) < calls_.size() && calls_[i].in_flight;
}

std::optional<BranchOp> TxnDriver::op_in_flight(int i) const {
  if (!call_in_flight(i)) return std::nullopt;
  return calls_[i].in_flight_op;
}

bool TxnDriver::retry_scheduled(int i) const {
  return static_cast<size_t>(i) < calls_.size() && calls_[i].timer != nullptr;
}

bool TxnDriver::call_held(int i) const {
  return static_cast<size_t>(i) < calls_.size() && calls_[i].held;
}

void TxnDriver::LaunchCall(int i, BranchOp op, bool ahead) {
  TREATY_ASSERT_ON(*ctx_->runner);
  BranchCall& c = Call(i);
  if (paused_) {
    if (!c.held) {
      spdlog::debug("gtid={} {} of {} held: paused", gtid(), ToString(op), BranchName(i));
    }
    c.held = true;
    c.op = op;
    return;
  }
  c.held = false;
  c.in_flight = true;
  c.in_flight_op = op;
  const uint64_t generation = c.generation;
  ParticipantRequest req = CallRequest(i, op);
  req.op = ToString(op);
  CallWhenDurable(
      std::move(req),
      [this, i, op, generation](const ParticipantResponse& r) {
        BranchCall& call = Call(i);
        if (call.generation != generation) {
          // Resolved by an operator meanwhile (DiscardCall): not this call's to decide.
          Event(BranchName(i), "call",
                std::string(ToString(op)) + " " + DescribeResponse(r) +
                    " (ignored: the branch was resolved by an operator)");
          return;
        }
        call.in_flight = false;
        OnCallResult(i, op, r);
      },
      [this, i, op, generation] { return Call(i).generation == generation && SendStillWanted(op); },
      ahead);
}

bool TxnDriver::SendAttempt(int i, BranchOp op) {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (paused_) {
    LaunchCall(i, op);  // held; the log keeps it as planned
    return false;
  }
  RecordAttemptSent(BranchName(i), AttemptOfCall(i, op));
  LaunchCall(i, op);
  return true;
}

void TxnDriver::ReleaseHeldCalls() {
  TREATY_ASSERT_ON(*ctx_->runner);
  for (size_t n = 0; n < calls_.size(); ++n) {
    const int i = static_cast<int>(n);
    if (!calls_[n].held) continue;
    calls_[n].held = false;
    const BranchOp op = calls_[n].op;
    if (call_in_flight(i) || retry_scheduled(i) || !RetryStillDue(i, op)) continue;
    SendAttempt(i, op);
  }
}

void TxnDriver::DiscardCall(int i) {
  TREATY_ASSERT_ON(*ctx_->runner);
  CancelRetry(i);
  BranchCall& c = Call(i);
  ++c.generation;
  c.in_flight = false;
}

void TxnDriver::ScheduleRetry(int i, BranchOp op, int64_t delay_ms) {
  TREATY_ASSERT_ON(*ctx_->runner);
  Call(i).op = op;
  Call(i).timer = After(delay_ms, [this, i, op] {
    BranchCall& c = Call(i);
    if (!c.timer) return;  // cancelled
    c.timer.reset();
    if (RetryStillDue(i, op)) SendAttempt(i, op);
    Pump();
  });
}

void TxnDriver::CancelRetry(int i) {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (static_cast<size_t>(i) >= calls_.size()) return;
  BranchCall& c = calls_[i];
  if (c.timer) c.timer->Cancel();
  c.timer.reset();
  c.held = false;
}

void TxnDriver::CancelRetries() {
  TREATY_ASSERT_ON(*ctx_->runner);
  for (size_t i = 0; i < calls_.size(); ++i) CancelRetry(static_cast<int>(i));
}

int TxnDriver::RetryScheduledNow() {
  TREATY_ASSERT_ON(*ctx_->runner);
  int fired = 0;
  for (size_t n = 0; n < calls_.size(); ++n) {
    const int i = static_cast<int>(n);
    if (!calls_[n].timer) continue;
    const BranchOp op = calls_[n].op;
    CancelRetry(i);
    OnOperatorRetry(i);
    if (!RetryStillDue(i, op)) continue;
    if (SendAttempt(i, op)) ++fired;
  }
  return fired;
}

void TxnDriver::ResumeRestoredCall(int i, BranchOp op, const std::string& branch,
                                   const std::string& attempt, int64_t planned_at_ms,
                                   int64_t max_wait_ms) {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (planned_at_ms > 0) {
    const int64_t wait = RemainingWait(planned_at_ms, max_wait_ms);
    Event(branch, "recovery",
          attempt + " was planned, not sent; " +
              (paused() ? std::string("held while the transaction is paused")
                        : "sending it in " + std::to_string(wait) + " ms"));
    ScheduleRetry(i, op, wait);
  } else {
    // The driver's Pump sends it again: the same attempt, whose outcome was not logged.
    Event(branch, "recovery",
          attempt + " was sent, its outcome not logged; " +
              (paused() ? "resending it once the transaction is resumed" : "resending it"));
  }
}

}  // namespace treaty
