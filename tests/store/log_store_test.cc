// LogStore contract tests on both engines: writes, fencing, reads, listing.
#include <filesystem>
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

TEST_P(StoreTest, MigrateIsIdempotentAndReady) {
  ASSERT_OK(store().Migrate());
  ASSERT_OK(store().Migrate());
  ASSERT_OK(store().CheckReady());
}

TEST_P(StoreTest, ConcurrentMigrationsOnAFreshDatabaseAllSucceed) {
  std::string dir;
  Result<std::unique_ptr<LogStore>> fresh = OpenFreshStore(GetParam(), &dir);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  std::vector<Status> results(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = (*fresh)->Migrate(); });
  }
  for (auto& t : threads) t.join();
  for (const Status& s : results) EXPECT_TRUE(s.ok()) << s.ToString();
  ASSERT_OK((*fresh)->CheckReady());
  fresh = Status::Internal("closed");
  if (!dir.empty()) std::filesystem::remove_all(dir);
}

TEST(StoreOpenTest, UnmigratedStoreIsNotReadyAndBadUriIsRejected) {
  std::string dir;
  Result<std::unique_ptr<LogStore>> s = OpenFreshStore("sqlite", &dir);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->CheckReady().code(), StatusCode::kUnavailable);
  s = Status::Internal("closed");
  std::filesystem::remove_all(dir);
  EXPECT_EQ(OpenLogStore("mysql://x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenLogStore("postgresql://postgres@127.0.0.1:1/x").status().code(),
            StatusCode::kUnavailable);
}

