// Unit tests of the 2PC state machine with a fake clock, fake participants
// and an in-memory log.

#include "engine/two_phase.h"

#include <gtest/gtest.h>

#include "engine/engine_fakes.h"
#include "engine/states.h"

namespace treaty {
namespace {

using testing::FakeCaller;
using testing::FakeLog;
using testing::FakeTaskRunner;
using Outcomes = std::vector<CallOutcome>;
constexpr auto kOk = CallOutcome::kOk;
constexpr auto kNo = CallOutcome::kBusinessFailure;
constexpr auto kDown = CallOutcome::kTransient;

class TwoPhaseTest : public testing::DriverTest {
 protected:
  TwoPhaseTest() : DriverTest(7) {}

  // Begins `gtid` and enlists `names`, each declaring one_phase support when
  // `one_phase`; returns the driver. `legacy_one_phase` stands for a spec an
  // older release logged with the transaction-wide one_phase flag.
  std::shared_ptr<TwoPhase> Begin(const std::string& gtid, std::vector<std::string> names,
                                  bool one_phase = false, int64_t timeout_ms = 60000,
                                  bool legacy_one_phase = false) {
    TwoPhaseSpec spec;
    spec.gtid = gtid;
    spec.legacy_one_phase = legacy_one_phase;
    spec.timeout_ms = timeout_ms;
    spec.prepare_retry = {3, 50, 200};
    auto t = OnEngine([&] { return TwoPhase::Create(&ctx_, spec); });
    alive_.push_back(t);
    OnEngine([&] { t->Start(); });
    runner_.Advance(10);
    for (const auto& n : names) {
      Status got = Status::Internal("no answer");
      BranchSpec b = Branch(n);
      b.one_phase = one_phase;
      OnEngine([&] { t->Enlist(std::move(b), 16, [&](Status s) { got = s; }); });
      runner_.Advance(10);
      EXPECT_TRUE(got.ok()) << got.ToString();
    }
    return t;
  }

  static BranchSpec Branch(const std::string& n) {
    BranchSpec b;
    b.name = n;
    b.prepare = "http://svc/" + n + "/prepare";
    b.commit = "http://svc/" + n + "/commit";
    b.abort = "http://svc/" + n + "/abort";
    b.payload = "{\"n\":1}";
    return b;
  }

  // Requests commit; returns the decision the caller was told.
  std::string Commit(const std::shared_ptr<TwoPhase>& t) {
    std::string decision = "(no answer)";
    OnEngine([&] {
      t->RequestCommit(
          [&](Result<TxnState> r) { decision = r.ok() ? ToString(*r) : r.status().ToString(); });
    });
    runner_.RunUntil([&] { return decision != "(no answer)"; }, 60000);
    return decision;
  }

  std::string Finish(const std::string& gtid, int64_t max_ms = 600000) {
    runner_.RunUntil([&] { return recorder_.finished.count(gtid) > 0; }, max_ms);
    return recorder_.finished.count(gtid) ? recorder_.finished[gtid] : "(not finished)";
  }

  std::string BranchState(const std::string& gtid, const std::string& name) {
    const BranchRow* b = log_.Branch(gtid, name);
    return b ? b->state : "(none)";
  }

