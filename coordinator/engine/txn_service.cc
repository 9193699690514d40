#include "engine/txn_service.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/text.h"
#include "engine/saga_protocol.h"
#include "engine/states.h"

namespace treaty {

TxnService::TxnService(TxnServiceDeps deps, TxnServiceOptions options)
    : deps_(std::move(deps)),
      options_(options),
      waiters_(deps_.engine_runner, [this](const std::string& gtid) -> std::string {
        auto d = drivers_.find(gtid);
        return d == drivers_.end() ? "" : d->second->state_name();
      }) {
  ctx_.runner = deps_.engine_runner;
  ctx_.caller = deps_.caller;
  ctx_.log = deps_.log;
  ctx_.observer = this;
  ctx_.owner = deps_.owner;
  ctx_.options = options_.engine;
  ctx_.lease_held = deps_.lease_held;
}

TxnService::~TxnService() = default;

void TxnService::SubmitSaga(SagaSpec spec, bool wait, int64_t wait_ms,
                            Callback<SubmitResult> done) {
  if (spec.gtid.empty()) spec.gtid = NewGtid();
  wait_ms = std::min(wait_ms <= 0 ? options_.max_wait_ms : wait_ms, options_.max_wait_ms);
  std::shared_ptr<const TxnSubmission> submission = NewSagaSubmission(std::move(spec));
  deps_.engine_runner->Post(
      [this, submission = std::move(submission), wait, wait_ms, done = std::move(done)]() mutable {
        Submit(std::move(submission), wait, wait_ms, std::move(done));
      });
}

void TxnService::Submit(std::shared_ptr<const TxnSubmission> submission, bool wait, int64_t wait_ms,
                        Callback<SubmitResult> done) {
  TREATY_ASSERT_ON(*deps_.engine_runner);
  const std::string gtid = submission->gtid();
  if (auto s = submission->Check(deps_.participant_policy); !s.ok()) {
    done(std::move(s));
    return;
  }
  if (auto it = drivers_.find(gtid); it != drivers_.end()) {
    if (auto s = submission->SameAs(*it->second); !s.ok()) {
      done(std::move(s));
    } else if (it->second->create_outcome_unknown()) {
      done(Status::Unavailable("the log has not confirmed the create of gtid " + gtid +
                               " yet (outcome unknown); re-submitting the same gtid is safe"));
    } else if (wait) {
      waiters_.Add(gtid, wait_ms, false, std::move(done));
    } else {
      done(SubmitResult{gtid, it->second->state_name(), false, false});
    }
    return;
  }
  auto driver = submission->Create(&ctx_);
  const std::string initial_state = driver->state_name();
  const std::string kind = ToString(submission->kind());
  driver->on_created = [this, submission, wait, wait_ms, done = std::move(done), gtid,
                        initial_state, kind](Status s) mutable {
    const std::string noun = submission->noun();
    if (s.ok()) {
      if (deps_.observer) deps_.observer->OnStarted(gtid, kind);
      if (wait) {
        waiters_.Add(gtid, wait_ms, true, std::move(done));
      } else {
        done(SubmitResult{gtid, initial_state, true, false});
      }
    } else if (s.code() == StatusCode::kConflict) {
      AnswerExisting(std::move(submission), wait, wait_ms, std::move(done));
    } else if (s.code() == StatusCode::kInvalidArgument) {
      done(std::move(s));  // refused for its own data: a 4xx, not "try again"
    } else if (s.code() == StatusCode::kTimedOut) {
      done(Status::Unavailable("the " + noun + " was not logged (" + s.message() +
                               "); re-submit it"));
    } else {
      // Outcome unknown: the driver keeps sending the create until the log
      // answers (engine/txn_driver.h); it runs if it was logged.
      done(Status::Unavailable(
          "could not log the " + noun +
          " (outcome unknown; re-submitting the same gtid is safe): " + s.message()));
    }
  };
  driver->on_confirmed_late = [this, gtid, kind] {
    if (deps_.observer) deps_.observer->OnStarted(gtid, kind);
  };
  StartDriver(std::move(driver));
}

void TxnService::AnswerExisting(std::shared_ptr<const TxnSubmission> submission, bool wait,
                                int64_t wait_ms, Callback<SubmitResult> done) {
  deps_.blocking_runner->Post(
      [this, submission = std::move(submission), wait, wait_ms, done = std::move(done)]() mutable {
        const std::string& gtid = submission->gtid();
        auto existing = deps_.store->GetTransactionNoEvents(gtid);
        if (!existing.ok()) {
          done(existing.status().code() == StatusCode::kNotFound
                   ? Status::Unavailable("gtid " + gtid + " was created concurrently; retry")
                   : existing.status());
          return;
        }
        const TxnRow& row = existing->txn;
        if (auto s = submission->SameAs(row); !s.ok()) {
          done(std::move(s));
          return;
        }
        const auto state = ParseTxnState(row.state);
        const bool terminal = state && IsTerminal(*state);
        if (!wait || terminal) {
          done(SubmitResult{row.gtid, row.state, false, terminal});
          return;
        }
        deps_.engine_runner->Post(
            [this, gtid = row.gtid, state = row.state, wait_ms, done = std::move(done)]() mutable {
              if (!drivers_.count(gtid)) {
                // Driven elsewhere (or not yet adopted): answer what the log says.
                done(SubmitResult{gtid, state, false, false});
                return;
              }
              waiters_.Add(gtid, wait_ms, false, std::move(done));
            });
      });
}

void TxnService::StartDriver(std::shared_ptr<TxnDriver> driver) {
  TREATY_ASSERT_ON(*deps_.engine_runner);
  drivers_[driver->gtid()] = driver;
  CountActive();
  driver->Start();
}

void TxnService::Retry(const std::string& gtid, OperatorRequest who, Callback<SubmitResult> done) {
  OperatorAction(gtid, "retry", std::move(who), std::move(done),
                 [](TxnDriver& d, const OperatorRequest& w) { return d.RetryNow(w); });
}

void TxnService::ForceAbort(const std::string& gtid, OperatorRequest who,
                            Callback<SubmitResult> done) {
  OperatorAction(gtid, "force abort", std::move(who), std::move(done),
                 [](TxnDriver& d, const OperatorRequest& w) { return d.ForceAbort(w); });
}

void TxnService::Pause(const std::string& gtid, OperatorRequest who, Callback<SubmitResult> done) {
  OperatorAction(gtid, "pause", std::move(who), std::move(done),
                 [](TxnDriver& d, const OperatorRequest& w) { return d.Pause(w); });
}

void TxnService::Resume(const std::string& gtid, OperatorRequest who, Callback<SubmitResult> done) {
  OperatorAction(gtid, "resume", std::move(who), std::move(done),
                 [](TxnDriver& d, const OperatorRequest& w) { return d.Resume(w); });
}

void TxnService::Resolve(const std::string& gtid, const std::string& branch,
                         const std::string& outcome, OperatorRequest who,
                         Callback<SubmitResult> done) {
  OperatorAction(gtid, "resolve branch '" + branch + "' as " + outcome, std::move(who),
                 std::move(done), [branch, outcome](TxnDriver& d, const OperatorRequest& w) {
                   return d.Resolve(branch, outcome, w);
                 });
}

void TxnService::OperatorAction(const std::string& gtid, const std::string& action,
                                OperatorRequest who, Callback<SubmitResult> done,
                                std::function<Status(TxnDriver&, const OperatorRequest&)> apply) {
  deps_.engine_runner->Post([this, gtid, action, who = std::move(who), done = std::move(done),
                             apply = std::move(apply)]() mutable {
    if (auto it = drivers_.find(gtid); it != drivers_.end()) {
      auto driver = it->second;
      Status s = apply(*driver, who);
      if (!s.ok()) {
        done(s);
        return;
      }
      // Answered once the action (its history event) is durable.
      driver->WhenDurable([gtid, action, who, driver, done = std::move(done)](Status durable) {
        if (!durable.ok()) {
          done(durable);
          return;
        }
        spdlog::info("gtid={} operator {} by {}: {}", gtid, action, EscapeControl(who.actor),
                     who.reason.empty() ? "no reason given" : EscapeControl(who.reason));
        SubmitResult r{gtid, driver->state_name(), false, driver->finished()};
        r.paused = driver->paused();
        done(std::move(r));
      });
      return;
    }
    deps_.blocking_runner->Post([this, gtid, done = std::move(done)] {
      auto existing = deps_.store->GetTransactionNoEvents(gtid);
      if (!existing.ok()) {
        done(existing.status());
        return;
      }
      const TxnRow& row = existing->txn;
      const auto state = ParseTxnState(row.state);
      if (state && IsTerminal(*state)) {
        done(Status::Conflict("transaction " + gtid + " is already " + row.state));
      } else {
        done(Status::Conflict("transaction " + gtid + " is driven by coordinator '" + row.owner +
                              "', not this one; send the request there (or wait for takeover)"));
      }
    });
  });
}

void TxnService::Adopt(std::vector<TxnDetail> claimed) {
  deps_.engine_runner->Post([this, claimed = std::move(claimed)] {
    for (const auto& detail : claimed) {
      const std::string& gtid = detail.txn.gtid;
      if (drivers_.count(gtid)) continue;
      const TxnProtocol* protocol = protocols_.Find(detail.txn.kind);
      if (protocol == nullptr) {
        spdlog::error("gtid={} cannot adopt transaction of kind '{}'", gtid, detail.txn.kind);
        continue;
      }
      auto driver = protocol->Restore(&ctx_, detail);
      if (!driver.ok()) {
        spdlog::error("gtid={} cannot resume: {}", gtid, driver.status().ToString());
        continue;
      }
      StartDriver(std::move(*driver));
    }
  });
}

void TxnService::DropAllAndReown(const std::string& new_owner) {
  deps_.engine_runner->Post([this, new_owner] {
    // Held answers first, while the drivers still tell their states.
    waiters_.ExpireAll();
    auto all = std::move(drivers_);
    drivers_.clear();
    CountActive();
    for (auto& [gtid, d] : all) d->Drop(Status::LostOwnership("coordinator re-registered"));
    ctx_.owner = new_owner;
    spdlog::warn("dropped {} in-memory transactions; now coordinator {}", all.size(), new_owner);
  });
}

void TxnService::FlushAll(std::function<void()> done) {
  deps_.engine_runner->Post([this, done = std::move(done)] {
    // One count per driver and one for this loop, so `done` runs once, last.
    auto left = std::make_shared<size_t>(drivers_.size() + 1);
    auto one_done = [left, done] {
      if (--*left == 0) done();
    };
    for (auto& [gtid, driver] : drivers_) driver->WhenDurable([one_done](Status) { one_done(); });
    one_done();
  });
}

void TxnService::CountActive() {
  TREATY_ASSERT_ON(*deps_.engine_runner);
  active_drivers_.store(static_cast<int64_t>(drivers_.size()), std::memory_order_relaxed);
}

void TxnService::OnFinished(const std::string& gtid, const std::string& kind,
                            const std::string& state) {
  if (deps_.observer) deps_.observer->OnFinished(gtid, kind, state);
  waiters_.Finished(gtid, state);
  drivers_.erase(gtid);
  CountActive();
}

void TxnService::OnDropped(const std::string& gtid, const Status& why) {
  if (deps_.observer) deps_.observer->OnDropped(gtid, why);
  auto it = drivers_.find(gtid);
  if (it != drivers_.end() && it->second->dropped()) drivers_.erase(it);
  // The log refused every write of it (TxnDriver::RewriteRefused): hand it
  // back so that recovery resumes it from what the log holds.
  if (why.code() == StatusCode::kInternal) HandBack(gtid);
  CountActive();
}

void TxnService::HandBack(const std::string& gtid) {
  TxnWrite w;
  w.gtid = gtid;
  w.owner = ctx_.owner;
  w.now_ms = deps_.engine_runner->NowMs();
  w.release_owner = true;
  w.events.push_back({0, gtid, "", "recovery",
                      "this coordinator could not log the transaction; handed back for recovery",
                      w.now_ms});
  deps_.log->Write(std::move(w), [this, gtid](Status s) {
    deps_.engine_runner->Post([this, gtid, s] {
      if (s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kInternal ||
          s.code() == StatusCode::kTimedOut) {
        deps_.engine_runner->PostAfter(options_.engine.log_retry_backoff_ms,
                                       [this, gtid] { HandBack(gtid); });
      } else if (s.ok()) {
        spdlog::warn("gtid={} handed back for recovery", gtid);
      }
    });
  });
}

void TxnService::OnCall(const std::string& op, CallOutcome outcome, int64_t latency_ms) {
  if (deps_.observer) deps_.observer->OnCall(op, outcome, latency_ms);
}

}  // namespace treaty
