#include "engine/txn_service.h"

#include <random>

#include <spdlog/spdlog.h>

#include "common/endpoint.h"
#include "common/json_input.h"
#include "common/text.h"
#include "engine/saga.h"
#include "engine/states.h"

namespace treaty {

std::string NewGtid() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 1
  char buf[40];
  snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
           static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
           static_cast<unsigned>(lo >> 48),
           static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

namespace {

// The SSRF guard at submission: every participant URL of `spec` must pass
// `policy` (null: no guard). InvalidArgument naming the step and field.
Status CheckSagaUrls(const ParticipantPolicy* policy, const SagaSpec& spec) {
  if (policy == nullptr) return Status::Ok();
  for (const SagaStep& step : spec.steps) {
    const std::string where = "step '" + step.name + "': ";
    for (const auto& [url, key] :
         {std::pair{&step.action, "'action'"}, std::pair{&step.compensate, "'compensate'"}}) {
      auto endpoint = ParseEndpoint(*url, where + key);
      if (!endpoint.ok()) return endpoint.status();
      if (auto s = policy->CheckUrl(*endpoint, where + key); !s.ok()) return s;
    }
  }
  return Status::Ok();
}

}  // namespace

TxnService::TxnService(TxnServiceDeps deps, TxnServiceOptions options)
    : deps_(std::move(deps)), options_(options) {
  ctx_.runner = deps_.engine_runner;
  ctx_.caller = deps_.caller;
  ctx_.log = deps_.log;
  ctx_.observer = this;
  ctx_.owner = deps_.owner;
  ctx_.options = options_.engine;
}

TxnService::~TxnService() = default;

void TxnService::SubmitSaga(SagaSpec spec, bool wait, int64_t wait_ms,
                            Callback<SubmitResult> done) {
  if (spec.gtid.empty()) spec.gtid = NewGtid();
  wait_ms = std::min(wait_ms <= 0 ? options_.max_wait_ms : wait_ms, options_.max_wait_ms);
  deps_.engine_runner->Post([this, spec = std::move(spec), wait, wait_ms,
                             done = std::move(done)]() mutable {
    const std::string gtid = spec.gtid;
    if (auto s = CheckSagaUrls(deps_.participant_policy, spec); !s.ok()) {
      done(std::move(s));
      return;
    }
    if (auto it = drivers_.find(gtid); it != drivers_.end()) {
      if (it->second->spec_json() != DumpJson(ToJson(spec))) {
        done(Status::Conflict("gtid " + gtid + " already exists with a different body"));
      } else if (it->second->create_outcome_unknown()) {
        done(Status::Unavailable("the log has not confirmed the create of gtid " + gtid +
                                 " yet (outcome unknown); re-submitting the same gtid is safe"));
      } else if (wait) {
        AddWaiter(gtid, wait_ms, std::move(done), false);
      } else {
        done(SubmitResult{gtid, it->second->state_name(), false, false});
      }
      return;
    }
    auto saga = Saga::Create(&ctx_, spec);
    drivers_[gtid] = saga;
    CountActive();
    saga->on_created = [this, spec, wait, wait_ms, done = std::move(done), gtid](Status s) mutable {
      if (s.ok()) {
        {
          std::lock_guard<std::mutex> l(counters_mu_);
          ++counters_.started;
        }
        if (deps_.observer) deps_.observer->OnStarted(gtid, states::kSaga);
        if (wait) {
          AddWaiter(gtid, wait_ms, std::move(done), true);
        } else {
          done(SubmitResult{gtid, states::kRunning, true, false});
        }
      } else if (s.code() == StatusCode::kConflict) {
        AnswerExisting(std::move(spec), wait, wait_ms, std::move(done));
      } else if (s.code() == StatusCode::kInvalidArgument) {
        done(std::move(s));  // refused for its own data: a 4xx, not "try again"
      } else if (s.code() == StatusCode::kTimedOut) {
        done(Status::Unavailable("the saga was not logged (" + s.message() + "); re-submit it"));
      } else {
        // Outcome unknown: the driver keeps sending the create until the log
        // answers (engine/txn_driver.h); it runs if it was logged.
        done(
            Status::Unavailable("could not log the saga (outcome unknown; re-submitting the "
                                "same gtid is safe): " +
                                s.message()));
      }
    };
    saga->on_confirmed_late = [this, gtid] {
      {
        std::lock_guard<std::mutex> l(counters_mu_);
        ++counters_.started;
      }
      if (deps_.observer) deps_.observer->OnStarted(gtid, states::kSaga);
    };
    saga->Start();
  });
}

Result<TxnRow> TxnService::FindSameSubmission(const std::string& gtid, const std::string& kind,
                                              const nlohmann::json& spec) {
  auto existing = deps_.store->GetTransactionNoEvents(gtid);
  if (!existing.ok()) {
    if (existing.status().code() == StatusCode::kNotFound) {
      return Status::Unavailable("gtid " + gtid + " was created concurrently; retry");
    }
    return existing.status();
  }
  TxnRow& row = existing->txn;
  Result<nlohmann::json> stored = ParseJson(row.spec, "the stored spec", 2 * limits::kMaxJsonDepth);
  if (row.kind != kind || !stored.ok() || *stored != spec) {
    return Status::Conflict("gtid " + gtid + " already exists with a different body");
  }
  return std::move(row);
}

void TxnService::AnswerExisting(SagaSpec spec, bool wait, int64_t wait_ms,
                                Callback<SubmitResult> done) {
  deps_.blocking_runner->Post(
      [this, spec = std::move(spec), wait, wait_ms, done = std::move(done)]() mutable {
        auto found = FindSameSubmission(spec.gtid, states::kSaga, ToJson(spec));
        if (!found.ok()) {
          done(found.status());
          return;
        }
        const TxnRow& row = *found;
        const bool terminal = states::IsTerminal(row.state);
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
              AddWaiter(gtid, wait_ms, std::move(done), false);
            });
      });
}

