#pragma once

// ClusterStore: the part of the log store that cluster membership
// (cluster/membership.h) and retention (cluster/retention.h) use, so that
// they depend on these eight calls only and their unit tests give them a
// small fake. LogStore (store/log_store.h) implements it; the contracts
// (database clock, SKIP LOCKED claims, batched purges) are written there.
//
// Thread-safety: every method may be called from any thread. Every method
// blocks on database I/O.

#include <cstdint>
#include <string>
#include <vector>

#include "store/records.h"
#include "treaty/status.h"

namespace treaty {

// The size of a take-over, for sharing it among the survivors
// (cluster/membership.h): both counts are read in one snapshot.
struct OrphanCensus {
  int64_t orphans = 0;            // unfinished transactions without a live owner
  int64_t live_coordinators = 0;  // 'alive' with a recent heartbeat (CountOrphans)
};

class ClusterStore {
 public:
  virtual ~ClusterStore() = default;

  // Coordinator rows (heartbeats by the database clock).
  virtual Status RegisterCoordinator(const CoordinatorRow& row) = 0;
  // LostOwnership when `id` was marked dead (or is gone).
  virtual Status Heartbeat(const std::string& id) = 0;
  virtual Result<std::vector<std::string>> MarkExpiredCoordinators(int64_t lease_ms) = 0;
  virtual Status DeleteCoordinator(const std::string& id) = 0;

  // Unfinished transactions without a live owner, and handing them back.
  virtual Result<std::vector<TxnDetail>> ClaimOrphans(const std::string& new_owner, int limit) = 0;
  virtual Result<OrphanCensus> CountOrphans(int64_t heartbeat_within_ms) = 0;
  virtual Result<int64_t> ReleaseOwned(const std::string& owner) = 0;

  // Finished transactions past retention; fewer than `limit` deleted means
  // none older are left.
  virtual Result<int64_t> PurgeFinished(int64_t before_ms, int limit) = 0;
};

}  // namespace treaty
