// Operator actions on the drivers (engine/txn_service.h "Operator actions"):
// every action in each state, allowed and refused; pause holds every
// participant call until resume (and survives a restart); resolve by hand
// lets a stuck transaction finish, and the late answer of a resolved branch
// is ignored.

#include <gtest/gtest.h>

#include "engine/engine_fakes.h"
#include "engine/saga.h"
#include "engine/states.h"
#include "engine/two_phase.h"

namespace treaty {
namespace {

constexpr auto kOk = CallOutcome::kOk;
constexpr auto kNo = CallOutcome::kBusinessFailure;
constexpr auto kDown = CallOutcome::kTransient;

const OperatorRequest kWho{"alice@10.0.0.1:4242", "participant maintenance"};

class OperatorTest : public testing::DriverTest {
 protected:
  OperatorTest() : DriverTest(5) {}

  // Steps: 3 attempts, 500 ms apart; 2PC prepares: 3 attempts, 50..200 ms apart.
  static SagaSpec SagaOf(const std::string& gtid, std::vector<std::string> names,
                         int64_t timeout_ms = 0) {
    return SagaSpecOf(gtid, names, {3, 500, 500}, timeout_ms);
  }
  std::shared_ptr<TwoPhase> Begin(const std::string& gtid, std::vector<std::string> names,
                                  int64_t timeout_ms = 600000) {
    return Begin2pc(gtid, names, {3, 50, 200}, timeout_ms);
  }

  // The (durable) history holds an "operator" event containing every `part`.
  bool HasOperatorEvent(const std::string& gtid, std::vector<std::string> parts) {
    for (const auto& e : log_.txns[gtid].events) {
      if (e.type != "operator") continue;
      bool all = true;
      for (const auto& p : parts) all = all && e.detail.find(p) != std::string::npos;
      if (all) return true;
    }
    return false;
  }

  int Calls(const std::string& gtid) const {
    int n = 0;
    for (const auto& c : caller_.calls) n += c.gtid == gtid;
    return n;
  }

  // The next coordinator restores `gtid` from the log (the old driver dropped).
  template <typename Driver>
  std::shared_ptr<Driver> Restart(const std::string& gtid) {
    for (auto& d : drivers_) OnEngine([&] { d->Drop(Status::Internal("kill -9")); });
    ctx_.owner = "coord-" + std::to_string(++generation_);
    log_.SetOwner(gtid, ctx_.owner);
    auto restored = Driver::Restore(&ctx_, log_.txns[gtid]);
    EXPECT_TRUE(restored.ok()) << restored.status().ToString();
    if (!restored.ok()) return nullptr;
    drivers_.push_back(*restored);
    OnEngine([&] { (*restored)->Start(); });
    return *restored;
  }

