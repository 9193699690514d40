#pragma once

// LogWriter: group commit for LogStore writes.
//
// Callers on any thread Submit() writes; a background thread takes
// everything queued (up to `max_batch`), applies it with ONE
// LogStore::ApplyBatch call (one database transaction, one fsync/commit), and
// then invokes each write's callback with that write's Status (OK, Conflict,
// LostOwnership, NotFound, ...).
//
// Lanes: with `lanes` > 1 there are that many queues, each with its own
// thread, and a write goes to the lane of its gtid (a hash), so batches of
// different lanes commit at the same time on different connections while
// the writes of one gtid stay in one queue, in submission order. One lane
// waiting for its COMMIT (an fsync, a synchronous standby) no longer holds
// every other write behind it; the database's own group commit merges the
// lanes' flushes. Everything below holds per lane. The store must take
// concurrent ApplyBatch calls (LogStore::WriteConcurrency).
//
// When the whole batch fails with Unavailable (database down, fail-over in
// progress, a store call past its deadline) the batch is retried with capped
// exponential backoff (10 ms doubling to kLogWriterMaxRetryBackoffMs, 250 ms)
// until `retry_for_ms` has passed since its oldest write was submitted; then
// every write of the batch fails with Unavailable. The cap bounds how long
// acknowledged-pending writes wait once the store answers again: at most
// 250 ms after the store's own recovery (for PostgreSQL, the pool's reconnect
// window, PgPoolOptions::reconnect_backoff_max_ms; an attempt inside
// that window fails at once without a connect, so retrying more often than
// the window costs nothing). One warning when a batch starts retrying, then
// one about every 5 s while it goes on. So every write is answered within about retry_for_ms plus
// one store call (its deadline), however long the store stays away; a write
// that waited past retry_for_ms behind an unavailable store is failed with
// TimedOut without any attempt (so it is certainly not in the log). Writes are applied in
// submission order; a retried batch keeps later writes waiting behind it.
//
// Outcome unknown: an attempt that failed with Unavailable may have
// committed (the COMMIT's answer was lost). When the retry then meets a
// create answered Conflict whose stored row is exactly what that create
// wrote (same owner, kind, spec, state and version: nobody touched it since),
// the row is this batch's own earlier commit and the create is reported OK,
// so its driver carries on. The same holds for a create submitted with
// `create_outcome_unknown` set (the engine re-sending a create whose earlier
// batch ended Unavailable), in whatever batch it comes. If that row cannot
// be read, the create is reported Unavailable (outcome still unknown; the
// engine sends it again).
//
// Stall: a batch whose writes have waited longer than `stall_after_ms` for
// a commit (retries included) is a stall: a watch thread reports it to
// StoreHealth (which refuses new work and logs once) and stalled() is true
// until a batch of that lane commits with at least one write applied (OK);
// with several lanes, while any lane is stalled (a commit on another lane
// proves only that lane's connection), and the store is reported up again
// only then. A batch whose
// writes all fail on their own (NotFound, LostOwnership, Conflict, a data
// error) proves nothing: PostgreSQL completes a COMMIT that wrote nothing
// without waiting for a synchronous standby. It neither ends a stall nor
// marks the store up (nor down). The watch
// does not need the writer thread, which may sit in a blocked store call
// (SQLite: a commit blocked on its disk has no deadline).
//
// Poison-pill isolation: a write fails only because of itself. The store
// answers a write whose data it cannot hold with a data error for that write
// alone (store/write_rules.h). Should a batch of several writes still fail as
// a whole with anything but Unavailable (a data error the engine could not
// pin on one write, Internal), it is split in halves, each applied (and
// split) again, so only the writes that fail on their own get that Status.
// A data error is never retried.
//
// Time: waits, retry windows and stalls are measured on `clock`'s monotonic
// milliseconds (the batch latency given to on_batch, in microseconds, is
// measured with the steady clock). The threads sleep in real time.
//
// Threading: callbacks run ON A LANE'S WRITER THREAD and must not block (post the
// result to the caller's executor/strand instead); they must not call Stop().
// Submit() is thread-safe and never blocks on I/O.
//
// Crash: a write whose callback has not yet run with OK may or may not be in
// the log (an Unavailable commit may have committed).

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/task_runner.h"
#include "store/log_store.h"
#include "store/store_health.h"