TEST_P(StoreTest, CreateThenGetAndDuplicateCreateConflicts) {
  TxnWrite w = CreateWrite("g1", "c1", 5000);
  w.new_branches.push_back({"", "flight", 0, "PENDING", 0, "", 0, R"({"u":1})", 0});
  w.new_branches.push_back({"", "hotel", 1, "PENDING", 0, "", 0, "{}", 0});
  w.events.push_back({0, "", "", "state", "created", 0});
  ASSERT_OK(ApplyOne(store(), w));

  Result<TxnDetail> d = store().GetTransaction("g1");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->txn.gtid, "g1");
  EXPECT_EQ(d->txn.kind, "saga");
  EXPECT_EQ(d->txn.state, "RUNNING");
  EXPECT_EQ(d->txn.owner, "c1");
  EXPECT_EQ(d->txn.spec, R"({"steps":[]})");
  EXPECT_EQ(d->txn.created_at_ms, 5000);
  EXPECT_EQ(d->txn.deadline_ms, 65000);
  EXPECT_FALSE(d->txn.needs_attention);
  ASSERT_EQ(d->branches.size(), 2u);
  EXPECT_EQ(d->branches[0].name, "flight");
  EXPECT_EQ(d->branches[0].gtid, "g1");
  EXPECT_EQ(d->branches[0].spec, R"({"u":1})");
  EXPECT_EQ(d->branches[1].name, "hotel");
  ASSERT_EQ(d->events.size(), 1u);
  EXPECT_EQ(d->events[0].type, "state");
  EXPECT_EQ(d->events[0].at_ms, 5000);

  Result<TxnDetail> nd = store().GetTransactionNoEvents("g1");
  ASSERT_TRUE(nd.ok());
  EXPECT_TRUE(nd->events.empty());
  EXPECT_EQ(nd->branches.size(), 2u);

  EXPECT_EQ(ApplyOne(store(), CreateWrite("g1", "c2")).code(), StatusCode::kConflict);
  EXPECT_EQ(store().GetTransaction("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store().GetTransactionNoEvents("nope").status().code(), StatusCode::kNotFound);
}

TEST_P(StoreTest, UpdatesAreFencedByOwner) {
  ASSERT_OK(ApplyOne(store(), CreateWrite("g1", "c1")));
  const int64_t v0 = store().GetTransaction("g1")->txn.version;

  TxnWrite u{.gtid = "g1", .owner = "c1", .now_ms = 7000};
  u.state = "COMPENSATING";
  u.needs_attention = true;
  u.attempts = 3;
  u.next_attempt_at_ms = 9000;
  u.deadline_ms = 99000;
  ASSERT_OK(ApplyOne(store(), u));
  TxnRow t = store().GetTransaction("g1")->txn;
  EXPECT_EQ(t.state, "COMPENSATING");
  EXPECT_TRUE(t.needs_attention);
  EXPECT_EQ(t.attempts, 3);
  EXPECT_EQ(t.next_attempt_at_ms, 9000);
  EXPECT_EQ(t.deadline_ms, 99000);
  EXPECT_EQ(t.version, v0 + 1);
  EXPECT_EQ(t.updated_at_ms, 7000);

  TxnWrite other{.gtid = "g1", .owner = "c2"};
  other.state = "ABORTED";
  other.events.push_back({0, "", "", "state", "should not be logged", 0});
  EXPECT_EQ(ApplyOne(store(), other).code(), StatusCode::kLostOwnership);
  EXPECT_EQ(store().GetTransaction("g1")->txn.state, "COMPENSATING");
  EXPECT_TRUE(store().GetTransaction("g1")->events.empty());

  TxnWrite missing{.gtid = "nope", .owner = "c1"};
  EXPECT_EQ(ApplyOne(store(), missing).code(), StatusCode::kNotFound);

  // Hand back: the owner is cleared, so the old owner is fenced out.
  TxnWrite release{.gtid = "g1", .owner = "c1"};
  release.release_owner = true;
  ASSERT_OK(ApplyOne(store(), release));
  EXPECT_EQ(store().GetTransaction("g1")->txn.owner, "");
  EXPECT_EQ(ApplyOne(store(), u).code(), StatusCode::kLostOwnership);
}

// A step's progress (branches and events only) leaves the transactions row
// as it is, yet is fenced exactly like an update: alone and in a batch (the
// set-based path on PostgreSQL), a stranger or a missing gtid applies nothing.
TEST_P(StoreTest, ProgressWritesAreFencedWithoutRewritingTheTransaction) {
  for (const char* gtid : {"p1", "p2", "theirs"}) {
    TxnWrite c = CreateWrite(gtid, std::string(gtid) == "theirs" ? "c2" : "c1");
    c.new_branches.push_back({gtid, "s1", 0, "PENDING", 0, "", 0, "", 0});
    ASSERT_OK(ApplyOne(store(), c));
  }
  const TxnRow before = store().GetTransaction("p1")->txn;
  const auto progress = [](const std::string& gtid, const std::string& owner, int64_t now) {
    TxnWrite w{.gtid = gtid, .owner = owner, .now_ms = now};
    w.branch_updates.push_back({"s1", "SUCCEEDED", 1, "", 0});
    w.events.push_back({0, gtid, "s1", "step", "SUCCEEDED", now});
    return w;
  };
  ASSERT_FALSE(ChangesTransactionRow(progress("p1", "c1", 1)));
  ASSERT_OK(ApplyOne(store(), progress("p1", "c1", 8000)));
  Result<TxnDetail> p1 = store().GetTransaction("p1");
  ASSERT_TRUE(p1.ok());
  EXPECT_EQ(p1->txn.version, before.version);
  EXPECT_EQ(p1->txn.updated_at_ms, before.updated_at_ms);
  EXPECT_EQ(p1->branches.at(0).state, "SUCCEEDED");
  EXPECT_EQ(p1->branches.at(0).updated_at_ms, 8000);
  EXPECT_EQ(p1->events.size(), 1u);

  EXPECT_EQ(ApplyOne(store(), progress("theirs", "c1", 8000)).code(), StatusCode::kLostOwnership);
  EXPECT_EQ(ApplyOne(store(), progress("ghost", "c1", 8000)).code(), StatusCode::kNotFound);
  Result<std::vector<Status>> r = store().ApplyBatch(
      {progress("p2", "c1", 9000), progress("theirs", "c1", 9000), progress("ghost", "c1", 9000)});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_TRUE((*r)[0].ok()) << (*r)[0].ToString();
  EXPECT_EQ((*r)[1].code(), StatusCode::kLostOwnership);
  EXPECT_EQ((*r)[2].code(), StatusCode::kNotFound);
  EXPECT_EQ(store().GetTransaction("p2")->branches.at(0).state, "SUCCEEDED");
  Result<TxnDetail> theirs = store().GetTransaction("theirs");
  EXPECT_EQ(theirs->branches.at(0).state, "PENDING");
  EXPECT_TRUE(theirs->events.empty());

  // Handed back: the old owner's progress is fenced out too.
  TxnWrite release{.gtid = "p1", .owner = "c1"};
  release.release_owner = true;
  ASSERT_OK(ApplyOne(store(), release));
  EXPECT_EQ(ApplyOne(store(), progress("p1", "c1", 9500)).code(), StatusCode::kLostOwnership);
}

TEST_P(StoreTest, FailedWriteInBatchIsSkippedOthersCommit) {
  ASSERT_OK(ApplyOne(store(), CreateWrite("g1", "c1")));
  TxnWrite stale{.gtid = "g1", .owner = "c9"};
  stale.state = "ABORTED";
  TxnWrite good{.gtid = "g1", .owner = "c1"};
  good.state = "COMMITTED";
  good.events.push_back({0, "", "", "state", "committed", 0});
  Result<std::vector<Status>> r =
      store().ApplyBatch({CreateWrite("g2", "c1"), CreateWrite("g1", "c1"), stale, good});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 4u);
  EXPECT_TRUE((*r)[0].ok());
  EXPECT_EQ((*r)[1].code(), StatusCode::kConflict);
  EXPECT_EQ((*r)[2].code(), StatusCode::kLostOwnership);
  EXPECT_TRUE((*r)[3].ok());
  EXPECT_TRUE(store().GetTransaction("g2").ok());
  Result<TxnDetail> g1 = store().GetTransaction("g1");
  EXPECT_EQ(g1->txn.state, "COMMITTED");
  EXPECT_EQ(g1->events.size(), 1u);
}

