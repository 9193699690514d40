// Batch writes on PostgreSQL reach their rows through keys, never by scanning
// a table: a sequential scan would make every write cost as much as the log
// is large. With a few thousand transactions (where PostgreSQL, left alone,
// prefers hash joins over whole-table scans for the batch statements, see
// PreferIndexJoins in pg_batch.h), the write kinds of a saga and a 2PC are
// applied, alone and in batches, and pg_stat_user_tables must show no new
// sequential scan of transactions, branches or events.

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/migrations.h"
#include "store/open_log_store.h"
#include "store/store_fixture.h"

namespace treaty::testing {
namespace {

constexpr int kTransactions = 3000;

std::string Gtid(int i) { return "scan-" + std::to_string(i); }

// Sequential scans of the log's tables so far. A server process reports its
// counts when it exits, so the caller closes its store first; this waits
// until no session of the database is left and the count has stayed the
// same for a second (psql's own session reads only the catalog).
int64_t SeqScans(MiniPostgres* pg) {
  int64_t last = -1;
  int same = 0;
  for (int i = 0; i < 100 && same < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    Result<std::string> r = pg->Query(
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = 'scan_test' AND pid <> "
        "pg_backend_pid()) || ' ' || (SELECT sum(seq_scan) FROM pg_stat_user_tables WHERE "
        "relname IN ('transactions', 'branches', 'events'))",
        "scan_test");
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return -1;
    const size_t space = r->find(' ');
    const int64_t sessions = std::stoll(r->substr(0, space));
    const int64_t seq = std::stoll(r->substr(space + 1));
    same = (sessions == 0 && seq == last) ? same + 1 : 0;
    last = seq;
  }
  EXPECT_GE(same, 4) << "the scan counts did not settle";
  return last;
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

TEST(PgStoreStatementsTest, BatchWritesDoNotScanTheLog) {
  MiniPostgres* pg = SharedPostgres();
  ASSERT_NE(pg, nullptr);
  {
    Result<std::unique_ptr<LogStore>> store = OpenNewPgStore("scan_test");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
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
  const int64_t before = SeqScans(pg);

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
  const int64_t after = SeqScans(pg);
  EXPECT_EQ(after, before) << "the writes scanned a table of the log " << after - before
                           << " times";
}

// A change of a table under the prepared statements (here the collation of
// transactions.gtid, as a migration might make while this coordinator runs)
// makes PostgreSQL refuse them for the rest of the session ("cached plan
// must not change result type", 0A000). The write that meets it fails; the
// session is dropped, so the next one works.
TEST(PgStoreStatementsTest, PreparedStatementsSurviveATableChangedUnderThem) {
  MiniPostgres* pg = SharedPostgres();
  ASSERT_NE(pg, nullptr);
  Result<std::unique_ptr<LogStore>> store = OpenNewPgStore("stale_statements");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  LogStore& log = **store;
  for (int i = 0; i < 4; ++i) {
    TxnWrite c = CreateWrite(Gtid(i), "c1");
    c.new_branches.push_back({Gtid(i), "s1", 0, "PENDING", 0, "", 0, "", 0});
    c.new_branches.push_back({Gtid(i), "s2", 1, "PENDING", 0, "", 0, "", 0});
    ASSERT_TRUE(ApplyOne(log, c).ok());
  }
  ASSERT_TRUE(ApplyOne(log, Progress(0, false)).ok());  // prepares the progress statements
  ASSERT_TRUE(pg->Query("ALTER TABLE transactions ALTER COLUMN gtid TYPE TEXT COLLATE \"POSIX\"",
                        "stale_statements")
                  .ok());
  // The pool holds a few sessions that may each have prepared them; every
  // failure drops one, so the writes succeed again within that many tries.
  int failures = 0;
  while (failures < 16 && !ApplyOne(log, Progress(1, false)).ok()) ++failures;
  EXPECT_LT(failures, 16) << "writes kept failing on stale prepared statements";
  for (int i = 2; i < 4; ++i) EXPECT_TRUE(ApplyOne(log, Progress(i, false)).ok()) << i;
  Result<TxnDetail> d = log.GetTransaction(Gtid(3));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->branches.at(0).state, "SUCCEEDED");
}

// A log at schema version 2 whose migration has to wait 4.5 s for a lock
// (as it would for index builds on a large log) is still migrated.
TEST(PgStoreStatementsTest, MigrationOutlastsTheCallDeadline) {
  MiniPostgres* pg = SharedPostgres();
  ASSERT_NE(pg, nullptr);
  ASSERT_TRUE(pg->CreateDatabase("slow_migration").ok());
  std::string v2;  // 0001 creates schema_migrations
  for (const Migration& m : EmbeddedMigrations("postgres")) {
    if (m.version > 2) continue;
    v2 += std::string(m.sql) + ";\nINSERT INTO schema_migrations VALUES (" +
          std::to_string(m.version) + ", '" + m.name + "', 1);\n";
  }
  Result<std::string> created = pg->Query(v2, "slow_migration");
  ASSERT_TRUE(created.ok()) << created.status().ToString();

  Result<std::unique_ptr<LogStore>> store = OpenLogStore(pg->Uri("slow_migration"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_EQ((*store)->CheckReady().code(), StatusCode::kUnavailable);
  std::thread holder([&] {
    EXPECT_TRUE(pg->Query("BEGIN; LOCK TABLE transactions IN ACCESS SHARE MODE; SELECT "
                          "pg_sleep(4.5); COMMIT;",
                          "slow_migration")
                    .ok());
  });
  // The lock is taken before the migration asks for it.
  for (int i = 0; i < 100; ++i) {
    Result<std::string> held = pg->Query(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE "
        "c.relname = 'transactions' AND l.mode = 'AccessShareLock' AND l.granted",
        "slow_migration");
    if (held.ok() && *held != "0") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const auto start = std::chrono::steady_clock::now();
  Status migrated = (*store)->Migrate();
  const auto took = std::chrono::steady_clock::now() - start;
  holder.join();
  EXPECT_TRUE(migrated.ok()) << migrated.ToString();
  EXPECT_GE(took, std::chrono::seconds(3)) << "the migration did not wait for the lock";
  EXPECT_TRUE((*store)->CheckReady().ok());
  // And serves writes after it.
  TxnWrite c = CreateWrite("after-migration", "c1");
  EXPECT_TRUE(ApplyOne(**store, c).ok());
}

// An event costs one index entry: the primary key (gtid, branch, id) serves
// the history by gtid and the newest event of a branch (collapsing), so the
// migrated schema has no other index on events (0004_events_primary_key).
TEST(PgStoreStatementsTest, EventsHaveOneIndexTheirPrimaryKey) {
  MiniPostgres* pg = SharedPostgres();
  ASSERT_NE(pg, nullptr);
  Result<std::unique_ptr<LogStore>> store = OpenNewPgStore("events_index");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Result<std::string> indexes = pg->Query(
      "SELECT string_agg(indexdef, '; ' ORDER BY indexname) FROM pg_indexes WHERE tablename = "
      "'events'",
      "events_index");
  ASSERT_TRUE(indexes.ok()) << indexes.status().ToString();
  EXPECT_EQ(*indexes,
            "CREATE UNIQUE INDEX events_pkey ON public.events USING btree (gtid, "
            "branch, id)");
}

// On a database whose default collation is language-aware (ICU en-US,
// where punctuation and case weigh less than letters), listing by gtid
// prefix is still exact: the gtid column compares bytes (0003).
TEST(PgStoreStatementsTest, PrefixListingIsExactUnderALanguageCollation) {
  MiniPostgres* pg = SharedPostgres();
  ASSERT_NE(pg, nullptr);
  Result<std::string> created = pg->Query(
      "CREATE DATABASE icu_log TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
      "LOCALE 'C.UTF-8'");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Result<std::unique_ptr<LogStore>> store = OpenLogStore(pg->Uri("icu_log"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->Migrate().ok());
  const std::vector<std::string> gtids = {"a",   "a-",  "a-1", "a-Z", "a-z", "a-~", "a.",
                                          "a,1", "a_1", "A-1", "a1",  "A-",  "b-1"};
  for (const std::string& gtid : gtids)
    ASSERT_TRUE(ApplyOne(**store, CreateWrite(gtid, "c1")).ok());
  const auto listed = [&](const std::string& prefix) {
    std::set<std::string> out;
    Result<TxnPage> page = (*store)->ListTransactions({.gtid_prefix = prefix, .limit = 100});
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    if (page.ok()) {
      for (const TxnRow& row : page->items) out.insert(row.gtid);
    }
    return out;
  };
  EXPECT_EQ(listed("a-"), (std::set<std::string>{"a-", "a-1", "a-Z", "a-z", "a-~"}));
  EXPECT_EQ(listed("A-"), (std::set<std::string>{"A-", "A-1"}));
  EXPECT_EQ(listed("a"), (std::set<std::string>{"a", "a-", "a-1", "a-Z", "a-z", "a-~", "a.", "a,1",
                                                "a_1", "a1"}));
}

}  // namespace
}  // namespace treaty::testing
