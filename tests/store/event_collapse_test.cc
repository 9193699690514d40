// Collapsed history events and the paused / last_error columns, on both
// engines: a run of retries of one branch is one event with a count, per
// write, per batch (set-based and write by write) and through the LogWriter;
// fencing still applies; a log at the previous schema version migrates.
#include <sqlite3.h>

#include <filesystem>
#include <future>

#include "store/event_collapse.h"
#include "store/log_writer.h"
#include "store/migrations.h"
#include "store/store_fixture.h"

namespace treaty::testing {
namespace {

constexpr const char* kOwner = "c1";

EventRow Retry(const std::string& branch, const std::string& detail, int64_t at_ms) {
  EventRow e;
  e.branch = branch;
  e.type = "retry";
  e.detail = detail;
  e.at_ms = at_ms;
  e.collapse = true;
  return e;
}

EventRow Plain(const std::string& branch, const std::string& type, int64_t at_ms) {
  EventRow e;
  e.branch = branch;
  e.type = type;
  e.detail = type + " of " + branch;
  e.at_ms = at_ms;
  return e;
}

TxnWrite Update(const std::string& gtid, std::vector<EventRow> events,
                const std::string& owner = kOwner) {
  TxnWrite w;
  w.gtid = gtid;
  w.owner = owner;
  w.now_ms = 5000;
  w.events = std::move(events);
  return w;
}

class EventCollapseTest : public StoreTest {
 protected:
  void Create(const std::string& gtid) {
    ASSERT_TRUE(ApplyOne(store(), CreateWrite(gtid, kOwner)).ok());
  }
  std::vector<EventRow> Events(const std::string& gtid) {
    Result<TxnDetail> d = store().GetTransaction(gtid);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? d->events : std::vector<EventRow>{};
  }
};

TEST_P(EventCollapseTest, ThirtyRetriesOfOneBranchAreOneEvent) {
  Create("t1");
  for (int i = 0; i < 30; ++i) {
    Status s =
        ApplyOne(store(), Update("t1", {Retry("a", "attempt " + std::to_string(i), 2000 + i)}));
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  std::vector<EventRow> events = Events("t1");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, "retry");
  EXPECT_EQ(events[0].branch, "a");
  EXPECT_EQ(events[0].count, 30);
  EXPECT_EQ(events[0].first_at_ms, 2000);
  EXPECT_EQ(events[0].at_ms, 2029);
  EXPECT_EQ(events[0].detail, "attempt 29");
}

TEST_P(EventCollapseTest, InterleavedBranchesCollapsePerBranch) {
  Create("t1");
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(
        ApplyOne(store(), Update("t1", {Retry("a", "a" + std::to_string(i), 100 + i)})).ok());
    ASSERT_TRUE(
        ApplyOne(store(), Update("t1", {Retry("b", "b" + std::to_string(i), 200 + i)})).ok());
    // A transaction-level event between does not break a branch's run.
    ASSERT_TRUE(ApplyOne(store(), Update("t1", {Plain("", "tick", 300 + i)})).ok());
  }
  std::vector<EventRow> events = Events("t1");
  ASSERT_EQ(events.size(), 12u);
  EXPECT_EQ(events[0].branch, "a");
  EXPECT_EQ(events[0].count, 10);
  EXPECT_EQ(events[0].first_at_ms, 100);
  EXPECT_EQ(events[0].at_ms, 109);
  EXPECT_EQ(events[0].detail, "a9");
  EXPECT_EQ(events[1].branch, "b");
  EXPECT_EQ(events[1].count, 10);
  EXPECT_EQ(events[1].detail, "b9");
  for (size_t i = 2; i < events.size(); ++i) {
    EXPECT_EQ(events[i].type, "tick");
    EXPECT_EQ(events[i].count, 1);
    EXPECT_EQ(events[i].first_at_ms, events[i].at_ms);
  }
}

TEST_P(EventCollapseTest, ADifferentTypeInBetweenStartsANewEvent) {
  Create("t1");
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(ApplyOne(store(), Update("t1", {Retry("a", "r", 1)})).ok());
  ASSERT_TRUE(ApplyOne(store(), Update("t1", {Plain("a", "call", 2)})).ok());
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(ApplyOne(store(), Update("t1", {Retry("a", "r", 3)})).ok());
  // Without collapse, a retry always adds a row.
  EventRow plain_retry = Retry("a", "r", 4);
  plain_retry.collapse = false;
  ASSERT_TRUE(ApplyOne(store(), Update("t1", {plain_retry})).ok());
  std::vector<EventRow> events = Events("t1");
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].count, 3);
  EXPECT_EQ(events[1].type, "call");
  EXPECT_EQ(events[2].count, 2);
  EXPECT_EQ(events[2].first_at_ms, 3);
  EXPECT_EQ(events[3].count, 1);
}

