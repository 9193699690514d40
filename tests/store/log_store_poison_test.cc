// Poison-pill isolation of the log's write path, on a real SQLite file and a
// real PostgreSQL: a write whose own data cannot be stored (NUL, ill-formed
// UTF-8, a value too long for an index) fails alone with a data error, or is
// stored sanitized (free text); every other write of its batch commits.
// Also the one error mapping of each engine, and LogWriter's halving of a
// batch that fails as a whole for a reason other than the database being away.
#include <unistd.h>

#include <filesystem>
#include <future>
#include <random>
#include <thread>

#include "common/text.h"
#include "store/log_writer.h"
#include "store/pg_connection_pool.h"
#include "store/sqlite_statement.h"
#include "store/store_fixture.h"
#include "store/write_rules.h"
#include "support/forwarding_log_store.h"

namespace treaty::testing {
namespace {

#define ASSERT_OK(expr)                                     \
  do {                                                      \
    const Status _s = (expr);                               \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)

// `n` printable ASCII bytes that PostgreSQL cannot compress (fixed seed).
std::string Incompressible(size_t n) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::mt19937 rng(42);
  std::string out;
  for (size_t i = 0; i < n; ++i) out.push_back(kAlphabet[rng() % kAlphabet.size()]);
  return out;
}

// What a 200-byte cut of a participant's answer looks like without a
// code-point-aware excerpt: "x" then 100 "é", cut after 200 bytes.
std::string CutMidCharacter() {
  std::string s = "x";
  for (int i = 0; i < 100; ++i) s += "\xC3\xA9";
  return s.substr(0, 200);  // ends with a lone 0xC3
}

class PoisonTest : public StoreTest {
 protected:
  // Ten transactions "u0".."u9" owned by c1, each with one branch "s".
  void SeedUpdatable() {
    std::vector<TxnWrite> seed;
    for (int i = 0; i < 10; ++i) {
      TxnWrite w = CreateWrite("u" + std::to_string(i), "c1");
      w.new_branches.push_back({"", "s", 0, "PENDING", 0, "", 0, "{}", 0});
      seed.push_back(w);
    }
    Result<std::vector<Status>> r = store().ApplyBatch(seed);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    for (const Status& s : *r) ASSERT_OK(s);
  }

  // Twenty creates (two branches, one event each) and ten updates of u0..u9
  // (state, branch update, event), with `bad` at position 15. One write per
  // gtid, so PostgreSQL first tries its set-based path.
  static std::vector<TxnWrite> BatchAround(const TxnWrite& bad, const std::string& tag) {
    std::vector<TxnWrite> batch;
    for (int i = 0; i < 20; ++i) {
      TxnWrite w = CreateWrite(tag + "-c" + std::to_string(i), "c1");
      w.new_branches.push_back({"", "flight", 0, "PENDING", 0, "", 0, R"({"p":1})", 0});
      w.new_branches.push_back({"", "hotel", 1, "PENDING", 0, "", 0, "{}", 0});
      w.events.push_back({0, "", "", "state", "created " + tag, 0});
      batch.push_back(w);
    }
    for (int i = 0; i < 10; ++i) {
      TxnWrite w{.gtid = "u" + std::to_string(i), .owner = "c1", .now_ms = 5000};
      w.state = "COMPENSATING";
      w.branch_updates.push_back({"s", "RUNNING", 1, "slow " + tag, std::nullopt});
      w.events.push_back({0, "", "s", "call", "called " + tag, 0});
      batch.push_back(w);
    }
    batch.insert(batch.begin() + 15, bad);
    return batch;
  }

