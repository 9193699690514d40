// Barrier on a real PostgreSQL: duplicates, null compensation, hanging
// actions, and the same op delivered concurrently on two connections; SQL
// error codes, the call deadline and a schema migrated by a newer SDK.

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "sdk/sdk_test_env.h"
#include "treaty/barrier.h"

namespace treaty::testing {
namespace {

using treaty::StatusCode;
using treaty::sdk::Barrier;
using treaty::sdk::BarrierEffect;
using treaty::sdk::BarrierOptions;
using treaty::sdk::CallContext;
using treaty::sdk::SqlTx;
namespace sdk = treaty::sdk;

class BarrierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uri_ = FreshDatabase("barrier");
    ASSERT_FALSE(uri_.empty());
    ExecSql(uri_, "CREATE TABLE ledger(gtid text, branch text, op text)");
    auto b = Barrier::Open(BarrierOptions{.pg_uri = uri_, .lock_timeout_ms = 5000});
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    barrier_ = std::move(*b);
  }

  // Delivers `op`; the body records itself in `ledger`.
  treaty::Result<BarrierEffect> Deliver(const std::string& gtid, const std::string& op,
                                        std::atomic<int>* ran = nullptr, int sleep_ms = 0,
                                        bool one_phase = false) {
    CallContext ctx{.gtid = gtid, .branch = "b1", .op = op, .one_phase = one_phase};
    return barrier_->Run(ctx, [&](SqlTx& tx) -> treaty::Status {
      if (ran) ++*ran;
      if (sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
      auto r = tx.Exec("INSERT INTO ledger VALUES ($1, $2, $3)", {gtid, "b1", op});
      return r.status();
    });
  }

  int64_t Ledger(const std::string& gtid, const std::string& op) {
    return QueryInt(uri_,
                    "SELECT count(*) FROM ledger WHERE gtid='" + gtid + "' AND op='" + op + "'");
  }

  std::string uri_;
  std::unique_ptr<Barrier> barrier_;
};

TEST_F(BarrierTest, DuplicateDeliveryIsANoOpSuccess) {
  auto first = Deliver("g1", "action");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, BarrierEffect::kApplied);
  for (int i = 0; i < 3; ++i) {
    auto again = Deliver("g1", "action");
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(*again, BarrierEffect::kDuplicate);
  }
  EXPECT_EQ(Ledger("g1", "action"), 1);
  // Compensation applies once too.
  EXPECT_EQ(*Deliver("g1", "compensate"), BarrierEffect::kApplied);
  EXPECT_EQ(*Deliver("g1", "compensate"), BarrierEffect::kDuplicate);
  EXPECT_EQ(Ledger("g1", "compensate"), 1);
}

TEST_F(BarrierTest, NullCompensationSucceedsWithoutRunningTheBody) {
  std::atomic<int> ran{0};
  auto r = Deliver("g2", "compensate", &ran);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, BarrierEffect::kNullCompensation);
  EXPECT_EQ(ran.load(), 0);
  // Its redelivery is a duplicate.
  EXPECT_EQ(*Deliver("g2", "compensate", &ran), BarrierEffect::kDuplicate);
  EXPECT_EQ(ran.load(), 0);
  // Abort of a never-prepared TCC branch likewise.
  EXPECT_EQ(*Deliver("g2", "abort", &ran), BarrierEffect::kNullCompensation);
  EXPECT_EQ(ran.load(), 0);
}

TEST_F(BarrierTest, HangingActionAfterCompensationIsRefused) {
  std::atomic<int> ran{0};
  ASSERT_EQ(*Deliver("g3", "compensate", &ran), BarrierEffect::kNullCompensation);
  auto late = Deliver("g3", "action", &ran);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), StatusCode::kBusinessFailure) << late.status().ToString();
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(Ledger("g3", "action"), 0);
  // Same for a TCC prepare after its abort.
  ASSERT_EQ(*Deliver("g3", "abort", &ran), BarrierEffect::kNullCompensation);
  auto late_prepare = Deliver("g3", "prepare", &ran);
  EXPECT_EQ(late_prepare.status().code(), StatusCode::kBusinessFailure);
  EXPECT_EQ(ran.load(), 0);
}

