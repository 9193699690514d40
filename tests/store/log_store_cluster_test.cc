// LogStore cluster tests on both engines: membership, take-over, retention.
#include <algorithm>
#include <mutex>
#include <set>
#include <thread>

#include "store/store_fixture.h"

namespace treaty::testing {
namespace {

#define ASSERT_OK(expr)                                     \
  do {                                                      \
    const Status _s = (expr);                               \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)

using ClusterTest = StoreTest;

CoordinatorRow Coord(const std::string& id) {
  return {.id = id, .node_name = "node-" + id, .http_addr = "127.0.0.1:7480"};
}

// Registers `id` and lets its heartbeat age past a 100 ms lease.
void RegisterDead(LogStore& store, const std::string& id) {
  ASSERT_OK(store.RegisterCoordinator(Coord(id)));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  Result<std::vector<std::string>> marked = store.MarkExpiredCoordinators(100);
  ASSERT_TRUE(marked.ok());
  ASSERT_NE(std::find(marked->begin(), marked->end(), id), marked->end());
}

TEST_P(ClusterTest, RegisterHeartbeatExpire) {
  ASSERT_OK(store().RegisterCoordinator(Coord("a")));
  ASSERT_OK(store().RegisterCoordinator(Coord("b")));
  EXPECT_EQ(store().RegisterCoordinator(Coord("a")).code(), StatusCode::kConflict);
  ASSERT_OK(ApplyOne(store(), CreateWrite("g1", "a")));

  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  ASSERT_OK(store().Heartbeat("a"));
  Result<std::vector<std::string>> marked = store().MarkExpiredCoordinators(250);
  ASSERT_TRUE(marked.ok()) << marked.status().ToString();
  EXPECT_EQ(*marked, std::vector<std::string>{"b"});
  EXPECT_TRUE(store().MarkExpiredCoordinators(250)->empty());

  EXPECT_EQ(store().Heartbeat("b").code(), StatusCode::kLostOwnership);
  EXPECT_EQ(store().Heartbeat("never").code(), StatusCode::kLostOwnership);
  EXPECT_EQ(store().SetCoordinatorState("b", "alive").code(), StatusCode::kLostOwnership);
  EXPECT_EQ(store().SetCoordinatorState("a", "bogus").code(), StatusCode::kInvalidArgument);
  ASSERT_OK(store().SetCoordinatorState("a", "draining"));

  Result<std::vector<CoordinatorRow>> list = store().ListCoordinators();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 2u);
  for (const CoordinatorRow& c : *list) {
    EXPECT_EQ(c.node_name, "node-" + c.id);
    EXPECT_GT(c.started_at_ms, 1600000000000);  // the database clock, in ms
    if (c.id == "a") {
      EXPECT_EQ(c.state, "draining");
      EXPECT_EQ(c.owned, 1);
      EXPECT_LT(c.heartbeat_age_ms, 250);
    } else {
      EXPECT_EQ(c.state, "dead");
      EXPECT_EQ(c.owned, 0);
      EXPECT_GE(c.heartbeat_age_ms, 350);
    }
  }
  ASSERT_OK(store().DeleteCoordinator("b"));
  EXPECT_EQ(store().DeleteCoordinator("b").code(), StatusCode::kNotFound);
}

TEST_P(ClusterTest, ClaimOrphansTakesOnlyUnownedOrDeadOwned) {
  RegisterDead(store(), "dead");
  ASSERT_OK(store().RegisterCoordinator(Coord("alive")));
  TxnWrite orphan = CreateWrite("t-dead", "dead", 1000);
  orphan.new_branches.push_back({"", "s1", 0, "RUNNING", 1, "", 0, "{}", 0});
  orphan.events.push_back({0, "", "", "state", "x", 0});
  TxnWrite unowned = CreateWrite("t-unowned", "alive", 1001);
  Result<std::vector<Status>> r =
      store().ApplyBatch({CreateWrite("t-alive", "alive", 999), orphan, unowned,
                          CreateWrite("t-dead-done", "dead", 1002, "COMMITTED")});
  ASSERT_TRUE(r.ok());
  TxnWrite release{.gtid = "t-unowned", .owner = "alive"};
  release.release_owner = true;
  ASSERT_OK(ApplyOne(store(), release));

  // The census counts what a claim would take (unowned, dead-owned, not
  // finished) and the coordinators alive.
  Result<OrphanCensus> census = store().CountOrphans(60000);
  ASSERT_TRUE(census.ok()) << census.status().ToString();
  EXPECT_EQ(census->orphans, 2);
  EXPECT_EQ(census->live_coordinators, 1);

  Result<std::vector<TxnDetail>> one = store().ClaimOrphans("alive", 1);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(store().CountOrphans(60000)->orphans, 1);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].txn.gtid, "t-dead");  // oldest first
  EXPECT_EQ((*one)[0].txn.owner, "alive");
  ASSERT_EQ((*one)[0].branches.size(), 1u);
  EXPECT_EQ((*one)[0].branches[0].name, "s1");
  EXPECT_TRUE((*one)[0].events.empty());

  Result<std::vector<TxnDetail>> rest = store().ClaimOrphans("alive", 10);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].txn.gtid, "t-unowned");
  EXPECT_TRUE(store().ClaimOrphans("alive", 10)->empty());
  EXPECT_EQ(store().CountOrphans(60000)->orphans, 0);
  EXPECT_EQ(store().GetTransaction("t-dead-done")->txn.owner, "dead");

  // The dead coordinator is fenced out of what was taken over.
  TxnWrite stale{.gtid = "t-dead", .owner = "dead"};
  stale.state = "COMMITTED";
  EXPECT_EQ(ApplyOne(store(), stale).code(), StatusCode::kLostOwnership);
}