void TxnService::AddWaiter(const std::string& gtid, int64_t wait_ms, Callback<SubmitResult> done,
                           bool created) {
  auto answered = std::make_shared<bool>(false);
  auto timer = deps_.engine_runner->PostAfter(wait_ms, [this, gtid, answered] {
    if (*answered) return;
    for (auto it = waiters_.lower_bound(gtid); it != waiters_.upper_bound(gtid); ++it) {
      if (it->second.answered != answered) continue;
      *answered = true;
      auto d = drivers_.find(gtid);
      std::string state = d == drivers_.end() ? "" : d->second->state_name();
      it->second.done(SubmitResult{gtid, state, it->second.created, false, true});
      waiters_.erase(it);
      return;
    }
  });
  waiters_.emplace(gtid, Waiter{std::move(done), timer, created, answered});
}

void TxnService::FireWaiters(const std::string& gtid, const std::string& state) {
  auto range = waiters_.equal_range(gtid);
  for (auto it = range.first; it != range.second; ++it) {
    *it->second.answered = true;
    if (it->second.timer) it->second.timer->Cancel();
    it->second.done(SubmitResult{gtid, state, it->second.created, true});
  }
  waiters_.erase(range.first, range.second);
}

void TxnService::Get(const std::string& gtid, bool with_events, Callback<TxnDetail> done) {
  deps_.blocking_runner->Post([this, gtid, with_events, done = std::move(done)] {
    done(with_events ? deps_.store->GetTransaction(gtid)
                     : deps_.store->GetTransactionNoEvents(gtid));
  });
}

void TxnService::List(const ListFilter& filter, Callback<TxnPage> done) {
  deps_.blocking_runner->Post(
      [this, filter, done = std::move(done)] { done(deps_.store->ListTransactions(filter)); });
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
      if (states::IsTerminal(row.state)) {
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
      if (detail.txn.kind == states::k2pc) {
        Adopt2pc(detail);
        continue;
      }
      if (detail.txn.kind != states::kSaga) {
        spdlog::error("gtid={} cannot adopt transaction of kind '{}'", gtid, detail.txn.kind);
        continue;
      }
      auto saga = Saga::Restore(&ctx_, detail);
      if (!saga.ok()) {
        spdlog::error("gtid={} cannot resume: {}", gtid, saga.status().ToString());
        continue;
      }
      drivers_[gtid] = *saga;
      CountActive();
      (*saga)->Start();
    }
  });
}

void TxnService::DropAllAndReown(const std::string& new_owner) {
  deps_.engine_runner->Post([this, new_owner] {
    auto all = std::move(drivers_);
    drivers_.clear();
    for (auto& [gtid, d] : all) d->Drop(Status::LostOwnership("coordinator re-registered"));
    ctx_.owner = new_owner;
    spdlog::warn("dropped {} in-memory transactions; now coordinator {}", all.size(), new_owner);
  });
}

void TxnService::CountActive() {
  std::lock_guard<std::mutex> l(counters_mu_);
  counters_.active = static_cast<int64_t>(drivers_.size());
}

ServiceCounters TxnService::counters() const {
  std::lock_guard<std::mutex> l(counters_mu_);
  return counters_;
}

void TxnService::OnFinished(const std::string& gtid, const std::string& kind,
                            const std::string& state) {
  {
    std::lock_guard<std::mutex> l(counters_mu_);
    (state == states::kCommitted ? counters_.committed : counters_.aborted)++;
  }
  if (deps_.observer) deps_.observer->OnFinished(gtid, kind, state);
  FireWaiters(gtid, state);
  drivers_.erase(gtid);
  std::lock_guard<std::mutex> l(counters_mu_);
  counters_.active = static_cast<int64_t>(drivers_.size());
}

void TxnService::OnDropped(const std::string& gtid, const Status& why) {
  if (deps_.observer) deps_.observer->OnDropped(gtid, why);
  auto it = drivers_.find(gtid);
  if (it != drivers_.end() && it->second->dropped()) drivers_.erase(it);
  // The log refused every write of it (TxnDriver::RewriteRefused): hand it
  // back so that recovery resumes it from what the log holds.
  if (why.code() == StatusCode::kInternal) HandBack(gtid);
  std::lock_guard<std::mutex> l(counters_mu_);
  counters_.active = static_cast<int64_t>(drivers_.size());
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
  std::lock_guard<std::mutex> l(counters_mu_);
  switch (outcome) {
    case CallOutcome::kOk:
      ++counters_.calls_ok;
      break;
    case CallOutcome::kBusinessFailure:
    case CallOutcome::kUncallable:  // permanent, like a refusal
      ++counters_.calls_business_failure;
      break;
    case CallOutcome::kTransient:
      ++counters_.calls_transient;
      break;
  }
}

}  // namespace treaty