  // Every write of BatchAround but `bad` answered OK and is in the log.
  void ExpectValidWritesApplied(const std::vector<TxnWrite>& batch,
                                const std::vector<Status>& results, size_t bad_at,
                                const std::string& tag) {
    ASSERT_EQ(results.size(), batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      if (i == bad_at) continue;
      EXPECT_TRUE(results[i].ok()) << batch[i].gtid << ": " << results[i].ToString();
    }
    for (int i = 0; i < 20; ++i) {
      Result<TxnDetail> d = store().GetTransaction(tag + "-c" + std::to_string(i));
      ASSERT_TRUE(d.ok()) << d.status().ToString();
      EXPECT_EQ(d->branches.size(), 2u);
      ASSERT_EQ(d->events.size(), 1u);
      EXPECT_EQ(d->events[0].detail, "created " + tag);
    }
    for (int i = 0; i < 10; ++i) {
      Result<TxnDetail> d = store().GetTransaction("u" + std::to_string(i));
      ASSERT_TRUE(d.ok()) << d.status().ToString();
      EXPECT_EQ(d->txn.state, "COMPENSATING");
      EXPECT_EQ(d->branches.at(0).last_error, "slow " + tag);
      ASSERT_FALSE(d->events.empty());
      EXPECT_EQ(d->events.back().detail, "called " + tag);
    }
  }
};

TEST_P(PoisonTest, AWriteWithUnstorableIdentifiersFailsAloneInItsBatch) {
  SeedUpdatable();
  struct Case {
    std::string tag;
    TxnWrite bad;
    std::vector<std::string> never_stored;  // gtids that must not exist afterwards
  };
  std::vector<Case> cases;
  cases.push_back({"nul-gtid", CreateWrite(std::string("bad\0gtid", 8), "c1"), {"bad"}});
  {
    TxnWrite w = CreateWrite("nul-step", "c1");
    w.new_branches.push_back({"", std::string("a\0b", 3), 0, "PENDING", 0, "", 0, "{}", 0});
    cases.push_back({"nul-step", w, {"nul-step"}});
  }
  {
    TxnWrite w = CreateWrite("bad-utf8-step", "c1");
    w.new_branches.push_back({"", "caf\xC3", 0, "PENDING", 0, "", 0, "{}", 0});
    cases.push_back({"utf8-step", w, {"bad-utf8-step"}});
  }
  cases.push_back({"utf8-gtid", CreateWrite("g\xFF", "c1"), {"g"}});
  {
    TxnWrite w = CreateWrite("bad-spec", "c1");
    w.create->spec = "{\"x\":\"\xE9\"}";
    cases.push_back({"utf8-spec", w, {"bad-spec"}});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tag);
    std::vector<TxnWrite> batch = BatchAround(c.bad, c.tag);
    Result<std::vector<Status>> r = store().ApplyBatch(batch);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(IsDataError((*r)[15])) << (*r)[15].ToString();
    EXPECT_TRUE(IsValidUtf8((*r)[15].message()));
    ExpectValidWritesApplied(batch, *r, 15, c.tag);
    for (const std::string& gtid : c.never_stored) {
      EXPECT_EQ(store().GetTransaction(gtid).status().code(), StatusCode::kNotFound) << gtid;
    }
    // Alone, it fails the same way.
    EXPECT_TRUE(IsDataError(ApplyOne(store(), c.bad)));
  }
  // An update of an existing transaction naming a branch with a NUL: refused,
  // the transaction is untouched.
  TxnWrite update{.gtid = "u3", .owner = "c1"};
  update.state = "ABORTED";
  update.branch_updates.push_back({std::string("s\0x", 3), "FAILED", 2, "", std::nullopt});
  std::vector<TxnWrite> batch = BatchAround(update, "nul-update");
  batch.erase(batch.begin() + 24);  // the regular update of u3
  Result<std::vector<Status>> r = store().ApplyBatch(batch);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(IsDataError((*r)[15])) << (*r)[15].ToString();
  EXPECT_EQ(store().GetTransaction("u3")->txn.state, "COMPENSATING");  // from an earlier case
}

