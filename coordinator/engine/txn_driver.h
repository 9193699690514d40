#pragma once

// TxnDriver: the in-memory driver of one transaction, base of Saga (and the
// 2PC driver). It implements the engine's one rule: plan -> log -> act.
// A subclass changes its in-memory state, records the change in Pending()
// and registers what to do once it is durable with AfterDurable(); Flush()
// sends the accumulated change as one fenced TxnWrite. At most one write per
// transaction is in flight, so writes apply in order; changes made meanwhile
// merge into the next write (natural batching).
//
// Failure of a write:
//  - LostOwnership / NotFound: another coordinator owns it now. The driver
//    drops all work at once (timers cancelled, late call results ignored)
//    and reports OnDropped. This is the fencing guarantee.
//  - Conflict on a create: reported to the creator (on_created); dropped.
//  - TimedOut on a first create: the LogWriter never attempted it (it waited
//    out its retry window behind an unavailable log): not logged; reported
//    to the creator; dropped. (On a create sent again it is still unknown.)
//  - Unavailable/Internal on a create: the outcome is unknown (the COMMIT may
//    have gone through, or may still be waiting, e.g. for a synchronous
//    standby). Reported to the creator once (on_created), but the driver is
//    NOT dropped: it sends the very same create again, flagged
//    create_outcome_unknown, every options.log_retry_backoff_ms until the log
//    answers definitively. OK, or Conflict with a row exactly its own (the
//    LogWriter reports that as OK): the create is confirmed (on_confirmed_late)
//    and the transaction is driven as usual. Any other Conflict: someone
//    else's row; dropped. Changes planned meanwhile (operator actions) wait
//    behind the create and are written once it is confirmed. A crash or
//    DropAllAndReown meanwhile leaves the row, if it committed, owned by
//    this coordinator: recovered like any other.
//  - InvalidArgument (a data error: the log cannot store this write's own
//    data) on a create: reported to the creator (the submitter gets a 4xx);
//    dropped.
//  - InvalidArgument on an update: never retried as it is (RewriteRefused).
//    The change, merged with anything newer, is written again reduced: first
//    with every free text (last_error, event detail) cut to a short valid
//    excerpt; if that is refused too, with only the transaction-level fields
//    (state, next attempt, attempts, deadline, hand-back), its branch changes
//    and history left out (recovery would redo those steps; participants are
//    idempotent). Both carry needs_attention and an "attention" history
//    event, and the follow-ups run: the transaction is flagged, not stuck.
//    Should even that be refused, the driver drops with Internal, so the
//    transaction is handed back for recovery.
//  - Unavailable/Internal on an update: the same change is retried after
//    options.log_retry_backoff_ms, merged with anything newer, never lost.
//
// Threading: every method runs on ctx->runner (the engine strand); not
// thread-safe otherwise. Every method that changes driver state asserts it
// (TREATY_ASSERT_ON: called from any other thread it aborts the process);
// const accessors do not. Create and Restore build a driver nobody else sees
// yet, but Create plans its first write, so it runs on ctx->runner too.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/trace_context.h"
#include "engine/engine_context.h"
#include "engine/states.h"

namespace treaty {

class TxnDriver : public std::enable_shared_from_this<TxnDriver> {
 public:
  TxnDriver(EngineContext* ctx, std::string gtid, TxnKind kind);
  virtual ~TxnDriver() = default;

  const std::string& gtid() const { return gtid_; }
  TxnKind kind() const { return kind_; }
  const char* kind_name() const { return ToString(kind_); }
  // The state as planned (may run ahead of the log by one write).
  TxnState state() const { return state_; }
  // Its stored name ("RUNNING", ...), for answers and messages.
  const char* state_name() const { return ToString(state_); }
  bool dropped() const { return dropped_; }
  // The normalized submission, as stored in the log's `spec` column.
  const std::string& spec_json() const { return spec_json_; }
  bool finished() const { return finished_; }

