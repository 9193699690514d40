#pragma once

// Retention: deletes finished (COMMITTED/ABORTED) transactions, with their
// branches and events, once they are older than the retention period
// (docs/schema.md "Retention"). It runs on its own thread, apart from the
// heartbeat, so that a long purge never delays a heartbeat and a slow
// heartbeat never holds back the purge.
//
// One run:
//
//   loop:  PurgeFinished(now - retention_ms, batch)   one short store transaction
//          fewer than `batch` deleted ─────────────────> caught up: end of run
//          stop requested or store error ──────────────> end of run
//          otherwise pause `batch_pause_ms`, next batch (a backlog is drained
//          back to back)
//   then:  one log line summing the run up (when it deleted anything), and
//          sleep `interval_ms` until the next run.
//
// Each batch picks its rows through the partial index of finished
// transactions by age (migrations/*/0001_init.sql), so neither young nor
// unfinished rows are read; on PostgreSQL the batch is chosen with FOR
// UPDATE SKIP LOCKED, so peers purging at once take disjoint rows and never
// wait for each other. Only finished rows are deleted, which no writer
// updates any more, so a purge never holds a lock a writer needs.
//
// Crash safety: each batch commits or rolls back whole (a transaction never
// loses its branches or history while it still exists); a run cut short
// resumes with the next run.
//
// Threading: one private thread doing blocking store calls; Start/Stop from
// the owner's thread. The store must outlive Stop(). Not copyable.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "common/status.h"
#include "store/log_store.h"

namespace treaty {

struct RetentionOptions {
  // Finished transactions last updated longer ago than this are deleted
  // (0: kept forever; the thread is not started).
  int64_t retention_ms = 7LL * 24 * 3600 * 1000;
  int batch = 1000;             // most transactions deleted per store transaction
  int64_t interval_ms = 10000;  // sleep between runs once caught up (or after an error)
  int64_t batch_pause_ms = 1;   // pause between the batches of one run (lets writers in)
  // Called after each batch with the count it deleted (for a metric); on the
  // retention thread, must not block.
  std::function<void(int64_t)> on_purged;
  // Wall clock in ms since the epoch (injected for tests); default system clock.
  std::function<int64_t()> now_ms;
};

class Retention {
 public:
  Retention(LogStore* store, RetentionOptions options);
  ~Retention();  // Stop()
  Retention(const Retention&) = delete;
  Retention& operator=(const Retention&) = delete;

  // Starts the thread (first run at once). No-op when retention_ms <= 0.
  void Start();
  // Stops the thread; a batch in progress finishes first. Idempotent.
  void Stop();

  // Runs one run now on the caller's thread (batches until caught up, a
  // store error or Stop); returns how many transactions it deleted, or the
  // store's error. Blocking.
  Result<int64_t> RunOnce();

  // Transactions deleted by this instance so far. Thread-safe.
  int64_t purged_total() const { return purged_total_.load(); }

 private:
  void Loop();
  bool stopping();

  LogStore* store_;
  RetentionOptions options_;
  std::atomic<int64_t> purged_total_{0};
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
};

}  // namespace treaty