// A value the database itself refuses (PostgreSQL: an index row over its
// btree limit, SQLSTATE 54000): found by the engine, failing that write
// alone, in the set-based batch, the write-by-write batch and alone.
// SQLite has no such limit and stores it.
TEST_P(PoisonTest, AValueTheDatabaseRefusesFailsAloneInItsBatch) {
  SeedUpdatable();
  const std::string long_gtid = Incompressible(8000);
  TxnWrite bad = CreateWrite(long_gtid, "c1");
  bad.events.push_back({0, "", "", "state", "created", 0});
  const bool refused = GetParam() == "postgres";

  std::vector<TxnWrite> batch = BatchAround(bad, "set");
  Result<std::vector<Status>> r = store().ApplyBatch(batch);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  if (refused) {
    EXPECT_TRUE(IsDataError((*r)[15])) << (*r)[15].ToString();
    EXPECT_NE((*r)[15].message().find("54000"), std::string::npos) << (*r)[15].ToString();
    EXPECT_EQ(store().GetTransaction(long_gtid).status().code(), StatusCode::kNotFound);
  } else {
    EXPECT_TRUE((*r)[15].ok()) << (*r)[15].ToString();
    EXPECT_EQ(store().GetTransaction(long_gtid)->txn.gtid, long_gtid);
  }
  ExpectValidWritesApplied(batch, *r, 15, "set");

  // Two writes of one transaction: PostgreSQL goes write by write at once.
  TxnWrite bad_branch{.gtid = "u1", .owner = "c1"};
  bad_branch.new_branches.push_back({"", Incompressible(8000), 1, "REGISTERED", 0, "", 0, "", 0});
  batch = BatchAround(bad_branch, "each");
  Result<std::vector<Status>> each = store().ApplyBatch(batch);
  ASSERT_TRUE(each.ok()) << each.status().ToString();
  EXPECT_EQ(IsDataError((*each)[15]), refused) << (*each)[15].ToString();
  EXPECT_EQ((*each)[15].ok(), !refused) << (*each)[15].ToString();
  ExpectValidWritesApplied(batch, *each, 15, "each");
  EXPECT_EQ(store().GetTransaction("u1")->branches.size(), refused ? 1u : 2u);

  // Alone.
  TxnWrite alone = CreateWrite(Incompressible(9000), "c1");
  EXPECT_EQ(IsDataError(ApplyOne(store(), alone)), refused);
}