  // Begins driving (after creation or recovery).
  virtual void Start() = 0;
  // Operator actions (contract in engine/txn_service.h). Each answers at
  // once: OK means the change is planned (in memory, in the pending write,
  // with an "operator" history event "<action> by <actor>: <reason>");
  // WhenDurable tells when it is logged. Errors: Conflict saying why the
  // action cannot apply in the current state, NotFound (unknown branch),
  // InvalidArgument (Resolve: no reason, unknown outcome).
  //
  // RetryNow: every scheduled retry goes out now (none scheduled: OK, "0
  // calls resent"). Conflict once finished.
  Status RetryNow(const OperatorRequest& who);
  // ForceAbort: saga RUNNING -> COMPENSATING; 2PC ACTIVE/PREPARING -> ABORTING.
  virtual Status ForceAbort(const OperatorRequest& who) = 0;
  // Pause: from now on no participant call goes out (each is held, see
  // "Branch calls"); durable (TxnWrite.paused). Conflict when finished or
  // already paused.
  Status Pause(const OperatorRequest& who);
  // Resume: clears the pause (durable) and sends every held call. Conflict
  // when not paused.
  Status Resume(const OperatorRequest& who);
  // Resolve: records the outcome of branch `branch` given by the operator
  // ("COMPENSATED", "COMMITTED", "ABORTED") as if its participant had
  // acknowledged it; its retry is cancelled and a call in flight is ignored
  // when it answers. `who.reason` is required. The checks common to every
  // protocol are made here (reason, outcome, branch known: NotFound); the
  // protocol's own state rules are CheckResolve's.
  Status Resolve(const std::string& branch, const std::string& outcome, const OperatorRequest& who);
  bool paused() const { return paused_; }
  // Runs `done` on the runner once every change planned so far is durable
  // (at once when it already is); with Unavailable if the driver is dropped
  // first.
  void WhenDurable(std::function<void(Status)> done);
  // Stops driving at once: cancels timers, ignores late results.
  void Drop(const Status& why);

  // Called once after the create write's first answer (OK, Conflict,
  // InvalidArgument, or Unavailable/Internal: outcome unknown, see above),
  // or with Unavailable (outcome unknown) when the driver is dropped before
  // that answer (drain, re-registration), so the creator is always answered.
  std::function<void(Status)> on_created;
  // Called once if a create first answered with an unknown outcome is later
  // confirmed (the transaction now runs). Optional.
  std::function<void()> on_confirmed_late;
  // True while the create's outcome is unknown (sent, answered Unavailable,
  // not yet confirmed): the transaction may or may not be in the log.
  bool create_outcome_unknown() const { return create_outcome_unknown_; }