// One write per gtid: PostgreSQL takes its set-based path (a few statements
// for the whole batch); the per-write answers must be the same as ever.
TEST_P(StoreTest, MixedBatchOfDistinctTransactionsAnswersEachWrite) {
  ASSERT_OK(ApplyOne(store(), CreateWrite("old", "c1")));
  ASSERT_OK(ApplyOne(store(), CreateWrite("theirs", "c2")));
  TxnWrite mine = CreateWrite("mine", "c1");
  mine.new_branches.push_back({"mine", "a", 0, "PENDING", 0, "", 0, "", 0});
  mine.new_branches.push_back({"mine", "b\\\"q", 1, "PENDING", 0, "", 0, "{\"x\":\"y,z\"}", 0});
  ASSERT_OK(ApplyOne(store(), mine));

  TxnWrite fresh = CreateWrite("fresh", "c1");
  fresh.new_branches.push_back({"fresh", "s1", 0, "RUNNING", 1, "", 0, "", 0});
  TxnWrite stale{.gtid = "theirs", .owner = "c1"};
  stale.state = "ABORTED";
  TxnWrite unknown{.gtid = "ghost", .owner = "c1"};
  unknown.state = "ABORTED";
  TxnWrite good{.gtid = "mine", .owner = "c1", .now_ms = 5000};
  good.state = "COMPENSATING";
  good.branch_updates.push_back({"a", "RUNNING", 1, "", 0});
  good.branch_updates.push_back({"a", "SUCCEEDED", std::nullopt, "was \"slow\"", std::nullopt});
  good.branch_updates.push_back({"b\\\"q", "RUNNING", 1, std::nullopt, 7000});
  good.events.push_back({0, "mine", "a", "step", "first", 10});
  good.events.push_back({0, "mine", "a", "step", "second, with {braces}", 11});
  Result<std::vector<Status>> r =
      store().ApplyBatch({fresh, CreateWrite("old", "c1"), stale, unknown, good});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 5u);
  EXPECT_TRUE((*r)[0].ok()) << (*r)[0].ToString();
  EXPECT_EQ((*r)[1].code(), StatusCode::kConflict);
  EXPECT_EQ((*r)[2].code(), StatusCode::kLostOwnership);
  EXPECT_EQ((*r)[3].code(), StatusCode::kNotFound);
  EXPECT_TRUE((*r)[4].ok()) << (*r)[4].ToString();

  EXPECT_EQ(store().GetTransaction("fresh")->branches.at(0).state, "RUNNING");
  EXPECT_EQ(store().GetTransaction("theirs")->txn.state, "RUNNING");
  Result<TxnDetail> m = store().GetTransaction("mine");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->txn.state, "COMPENSATING");
  ASSERT_EQ(m->branches.size(), 2u);
  EXPECT_EQ(m->branches[0].state, "SUCCEEDED");
  EXPECT_EQ(m->branches[0].attempts, 1);
  EXPECT_EQ(m->branches[0].last_error, "was \"slow\"");
  EXPECT_EQ(m->branches[1].name, "b\\\"q");
  EXPECT_EQ(m->branches[1].spec, "{\"x\":\"y,z\"}");
  EXPECT_EQ(m->branches[1].next_attempt_at_ms, 7000);
  ASSERT_EQ(m->events.size(), 2u);
  EXPECT_EQ(m->events[0].detail, "first");
  EXPECT_EQ(m->events[1].detail, "second, with {braces}");
}