namespace treaty {

// The longest pause between two attempts of a batch while the store is
// unavailable (see above).
inline constexpr int64_t kLogWriterMaxRetryBackoffMs = 250;
// The most lanes a LogWriter runs (LogWriterOptions::lanes is cut to it).
inline constexpr size_t kLogWriterMaxLanes = 32;

struct LogWriterOptions {
  size_t max_batch = 512;  // most writes per ApplyBatch
  // Queues committing concurrently (see "Lanes" above), 1 to kMaxLanes.
  size_t lanes = 1;
  int64_t retry_for_ms = 5000;  // how long to retry a write that fails with Unavailable
  // A batch waiting longer than this for a commit is a stall (see above).
  int64_t stall_after_ms = 2000;
  // Optional (metrics): called on the writer thread after every ApplyBatch
  // attempt with the batch size, its latency and the whole-batch status.
  // Must not block.
  std::function<void(size_t writes, int64_t latency_us, const Status& status)> on_batch;
  // Optional, not owned: told the outcome of every ApplyBatch attempt and of
  // stalls, so the API can refuse new work at once while the store is
  // unreachable or stalled.
  StoreHealth* health = nullptr;
  // Not owned: where time is read (monotonic). SystemClock() when null.
  Clock* clock = nullptr;
};

class LogWriter {
 public:
  // `store` is not owned and must outlive the writer. Starts the thread.
  LogWriter(LogStore* store, LogWriterOptions options);
  ~LogWriter();  // Stop()
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  using Callback = std::function<void(Status)>;
  // Queues `write` on its gtid's lane; `done` is called exactly once on that
  // lane's thread. After
  // Stop(), `done` is called at once, on the caller's thread, with Unavailable.
  void Submit(TxnWrite write, Callback done);

  // Finishes every queued write (including retries, each bounded as above),
  // then joins the threads. Idempotent. Must not be called from a callback.
  void Stop();

  // Writes queued and not yet taken by a lane's thread (all lanes).
  size_t queue_depth() const TREATY_EXCLUDES(mu_);
  size_t lanes() const { return options_.lanes; }
  // True during a stall (see above). Thread-safe.
  bool stalled() const { return stalled_.load(); }

 private:
  struct Pending {
    TxnWrite write;
    Callback done;
    int64_t submitted_ms;  // monotonic
  };

  // One lane's state. The whole vector is guarded by mu_.
  struct Lane {
    std::deque<Pending> queue;
    // When the batch in progress was taken (monotonic ms).
    std::optional<int64_t> batch_since_ms;
    size_t batch_writes = 0;
    bool stall_reported = false;  // for the current batch
    // The watch reported this lane's batch as a stall and no batch of the
    // lane has committed a write since: stalled() is true while any is.
    bool stalled = false;
  };
  // What a lane's thread carries through one batch.
  struct LaneThread {
    size_t lane = 0;
    bool store_unavailable = false;  // the last attempt failed with Unavailable
  };

  // Lane `lane`'s thread.
  void Run(size_t lane);
  // Applies one batch with retries (and halving, see above) until
  // `deadline_ms` (monotonic) and returns one Status per write. `*outcome_unknown` is set
  // once an attempt failed with Unavailable (it may have committed).
  std::vector<Status> Apply(std::vector<TxnWrite> writes, int64_t deadline_ms,
                            bool* outcome_unknown, LaneThread* lane);
  // One batch with retries while Unavailable; the whole-batch failure, if any.
  Result<std::vector<Status>> ApplyWithRetries(const std::vector<TxnWrite>& writes,
                                               int64_t deadline_ms, bool* outcome_unknown,
                                               LaneThread* lane);
  // Each create answered Conflict whose outcome is unknown (`batch_unknown`:
  // an attempt of this batch failed with Unavailable; or the write's own
  // create_outcome_unknown) and whose stored row is exactly its own becomes
  // OK (see above). Blocking store reads.
  void RecognizeOwnCreates(const std::vector<TxnWrite>& writes, bool batch_unknown,
                           std::vector<Status>* results);
  // Reports one attempt to health and the stall flag: `failure` is the
  // whole-batch failure (OK when the store answered per write), `applied`
  // whether at least one write was applied (see "Stall" above): that ends
  // this lane's stall; the store is reported up once no lane is stalled.
  void ReportAttempt(const Status& failure, bool applied, LaneThread* lane) TREATY_EXCLUDES(mu_);
  // The stall watch thread.
  void Watch();

  LogStore* const store_;
  const LogWriterOptions options_;

  Clock* const clock_;

  mutable Mutex mu_;
  // One per lane, fixed at construction: wakes that lane's thread.
  std::vector<std::unique_ptr<CondVar>> lane_cv_;
  CondVar watch_cv_;
  std::vector<Lane> lanes_ TREATY_GUARDED_BY(mu_);
  bool stopping_ TREATY_GUARDED_BY(mu_) = false;
  bool watch_stopping_ TREATY_GUARDED_BY(mu_) = false;
  std::atomic<bool> stalled_{false};
  std::vector<std::thread> threads_;
  std::thread watch_thread_;
};

}  // namespace treaty
