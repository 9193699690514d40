#pragma once

// FakeTaskRunner: a TaskRunner (and Clock) on a manual clock for unit tests.
// Nothing runs by itself: tasks and timers run, in due-time then post order,
// only inside RunUntilIdle, Advance and RunUntil, on the calling thread.
// Wall and monotonic time move together (NowMs starts at a fixed date,
// MonotonicMs at 0). Single-threaded: call it from the test's thread only.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>

#include "common/task_runner.h"

namespace treaty::testing {

class FakeTaskRunner : public TaskRunner {
 public:
  int64_t NowMs() override { return now_; }
  int64_t MonotonicMs() override { return now_ - kStartMs; }
  void Post(Task task) override { PostAfter(0, std::move(task)); }
  std::shared_ptr<Timer> PostAfter(int64_t delay_ms, Task task) override;
  // True inside a task this runner runs (RunUntilIdle, Advance, RunUntil,
  // RunInTask).
  bool RunsTasksOnCurrentThread() const override { return running_; }

  // Runs `fn` now as a task of this runner, ahead of the queued ones, and
  // returns its result: how a test body calls code that asserts it runs on
  // the runner (TREATY_ASSERT_ON), e.g. a transaction driver's methods.
  template <typename Fn>
  auto RunInTask(Fn&& fn) {
    struct Restore {
      bool* running;
      bool outer;
      ~Restore() { *running = outer; }
    } restore{&running_, running_};
    running_ = true;
    return fn();
  }

  // Runs every task due at the current time (including ones they post).
  void RunUntilIdle();
  // Moves the clock forward by `ms`, running tasks as they come due.
  void Advance(int64_t ms);
  // Advances until `pred` holds or `max_ms` of fake time passed.
  bool RunUntil(const std::function<bool()>& pred, int64_t max_ms = 600000);

  // Tasks and timers queued and not cancelled.
  size_t pending() const;
  // Fake time until the next queued, not cancelled task is due (-1: none).
  int64_t next_due_in_ms() const;

 private:
  struct Entry {
    int64_t at;
    uint64_t seq;
    Task task;
    std::shared_ptr<bool> cancelled;
  };
  static constexpr int64_t kStartMs = 1'700'000'000'000;
  int64_t now_ = kStartMs;
  bool running_ = false;
  uint64_t seq_ = 0;
  std::multimap<std::pair<int64_t, uint64_t>, Entry> queue_;
};

}  // namespace treaty::testing