// A write that needs per-write handling (an update of a missing branch)
// falls back to the per-write path without changing any answer.
TEST_P(StoreTest, BatchWithAMissingBranchFailsOnlyThatWrite) {
  ASSERT_OK(ApplyOne(store(), CreateWrite("g1", "c1")));
  ASSERT_OK(ApplyOne(store(), CreateWrite("g2", "c1")));
  TxnWrite bad{.gtid = "g1", .owner = "c1"};
  bad.state = "ABORTED";
  bad.branch_updates.push_back({"nope", "RUNNING", 1, std::nullopt, std::nullopt});
  TxnWrite ok{.gtid = "g2", .owner = "c1"};
  ok.state = "COMMITTED";
  Result<std::vector<Status>> r = store().ApplyBatch({bad, ok});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].code(), StatusCode::kNotFound);
  EXPECT_TRUE((*r)[1].ok());
  EXPECT_EQ(store().GetTransaction("g1")->txn.state, "RUNNING");
  EXPECT_EQ(store().GetTransaction("g2")->txn.state, "COMMITTED");
}

TEST_P(StoreTest, BranchesEnlistAndUpdate) {
  ASSERT_OK(ApplyOne(store(), CreateWrite("g1", "c1", 1000, "ACTIVE", "2pc")));
  TxnWrite enlist{.gtid = "g1", .owner = "c1", .now_ms = 2000};
  enlist.new_branches.push_back({"g1", "bank-a", 0, "REGISTERED", 0, "", 0, "{\"p\":1}", 0});
  ASSERT_OK(ApplyOne(store(), enlist));

  // A duplicate branch fails the whole write: the transaction row is untouched.
  TxnWrite dup{.gtid = "g1", .owner = "c1"};
  dup.state = "PREPARING";
  dup.new_branches.push_back({"g1", "bank-a", 1, "REGISTERED", 0, "", 0, "{}", 0});
  EXPECT_EQ(ApplyOne(store(), dup).code(), StatusCode::kConflict);
  EXPECT_EQ(store().GetTransaction("g1")->txn.state, "ACTIVE");

  TxnWrite upd{.gtid = "g1", .owner = "c1", .now_ms = 3000};
  upd.branch_updates.push_back({"bank-a", "PREPARED", 2, "timeout once", 4000});
  ASSERT_OK(ApplyOne(store(), upd));
  Result<TxnDetail> d = store().GetTransaction("g1");
  ASSERT_EQ(d->branches.size(), 1u);
  const BranchRow& b = d->branches[0];
  EXPECT_EQ(b.state, "PREPARED");
  EXPECT_EQ(b.attempts, 2);
  EXPECT_EQ(b.last_error, "timeout once");
  EXPECT_EQ(b.next_attempt_at_ms, 4000);
  EXPECT_EQ(b.updated_at_ms, 3000);
  EXPECT_EQ(b.spec, "{\"p\":1}");

  // Only the given fields change.
  TxnWrite partial{.gtid = "g1", .owner = "c1"};
  partial.branch_updates.push_back({"bank-a", std::nullopt, 3, std::nullopt, std::nullopt});
  ASSERT_OK(ApplyOne(store(), partial));
  d = store().GetTransaction("g1");
  EXPECT_EQ(d->branches[0].state, "PREPARED");
  EXPECT_EQ(d->branches[0].attempts, 3);
  EXPECT_EQ(d->branches[0].last_error, "timeout once");

  TxnWrite unknown{.gtid = "g1", .owner = "c1"};
  unknown.branch_updates.push_back({"nope", "X", std::nullopt, std::nullopt, std::nullopt});
  EXPECT_EQ(ApplyOne(store(), unknown).code(), StatusCode::kNotFound);
}