TEST_P(EventCollapseTest, CollapsesWithinOneWrite) {
  Create("t1");
  ASSERT_TRUE(ApplyOne(store(), Update("t1", {Retry("a", "old", 10)})).ok());
  // a a b a | call a | a: the first three a's join the stored one.
  ASSERT_TRUE(ApplyOne(store(), Update("t1", {Retry("a", "a1", 11), Retry("a", "a2", 12),
                                              Retry("b", "b1", 13), Retry("a", "a3", 14),
                                              Plain("a", "call", 15), Retry("a", "a4", 16)}))
                  .ok());
  std::vector<EventRow> events = Events("t1");
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].count, 4);
  EXPECT_EQ(events[0].first_at_ms, 10);
  EXPECT_EQ(events[0].at_ms, 14);
  EXPECT_EQ(events[0].detail, "a3");
  EXPECT_EQ(events[1].branch, "b");
  EXPECT_EQ(events[1].count, 1);
  EXPECT_EQ(events[2].type, "call");
  EXPECT_EQ(events[3].count, 1);
  EXPECT_EQ(events[3].detail, "a4");
}

TEST_P(EventCollapseTest, CollapsesWithinOneBatch) {
  // Distinct gtids (PostgreSQL's set-based path) ...
  std::vector<TxnWrite> batch;
  for (int i = 0; i < 8; ++i) {
    const std::string gtid = "t" + std::to_string(i);
    Create(gtid);
    ASSERT_TRUE(ApplyOne(store(), Update(gtid, {Retry("a", "first", 1)})).ok());
    batch.push_back(Update(gtid, {Retry("a", "second", 2), Retry("b", "b", 2)}));
  }
  Result<std::vector<Status>> r = store().ApplyBatch(batch);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (const Status& s : *r) EXPECT_TRUE(s.ok()) << s.ToString();
  for (int i = 0; i < 8; ++i) {
    std::vector<EventRow> events = Events("t" + std::to_string(i));
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].count, 2);
    EXPECT_EQ(events[0].detail, "second");
    EXPECT_EQ(events[1].count, 1);
  }
  // ... and several writes of one gtid (write by write).
  batch.clear();
  for (int i = 0; i < 5; ++i)
    batch.push_back(Update("t0", {Retry("a", "x" + std::to_string(i), 3)}));
  r = store().ApplyBatch(batch);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (const Status& s : *r) EXPECT_TRUE(s.ok()) << s.ToString();
  std::vector<EventRow> events = Events("t0");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].count, 7);
  EXPECT_EQ(events[0].detail, "x4");
}

TEST_P(EventCollapseTest, AWriteThatLostOwnershipCollapsesNothing) {
  Create("t1");
  ASSERT_TRUE(ApplyOne(store(), Update("t1", {Retry("a", "mine", 1)})).ok());
  EXPECT_EQ(ApplyOne(store(), Update("t1", {Retry("a", "stranger", 2)}, "c2")).code(),
            StatusCode::kLostOwnership);
  Create("t2");
  Result<std::vector<Status>> r = store().ApplyBatch(
      {Update("t1", {Retry("a", "stranger", 3)}, "c2"), Update("t2", {Retry("a", "ok", 3)})});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].code(), StatusCode::kLostOwnership);
  EXPECT_TRUE((*r)[1].ok());
  std::vector<EventRow> events = Events("t1");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].count, 1);
  EXPECT_EQ(events[0].detail, "mine");
}

