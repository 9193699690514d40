#pragma once

// LogWriter: group commit for LogStore writes.
//
// Callers on any thread Submit() writes; one background thread takes
// everything queued (up to `max_batch`), applies it with ONE
// LogStore::ApplyBatch call (one database transaction, one fsync/commit), and
// then invokes each write's callback with that write's Status (OK, Conflict,
// LostOwnership, NotFound, ...).
//
// When the whole batch fails with Unavailable (database down, fail-over in
// progress) the batch is retried with capped exponential backoff (10 ms
// doubling to 1 s) until `retry_for_ms` has passed since its first attempt;
// then every write of the batch fails with Unavailable. Writes are applied in
// submission order; a retried batch keeps later writes waiting behind it.
//
// Poison-pill isolation: a write fails only because of itself. The store
// answers a write whose data it cannot hold with a data error for that write
// alone (store/write_rules.h). Should a batch of several writes still fail as
// a whole with anything but Unavailable (a data error the engine could not
// pin on one write, Internal), it is split in halves, each applied (and
// split) again, so only the writes that fail on their own get that Status.
// A data error is never retried.
//
// Threading: callbacks run ON THE WRITER THREAD and must not block (post the
// result to the caller's executor/strand instead); they must not call Stop().
// Submit() is thread-safe and never blocks on I/O.
//
// Crash: a write whose callback has not yet run with OK may or may not be in
// the log (an Unavailable commit may have committed).

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "store/log_store.h"
#include "store/store_health.h"

namespace treaty {

struct LogWriterOptions {
  size_t max_batch = 512;       // most writes per ApplyBatch
  int64_t retry_for_ms = 5000;  // how long to retry a batch that fails with Unavailable
  // Optional (metrics): called on the writer thread after every ApplyBatch
  // attempt with the batch size, its latency and the whole-batch status.
  // Must not block.
  std::function<void(size_t writes, int64_t latency_us, const Status& status)> on_batch;
  // Optional, not owned: told the outcome of every ApplyBatch attempt, so
  // the API can refuse new work at once while the store is unreachable.
  StoreHealth* health = nullptr;
};

class LogWriter {
 public:
  // `store` is not owned and must outlive the writer. Starts the thread.
  LogWriter(LogStore* store, LogWriterOptions options);
  ~LogWriter();  // Stop()
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  using Callback = std::function<void(Status)>;
  // Queues `write`; `done` is called exactly once on the writer thread. After
  // Stop(), `done` is called at once, on the caller's thread, with Unavailable.
  void Submit(TxnWrite write, Callback done);

  // Finishes every queued write (including retries), then joins the thread.
  // Idempotent. Must not be called from a callback.
  void Stop();

  // Writes queued and not yet taken by the writer thread.
  size_t queue_depth() const;

 private:
  struct Pending {
    TxnWrite write;
    Callback done;
  };

  void Run();
  // Applies one batch with retries (and halving, see above) and returns one
  // Status per write.
  std::vector<Status> Apply(std::vector<TxnWrite> writes);
  // One batch with retries while Unavailable; the whole-batch failure, if any.
  Result<std::vector<Status>> ApplyWithRetries(const std::vector<TxnWrite>& writes);

  LogStore* const store_;
  const LogWriterOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;  // guarded by mu_
  bool stopping_ = false;      // guarded by mu_
  std::thread thread_;
};

}  // namespace treaty
