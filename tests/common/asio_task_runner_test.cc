// The exception guard at the task runner's entry: a task or timer callback
// that throws is logged and dropped; the process and the executor go on.

#include "common/asio_task_runner.h"

#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

namespace treaty {
namespace {

// Routes the default logger into a string for the test's lifetime.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::string Text() {
    spdlog::default_logger()->flush();
    return out_.str();
  }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream out_;
};

// Posts a throwing task, a throwing timer task and then a normal task, and
// waits for the normal one: it runs, so the executor survived.
void ExpectThrowingTasksAreContained(TaskRunner& runner) {
  std::promise<void> after_throw, after_timer;
  runner.Post([] { throw std::runtime_error("task exploded\nforged line"); });
  runner.Post([&] { after_throw.set_value(); });
  runner.PostAfter(1, [] { throw 42; });
  runner.PostAfter(2, [&] { after_timer.set_value(); });
  after_throw.get_future().wait();
  after_timer.get_future().wait();
}

TEST(AsioTaskRunnerTest, ThrowingTaskOnThreadPoolIsLoggedNotFatal) {
  CapturedLog log;
  boost::asio::thread_pool pool(2);
  AsioTaskRunner runner(pool.get_executor(), "blocking task");
  ExpectThrowingTasksAreContained(runner);
  pool.join();
  const std::string text = log.Text();
  EXPECT_NE(text.find("blocking task threw"), std::string::npos) << text;
  EXPECT_NE(text.find("task exploded\\nforged line"), std::string::npos) << text;
  EXPECT_NE(text.find("a non-standard exception"), std::string::npos) << text;
}

TEST(AsioTaskRunnerTest, ThrowingTaskOnStrandIsLoggedAndStrandKeepsRunning) {
  CapturedLog log;
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::thread thread([&] { io.run(); });
  {
    AsioTaskRunner runner(boost::asio::make_strand(io), "engine task");
    ExpectThrowingTasksAreContained(runner);
    // The strand still runs tasks in order after the exceptions.
    std::promise<int> last;
    auto order = std::make_shared<std::vector<int>>();
    for (int i = 0; i < 5; ++i) {
      runner.Post([order, i, &last] {
        order->push_back(i);
        if (i == 4) last.set_value(static_cast<int>(order->size()));
      });
    }
    EXPECT_EQ(last.get_future().get(), 5);
    EXPECT_EQ(*order, (std::vector<int>{0, 1, 2, 3, 4}));
  }
  work.reset();
  thread.join();
  EXPECT_NE(log.Text().find("engine task threw"), std::string::npos);
}

}  // namespace
}  // namespace treaty
