#include "common/asio_task_runner.h"

#include <chrono>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/exception_guard.h"

namespace treaty {
namespace {

class AsioTimer : public TaskRunner::Timer {
 public:
  explicit AsioTimer(boost::asio::any_io_executor ex) : timer_(ex) {}
  void Cancel() override { timer_.cancel(); }
  boost::asio::steady_timer& timer() { return timer_; }

 private:
  boost::asio::steady_timer timer_;
};

// The runner whose task this thread is running, if any.
thread_local const TaskRunner* current_runner = nullptr;

// Runs `task` as a task of `runner` (RunsTasksOnCurrentThread is true in
// it). `runner` is only compared, never dereferenced: a task may outlive it.
void RunAs(const TaskRunner* runner, const std::string& name, const TaskRunner::Task& task) {
  const TaskRunner* outer = current_runner;
  current_runner = runner;
  RunGuarded(name, task);
  current_runner = outer;
}

}  // namespace

int64_t AsioTaskRunner::NowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

int64_t AsioTaskRunner::MonotonicMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

bool AsioTaskRunner::RunsTasksOnCurrentThread() const { return current_runner == this; }

void AsioTaskRunner::Post(Task task) {
  boost::asio::post(
      executor_, [self = this, name = name_, task = std::move(task)] { RunAs(self, name, task); });
}

std::shared_ptr<TaskRunner::Timer> AsioTaskRunner::PostAfter(int64_t delay_ms, Task task) {
  auto t = std::make_shared<AsioTimer>(executor_);
  t->timer().expires_after(std::chrono::milliseconds(delay_ms < 0 ? 0 : delay_ms));
  t->timer().async_wait(
      [self = this, name = name_, t, task = std::move(task)](const boost::system::error_code& ec) {
        if (!ec) RunAs(self, name, task);
      });
  return t;
}

}  // namespace treaty
