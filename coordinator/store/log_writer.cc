#include "store/log_writer.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <iterator>
#include <string>

#include <spdlog/spdlog.h>

namespace treaty {

namespace {

constexpr int64_t kInitialBackoffMs = 10;
// While a batch keeps failing, a warning about every this many retries
// (about 5 s at the cap).
constexpr int kRetriesPerWarning = 20;

LogWriterOptions Sanitize(LogWriterOptions options) {
  options.max_batch = std::max<size_t>(options.max_batch, 1);
  options.lanes = std::clamp<size_t>(options.lanes, 1, kLogWriterMaxLanes);
  options.retry_for_ms = std::max<int64_t>(options.retry_for_ms, 0);
  options.stall_after_ms = std::max<int64_t>(options.stall_after_ms, 1);
  return options;
}

// Whether `row` is exactly what the create `w` wrote: nobody changed it since.
bool IsOwnCreate(const TxnWrite& w, const TxnRow& row) {
  const TxnRow& c = *w.create;
  const std::string& owner = c.owner.empty() ? w.owner : c.owner;
  return !owner.empty() && row.owner == owner && row.kind == c.kind && row.spec == c.spec &&
         row.state == c.state && row.version == c.version;
}

}  // namespace

LogWriter::LogWriter(LogStore* store, LogWriterOptions options)
    : store_(store),
      options_(Sanitize(options)),
      clock_(options_.clock ? options_.clock : SystemClock()) {
  {
    MutexLock lock(&mu_);
    lanes_.resize(options_.lanes);
  }
  for (size_t i = 0; i < options_.lanes; ++i) lane_cv_.push_back(std::make_unique<CondVar>());
  for (size_t i = 0; i < options_.lanes; ++i) threads_.emplace_back([this, i] { Run(i); });
  watch_thread_ = std::thread([this] { Watch(); });
}

LogWriter::~LogWriter() { Stop(); }

void LogWriter::Submit(TxnWrite write, Callback done) {
  const size_t lane =
      options_.lanes == 1 ? 0 : std::hash<std::string>{}(write.gtid) % options_.lanes;
  {
    MutexLock lock(&mu_);
    if (!stopping_) {
      lanes_[lane].queue.push_back({std::move(write), std::move(done), clock_->MonotonicMs()});
      lane_cv_[lane]->NotifyOne();
      return;
    }
  }
  done(Status::Unavailable("log writer stopped"));
}

void LogWriter::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& cv : lane_cv_) cv->NotifyOne();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  {
    MutexLock lock(&mu_);
    watch_stopping_ = true;
  }
  watch_cv_.NotifyOne();
  if (watch_thread_.joinable()) watch_thread_.join();
}

size_t LogWriter::queue_depth() const {
  MutexLock lock(&mu_);
  size_t depth = 0;
  for (const Lane& l : lanes_) depth += l.queue.size();
  return depth;
}

void LogWriter::Run(size_t lane) {
  LaneThread self{.lane = lane};
  while (true) {
    std::vector<Pending> batch;
    {
      MutexLock lock(&mu_);
      while (!stopping_ && lanes_[lane].queue.empty()) lane_cv_[lane]->Wait(&mu_);
      Lane& l = lanes_[lane];
      if (l.queue.empty()) return;  // stopping and drained
      const size_t n = std::min(l.queue.size(), options_.max_batch);
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(l.queue.front()));
        l.queue.pop_front();
      }
      l.batch_since_ms = clock_->MonotonicMs();
      l.batch_writes = n;
      l.stall_reported = false;
    }
    watch_cv_.NotifyOne();
    int64_t oldest_ms = batch.front().submitted_ms;
    std::vector<TxnWrite> writes;
    writes.reserve(batch.size());
    for (Pending& p : batch) {
      oldest_ms = std::min(oldest_ms, p.submitted_ms);
      writes.push_back(std::move(p.write));
    }
    // +1: times are whole milliseconds, so this is the first one at which
    // retry_for_ms has certainly passed since the oldest submission.
    const int64_t deadline_ms = oldest_ms + options_.retry_for_ms + 1;
    std::vector<Status> results;
    if (self.store_unavailable && clock_->MonotonicMs() >= deadline_ms) {
      // These writes waited out their retry window behind an unavailable
      // store: answer now rather than after one more blocked attempt.
      results.assign(writes.size(),
                     Status::TimedOut("the log store has been unavailable for longer than " +
                                      std::to_string(options_.retry_for_ms) + " ms; not written"));
    } else {
      bool outcome_unknown = false;
      results = Apply(std::move(writes), deadline_ms, &outcome_unknown, &self);
    }
    {
      MutexLock lock(&mu_);
      lanes_[lane].batch_since_ms.reset();
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].done) batch[i].done(std::move(results[i]));
    }
  }
}