// A commit runs (and is acknowledged) only when the records show
// the branch prepared; a one-phase commit does the whole work once.
TEST_F(BarrierTest, CommitRunsOnlyAfterAPrepareOrAsOnePhase) {
  std::atomic<int> ran{0};
  auto bare = Deliver("c1", "commit", &ran);
  EXPECT_EQ(bare.status().code(), StatusCode::kConflict) << bare.status().ToString();
  EXPECT_EQ(ran.load(), 0);

  ASSERT_EQ(*Deliver("c2", "prepare"), BarrierEffect::kApplied);
  EXPECT_EQ(*Deliver("c2", "commit", &ran), BarrierEffect::kApplied);
  EXPECT_EQ(*Deliver("c2", "commit", &ran), BarrierEffect::kDuplicate);
  EXPECT_EQ(ran.load(), 1);

  ASSERT_EQ(*Deliver("c3", "abort"), BarrierEffect::kNullCompensation);
  EXPECT_EQ(Deliver("c3", "commit", &ran).status().code(), StatusCode::kConflict);
  auto refused = Deliver("c3", "commit", &ran, 0, /*one_phase=*/true);
  EXPECT_EQ(refused.status().code(), StatusCode::kBusinessFailure);
  EXPECT_EQ(ran.load(), 1);

  EXPECT_EQ(*Deliver("c4", "commit", &ran, 0, true), BarrierEffect::kApplied);
  EXPECT_EQ(*Deliver("c4", "commit", &ran, 0, true), BarrierEffect::kDuplicate);
  EXPECT_EQ(ran.load(), 2);
  EXPECT_EQ(Ledger("c4", "commit"), 1);
  // The one-phase commit took the prepare slot: a late prepare is refused.
  EXPECT_EQ(Deliver("c4", "prepare", &ran).status().code(), StatusCode::kBusinessFailure);
  EXPECT_EQ(ran.load(), 2);
}

TEST_F(BarrierTest, FailedBodyLeavesNoTraceSoCompensationIsNull) {
  CallContext ctx{.gtid = "g4", .branch = "b1", .op = "action"};
  auto r = barrier_->Run(ctx, [&](SqlTx& tx) -> treaty::Status {
    (void)tx.Exec("INSERT INTO ledger VALUES ('g4', 'b1', 'action')");
    return treaty::Status::BusinessFailure("insufficient funds");
  });
  EXPECT_EQ(r.status().code(), StatusCode::kBusinessFailure);
  EXPECT_EQ(Ledger("g4", "action"), 0);
  EXPECT_EQ(*Deliver("g4", "compensate"), BarrierEffect::kNullCompensation);
}

TEST_F(BarrierTest, ExceptionInBodyIsInternalAndRollsBack) {
  CallContext ctx{.gtid = "g5", .branch = "b1", .op = "action"};
  auto r = barrier_->Run(ctx, [&](SqlTx& tx) -> treaty::Status {
    (void)tx.Exec("INSERT INTO ledger VALUES ('g5', 'b1', 'action')");
    throw std::runtime_error("boom");
  });
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_EQ(Ledger("g5", "action"), 0);
  EXPECT_EQ(*Deliver("g5", "action"), BarrierEffect::kApplied);
}

TEST_F(BarrierTest, SameOpConcurrentlyFromTwoConnectionsRunsOnce) {
  for (int round = 0; round < 10; ++round) {
    const std::string gtid = "c" + std::to_string(round);
    std::atomic<int> ran{0};
    treaty::Result<BarrierEffect> a = treaty::Status::Internal("unset"), b = a;
    std::thread t1([&] { a = Deliver(gtid, "action", &ran, 50); });
    std::thread t2([&] { b = Deliver(gtid, "action", &ran, 50); });
    t1.join();
    t2.join();
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_EQ(Ledger(gtid, "action"), 1);
    EXPECT_TRUE((*a == BarrierEffect::kApplied) != (*b == BarrierEffect::kApplied));
  }
}

