#include "common/task_runner.h"

#include <chrono>
#include <cstdlib>

#include <spdlog/spdlog.h>

namespace treaty {

namespace {

class MachineClock : public Clock {
 public:
  int64_t NowMs() override {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  }
  int64_t MonotonicMs() override {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
  }
};

}  // namespace

Clock* SystemClock() {
  static MachineClock* const clock = new MachineClock();
  return clock;
}

void AssertOnRunner(const TaskRunner& runner, const char* what) {
  if (runner.RunsTasksOnCurrentThread()) return;
  spdlog::critical("{} ran outside its task runner (a threading bug); stopping", what);
  spdlog::default_logger()->flush();
  std::abort();
}

}  // namespace treaty