 protected:
  EngineContext* ctx() const { return ctx_; }
  TxnWrite& Pending();
  void AfterDurable(std::function<void()> then);
  // Sends the pending change as one write, unless a write is in flight (it
  // goes after that one). A change nobody waits for (no AfterDurable
  // follow-up, no WhenDurable waiter) is written behind instead: within
  // options.write_behind_ms, or sooner with a change that is waited for.
  void Flush();
  // Appends an event to the pending write and logs it.
  void Event(const std::string& branch, const std::string& type, const std::string& detail);
  // Sets the transaction state in the pending write; terminal states mark
  // the driver finished once durable and notify the observer, and clear the
  // transaction's last_error ("").
  void SetState(TxnState state, const std::string& why);
  // Plans what follows a change; flushes the pending write.
  virtual void Pump() = 0;
  // Runs `fn` on the runner after `delay_ms`, unless the driver has been
  // dropped (or destroyed) by then.
  std::shared_ptr<TaskRunner::Timer> After(int64_t delay_ms, std::function<void()> fn);
  // Sends `request` once everything planned so far is durable. The answer
  // comes back on the runner: unless the driver was dropped meanwhile, it is
  // reported to the observer, handed to `on_result`, and Pump() runs.
  // `still_wanted`, if given, is asked on the runner once the write is
  // durable: false means the decision changed (or an operator resolved the
  // branch) while the write was waiting
  // (a saga began compensating), so the call is not sent and `on_result`
  // gets a kTransient answer saying so (no participant was called).
  //
  // `ahead` (write-behind, EngineOptions::write_behind_ms): the call goes out
  // at once, without waiting for the pending change to be logged, if
  //  - write-behind is on and this driver logged its create itself (a
  //    restored transaction never goes ahead);
  //  - the create is confirmed and no operator change is waiting to be
  //    logged (HoldAheadUntilLogged);
  //  - nothing unlogged is older than write_behind_ms (a write in flight that
  //    long, e.g. behind a stalled log, stops it), and this transaction's
  //    last write did not fail as Unavailable;
  //  - this coordinator holds its lease (EngineContext::lease_held).
  // Otherwise it waits as above. Only a saga step's first action attempt
  // asks for it.
  void CallWhenDurable(ParticipantRequest request,
                       std::function<void(const ParticipantResponse&)> on_result,
                       std::function<bool()> still_wanted = nullptr, bool ahead = false);
  // Whether a call asked to go `ahead` of its log write may (see above).
  bool MaySendAhead() const;
  // No call goes ahead until the change pending now (an operator's) is
  // durable: the log has it before anything it allows is acted on.
  void HoldAheadUntilLogged();
  // Records a branch's new state: a BranchUpdate (next retry cleared) and a
  // history event of `event_type`. A non-empty `last_error` (the branch's
  // call failed) is also the transaction's last_error (NoteCallFailed).
  void RecordBranchState(const std::string& name, BranchState state, int attempts,
                         const std::string& last_error, const std::string& event_type,
                         const std::string& detail);
  // Records a retry of a branch planned in `delay_ms`: `attempts` (if given:
  // the number of the planned attempt), last error (also the transaction's,
  // NoteCallFailed), next attempt time, and a "retry" history event written
  // with EventRow::collapse: the retries of one branch in a row are ONE event
  // in the log (count, first and last time, `detail` of the latest), so
  // `detail` must name the error. No other event is written per failed
  // attempt. In the log, next_attempt_at_ms > 0 means "the next attempt is
  // planned for then and not sent" (docs/schema.md "Attempts and retries").
  void RecordRetry(const std::string& name, std::optional<int> attempts,
                   const std::string& last_error, int64_t delay_ms, const std::string& detail);
  // Records that a branch's planned attempt goes out now: `attempt` (if
  // given) set, next attempt time cleared (0 = "sent, outcome unknown until
  // logged"), no history event. Send the call with CallWhenDurable, so that
  // the log says "sent" before it is: after a crash a planned attempt is
  // then never mistaken for a sent one, and a sent one is never sent as a
  // new attempt. Rides on the write that precedes every call (no extra write).
  void RecordAttemptSent(const std::string& name, std::optional<int> attempt);
  // "<action> by <actor>: <reason>" ("no reason given" when empty), the
  // detail of an operator history event.
  static std::string OperatorDetail(const std::string& action, const OperatorRequest& who);
  // Recovery: how long to wait before sending an attempt the log says was
  // planned for `planned_at_ms` (wall clock) and not sent: the rest of its
  // backoff, never below 0 nor above `max_ms` (so a peer whose clock ran
  // ahead cannot hold it back for longer than one backoff).
  int64_t RemainingWait(int64_t planned_at_ms, int64_t max_ms);
  // Sets the in-memory state from the log, without a write (recovery).
  void RestoreState(TxnState state) {
    state_ = state;
    has_state_ = true;
  }
  // Cancels the driver's timers (subclass hook for Drop).
  virtual void CancelTimers() = 0;
  bool needs_attention_ = false;
  bool paused_ = false;
  std::string spec_json_;
  void SetNeedsAttention(bool on, const std::string& why);
  // A branch's call failed with `error` (its DescribeResponse): the pending
  // write sets the transaction's last_error to it (what list views show).
  void NoteCallFailed(const std::string& error);
  // A participant answered `op` of branch `branch` with a configuration error
  // (ParticipantResponse::config_error): flags needs_attention at once with
  // a reason naming both and `error`. The caller retries after `retry_ms`
  // (its capped backoff) and says so in its retry event.
  void FlagConfigError(const std::string& noun, const std::string& branch, BranchOp op,
                       const std::string& error, int64_t retry_ms);
  // Past-deadline flag (EngineOptions::stuck_after_ms), armed by a driver
  // when its outcome is decided (COMPENSATING, COMMITTING, ABORTING: now, or
  // restored so): decided before `deadline_ms` -> flagged at the deadline
  // if still unfinished; decided at or after it (the deadline sent it there,
  // or it was restored past it) -> flagged stuck_after_ms after the
  // deadline. Nothing when `deadline_ms` <= 0 or stuck_after_ms is 0. A
  // restored transaction computes the same from its logged deadline.
  void WatchDeadline(int64_t deadline_ms);
  // The W3C trace of this transaction (common/trace_context.h): the caller's
  // or a new one, stored in its spec. Set by the subclass's Create (making
  // one with NewTraceId when the submission brought none) and Restore (for a
  // spec logged without one: DerivedTraceId of the gtid, flags "01").
  TraceContext trace_;
  // The traceparent of one participant call: trace_'s trace id and flags
  // with a new random span id.
  std::string TraceParent();

