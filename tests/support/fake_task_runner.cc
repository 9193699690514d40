#include "support/fake_task_runner.h"

#include <algorithm>

namespace treaty::testing {
namespace {

class FakeTimer : public TaskRunner::Timer {
 public:
  explicit FakeTimer(std::shared_ptr<bool> cancelled) : cancelled_(std::move(cancelled)) {}
  void Cancel() override { *cancelled_ = true; }

 private:
  std::shared_ptr<bool> cancelled_;
};

}  // namespace

std::shared_ptr<TaskRunner::Timer> FakeTaskRunner::PostAfter(int64_t delay_ms, Task task) {
  auto cancelled = std::make_shared<bool>(false);
  int64_t at = now_ + (delay_ms < 0 ? 0 : delay_ms);
  uint64_t seq = seq_++;
  queue_.emplace(std::make_pair(at, seq), Entry{at, seq, std::move(task), cancelled});
  return std::make_shared<FakeTimer>(cancelled);
}

void FakeTaskRunner::RunUntilIdle() {
  while (!queue_.empty() && queue_.begin()->first.first <= now_) {
    Entry e = std::move(queue_.begin()->second);
    queue_.erase(queue_.begin());
    if (!*e.cancelled) {
      const bool outer = running_;
      running_ = true;
      e.task();
      running_ = outer;
    }
  }
}

void FakeTaskRunner::Advance(int64_t ms) {
  const int64_t end = now_ + ms;
  RunUntilIdle();
  while (!queue_.empty() && queue_.begin()->first.first <= end) {
    now_ = queue_.begin()->first.first;
    RunUntilIdle();
  }
  now_ = end;
  RunUntilIdle();
}

bool FakeTaskRunner::RunUntil(const std::function<bool()>& pred, int64_t max_ms) {
  const int64_t end = now_ + max_ms;
  RunUntilIdle();
  while (!pred()) {
    if (queue_.empty() || queue_.begin()->first.first > end) return pred();
    now_ = std::max(now_, queue_.begin()->first.first);
    RunUntilIdle();
  }
  return true;
}

size_t FakeTaskRunner::pending() const {
  return static_cast<size_t>(std::count_if(queue_.begin(), queue_.end(),
                                           [](const auto& e) { return !*e.second.cancelled; }));
}

int64_t FakeTaskRunner::next_due_in_ms() const {
  for (const auto& [key, e] : queue_) {
    if (!*e.cancelled) return key.first - now_;
  }
  return -1;
}

}  // namespace treaty::testing
