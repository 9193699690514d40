#include "cluster/membership.h"

#include <algorithm>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/ids.h"

namespace treaty {

Membership::Membership(ClusterStore* store, TaskRunner* runner, MembershipOptions options)
    : store_(store), runner_(runner), options_(std::move(options)), rounds_(runner) {}

Membership::~Membership() { (void)Stop(false); }

std::string Membership::NewId(const std::string& node_name) {
  return (node_name.empty() ? "treatyd" : node_name) + "-" + NewUuid().substr(0, 8);
}

std::string Membership::id() const {
  MutexLock lock(&mu_);
  return id_;
}

Status Membership::Join() {
  CoordinatorRow row;
  row.id = NewId(options_.node_name);
  row.node_name = options_.node_name;
  row.http_addr = options_.http_addr;
  row.thrift_addr = options_.thrift_addr;
  row.state = "alive";
  if (auto s = store_->RegisterCoordinator(row); !s.ok()) return s;
  {
    MutexLock lock(&mu_);
    id_ = row.id;
  }
  spdlog::info("joined the cluster as coordinator {}", row.id);
  return Status::Ok();
}

void Membership::Start(TxnAdopter* adopter) {
  if (rounds_.started()) return;
  adopter_ = adopter;
  rounds_.Start([this] {
    // A full batch means more orphans wait: come back soon (peers interleave).
    return Round() ? std::min(kFullBatchPauseMs, options_.heartbeat_ms) : options_.heartbeat_ms;
  });
}

bool Membership::Round() {
  const std::string me = id();
  Status hb = store_->Heartbeat(me);
  if (hb.code() == StatusCode::kLostOwnership) {
    spdlog::warn("coordinator {} was declared dead by a peer; dropping in-memory work", me);
    if (Join().ok()) {
      if (adopter_) adopter_->DropAllAndReown(id());
      spdlog::warn("re-registered: {} -> {}", me, id());
    }
    return false;
  }
  if (!hb.ok()) {
    spdlog::warn("heartbeat failed: {}", hb.ToString());
    connected_since_ms_ = std::nullopt;
    return false;
  }
  // Judge peers only after heartbeating without a break for a whole lease:
  // after an outage of the database (restart, fail-over) every peer's last
  // heartbeat is old too, and the first coordinator back would otherwise
  // declare all the others dead and make them drop and re-adopt their work.
  const int64_t now_ms = runner_->MonotonicMs();
  if (!connected_since_ms_) connected_since_ms_ = now_ms;
  if (now_ms - *connected_since_ms_ < options_.lease_ms) return ClaimBatch(me);
  auto expired = store_->MarkExpiredCoordinators(options_.lease_ms);
  if (expired.ok()) {
    for (const auto& dead : *expired) spdlog::warn("coordinator {} missed its lease: dead", dead);
  } else {
    spdlog::warn("marking expired coordinators failed: {}", expired.status().ToString());
  }
  return ClaimBatch(me);
}

bool Membership::ClaimBatch(const std::string& me) {
  if (!adopter_) return false;
  // One bounded batch per round, so that when a peer dies every survivor
  // takes a share of its work instead of the fastest one taking all of it.
  auto claimed = store_->ClaimOrphans(me, options_.claim_batch);
  if (!claimed.ok()) {
    spdlog::warn("claiming orphaned transactions failed: {}", claimed.status().ToString());
    return false;
  }
  if (claimed->empty()) return false;
  const bool full = claimed->size() >= static_cast<size_t>(options_.claim_batch);
  spdlog::info("adopting {} unfinished transactions", claimed->size());
  adopter_->Adopt(std::move(*claimed));
  return full;
}

Status Membership::Stop(bool hand_back) {
  rounds_.Stop();
  const std::string me = id();
  if (!hand_back || me.empty()) return Status::Ok();
  auto released = store_->ReleaseOwned(me);
  if (!released.ok()) return released.status();
  spdlog::info("handed back {} unfinished transactions", *released);
  Status s = store_->DeleteCoordinator(me);
  MutexLock lock(&mu_);
  id_.clear();
  return s;
}

}  // namespace treaty
