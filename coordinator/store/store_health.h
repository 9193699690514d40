#pragma once

// StoreHealth: what this process last learned about reaching its log store,
// so that new work can be refused at once (503) while the database is down
// instead of each submission waiting out the LogWriter's retry window.
//
// Writers of the log (LogWriter, after every ApplyBatch attempt) Report()
// each outcome: Unavailable marks the store down, anything else marks it up
// (the database answered). AcceptsNewWork() is a small circuit breaker: true
// while up; while down, false, except once `probe_after_ms` has passed
// since the last failure, so that a submission gets through to probe the
// database again (its write then marks the store up or down).
//
// Thread-safe (atomics); never blocks.

#include <atomic>
#include <chrono>
#include <cstdint>

#include "common/status.h"

namespace treaty {

class StoreHealth {
 public:
  explicit StoreHealth(int64_t probe_after_ms = 1000) : probe_after_ms_(probe_after_ms) {}

  void Report(const Status& status) {
    if (status.code() == StatusCode::kUnavailable) {
      last_failure_ms_.store(NowMs());
      up_.store(false);
    } else {
      up_.store(true);
    }
  }
  bool up() const { return up_.load(); }
  bool AcceptsNewWork() const {
    return up_.load() || NowMs() - last_failure_ms_.load() >= probe_after_ms_;
  }

 private:
  static int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  const int64_t probe_after_ms_;
  std::atomic<bool> up_{true};
  std::atomic<int64_t> last_failure_ms_{0};
};

}  // namespace treaty
