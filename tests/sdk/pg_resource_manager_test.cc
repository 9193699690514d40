// PgResourceManager on a real PostgreSQL: commit and abort paths, duplicate
// and late deliveries, votes, and recovery of in-doubt prepared transactions
// after a restart, resolved both ways by asking a (fake) coordinator.

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "sdk/sdk_test_env.h"
#include "support/mini_postgres.h"
#include "support/store_env.h"
#include "treaty/pg_resource_manager.h"

namespace treaty::testing {
namespace {

namespace sdk = treaty::sdk;
using sdk::CallContext;
using sdk::PgResourceManager;
using sdk::PgResourceManagerOptions;
using sdk::SqlTx;
using sdk::Vote;
using treaty::StatusCode;

// Work: payload "AMOUNT" or "AMOUNT@ID" adds AMOUNT to account ID (default
// 1); a negative balance votes no; amount 0 is a read-only vote.
treaty::Result<Vote> AddToAccount(SqlTx& tx, const CallContext& ctx) {
  std::string amount = ctx.payload, id = "1";
  if (auto at = amount.find('@'); at != std::string::npos) {
    id = amount.substr(at + 1);
    amount.resize(at);
  }
  if (amount == "0") return Vote::kReadOnly;
  auto r = tx.Exec(
      "UPDATE account SET balance = balance + $1::bigint WHERE id = $2::int RETURNING balance",
      {amount, id});
  if (!r.ok()) return r.status();
  if (r->rows.at(0).Int(0) < 0) return Vote::kNo;
  return Vote::kYes;
}

class PgResourceManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uri_ = FreshDatabase("pgrm");
    ASSERT_FALSE(uri_.empty());
    ExecSql(uri_,
            "CREATE TABLE account(id int PRIMARY KEY, balance bigint NOT NULL);"
            "INSERT INTO account VALUES (1, 100), (2, 0), (3, 0), (4, 0)");
    Open();
  }
  void TearDown() override {
    rm_.reset();
    // Never leave prepared transactions behind on the shared server.
    if (!uri_.empty()) RollbackAllPrepared(uri_);
  }
  void Open() {
    PgResourceManagerOptions o{
        .pg_uri = uri_, .coordinators = {coordinator_.url()}, .lock_timeout_ms = 2000};
    auto rm = PgResourceManager::Open(o, AddToAccount);
    ASSERT_TRUE(rm.ok()) << rm.status().ToString();
    rm_ = *rm;
  }
  static CallContext Ctx(const std::string& gtid, const std::string& op,
                         const std::string& amount = "10") {
    return CallContext{.gtid = gtid, .branch = "acct", .op = op, .payload = amount};
  }
  int64_t Balance() { return QueryInt(uri_, "SELECT balance FROM account WHERE id = 1"); }
  int64_t Prepared() {
    return QueryInt(uri_,
                    "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()");
  }

  FakeCoordinator coordinator_;
  std::string uri_;
  std::shared_ptr<PgResourceManager> rm_;
};

TEST_F(PgResourceManagerTest, PrepareThenCommit) {
  auto v = rm_->Prepare(Ctx("t1", "prepare"));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, Vote::kYes);
  EXPECT_EQ(Prepared(), 1);
  EXPECT_EQ(Balance(), 100);  // not visible before commit
  // A duplicate prepare while prepared answers yes and prepares nothing new.
  EXPECT_EQ(*rm_->Prepare(Ctx("t1", "prepare")), Vote::kYes);
  EXPECT_EQ(Prepared(), 1);
  ASSERT_TRUE(rm_->Commit(Ctx("t1", "commit")).ok());
  EXPECT_EQ(Balance(), 110);
  EXPECT_EQ(Prepared(), 0);
  // Redeliveries after the commit: commit is idempotent, prepare is not redone.
  EXPECT_TRUE(rm_->Commit(Ctx("t1", "commit")).ok());
  EXPECT_EQ(*rm_->Prepare(Ctx("t1", "prepare")), Vote::kYes);
  EXPECT_EQ(Prepared(), 0);
  EXPECT_EQ(Balance(), 110);
}

