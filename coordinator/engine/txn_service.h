#pragma once

// TxnService: the one core every front end (REST, Thrift, tests) adapts.
// It creates and keeps the in-memory drivers of the transactions this
// coordinator owns, applies operator actions, and adopts transactions handed
// to it by recovery/takeover. What is protocol-specific (how a saga or a 2PC
// transaction is restored, what a repeated submission of one is) is behind
// TxnProtocol (engine/txn_protocol.h); held answers are TxnWaiters'.
//
//   SubmitSaga / Begin2pc ─► TxnSubmission ─► driver (created, logged) ─► answer
//   Adopt (Membership)    ─► TxnProtocols::Find(kind)->Restore ─► driver ─► Start
//   operator actions, 2PC calls ─► the driver in memory, else why not (from the log)
//
// Threading: public methods are thread-safe and never block; callbacks run
// on either the engine runner or the blocking runner and must not block.
// Driver state (drivers_, the waiters) lives on the engine runner only.
// Reads are not here: front ends use TxnQueries (engine/txn_queries.h).

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/ids.h"
#include "common/task_runner.h"
#include "engine/engine_context.h"
#include "engine/saga_spec.h"
#include "engine/submit_result.h"
#include "engine/two_phase_spec.h"
#include "engine/txn_adopter.h"
#include "engine/txn_driver.h"
#include "engine/txn_protocol.h"
#include "engine/txn_waiters.h"
#include "security/participant_policy.h"
#include "store/log_store.h"
#include "treaty/status.h"

namespace treaty {

class TwoPhase;

struct TxnServiceOptions {
  EngineOptions engine;
  int64_t max_wait_ms = 30000;  // upper bound of a `wait` request
  // 2PC commit/abort answer once the decision is durable, after waiting up
  // to this long for phase 2 to finish (so a quick one answers COMMITTED).
  int64_t phase_two_answer_wait_ms = 1000;
  TwoPhaseLimits two_phase;
};

struct TxnServiceDeps {
  TaskRunner* engine_runner = nullptr;    // serial: owns driver state
  TaskRunner* blocking_runner = nullptr;  // pool: blocking store reads
  ParticipantCaller* caller = nullptr;
  TxnLog* log = nullptr;
  LogStore* store = nullptr;
  std::string owner;  // this coordinator's id
  // Optional (metrics): told of every start, finish, drop and participant
  // call, on the engine runner, after TxnService's own bookkeeping.
  TxnObserver* observer = nullptr;
  // Optional (the SSRF guard): every participant URL of a submitted saga or
  // an enlisted branch must pass CheckUrl, else the submission is refused
  // with InvalidArgument naming the URL's field (REST 400). Must outlive the
  // service.
  const ParticipantPolicy* participant_policy = nullptr;
  // Optional: whether this coordinator, under the id the engine drives as,
  // still holds its lease (EngineContext::lease_held); called on the engine
  // runner, must be thread-safe and must not block. Null: always held.
  std::function<bool(const std::string& owner)> lease_held;
};

class TxnService : public TxnAdopter, private TxnObserver {
 public:
  template <typename T>
  using Callback = std::function<void(Result<T>)>;

  TxnService(TxnServiceDeps deps, TxnServiceOptions options);
  ~TxnService() override;

  // Logs a new saga durably, then drives it. The callback answers after the
  // create is durable (or, with `wait`, once terminal or after wait_ms).
  // An identical re-submission of a known gtid answers its current state
  // (created=false); a different body under the same gtid is Conflict.
  // When the log does not confirm the create in time the answer is
  // Unavailable ("outcome unknown"): the saga may or may not be logged; it
  // runs if it was (its driver keeps sending the create, see txn_driver.h),
  // and an identical re-submission is safe (Unavailable until the log
  // answers, then its state).
  void SubmitSaga(SagaSpec spec, bool wait, int64_t wait_ms, Callback<SubmitResult> done);