  int generation_ = 1;
};

// ---- Pause / resume ----

TEST_F(OperatorTest, PausedSagaSendsNoCallUntilResumedThenSendsTheHeldOnes) {
  caller_.Set("a", "action", {{kOk}, 1000});
  auto saga = StartSaga(SagaOf("p1", {"a", "b", "c"}));
  runner_.RunUntil([&] { return caller_.Count("p1", "a", "action") == 1; });
  ASSERT_TRUE(OnEngine([&] { return saga->Pause(kWho); }).ok());
  EXPECT_TRUE(saga->paused());
  EXPECT_EQ(OnEngine([&] { return saga->Pause(kWho); }).code(), StatusCode::kConflict)
      << "already paused";
  runner_.Advance(60000);
  // The call in flight finished and was logged; nothing else went out.
  EXPECT_EQ(log_.Branch("p1", "a")->state, states::kSucceeded);
  EXPECT_EQ(Calls("p1"), 1);
  EXPECT_TRUE(log_.txns["p1"].txn.paused);
  EXPECT_EQ(log_.txns["p1"].txn.state, states::kRunning);
  EXPECT_TRUE(HasOperatorEvent("p1", {"pause by alice@10.0.0.1:4242: participant maintenance"}));

  ASSERT_TRUE(OnEngine([&] { return saga->Resume({"bob", ""}); }).ok());
  EXPECT_EQ(Finish("p1"), states::kCommitted);
  EXPECT_FALSE(log_.txns["p1"].txn.paused);
  EXPECT_EQ(caller_.Sequence("p1"), (std::vector<std::string>{"a/action", "b/action", "c/action"}));
  EXPECT_TRUE(HasOperatorEvent("p1", {"resume by bob: no reason given"}));
  EXPECT_EQ(OnEngine([&] { return saga->Resume(kWho); }).code(), StatusCode::kConflict)
      << "not paused";
  EXPECT_EQ(OnEngine([&] { return saga->Pause(kWho); }).code(), StatusCode::kConflict)
      << "finished";
}

TEST_F(OperatorTest, RetryTimerFiringWhilePausedIsHeldAndLoggedAsPlannedUntilResume) {
  caller_.Set("a", "action", {{kDown, kOk}});
  int sent_checked = 0;
  caller_.on_call = [&](const ParticipantRequest& r) {
    // Every call goes out logged as sent (no planned attempt time).
    EXPECT_EQ(log_.Branch(r.gtid, r.branch)->next_attempt_at_ms, 0) << r.branch;
    ++sent_checked;
  };
  auto saga = StartSaga(SagaOf("p2", {"a"}));
  runner_.RunUntil([&] { return log_.Branch("p2", "a")->next_attempt_at_ms > 0; });
  ASSERT_TRUE(OnEngine([&] { return saga->Pause(kWho); }).ok());
  runner_.Advance(5000);  // well past the retry's backoff (<= 500 ms)
  EXPECT_EQ(caller_.Count("p2", "a", "action"), 1);
  EXPECT_GT(log_.Branch("p2", "a")->next_attempt_at_ms, 0) << "still planned, not sent";
  // An operator retry while paused sends nothing either.
  ASSERT_TRUE(OnEngine([&] { return saga->RetryNow(kWho); }).ok());
  runner_.Advance(1000);
  EXPECT_EQ(caller_.Count("p2", "a", "action"), 1);
  ASSERT_TRUE(OnEngine([&] { return saga->Resume(kWho); }).ok());
  EXPECT_EQ(Finish("p2"), states::kCommitted);
  EXPECT_EQ(caller_.Count("p2", "a", "action"), 2);
  EXPECT_EQ(log_.Branch("p2", "a")->attempts, 2);
  EXPECT_EQ(sent_checked, 2);
}

TEST_F(OperatorTest, PausedSagaPastItsDeadlineCompensatesOnlyAfterResume) {
  caller_.Set("b", "action", {{kOk}, 2000});
  auto saga = StartSaga(SagaOf("p3", {"a", "b", "c"}, 10000));
  runner_.RunUntil([&] { return caller_.Count("p3", "b", "action") == 1; });
  ASSERT_TRUE(OnEngine([&] { return saga->Pause(kWho); }).ok());
  runner_.Advance(30000);
  EXPECT_EQ(log_.txns["p3"].txn.state, states::kCompensating) << "the deadline still decides";
  EXPECT_EQ(Calls("p3"), 2) << "no compensation goes out while paused";
  EXPECT_EQ(log_.Branch("p3", "c")->state, states::kPending);
  ASSERT_TRUE(OnEngine([&] { return saga->Resume(kWho); }).ok());
  EXPECT_EQ(Finish("p3"), states::kAborted);
  EXPECT_EQ(caller_.Sequence("p3"),
            (std::vector<std::string>{"a/action", "b/action", "b/compensate", "a/compensate"}));
}

TEST_F(OperatorTest, PausedTwoPhaseHoldsPreparesAndItsDeadlineAbortsAfterResume) {
  auto t = Begin("p4", {"a", "b"});
  ASSERT_TRUE(OnEngine([&] { return t->Pause(kWho); }).ok());
  RequestCommit(t);
  runner_.Advance(5000);
  EXPECT_EQ(log_.txns["p4"].txn.state, states::kPreparing);
  EXPECT_EQ(Calls("p4"), 0);
  ASSERT_TRUE(OnEngine([&] { return t->Resume(kWho); }).ok());
  EXPECT_EQ(Finish("p4"), states::kCommitted);
  EXPECT_EQ(caller_.Count("p4", "a", "prepare"), 1);
  EXPECT_EQ(caller_.Count("p4", "b", "commit"), 1);

  auto late = Begin("p5", {"a"}, 1000);
  ASSERT_TRUE(OnEngine([&] { return late->Pause(kWho); }).ok());
  RequestCommit(late);
  runner_.Advance(5000);
  EXPECT_EQ(log_.txns["p5"].txn.state, states::kAborting) << "the deadline decided abort";
  EXPECT_EQ(Calls("p5"), 0);
  ASSERT_TRUE(OnEngine([&] { return late->Resume(kWho); }).ok());
  EXPECT_EQ(Finish("p5"), states::kAborted);
  EXPECT_EQ(caller_.Count("p5", "a", "prepare"), 0) << "the held prepare was superseded";
  EXPECT_EQ(caller_.Count("p5", "a", "abort"), 1);
}

TEST_F(OperatorTest, PauseSurvivesARestartAndTheRecoveredCallsWaitForResume) {
  caller_.Set("a", "action", {{kDown, kOk}});
  auto saga = StartSaga(SagaOf("p6", {"a", "b"}));
  runner_.RunUntil([&] { return log_.Branch("p6", "a")->next_attempt_at_ms > 0; });
  ASSERT_TRUE(OnEngine([&] { return saga->Pause(kWho); }).ok());
  runner_.Advance(100);
  ASSERT_TRUE(log_.txns["p6"].txn.paused);
  auto restored = Restart<Saga>("p6");
  ASSERT_NE(restored, nullptr);
  EXPECT_TRUE(restored->paused());
  runner_.Advance(10000);
  EXPECT_EQ(Calls("p6"), 1) << "the recovered attempt is held";
  ASSERT_TRUE(OnEngine([&] { return restored->Resume(kWho); }).ok());
  EXPECT_EQ(Finish("p6"), states::kCommitted);
  EXPECT_EQ(caller_.Count("p6", "a", "action"), 2);

  // A 2PC restored in PREPARING: presumed abort, the aborts held.
  caller_.Set("x", "prepare", {{kOk}, 3000});
  auto t = Begin("p7", {"x", "y"});
  RequestCommit(t);
  runner_.Advance(100);
  ASSERT_TRUE(OnEngine([&] { return t->Pause(kWho); }).ok());
  runner_.Advance(100);
  auto t2 = Restart<TwoPhase>("p7");
  ASSERT_NE(t2, nullptr);
  runner_.Advance(10000);
  EXPECT_EQ(log_.txns["p7"].txn.state, states::kAborting);
  EXPECT_EQ(caller_.Count("p7", "x", "abort") + caller_.Count("p7", "y", "abort"), 0);
  ASSERT_TRUE(OnEngine([&] { return t2->Resume(kWho); }).ok());
  EXPECT_EQ(Finish("p7"), states::kAborted);
  EXPECT_EQ(caller_.Count("p7", "x", "abort"), 1);
  EXPECT_EQ(caller_.Count("p7", "y", "abort"), 1);
}

// ---- Retry and force abort ----

TEST_F(OperatorTest, RetryWithNothingScheduledIsOkAndRecordedWithItsActor) {
  caller_.Set("a", "action", {{kOk}, 1000});
  auto saga = StartSaga(SagaOf("r1", {"a"}));
  runner_.Advance(100);
  ASSERT_TRUE(OnEngine([&] { return saga->RetryNow(kWho); }).ok());
  runner_.Advance(100);
  EXPECT_TRUE(HasOperatorEvent("r1", {"retry by alice@10.0.0.1:4242", "0 calls resent"}));
  EXPECT_EQ(Finish("r1"), states::kCommitted);
  EXPECT_EQ(OnEngine([&] { return saga->RetryNow(kWho); }).code(), StatusCode::kConflict)
      << "finished";
}

TEST_F(OperatorTest, SagaForceAbortAppliesOnlyWhileRunning) {
  caller_.Set("b", "action", {{kNo}});
  caller_.Set("b", "compensate", {{kDown}});
  auto saga = StartSaga(SagaOf("f1", {"a", "b"}));
  runner_.RunUntil([&] { return log_.txns["f1"].txn.state == states::kCompensating; });
  const Status again = OnEngine([&] { return saga->ForceAbort(kWho); });
  EXPECT_EQ(again.code(), StatusCode::kConflict);
  EXPECT_NE(again.message().find("already compensating"), std::string::npos) << again.ToString();
  EXPECT_NE(again.message().find("resolve the stuck step"), std::string::npos);

  caller_.Set("c", "action", {{kOk}, 1000});
  auto running = StartSaga(SagaOf("f2", {"c"}));
  runner_.Advance(100);
  ASSERT_TRUE(OnEngine([&] { return running->ForceAbort(kWho); }).ok());
  EXPECT_EQ(Finish("f2"), states::kAborted);
  EXPECT_TRUE(HasOperatorEvent("f2", {"force abort by alice@10.0.0.1:4242: participant"}));
  EXPECT_EQ(OnEngine([&] { return running->ForceAbort(kWho); }).code(), StatusCode::kConflict)
      << "finished";
}

TEST_F(OperatorTest, TwoPhaseForceAbortAppliesOnlyBeforeTheDecision) {
  auto active = Begin("f3", {"a"});
  ASSERT_TRUE(OnEngine([&] { return active->ForceAbort(kWho); }).ok());
  runner_.Advance(1);
  const Status aborting = OnEngine([&] { return active->ForceAbort(kWho); });
  EXPECT_EQ(aborting.code(), StatusCode::kConflict);
  EXPECT_NE(aborting.message().find("already aborting"), std::string::npos);
  EXPECT_EQ(Finish("f3"), states::kAborted);
  EXPECT_EQ(OnEngine([&] { return active->ForceAbort(kWho); }).code(), StatusCode::kConflict)
      << "finished";
  EXPECT_TRUE(HasOperatorEvent("f3", {"force abort by alice@10.0.0.1:4242"}));

  caller_.Set("a", "prepare", {{kOk}, 1000});
  auto preparing = Begin("f4", {"a"});
  RequestCommit(preparing);
  runner_.Advance(100);
  ASSERT_EQ(log_.txns["f4"].txn.state, states::kPreparing);
  ASSERT_TRUE(OnEngine([&] { return preparing->ForceAbort(kWho); }).ok());
  EXPECT_EQ(Finish("f4"), states::kAborted);

  caller_.Set("a", "commit", {{kDown}});
  auto committing = Begin("f5", {"a"});
  RequestCommit(committing);
  runner_.RunUntil([&] { return log_.txns["f5"].txn.state == states::kCommitting; });
  const Status durable = OnEngine([&] { return committing->ForceAbort(kWho); });
  EXPECT_EQ(durable.code(), StatusCode::kConflict);
  EXPECT_NE(durable.message().find("commit decision is durable"), std::string::npos);
}

// ---- Resolve by hand ----

TEST_F(OperatorTest, ResolvingAStuckCompensationLetsTheSagaFinish) {
  caller_.Set("b", "action", {{kNo}});
  caller_.Set("b", "compensate", {{kDown}});  // fails forever
  auto saga = StartSaga(SagaOf("s1", {"a", "b", "c"}));
  // While RUNNING nothing resolves.
  EXPECT_EQ(OnEngine([&] { return saga->Resolve("a", "COMPENSATED", kWho); }).code(),
            StatusCode::kConflict);
  runner_.RunUntil([&] { return caller_.Count("s1", "b", "compensate") >= 3; });
  ASSERT_EQ(log_.txns["s1"].txn.state, states::kCompensating);
  EXPECT_EQ(caller_.Count("s1", "a", "compensate"), 0) << "held back by b";

  EXPECT_EQ(OnEngine([&] {
              return saga->Resolve("b", "COMPENSATED", {"alice", ""});
            }).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(OnEngine([&] { return saga->Resolve("b", "DONE", kWho); }).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(OnEngine([&] { return saga->Resolve("zz", "COMPENSATED", kWho); }).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(OnEngine([&] { return saga->Resolve("b", "COMMITTED", kWho); }).code(),
            StatusCode::kConflict);
  const Status pending = OnEngine([&] { return saga->Resolve("c", "COMPENSATED", kWho); });
  EXPECT_EQ(pending.code(), StatusCode::kConflict);
  EXPECT_NE(pending.message().find("PENDING"), std::string::npos) << pending.ToString();
  const Status succeeded = OnEngine([&] { return saga->Resolve("a", "COMPENSATED", kWho); });
  EXPECT_EQ(succeeded.code(), StatusCode::kConflict);
  EXPECT_NE(succeeded.message().find("SUCCEEDED"), std::string::npos) << succeeded.ToString();

  const int b_calls = caller_.Count("s1", "b", "compensate");
  ASSERT_TRUE(OnEngine([&] {
                return saga->Resolve("b", "COMPENSATED", {"alice", "refunded by hand, ticket 42"});
              }).ok());
  EXPECT_EQ(Finish("s1"), states::kAborted);
  EXPECT_EQ(caller_.Count("s1", "a", "compensate"), 1);
  EXPECT_EQ(caller_.Count("s1", "b", "compensate"), b_calls) << "its retry was cancelled";
  EXPECT_EQ(log_.Branch("s1", "b")->state, states::kCompensated);
  EXPECT_TRUE(HasOperatorEvent(
      "s1", {"resolve branch 'b' as COMPENSATED by alice: refunded by hand, ticket 42"}));
  EXPECT_EQ(OnEngine([&] { return saga->Resolve("b", "COMPENSATED", kWho); }).code(),
            StatusCode::kConflict)
      << "finished";
}

TEST_F(OperatorTest, LateAnswerOfAResolvedStepIsIgnored) {
  caller_.Set("b", "action", {{kNo}});
  caller_.Set("b", "compensate", {{kDown}, 5000});  // slow, then failing
  caller_.Set("a", "compensate", {{kOk}, 10000});
  auto saga = StartSaga(SagaOf("s2", {"a", "b"}));
  runner_.RunUntil([&] { return caller_.Count("s2", "b", "compensate") == 1; });
  ASSERT_TRUE(OnEngine([&] {
                return saga->Resolve("b", "COMPENSATED", kWho);
              }).ok());  // its call is in flight
  runner_.RunUntil([&] { return caller_.Count("s2", "a", "compensate") == 1; });
  runner_.Advance(6000);  // b's late failure arrives while a compensates
  EXPECT_EQ(log_.Branch("s2", "b")->state, states::kCompensated);
  EXPECT_EQ(log_.Branch("s2", "b")->next_attempt_at_ms, 0) << "no retry planned";
  EXPECT_EQ(Finish("s2"), states::kAborted);
  runner_.Advance(60000);
  EXPECT_EQ(caller_.Count("s2", "b", "compensate"), 1);
}

TEST_F(OperatorTest, ResolveWorksOnAPausedSagaAndTheRestWaitsForResume) {
  caller_.Set("b", "action", {{kNo}});
  caller_.Set("b", "compensate", {{kDown}});
  auto saga = StartSaga(SagaOf("s3", {"a", "b"}));
  runner_.RunUntil([&] { return caller_.Count("s3", "b", "compensate") >= 2; });
  ASSERT_TRUE(OnEngine([&] { return saga->Pause(kWho); }).ok());
  ASSERT_TRUE(OnEngine([&] { return saga->Resolve("b", "COMPENSATED", kWho); }).ok());
  runner_.Advance(10000);
  EXPECT_EQ(caller_.Count("s3", "a", "compensate"), 0) << "held while paused";
  EXPECT_EQ(log_.Branch("s3", "b")->state, states::kCompensated);
  ASSERT_TRUE(OnEngine([&] { return saga->Resume(kWho); }).ok());
  EXPECT_EQ(Finish("s3"), states::kAborted);
  EXPECT_EQ(caller_.Count("s3", "a", "compensate"), 1);
}

// A transaction that finishes while paused (its last branch resolved, or its
// last call answering) is not left paused: nothing is held any more, and a
// finished transaction cannot be resumed.
TEST_F(OperatorTest, FinishingWhilePausedClearsThePausedFlag) {
  caller_.Set("a", "commit", {{kDown}});
  auto t = Begin("p1", {"a"});
  RequestCommit(t);
  runner_.RunUntil([&] { return caller_.Count("p1", "a", "commit") >= 2; });
  ASSERT_TRUE(OnEngine([&] { return t->Pause(kWho); }).ok());
  runner_.Advance(100);
  ASSERT_TRUE(log_.txns["p1"].txn.paused);
  ASSERT_TRUE(OnEngine([&] { return t->Resolve("a", "COMMITTED", kWho); }).ok());
  EXPECT_EQ(Finish("p1"), states::kCommitted);
  EXPECT_FALSE(t->paused());
  EXPECT_FALSE(log_.txns["p1"].txn.paused) << "a finished transaction is listed as paused";
  EXPECT_EQ(OnEngine([&] { return t->Resume(kWho); }).code(), StatusCode::kConflict);
}

// A log whose answers wait until the test releases them.
class HeldLog : public TxnLog {
 public:
  explicit HeldLog(TxnLog* inner) : inner_(inner) {}
  void Write(TxnWrite write, Callback done) override {
    if (!hold) return inner_->Write(std::move(write), std::move(done));
    held_.push_back({std::move(write), std::move(done)});
  }
  void ReleaseOne() {
    auto [w, done] = std::move(held_.front());
    held_.erase(held_.begin());
    inner_->Write(std::move(w), std::move(done));
  }
  size_t held() const { return held_.size(); }
  bool hold = false;

 private:
  TxnLog* inner_;
  std::vector<std::pair<TxnWrite, Callback>> held_;
};

// An operator's answer waits for the write that holds its change. Here the
// write before it (the retry logged as sent) is answered first, and its
// follow-up (the resolved branch's call, no longer wanted) flushes the
// operator's write at once: that earlier answer must not count as the
// operator's write being durable.
TEST_F(OperatorTest, AnswerWaitsForItsOwnWriteWhenAnEarlierWriteFlushesIt) {
  HeldLog held(&log_);
  ctx_.log = &held;
  caller_.Set("a", "commit", {{kDown}});
  auto t = Begin("w1", {"a"});
  RequestCommit(t);
  runner_.RunUntil([&] { return log_.Branch("w1", "a")->next_attempt_at_ms > 0; });
  held.hold = true;
  runner_.RunUntil([&] { return held.held() == 1; });  // the retry, logged as sent, waits
  ASSERT_TRUE(OnEngine([&] { return t->Resolve("a", "COMMITTED", kWho); }).ok());
  bool answered = false, finished_when_answered = false;
  OnEngine([&] {
    t->WhenDurable([&](Status s) {
      ASSERT_TRUE(s.ok()) << s.ToString();
      answered = true;
      finished_when_answered = t->finished();
    });
  });
  held.ReleaseOne();
  runner_.RunUntil([&] { return held.held() == 1; });  // the operator's write, now sent
  runner_.RunUntilIdle();
  EXPECT_FALSE(answered) << "answered before the operator's write was durable";
  held.hold = false;
  held.ReleaseOne();
  runner_.RunUntil([&] { return answered; });
  EXPECT_TRUE(finished_when_answered);
  EXPECT_EQ(log_.txns["w1"].txn.state, states::kCommitted);
}

TEST_F(OperatorTest, ResolvingAStuckCommitLetsTheTransactionCommit) {
  caller_.Set("a", "commit", {{kDown}});  // e.g. its commit URL answers 404
  auto t = Begin("t1", {"a", "b"});
  EXPECT_EQ(OnEngine([&] { return t->Resolve("a", "COMMITTED", kWho); }).code(),
            StatusCode::kConflict)
      << "ACTIVE";
  RequestCommit(t);
  runner_.RunUntil([&] { return caller_.Count("t1", "a", "commit") >= 3; });
  ASSERT_EQ(log_.txns["t1"].txn.state, states::kCommitting);
  ASSERT_EQ(log_.Branch("t1", "b")->state, states::kCommitted);

  EXPECT_EQ(OnEngine([&] {
              return t->Resolve("a", "COMMITTED", {"alice", ""});
            }).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(OnEngine([&] { return t->Resolve("a", "committed!", kWho); }).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(OnEngine([&] { return t->Resolve("zz", "COMMITTED", kWho); }).code(),
            StatusCode::kNotFound);
  const Status aborted = OnEngine([&] { return t->Resolve("a", "ABORTED", kWho); });
  EXPECT_EQ(aborted.code(), StatusCode::kConflict);
  EXPECT_NE(aborted.message().find("COMMITTING"), std::string::npos) << aborted.ToString();
  EXPECT_EQ(OnEngine([&] { return t->Resolve("a", "COMPENSATED", kWho); }).code(),
            StatusCode::kConflict);
  const Status done = OnEngine([&] { return t->Resolve("b", "COMMITTED", kWho); });
  EXPECT_EQ(done.code(), StatusCode::kConflict);
  EXPECT_NE(done.message().find("branch 'b' is COMMITTED"), std::string::npos) << done.ToString();

  ASSERT_TRUE(OnEngine([&] {
                return t->Resolve("a", "COMMITTED", {"alice", "committed on the db by hand"});
              }).ok());
  EXPECT_EQ(Finish("t1"), states::kCommitted);
  EXPECT_EQ(log_.Branch("t1", "a")->state, states::kCommitted);
  EXPECT_TRUE(HasOperatorEvent(
      "t1", {"resolve branch 'a' as COMMITTED by alice: committed on the db by hand"}));
  EXPECT_FALSE(log_.txns["t1"].txn.needs_attention);
}

TEST_F(OperatorTest, ResolvingAStuckAbortLetsTheTransactionAbortButNotDuringItsPrepare) {
  caller_.Set("a", "prepare", {{kOk}, 3000});
  caller_.Set("b", "prepare", {{kNo}});
  caller_.Set("a", "abort", {{kDown}});
  auto t = Begin("t2", {"a", "b", "c"});
  RequestCommit(t);
  runner_.RunUntil([&] { return log_.txns["t2"].txn.state == states::kAborting; });
  const Status in_flight = OnEngine([&] { return t->Resolve("a", "ABORTED", kWho); });
  EXPECT_EQ(in_flight.code(), StatusCode::kConflict);
  EXPECT_NE(in_flight.message().find("prepare call is in flight"), std::string::npos)
      << in_flight.ToString();
  EXPECT_EQ(OnEngine([&] { return t->Resolve("a", "COMMITTED", kWho); }).code(),
            StatusCode::kConflict);
  runner_.RunUntil([&] { return caller_.Count("t2", "a", "abort") >= 2; });
  ASSERT_TRUE(OnEngine([&] { return t->Resolve("a", "ABORTED", kWho); }).ok());
  EXPECT_EQ(Finish("t2"), states::kAborted);
  EXPECT_EQ(log_.Branch("t2", "a")->state, states::kAborted);
  EXPECT_EQ(OnEngine([&] { return t->Resolve("a", "ABORTED", kWho); }).code(),
            StatusCode::kConflict)
      << "finished";
}

}  // namespace
}  // namespace treaty