// A commit for a branch this database never prepared used to be
// answered "already committed" (OK; HTTP 200), so the coordinator reported
// COMMITTED although the work never happened. Now the barrier records
// decide: nothing recorded, or an abort's tombstone, is not acknowledged.
TEST_F(PgResourceManagerTest, CommitOfANeverPreparedBranchIsNotAcknowledged) {
  treaty::Status bare = rm_->Commit(Ctx("never", "commit"));
  EXPECT_EQ(bare.code(), StatusCode::kConflict) << bare.ToString();
  EXPECT_NE(bare.message().find("nothing was prepared"), std::string::npos) << bare.ToString();
  EXPECT_EQ(Balance(), 100);
  // Still not acknowledged when delivered again: it stays for an operator.
  EXPECT_EQ(rm_->Commit(Ctx("never", "commit")).code(), StatusCode::kConflict);

  // Prepared, then rolled back by an abort: a commit after it is refused too.
  ASSERT_EQ(*rm_->Prepare(Ctx("aborted", "prepare")), Vote::kYes);
  ASSERT_TRUE(rm_->Abort(Ctx("aborted", "abort")).ok());
  treaty::Status late = rm_->Commit(Ctx("aborted", "commit"));
  EXPECT_EQ(late.code(), StatusCode::kConflict) << late.ToString();
  EXPECT_NE(late.message().find("aborted"), std::string::npos) << late.ToString();
  EXPECT_EQ(Balance(), 100);

  // A read-only vote committed its (empty) transaction at once: a commit
  // after it is a redelivery of something committed.
  ASSERT_EQ(*rm_->Prepare(Ctx("ro", "prepare", "0")), Vote::kReadOnly);
  EXPECT_TRUE(rm_->Commit(Ctx("ro", "commit")).ok());
}

TEST_F(PgResourceManagerTest, OnePhaseCommitAppliesTheWorkInOneLocalTransaction) {
  CallContext one = Ctx("op1", "commit");
  one.one_phase = true;
  ASSERT_TRUE(rm_->Commit(one).ok());
  EXPECT_EQ(Balance(), 110);
  EXPECT_EQ(Prepared(), 0);
  EXPECT_EQ(QueryInt(uri_,
                     "SELECT count(*) FROM treaty_barrier WHERE gtid = 'op1' AND op = 'prepare' "
                     "AND reason = 'commit'"),
            1);
  // Redelivered (flagged or not): already committed, nothing redone; a late
  // prepare does not redo the work either.
  EXPECT_TRUE(rm_->Commit(one).ok());
  EXPECT_TRUE(rm_->Commit(Ctx("op1", "commit")).ok());
  EXPECT_EQ(*rm_->Prepare(Ctx("op1", "prepare")), Vote::kYes);
  EXPECT_EQ(Balance(), 110);
  EXPECT_EQ(Prepared(), 0);

  // The work votes no: the one-phase commit is refused (a business failure:
  // the coordinator aborts) and leaves nothing behind.
  CallContext no = Ctx("op2", "commit", "-1000");
  no.one_phase = true;
  EXPECT_EQ(rm_->Commit(no).code(), StatusCode::kBusinessFailure);
  EXPECT_EQ(Balance(), 110);
  ASSERT_TRUE(rm_->Abort(Ctx("op2", "abort")).ok());  // a null abort

  // After an abort, a one-phase commit is refused.
  CallContext after_abort = Ctx("op2", "commit", "5");
  after_abort.one_phase = true;
  EXPECT_EQ(rm_->Commit(after_abort).code(), StatusCode::kBusinessFailure);
  EXPECT_EQ(Balance(), 110);

  // A failure of the work is transient and rolls the barrier row back: a retry works.
  CallContext bad = Ctx("op3", "commit", "not-a-number");
  bad.one_phase = true;
  treaty::Status failed = rm_->Commit(bad);
  EXPECT_FALSE(failed.ok());
  EXPECT_NE(failed.code(), StatusCode::kBusinessFailure) << failed.ToString();
  bad.payload = "5";
  EXPECT_TRUE(rm_->Commit(bad).ok());
  EXPECT_EQ(Balance(), 115);
}

TEST_F(PgResourceManagerTest, PrepareThenAbort) {
  ASSERT_EQ(*rm_->Prepare(Ctx("t2", "prepare")), Vote::kYes);
  ASSERT_TRUE(rm_->Abort(Ctx("t2", "abort")).ok());
  EXPECT_EQ(Prepared(), 0);
  EXPECT_EQ(Balance(), 100);
  EXPECT_TRUE(rm_->Abort(Ctx("t2", "abort")).ok());  // idempotent
  // A late prepare after the abort is refused and does nothing.
  auto late = rm_->Prepare(Ctx("t2", "prepare"));
  EXPECT_EQ(late.status().code(), StatusCode::kBusinessFailure) << late.status().ToString();
  EXPECT_EQ(Prepared(), 0);
  EXPECT_EQ(Balance(), 100);
}