  // Operator actions (docs/operations.md "Operator actions"). Each is
  // recorded in the history (type "operator": actor, action, reason) and in
  // a log line once durable, and answers the state then. Errors:
  // NotFound (unknown gtid or branch), Conflict with the reason why the
  // action cannot apply in the current state (finished, commit decision
  // logged, branch not in a resolvable state, owned by a peer: send it
  // there), InvalidArgument (a required reason missing, an outcome that is
  // not one of the names below).
  //
  // Retry: every pending retry of the transaction is sent now.
  void Retry(const std::string& gtid, OperatorRequest who, Callback<SubmitResult> done);
  // ForceAbort: saga RUNNING -> COMPENSATING; 2PC ACTIVE/PREPARING ->
  // ABORTING. Conflict in any other state (a COMPENSATING saga or an
  // ABORTING 2PC is already undoing; a COMMITTING 2PC has a durable commit
  // decision).
  void ForceAbort(const std::string& gtid, OperatorRequest who, Callback<SubmitResult> done);
  // Pause: no participant call of this transaction is sent until Resume
  // (calls in flight finish; their answers are logged). Durable: a paused
  // transaction stays paused across restarts and takeovers. Deadlines still
  // apply to the decision (a paused ACTIVE 2PC past its deadline is decided
  // ABORTING, the aborts wait for Resume). Conflict when finished or paused.
  void Pause(const std::string& gtid, OperatorRequest who, Callback<SubmitResult> done);
  // Resume: the calls paused are planned again at once. Conflict when not
  // paused.
  void Resume(const std::string& gtid, OperatorRequest who, Callback<SubmitResult> done);
  // Resolve by hand: the operator fixed branch `branch` out of band and
  // tells the coordinator its outcome, which is recorded as if the
  // participant had acknowledged it; the transaction then continues.
  // `outcome` and the states it applies in:
  //   "COMPENSATED": a saga step that is COMPENSATING (COMPENSATING saga);
  //   "COMMITTED":   a 2PC branch that is COMMITTING (COMMITTING 2PC);
  //   "ABORTED":     a 2PC branch that is ABORTING (ABORTING 2PC).
  // A call in flight for that branch is ignored when it answers; a planned
  // retry is cancelled. `who.reason` is required (InvalidArgument).
  void Resolve(const std::string& gtid, const std::string& branch, const std::string& outcome,
               OperatorRequest who, Callback<SubmitResult> done);

  // --- 2PC (txn_service_2pc.cc; see engine/two_phase.h) ---
  // A transaction is bound to the client that began it (spec.client, the
  // caller's identity name; empty with authentication off): `client` below
  // is the caller's name, empty with authentication off. When both the
  // stored client and the caller's are set and differ, every call on the
  // transaction is PermissionDenied ("... was begun by another client")
  // before anything is read or changed; a repeated begin too, so another
  // client learns nothing of it.
  //
  // Logs a new ACTIVE transaction; answers once durable. A repeated begin of
  // a known gtid with the same options answers its state (created=false);
  // different options or a saga under that gtid: Conflict. Unavailable when
  // the log does not confirm the create in time (outcome unknown, as for
  // SubmitSaga).
  void Begin2pc(TwoPhaseSpec spec, Callback<SubmitResult> done);
  // Enlists a branch once durable. NotFound for an unknown gtid; Conflict
  // when not ACTIVE, not 2PC, driven by a peer, or the name is taken.
  void RegisterBranch(const std::string& gtid, BranchSpec branch, const std::string& client,
                      Callback<SubmitResult> done);
  // Runs the protocol; answers the decision (COMMITTING, COMMITTED,
  // ABORTING, ABORTED) once it is durable.
  void Commit2pc(const std::string& gtid, const std::string& client, Callback<SubmitResult> done);
  // Aborts; Conflict once the commit decision is logged.
  void Abort2pc(const std::string& gtid, const std::string& client, Callback<SubmitResult> done);

