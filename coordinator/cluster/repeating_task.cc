#include "cluster/repeating_task.h"

#include <algorithm>
#include <utility>

namespace treaty {

RepeatingTask::~RepeatingTask() { Stop(); }

void RepeatingTask::Start(Round round, int64_t first_delay_ms) {
  auto schedule = std::make_shared<Schedule>(std::move(round));
  {
    MutexLock lock(&mu_);
    if (schedule_) return;
    schedule_ = schedule;
  }
  MutexLock lock(&schedule->mu);
  Arm(runner_, schedule, first_delay_ms);
}

bool RepeatingTask::started() const {
  MutexLock lock(&mu_);
  return schedule_ != nullptr;
}

void RepeatingTask::Arm(TaskRunner* runner, const std::shared_ptr<Schedule>& schedule,
                        int64_t delay_ms) {
  schedule->next = runner->PostAfter(std::max<int64_t>(0, delay_ms),
                                     [runner, schedule] { Run(runner, schedule); });
}

void RepeatingTask::Run(TaskRunner* runner, const std::shared_ptr<Schedule>& schedule) {
  {
    MutexLock lock(&schedule->mu);
    if (schedule->stopped) return;  // the owner may be gone: call nothing
    schedule->running = true;
    schedule->next.reset();
  }
  const int64_t delay_ms = schedule->round();
  MutexLock lock(&schedule->mu);
  schedule->running = false;
  if (schedule->stopped) {
    schedule->idle.NotifyAll();
    return;
  }
  Arm(runner, schedule, delay_ms);
}

void RepeatingTask::Stop() {
  std::shared_ptr<Schedule> schedule;
  {
    MutexLock lock(&mu_);
    // A Stop racing another one waits for the same round to end.
    if (schedule_) stopping_ = std::move(schedule_);
    schedule_.reset();
    schedule = stopping_;
  }
  if (!schedule) return;
  std::shared_ptr<TaskRunner::Timer> next;
  {
    MutexLock lock(&schedule->mu);
    schedule->stopped = true;
    while (schedule->running) schedule->idle.Wait(&schedule->mu);
    next = std::move(schedule->next);
  }
  // The stopped schedule already makes the queued round a no-op; cancelling
  // its timer (from the runner, the only place that is safe) frees the
  // runner of the wait, so a pool can be joined at once.
  if (next) runner_->Post([next] { next->Cancel(); });
}

}  // namespace treaty