TEST_P(StoreTest, EventsKeepTheirOrder) {
  ASSERT_OK(ApplyOne(store(), CreateWrite("g1", "c1")));
  for (int i = 0; i < 5; ++i) {
    TxnWrite w{.gtid = "g1", .owner = "c1", .now_ms = 2000 + i};
    w.events.push_back({0, "", "step", "call", "a" + std::to_string(i), 0});
    w.events.push_back({0, "", "step", "call", "b" + std::to_string(i), 0});
    ASSERT_OK(ApplyOne(store(), w));
  }
  Result<TxnDetail> d = store().GetTransaction("g1");
  ASSERT_EQ(d->events.size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(d->events[i].detail, std::string(i % 2 ? "b" : "a") + std::to_string(i / 2));
    EXPECT_EQ(d->events[i].branch, "step");
    EXPECT_EQ(d->events[i].at_ms, 2000 + static_cast<int64_t>(i / 2));
    if (i) {
      EXPECT_LT(d->events[i - 1].id, d->events[i].id);
    }
  }
}

// 30 transactions, created three at a time (equal created_at), mixed states.
void SeedForListing(LogStore& store) {
  std::vector<TxnWrite> writes;
  for (int i = 0; i < 30; ++i) {
    const std::string gtid = (i % 2 ? "odd-" : "even-") + std::to_string(100 + i);
    TxnWrite w = CreateWrite(gtid, "c1", 1000 + i / 3, i % 3 ? "RUNNING" : "COMMITTED",
                             i % 5 ? "saga" : "2pc");
    w.create->needs_attention = (i % 7 == 0);
    writes.push_back(w);
  }
  Result<std::vector<Status>> r = store.ApplyBatch(writes);
  ASSERT_TRUE(r.ok());
  for (const Status& s : *r) ASSERT_TRUE(s.ok()) << s.ToString();
}

std::vector<TxnRow> ListAll(LogStore& store, ListFilter filter, int* pages) {
  std::vector<TxnRow> all;
  *pages = 0;
  while (true) {
    Result<TxnPage> page = store.ListTransactions(filter);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    if (!page.ok()) break;
    ++*pages;
    EXPECT_LE(static_cast<int>(page->items.size()), filter.limit);
    all.insert(all.end(), page->items.begin(), page->items.end());
    if (page->next.empty()) break;
    filter.cursor = page->next;
  }
  return all;
}