TEST_P(EventCollapseTest, LogWriterBatchCollapsesAndRecognizesARetriedCreate) {
  LogWriter writer(&store(), {});
  auto submit = [&](TxnWrite w) {
    auto done = std::make_shared<std::promise<Status>>();
    std::future<Status> f = done->get_future();
    writer.Submit(std::move(w), [done](Status s) { done->set_value(std::move(s)); });
    return f;
  };
  TxnWrite create = CreateWrite("t1", kOwner);
  create.create->paused = true;
  create.create->last_error = "connection refused";
  create.events = {Plain("", "state", 1000), Retry("a", "r0", 1000)};
  ASSERT_TRUE(submit(create).get().ok());
  // Re-sent with its outcome unknown: recognized as its own, nothing added.
  create.create_outcome_unknown = true;
  Status again = submit(create).get();
  EXPECT_TRUE(again.ok()) << again.ToString();
  // Many retries submitted at once are group-committed together.
  std::vector<std::future<Status>> pending;
  for (int i = 1; i <= 40; ++i)
    pending.push_back(submit(Update("t1", {Retry("a", "r" + std::to_string(i), 1000 + i)})));
  for (auto& f : pending) EXPECT_TRUE(f.get().ok());
  writer.Stop();
  Result<TxnDetail> d = store().GetTransaction("t1");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_TRUE(d->txn.paused);
  EXPECT_EQ(d->txn.last_error, "connection refused");
  ASSERT_EQ(d->events.size(), 2u);
  EXPECT_EQ(d->events[1].count, 41);
  EXPECT_EQ(d->events[1].first_at_ms, 1000);
  EXPECT_EQ(d->events[1].at_ms, 1040);
  EXPECT_EQ(d->events[1].detail, "r40");
}

TEST_P(EventCollapseTest, PausedAndLastErrorRoundTripAndFilter) {
  Create("run");
  TxnWrite paused = CreateWrite("paused", kOwner, 2000);
  paused.create->paused = true;
  paused.create->last_error = std::string("bad \xff byte");  // free text: made valid
  ASSERT_TRUE(ApplyOne(store(), paused).ok());
  Result<TxnDetail> d = store().GetTransaction("paused");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->txn.paused);
  EXPECT_NE(d->txn.last_error.find("bad"), std::string::npos);
  EXPECT_EQ(d->txn.last_error.find('\xff'), std::string::npos);

  ListFilter only_paused;
  only_paused.paused = true;
  Result<TxnPage> page = store().ListTransactions(only_paused);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0].gtid, "paused");
  EXPECT_TRUE(page->items[0].paused);

  // Update: set on one, clear on the other, in one batch; unset = unchanged.
  TxnWrite pause = Update("run", {});
  pause.paused = true;
  pause.last_error = "HTTP 404";
  TxnWrite resume = Update("paused", {});
  resume.paused = false;
  resume.last_error = "";
  Result<std::vector<Status>> r = store().ApplyBatch({pause, resume});
  ASSERT_TRUE(r.ok());
  for (const Status& s : *r) EXPECT_TRUE(s.ok()) << s.ToString();
  TxnWrite untouched = Update("run", {});
  untouched.state = "COMPENSATING";
  ASSERT_TRUE(ApplyOne(store(), untouched).ok());
  page = store().ListTransactions(only_paused);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0].gtid, "run");
  EXPECT_EQ(page->items[0].last_error, "HTTP 404");
  ListFilter not_paused;
  not_paused.paused = false;
  page = store().ListTransactions(not_paused);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0].gtid, "paused");
  EXPECT_EQ(page->items[0].last_error, "");
  EXPECT_EQ(store().ListTransactions({})->items.size(), 2u);
  Result<std::vector<StateCount>> counts = store().CountByState();
  ASSERT_TRUE(counts.ok());
  int64_t total = 0;
  for (const StateCount& c : *counts) total += c.count;
  EXPECT_EQ(total, 2);
}

TEST_P(EventCollapseTest, PurgeRemovesCollapsedEvents) {
  Create("t1");
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(ApplyOne(store(), Update("t1", {Retry("a", "r", 1)})).ok());
  TxnWrite finish = Update("t1", {});
  finish.state = "COMMITTED";
  finish.now_ms = 1000;
  ASSERT_TRUE(ApplyOne(store(), finish).ok());
  Result<int64_t> purged = store().PurgeFinished(2000, 10);
  ASSERT_TRUE(purged.ok()) << purged.status().ToString();
  EXPECT_EQ(*purged, 1);
  EXPECT_EQ(store().GetTransaction("t1").status().code(), StatusCode::kNotFound);
  // A new transaction of the same gtid starts its history afresh.
  Create("t1");
  ASSERT_TRUE(ApplyOne(store(), Update("t1", {Retry("a", "new", 1)})).ok());
  std::vector<EventRow> events = Events("t1");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].count, 1);
}

INSTANTIATE_TEST_SUITE_P(Engines, EventCollapseTest, ::testing::Values("sqlite", "postgres"),
                         EngineName);

