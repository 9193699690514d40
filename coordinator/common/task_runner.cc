#include "common/task_runner.h"

#include <cstdlib>

#include <spdlog/spdlog.h>

namespace treaty {

void AssertOnRunner(const TaskRunner& runner, const char* what) {
  if (runner.RunsTasksOnCurrentThread()) return;
  spdlog::critical("{} ran outside its task runner (a threading bug); stopping", what);
  spdlog::default_logger()->flush();
  std::abort();
}

}  // namespace treaty
