#pragma once

// TaskRunner: where work runs and what time it is. The engine touches its
// state only from tasks of one runner (its "engine strand"), so it needs no
// locks; blocking database reads run on a second runner backed by a pool.
// Production: AsioTaskRunner. Tests: FakeTaskRunner (tests/support) with a
// manual clock.

#include <cstdint>
#include <functional>
#include <memory>

namespace treaty {

class TaskRunner {
 public:
  using Task = std::function<void()>;
  virtual ~TaskRunner() = default;

  // Wall-clock milliseconds since the Unix epoch.
  virtual int64_t NowMs() = 0;
  // Runs `task` soon, never inline. Thread-safe.
  virtual void Post(Task task) = 0;
  // Runs `task` after `delay_ms`. Thread-safe. The returned handle cancels
  // it if it has not started (Cancel is only safe from the runner itself).
  class Timer {
   public:
    virtual ~Timer() = default;
    virtual void Cancel() = 0;
  };
  virtual std::shared_ptr<Timer> PostAfter(int64_t delay_ms, Task task) = 0;
};

}  // namespace treaty
