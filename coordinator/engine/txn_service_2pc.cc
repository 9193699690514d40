// TxnService: the 2PC entry points (Begin2pc, RegisterBranch, Commit2pc,
// Abort2pc). See txn_service.h; the protocol's own rules are in
// engine/two_phase_protocol.h and engine/two_phase.h.

#include "engine/participant_urls.h"
#include "engine/states.h"
#include "engine/two_phase.h"
#include "engine/two_phase_protocol.h"
#include "engine/txn_service.h"

namespace treaty {

void TxnService::Begin2pc(TwoPhaseSpec spec, Callback<SubmitResult> done) {
  if (spec.gtid.empty()) spec.gtid = NewGtid();
  std::shared_ptr<const TxnSubmission> submission = NewTwoPhaseSubmission(std::move(spec));
  deps_.engine_runner->Post(
      [this, submission = std::move(submission), done = std::move(done)]() mutable {
        Submit(std::move(submission), /*wait=*/false, 0, std::move(done));
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
          if (auto s = CheckTwoPhaseClient(gtid, txn->spec().client, client); !s.ok()) {
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
          const bool two_phase = ParseTxnKind(row.kind) == TxnKind::k2pc;
          if (two_phase) {
            auto stored = StoredTwoPhaseSpec(row);
            if (auto s = CheckTwoPhaseClient(gtid, stored.ok() ? stored->client : "", client);
                !s.ok()) {
              done(std::move(s));
              return;
            }
          }
          const auto state = ParseTxnState(row.state);
          if (!two_phase) {
            done(Status::Conflict("transaction " + gtid + " is a " + row.kind +
                                  ", not a 2PC transaction"));
          } else if (state && IsTerminal(*state)) {
            done(Status::Conflict("transaction " + gtid + " is already " + row.state));
          } else {
            done(Status::Conflict("transaction " + gtid + " is " + row.state +
                                  " and driven by coordinator '" + row.owner +
                                  "', not this one; send the request there"));
          }
        });
      });
}

void TxnService::RegisterBranch(const std::string& gtid, BranchSpec branch,
                                const std::string& client, Callback<SubmitResult> done) {
  const size_t max = options_.two_phase.max_branches;
  With2pc(gtid, client, std::move(done),
          [gtid, branch = std::move(branch), max, policy = deps_.participant_policy](
              std::shared_ptr<TwoPhase> txn, Callback<SubmitResult> done) mutable {
            // The SSRF guard at enlistment (null policy: none; the parser
            // checked the URLs' syntax).
            if (auto s = policy ? CheckBranchUrls(branch, policy) : Status::Ok(); !s.ok()) {
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

void TxnService::AnswerDecision(const std::string& gtid, Result<TxnState> decision,
                                Callback<SubmitResult> done) {
  if (!decision.ok()) {
    done(decision.status());
    return;
  }
  const bool terminal = IsTerminal(*decision);
  if (terminal || !drivers_.count(gtid)) {
    done(SubmitResult{gtid, ToString(*decision), false, terminal});
    return;
  }
  // Decided: give phase 2 a moment so a quick one answers its final state.
  waiters_.Add(gtid, options_.phase_two_answer_wait_ms, false, std::move(done));
}

void TxnService::Commit2pc(const std::string& gtid, const std::string& client,
                           Callback<SubmitResult> done) {
  With2pc(gtid, client, std::move(done),
          [this, gtid](std::shared_ptr<TwoPhase> txn, Callback<SubmitResult> done) mutable {
            txn->RequestCommit([this, gtid, done = std::move(done)](Result<TxnState> r) mutable {
              AnswerDecision(gtid, std::move(r), std::move(done));
            });
          });
}

void TxnService::Abort2pc(const std::string& gtid, const std::string& client,
                          Callback<SubmitResult> done) {
  With2pc(gtid, client, std::move(done),
          [this, gtid](std::shared_ptr<TwoPhase> txn, Callback<SubmitResult> done) mutable {
            txn->RequestAbort("client requested abort",
                              [this, gtid, done = std::move(done)](Result<TxnState> r) mutable {
                                AnswerDecision(gtid, std::move(r), std::move(done));
                              });
          });
}

}  // namespace treaty
