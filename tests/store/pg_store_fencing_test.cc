// Fencing of progress writes on PostgreSQL, against a real server: a write
// that changes no field of its transaction (a step's progress) does not
// rewrite the row but takes a share lock on it (records.h, TxnWrite). A
// take-over whose UPDATE of the owner is in flight therefore holds it back,
// and when the take-over commits, the write sees the new owner and applies
// nothing, alone and in a batch (the set-based path). With a plain read
// instead of the lock, the stale owner's progress would land after the
// take-over.

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <pqxx/pqxx>

#include "store/open_log_store.h"
#include "store/store_fixture.h"

namespace treaty::testing {
namespace {

using namespace std::chrono_literals;

TxnWrite Progress(const std::string& gtid, const std::string& owner) {
  TxnWrite w{.gtid = gtid, .owner = owner, .now_ms = 9000};
  w.branch_updates.push_back({"s1", "SUCCEEDED", 1, "", 0});
  w.events.push_back({0, gtid, "s1", "step", "SUCCEEDED", 9000});
  return w;
}

TEST(PgFencingTest, ProgressWaitsForATakeOverInFlightAndIsThenFencedOut) {
  MiniPostgres* pg = SharedPostgres();
  ASSERT_NE(pg, nullptr);
  Result<std::unique_ptr<LogStore>> opened = OpenNewPgStore("fencing_test");
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  LogStore& store = **opened;
  for (const char* gtid : {"g1", "g2", "g3"}) {
    TxnWrite c = CreateWrite(gtid, "c1");
    c.new_branches.push_back({gtid, "s1", 0, "PENDING", 0, "", 0, "", 0});
    ASSERT_TRUE(ApplyOne(store, c).ok());
  }

  // The take-over, by hand: its UPDATE is done but not committed.
  pqxx::connection takeover(pg->Uri("fencing_test"));
  pqxx::work tx(takeover);
  tx.exec("UPDATE transactions SET owner = 'c2' WHERE gtid IN ('g1', 'g2', 'g3')");

  auto alone =
      std::async(std::launch::async, [&] { return ApplyOne(store, Progress("g1", "c1")); });
  auto batch = std::async(std::launch::async, [&] {
    return store.ApplyBatch({Progress("g2", "c1"), Progress("g3", "c1")});
  });
  EXPECT_EQ(alone.wait_for(1500ms), std::future_status::timeout)
      << "a progress write went past a take-over in flight";
  EXPECT_EQ(batch.wait_for(10ms), std::future_status::timeout);
  tx.commit();

  EXPECT_EQ(alone.get().code(), StatusCode::kLostOwnership);
  Result<std::vector<Status>> r = batch.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  for (const Status& s : *r) EXPECT_EQ(s.code(), StatusCode::kLostOwnership) << s.ToString();
  for (const char* gtid : {"g1", "g2", "g3"}) {
    Result<TxnDetail> d = store.GetTransaction(gtid);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->txn.owner, "c2");
    EXPECT_EQ(d->branches.at(0).state, "PENDING") << gtid;
    EXPECT_TRUE(d->events.empty()) << gtid;
  }
}

}  // namespace
}  // namespace treaty::testing
