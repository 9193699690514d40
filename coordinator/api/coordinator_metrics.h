#pragma once

// CoordinatorMetrics: Treaty's Prometheus metrics (GET /metrics) and the
// recent-throughput window behind the dashboard's overview (GET /v1/stats).
//
// Fed by three hooks:
//  - as the TxnObserver that TxnService forwards to (starts, finishes, drops,
//    participant calls with latency) — called on the engine runner;
//  - OnLogBatch from the LogWriter thread (every ApplyBatch attempt);
//  - Refresh() at scrape time, with what the log says now (counts by kind,
//    state and needs_attention; cluster members) — called on a blocking thread.
// Every method is thread-safe and none blocks. Counters are this process's
// (reset on restart, as Prometheus expects); gauges from Refresh describe
// the whole cluster's log, so sum() over coordinators would over-count them:
// alert on max() of those (docs/operations.md).
//
// Metric names and labels are documented in docs/operations.md.

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "api/metrics.h"
#include "common/mutex.h"
#include "engine/engine_context.h"
#include "store/records.h"
#include "treaty/status.h"

namespace treaty {

// Per-minute totals of this coordinator, oldest first.
struct ThroughputMinute {
  int64_t start_ms = 0;  // wall-clock start of the minute
  int64_t started = 0;
  int64_t committed = 0;
  int64_t aborted = 0;
  int64_t calls = 0;
  int64_t failed_calls = 0;  // business failures + transient failures
};

class CoordinatorMetrics : public TxnObserver {
 public:
  static constexpr int kWindowMinutes = 15;

  // `now_ms`: wall clock in ms (injected for tests); default system clock.
  explicit CoordinatorMetrics(std::function<int64_t()> now_ms = {});

  // TxnObserver.
  void OnStarted(const std::string& gtid, const std::string& kind) override;
  void OnFinished(const std::string& gtid, const std::string& kind,
                  const std::string& state) override;
  void OnDropped(const std::string& gtid, const Status& why) override;
  void OnCall(const std::string& op, CallOutcome outcome, int64_t latency_ms) override;

  // One LogWriter ApplyBatch attempt of `writes` writes took `latency_us`.
  void OnLogBatch(size_t writes, int64_t latency_us, const Status& status);
  // A failed store read (scrape, dashboard, API).
  void OnStoreError(const std::string& op, const Status& status);
  // Retention deleted `n` finished transactions (on the retention runner).
  void OnPurged(int64_t n);

  // Scrape-time snapshot from the log and this process.
  struct Snapshot {
    bool store_ok = false;
    std::vector<StateCount> counts;
    std::vector<CoordinatorRow> coordinators;
    int64_t active_drivers = 0;
    int64_t log_queue_depth = 0;
    bool log_stalled = false;  // LogWriter::stalled()
  };
  void Refresh(const Snapshot& snapshot);

  // The Prometheus text exposition of every metric.
  std::string Render() const { return registry_.Render(); }
  // The last kWindowMinutes minutes, oldest first, the current one last.
  std::vector<ThroughputMinute> RecentThroughput() const;

  const MetricsRegistry& registry() const { return registry_; }

 private:
  ThroughputMinute& Minute() TREATY_REQUIRES(window_mu_);  // the current bucket

  std::function<int64_t()> now_ms_;
  MetricsRegistry registry_;
  CounterFamily* started_;
  CounterFamily* finished_;
  CounterFamily* dropped_;
  CounterFamily* calls_;
  CounterFamily* retries_;
  HistogramFamily* call_latency_;
  HistogramFamily* log_write_latency_;
  CounterFamily* log_writes_;
  CounterFamily* store_errors_;
  CounterFamily* purged_;
  GaugeFamily* transactions_;
  GaugeFamily* in_flight_;
  GaugeFamily* attention_;
  GaugeFamily* active_drivers_;
  GaugeFamily* log_queue_depth_;
  GaugeFamily* log_stalled_;
  GaugeFamily* cluster_members_;
  GaugeFamily* store_up_;

  mutable Mutex window_mu_;
  // A ring by minute: minute `start` is at (start / kMinuteMs) % kWindowMinutes.
  std::array<ThroughputMinute, kWindowMinutes> window_ TREATY_GUARDED_BY(window_mu_){};
};

}  // namespace treaty
