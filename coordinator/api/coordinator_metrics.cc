#include "api/coordinator_metrics.h"

#include <chrono>
#include <map>

#include "common/version.h"
#include "engine/states.h"

namespace treaty {
namespace {

constexpr int64_t kMinuteMs = 60000;

const char* OutcomeName(CallOutcome o) {
  switch (o) {
    case CallOutcome::kOk:
      return "ok";
    case CallOutcome::kBusinessFailure:
      return "business_failure";
    case CallOutcome::kTransient:
      return "transient";
    case CallOutcome::kUncallable:
      return "uncallable";
  }
  return "transient";
}

std::string CodeName(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kTimedOut:
      return "timed_out";
    case StatusCode::kInternal:
      return "internal";
    default:
      return "other";
  }
}

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const std::vector<double> kCallBuckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1,     2.5,  5,     10,   30};
const std::vector<double> kLogBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                         0.05,   0.1,   0.25,   0.5,   1,    5};

}  // namespace

CoordinatorMetrics::CoordinatorMetrics(std::function<int64_t()> now_ms)
    : now_ms_(now_ms ? std::move(now_ms) : SystemNowMs) {
  MetricsRegistry& r = registry_;
  started_ = r.AddCounter("treaty_transactions_started_total",
                          "Transactions created durably by this coordinator.", {"kind"});
  finished_ =
      r.AddCounter("treaty_transactions_finished_total",
                   "Transactions this coordinator drove to a terminal state.", {"kind", "outcome"});
  dropped_ = r.AddCounter("treaty_transactions_dropped_total",
                          "Transactions this coordinator stopped driving (lost ownership).");
  calls_ = r.AddCounter("treaty_branch_calls_total",
                        "Participant calls by op (action, compensate, prepare, commit, abort) "
                        "and outcome (ok, business_failure, transient, uncallable).",
                        {"op", "outcome"});
  retries_ = r.AddCounter("treaty_branch_call_retries_total",
                          "Participant calls that failed transiently; each is retried with "
                          "backoff (except an action's last attempt).",
                          {"op"});
  call_latency_ = r.AddHistogram("treaty_participant_call_duration_seconds",
                                 "Participant call latency, any outcome.", {"op"}, kCallBuckets);
  log_write_latency_ =
      r.AddHistogram("treaty_log_write_duration_seconds",
                     "Latency of one group-commit batch written to the log store (each attempt).",
                     {}, kLogBuckets);
  log_writes_ =
      r.AddCounter("treaty_log_writes_total",
                   "Transaction writes applied by the log writer, by result.", {"result"});
  store_errors_ =
      r.AddCounter("treaty_log_store_errors_total",
                   "Failed log store operations (op: write, read) by code.", {"op", "code"});
  purged_ = r.AddCounter("treaty_transactions_purged_total",
                         "Finished transactions deleted by this coordinator's retention.");
  transactions_ =
      r.AddGauge("treaty_transactions", "Transactions in the log (cluster-wide) by kind and state.",
                 {"kind", "state"});
  in_flight_ = r.AddGauge("treaty_transactions_in_flight",
                          "Unfinished transactions in the log (cluster-wide).", {"kind"});
  attention_ =
      r.AddGauge("treaty_transactions_needing_attention",
                 "Unfinished transactions flagged needs_attention (cluster-wide).", {"kind"});
  active_drivers_ =
      r.AddGauge("treaty_active_drivers", "Transactions driven in this coordinator's memory now.");
  log_queue_depth_ =
      r.AddGauge("treaty_log_writer_queue_depth", "Writes queued for the next group-commit batch.");
  log_stalled_ = r.AddGauge("treaty_log_stalled",
                            "1 while log writes have waited longer than the stall threshold for a "
                            "commit and none has completed since; new work is refused.");
  cluster_members_ = r.AddGauge("treaty_cluster_members",
                                "Coordinators registered in the log, by state.", {"state"});
  store_up_ = r.AddGauge("treaty_log_store_up",
                         "1 if the log store answered this scrape's queries, else 0.");
  // Constant 1; the labels say which build answers (join on them in queries).
  r.AddGauge("treaty_build_info", "1, labelled with the version and git commit of this build.",
             {"version", "commit"})
      ->Set({std::string(Version()), std::string(GitCommit())}, 1);
  // Label sets that should read 0 rather than be absent from the start.
  for (const char* kind : {states::kSaga, states::k2pc}) {
    started_->Inc({kind}, 0);
    for (const char* o : {"committed", "aborted"}) finished_->Inc({kind, o}, 0);
  }
  for (const char* code : {"unavailable", "internal"}) {
    store_errors_->Inc({"write", code}, 0);
    store_errors_->Inc({"read", code}, 0);
  }
}