  // Recovery/takeover: starts drivers for transactions just claimed (each by
  // its kind's TxnProtocol; one of an unknown kind is logged and skipped).
  void Adopt(std::vector<TxnDetail> claimed) override;
  // Drain: sends every driver's pending change now (what is written behind
  // included) and runs `done` on the engine runner once each is durable, or
  // its driver dropped. Thread-safe (posts to the engine runner).
  void FlushAll(std::function<void()> done);
  // Drops every driver at once (this coordinator was declared dead) and sets
  // the owner id used from now on.
  void DropAllAndReown(const std::string& new_owner) override;
  // How many drivers are in memory (unfinished transactions driven here).
  // Thread-safe; a snapshot, possibly stale by the time it is read. (Starts,
  // finishes and calls are counted by the observer, CoordinatorMetrics.)
  int64_t active_drivers() const { return active_drivers_.load(std::memory_order_relaxed); }

 private:
  void OnFinished(const std::string& gtid, const std::string& kind,
                  const std::string& state) override;
  void OnDropped(const std::string& gtid, const Status& why) override;
  void OnCall(const std::string& op, CallOutcome outcome, int64_t latency_ms) override;

  // Engine runner: answers `submission` (an identical one in memory, or a
  // new driver, see SubmitSaga) or refuses it.
  void Submit(std::shared_ptr<const TxnSubmission> submission, bool wait, int64_t wait_ms,
              Callback<SubmitResult> done);
  // Answers a submission whose gtid already exists in the log (blocking
  // runner): its state if it is the same submission, else why not. (A create
  // of ours whose commit answer was lost never gets here: the LogWriter
  // recognizes its own row on a retry and answers OK, see
  // store/log_writer.h; an identical re-submission while our create's
  // outcome is unknown is answered 503.)
  void AnswerExisting(std::shared_ptr<const TxnSubmission> submission, bool wait, int64_t wait_ms,
                      Callback<SubmitResult> done);
  // Engine runner: keeps `driver` (drivers_, active_drivers_) and starts it.
  void StartDriver(std::shared_ptr<TxnDriver> driver);
  // A driver dropped with Internal (the log refused every write of it)
  // leaves a row owned by this live coordinator that nobody drives. Hands it
  // back (owner cleared, fenced on this owner), retried while the log is
  // unavailable, so recovery adopts it. (A create whose outcome is unknown is
  // not dropped: its driver sends it again until the log answers, see
  // engine/txn_driver.h.)
  void HandBack(const std::string& gtid);
  // 2PC helpers (txn_service_2pc.cc).
  // Runs `fn` with the driver of `gtid` once `client` may drive it.
  void With2pc(const std::string& gtid, const std::string& client, Callback<SubmitResult> done,
               std::function<void(std::shared_ptr<TwoPhase>, Callback<SubmitResult>)> fn);
  void AnswerDecision(const std::string& gtid, Result<TxnState> decision,
                      Callback<SubmitResult> done);
  // Publishes drivers_.size() as active_drivers_ (engine runner).
  void CountActive();
  // Runs an operator action (`apply` on the driver) on the engine runner;
  // `action` names it in the log line.
  void OperatorAction(const std::string& gtid, const std::string& action, OperatorRequest who,
                      Callback<SubmitResult> done,
                      std::function<Status(TxnDriver&, const OperatorRequest&)> apply);

  TxnServiceDeps deps_;
  TxnServiceOptions options_;
  EngineContext ctx_;
  const TxnProtocols protocols_ = TxnProtocols::Builtin();

  // Engine-runner-only state.
  std::map<std::string, std::shared_ptr<TxnDriver>> drivers_;
  TxnWaiters waiters_;

  // drivers_.size(), published for other threads.
  std::atomic<int64_t> active_drivers_{0};
};

}  // namespace treaty