TEST_P(StoreTest, ListPagesWithoutDuplicatesOrOmissions) {
  SeedForListing(store());
  int pages = 0;
  std::vector<TxnRow> all = ListAll(store(), ListFilter{.limit = 4}, &pages);
  ASSERT_EQ(all.size(), 30u);
  EXPECT_EQ(pages, 8);
  std::set<std::string> seen;
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_TRUE(seen.insert(all[i].gtid).second) << "duplicate " << all[i].gtid;
    if (i) {
      EXPECT_TRUE(std::tie(all[i - 1].created_at_ms, all[i - 1].gtid) >
                  std::tie(all[i].created_at_ms, all[i].gtid));
    }
  }
  // Every filter, also across pages.
  const auto count = [&](ListFilter f) {
    f.limit = 3;
    int p = 0;
    return ListAll(store(), f, &p).size();
  };
  EXPECT_EQ(count({.state = "COMMITTED"}), 10u);
  EXPECT_EQ(count({.state = "RUNNING"}), 20u);
  EXPECT_EQ(count({.kind = "2pc"}), 6u);
  EXPECT_EQ(count({.needs_attention = true}), 5u);  // 0, 7, 14, 21, 28
  EXPECT_EQ(count({.needs_attention = false}), 25u);
  EXPECT_EQ(count({.gtid_prefix = "odd-"}), 15u);
  EXPECT_EQ(count({.created_before_ms = 1002}), 6u);
  EXPECT_EQ(count({.state = "RUNNING", .kind = "saga", .gtid_prefix = "even-"}), 8u);

  Result<TxnPage> bad = store().ListTransactions({.cursor = "garbage"});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  Result<TxnPage> def = store().ListTransactions({});
  ASSERT_TRUE(def.ok());
  EXPECT_EQ(def->items.size(), 30u);
  EXPECT_TRUE(def->next.empty());
}

// The prefix filter is a key range in byte order: exactly the gtids that
// start with the prefix, whatever sorts near it in a linguistic collation
// (upper case, punctuation) and whatever the database's default collation.
TEST_P(StoreTest, ListByGtidPrefixIsExactInByteOrder) {
  const std::vector<std::string> gtids = {"a",  "a-",  "a-1", "a-Z", "a-z", "a-~",
                                          "a.", "a,1", "a_1", "A-1", "a1",  "b-1"};
  std::vector<TxnWrite> writes;
  for (size_t i = 0; i < gtids.size(); ++i) {
    writes.push_back(CreateWrite(gtids[i], "c1", 1000 + static_cast<int64_t>(i % 3)));
  }
  Result<std::vector<Status>> r = store().ApplyBatch(writes);
  ASSERT_TRUE(r.ok());
  for (const Status& s : *r) ASSERT_TRUE(s.ok()) << s.ToString();
  const auto listed = [&](const std::string& prefix) {
    int pages = 0;
    std::set<std::string> out;
    for (const TxnRow& row : ListAll(store(), {.gtid_prefix = prefix, .limit = 2}, &pages)) {
      out.insert(row.gtid);
    }
    return out;
  };
  EXPECT_EQ(listed("a-"), (std::set<std::string>{"a-", "a-1", "a-Z", "a-z", "a-~"}));
  EXPECT_EQ(listed("a-~"), (std::set<std::string>{"a-~"}));
  EXPECT_EQ(listed("a"), (std::set<std::string>{"a", "a-", "a-1", "a-Z", "a-z", "a-~", "a.", "a,1",
                                                "a_1", "a1"}));
  EXPECT_EQ(listed("A"), (std::set<std::string>{"A-1"}));
  EXPECT_EQ(listed("c"), (std::set<std::string>{}));
  EXPECT_EQ(listed("").size(), gtids.size());
}

TEST_P(StoreTest, CountByState) {
  SeedForListing(store());
  Result<std::vector<StateCount>> counts = store().CountByState();
  ASSERT_TRUE(counts.ok()) << counts.status().ToString();
  int64_t total = 0, committed = 0, attention = 0;
  for (const StateCount& c : *counts) {
    total += c.count;
    if (c.state == "COMMITTED") committed += c.count;
    if (c.needs_attention) attention += c.count;
  }
  EXPECT_EQ(total, 30);
  EXPECT_EQ(committed, 10);
  EXPECT_EQ(attention, 5);
}

INSTANTIATE_TEST_SUITE_P(Engines, StoreTest, ::testing::Values("sqlite", "postgres"), EngineName);

}  // namespace
}  // namespace treaty::testing