ThroughputMinute& CoordinatorMetrics::Minute() {
  const int64_t now = now_ms_();
  const int64_t start = now - now % kMinuteMs;
  ThroughputMinute& m = window_[static_cast<size_t>((start / kMinuteMs) % kWindowMinutes)];
  if (m.start_ms != start) m = ThroughputMinute{start};
  return m;
}

void CoordinatorMetrics::OnStarted(const std::string& gtid, const std::string& kind) {
  started_->Inc({kind});
  MutexLock l(&window_mu_);
  ++Minute().started;
}

void CoordinatorMetrics::OnFinished(const std::string& gtid, const std::string& kind,
                                    const std::string& state) {
  const bool committed = state == states::kCommitted;
  finished_->Inc({kind, committed ? "committed" : "aborted"});
  MutexLock l(&window_mu_);
  ++(committed ? Minute().committed : Minute().aborted);
}

void CoordinatorMetrics::OnDropped(const std::string& gtid, const Status& why) {
  dropped_->Inc({});
}

void CoordinatorMetrics::OnCall(const std::string& op, CallOutcome outcome, int64_t latency_ms) {
  calls_->Inc({op, OutcomeName(outcome)});
  if (outcome == CallOutcome::kTransient) retries_->Inc({op});
  call_latency_->Observe({op}, static_cast<double>(latency_ms) / 1000.0);
  MutexLock l(&window_mu_);
  ThroughputMinute& m = Minute();
  ++m.calls;
  if (outcome != CallOutcome::kOk) ++m.failed_calls;
}

void CoordinatorMetrics::OnLogBatch(size_t writes, int64_t latency_us, const Status& status) {
  log_write_latency_->Observe({}, static_cast<double>(latency_us) / 1e6);
  if (status.ok()) {
    log_writes_->Inc({"ok"}, static_cast<double>(writes));
  } else {
    log_writes_->Inc({"failed_attempt"}, static_cast<double>(writes));
    store_errors_->Inc({"write", CodeName(status)});
  }
}

void CoordinatorMetrics::OnStoreError(const std::string& op, const Status& status) {
  store_errors_->Inc({op, CodeName(status)});
}

void CoordinatorMetrics::OnPurged(int64_t n) { purged_->Inc({}, static_cast<double>(n)); }

void CoordinatorMetrics::Refresh(const Snapshot& s) {
  store_up_->Set({}, s.store_ok ? 1 : 0);
  active_drivers_->Set({}, static_cast<double>(s.active_drivers));
  log_queue_depth_->Set({}, static_cast<double>(s.log_queue_depth));
  log_stalled_->Set({}, s.log_stalled ? 1 : 0);
  if (!s.store_ok) return;  // keep the last known log-derived gauges
  std::map<LabelValues, double> by_state, in_flight, attention;
  for (const char* kind : {states::kSaga, states::k2pc}) {
    in_flight[{kind}] = 0;
    attention[{kind}] = 0;
  }
  for (const StateCount& c : s.counts) {
    by_state[{c.kind, c.state}] += static_cast<double>(c.count);
    if (!states::IsTerminal(c.state)) in_flight[{c.kind}] += static_cast<double>(c.count);
    if (c.needs_attention && !states::IsTerminal(c.state)) {
      attention[{c.kind}] += static_cast<double>(c.count);
    }
  }
  transactions_->Replace(std::move(by_state));
  in_flight_->Replace(std::move(in_flight));
  attention_->Replace(std::move(attention));
  std::map<LabelValues, double> members = {{{"alive"}, 0}, {{"draining"}, 0}, {{"dead"}, 0}};
  for (const CoordinatorRow& c : s.coordinators) members[{c.state}] += 1;
  cluster_members_->Replace(std::move(members));
}

std::vector<ThroughputMinute> CoordinatorMetrics::RecentThroughput() const {
  const int64_t now = now_ms_();
  const int64_t current = now - now % kMinuteMs;
  std::vector<ThroughputMinute> out;
  MutexLock l(&window_mu_);
  for (int i = kWindowMinutes - 1; i >= 0; --i) {
    const int64_t start = current - i * kMinuteMs;
    const ThroughputMinute& m = window_[static_cast<size_t>((start / kMinuteMs) % kWindowMinutes)];
    out.push_back(m.start_ms == start ? m : ThroughputMinute{start});
  }
  return out;
}

}  // namespace treaty
