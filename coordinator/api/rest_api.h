#pragma once

// RestApi: the REST front end (DESIGN.md "Client API"), a thin adapter from
// HTTP requests to TxnService calls and from results to JSON. It validates
// input (JSON syntax, fields, limits) and maps Status codes to HTTP:
//   InvalidArgument 400, NotFound 404, Conflict/LostOwnership 409,
//   TooLarge 413, Unavailable 503, TimedOut 504, Internal 500;
// errors are {"error":{"code","message"}}. It never blocks the caller's
// thread: store reads go through TxnService or the blocking runner.

#include <atomic>
#include <functional>
#include <string>

#include "common/task_runner.h"
#include "engine/txn_service.h"
#include "http/http_types.h"
#include "store/log_store.h"
#include "store/store_health.h"

namespace treaty {

struct RestApiOptions {
  SpecLimits limits;
  int max_list_limit = 1000;
};

// Extra routes served beside the REST API (dashboard, metrics); return false
// to fall through.
using ExtraRoute = std::function<bool(const HttpRequest&, HttpResponder&)>;

class RestApi {
 public:
  RestApi(TxnService* service, LogStore* store, TaskRunner* blocking, RestApiOptions options);

  // The HttpHandler of the coordinator's HTTP server.
  void Handle(HttpRequest request, HttpResponder respond);

  // While draining, new work is refused (503) and /readyz fails.
  void set_draining(bool on) { draining_ = on; }
  // Optional, not owned: while it reports the log store unreachable, new
  // work (POST /v1/sagas, POST /v1/2pc) is refused at once with 503.
  void set_store_health(const StoreHealth* health) { health_ = health; }
  void set_extra_routes(ExtraRoute route) { extra_ = std::move(route); }

 private:
  void SubmitSaga(const HttpRequest& req, HttpResponder respond);
  // POST /v1/2pc[/{gtid}/branches|commit|abort] (rest_api_2pc.cc).
  void Handle2pc(const HttpRequest& req, HttpResponder respond);
  void GetTransaction(const std::string& gtid, HttpResponder respond);
  void ListTransactions(const HttpRequest& req, HttpResponder respond);
  void OperatorAction(const std::string& gtid, bool abort, HttpResponder respond);
  void Cluster(HttpResponder respond);
  void Ready(HttpResponder respond);

  TxnService* service_;
  LogStore* store_;
  TaskRunner* blocking_;
  RestApiOptions options_;
  std::atomic<bool> draining_{false};
  const StoreHealth* health_ = nullptr;
  // 503 for new work while draining or while the log store is unreachable.
  bool RefuseNewWork(HttpResponder& respond);
  ExtraRoute extra_;
};

// JSON helpers shared with other front ends and tools.
HttpResponse JsonResponse(int status, const std::string& body);
HttpResponse ErrorResponse(const Status& status);
std::string TxnDetailJson(const TxnDetail& detail, bool with_events);
std::string TxnRowJson(const TxnRow& row);

}  // namespace treaty
