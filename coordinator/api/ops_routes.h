#pragma once

// OpsRoutes: the operator-facing HTTP routes beside the REST API, added to
// its route table with AddRoutes (GET routes also answer HEAD):
//   GET /, /ui/<file>         the dashboard (embedded static files)
//   GET /metrics              Prometheus text format (CoordinatorMetrics)
//   GET /v1/stats             counts by kind/state/needs_attention and this
//                             coordinator's per-minute throughput (dashboard)
//   GET /v1/openapi.json      the OpenAPI 3.1 document of this API (api/openapi.h)
//   GET /v1/admin/log-level   {"level":"info"}
//   PUT /v1/admin/log-level   {"level":"debug"} sets spdlog's level at run time
//                             (trace, debug, info, warn or warning, error,
//                             critical, off; GET names warn "warning")
// Each route is added with the access it needs, which the AccessGate
// (access_gate.h) checks before it runs: the dashboard's files are open;
// /metrics needs read (open with --metrics-open), as /v1/stats and
// /v1/openapi.json do; the log level needs admin, refusals are audited and
// so are changes.
// Store reads go through TxnQueries and answer on the blocking runner; no
// route blocks the caller's thread. Bodies are
// parsed with ParseJson, answers serialized with DumpJson, and each
// completion runs under AnswerGuarded (an exception is a 500 and a log line).
// Thread-safe; every pointer is borrowed and must outlive this object.

#include <functional>

#include "api/coordinator_metrics.h"
#include "api/router.h"
#include "engine/txn_queries.h"
#include "engine/txn_service.h"
#include "http/http_types.h"
#include "security/identity.h"
#include "store/log_store.h"
#include "store/log_writer.h"

namespace treaty {

class OpsRoutes {
 public:
  // `metrics_open` (--metrics-open): GET /metrics without the read role.
  OpsRoutes(CoordinatorMetrics* metrics, TxnService* service, LogWriter* writer,
            TxnQueries* queries, bool metrics_open);

  // Adds the routes above to `router` (before serving).
  void AddRoutes(Router* router);

 private:
  void Metrics(HttpResponder respond);
  void Stats(HttpResponder respond);
  // The body of Stats, on the blocking runner.
  void AnswerStats(const CoordinatorMetrics::Snapshot& s, const HttpResponder& respond);
  // `who`: the identity admitted (named in the log line of a level change).
  void LogLevel(const HttpRequest& req, const Identity& who, HttpResponder& respond);
  // Reads counts (and optionally coordinators) through TxnQueries and gives
  // them to `done` on the blocking runner; a failed read leaves store_ok false.
  void Snapshot(bool with_coordinators, std::function<void(CoordinatorMetrics::Snapshot)> done);

  CoordinatorMetrics* metrics_;
  TxnService* service_;
  LogWriter* writer_;
  TxnQueries* queries_;
  const bool metrics_open_;
};

}  // namespace treaty