// A log created by the previous release (schema version 1, with a
// transaction and events) is migrated: new columns take their defaults.
class PreviousSchemaTest : public ::testing::TestWithParam<std::string> {};

constexpr const char* kV1Rows =
    "INSERT INTO transactions (gtid, kind, state, owner, created_at_ms, updated_at_ms) VALUES "
    "('old', 'saga', 'RUNNING', 'c1', 100, 100); "
    "INSERT INTO events (gtid, branch, type, detail, at_ms) VALUES ('old', 'a', 'retry', 'r1', "
    "110), ('old', 'a', 'retry', 'r2', 120);";

TEST_P(PreviousSchemaTest, MigratesToTheNewColumns) {
  const Migration v1 = EmbeddedMigrations(GetParam()).at(0);
  ASSERT_EQ(v1.version, 1);
  ASSERT_GE(LatestMigrationVersion(GetParam()), 2);
  const std::string setup = std::string(v1.sql) +
                            "\nINSERT INTO schema_migrations (version, name, applied_at) VALUES "
                            "(1, 'init', 1);\n" +
                            kV1Rows;
  std::string uri, dir;
  if (GetParam() == "sqlite") {
    dir = (std::filesystem::temp_directory_path() /
           ("treaty-previous-schema-" + std::to_string(getpid())))
              .string();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string path = dir + "/treaty.db";
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, setup.c_str(), nullptr, nullptr, &err);
    const std::string why = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << why;
    uri = "sqlite:" + path;
  } else {
    MiniPostgres* pg = SharedPostgres();
    ASSERT_NE(pg, nullptr);
    ASSERT_TRUE(pg->CreateDatabase("previous_schema").ok());
    Result<std::string> q = pg->Query(setup, "previous_schema");
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    uri = pg->Uri("previous_schema");
  }
  Result<std::unique_ptr<LogStore>> store = OpenLogStore(uri);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->CheckReady().code(), StatusCode::kUnavailable);
  Status migrated = (*store)->Migrate();
  ASSERT_TRUE(migrated.ok()) << migrated.ToString();
  EXPECT_TRUE((*store)->CheckReady().ok());

  Result<TxnDetail> d = (*store)->GetTransaction("old");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_FALSE(d->txn.paused);
  EXPECT_EQ(d->txn.last_error, "");
  ASSERT_EQ(d->events.size(), 2u);
  for (const EventRow& e : d->events) {
    EXPECT_EQ(e.count, 1);
    EXPECT_EQ(e.first_at_ms, e.at_ms);
  }
  // Old events collapse like new ones.
  TxnWrite w = Update("old", {Retry("a", "r3", 130)});
  Result<std::vector<Status>> r = (*store)->ApplyBatch({w});
  ASSERT_TRUE(r.ok() && (*r)[0].ok());
  d = (*store)->GetTransaction("old");
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->events.size(), 2u);
  EXPECT_EQ(d->events[1].count, 2);
  EXPECT_EQ(d->events[1].first_at_ms, 120);
  EXPECT_EQ(d->events[1].at_ms, 130);
  // Listing by prefix on the migrated log (a key range since 0003).
  Result<TxnPage> listed = (*store)->ListTransactions({.gtid_prefix = "ol"});
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->items.size(), 1u);
  EXPECT_EQ(listed->items[0].gtid, "old");
  if (GetParam() == "postgres") {
    Result<std::string> collations = SharedPostgres()->Query(
        "SELECT collation_name FROM information_schema.columns WHERE column_name = 'gtid' AND "
        "table_name = 'transactions'",
        "previous_schema");
    ASSERT_TRUE(collations.ok());
    EXPECT_EQ(*collations, "C");
    // A migrated log has the events index of a new one (0004): one, the key.
    Result<std::string> indexes = SharedPostgres()->Query(
        "SELECT string_agg(indexdef, '; ' ORDER BY indexname) FROM pg_indexes WHERE tablename = "
        "'events'",
        "previous_schema");
    ASSERT_TRUE(indexes.ok());
    EXPECT_EQ(*indexes,
              "CREATE UNIQUE INDEX events_pkey ON public.events USING btree (gtid, branch, id)");
  }
  store->reset();
  if (!dir.empty()) std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Engines, PreviousSchemaTest, ::testing::Values("sqlite", "postgres"),
                         EngineName);

}  // namespace
}  // namespace treaty::testing