  // ---- Branch calls (branch_calls.cc), shared by Saga and TwoPhase ----
  // Branch `i` (a saga step or 2PC branch, by index) has at most one call in
  // flight (planned or outstanding) and at most one scheduled retry. The
  // drivers decide WHICH call a branch needs (their transitions); these
  // methods do the rest. LaunchCall is the one place where a participant call
  // is launched: directly, when a retry timer fires, on an operator retry and
  // on recovery; it is also where a pause holds every call back.
  //
  // Launches `op` for branch `i`: marks it in flight, asks CallRequest for the
  // request and sends it once everything planned so far is durable
  // (CallWhenDurable, asking SendStillWanted then). The answer clears the
  // in-flight mark and goes to OnCallResult; Pump follows.
  // While paused, the call is HELD instead: remembered (one per branch, the
  // latest op wins), neither in flight nor scheduled, nothing sent. Resume
  // sends every held call still RetryStillDue, each logged as sent first
  // (RecordAttemptSent with AttemptOfCall); so does a driver's Pump that
  // launches the branch again meanwhile (it replaces the held op).
  //
  // `ahead`: sent ahead of its log write when MaySendAhead (CallWhenDurable).
  void LaunchCall(int i, BranchOp op, bool ahead = false);
  // Schedules a retry of `op` in `delay_ms` (the caller has logged it as
  // planned with RecordRetry). When the timer fires and RetryStillDue, the
  // attempt is logged as sent (RecordAttemptSent with AttemptOfCall) and
  // launched (held while paused, still logged as planned); Pump follows
  // either way.
  void ScheduleRetry(int i, BranchOp op, int64_t delay_ms);
  bool call_in_flight(int i) const;
  // The op of branch `i`'s call in flight, if any.
  std::optional<BranchOp> op_in_flight(int i) const;
  bool retry_scheduled(int i) const;
  bool call_held(int i) const;
  // Cancels branch `i`'s scheduled retry and forgets its held call.
  void CancelRetry(int i);
  void CancelRetries();
  // Resolve by hand: cancels branch `i`'s retry, forgets its held call, and
  // ignores the answer of its call in flight (or skips it if not yet sent):
  // its outcome is no longer the participant's to give.
  void DiscardCall(int i);
  // Operator retry: every scheduled retry goes out now (OnOperatorRetry
  // first resets the branch's backoff); one no longer RetryStillDue is
  // dropped. While paused they are held instead. Returns how many calls
  // were launched.
  int RetryScheduledNow();
  // Recovery of branch `i` whose `op` attempt the log holds: planned for
  // `planned_at_ms` (> 0) and not sent -> scheduled for the rest of its
  // backoff (at most `max_wait_ms`); otherwise sent with its outcome not
  // logged -> the driver's Pump sends it again. Either way a "recovery"
  // history event naming `attempt` ("commit attempt 2").
  void ResumeRestoredCall(int i, BranchOp op, const std::string& branch, const std::string& attempt,
                          int64_t planned_at_ms, int64_t max_wait_ms);
  // Hooks of the branch calls.
  virtual ParticipantRequest CallRequest(int i, BranchOp op) = 0;
  virtual void OnCallResult(int i, BranchOp op, const ParticipantResponse& r) = 0;
  // Asked when a retry timer fires or an operator retries it.
  virtual bool RetryStillDue(int i, BranchOp op) const = 0;
  // The attempt number logged as sent (nullopt: attempts not counted).
  virtual std::optional<int> AttemptOfCall(int i, BranchOp op) const = 0;
  // Asked once the write before a call is durable: false skips the call.
  virtual bool SendStillWanted(BranchOp) const { return true; }
  virtual void OnOperatorRetry(int) {}
  virtual const std::string& BranchName(int i) const = 0;
  virtual int BranchCount() const = 0;
  // What the protocol calls itself and its branches in messages ("saga" and
  // "step"; "transaction" and "branch").
  virtual const char* TxnNoun() const = 0;
  virtual const char* BranchNoun() const = 0;
  // Hooks of Resolve, called with a known branch `i` and an `outcome` that is
  // kCompensated, kCommitted or kAborted. CheckResolve: Conflict saying why
  // the protocol's state rules forbid it; OK otherwise (nothing changed).
  // MarkResolved (after CheckResolve said OK and the branch's call was
  // discarded): sets the branch's own state to `outcome`, clears its
  // uncallable mark and last error (its errors stay in the history), and
  // returns its attempt count for the logged branch update.
  virtual Status CheckResolve(int i, BranchState outcome) const = 0;
  virtual int MarkResolved(int i, BranchState outcome) = 0;

