#pragma once

// RepeatingTask: runs a round of work as a task on a serial TaskRunner
// again and again; each round returns how long to wait (ms) before the
// next, which is then armed with PostAfter. Membership's heartbeat rounds
// and Retention's purge batches run this way, so they need no thread of
// their own and tests drive them on a fake clock.
//
//   Start ──► round() ──► PostAfter(returned delay) ──► round() ──► ...
//   Stop: no round starts after it; waits for the one in progress.
//
// Threading: `runner` must be serial (rounds never overlap). Start and Stop
// are called from the owner's thread, never from a round (Stop would wait
// for itself). After Stop returns the round function is never called again,
// even by a timer that fires later, so it may capture its owner by pointer.
// `runner` must outlive Stop(). Not copyable.

#include <cstdint>
#include <functional>
#include <memory>

#include "common/mutex.h"
#include "common/task_runner.h"

namespace treaty {

class RepeatingTask {
 public:
  // One round; returns the delay before the next one in ms (clamped to >= 0).
  using Round = std::function<int64_t()>;

  explicit RepeatingTask(TaskRunner* runner) : runner_(runner) {}
  ~RepeatingTask();  // Stop()
  RepeatingTask(const RepeatingTask&) = delete;
  RepeatingTask& operator=(const RepeatingTask&) = delete;

  // Runs `round` after `first_delay_ms`, then as it asks. No-op while started.
  void Start(Round round, int64_t first_delay_ms = 0);
  // Stops the rounds; blocks while one is in progress. Idempotent; Start
  // may be called again afterwards.
  void Stop();
  // Between Start and Stop. Thread-safe.
  bool started() const;

 private:
  // What the queued tasks share with Stop. A task holds it, so one that
  // fires after Stop (or after this object is gone) sees `stopped` and
  // returns without calling the round.
  struct Schedule {
    explicit Schedule(Round r) : round(std::move(r)) {}
    const Round round;
    Mutex mu;
    CondVar idle;
    bool stopped TREATY_GUARDED_BY(mu) = false;
    bool running TREATY_GUARDED_BY(mu) = false;  // a round is in progress
    std::shared_ptr<TaskRunner::Timer> next TREATY_GUARDED_BY(mu);
  };

  static void Arm(TaskRunner* runner, const std::shared_ptr<Schedule>& schedule, int64_t delay_ms)
      TREATY_REQUIRES(schedule->mu);
  static void Run(TaskRunner* runner, const std::shared_ptr<Schedule>& schedule);

  TaskRunner* const runner_;
  mutable Mutex mu_;
  std::shared_ptr<Schedule> schedule_ TREATY_GUARDED_BY(mu_);  // null when stopped
  // The last stopped schedule: every Stop waits on it, so a Stop concurrent
  // with another one also returns only when no round is in progress.
  std::shared_ptr<Schedule> stopping_ TREATY_GUARDED_BY(mu_);
};

}  // namespace treaty
