// Batch writes on PostgreSQL reach their rows through keys, never by scanning
// a table: a sequential scan would make every write cost as much as the log
// is large. With a few thousand transactions (where PostgreSQL, left alone,
// prefers hash joins over whole-table scans for the batch statements, see
// PreferIndexJoins in pg_batch.h), the write kinds of a saga and a 2PC are
// applied, alone and in batches, and pg_stat_user_tables must show no new
// sequential scan of transactions, branches or events.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "store/open_log_store.h"
#include "store/store_fixture.h"

namespace treaty::testing {
namespace {

constexpr int kTransactions = 3000;

std::string Gtid(int i) { return "scan-" + std::to_string(i); }

// Sequential and index scans of the log's tables so far. A backend reports
// its counts when it exits, so the caller closes its store first; this waits
// until the index scans have moved past `after_idx` (the report arrived).
struct Scans {
  int64_t seq = 0;
  int64_t idx = 0;
};
Scans ReadScans(MiniPostgres* pg, int64_t after_idx) {
  Scans s;
  for (int i = 0; i < 100; ++i) {
    Result<std::string> r = pg->Query(
        "SELECT sum(seq_scan) || ' ' || sum(coalesce(idx_scan, 0)) FROM pg_stat_user_tables "
        "WHERE relname IN ('transactions', 'branches', 'events')",
        "scan_test");
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return s;
    const size_t space = r->find(' ');
    s.seq = std::stoll(r->substr(0, space));
    s.idx = std::stoll(r->substr(space + 1));
    if (s.idx > after_idx) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ADD_FAILURE() << "no scan counts reported";
  return s;
}

TxnWrite Progress(int i, bool retry) {
  TxnWrite w{.gtid = Gtid(i), .owner = "c1", .now_ms = 9000};
  w.branch_updates.push_back({"s1", retry ? std::nullopt : std::optional<std::string>("SUCCEEDED"),
                              1, retry ? "timeout" : "", 0});
  w.branch_updates.push_back({"s2", "RUNNING", 1, "", 0});
  EventRow e{0, Gtid(i), "s1", retry ? "retry" : "step", "x", 9000};
  e.collapse = retry;
  w.events.push_back(e);
  return w;
}

TEST(PgStoreScanTest, BatchWritesDoNotScanTheLog) {
  MiniPostgres* pg = SharedPostgres();
  ASSERT_NE(pg, nullptr);
  ASSERT_TRUE(pg->CreateDatabase("scan_test").ok());
  {
    Result<std::unique_ptr<LogStore>> store = OpenLogStore(pg->Uri("scan_test"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->Migrate().ok());
    for (int chunk = 0; chunk < kTransactions; chunk += 500) {
      std::vector<TxnWrite> creates;
      for (int i = chunk; i < chunk + 500; ++i) {
        TxnWrite c = CreateWrite(Gtid(i), "c1", 1000 + i);
        for (const char* b : {"s1", "s2", "s3"}) {
          c.new_branches.push_back({Gtid(i), b, 0, "PENDING", 0, "", 0, "{\"url\":\"x\"}", 0});
        }
        c.events.push_back({0, Gtid(i), "", "state", "RUNNING", 1000});
        creates.push_back(std::move(c));
      }
      Result<std::vector<Status>> r = (*store)->ApplyBatch(creates);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
    }
  }
  ASSERT_TRUE(pg->Query("ANALYZE", "scan_test").ok());
  const Scans before = ReadScans(pg, -1);

  {
    Result<std::unique_ptr<LogStore>> store = OpenLogStore(pg->Uri("scan_test"));
    ASSERT_TRUE(store.ok());
    LogStore& log = **store;
    // Alone (one write per batch) and in batches of 50: progress, retries
    // (collapsing events), state changes, a stranger, a missing gtid.
    ASSERT_TRUE(ApplyOne(log, Progress(1, false)).ok());
    ASSERT_TRUE(ApplyOne(log, Progress(2, true)).ok());
    ASSERT_TRUE(ApplyOne(log, Progress(2, true)).ok());
    for (int round = 0; round < 3; ++round) {
      std::vector<TxnWrite> batch;
      for (int i = 10; i < 60; ++i) {
        if (round == 2) {
          TxnWrite w{.gtid = Gtid(i), .owner = "c1", .now_ms = 9100};
          w.state = "COMMITTED";
          w.events.push_back({0, Gtid(i), "", "state", "COMMITTED", 9100});
          batch.push_back(std::move(w));
        } else {
          batch.push_back(Progress(i, round == 1));
        }
      }
      TxnWrite stranger = Progress(70, false);
      stranger.owner = "c2";
      batch.push_back(stranger);
      TxnWrite missing = Progress(kTransactions + 1, false);
      batch.push_back(missing);
      Result<std::vector<Status>> r = log.ApplyBatch(batch);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_TRUE((*r)[0].ok()) << (*r)[0].ToString();
      EXPECT_EQ((*r)[50].code(), StatusCode::kLostOwnership);
      EXPECT_EQ((*r)[51].code(), StatusCode::kNotFound);
    }
    Result<TxnDetail> d = log.GetTransaction(Gtid(10));
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->txn.state, "COMMITTED");
  }
  const Scans after = ReadScans(pg, before.idx);
  EXPECT_EQ(after.seq, before.seq)
      << "the writes scanned a table of the log " << after.seq - before.seq << " times";
}

}  // namespace
}  // namespace treaty::testing
