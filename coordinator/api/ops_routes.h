#pragma once

// OpsRoutes: the operator-facing HTTP routes beside the REST API, plugged in
// with RestApi::set_extra_routes:
//   GET /, /ui/<file>         the dashboard (embedded static files)
//   GET /metrics              Prometheus text format (CoordinatorMetrics)
//   GET /v1/stats             counts by kind/state/needs_attention and this
//                             coordinator's per-minute throughput (dashboard)
//   GET /v1/admin/log-level   {"level":"info"}
//   PUT /v1/admin/log-level   {"level":"debug"} sets spdlog's level at run time
// The AccessGate (access_gate.h) has checked each route's role before
// Handle runs (read for /metrics and /v1/stats, admin for the log level;
// the dashboard's files are open) and audits log-level changes.
// Store reads run on the blocking runner; Handle never blocks. Bodies are
// parsed with ParseJson, answers serialized with DumpJson, and each
// completion runs under AnswerGuarded (an exception is a 500 and a log line).
// Thread-safe; every pointer is borrowed and must outlive this object.

#include "api/coordinator_metrics.h"
#include "common/task_runner.h"
#include "engine/txn_service.h"
#include "http/http_types.h"
#include "security/identity.h"
#include "store/log_store.h"
#include "store/log_writer.h"

namespace treaty {

class OpsRoutes {
 public:
  OpsRoutes(CoordinatorMetrics* metrics, TxnService* service, LogWriter* writer, LogStore* store,
            TaskRunner* blocking);

  // An ExtraRoute: true if it answered (or will answer) the request. `who`:
  // the identity admitted (named in the log line of a log-level change).
  bool Handle(const HttpRequest& req, const Identity& who, HttpResponder& respond);

 private:
  void Metrics(HttpResponder respond);
  void Stats(HttpResponder respond);
  // The body of Stats, on the blocking runner.
  void AnswerStats(const HttpResponder& respond);
  void LogLevel(const HttpRequest& req, const Identity& who, HttpResponder& respond);
  // Reads counts (and optionally coordinators) from the store; blocking.
  CoordinatorMetrics::Snapshot Snapshot(bool with_coordinators);

  CoordinatorMetrics* metrics_;
  TxnService* service_;
  LogWriter* writer_;
  LogStore* store_;
  TaskRunner* blocking_;
};

}  // namespace treaty
