#pragma once

// Membership: this coordinator's place in the leaderless cluster
// (docs/schema.md "Ownership and recovery", docs/operations.md). On Join it
// registers a fresh id; then one round runs every heartbeat interval, as a
// task on `runner` that re-arms itself with PostAfter (RepeatingTask,
// cluster/repeating_task.h):
//   1. heartbeats its row (by the database clock); if the row was marked
//      dead by a peer (a pause longer than the lease), it re-registers under
//      a new id and has the adopter drop every in-memory transaction at once
//      and fence its writes with that id;
//   2. marks dead every peer whose heartbeat is older than the lease (only
//      once its own heartbeats have succeeded for a whole lease by the
//      monotonic clock, so that a database outage does not make every peer
//      look dead);
//   3. claims one bounded batch (`claim_batch`) of unowned or dead-owned
//      unfinished transactions and hands it to the TxnAdopter. A full batch
//      means more are waiting: the next round comes after at most
//      kFullBatchPauseMs instead of a whole heartbeat interval.
//
// Sharing a take-over. Survivors of a crash notice it up to a heartbeat
// interval apart, and the first would otherwise adopt everything before the
// others look (a claim of 100 takes milliseconds). So when no take-over is
// in progress a round first takes a census (ClusterStore::CountOrphans):
// no orphans, no claim. Otherwise, with other live coordinators (state
// alive, heartbeat within the window), it opens a share window of
// kShareWindowHeartbeats heartbeat intervals, the time every live peer needs
// to run a round, with a share of ceil(orphans / live coordinators); within
// the window it claims no more than that share (its first batch included),
// then waits for the window's end; after the window it claims whatever is
// left (a peer that did not take its share is slow or stuck), back to back.
// A batch that is not full ends the take-over after the window. A failed
// census means no limit. Each survivor's share is of the orphans it sees
// when it looks, so one that looks after a peer took its share gets a
// smaller one; what no share covers is taken when the first window ends.
// Large take-overs are not slowed: a share is far more than one window's
// claims.
//
//   no take-over ──census: orphans, peers live──► window (share, until)
//        ▲   │ census: orphans, alone/failed        │ share taken: wait until
//        │   ▼                                      │ the window's end
//        │ open (no limit) ◄───── window ends ──────┘
//        └── batch not full, after the window; claim error; re-registration
//
//   Start ──► round ──► PostAfter(heartbeat_ms, or kFullBatchPauseMs after a
//               ▲        full batch) ──┐
//               └──────────────────────┘     Stop: no new round; waits for
//                                             the one in progress
//
// A store error in any step is logged and the loop goes on with the next
// round. Deleting finished transactions past the retention period is not its
// job: that is Retention (cluster/retention.h), on its own runner. Recovery
// after a crash of a single coordinator is this same path: its transactions
// are adopted once its lease expires (or at once if it handed them back on a
// graceful drain).
//
// Threading: `runner` must be serial (a strand or a single thread; rounds
// never overlap) and may block (every round does blocking store calls), so
// it must not be the engine strand. Join, Start and Stop are called from the
// owner's thread, never from a task of `runner`. id() is thread-safe.
// `store`, `runner` and the adopter must outlive Stop(). Not copyable.

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "cluster/repeating_task.h"
#include "common/mutex.h"
#include "common/task_runner.h"
#include "engine/txn_adopter.h"
#include "store/cluster_store.h"
#include "treaty/status.h"

namespace treaty {

struct MembershipOptions {
  std::string node_name;  // prefix of the ids; "treatyd" when empty
  std::string http_addr;
  std::string thrift_addr;
  int64_t heartbeat_ms = 1000;
  int64_t lease_ms = 5000;
  int claim_batch = 100;  // most transactions adopted per round
};

class Membership {
 public:
  // The pause before the next round after a full batch (capped by
  // heartbeat_ms). Short: peers interleave through SKIP LOCKED anyway, and a
  // claim costs about the batch it takes (LogStore::ClaimOrphans), so
  // survivors of a crash adopt back to back. At 100 ms, three survivors
  // with --claim-batch 100 could never adopt more than 3,000 a second
  // (bench/recovery.sh).
  static constexpr int64_t kFullBatchPauseMs = 10;
  // The share window of a take-over, in heartbeat intervals (see above).
  static constexpr int64_t kShareWindowHeartbeats = 2;

  Membership(ClusterStore* store, TaskRunner* runner, MembershipOptions options);
  ~Membership();  // Stop(false)
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Registers a fresh coordinator id. Blocking.
  [[nodiscard]] Status Join();
  // The current id (changes when the coordinator re-registers; empty before
  // Join and after a hand-back). Thread-safe.
  std::string id() const;
  // True while no peer can have declared coordinator `owner` dead: it is
  // this coordinator's current id, and its last successful heartbeat began
  // less than lease_ms - heartbeat_ms ago (monotonic; peers wait a whole
  // lease_ms from the heartbeat they read). An old id (declared dead,
  // re-registered since) never holds it, so work the engine still drives
  // under it cannot go ahead of its fenced writes.
  // Registering (Join) counts as the first heartbeat. After being declared
  // dead it is false until a round's heartbeat under the new id succeeds, a
  // round after the engine was told to drop the old id's work.
  // The engine sends a call ahead of its fenced log write only then
  // (EngineOptions::write_behind_ms). Thread-safe, never blocks.
  bool LeaseHeld(const std::string& owner) const;
  // Starts the rounds (the first at once), resuming work through `adopter`.
  void Start(TxnAdopter* adopter);
  // Stops the rounds: none starts after this, and a round in progress
  // finishes first (blocking). Then, if `hand_back`, releases owned
  // unfinished transactions (owner cleared, peers adopt them at once) and
  // deregisters. Idempotent; Stop(false) then Stop(true) hands back.
  Status Stop(bool hand_back);

 private:
  // Heartbeat, expire peers, claim; returns the ms until the next round.
  int64_t Round();
  // Claims and adopts one batch of orphans (within this coordinator's share
  // while a share window is open); returns the ms until the next round.
  int64_t ClaimBatch(const std::string& me);
  static std::string NewId(const std::string& node_name);

  ClusterStore* const store_;
  TaskRunner* const runner_;
  const MembershipOptions options_;
  TxnAdopter* adopter_ = nullptr;  // set by Start, before the first round

  mutable Mutex mu_;
  // Written by Join (start, re-register) and by a hand-back.
  std::string id_ TREATY_GUARDED_BY(mu_);
  // Since when (monotonic ms) heartbeats have succeeded without a break;
  // rounds only (serial). Peers are declared dead only after a whole lease.
  std::optional<int64_t> connected_since_ms_;
  // When (monotonic ms) the last successful heartbeat began; -1: none since
  // joining. Written by rounds, read by LeaseHeld from any thread.
  std::atomic<int64_t> heartbeat_ok_at_ms_{-1};
  // The take-over in progress, from its first full batch to a batch that is
  // not full; rounds only (serial).
  struct Takeover {
    int64_t share_until_ms = 0;  // monotonic; the share window ends here
    int64_t share_left = 0;      // what this coordinator may still claim in it
  };
  std::optional<Takeover> takeover_;
  RepeatingTask rounds_;  // last member: stopped before the rest goes
};

}  // namespace treaty
