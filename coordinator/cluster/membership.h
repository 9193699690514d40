#pragma once

// Membership: this coordinator's place in the leaderless cluster (DESIGN.md
// "Leaderless cluster"). On Join it registers a fresh id; a background
// thread then, every heartbeat interval:
//   1. heartbeats its row (by the database clock); if the row was marked
//      dead by a peer (a pause longer than the lease), it drops every
//      in-memory transaction at once and re-registers under a new id;
//   2. marks dead every peer whose heartbeat is older than the lease;
//   3. claims one bounded batch of unowned or dead-owned unfinished
//      transactions and hands it to TxnService to resume (one batch per
//      tick, so survivors of a crash share the dead one's work).
// Recovery after a crash of a single coordinator is this same path: its
// transactions are adopted once its lease expires (or at once if it handed
// them back on a graceful drain).
//
// Threading: one private thread doing blocking store calls; Join/Drain are
// called from the owner's thread. Not copyable.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
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
  const std::string& id() const { return id_; }
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
  static std::string NewId(const std::string& node_name);

  LogStore* store_;
  MembershipOptions options_;
  TxnService* service_ = nullptr;
  std::string id_;  // written by Join / Tick (re-register) on the loop thread
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
};

}  // namespace treaty
