#pragma once

// Readiness: the one answer to "should this coordinator get traffic now?"
// (GET /readyz; docs/api.md "Operations routes" and "Draining",
// docs/operations.md "… the log stops completing commits, or writes fail"),
// and to its every-request half, "may it take new work?" (POST /v1/sagas,
// POST /v1/2pc answer 503 otherwise).
//
// Ready when, in this order (the first that fails is the answer):
//   1. it is not draining (Server::Drain sets the flag) ...... "draining"
//   2. the log store is not known down or stalled (StoreHealth): answered
//      at once with StoreHealth::Problem(), since a stalled store would hold
//      the answer for its whole deadline; a write probe then runs in the
//      background, so readiness comes back by itself without traffic;
//   3. the write probe, a small committed write bounded by the store's
//      deadline (this coordinator's heartbeat), succeeds, so readiness fails
//      while writes fail and SELECT still works (a read-only database):
//      "writes to the transaction log fail: ..."; its outcome is reported
//      to the StoreHealth;
//   4. the log is reachable and its schema is current (TxnQueries::CheckReady,
//      LogStore::CheckReady): "the transaction log is not ready: ...".
// Refusals are Unavailable; check 4 keeps the store's code (Internal when the
// store threw, a bug). A write probe that throws counts as failed writes.
//
// AdmitNewWork is checks 1 and 2 in their every-request form: not draining,
// and StoreHealth::AcceptsNewWork (its circuit breaker lets one submission
// through now and then to probe a store that was down).
//
// Thread-safe. Check never blocks its caller: checks 3 and 4 run on the
// blocking runner, and at most one write probe runs at a time.

#include <atomic>
#include <functional>

#include "common/task_runner.h"
#include "engine/txn_queries.h"
#include "store/store_health.h"
#include "treaty/status.h"

namespace treaty {

// Every pointer is borrowed and must outlive the Readiness (and the tasks it
// posts to `blocking`).
struct ReadinessDeps {
  TxnQueries* queries = nullptr;   // check 4; required
  TaskRunner* blocking = nullptr;  // where the write probe runs; required
  // Set while draining (the Server's flag, also read by the Thrift front
  // end). Null: never draining.
  const std::atomic<bool>* draining = nullptr;
  StoreHealth* health = nullptr;  // null: check 2 is skipped, nothing is reported
  // Check 3; blocking. Empty: no write probe (check 3 passes).
  std::function<Status()> write_probe;
};

class Readiness {
 public:
  explicit Readiness(ReadinessDeps deps) : deps_(std::move(deps)) {}
  Readiness(const Readiness&) = delete;
  Readiness& operator=(const Readiness&) = delete;

  // OK when new work may be accepted now; else Unavailable saying why
  // ("this coordinator is draining; use another", or the StoreHealth's
  // problem followed by "; retry later"). Never blocks.
  Status AdmitNewWork() const;

  // Runs checks 1-4 and calls `done` exactly once with OK or the first
  // refusal: on the caller's thread when check 1 or 2 answers, else on the
  // blocking runner.
  void Check(std::function<void(Status)> done);

 private:
  bool draining() const { return deps_.draining != nullptr && deps_.draining->load(); }
  // Check 3 (blocking): OK also when another probe is running (that one
  // reports) or the database answered without writing (see the .cc).
  Status ProbeWrites();

  const ReadinessDeps deps_;
  std::atomic<bool> probing_{false};
};

}  // namespace treaty
