#pragma once

// IoRunner: an io_context run by N threads for the lifetime of the object
// (tests only). Destruction stops the context and joins the threads.

#include <algorithm>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace treaty {

class IoRunner {
 public:
  explicit IoRunner(int threads = 2) : work_(io_.get_executor()) {
    for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~IoRunner() {
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }
  boost::asio::io_context& io() { return io_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

}  // namespace treaty
