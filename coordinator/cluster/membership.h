#pragma once

// Membership: this coordinator's place in the leaderless cluster
// (docs/schema.md "Ownership and recovery", docs/operations.md). On Join it registers a fresh id; a
// background thread then, every heartbeat interval:
//   1. heartbeats its row (by the database clock); if the row was marked
//      dead by a peer (a pause longer than the lease), it drops every
//      in-memory transaction at once and re-registers under a new id;
//   2. marks dead every peer whose heartbeat is older than the lease (only
//      once its own heartbeats have succeeded for a whole lease, so that a
//      database outage does not make every peer look dead);
//   3. claims one bounded batch of unowned or dead-owned unfinished
//      transactions and hands it to TxnService to resume (one batch per
//      tick, so survivors of a crash share the dead one's work).
// Deleting finished transactions past the retention period is not its job:
// that is Retention (cluster/retention.h), on its own thread.
// Recovery after a crash of a single coordinator is this same path: its
// transactions are adopted once its lease expires (or at once if it handed
// them back on a graceful drain).
//
// Threading: one private thread doing blocking store calls; Join/Drain are
// called from the owner's thread. Not copyable.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/status.h"
#include "engine/txn_service.h"
#include "store/log_store.h"

namespace treaty {

struct MembershipOptions {
  std::string node_name;
  std::string http_addr;
  std::string thrift_addr;
  int64_t heartbeat_ms = 1000;
  int64_t lease_ms = 5000;
  int claim_batch = 100;  // most transactions adopted per heartbeat
};

class Membership {
 public:
  Membership(LogStore* store, MembershipOptions options);
  ~Membership();

  // Registers a fresh coordinator id. Blocking.
  Status Join();
  // The current id (changes when the coordinator re-registers). Thread-safe.
  std::string id() const;
  // Starts the heartbeat/takeover thread, resuming work through `service`.
  void Start(TxnService* service);
  // Stops the thread; then, if `hand_back`, releases owned unfinished
  // transactions (owner cleared, peers adopt them at once) and deregisters.
  Status Stop(bool hand_back);
  // Runs one heartbeat/expire/claim round now; true when it claimed a full
  // batch (more orphans are likely waiting).
  bool Tick();

 private:
  void Loop();
  // Claims and adopts one batch of orphans; true when the batch was full.
  bool ClaimBatch(const std::string& me);
  static std::string NewId(const std::string& node_name);

  LogStore* store_;
  MembershipOptions options_;
  TxnService* service_ = nullptr;

  mutable std::mutex id_mu_;
  std::string id_;  // guarded by id_mu_; written by Join (start, re-register)
  // Since when heartbeats have succeeded without a break (loop thread only);
  // peers are declared dead only after a whole lease of it.
  std::optional<std::chrono::steady_clock::time_point> connected_since_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
};

}  // namespace treaty
