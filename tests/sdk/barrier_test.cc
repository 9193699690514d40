// Barrier on a real PostgreSQL: duplicates, null compensation, hanging
// actions, and the same op delivered concurrently on two connections.

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "sdk/sdk_test_env.h"
#include "treaty/barrier.h"

namespace treaty::testing {
namespace {

using treaty::sdk::Barrier;
using treaty::sdk::BarrierEffect;
using treaty::sdk::BarrierOptions;
using treaty::sdk::CallContext;
using treaty::sdk::SqlTx;
using treaty::sdk::StatusCode;
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
  sdk::Result<BarrierEffect> Deliver(const std::string& gtid, const std::string& op,
                                     std::atomic<int>* ran = nullptr, int sleep_ms = 0,
                                     bool one_phase = false) {
    CallContext ctx{.gtid = gtid, .branch = "b1", .op = op, .one_phase = one_phase};
    return barrier_->Run(ctx, [&](SqlTx& tx) -> sdk::Status {
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
  auto r = barrier_->Run(ctx, [&](SqlTx& tx) -> sdk::Status {
    (void)tx.Exec("INSERT INTO ledger VALUES ('g4', 'b1', 'action')");
    return sdk::Status::BusinessFailure("insufficient funds");
  });
  EXPECT_EQ(r.status().code(), StatusCode::kBusinessFailure);
  EXPECT_EQ(Ledger("g4", "action"), 0);
  EXPECT_EQ(*Deliver("g4", "compensate"), BarrierEffect::kNullCompensation);
}

TEST_F(BarrierTest, ExceptionInBodyIsInternalAndRollsBack) {
  CallContext ctx{.gtid = "g5", .branch = "b1", .op = "action"};
  auto r = barrier_->Run(ctx, [&](SqlTx& tx) -> sdk::Status {
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
    sdk::Result<BarrierEffect> a = sdk::Status::Internal("unset"), b = a;
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
    sdk::Result<BarrierEffect> act = sdk::Status::Internal("unset"), comp = act;
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
    auto r = barrier_->Run(ctx, [&](SqlTx&) -> sdk::Status {
      ++ran;
      return sdk::Status::Ok();
    });
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  }
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(QueryInt(uri_, "SELECT count(*) FROM treaty_barrier"), 0);
}

}  // namespace
}  // namespace treaty::testing
