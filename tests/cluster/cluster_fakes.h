#pragma once

// Fakes for unit tests of Membership and Retention: an in-memory
// ClusterStore with fault switches that records every call with the fake
// clock's time, and a TxnAdopter that records what it is handed.
// Single-threaded, like the FakeTaskRunner that drives them.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/txn_adopter.h"
#include "store/cluster_store.h"
#include "support/fake_task_runner.h"

namespace treaty::testing {

class FakeClusterStore : public ClusterStore {
 public:
  explicit FakeClusterStore(FakeTaskRunner* runner) : runner_(runner) {}

  // --- switches ---
  bool fail_register = false;
  bool fail_heartbeats = false;  // Unavailable
  bool fail_mark_expired = false;
  bool fail_claims = false;
  bool fail_release = false;
  int fail_purges = 0;                   // fail this many purges with Unavailable
  std::vector<TxnDetail> orphans;        // claimed from the front
  int64_t live = 1;                      // live coordinators the census reports
  bool fail_census = false;              // CountOrphans: Unavailable
  std::vector<std::string> expired_ids;  // what MarkExpiredCoordinators returns
  int64_t purgeable = 0;                 // finished transactions past any cut-off
  int64_t owned = 0;                     // what ReleaseOwned returns

  // --- what happened (times are the fake clock's NowMs) ---
  std::map<std::string, std::string> rows;  // id -> "alive" | "dead"
  std::vector<std::string> registered;      // ids, in order
  struct Call {
    std::string id;
    int64_t at;
  };
  std::vector<Call> heartbeats;
  std::vector<int64_t> mark_expired_at;
  struct Claim {
    std::string id;
    int limit;
    int64_t at;
  };
  std::vector<Claim> claims;
  std::vector<int64_t> censuses;  // times of CountOrphans
  std::vector<std::string> released, deleted;
  struct Purge {
    int64_t before_ms;
    int limit;
    int64_t at;
  };
  std::vector<Purge> purges;

  // A peer declares `id` dead (its next heartbeat gets LostOwnership).
  void MarkDead(const std::string& id) { rows[id] = "dead"; }
  // Times of the heartbeats, relative to `origin`.
  std::vector<int64_t> HeartbeatTimes(int64_t origin) const;

  Status RegisterCoordinator(const CoordinatorRow& row) override;
  Status Heartbeat(const std::string& id) override;
  Result<std::vector<std::string>> MarkExpiredCoordinators(int64_t lease_ms) override;
  Status DeleteCoordinator(const std::string& id) override;
  Result<std::vector<TxnDetail>> ClaimOrphans(const std::string& new_owner, int limit) override;
  Result<OrphanCensus> CountOrphans(int64_t heartbeat_within_ms) override;
  Result<int64_t> ReleaseOwned(const std::string& owner) override;
  Result<int64_t> PurgeFinished(int64_t before_ms, int limit) override;

 private:
  FakeTaskRunner* runner_;
};

class FakeAdopter : public TxnAdopter {
 public:
  void Adopt(std::vector<TxnDetail> claimed) override {
    std::vector<std::string> gtids;
    for (const auto& d : claimed) gtids.push_back(d.txn.gtid);
    batches.push_back(std::move(gtids));
  }
  void DropAllAndReown(const std::string& new_owner) override { reowned.push_back(new_owner); }

  std::vector<std::vector<std::string>> batches;  // gtids adopted, per call
  std::vector<std::string> reowned;               // new owners, per call
};

// `n` unfinished transactions "<prefix>-0" ... without an owner.
std::vector<TxnDetail> Orphans(const std::string& prefix, int n);

}  // namespace treaty::testing