// The census counts exactly what claims take (every dead owner, an owner
// whose row is gone, no owner; not a draining coordinator's work, nothing
// finished), and as live only 'alive' coordinators with a recent heartbeat.
TEST_P(ClusterTest, CensusCountsWhatClaimsTakeAndTheLiveCoordinators) {
  RegisterDead(store(), "dead1");
  RegisterDead(store(), "dead2");
  ASSERT_OK(store().RegisterCoordinator(Coord("alive")));
  ASSERT_OK(store().RegisterCoordinator(Coord("drainer")));
  ASSERT_OK(store().SetCoordinatorState("drainer", "draining"));
  TxnWrite unowned = CreateWrite("u1", "alive", 4);
  Result<std::vector<Status>> r = store().ApplyBatch(
      {CreateWrite("a1", "dead1", 1), CreateWrite("a2", "dead1", 2), CreateWrite("b1", "dead2", 3),
       unowned, CreateWrite("g1", "gone", 5), CreateWrite("d1", "drainer", 6),
       CreateWrite("l1", "alive", 7), CreateWrite("f1", "dead1", 8, "COMMITTED")});
  ASSERT_TRUE(r.ok());
  for (const Status& s : *r) ASSERT_OK(s);
  TxnWrite release{.gtid = "u1", .owner = "alive"};
  release.release_owner = true;
  ASSERT_OK(ApplyOne(store(), release));

  Result<OrphanCensus> census = store().CountOrphans(60000);
  ASSERT_TRUE(census.ok()) << census.status().ToString();
  EXPECT_EQ(census->orphans, 5);  // a1, a2, b1, u1, g1
  EXPECT_EQ(census->live_coordinators, 1);
  Result<std::vector<TxnDetail>> claimed = store().ClaimOrphans("alive", 100);
  ASSERT_TRUE(claimed.ok());
  EXPECT_EQ(static_cast<int64_t>(claimed->size()), census->orphans);
  EXPECT_EQ(store().CountOrphans(60000)->orphans, 0);

  // A coordinator whose heartbeat is older than the window is not live.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_OK(store().RegisterCoordinator(Coord("fresh")));
  EXPECT_EQ(store().CountOrphans(200)->live_coordinators, 1);
  EXPECT_EQ(store().CountOrphans(60000)->live_coordinators, 2);
}

