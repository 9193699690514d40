#include "store/log_writer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <iterator>

namespace treaty {

namespace {

constexpr int64_t kInitialBackoffMs = 10;
constexpr int64_t kMaxBackoffMs = 1000;

LogWriterOptions Sanitize(LogWriterOptions options) {
  options.max_batch = std::max<size_t>(options.max_batch, 1);
  options.retry_for_ms = std::max<int64_t>(options.retry_for_ms, 0);
  return options;
}

}  // namespace

LogWriter::LogWriter(LogStore* store, LogWriterOptions options)
    : store_(store), options_(Sanitize(options)) {
  thread_ = std::thread([this] { Run(); });
}

LogWriter::~LogWriter() { Stop(); }

void LogWriter::Submit(TxnWrite write, Callback done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      queue_.push_back({std::move(write), std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  done(Status::Unavailable("log writer stopped"));
}

void LogWriter::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

size_t LogWriter::queue_depth() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void LogWriter::Run() {
  while (true) {
    std::vector<Pending> batch;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      const size_t n = std::min(queue_.size(), options_.max_batch);
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    std::vector<TxnWrite> writes;
    writes.reserve(batch.size());
    for (Pending& p : batch) writes.push_back(std::move(p.write));
    std::vector<Status> results = Apply(writes);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].done) batch[i].done(std::move(results[i]));
    }
  }
}

std::vector<Status> LogWriter::Apply(std::vector<TxnWrite> writes) {
  Result<std::vector<Status>> r = ApplyWithRetries(writes);
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
  std::vector<Status> results = Apply(std::move(writes));
  std::vector<Status> rest = Apply(std::move(second));
  results.insert(results.end(), std::make_move_iterator(rest.begin()),
                 std::make_move_iterator(rest.end()));
  return results;
}

Result<std::vector<Status>> LogWriter::ApplyWithRetries(const std::vector<TxnWrite>& writes) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(options_.retry_for_ms);
  int64_t backoff_ms = kInitialBackoffMs;
  while (true) {
    const auto began = Clock::now();
    Result<std::vector<Status>> r = store_->ApplyBatch(writes);
    const bool applied = r.ok() && r->size() == writes.size();
    Status failure = applied  ? Status::Ok()
                     : r.ok() ? Status::Internal("store returned a wrong number of results")
                              : r.status();
    if (options_.on_batch) {
      options_.on_batch(
          writes.size(),
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - began).count(),
          failure);
    }
    if (options_.health) options_.health->Report(failure);
    if (applied) return r;
    const auto now = Clock::now();
    if (failure.code() != StatusCode::kUnavailable || now >= deadline) return failure;
    spdlog::warn("log writer: batch of {} writes failed, retrying in {} ms: {}", writes.size(),
                 backoff_ms, failure.ToString());
    const auto wake = std::min(now + std::chrono::milliseconds(backoff_ms), deadline);
    std::this_thread::sleep_until(wake);
    backoff_ms = std::min(backoff_ms * 2, kMaxBackoffMs);
  }
}

}  // namespace treaty