// Free text (last_error, event detail) is never refused: cut mid-character,
// ill-formed, with NUL or far too long, it is stored as valid UTF-8 (and
// read back) on both engines, in either batch path.
TEST_P(PoisonTest, FreeTextIsStoredValidAndReadsBack) {
  SeedUpdatable();
  const std::string cut = CutMidCharacter();
  const std::string nul("before\0after", 12);
  const std::string huge(200 * 1024, 'z');

  TxnWrite create = CreateWrite("text-create", "c1");
  create.new_branches.push_back({"", "s", 0, "FAILED", 3, cut, 0, "{}", 0});
  create.events.push_back({0, "", "s", "call", nul, 0});
  create.events.push_back({0, "", "s", "call", "\xFF\xFE bytes", 0});
  TxnWrite update{.gtid = "u0", .owner = "c1"};
  update.branch_updates.push_back({"s", "RETRYING", 2, cut, std::nullopt});
  update.events.push_back({0, "", "s", "retry", huge, 0});

  std::vector<TxnWrite> set_batch = BatchAround(create, "set");
  set_batch[21] = update;  // replaces the regular update of u0
  Result<std::vector<Status>> r = store().ApplyBatch(set_batch);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (const Status& s : *r) EXPECT_TRUE(s.ok()) << s.ToString();

  const std::string cut_fixed = ToValidUtf8(cut);
  Result<TxnDetail> u0 = store().GetTransaction("u0");
  ASSERT_TRUE(u0.ok());
  EXPECT_EQ(u0->branches.at(0).last_error, cut_fixed);
  EXPECT_EQ(u0->branches.at(0).state, "RETRYING");
  const std::string& stored_huge = u0->events.back().detail;  // in the log: valid, cut
  EXPECT_LE(stored_huge.size(), kMaxStoredTextBytes);
  EXPECT_EQ(stored_huge.substr(0, 100), huge.substr(0, 100));

  // Write by write: a second write of u9 at the end of the batch.
  TxnWrite each_create = CreateWrite("text-each", "c1");
  each_create.new_branches.push_back({"", "s", 0, "FAILED", 3, cut, 0, "{}", 0});
  each_create.events.push_back({0, "", "s", "call", nul, 0});
  TxnWrite second{.gtid = "u9", .owner = "c1"};
  second.branch_updates.push_back({"s", std::nullopt, std::nullopt, cut, std::nullopt});
  second.events.push_back({0, "", "s", "call", nul, 0});
  std::vector<TxnWrite> each_batch = BatchAround(each_create, "each");
  each_batch.push_back(second);
  Result<std::vector<Status>> each = store().ApplyBatch(each_batch);
  ASSERT_TRUE(each.ok()) << each.status().ToString();
  for (const Status& s : *each) EXPECT_TRUE(s.ok()) << s.ToString();

  Result<TxnDetail> c = store().GetTransaction("text-create");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->branches.at(0).last_error, cut_fixed);
  ASSERT_EQ(c->events.size(), 2u);
  EXPECT_EQ(c->events[0].detail,
            "before\xEF\xBF\xBD"
            "after");
  EXPECT_EQ(c->events[1].detail, "\xEF\xBF\xBD\xEF\xBF\xBD bytes");

  Result<TxnDetail> e = store().GetTransaction("text-each");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->branches.at(0).last_error, cut_fixed);
  EXPECT_EQ(e->events.at(0).detail,
            "before\xEF\xBF\xBD"
            "after");
  Result<TxnDetail> u9 = store().GetTransaction("u9");
  ASSERT_TRUE(u9.ok());
  EXPECT_EQ(u9->branches.at(0).last_error, cut_fixed);
  EXPECT_EQ(u9->events.back().detail,
            "before\xEF\xBF\xBD"
            "after");
  for (const auto* d : {&*c, &*e, &*u9}) {
    for (const BranchRow& b : d->branches) EXPECT_TRUE(IsValidUtf8(b.last_error));
    for (const EventRow& ev : d->events) EXPECT_TRUE(IsValidUtf8(ev.detail));
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, PoisonTest, ::testing::Values("sqlite", "postgres"), EngineName);

// Fails every batch holding a write of gtid "poison" as a whole, with
// `failure`, like an engine that cannot tell which write is bad.
class WholeBatchFailingStore : public ForwardingLogStore {
 public:
  WholeBatchFailingStore(LogStore* inner, Status failure)
      : ForwardingLogStore(inner), failure_(std::move(failure)) {}
  int batches = 0;  // writer thread only; read after Stop()
  // The first batch waits for it, so that everything submitted meanwhile
  // forms the second batch.
  std::shared_future<void> gate;

 protected:
  Result<std::vector<Status>> ApplyStorable(const std::vector<TxnWrite>& writes) override {
    if (++batches == 1) gate.wait();
    for (const TxnWrite& w : writes) {
      if (w.gtid == "poison") return failure_;
    }
    return inner_->ApplyBatch(writes);
  }

 private:
  Status failure_;
};

using LogWriterIsolationTest = StoreTest;