TEST_P(ClusterTest, ConcurrentClaimersGetDisjointSets) {
  RegisterDead(store(), "dead");
  std::vector<TxnWrite> writes;
  for (int i = 0; i < 200; ++i) writes.push_back(CreateWrite("o" + std::to_string(i), "dead", i));
  ASSERT_TRUE(store().ApplyBatch(writes).ok());
  std::vector<std::string> ids = {"c0", "c1", "c2", "c3"};
  for (const auto& id : ids) ASSERT_OK(store().RegisterCoordinator(Coord(id)));

  std::mutex mu;
  std::multiset<std::string> claimed;
  std::vector<std::thread> threads;
  for (const auto& id : ids) {
    threads.emplace_back([&, id] {
      while (true) {
        Result<std::vector<TxnDetail>> batch = store().ClaimOrphans(id, 7);
        ASSERT_TRUE(batch.ok()) << batch.status().ToString();
        if (batch->empty()) return;
        std::lock_guard lock(mu);
        for (const TxnDetail& d : *batch) {
          EXPECT_EQ(d.txn.owner, id);
          claimed.insert(d.txn.gtid);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(claimed.size(), 200u);
  EXPECT_EQ(std::set<std::string>(claimed.begin(), claimed.end()).size(), 200u);
}

TEST_P(ClusterTest, ReleaseOwnedHandsBackUnfinished) {
  Result<std::vector<Status>> r =
      store().ApplyBatch({CreateWrite("a1", "a"), CreateWrite("a2", "a", 1000, "COMPENSATING"),
                          CreateWrite("a3", "a", 1000, "ABORTED"), CreateWrite("b1", "b")});
  ASSERT_TRUE(r.ok());
  Result<int64_t> n = store().ReleaseOwned("a");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(store().GetTransaction("a1")->txn.owner, "");
  EXPECT_EQ(store().GetTransaction("a2")->txn.owner, "");
  EXPECT_EQ(store().GetTransaction("a3")->txn.owner, "a");
  EXPECT_EQ(store().GetTransaction("b1")->txn.owner, "b");
  EXPECT_EQ(*store().ReleaseOwned("a"), 0);
}

TEST_P(ClusterTest, PurgeFinishedDeletesOldFinishedOnly) {
  std::vector<TxnWrite> writes;
  for (int i = 0; i < 5; ++i) {
    TxnWrite w = CreateWrite("old" + std::to_string(i), "a", 1000, i % 2 ? "ABORTED" : "COMMITTED");
    w.new_branches.push_back({"", "s", 0, "SUCCEEDED", 0, "", 0, "{}", 0});
    w.events.push_back({0, "", "", "state", "done", 0});
    writes.push_back(w);
  }
  writes.push_back(CreateWrite("old-running", "a", 1000));
  writes.push_back(CreateWrite("new-done", "a", 9000, "COMMITTED"));
  ASSERT_TRUE(store().ApplyBatch(writes).ok());

  Result<int64_t> n = store().PurgeFinished(5000, 3);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 3);
  EXPECT_EQ(*store().PurgeFinished(5000, 100), 2);
  EXPECT_EQ(*store().PurgeFinished(5000, 100), 0);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(store().GetTransaction("old" + std::to_string(i)).status().code(),
              StatusCode::kNotFound);
  }
  EXPECT_TRUE(store().GetTransaction("old-running").ok());
  EXPECT_TRUE(store().GetTransaction("new-done").ok());
  // A purged gtid can be used again, with no leftover branches or events.
  ASSERT_OK(ApplyOne(store(), CreateWrite("old0", "a")));
  Result<TxnDetail> d = store().GetTransaction("old0");
  EXPECT_TRUE(d->branches.empty());
  EXPECT_TRUE(d->events.empty());
}

INSTANTIATE_TEST_SUITE_P(Engines, ClusterTest, ::testing::Values("sqlite", "postgres"), EngineName);

}  // namespace
}  // namespace treaty::testing