TEST_F(PgResourceManagerTest, AbortOfNeverPreparedBranchSucceedsAndBlocksPrepare) {
  ASSERT_TRUE(rm_->Abort(Ctx("t3", "abort")).ok());
  auto late = rm_->Prepare(Ctx("t3", "prepare"));
  EXPECT_EQ(late.status().code(), StatusCode::kBusinessFailure);
  EXPECT_EQ(Balance(), 100);
}

TEST_F(PgResourceManagerTest, VoteNoAndReadOnlyLeaveNothingPrepared) {
  auto no = rm_->Prepare(Ctx("t4", "prepare", "-1000"));
  ASSERT_TRUE(no.ok()) << no.status().ToString();
  EXPECT_EQ(*no, Vote::kNo);
  auto ro = rm_->Prepare(Ctx("t5", "prepare", "0"));
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  EXPECT_EQ(*ro, Vote::kReadOnly);
  EXPECT_EQ(Prepared(), 0);
  EXPECT_EQ(Balance(), 100);
  // A no vote is not remembered: the abort that follows is a null abort.
  EXPECT_TRUE(rm_->Abort(Ctx("t4", "abort")).ok());
}

TEST_F(PgResourceManagerTest, BadSqlIsTransientAndRollsBack) {
  auto v = rm_->Prepare(Ctx("t6", "prepare", "not-a-number"));
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().code(), StatusCode::kBusinessFailure);
  EXPECT_EQ(Prepared(), 0);
  // The barrier row was rolled back with it: a retry works.
  EXPECT_EQ(*rm_->Prepare(Ctx("t6", "prepare", "5")), Vote::kYes);
  EXPECT_TRUE(rm_->Commit(Ctx("t6", "commit")).ok());
  EXPECT_EQ(Balance(), 105);
}

TEST_F(PgResourceManagerTest, GidCarriesGtidAndBranch) {
  auto gid = PgResourceManager::Gid("treaty", "a:b", "acct");
  ASSERT_TRUE(gid.ok());
  EXPECT_EQ(*gid, "treaty:3:a:b:acct");
  EXPECT_FALSE(PgResourceManager::Gid("treaty", std::string(300, 'x'), "acct").ok());
  // The gtid and branch must be identifiers before they reach SQL.
  EXPECT_FALSE(PgResourceManager::Gid("treaty", "\xff", "acct").ok());
  EXPECT_FALSE(PgResourceManager::Gid("treaty", "g1", "a'; --").ok());
  auto v = rm_->Prepare(Ctx("bad gtid", "prepare", "5"));
  EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Prepared(), 0);
}

TEST_F(PgResourceManagerTest, RestartResolvesInDoubtTransactionsBothWays) {
  for (auto [gtid, amount] : {std::pair{"commit-me", "1"},
                              {"abort-me", "20@2"},
                              {"unknown-to-coordinator", "300@3"},
                              {"undecided", "4000@4"}}) {
    auto v = rm_->Prepare(Ctx(gtid, "prepare", amount));
    ASSERT_TRUE(v.ok()) << gtid << ": " << v.status().ToString();
    ASSERT_EQ(*v, Vote::kYes);
  }
  EXPECT_EQ(Prepared(), 4);
  // The participant dies with four branches in doubt, and so does its database.
  rm_.reset();
  MiniPostgres* pg = IntegrationPostgres();
  ASSERT_TRUE(pg->Restart().ok());
  EXPECT_EQ(Prepared(), 4);  // prepared transactions survive a restart

  coordinator_.SetState("commit-me", "COMMITTED");
  coordinator_.SetState("abort-me", "ABORTING");
  coordinator_.SetState("undecided", "PREPARING");
  Open();  // recovers
  const auto& report = rm_->open_recovery();
  EXPECT_EQ(report.committed, 1);
  EXPECT_EQ(report.rolled_back, 2);  // ABORTING, and 404 = presumed abort
  EXPECT_EQ(report.left_in_doubt, 1);
  EXPECT_TRUE(report.errors.empty());
  EXPECT_EQ(Prepared(), 1);
  EXPECT_EQ(Balance(), 101);
  EXPECT_EQ(QueryInt(uri_, "SELECT sum(balance) FROM account WHERE id IN (2, 3, 4)"), 0);

  // The coordinator then decides: a later recovery pass (or its commit) finishes it.
  coordinator_.SetState("undecided", "COMMITTING");
  auto again = rm_->Recover();
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->committed, 1);
  EXPECT_EQ(Prepared(), 0);
  EXPECT_EQ(QueryInt(uri_, "SELECT balance FROM account WHERE id = 4"), 4000);
  // The coordinator's own commit, arriving afterwards, is a no-op.
  EXPECT_TRUE(rm_->Commit(Ctx("undecided", "commit")).ok());
  EXPECT_EQ(QueryInt(uri_, "SELECT sum(balance) FROM account"), 4101);
}

