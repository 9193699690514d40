#pragma once

// AsioTaskRunner: TaskRunner over an Asio executor. With a strand executor,
// tasks run one at a time in post order (the engine's guarantee); with a
// thread_pool executor, tasks run concurrently (blocking reads).
//
// Every task and timer callback runs under RunGuarded (common/
// exception_guard.h): an exception it throws is logged as one line and
// dropped, never unwinding into the executor (a thread_pool thread would
// call std::terminate). Whatever the task captured is destroyed as usual, so
// an HTTP answer it still owed is given by its owner's guard (RestApi
// answers 500 for a request dropped unanswered).

#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "common/task_runner.h"

namespace treaty {

class AsioTaskRunner : public TaskRunner {
 public:
  // `name` appears in the log line of a task that threw ("engine task").
  explicit AsioTaskRunner(boost::asio::any_io_executor executor, std::string name = "task")
      : executor_(executor), name_(std::move(name)) {}

  int64_t NowMs() override;
  int64_t MonotonicMs() override;
  void Post(Task task) override;
  std::shared_ptr<Timer> PostAfter(int64_t delay_ms, Task task) override;
  bool RunsTasksOnCurrentThread() const override;

 private:
  boost::asio::any_io_executor executor_;
  const std::string name_;
};

}  // namespace treaty
