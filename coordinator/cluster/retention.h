#pragma once

// Retention: deletes finished (COMMITTED/ABORTED) transactions, with their
// branches and events, once they are older than the retention period
// (docs/schema.md "Retention"). It runs on its own runner, apart from the
// heartbeat (cluster/membership.h), so that a long purge never delays a
// heartbeat and a slow heartbeat never holds back the purge.
//
// One run, each batch a task on `runner` (RepeatingTask,
// cluster/repeating_task.h):
//
//   batch: PurgeFinished(cut-off, batch)        one short store transaction;
//          │                                    cut-off = NowMs - retention_ms
//          │                                    taken once, at the run's start
//          ├─ `batch` deleted ──────────────────> next batch after
//          │                                      `batch_pause_ms` (a backlog
//          │                                      is drained back to back)
//          ├─ fewer than `batch` deleted ───────> caught up: end of run
//          └─ store error ──────────────────────> end of run (logged)
//   end of run: one log line summing it up (when it deleted anything); the
//          next run starts `interval_ms` later (after an error too, so a
//          store outage is retried every interval).
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
// (Stop, crash) resumes with the next run.
//
// Threading: `runner` must be serial and may block (each batch is a blocking
// store call), so it must not be the engine strand. Start/Stop from the
// owner's thread, never from a task of `runner`. `store` and `runner` must
// outlive Stop(). Not copyable.

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>

#include "cluster/repeating_task.h"
#include "common/task_runner.h"
#include "store/cluster_store.h"
#include "treaty/status.h"

namespace treaty {

struct RetentionOptions {
  // Finished transactions last updated longer ago than this are deleted
  // (0: kept forever; Start does nothing).
  int64_t retention_ms = 7LL * 24 * 3600 * 1000;
  int batch = 1000;             // most transactions deleted per store transaction
  int64_t interval_ms = 10000;  // pause between runs once caught up (or after an error)
  int64_t batch_pause_ms = 1;   // pause between the batches of one run (lets writers in)
  // Called after each batch that deleted something with the count it
  // deleted (for a metric); on the runner, must not block.
  std::function<void(int64_t)> on_purged;
};

class Retention {
 public:
  // Times (the cut-off, the length of a run) come from `runner`'s clock.
  Retention(ClusterStore* store, TaskRunner* runner, RetentionOptions options);
  ~Retention();  // Stop()
  Retention(const Retention&) = delete;
  Retention& operator=(const Retention&) = delete;

  // Starts the runs on the runner (the first at once). No-op when
  // retention_ms <= 0 or already started.
  void Start();
  // Stops the runs; a batch in progress finishes first (blocking), and a run
  // cut short is summed up in the log. Idempotent.
  void Stop();

  // Runs one whole run now on the caller's thread, apart from the runs of
  // Start (batches until caught up or a store error; `batch_pause_ms`
  // between them); returns how many transactions it deleted, or the store's
  // error. Blocking. Not while started.
  Result<int64_t> RunOnce();

  // Transactions deleted by this instance so far. Thread-safe.
  int64_t purged_total() const { return purged_total_.load(); }

 private:
  struct Run {
    int64_t before_ms = 0;   // cut-off (wall clock)
    int64_t started_ms = 0;  // monotonic
    int64_t purged = 0;
    int batches = 0;
  };

  Run BeginRun();
  // One batch of `run`; true when the run is over (caught up, or `*error`).
  bool Step(Run* run, Status* error);
  // Logs the summary (and the error) of a finished run.
  Result<int64_t> EndRun(const Run& run, const Status& error);
  // One task of the runs started by Start; the delay before the next one.
  int64_t Round();

  ClusterStore* const store_;
  TaskRunner* const runner_;
  RetentionOptions options_;
  std::atomic<int64_t> purged_total_{0};
  // The run in progress of the started runs: touched by their tasks, and by
  // Stop once they have stopped.
  std::optional<Run> run_;
  RepeatingTask rounds_;  // last member: stopped before the rest goes
};

}  // namespace treaty