void LogWriter::Watch() {
  while (true) {
    int64_t waited_ms = 0;
    size_t writes = 0;
    {
      MutexLock lock(&mu_);
      if (watch_stopping_) return;
      // The lane whose batch in progress, not yet reported, is due first.
      Lane* due = nullptr;
      for (Lane& l : lanes_) {
        if (!l.batch_since_ms || l.stall_reported) continue;
        if (due == nullptr || *l.batch_since_ms < *due->batch_since_ms) due = &l;
      }
      if (due == nullptr) {
        watch_cv_.Wait(&mu_);
        continue;
      }
      const int64_t due_ms = *due->batch_since_ms + options_.stall_after_ms + 1;  // as deadline_ms
      const int64_t now_ms = clock_->MonotonicMs();
      if (now_ms < due_ms) {
        // Until the batch is due or Stop; a batch that ended or began
        // meanwhile is seen when the loop looks again.
        (void)watch_cv_.WaitFor(&mu_, due_ms - now_ms,
                                [this]() TREATY_REQUIRES(mu_) { return watch_stopping_; });
        continue;
      }
      due->stall_reported = true;
      due->stalled = true;
      stalled_.store(true);
      waited_ms = now_ms - *due->batch_since_ms;
      writes = due->batch_writes;
      for (const Lane& l : lanes_) writes += l.queue.size();
    }
    if (options_.health) {
      options_.health->ReportStall(waited_ms, writes);
    } else {
      spdlog::error("log writer: {} writes have waited {} ms for a commit", writes, waited_ms);
    }
  }
}

void LogWriter::ReportAttempt(const Status& failure, bool applied, LaneThread* lane) {
  lane->store_unavailable = failure.code() == StatusCode::kUnavailable;
  if (lane->store_unavailable) {
    if (options_.health) options_.health->Report(failure);
    return;
  }
  if (!applied) return;  // nothing committed: no evidence either way
  bool any_stalled = false;
  {
    MutexLock lock(&mu_);
    lanes_[lane->lane].stalled = false;
    for (const Lane& l : lanes_) any_stalled = any_stalled || l.stalled;
  }
  // Another lane still waiting for its COMMIT keeps the stall (and the
  // store reported down): this commit proves only its own connection.
  if (any_stalled) return;
  stalled_.store(false);
  if (options_.health) options_.health->Report(Status::Ok());
}

