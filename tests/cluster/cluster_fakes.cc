#include "cluster/cluster_fakes.h"

#include <algorithm>
#include <iterator>

namespace treaty::testing {

std::vector<int64_t> FakeClusterStore::HeartbeatTimes(int64_t origin) const {
  std::vector<int64_t> out;
  for (const auto& h : heartbeats) out.push_back(h.at - origin);
  return out;
}

Status FakeClusterStore::RegisterCoordinator(const CoordinatorRow& row) {
  if (fail_register) return Status::Unavailable("register: store down");
  if (rows.count(row.id)) return Status::Conflict("coordinator " + row.id + " exists");
  rows[row.id] = row.state;
  registered.push_back(row.id);
  return Status::Ok();
}

Status FakeClusterStore::Heartbeat(const std::string& id) {
  heartbeats.push_back({id, runner_->NowMs()});
  if (fail_heartbeats) return Status::Unavailable("heartbeat: store down");
  auto it = rows.find(id);
  if (it == rows.end() || it->second == "dead") {
    return Status::LostOwnership("coordinator " + id + " is dead");
  }
  return Status::Ok();
}

Result<std::vector<std::string>> FakeClusterStore::MarkExpiredCoordinators(int64_t) {
  mark_expired_at.push_back(runner_->NowMs());
  if (fail_mark_expired) return Status::Unavailable("mark expired: store down");
  std::vector<std::string> out;
  out.swap(expired_ids);
  for (const auto& id : out) rows[id] = "dead";
  return out;
}

Status FakeClusterStore::DeleteCoordinator(const std::string& id) {
  deleted.push_back(id);
  rows.erase(id);
  return Status::Ok();
}

Result<std::vector<TxnDetail>> FakeClusterStore::ClaimOrphans(const std::string& new_owner,
                                                              int limit) {
  claims.push_back({new_owner, limit, runner_->NowMs()});
  if (fail_claims) return Status::Unavailable("claim: store down");
  const auto n = std::min<size_t>(orphans.size(), static_cast<size_t>(std::max(0, limit)));
  std::vector<TxnDetail> out(std::make_move_iterator(orphans.begin()),
                             std::make_move_iterator(orphans.begin() + n));
  orphans.erase(orphans.begin(), orphans.begin() + n);
  for (auto& d : out) d.txn.owner = new_owner;
  return out;
}

Result<OrphanCensus> FakeClusterStore::CountOrphans(int64_t) {
  censuses.push_back(runner_->NowMs());
  if (fail_census) return Status::Unavailable("census: store down");
  return OrphanCensus{static_cast<int64_t>(orphans.size()), live};
}

Result<int64_t> FakeClusterStore::ReleaseOwned(const std::string& owner) {
  if (fail_release) return Status::Unavailable("release: store down");
  released.push_back(owner);
  return owned;
}

Result<int64_t> FakeClusterStore::PurgeFinished(int64_t before_ms, int limit) {
  purges.push_back({before_ms, limit, runner_->NowMs()});
  if (fail_purges > 0) {
    --fail_purges;
    return Status::Unavailable("purge: store down");
  }
  const int64_t n = std::min<int64_t>(purgeable, limit);
  purgeable -= n;
  return n;
}

std::vector<TxnDetail> Orphans(const std::string& prefix, int n) {
  std::vector<TxnDetail> out(n);
  for (int i = 0; i < n; ++i) {
    out[i].txn.gtid = prefix + "-" + std::to_string(i);
    out[i].txn.state = "PREPARING";
  }
  return out;
}

}  // namespace treaty::testing