  std::vector<std::shared_ptr<TwoPhase>> alive_;
};

TEST_F(TwoPhaseTest, AllYesCommitsAfterDurableDecision) {
  auto t = Begin("g1", {"a", "b", "c"});
  // Every commit goes out only once COMMITTING is in the log.
  caller_.on_call = [&](const ParticipantRequest& r) {
    if (r.op == "commit") {
      EXPECT_EQ(log_.txns["g1"].txn.state, states::kCommitting);
      EXPECT_FALSE(r.one_phase);
    }
    if (r.op == "prepare") {
      EXPECT_EQ(log_.txns["g1"].txn.state, states::kPreparing);
    }
  };
  EXPECT_EQ(Commit(t), states::kCommitting);
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  for (const char* n : {"a", "b", "c"}) {
    EXPECT_EQ(caller_.Count("g1", n, "prepare"), 1);
    EXPECT_EQ(caller_.Count("g1", n, "commit"), 1);
    EXPECT_EQ(caller_.Count("g1", n, "abort"), 0);
    EXPECT_EQ(BranchState("g1", n), states::kCommitted);
  }
}

TEST_F(TwoPhaseTest, PreparesGoOutInParallel) {
  auto t = Begin("par", {"a", "b", "c"});
  caller_.Set("a", "prepare", {{kOk}, 500});
  caller_.Set("b", "prepare", {{kOk}, 500});
  caller_.Set("c", "prepare", {{kOk}, 500});
  OnEngine([&] { t->RequestCommit([](Result<TxnState>) {}); });
  runner_.Advance(100);
  int prepares = 0;
  for (const auto& c : caller_.calls) prepares += c.op == "prepare";
  EXPECT_EQ(prepares, 3);
  EXPECT_EQ(Finish("par"), states::kCommitted);
}

TEST_F(TwoPhaseTest, OneNoVoteAbortsEveryBranch) {
  auto t = Begin("g2", {"a", "b", "c"});
  caller_.Set("b", "prepare", {{kNo}});
  EXPECT_EQ(Commit(t), states::kAborting);
  EXPECT_EQ(Finish("g2"), states::kAborted);
  for (const char* n : {"a", "b", "c"}) {
    EXPECT_EQ(caller_.Count("g2", n, "commit"), 0);
    EXPECT_EQ(caller_.Count("g2", n, "abort"), 1) << n;
    EXPECT_EQ(BranchState("g2", n), states::kAborted);
  }
}

TEST_F(TwoPhaseTest, TransientPrepareIsRetriedThenCountsAsNo) {
  auto t = Begin("g3", {"a", "b"});
  caller_.Set("a", "prepare", {{kDown, kOk}});
  caller_.Set("b", "prepare", {{kDown}});
  Commit(t);
  EXPECT_EQ(Finish("g3"), states::kAborted);
  EXPECT_EQ(caller_.Count("g3", "a", "prepare"), 2);
  EXPECT_EQ(caller_.Count("g3", "b", "prepare"), 3);  // max_attempts
  EXPECT_EQ(caller_.Count("g3", "a", "abort"), 1);
  EXPECT_EQ(caller_.Count("g3", "b", "abort"), 1);
}

TEST_F(TwoPhaseTest, CommitIsRetriedUntilAcknowledgedAndFlagsAttention) {
  auto t = Begin("g4", {"a", "b"});
  caller_.Set("b", "commit", {{kDown, kDown, kDown, kDown, kOk}});
  EXPECT_EQ(Commit(t), states::kCommitting);
  EXPECT_EQ(Finish("g4"), states::kCommitted);
  EXPECT_EQ(caller_.Count("g4", "b", "commit"), 5);
  EXPECT_EQ(caller_.Count("g4", "a", "commit"), 1);
  bool attention = false;
  for (const auto& e : log_.txns["g4"].events) attention = attention || e.type == "attention";
  EXPECT_TRUE(attention);
  EXPECT_FALSE(log_.txns["g4"].txn.needs_attention);  // cleared when it finished
}

TEST_F(TwoPhaseTest, ReadOnlyVotesSkipPhaseTwo) {
  auto t = Begin("g5", {"a", "ro"});
  caller_.Set("ro", "prepare", {{kOk}, 5, true});
  Commit(t);
  EXPECT_EQ(Finish("g5"), states::kCommitted);
  EXPECT_EQ(caller_.Count("g5", "ro", "commit"), 0);
  EXPECT_EQ(BranchState("g5", "ro"), states::kReadOnly);
  EXPECT_EQ(caller_.Count("g5", "a", "commit"), 1);
}

TEST_F(TwoPhaseTest, AllReadOnlyCommitsWithoutPhaseTwo) {
  auto t = Begin("g6", {"r1", "r2"});
  caller_.Set("r1", "prepare", {{kOk}, 5, true});
  caller_.Set("r2", "prepare", {{kOk}, 5, true});
  EXPECT_EQ(Commit(t), states::kCommitted);
  EXPECT_EQ(caller_.Sequence("g6").size(), 2u);
}

// One-phase commit must be asked for: a single branch that did not declare
// it is prepared first, and its commit is an ordinary (two-phase) commit.
TEST_F(TwoPhaseTest, SingleBranchWithoutTheFlagPreparesThenCommits) {
  auto t = Begin("g9", {"only"});
  caller_.on_call = [&](const ParticipantRequest& r) { EXPECT_FALSE(r.one_phase) << r.op; };
  EXPECT_EQ(Commit(t), states::kCommitting);
  EXPECT_EQ(Finish("g9"), states::kCommitted);
  EXPECT_EQ(caller_.Sequence("g9"), (std::vector<std::string>{"only/prepare", "only/commit"}));
}

TEST_F(TwoPhaseTest, SingleBranchThatDeclaredOnePhaseCommitsInOnePhase) {
  auto t = Begin("g7", {"only"}, /*one_phase=*/true);
  caller_.on_call = [&](const ParticipantRequest& r) {
    EXPECT_EQ(r.op, "commit");
    EXPECT_TRUE(r.one_phase);
    EXPECT_EQ(log_.txns["g7"].txn.state, states::kCommitting);
  };
  Commit(t);
  EXPECT_EQ(Finish("g7"), states::kCommitted);
  EXPECT_EQ(caller_.Sequence("g7"), std::vector<std::string>{"only/commit"});
}

TEST_F(TwoPhaseTest, TwoBranchesThatDeclaredOnePhaseRunFullTwoPhase) {
  auto t = Begin("g17", {"a", "b"}, /*one_phase=*/true);
  caller_.on_call = [&](const ParticipantRequest& r) { EXPECT_FALSE(r.one_phase) << r.op; };
  EXPECT_EQ(Commit(t), states::kCommitting);
  EXPECT_EQ(Finish("g17"), states::kCommitted);
  for (const char* n : {"a", "b"}) {
    EXPECT_EQ(caller_.Count("g17", n, "prepare"), 1);
    EXPECT_EQ(caller_.Count("g17", n, "commit"), 1);
  }
}

TEST_F(TwoPhaseTest, OnePhaseRefusalAborts) {
  auto t = Begin("g8", {"only"}, /*one_phase=*/true);
  caller_.Set("only", "commit", {{kNo}});
  Commit(t);
  EXPECT_EQ(Finish("g8"), states::kAborted);
  EXPECT_EQ(caller_.Sequence("g8"), std::vector<std::string>{"only/commit"});
}

TEST_F(TwoPhaseTest, NoBranchesCommitsAtOnce) {
  auto t = Begin("g10", {});
  EXPECT_EQ(Commit(t), states::kCommitted);
}

TEST_F(TwoPhaseTest, DeadlineAbortsActive) {
  auto t = Begin("g11", {"a", "b"}, false, 1000);
  EXPECT_EQ(Finish("g11", 5000), states::kAborted);
  EXPECT_EQ(caller_.Count("g11", "a", "abort"), 1);
  EXPECT_EQ(caller_.Count("g11", "b", "abort"), 1);
  EXPECT_EQ(caller_.Count("g11", "a", "prepare"), 0);
}

TEST_F(TwoPhaseTest, DeadlineAbortsPreparingAfterInFlightPrepareReturns) {
  auto t = Begin("g12", {"a", "slow"}, false, 1000);
  caller_.Set("slow", "prepare", {{kOk}, 3000});
  caller_.on_call = [&](const ParticipantRequest& r) {
    if (r.branch == "slow" && r.op == "abort") {
      EXPECT_EQ(caller_.Count("g12", "slow", "prepare"), 1);
      EXPECT_GE(runner_.NowMs() - caller_.calls.front().at, 3000);  // after prepare answered
    }
  };
  runner_.Advance(500);
  OnEngine([&] { t->RequestCommit([](Result<TxnState>) {}); });
  EXPECT_EQ(Finish("g12"), states::kAborted);
  EXPECT_EQ(caller_.Count("g12", "slow", "abort"), 1);
  EXPECT_EQ(caller_.Count("g12", "a", "commit"), 0);
}

TEST_F(TwoPhaseTest, EnlistAfterCommitStartedIsConflict) {
  auto t = Begin("g13", {"a", "b"});
  OnEngine([&] { t->RequestCommit([](Result<TxnState>) {}); });
  Status got;
  OnEngine([&] { t->Enlist(Branch("late"), 16, [&](Status s) { got = s; }); });
  EXPECT_EQ(got.code(), StatusCode::kConflict);
  EXPECT_NE(got.message().find("PREPARING"), std::string::npos) << got.message();
}

TEST_F(TwoPhaseTest, EnlistIsIdempotentAndRejectsADifferentSpec) {
  auto t = Begin("g14", {"a"});
  Status same = Status::Internal("none"), diff;
  OnEngine([&] { t->Enlist(Branch("a"), 16, [&](Status s) { same = s; }); });
  runner_.Advance(10);
  EXPECT_TRUE(same.ok());
  BranchSpec other = Branch("a");
  other.commit = "http://elsewhere/commit";
  OnEngine([&] { t->Enlist(other, 16, [&](Status s) { diff = s; }); });
  EXPECT_EQ(diff.code(), StatusCode::kConflict);
  EXPECT_EQ(log_.txns["g14"].branches.size(), 1u);
  Status full;
  OnEngine([&] { t->Enlist(Branch("b"), 1, [&](Status s) { full = s; }); });
  EXPECT_EQ(full.code(), StatusCode::kInvalidArgument);
}

TEST_F(TwoPhaseTest, AbortIsRefusedOnceCommitting) {
  auto t = Begin("g15", {"a", "b"});
  caller_.Set("a", "commit", {{kDown}});
  Commit(t);
  EXPECT_EQ(OnEngine([&] {
              return t->ForceAbort({"tester", "op"});
            }).code(),
            StatusCode::kConflict);
  Status got;
  OnEngine([&] { t->RequestAbort("client", [&](Result<TxnState> r) { got = r.status(); }); });
  EXPECT_EQ(got.code(), StatusCode::kConflict);
}

TEST_F(TwoPhaseTest, ClientAbortAbortsEnlistedBranches) {
  auto t = Begin("g16", {"a", "b"});
  std::string decision;
  OnEngine(
      [&] { t->RequestAbort("client", [&](Result<TxnState> r) { decision = ToString(*r); }); });
  runner_.Advance(10);
  EXPECT_EQ(decision, states::kAborting);
  EXPECT_EQ(Finish("g16"), states::kAborted);
  EXPECT_EQ(caller_.Count("g16", "a", "abort"), 1);
  EXPECT_EQ(caller_.Count("g16", "a", "prepare"), 0);
}

// Recovery: runs the log's row through Restore + Start as a new coordinator.
class TwoPhaseRecoveryTest : public TwoPhaseTest {
 protected:
  std::string Recover(const std::string& gtid) {
    for (auto& d : alive_) OnEngine([&] { d->Drop(Status::LostOwnership("crash")); });
    log_.SetOwner(gtid, "coord-2");
    ctx_.owner = "coord-2";
    auto t = TwoPhase::Restore(&ctx_, log_.txns[gtid]);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    alive_.push_back(*t);
    OnEngine([&] { (*t)->Start(); });
    return Finish(gtid);
  }
};

TEST_F(TwoPhaseRecoveryTest, PreparingIsPresumedAborted) {
  auto t = Begin("r1", {"a", "b"});
  caller_.Set("b", "prepare", {{kOk}, 100000});  // never answers before the crash
  OnEngine([&] { t->RequestCommit([](Result<TxnState>) {}); });
  runner_.Advance(100);  // a's vote is written behind (nothing waits for it)
  ASSERT_EQ(BranchState("r1", "a"), states::kPrepared);
  ASSERT_EQ(log_.txns["r1"].txn.state, states::kPreparing);
  EXPECT_EQ(Recover("r1"), states::kAborted);
  EXPECT_EQ(caller_.Count("r1", "a", "abort"), 1);
  EXPECT_EQ(caller_.Count("r1", "b", "abort"), 1);
  EXPECT_EQ(caller_.Count("r1", "a", "commit"), 0);
}

TEST_F(TwoPhaseRecoveryTest, ActiveIsPresumedAborted) {
  Begin("r2", {"a"});
  EXPECT_EQ(Recover("r2"), states::kAborted);
  EXPECT_EQ(caller_.Count("r2", "a", "abort"), 1);
}

TEST_F(TwoPhaseRecoveryTest, CommittingCommitsEveryBranchAgain) {
  auto t = Begin("r3", {"a", "b"});
  caller_.Set("a", "commit", {{kDown}});
  caller_.Set("b", "commit", {{kDown}});
  Commit(t);
  ASSERT_EQ(log_.txns["r3"].txn.state, states::kCommitting);
  caller_.Set("a", "commit", {{kOk}});
  caller_.Set("b", "commit", {{kOk}});
  EXPECT_EQ(Recover("r3"), states::kCommitted);
  EXPECT_EQ(caller_.Count("r3", "a", "abort"), 0);
  EXPECT_EQ(BranchState("r3", "a"), states::kCommitted);
  EXPECT_EQ(BranchState("r3", "b"), states::kCommitted);
}

TEST_F(TwoPhaseRecoveryTest, OnePhaseCommittingResendsTheOnePhaseCommit) {
  auto t = Begin("r4", {"only"}, /*one_phase=*/true);
  caller_.Set("only", "commit", {{kDown}});
  Commit(t);
  caller_.Set("only", "commit", {{kOk}});
  caller_.on_call = [&](const ParticipantRequest& r) { EXPECT_TRUE(r.one_phase); };
  EXPECT_EQ(Recover("r4"), states::kCommitted);
  EXPECT_EQ(caller_.Count("r4", "only", "prepare"), 0);
}

// A one-phase commit an older release started (transaction-wide one_phase in
// the stored spec, branch without the flag) is finished the same way.
TEST_F(TwoPhaseRecoveryTest, LegacyStoredOnePhaseIsHonoured) {
  auto t = Begin("r5", {"only"}, /*one_phase=*/false, 60000, /*legacy_one_phase=*/true);
  caller_.Set("only", "commit", {{kDown}});
  Commit(t);
  ASSERT_EQ(log_.txns["r5"].txn.state, states::kCommitting);
  ASSERT_EQ(nlohmann::json::parse(log_.txns["r5"].txn.spec).value("one_phase", false), true);
  caller_.Set("only", "commit", {{kOk}});
  caller_.on_call = [&](const ParticipantRequest& r) { EXPECT_TRUE(r.one_phase); };
  EXPECT_EQ(Recover("r5"), states::kCommitted);
  EXPECT_EQ(caller_.Count("r5", "only", "prepare"), 0);
}

TEST_F(TwoPhaseTest, LostOwnershipStopsAndFailsPendingAnswers) {
  auto t = Begin("f1", {"a"});
  log_.SetOwner("f1", "coord-9");
  Status got = Status::Internal("none");
  OnEngine([&] { t->Enlist(Branch("b"), 16, [&](Status s) { got = s; }); });
  runner_.Advance(10);
  EXPECT_EQ(got.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(t->dropped());
}

}  // namespace
}  // namespace treaty
