#pragma once

// Clock and TaskRunner: what time it is and where work runs. They are the
// only way coordinator code reads time or schedules work, so tests drive it
// all on a manual clock (FakeTaskRunner in tests/support/fake_task_runner.h).
//
// The engine touches its state only from tasks of one serial runner (its
// "engine strand"), so it needs no locks; blocking database reads run on a
// second runner backed by a thread pool, and Membership and Retention each
// on a strand of a small pool of their own.
// Production: AsioTaskRunner (common/asio_task_runner.h).

#include <cstdint>
#include <functional>
#include <memory>

namespace treaty {

// Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock milliseconds since the Unix epoch: what is stored in the log
  // (created_at_ms, deadlines, next attempts) and shown. May jump.
  virtual int64_t NowMs() = 0;
  // Monotonic milliseconds from an arbitrary origin, for durations measured
  // on this machine (stall detection, "connected for a whole lease").
  // Never goes back.
  virtual int64_t MonotonicMs() = 0;
};

// The machine's clocks (std::chrono::system_clock and steady_clock), for
// code given no Clock (like leveldb's Env::Default()). Never null; lives
// for the whole process.
Clock* SystemClock();

class TaskRunner : public Clock {
 public:
  using Task = std::function<void()>;

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
  // True while the calling thread is running a task (or timer callback) of
  // this runner. On a serial runner this is "we are on its strand": code
  // whose state lives on the strand asserts it (TREATY_ASSERT_ON below).
  virtual bool RunsTasksOnCurrentThread() const = 0;
};

// Aborts with a message naming `what` when the calling thread is not running
// a task of `runner`. In every build: a strand violation is a data race on
// transaction state, which could send a participant call twice or lose a
// decision; stopping is safer than going on (the log keeps every fact, and a
// peer or a restart resumes the work).
void AssertOnRunner(const TaskRunner& runner, const char* what);
#define TREATY_ASSERT_ON(runner) ::treaty::AssertOnRunner((runner), __func__)

}  // namespace treaty