TEST_F(BarrierTest, ActionRacingItsCompensationNeverHangs) {
  // Whatever the interleaving: either the action applied and was then
  // compensated, or the compensation was null and the action refused.
  for (int round = 0; round < 10; ++round) {
    const std::string gtid = "r" + std::to_string(round);
    treaty::Result<BarrierEffect> act = treaty::Status::Internal("unset"), comp = act;
    std::thread t1([&] { act = Deliver(gtid, "action", nullptr, round % 2 ? 30 : 0); });
    std::thread t2([&] { comp = Deliver(gtid, "compensate", nullptr, round % 2 ? 0 : 30); });
    t1.join();
    t2.join();
    ASSERT_TRUE(comp.ok()) << comp.status().ToString();
    if (act.ok()) {
      EXPECT_EQ(*comp, BarrierEffect::kApplied);
      EXPECT_EQ(Ledger(gtid, "action"), 1);
      EXPECT_EQ(Ledger(gtid, "compensate"), 1);
    } else {
      EXPECT_EQ(act.status().code(), StatusCode::kBusinessFailure);
      EXPECT_EQ(*comp, BarrierEffect::kNullCompensation);
      EXPECT_EQ(Ledger(gtid, "action"), 0);
    }
  }
}

TEST_F(BarrierTest, OpenTwiceMigratesOnce) {
  auto again = Barrier::Open(BarrierOptions{.pg_uri = uri_});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(QueryInt(uri_, "SELECT count(*) FROM treaty_participant_migrations"), 1);
}

// Only identifiers reach the barrier table.
TEST_F(BarrierTest, GtidBranchAndOpMustBeIdentifiers) {
  std::atomic<int> ran{0};
  for (CallContext ctx :
       {CallContext{.gtid = "\xff", .branch = "b1", .op = "action"},
        CallContext{.gtid = std::string("g\0x", 3), .branch = "b1", .op = "action"},
        CallContext{.gtid = "g1", .branch = "b 1", .op = "action"},
        CallContext{.gtid = "g1", .branch = "b1", .op = std::string(129, 'o')},
        CallContext{.gtid = "g1", .branch = "b1", .op = ""}}) {
    auto r = barrier_->Run(ctx, [&](SqlTx&) -> treaty::Status {
      ++ran;
      return treaty::Status::Ok();
    });
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  }
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(QueryInt(uri_, "SELECT count(*) FROM treaty_barrier"), 0);
}

// SqlTx's errors as treaty/sql.h promises them (the shared SQLSTATE reading
// of store/pg_error.h): integrity violations are Conflict, a lock time-out is
// Unavailable, anything else (bad data, syntax) Internal.
TEST_F(BarrierTest, SqlErrorsAreMappedAsSqlTxPromises) {
  ExecSql(uri_,
          "CREATE TABLE account(id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));"
          "INSERT INTO account VALUES (1, 10)");
  const auto exec_in_body = [&](const std::string& gtid, const std::string& sql) {
    treaty::Status got;
    auto r = barrier_->Run(CallContext{.gtid = gtid, .branch = "b1", .op = "action"},
                           [&](SqlTx& tx) -> treaty::Status {
                             (void)tx.Exec("SET LOCAL lock_timeout = '200ms'");
                             got = tx.Exec(sql).status();
                             return got;
                           });
    EXPECT_EQ(r.status().code(), got.code()) << r.status().ToString();
    return got;
  };
  EXPECT_EQ(exec_in_body("e1", "INSERT INTO account VALUES (1, 5)").code(), StatusCode::kConflict);
  EXPECT_EQ(exec_in_body("e2", "UPDATE account SET balance = -1").code(), StatusCode::kConflict);
  EXPECT_EQ(exec_in_body("e3", "INSERT INTO account VALUES (2, NULL)").code(),
            StatusCode::kConflict);
  treaty::Status bad = exec_in_body("e4", "SELECT 'x'::int");
  EXPECT_EQ(bad.code(), StatusCode::kInternal) << bad.ToString();
  EXPECT_NE(bad.message().find("22P02"), std::string::npos) << bad.ToString();
  EXPECT_EQ(exec_in_body("e5", "SELEC 1").code(), StatusCode::kInternal);
  {
    pqxx::connection other(uri_);
    pqxx::work hold(other);
    hold.exec("LOCK TABLE account IN ACCESS EXCLUSIVE MODE");
    treaty::Status locked = exec_in_body("e6", "SELECT count(*) FROM account");
    EXPECT_EQ(locked.code(), StatusCode::kUnavailable) << locked.ToString();
  }
  // Every failure rolled back: a redelivery runs the body again.
  EXPECT_EQ(*Deliver("e1", "action"), BarrierEffect::kApplied);
}