TEST_F(PgResourceManagerTest, UnreachableCoordinatorLeavesTransactionsInDoubt) {
  ASSERT_EQ(*rm_->Prepare(Ctx("t7", "prepare")), Vote::kYes);
  rm_.reset();
  PgResourceManagerOptions o{.pg_uri = uri_, .coordinators = {"http://127.0.0.1:1"}};
  auto rm = PgResourceManager::Open(o, AddToAccount);
  ASSERT_TRUE(rm.ok()) << rm.status().ToString();
  EXPECT_EQ((*rm)->open_recovery().left_in_doubt, 1);
  EXPECT_EQ((*rm)->open_recovery().errors.size(), 1u);
  EXPECT_EQ(Prepared(), 1);  // never guessed
  EXPECT_TRUE((*rm)->Abort(Ctx("t7", "abort")).ok());
}

// A prepare that fails half-way through its transaction block (here: the
// barrier insert times out on a lock held elsewhere) is Unavailable and
// leaves its pooled connection outside any block: the next call on that same
// connection (a pool of one) works.
TEST_F(PgResourceManagerTest, FailureInsideATransactionBlockLeavesTheConnectionUsable) {
  PgResourceManagerOptions o{.pg_uri = uri_,
                             .coordinators = {coordinator_.url()},
                             .max_connections = 1,
                             .lock_timeout_ms = 200};
  auto rm = PgResourceManager::Open(o, AddToAccount);
  ASSERT_TRUE(rm.ok()) << rm.status().ToString();
  {
    pqxx::connection other(uri_);
    pqxx::work hold(other);
    hold.exec("LOCK TABLE treaty_barrier IN ACCESS EXCLUSIVE MODE");
    auto v = (*rm)->Prepare(Ctx("t8", "prepare"));
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), StatusCode::kUnavailable) << v.status().ToString();
  }
  auto v = (*rm)->Prepare(Ctx("t8", "prepare"));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, Vote::kYes);
  EXPECT_TRUE((*rm)->Commit(Ctx("t8", "commit")).ok());
  EXPECT_EQ(Balance(), 110);
}

// Open refuses a PostgreSQL with max_prepared_transactions = 0; one restarted
// with it at 0 after Open refuses PREPARE TRANSACTION with SQLSTATE 55000: a
// configuration error (InvalidArgument naming the setting), told apart by the
// SQLSTATE, not by the server's message text (which a server with another
// lc_messages words differently).
TEST(PgResourceManagerConfigTest, PrepareOnAServerWithoutPreparedTransactionsIsAConfigError) {
  MiniPostgres pg;
  ASSERT_TRUE(pg.Start().ok());
  ASSERT_TRUE(pg.CreateDatabase("nopre").ok());
  const std::string uri = pg.Uri("nopre");
  ExecSql(uri,
          "CREATE TABLE account(id int PRIMARY KEY, balance bigint NOT NULL);"
          "INSERT INTO account VALUES (1, 100)");
  FakeCoordinator coordinator;
  auto rm =
      PgResourceManager::Open({.pg_uri = uri, .coordinators = {coordinator.url()}}, AddToAccount);
  ASSERT_TRUE(rm.ok()) << rm.status().ToString();
  pg.set_settings({"max_prepared_transactions=0"});
  ASSERT_TRUE(pg.Restart().ok());
  auto reopened =
      PgResourceManager::Open({.pg_uri = uri, .coordinators = {coordinator.url()}}, AddToAccount);
  ASSERT_FALSE(reopened.ok());
  EXPECT_NE(reopened.status().message().find("max_prepared_transactions is 0"), std::string::npos)
      << reopened.status().ToString();
  const CallContext ctx{.gtid = "np1", .branch = "acct", .op = "prepare", .payload = "10"};
  auto v = (*rm)->Prepare(ctx);
  // The restart broke the pooled session: that first answer may be Unavailable.
  for (int i = 0; i < 3 && !v.ok() && v.status().code() == StatusCode::kUnavailable; ++i) {
    v = (*rm)->Prepare(ctx);
  }
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument) << v.status().ToString();
  EXPECT_NE(v.status().message().find("max_prepared_transactions is 0"), std::string::npos)
      << v.status().ToString();
  // Nothing was applied, and the session is usable afterwards.
  EXPECT_EQ(QueryInt(uri, "SELECT balance FROM account WHERE id = 1"), 100);
  EXPECT_TRUE((*rm)->Abort(CallContext{.gtid = "np1", .branch = "acct", .op = "abort"}).ok());
}

}  // namespace
}  // namespace treaty::testing
