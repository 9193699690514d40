// TxnDriver's log writes: sending the pending change as one fenced write,
// and what each answer of the log does (txn_driver.h "Failure of a write").

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/limits.h"
#include "common/text.h"
#include "engine/txn_driver.h"

namespace treaty {

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

void TxnDriver::Flush() {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (dropped_ || write_in_flight_ || !has_pending_) return;
  // A planned retry is logged at once: its time is what a restore rebuilds
  // the backoff from (next_attempt_at_ms - updated_at_ms).
  const bool retry_planned = (pending_.next_attempt_at_ms && *pending_.next_attempt_at_ms > 0) ||
                             std::any_of(pending_.branch_updates.begin(),
                                         pending_.branch_updates.end(), [](const BranchUpdate& u) {
                                           return u.next_attempt_at_ms && *u.next_attempt_at_ms > 0;
                                         });
  const bool waited_for = !pending_then_.empty() || pending_.create || retry_planned ||
                          hold_ahead_until_seq_ > sent_seq_ ||
                          std::any_of(durable_waiters_.begin(), durable_waiters_.end(),
                                      [this](const auto& w) { return w.first > sent_seq_; });
  const int64_t behind_ms = ctx_->options.write_behind_ms;
  if (!waited_for && behind_ms > 0) {
    // Written behind: within behind_ms, or sooner with a change waited for.
    if (!behind_timer_) {
      behind_timer_ = After(behind_ms, [this] {
        behind_timer_ = nullptr;
        FlushNow();
      });
    }
    return;
  }
  FlushNow();
}

void TxnDriver::FlushNow() {
  TREATY_ASSERT_ON(*ctx_->runner);
  if (dropped_ || write_in_flight_ || !has_pending_) return;
  if (behind_timer_) {
    behind_timer_->Cancel();
    behind_timer_ = nullptr;
  }
  TxnWrite w = std::move(pending_);
  auto thens = std::move(pending_then_);
  pending_ = TxnWrite();
  pending_then_.clear();
  has_pending_ = false;
  in_flight_since_ms_ = pending_since_ms_;
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
  TREATY_ASSERT_ON(*ctx_->runner);
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
  TREATY_ASSERT_ON(*ctx_->runner);
  write_in_flight_ = false;
  // The follow-ups below may Pump and so Flush the next write, which moves
  // in_flight_seq_ on: what this answer makes durable is the write sent
  // before them.
  const uint64_t written_seq = in_flight_seq_;
  if (dropped_) return;
  const bool was_create = write.create.has_value();
  if (status.ok()) {
    refused_writes_ = 0;
    log_failing_ = false;
    if (was_create && create_outcome_unknown_) {
      create_outcome_unknown_ = false;
      spdlog::warn("gtid={} the log confirmed the create after all; driving it", gtid_);
      if (on_confirmed_late) on_confirmed_late();
    } else if (was_create && on_created) {
      AnswerCreate(Status::Ok());
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
  log_failing_ = true;  // nothing goes ahead of the log until it answers again
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
  pending_since_ms_ = in_flight_since_ms_;  // it holds the failed write's changes
  write_in_flight_ = true;                  // hold off other flushes until the retry
  auto self = shared_from_this();
  ctx_->runner->PostAfter(ctx_->options.log_retry_backoff_ms, [self] {
    self->write_in_flight_ = false;
    self->Flush();
  });
}

void TxnDriver::AnswerCreate(Status status) {
  auto answer = std::move(on_created);
  on_created = nullptr;
  answer(std::move(status));
}

void TxnDriver::OnCreateFailed(Status status, TxnWrite write,
                               std::vector<std::function<void()>> thens) {
  TREATY_ASSERT_ON(*ctx_->runner);
  const bool unknown = status.code() == StatusCode::kUnavailable ||
                       status.code() == StatusCode::kInternal ||
                       (status.code() == StatusCode::kTimedOut && create_outcome_unknown_);
  if (!unknown) {
    spdlog::warn("gtid={} create failed: {}", gtid_, status.ToString());
    if (!create_outcome_unknown_ && on_created) AnswerCreate(status);
    Drop(status);
    return;
  }
  if (!create_outcome_unknown_) {
    create_outcome_unknown_ = true;
    spdlog::warn("gtid={} the log did not confirm the create ({}); sending it again until it does",
                 gtid_, status.ToString());
    if (on_created) AnswerCreate(status);
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
  TREATY_ASSERT_ON(*ctx_->runner);
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
  pending_since_ms_ = in_flight_since_ms_;  // it holds the refused write's changes
  Flush();
}

}  // namespace treaty
