#pragma once

// StoreHealth: what this process last learned about writing its log store,
// so that new work is refused at once (503 / Unavailable) while the log
// cannot take it, instead of each submission waiting out the LogWriter's
// retry window, and so that /readyz tells the truth.
//
// Two signals:
//  - Report(): the outcome of write attempts (LogWriter batches, the
//    readiness write probe). Unavailable marks the store down; OK (a write
//    was applied and committed) marks it up and ends a stall. Anything else
//    (NotFound, LostOwnership, Conflict, a data error) changes nothing: a
//    write that changed no rows commits at once even while commits that
//    wrote something wait forever (PostgreSQL skips the synchronous standby
//    when a transaction wrote no WAL), so it is no evidence. The LogWriter
//    reports OK only for a batch in which at least one write was applied.
//  - ReportStall(): the LogWriter's watch saw writes wait longer than its
//    stall threshold for a commit (a COMMIT that never returns, a stopped
//    server, SQLite blocked on its disk). The store is then "stalled" until
//    some write is applied and committed (a Report of OK).
// One log line when a stall starts and one when it ends, however long it
// lasts (no flood).
//
// AcceptsNewWork() is a small circuit breaker: false while stalled; while
// down (not stalled), false except once `probe_after_ms` has passed since
// the last failure, so that a submission gets through to probe the database
// again (its write then marks the store up or down).
//
// Times (the probe interval, how long a stall lasts) are `clock`'s
// monotonic milliseconds.
//
// Thread-safe; never blocks (one short mutex for the texts).

#include <atomic>
#include <cstdint>
#include <string>

#include <spdlog/spdlog.h>

#include "common/mutex.h"
#include "common/task_runner.h"
#include "treaty/status.h"

namespace treaty {

class StoreHealth {
 public:
  // `clock` is not owned (SystemClock() when null).
  explicit StoreHealth(int64_t probe_after_ms = 1000, Clock* clock = nullptr)
      : probe_after_ms_(probe_after_ms), clock_(clock ? clock : SystemClock()) {}

  void Report(const Status& status) {
    if (status.code() == StatusCode::kUnavailable) {
      MutexLock lock(&mu_);
      last_failure_ms_.store(NowMs());
      last_error_ = status.message();
      up_.store(false);
      return;
    }
    if (!status.ok()) return;  // the write changed nothing: no evidence
    up_.store(true);
    if (stalled_.load()) {
      MutexLock lock(&mu_);
      if (stalled_.exchange(false)) {
        spdlog::warn("log store: writes complete again after a stall of {} ms",
                     NowMs() - stalled_since_ms_);
      }
    }
  }

  // Writes (`writes` of them) have waited `waited_ms` for a commit.
  void ReportStall(int64_t waited_ms, size_t writes) {
    MutexLock lock(&mu_);
    if (stalled_.exchange(true)) return;
    stalled_since_ms_ = NowMs() - waited_ms;
    spdlog::error(
        "log store stalled: {} writes have waited {} ms for a commit; refusing new work until "
        "writes complete again{}{}",
        writes, waited_ms, last_error_.empty() ? "" : "; last error: ", last_error_);
  }

  bool up() const { return up_.load(); }
  bool stalled() const { return stalled_.load(); }
  bool AcceptsNewWork() const {
    if (stalled_.load()) return false;
    return up_.load() || NowMs() - last_failure_ms_.load() >= probe_after_ms_;
  }
  // Why the store cannot take new work now ("" when it can), for answers.
  std::string Problem() const {
    MutexLock lock(&mu_);
    if (stalled_.load()) {
      return "the transaction log is stalled: no write has completed for " +
             std::to_string(NowMs() - stalled_since_ms_) + " ms";
    }
    if (!up_.load()) return "the transaction log is unreachable: " + last_error_;
    return "";
  }

 private:
  int64_t NowMs() const { return clock_->MonotonicMs(); }

  const int64_t probe_after_ms_;
  Clock* const clock_;
  std::atomic<bool> up_{true};
  std::atomic<bool> stalled_{false};
  std::atomic<int64_t> last_failure_ms_{0};
  mutable Mutex mu_;
  std::string last_error_ TREATY_GUARDED_BY(mu_);
  int64_t stalled_since_ms_ TREATY_GUARDED_BY(mu_) = 0;
};

}  // namespace treaty