TEST_P(LogWriterIsolationTest, ABatchFailingAsAWholeIsHalvedUntilOnlyThePoisonFails) {
  for (const Status& failure : {DataError("injected"), Status::Internal("injected")}) {
    SCOPED_TRACE(failure.ToString());
    WholeBatchFailingStore failing(&store(), failure);
    const std::string tag = failure.code() == StatusCode::kInternal ? "i" : "d";
    std::vector<std::pair<std::string, Status>> results;  // writer thread, then read after Stop
    {
      std::promise<void> release;
      failing.gate = release.get_future().share();
      LogWriter writer(&failing, {.max_batch = 64});
      const auto submit = [&](const std::string& gtid) {
        writer.Submit(CreateWrite(gtid, "c1"),
                      [&, gtid](Status s) { results.emplace_back(gtid, std::move(s)); });
      };
      submit(tag + "-first");
      while (writer.queue_depth() > 0) std::this_thread::yield();  // taken: waits at the gate
      for (int i = 0; i < 40; ++i)
        submit(i == 23 ? std::string("poison") : tag + std::to_string(i));
      release.set_value();
      writer.Stop();
    }
    EXPECT_GT(failing.batches, 2);  // the batch of 40 was halved
    ASSERT_EQ(results.size(), 41u);
    for (const auto& [gtid, s] : results) {
      if (gtid == "poison") {
        EXPECT_EQ(s.code(), failure.code()) << s.ToString();
      } else {
        EXPECT_TRUE(s.ok()) << gtid << ": " << s.ToString();
        EXPECT_TRUE(store().GetTransaction(gtid).ok()) << gtid;
      }
    }
    EXPECT_EQ(store().GetTransaction("poison").status().code(), StatusCode::kNotFound);
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, LogWriterIsolationTest, ::testing::Values("sqlite"), EngineName);

TEST(StoreErrorMappingTest, PostgresSqlstates) {
  EXPECT_TRUE(IsDataError(PgErrorStatus("w", "22021", "invalid byte sequence")));
  EXPECT_TRUE(IsDataError(PgErrorStatus("w", "22P05", "unsupported Unicode escape")));
  EXPECT_TRUE(IsDataError(PgErrorStatus("w", "23502", "null value")));
  EXPECT_TRUE(IsDataError(PgErrorStatus("w", "54000", "index row size")));
  EXPECT_EQ(PgErrorStatus("w", "23505", "duplicate").code(), StatusCode::kConflict);
  EXPECT_EQ(PgErrorStatus("w", "08006", "gone").code(), StatusCode::kUnavailable);
  EXPECT_EQ(PgErrorStatus("w", "40001", "serialization").code(), StatusCode::kUnavailable);
  EXPECT_EQ(PgErrorStatus("w", "42601", "syntax").code(), StatusCode::kInternal);
  EXPECT_TRUE(IsValidUtf8(PgErrorStatus("w", "22021", "bad \xFF byte").message()));
}

// The SQLite mapping against a real database file: a primary key clash is
// the expected Conflict; any other constraint and an over-long value are
// data errors.
TEST(StoreErrorMappingTest, SqliteResultCodes) {
  const std::string dir =
      ::testing::TempDir() + "treaty-sqlite-mapping-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  {
    SqliteConnection conn;
    ASSERT_OK(conn.Open(dir + "/m.db", 1000));
    ASSERT_OK(conn.Exec("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT NOT NULL CHECK (v <> 'no'))"));
    Status s;
    auto insert = [&](const std::string& k, const std::string& v) -> Status {
      auto st = conn.Prepare("INSERT INTO t (k, v) VALUES (?1, ?2)", &s);
      if (!st) return s;
      Result<int64_t> n = st->Bind(1, k).Bind(2, v).Run();
      return n.ok() ? Status::Ok() : n.status();
    };
    ASSERT_OK(insert("a", "yes"));
    EXPECT_EQ(insert("a", "yes").code(), StatusCode::kConflict);
    EXPECT_TRUE(IsDataError(insert("b", "no")));
    sqlite3_limit(conn.db(), SQLITE_LIMIT_LENGTH, 1000);
    EXPECT_TRUE(IsDataError(insert("c", std::string(5000, 'x'))));
    ASSERT_OK(insert("d", "fine"));
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace treaty::testing
