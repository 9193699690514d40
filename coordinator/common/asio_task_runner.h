#pragma once

// AsioTaskRunner: TaskRunner over an Asio executor. With a strand executor,
// tasks run one at a time in post order (the engine's guarantee); with a
// thread_pool executor, tasks run concurrently (blocking reads).

#include <boost/asio/any_io_executor.hpp>

#include "common/task_runner.h"

namespace treaty {

class AsioTaskRunner : public TaskRunner {
 public:
  explicit AsioTaskRunner(boost::asio::any_io_executor executor) : executor_(executor) {}

  int64_t NowMs() override;
  void Post(Task task) override;
  std::shared_ptr<Timer> PostAfter(int64_t delay_ms, Task task) override;

 private:
  boost::asio::any_io_executor executor_;
};

}  // namespace treaty
