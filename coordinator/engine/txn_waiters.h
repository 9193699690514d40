#pragma once

// TxnWaiters: answers held back until a transaction finishes, or until their
// wait runs out, whichever comes first: a saga submitted with `wait` (long
// poll) and a 2PC commit/abort that gives phase 2 a moment to finish.
//
//   Add(gtid, wait_ms, created, done) ──► Finished(gtid, state): done({state, finished})
//                                   └──► wait_ms passed:       done({state_of(gtid), wait_expired})
//
// Each `done` is called exactly once, on the runner, unless the TxnWaiters is
// destroyed first (then never).
//
// Threading: every method runs on `runner` (the engine strand); so do the
// `done` callbacks and `state_of`. Not thread-safe otherwise.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/task_runner.h"
#include "engine/submit_result.h"
#include "treaty/status.h"

namespace treaty {

class TxnWaiters {
 public:
  using Done = std::function<void(Result<SubmitResult>)>;
  // The transaction's current state name for a wait that ran out ("" when
  // unknown, e.g. no longer driven here).
  using StateOf = std::function<std::string(const std::string& gtid)>;

  // `runner` must outlive this object.
  TxnWaiters(TaskRunner* runner, StateOf state_of);
  ~TxnWaiters();
  TxnWaiters(const TxnWaiters&) = delete;
  TxnWaiters& operator=(const TxnWaiters&) = delete;

  // Holds `done` until `gtid` finishes or `wait_ms` passed. `created` is
  // passed through to the answer (SubmitResult::created).
  void Add(const std::string& gtid, int64_t wait_ms, bool created, Done done);
  // `gtid` reached terminal `state`: answers every waiter of it (in the
  // order they were added) with finished=true and cancels their timers.
  void Finished(const std::string& gtid, const std::string& state);
  // Answers every held waiter now, as if its wait had run out (its
  // transaction's current state, wait_expired), and cancels their timers.
  // For when this coordinator stops driving its transactions (drain,
  // re-registration): the transactions go on, on a peer, and a client held
  // here gets the same answer as after its wait, instead of a dropped
  // connection. Call before the drivers are dropped, so that `state_of`
  // still knows the states.
  void ExpireAll();
  // How many answers are held (for tests).
  size_t size() const;

 private:
  struct Waiter {
    Done done;
    bool created = false;
    std::shared_ptr<TaskRunner::Timer> timer;
  };
  // The wait of waiter `id` of `gtid` ran out.
  void Expire(const std::string& gtid, uint64_t id);

  TaskRunner* const runner_;
  StateOf state_of_;
  // gtid -> waiter id (in order of Add) -> waiter.
  std::map<std::string, std::map<uint64_t, Waiter>> waiters_;
  uint64_t next_id_ = 0;
  // Timers outlive this object in the runner's queue: they hold this token
  // weakly, so one that fires after destruction does nothing.
  std::shared_ptr<TxnWaiters*> alive_;
};

}  // namespace treaty