 private:
  // Sends a prepared write (Flush, or a create sent again).
  void Send(TxnWrite w, std::vector<std::function<void()>> thens);
  void OnWritten(Status status, TxnWrite write, std::vector<std::function<void()>> thens);
  // A create answered anything but OK (see above).
  // Calls on_created once with `status` and clears it.
  void AnswerCreate(Status status);
  void OnCreateFailed(Status status, TxnWrite write, std::vector<std::function<void()>> thens);
  // An update refused for its data: writes it again reduced (see above).
  void RewriteRefused(const Status& why, TxnWrite refused,
                      std::vector<std::function<void()>> thens);

  struct BranchCall {
    bool in_flight = false;
    BranchOp in_flight_op = BranchOp::kAction;  // of the call in flight
    BranchOp op = BranchOp::kAction;            // of the scheduled retry or held call
    std::shared_ptr<TaskRunner::Timer> timer;   // a retry is scheduled
    bool held = false;                          // paused: `op` waits for Resume
    uint64_t generation = 0;                    // DiscardCall: answers of older calls ignored
  };
  BranchCall& Call(int i);
  // Sends branch `i`'s due attempt of `op`: logged as sent, then launched
  // (held while paused, not logged as sent). True if launched.
  bool SendAttempt(int i, BranchOp op);
  // Resume: sends every held call still due.
  void ReleaseHeldCalls();

  EngineContext* ctx_;
  std::string gtid_;
  TxnKind kind_;
  TxnState state_ = TxnState::kRunning;
  bool has_state_ = false;         // SetState or RestoreState ran
  std::vector<BranchCall> calls_;  // by branch index
  // The past-deadline flag's timer (WatchDeadline).
  std::shared_ptr<TaskRunner::Timer> deadline_watch_;
  bool dropped_ = false;
  bool finished_ = false;
  bool created_ = false;                 // the create write has been sent
  bool create_outcome_unknown_ = false;  // see create_outcome_unknown()
  bool has_pending_ = false;
  bool write_in_flight_ = false;
  bool log_failing_ = false;  // the last write failed Unavailable; none succeeded since
  // Monotonic ms of the oldest change in pending_ and in the write in flight
  // (how long the log has lagged behind this driver).
  int64_t pending_since_ms_ = 0;
  int64_t in_flight_since_ms_ = 0;
  uint64_t hold_ahead_until_seq_ = 0;  // HoldAheadUntilLogged
  // Marks pending_ non-empty (its age starts now if it was empty).
  void MarkPending();
  // A change nobody waits for is pending: this timer writes it (Flush).
  std::shared_ptr<TaskRunner::Timer> behind_timer_;
  // Sends the pending change now, waited for or not.
  void FlushNow();
  int refused_writes_ = 0;  // consecutive writes the log refused for their data
  TxnWrite pending_;
  std::vector<std::function<void()>> pending_then_;
  // WhenDurable: writes are numbered as sent (Flush); `durable_seq_` is the
  // newest logged. A waiter fires once durable_seq_ reaches its target.
  uint64_t sent_seq_ = 0;
  uint64_t in_flight_seq_ = 0;
  uint64_t durable_seq_ = 0;
  std::vector<std::pair<uint64_t, std::function<void(Status)>>> durable_waiters_;
};

// Appends `later` to `base`: later field values win, lists concatenate.
void MergeWrite(TxnWrite& base, TxnWrite&& later);

}  // namespace treaty
