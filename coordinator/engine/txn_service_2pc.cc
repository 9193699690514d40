// TxnService: the 2PC entry points (Begin2pc, RegisterBranch, Commit2pc,
// Abort2pc) and adoption of 2PC transactions. See txn_service.h.

#include <spdlog/spdlog.h>

#include "common/endpoint.h"
#include "common/json_input.h"
#include "engine/states.h"
#include "engine/two_phase.h"
#include "engine/txn_service.h"

namespace treaty {
namespace {

// The binding of a 2PC transaction to the client that began it (txn_service.h):
// `begun_by` is the stored client, `caller` the caller's name (either empty:
// authentication was or is off, anyone may).
Status CheckClient(const std::string& gtid, const std::string& begun_by,
                   const std::string& caller) {
  if (begun_by.empty() || caller.empty() || begun_by == caller) return Status::Ok();
  return Status::PermissionDenied("2PC transaction '" + gtid + "' was begun by another client");
}

// Whether two begins ask for the same options (the client aside: a
// transaction begun with authentication off is the same begin with it on).
bool SameOptions(TwoPhaseSpec a, TwoPhaseSpec b) {
  a.client.clear();
  b.client.clear();
  return ToJson(a) == ToJson(b);
}

// The spec of a logged 2PC transaction, read as recovery reads it.
Result<TwoPhaseSpec> StoredSpec(const TxnRow& row) {
  auto body = ParseJson(row.spec, "the stored spec", 2 * limits::kMaxJsonDepth);
  if (!body.ok()) return body.status();
  TwoPhaseLimits stored;
  stored.stored = true;
  return ParseTwoPhaseSpec(*body, stored);
}

}  // namespace

void TxnService::Begin2pc(TwoPhaseSpec spec, Callback<SubmitResult> done) {
  if (spec.gtid.empty()) spec.gtid = NewGtid();
  deps_.engine_runner->Post([this, spec = std::move(spec), done = std::move(done)]() mutable {
    const std::string gtid = spec.gtid;
    if (auto it = drivers_.find(gtid); it != drivers_.end()) {
      if (it->second->kind() != TxnKind::k2pc) {
        done(Status::Conflict("gtid " + gtid + " already exists with different options"));
        return;
      }
      const TwoPhaseSpec& existing = std::static_pointer_cast<TwoPhase>(it->second)->spec();
      if (auto s = CheckClient(gtid, existing.client, spec.client); !s.ok()) {
        done(std::move(s));
      } else if (!SameOptions(existing, spec)) {
        done(Status::Conflict("gtid " + gtid + " already exists with different options"));
      } else if (it->second->create_outcome_unknown()) {
        done(Status::Unavailable("the log has not confirmed the create of gtid " + gtid +
                                 " yet (outcome unknown); re-submitting the same gtid is safe"));
      } else {
        done(SubmitResult{gtid, it->second->state_name(), false, false});
      }
      return;
    }
    auto txn = TwoPhase::Create(&ctx_, spec);
    drivers_[gtid] = txn;
    CountActive();
    txn->on_created = [this, spec, done = std::move(done), gtid](Status s) mutable {
      if (s.ok()) {
        {
          std::lock_guard<std::mutex> l(counters_mu_);
          ++counters_.started;
        }
        if (deps_.observer) deps_.observer->OnStarted(gtid, states::k2pc);
        done(SubmitResult{gtid, states::kActive, true, false});
      } else if (s.code() == StatusCode::kConflict) {
        Answer2pcExisting(std::move(spec), std::move(done));
      } else if (s.code() == StatusCode::kInvalidArgument) {
        done(std::move(s));  // refused for its own data: a 4xx, not "try again"
      } else {
        done(Status::Unavailable("could not log the transaction: " + s.message()));
      }
    };
    txn->Start();
  });
}

void TxnService::Answer2pcExisting(TwoPhaseSpec spec, Callback<SubmitResult> done) {
  deps_.blocking_runner->Post([this, spec = std::move(spec), done = std::move(done)] {
    auto existing = deps_.store->GetTransactionNoEvents(spec.gtid);
    if (!existing.ok()) {
      done(existing.status().code() == StatusCode::kNotFound
               ? Status::Unavailable("gtid " + spec.gtid + " was created concurrently; retry")
               : existing.status());
      return;
    }
    const TxnRow& row = existing->txn;
    if (row.kind == states::k2pc) {
      if (auto stored = StoredSpec(row); stored.ok()) {
        if (auto s = CheckClient(spec.gtid, stored->client, spec.client); !s.ok()) {
          done(std::move(s));
          return;
        }
        if (SameOptions(*stored, spec)) {
          done(SubmitResult{row.gtid, row.state, false, states::IsTerminal(row.state)});
          return;
        }
      }
    }
    done(Status::Conflict("gtid " + spec.gtid + " already exists with a different body"));
  });
}

// Runs `fn` on the engine runner with the in-memory driver of `gtid` once
// `client` may drive it (PermissionDenied otherwise); when there is none,
// answers from the log why (NotFound, another client's, finished, not 2PC,
// or driven by a peer).
void TxnService::With2pc(
    const std::string& gtid, const std::string& client, Callback<SubmitResult> done,
    std::function<void(std::shared_ptr<TwoPhase>, Callback<SubmitResult>)> fn) {
  deps_.engine_runner->Post(
      [this, gtid, client, done = std::move(done), fn = std::move(fn)]() mutable {
        if (auto it = drivers_.find(gtid); it != drivers_.end()) {
          if (it->second->kind() != TxnKind::k2pc) {
            done(Status::Conflict("transaction " + gtid + " is a " + it->second->kind_name() +
                                  ", not a 2PC transaction"));
            return;
          }
          auto txn = std::static_pointer_cast<TwoPhase>(it->second);
          if (auto s = CheckClient(gtid, txn->spec().client, client); !s.ok()) {
            done(std::move(s));
            return;
          }
          fn(std::move(txn), std::move(done));
          return;
        }
        deps_.blocking_runner->Post([this, gtid, client, done = std::move(done)] {
          auto existing = deps_.store->GetTransactionNoEvents(gtid);
          if (!existing.ok()) {
            done(existing.status().code() == StatusCode::kNotFound
                     ? Status::NotFound("transaction " + gtid + " not found")
                     : existing.status());
            return;
          }
          const TxnRow& row = existing->txn;
          if (row.kind == states::k2pc) {
            auto stored = StoredSpec(row);
            if (auto s = CheckClient(gtid, stored.ok() ? stored->client : "", client); !s.ok()) {
              done(std::move(s));
              return;
            }
          }
          if (row.kind != states::k2pc) {
            done(Status::Conflict("transaction " + gtid + " is a " + row.kind +
                                  ", not a 2PC transaction"));
          } else if (states::IsTerminal(row.state)) {
            done(Status::Conflict("transaction " + gtid + " is already " + row.state));
          } else {
            done(Status::Conflict("transaction " + gtid + " is " + row.state +
                                  " and driven by coordinator '" + row.owner +
                                  "', not this one; send the request there"));
          }
        });
      });
}

namespace {

// The SSRF guard at enlistment: the branch's prepare, commit and abort URLs
// must pass `policy` (null: no guard). InvalidArgument naming the field.
Status CheckBranchUrls(const ParticipantPolicy* policy, const BranchSpec& branch) {
  if (policy == nullptr) return Status::Ok();
  for (const auto& [url, key] :
       {std::pair{&branch.prepare, "'prepare'"}, std::pair{&branch.commit, "'commit'"},
        std::pair{&branch.abort, "'abort'"}}) {
    auto endpoint = ParseEndpoint(*url, key);
    if (!endpoint.ok()) return endpoint.status();
    if (auto s = policy->CheckUrl(*endpoint, key); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace

void TxnService::RegisterBranch(const std::string& gtid, BranchSpec branch,
                                const std::string& client, Callback<SubmitResult> done) {
  const size_t max = options_.two_phase.max_branches;
  With2pc(gtid, client, std::move(done),
          [gtid, branch = std::move(branch), max, policy = deps_.participant_policy](
              std::shared_ptr<TwoPhase> txn, Callback<SubmitResult> done) mutable {
            if (auto s = CheckBranchUrls(policy, branch); !s.ok()) {
              done(std::move(s));
              return;
            }
            auto weak = std::weak_ptr<TwoPhase>(txn);
            txn->Enlist(std::move(branch), max, [gtid, weak, done = std::move(done)](Status s) {
              if (!s.ok()) {
                done(s);
                return;
              }
              auto t = weak.lock();
              done(SubmitResult{gtid, t ? t->state_name() : states::kActive, true, false});
            });
          });
}

void TxnService::AnswerDecision(const std::string& gtid, Result<std::string> decision,
                                Callback<SubmitResult> done) {
  if (!decision.ok()) {
    done(decision.status());
    return;
  }
  if (states::IsTerminal(*decision) || !drivers_.count(gtid)) {
    done(SubmitResult{gtid, *decision, false, states::IsTerminal(*decision)});
    return;
  }
  // Decided: give phase 2 a moment so a quick one answers its final state.
  AddWaiter(gtid, options_.phase_two_answer_wait_ms, std::move(done), false);
}

void TxnService::Commit2pc(const std::string& gtid, const std::string& client,
                           Callback<SubmitResult> done) {
  With2pc(gtid, client, std::move(done),
          [this, gtid](std::shared_ptr<TwoPhase> txn, Callback<SubmitResult> done) mutable {
            txn->RequestCommit([this, gtid, done = std::move(done)](Result<std::string> r) mutable {
              AnswerDecision(gtid, std::move(r), std::move(done));
            });
          });
}

void TxnService::Abort2pc(const std::string& gtid, const std::string& client,
                          Callback<SubmitResult> done) {
  With2pc(gtid, client, std::move(done),
          [this, gtid](std::shared_ptr<TwoPhase> txn, Callback<SubmitResult> done) mutable {
            txn->RequestAbort("client requested abort",
                              [this, gtid, done = std::move(done)](Result<std::string> r) mutable {
                                AnswerDecision(gtid, std::move(r), std::move(done));
                              });
          });
}

void TxnService::Adopt2pc(const TxnDetail& detail) {
  auto txn = TwoPhase::Restore(&ctx_, detail);
  if (!txn.ok()) {
    spdlog::error("gtid={} cannot resume: {}", detail.txn.gtid, txn.status().ToString());
    return;
  }
  drivers_[detail.txn.gtid] = *txn;
  CountActive();
  (*txn)->Start();
}

}  // namespace treaty