std::vector<Status> LogWriter::Apply(std::vector<TxnWrite> writes, int64_t deadline_ms,
                                     bool* outcome_unknown, LaneThread* lane) {
  Result<std::vector<Status>> r = ApplyWithRetries(writes, deadline_ms, outcome_unknown, lane);
  if (r.ok()) return std::move(*r);
  const Status& failure = r.status();
  if (failure.code() == StatusCode::kUnavailable || writes.size() == 1) {
    spdlog::error("log writer: batch of {} writes failed: {}", writes.size(), failure.ToString());
    return std::vector<Status>(writes.size(), failure);
  }
  // Not the database being away: some write may fail on its own. Halve the
  // batch so it fails alone (in submission order: first half first).
  spdlog::warn("log writer: batch of {} writes failed, applying it in halves: {}", writes.size(),
               failure.ToString());
  const auto middle = writes.begin() + static_cast<std::ptrdiff_t>(writes.size() / 2);
  std::vector<TxnWrite> second(std::make_move_iterator(middle),
                               std::make_move_iterator(writes.end()));
  writes.erase(middle, writes.end());
  std::vector<Status> results = Apply(std::move(writes), deadline_ms, outcome_unknown, lane);
  std::vector<Status> rest = Apply(std::move(second), deadline_ms, outcome_unknown, lane);
  results.insert(results.end(), std::make_move_iterator(rest.begin()),
                 std::make_move_iterator(rest.end()));
  return results;
}

Result<std::vector<Status>> LogWriter::ApplyWithRetries(const std::vector<TxnWrite>& writes,
                                                        int64_t deadline_ms, bool* outcome_unknown,
                                                        LaneThread* lane) {
  int64_t backoff_ms = kInitialBackoffMs;
  for (int retries = 0;; ++retries) {
    // Latency for the metric only, finer than the Clock's milliseconds.
    const auto began = std::chrono::steady_clock::now();
    Result<std::vector<Status>> r = store_->ApplyBatch(writes);
    const bool applied = r.ok() && r->size() == writes.size();
    Status failure = applied  ? Status::Ok()
                     : r.ok() ? Status::Internal("store returned a wrong number of results")
                              : r.status();
    if (options_.on_batch) {
      options_.on_batch(writes.size(),
                        std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - began)
                            .count(),
                        failure);
    }
    // A create recognized as its own counts as applied: its row is visible,
    // so the COMMIT that wrote it has completed.
    if (applied) RecognizeOwnCreates(writes, *outcome_unknown, &*r);
    const bool any_ok =
        applied && std::any_of(r->begin(), r->end(), [](const Status& s) { return s.ok(); });
    ReportAttempt(failure, any_ok, lane);
    if (applied) return r;
    if (failure.code() != StatusCode::kUnavailable) return failure;
    *outcome_unknown = true;
    const int64_t now_ms = clock_->MonotonicMs();
    if (now_ms >= deadline_ms) return failure;
    if (retries == 0) {
      spdlog::warn("log writer: batch of {} writes failed, retrying (at most {} ms apart): {}",
                   writes.size(), kLogWriterMaxRetryBackoffMs, failure.ToString());
    } else if (retries % kRetriesPerWarning == 0) {
      spdlog::warn("log writer: batch of {} writes still failing after {} retries: {}",
                   writes.size(), retries, failure.ToString());
    }
    const int64_t wake_ms = std::min(now_ms + backoff_ms, deadline_ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(wake_ms - now_ms));
    backoff_ms = std::min(backoff_ms * 2, kLogWriterMaxRetryBackoffMs);
  }
}

void LogWriter::RecognizeOwnCreates(const std::vector<TxnWrite>& writes, bool batch_unknown,
                                    std::vector<Status>* results) {
  for (size_t i = 0; i < writes.size(); ++i) {
    const TxnWrite& w = writes[i];
    if (!w.create || (*results)[i].code() != StatusCode::kConflict) continue;
    if (!batch_unknown && !w.create_outcome_unknown) continue;
    Result<TxnDetail> stored = store_->GetTransactionNoEvents(w.gtid);
    if (!stored.ok()) {
      (*results)[i] = Status::Unavailable("gtid " + w.gtid +
                                          ": the create may have committed before its answer was "
                                          "lost, and the log cannot be read to tell: " +
                                          stored.status().message());
    } else if (IsOwnCreate(w, stored->txn)) {
      spdlog::info("gtid={} the create had committed although its answer was lost; carrying on",
                   w.gtid);
      (*results)[i] = Status::Ok();
    }
  }
}

}  // namespace treaty
