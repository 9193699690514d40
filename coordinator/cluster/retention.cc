#include "cluster/retention.h"

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>

namespace treaty {

using Clock = std::chrono::steady_clock;

Retention::Retention(LogStore* store, RetentionOptions options)
    : store_(store), options_(std::move(options)) {
  options_.batch = std::max(1, options_.batch);
  options_.interval_ms = std::max<int64_t>(1, options_.interval_ms);
  options_.batch_pause_ms = std::max<int64_t>(0, options_.batch_pause_ms);
  if (!options_.now_ms) {
    options_.now_ms = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
}

Retention::~Retention() { Stop(); }

void Retention::Start() {
  if (options_.retention_ms <= 0 || thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = false;
  }
  thread_ = std::thread([this] { Loop(); });
}

void Retention::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Retention::stopping() {
  std::lock_guard<std::mutex> l(mu_);
  return stop_;
}

void Retention::Loop() {
  while (!stopping()) {
    (void)RunOnce();  // logs its own summary or error
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, std::chrono::milliseconds(options_.interval_ms), [this] { return stop_; });
  }
}

Result<int64_t> Retention::RunOnce() {
  // One cut-off for the whole run: rows that age past it meanwhile wait for
  // the next run, so a run always ends.
  const int64_t before_ms = options_.now_ms() - options_.retention_ms;
  const auto start = Clock::now();
  int64_t purged = 0;
  int batches = 0;
  Status error;
  while (true) {
    Result<int64_t> n = store_->PurgeFinished(before_ms, options_.batch);
    if (!n.ok()) {
      error = n.status();
      break;
    }
    ++batches;
    purged += *n;
    purged_total_ += *n;
    if (options_.on_purged && *n > 0) options_.on_purged(*n);
    if (*n < options_.batch) break;  // caught up
    std::unique_lock<std::mutex> l(mu_);
    if (cv_.wait_for(l, std::chrono::milliseconds(options_.batch_pause_ms),
                     [this] { return stop_; })) {
      break;
    }
  }
  const int64_t took_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  if (purged > 0) {
    spdlog::info(
        "retention: purged {} finished transactions older than {} h in {} batches, {} ms "
        "({} per second)",
        purged, options_.retention_ms / 3600000.0, batches, took_ms,
        took_ms > 0 ? purged * 1000 / took_ms : purged);
  }
  if (!error.ok()) {
    spdlog::warn("retention: purging finished transactions failed after {} deleted: {}", purged,
                 error.ToString());
    return error;
  }
  return purged;
}

}  // namespace treaty