// The session of the Barrier's one pooled connection: pg_backend_pid()
// read by a body (0 when that Run fails).
int64_t BackendPid(sdk::Barrier& barrier, const std::string& gtid) {
  int64_t pid = 0;
  auto r = barrier.Run(CallContext{.gtid = gtid, .branch = "b1", .op = "action"},
                       [&](SqlTx& tx) -> treaty::Status {
                         auto got = tx.Exec("SELECT pg_backend_pid()");
                         if (got.ok()) pid = got->rows.at(0).Int(0);
                         return got.status();
                       });
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return pid;
}

// Real errors through Barrier::Run (its pool and SqlTx) keep the pooled
// connection: a deadlock (libpqxx 6.4's deadlock_detected, no sql_error)
// is Unavailable naming 40P01, and the next Run uses the same session.
TEST_F(BarrierTest, DeadlockIsUnavailableAndKeepsTheConnection) {
  ExecSql(uri_, "CREATE TABLE account(id int PRIMARY KEY); INSERT INTO account VALUES (1), (2)");
  auto b = Barrier::Open(BarrierOptions{.pg_uri = uri_, .max_connections = 1});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  const int64_t pid = BackendPid(**b, "k0");
  treaty::Status got;
  std::atomic<bool> holds_2{false};
  std::thread other;  // joined after Run: it waits for the Run's row lock until the rollback
  auto r = (*b)->Run(
      CallContext{.gtid = "k1", .branch = "b1", .op = "action"}, [&](SqlTx& tx) -> treaty::Status {
        // This session checks for the deadlock first, so it is the victim.
        EXPECT_TRUE(tx.Exec("SET LOCAL deadlock_timeout = '50ms'").ok());
        EXPECT_TRUE(tx.Exec("SELECT 1 FROM account WHERE id = 1 FOR UPDATE").ok());
        other = std::thread([&] {
          try {
            pqxx::connection oc(uri_);
            pqxx::work w(oc);
            w.exec("SET LOCAL deadlock_timeout = '60s'");
            w.exec("SELECT 1 FROM account WHERE id = 2 FOR UPDATE");
            holds_2 = true;
            w.exec("SELECT 1 FROM account WHERE id = 1 FOR UPDATE");  // waits for this Run
            w.commit();
          } catch (const std::exception&) {
            holds_2 = true;
          }
        });
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (
            std::chrono::steady_clock::now() < deadline &&
            (!holds_2 ||
             tx.Exec("SELECT count(*) FROM pg_locks WHERE NOT granted")->rows.at(0).Int(0) == 0)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        got = tx.Exec("SELECT 1 FROM account WHERE id = 2 FOR UPDATE").status();
        return got;
      });
  if (other.joinable()) other.join();
  EXPECT_EQ(got.code(), StatusCode::kUnavailable) << got.ToString();
  EXPECT_NE(got.message().find("[40P01]"), std::string::npos) << got.ToString();
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_EQ(BackendPid(**b, "k2"), pid) << "the connection was dropped";
}

// A role without privileges on the business table: Internal naming 42501
// (libpqxx 6.4's insufficient_privilege carries no SQLSTATE), the pooled
// connection kept; so are the statement errors.
TEST_F(BarrierTest, PermissionAndStatementErrorsKeepTheConnection) {
  ExecSql(uri_,
          "CREATE TABLE account(id int PRIMARY KEY, balance bigint CHECK (balance >= 0));"
          "INSERT INTO account VALUES (1, 10);"
          "DO $$ BEGIN CREATE ROLE treaty_weak LOGIN; "
          "EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
          "GRANT ALL ON treaty_barrier TO treaty_weak");
  std::string weak_uri = uri_;
  weak_uri.replace(weak_uri.find("postgres@"), 9, "treaty_weak@");
  for (const auto& [uri, sql, code, sqlstate] :
       std::vector<std::tuple<std::string, std::string, StatusCode, std::string>>{
           {weak_uri, "INSERT INTO account VALUES (2, 1)", StatusCode::kInternal, "42501"},
           {uri_, "INSERT INTO account VALUES (1, 5)", StatusCode::kConflict, "23505"},
           {uri_, "UPDATE account SET balance = -1", StatusCode::kConflict, "23514"},
           {uri_, "SELECT 1 / 0", StatusCode::kInternal, "22012"},
           {uri_, "SELEC 1", StatusCode::kInternal, "42601"},
           {uri_, "SELECT * FROM nowhere", StatusCode::kInternal, "42P01"}}) {
    auto b = Barrier::Open(BarrierOptions{.pg_uri = uri, .max_connections = 1, .migrate = false});
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    const int64_t pid = BackendPid(**b, "p" + sqlstate + "a");
    treaty::Status got;
    auto r = (*b)->Run(CallContext{.gtid = "p" + sqlstate + "b", .branch = "b1", .op = "action"},
                       [&](SqlTx& tx) -> treaty::Status {
                         got = tx.Exec(sql).status();
                         return got;
                       });
    EXPECT_EQ(got.code(), code) << sqlstate << ": " << got.ToString();
    EXPECT_NE(got.message().find("[" + sqlstate + "]"), std::string::npos) << got.ToString();
    EXPECT_EQ(r.status().code(), code) << r.status().ToString();
    EXPECT_EQ(BackendPid(**b, "p" + sqlstate + "c"), pid) << sqlstate << ": connection dropped";
  }
}

// With call_timeout_ms a call stuck on the database (here: on a lock held
// elsewhere, lock_timeout being longer) fails with Unavailable at about the
// deadline, rolled back; the barrier works again afterwards.
TEST_F(BarrierTest, CallDeadlineEndsAStuckRun) {
  auto b = Barrier::Open(
      BarrierOptions{.pg_uri = uri_, .lock_timeout_ms = 30000, .call_timeout_ms = 500});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  const auto began = std::chrono::steady_clock::now();
  {
    pqxx::connection other(uri_);
    pqxx::work hold(other);
    hold.exec("LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE");
    auto r =
        (*b)->Run(CallContext{.gtid = "d1", .branch = "b1", .op = "action"},
                  [&](SqlTx& tx) -> treaty::Status {
                    return tx.Exec("INSERT INTO ledger VALUES ('d1', 'b1', 'action')").status();
                  });
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(5));
  EXPECT_EQ(Ledger("d1", "action"), 0);
  auto again = (*b)->Run(CallContext{.gtid = "d1", .branch = "b1", .op = "action"},
                         [](SqlTx&) { return treaty::Status::Ok(); });
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, BarrierEffect::kApplied);
}

// A participant database migrated by a newer SDK is refused at Open (as
// treatyd refuses a newer log): nothing is applied; without `migrate` the
// schema is the application's business and Open goes on.
TEST_F(BarrierTest, DatabaseMigratedByANewerSdkIsRefused) {
  ExecSql(uri_, "INSERT INTO treaty_participant_migrations(version, name) VALUES (999, 'future')");
  auto refused = Barrier::Open(BarrierOptions{.pg_uri = uri_});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("version 999"), std::string::npos)
      << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("upgrade libtreaty"), std::string::npos)
      << refused.status().ToString();
  EXPECT_TRUE(Barrier::Open(BarrierOptions{.pg_uri = uri_, .migrate = false}).ok());
}

}  // namespace
}  // namespace treaty::testing
