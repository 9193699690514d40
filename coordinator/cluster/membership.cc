#include "cluster/membership.h"

#include <unistd.h>

#include <chrono>

#include <spdlog/spdlog.h>

namespace treaty {

Membership::Membership(LogStore* store, MembershipOptions options)
    : store_(store), options_(std::move(options)) {}

Membership::~Membership() { (void)Stop(false); }

std::string Membership::NewId(const std::string& node_name) {
  std::string gtid = NewGtid();
  return (node_name.empty() ? "treatyd" : node_name) + "-" + gtid.substr(0, 8);
}

std::string Membership::id() const {
  std::lock_guard<std::mutex> l(id_mu_);
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
    std::lock_guard<std::mutex> l(id_mu_);
    id_ = row.id;
  }
  spdlog::info("joined the cluster as coordinator {}", row.id);
  return Status::Ok();
}

void Membership::Start(TxnService* service) {
  service_ = service;
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = false;
  }
  thread_ = std::thread([this] { Loop(); });
}

void Membership::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    l.unlock();
    const bool more = Tick();
    l.lock();
    // A full batch means more orphans wait: come back soon (peers interleave).
    const int64_t wait_ms =
        more ? std::min<int64_t>(100, options_.heartbeat_ms) : options_.heartbeat_ms;
    cv_.wait_for(l, std::chrono::milliseconds(wait_ms), [this] { return stop_; });
  }
}

bool Membership::Tick() {
  const std::string me = id();
  Status hb = store_->Heartbeat(me);
  if (hb.code() == StatusCode::kLostOwnership) {
    spdlog::warn("coordinator {} was declared dead by a peer; dropping in-memory work", me);
    if (Join().ok()) {
      if (service_) service_->DropAllAndReown(id());
      spdlog::warn("re-registered: {} -> {}", me, id());
    }
    return false;
  }
  if (!hb.ok()) {
    spdlog::warn("heartbeat failed: {}", hb.ToString());
    connected_since_ = std::nullopt;
    return false;
  }
  // Judge peers only after heartbeating without a break for a whole lease:
  // after an outage of the database (restart, fail-over) every peer's last
  // heartbeat is old too, and the first coordinator back would otherwise
  // declare all the others dead and make them drop and re-adopt their work.
  const auto now = std::chrono::steady_clock::now();
  if (!connected_since_) connected_since_ = now;
  if (now - *connected_since_ < std::chrono::milliseconds(options_.lease_ms)) {
    return ClaimBatch(me);
  }
  auto expired = store_->MarkExpiredCoordinators(options_.lease_ms);
  if (expired.ok()) {
    for (const auto& dead : *expired) spdlog::warn("coordinator {} missed its lease: dead", dead);
  }
  return ClaimBatch(me);
}

bool Membership::ClaimBatch(const std::string& me) {
  if (!service_) return false;
  // One bounded batch per tick, so that when a peer dies every survivor
  // takes a share of its work instead of the fastest one taking all of it.
  auto claimed = store_->ClaimOrphans(me, options_.claim_batch);
  if (!claimed.ok()) {
    spdlog::warn("claiming orphaned transactions failed: {}", claimed.status().ToString());
    return false;
  }
  if (claimed->empty()) return false;
  const bool full = claimed->size() >= static_cast<size_t>(options_.claim_batch);
  spdlog::info("adopting {} unfinished transactions", claimed->size());
  service_->Adopt(std::move(*claimed));
  return full;
}

Status Membership::Stop(bool hand_back) {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  const std::string me = id();
  if (!hand_back || me.empty()) return Status::Ok();
  auto released = store_->ReleaseOwned(me);
  if (!released.ok()) return released.status();
  spdlog::info("handed back {} unfinished transactions", *released);
  Status s = store_->DeleteCoordinator(me);
  std::lock_guard<std::mutex> l(id_mu_);
  id_.clear();
  return s;
}

}  // namespace treaty
