// The engine's enums and their stored names: every value round-trips, an
// unknown name parses to nothing, and a driver restored from a log row with
// an unknown state reports an error instead of running (or crashing).

#include "engine/states.h"

#include <gtest/gtest.h>

#include "engine/saga.h"
#include "engine/two_phase.h"

namespace treaty {
namespace {

TEST(StatesTest, EveryValueRoundTripsThroughItsStoredName) {
  for (TxnKind k : {TxnKind::kSaga, TxnKind::k2pc}) EXPECT_EQ(ParseTxnKind(ToString(k)), k);
  for (int v = 0; v <= static_cast<int>(TxnState::kAborted); ++v) {
    const auto s = static_cast<TxnState>(v);
    EXPECT_EQ(ParseTxnState(ToString(s)), s) << ToString(s);
  }
  for (int v = 0; v <= static_cast<int>(BranchState::kAborted); ++v) {
    const auto s = static_cast<BranchState>(v);
    EXPECT_EQ(ParseBranchState(ToString(s)), s) << ToString(s);
  }
  for (int v = 0; v <= static_cast<int>(BranchOp::kAbort); ++v) {
    const auto op = static_cast<BranchOp>(v);
    EXPECT_EQ(ParseBranchOp(ToString(op)), op) << ToString(op);
  }
  EXPECT_STREQ(ToString(TxnState::kCommitting), states::kCommitting);
  EXPECT_STREQ(ToString(BranchState::kReadOnly), states::kReadOnly);
  EXPECT_STREQ(ToString(BranchOp::kCompensate), "compensate");
  EXPECT_STREQ(ToString(TxnKind::k2pc), states::k2pc);
}

TEST(StatesTest, UnknownNamesParseToNothing) {
  EXPECT_FALSE(ParseTxnState("committed"));
  EXPECT_FALSE(ParseTxnState(""));
  EXPECT_FALSE(ParseBranchState("PAUSED"));
  EXPECT_FALSE(ParseBranchOp("Commit"));
  EXPECT_FALSE(ParseTxnKind("tcc"));
}

TEST(StatesTest, RestoringAnUnknownStoredStateIsAnError) {
  EngineContext ctx;  // Restore only reads the row; nothing runs
  TxnDetail saga;
  saga.txn.gtid = "s1";
  saga.txn.kind = states::kSaga;
  saga.txn.state = "RUNNING";
  saga.txn.spec = R"({"steps":[{"name":"a","action":"http://x/a","compensate":"http://x/c"}]})";
  BranchRow step;
  step.gtid = "s1";
  step.name = "a";
  step.state = "WEIRD";
  saga.branches.push_back(step);
  auto s = Saga::Restore(&ctx, saga);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("WEIRD"), std::string::npos);
  saga.branches[0].state = "PENDING";
  saga.txn.state = "SLEEPING";
  EXPECT_FALSE(Saga::Restore(&ctx, saga).ok());
  saga.txn.state = "RUNNING";
  EXPECT_TRUE(Saga::Restore(&ctx, saga).ok());

  TxnDetail tp;
  tp.txn.gtid = "t1";
  tp.txn.kind = states::k2pc;
  tp.txn.state = "LIMBO";
  tp.txn.spec = R"({"timeout_ms":1000})";
  auto t = TwoPhase::Restore(&ctx, tp);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("LIMBO"), std::string::npos);
  tp.txn.state = "COMMITTING";
  BranchRow branch;
  branch.gtid = "t1";
  branch.name = "b";
  branch.state = "HALF";
  branch.spec = R"({"prepare":"http://x/p","commit":"http://x/c","abort":"http://x/a"})";
  tp.branches.push_back(branch);
  EXPECT_FALSE(TwoPhase::Restore(&ctx, tp).ok());
  tp.branches[0].state = "COMMITTING";
  EXPECT_TRUE(TwoPhase::Restore(&ctx, tp).ok());
}

}  // namespace
}  // namespace treaty
