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
  // Registering is a heartbeat. Not after being declared dead, though: the
  // engine may still drive the old id's work until it is told to drop it.
  const bool first = id().empty();
  const int64_t began_ms = runner_->MonotonicMs();
  if (auto s = store_->RegisterCoordinator(row); !s.ok()) return s;
  if (first) heartbeat_ok_at_ms_.store(began_ms);
  {
    MutexLock lock(&mu_);
    id_ = row.id;
  }
  spdlog::info("joined the cluster as coordinator {}", row.id);
  return Status::Ok();
}

bool Membership::LeaseHeld(const std::string& owner) const {
  if (owner.empty() || owner != id()) return false;
  const int64_t ok_at = heartbeat_ok_at_ms_.load();
  return ok_at >= 0 && runner_->MonotonicMs() - ok_at < options_.lease_ms - options_.heartbeat_ms;
}

void Membership::Start(TxnAdopter* adopter) {
  if (rounds_.started()) return;
  adopter_ = adopter;
  rounds_.Start([this] { return Round(); });
}

int64_t Membership::Round() {
  const std::string me = id();
  const int64_t began_ms = runner_->MonotonicMs();
  Status hb = store_->Heartbeat(me);
  if (hb.ok()) heartbeat_ok_at_ms_.store(began_ms);
  if (hb.code() == StatusCode::kLostOwnership) {
    heartbeat_ok_at_ms_.store(-1);
    spdlog::warn("coordinator {} was declared dead by a peer; dropping in-memory work", me);
    takeover_.reset();  // the new id starts afresh
    if (Join().ok()) {
      if (adopter_) adopter_->DropAllAndReown(id());
      spdlog::warn("re-registered: {} -> {}", me, id());
    }
    return options_.heartbeat_ms;
  }
  if (!hb.ok()) {
    spdlog::warn("heartbeat failed: {}", hb.ToString());
    connected_since_ms_ = std::nullopt;
    takeover_.reset();
    return options_.heartbeat_ms;
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

int64_t Membership::ClaimBatch(const std::string& me) {
  if (!adopter_) return options_.heartbeat_ms;
  const int64_t now_ms = runner_->MonotonicMs();
  const int64_t window_ms = kShareWindowHeartbeats * options_.heartbeat_ms;
  if (!takeover_) {
    // Look before claiming, so that even the first batch of a take-over
    // keeps to this coordinator's share.
    auto census = store_->CountOrphans(window_ms);
    if (census.ok() && census->orphans == 0) return options_.heartbeat_ms;
    takeover_ = Takeover{};  // no share window unless the census gives one
    if (!census.ok()) {
      spdlog::warn("counting orphaned transactions failed (claiming without a share): {}",
                   census.status().ToString());
    } else if (census->live_coordinators > 1) {
      const int64_t live = census->live_coordinators;
      takeover_->share_until_ms = now_ms + window_ms;
      takeover_->share_left = (census->orphans + live - 1) / live;
      spdlog::info(
          "{} orphaned transactions, {} live coordinators: claiming {} here within {} ms, "
          "then whatever is left",
          census->orphans, live, takeover_->share_left, window_ms);
    }
  }
  const bool sharing = now_ms < takeover_->share_until_ms;
  // Until the window ends: the peers take their shares (heartbeats go on).
  const auto wait_for_window = [&] {
    return std::min(takeover_->share_until_ms - now_ms, options_.heartbeat_ms);
  };
  int limit = std::max(options_.claim_batch, 1);
  if (sharing) {
    if (takeover_->share_left <= 0) return wait_for_window();
    limit = static_cast<int>(std::min<int64_t>(limit, takeover_->share_left));
  }
  auto claimed = store_->ClaimOrphans(me, limit);
  if (!claimed.ok()) {
    spdlog::warn("claiming orphaned transactions failed: {}", claimed.status().ToString());
    takeover_.reset();
    return options_.heartbeat_ms;
  }
  const auto n = static_cast<int64_t>(claimed->size());
  if (n > 0) {
    spdlog::info("adopting {} unfinished transactions", n);
    adopter_->Adopt(std::move(*claimed));
  }
  if (sharing) takeover_->share_left -= n;
  if (n < limit) {
    // None left to take now (or the rest locked by peers claiming): within
    // the window, look again when it ends; after it, the take-over is over.
    if (sharing) return wait_for_window();
    takeover_.reset();
    return options_.heartbeat_ms;
  }
  // More orphans wait: come back soon (peers interleave through SKIP LOCKED).
  return std::min(kFullBatchPauseMs, options_.heartbeat_ms);
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
