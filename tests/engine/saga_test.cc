// Unit tests of the saga state machine with a fake clock, fake participants
// and an in-memory log.

#include "engine/saga.h"

#include <gtest/gtest.h>

#include "engine/engine_fakes.h"
#include "engine/states.h"

namespace treaty {
namespace {

using testing::FakeCaller;
using testing::FakeLog;
using testing::FakeTaskRunner;
using Seq = std::vector<std::string>;

class SagaTest : public testing::DriverTest {
 protected:
  SagaTest() : DriverTest(42) {}

  static SagaSpec Spec(const std::string& gtid, std::vector<std::string> names,
                       bool concurrent = false) {
    SagaSpec spec = SagaSpecOf(gtid, names, {3, 50, 200});
    spec.concurrent = concurrent;
    return spec;
  }
};

TEST_F(SagaTest, HappyPathRunsStepsInOrderAndCommits) {
  StartSaga(Spec("g1", {"flight", "hotel", "car"}));
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  EXPECT_EQ(caller_.Sequence("g1"), (Seq{"flight/action", "hotel/action", "car/action"}));
  EXPECT_EQ(log_.txns["g1"].txn.state, states::kCommitted);
  for (const auto& b : log_.txns["g1"].branches) EXPECT_EQ(b.state, states::kSucceeded);
}

// Without write-behind every call waits for its change to be logged.
TEST_F(SagaTest, WithoutWriteBehindStepIsLoggedRunningBeforeItsActionIsSent) {
  ctx_.options.write_behind_ms = 0;
  int checked = 0;
  caller_.on_call = [&](const ParticipantRequest& r) {
    const BranchRow* b = log_.Branch(r.gtid, r.branch);
    ASSERT_NE(b, nullptr);
    if (r.op == "action") EXPECT_EQ(b->state, states::kRunning) << r.branch;
    if (r.op == "compensate") EXPECT_EQ(b->state, states::kCompensating) << r.branch;
    ++checked;
  };
  caller_.Set("car", "action", {{CallOutcome::kBusinessFailure}});
  StartSaga(Spec("g1", {"flight", "hotel", "car"}));
  EXPECT_EQ(Finish("g1"), states::kAborted);
  EXPECT_EQ(checked, 6);
}

// Write-behind: the saga is logged (its first step RUNNING) before any
// action; later steps' first attempts go out ahead of their progress; a
// compensation is logged before it is sent; the happy path is two writes.
TEST_F(SagaTest, WriteBehindSendsFirstAttemptsAheadButDecisionsWait) {
  ctx_.options.write_behind_ms = 50;
  int ahead = 0;
  int checked = 0;
  caller_.on_call = [&](const ParticipantRequest& r) {
    const BranchRow* b = log_.Branch(r.gtid, r.branch);
    ASSERT_NE(b, nullptr) << "the create is logged before any call";
    if (r.branch == "flight" && r.op == "action") EXPECT_EQ(b->state, states::kRunning);
    if (r.op == "action" && b->state == states::kPending) ++ahead;
    if (r.op == "compensate") {
      EXPECT_EQ(b->state, states::kCompensating) << r.branch;
      EXPECT_EQ(log_.txns[r.gtid].txn.state, states::kCompensating);
    }
    ++checked;
  };
  StartSaga(Spec("g1", {"flight", "hotel", "car"}));
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  EXPECT_EQ(ahead, 2) << "hotel and car went out before their RUNNING was logged";
  EXPECT_EQ(log_.writes, 2) << "the create and COMMITTED";
  for (const auto& b : log_.txns["g1"].branches) EXPECT_EQ(b.state, states::kSucceeded);

  caller_.Set("car", "action", {{CallOutcome::kBusinessFailure}});
  StartSaga(Spec("g2", {"flight", "hotel", "car"}));
  EXPECT_EQ(Finish("g2"), states::kAborted);
  EXPECT_EQ(caller_.Sequence("g2"),
            (Seq{"flight/action", "hotel/action", "car/action", "car/compensate",
                 "hotel/compensate", "flight/compensate"}));
  EXPECT_EQ(checked, 9);
}

// A retry is logged (planned, then sent) before it goes out, write-behind
// or not: only first attempts go ahead.
TEST_F(SagaTest, WriteBehindRetriesWaitForTheLog) {
  ctx_.options.write_behind_ms = 50;
  caller_.Set("hotel", "action", {{CallOutcome::kTransient, CallOutcome::kOk}});
  int retries = 0;
  caller_.on_call = [&](const ParticipantRequest& r) {
    if (r.branch != "hotel" || caller_.Count("g1", "hotel", "action") == 0) return;
    const BranchRow* b = log_.Branch("g1", "hotel");
    EXPECT_EQ(b->state, states::kRunning);
    EXPECT_EQ(b->attempts, 2);
    EXPECT_EQ(b->next_attempt_at_ms, 0) << "logged as sent";
    ++retries;
  };
  StartSaga(Spec("g1", {"flight", "hotel"}));
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  EXPECT_EQ(retries, 1);
}

// Without its lease (a heartbeat too old: peers may be adopting its work) a
// coordinator sends nothing ahead of its fenced write.
TEST_F(SagaTest, WithoutTheLeaseNothingGoesAhead) {
  ctx_.options.write_behind_ms = 50;
  ctx_.lease_held = [](const std::string&) { return false; };
  int checked = 0;
  caller_.on_call = [&](const ParticipantRequest& r) {
    EXPECT_EQ(log_.Branch(r.gtid, r.branch)->state, states::kRunning) << r.branch;
    ++checked;
  };
  StartSaga(Spec("g1", {"flight", "hotel", "car"}));
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  EXPECT_EQ(checked, 3);
  EXPECT_EQ(log_.writes, 4);
}

TEST_F(SagaTest, BusinessFailureCompensatesAttemptedStepsInReverse) {
  caller_.Set("car", "action", {{CallOutcome::kBusinessFailure}});
  StartSaga(Spec("g1", {"flight", "hotel", "car", "insurance"}));
  EXPECT_EQ(Finish("g1"), states::kAborted);
  EXPECT_EQ(caller_.Sequence("g1"),
            (Seq{"flight/action", "hotel/action", "car/action", "car/compensate",
                 "hotel/compensate", "flight/compensate"}));
  EXPECT_EQ(log_.Branch("g1", "insurance")->state, states::kPending);
  EXPECT_EQ(log_.Branch("g1", "car")->state, states::kCompensated);
  EXPECT_EQ(caller_.Count("g1", "car", "action"), 1) << "a 409 is never retried";
}

TEST_F(SagaTest, TransientFailuresAreRetriedWithBackoffThenSucceed) {
  caller_.Set("hotel", "action",
              {{CallOutcome::kTransient, CallOutcome::kTransient, CallOutcome::kOk}});
  StartSaga(Spec("g1", {"flight", "hotel"}));
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  EXPECT_EQ(caller_.Count("g1", "hotel", "action"), 3);
  EXPECT_EQ(log_.Branch("g1", "hotel")->attempts, 3);
  // The retries were spaced by the backoff (>= initial/2 each).
  std::vector<int64_t> at;
  for (const auto& c : caller_.calls) {
    if (c.branch == "hotel") at.push_back(c.at);
  }
  ASSERT_EQ(at.size(), 3u);
  EXPECT_GE(at[1] - at[0], 25);
  EXPECT_GE(at[2] - at[1], 50);
}

TEST_F(SagaTest, RetriesExhaustedFailsTheStepAndCompensates) {
  caller_.Set("hotel", "action", {{CallOutcome::kTransient}});
  StartSaga(Spec("g1", {"flight", "hotel", "car"}));
  EXPECT_EQ(Finish("g1"), states::kAborted);
  EXPECT_EQ(caller_.Count("g1", "hotel", "action"), 3);
  EXPECT_EQ(caller_.Count("g1", "hotel", "compensate"), 1) << "a timed-out action may have applied";
  EXPECT_EQ(caller_.Count("g1", "flight", "compensate"), 1);
  EXPECT_EQ(caller_.Count("g1", "car", "action"), 0);
}

TEST_F(SagaTest, DeadlineCompensatesAfterInFlightCallReturns) {
  caller_.Set("hotel", "action", {{CallOutcome::kOk}, 5000});
  auto spec = Spec("g1", {"flight", "hotel", "car"});
  spec.timeout_ms = 1000;
  StartSaga(spec);
  EXPECT_EQ(Finish("g1"), states::kAborted);
  EXPECT_EQ(caller_.Sequence("g1"),
            (Seq{"flight/action", "hotel/action", "hotel/compensate", "flight/compensate"}));
  bool saw_deadline = false;
  for (const auto& e : log_.txns["g1"].events) {
    saw_deadline |= e.detail.find("deadline") != std::string::npos;
  }
  EXPECT_TRUE(saw_deadline);
}

TEST_F(SagaTest, ConcurrentDagRespectsOrderForwardAndBackward) {
  auto spec = Spec("g1", {"a", "b", "c", "d"}, true);
  spec.steps[1].after = {"a"};
  spec.steps[2].after = {"a"};
  spec.steps[3].after = {"b", "c"};
  caller_.Set("b", "action", {{CallOutcome::kOk}, 30});
  caller_.Set("d", "action", {{CallOutcome::kBusinessFailure}});
  StartSaga(spec);
  EXPECT_EQ(Finish("g1"), states::kAborted);
  auto seq = caller_.Sequence("g1");
  auto pos = [&](const std::string& s) {
    return std::find(seq.begin(), seq.end(), s) - seq.begin();
  };
  EXPECT_LT(pos("a/action"), pos("b/action"));
  EXPECT_LT(pos("a/action"), pos("c/action"));
  EXPECT_LT(pos("b/action"), pos("d/action"));
  EXPECT_LT(pos("c/action"), pos("d/action"));
  // b and c ran concurrently: c started before b answered.
  int64_t b_at = 0, c_at = 0;
  for (const auto& c : caller_.calls) {
    if (c.branch == "b" && c.op == "action") b_at = c.at;
    if (c.branch == "c" && c.op == "action") c_at = c.at;
  }
  EXPECT_LT(c_at, b_at + 30);
  EXPECT_LT(pos("d/compensate"), pos("b/compensate"));
  EXPECT_LT(pos("d/compensate"), pos("c/compensate"));
  EXPECT_LT(pos("b/compensate"), pos("a/compensate"));
  EXPECT_LT(pos("c/compensate"), pos("a/compensate"));
}

TEST_F(SagaTest, IndependentStepsStartTogether) {
  auto spec = Spec("g1", {"a", "b", "c"}, true);
  for (auto n : {"a", "b", "c"}) caller_.Set(n, "action", {{CallOutcome::kOk}, 100});
  StartSaga(spec);
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  for (const auto& c : caller_.calls) EXPECT_EQ(c.at, caller_.calls[0].at);
}

TEST_F(SagaTest, FailingCompensationIsRetriedUntilItSucceedsAndFlagsAttention) {
  caller_.Set("hotel", "action", {{CallOutcome::kBusinessFailure}});
  std::vector<CallOutcome> comp(5, CallOutcome::kTransient);
  comp.push_back(CallOutcome::kOk);
  caller_.Set("flight", "compensate", {comp});
  auto saga = StartSaga(Spec("g1", {"flight", "hotel"}));
  runner_.RunUntil([&] { return log_.txns["g1"].txn.needs_attention; });
  EXPECT_TRUE(log_.txns["g1"].txn.needs_attention);
  EXPECT_EQ(log_.txns["g1"].txn.state, states::kCompensating);
  EXPECT_EQ(Finish("g1"), states::kAborted);
  EXPECT_EQ(caller_.Count("g1", "flight", "compensate"), 6);
  EXPECT_FALSE(log_.txns["g1"].txn.needs_attention) << "cleared once it finished";
  EXPECT_FALSE(log_.Branch("g1", "flight")->last_error.empty() &&
               log_.Branch("g1", "flight")->state != states::kCompensated);
}

TEST_F(SagaTest, OperatorRetryResendsAWaitingCompensationAtOnce) {
  caller_.Set("hotel", "action", {{CallOutcome::kBusinessFailure}});
  caller_.Set("flight", "compensate",
              {{CallOutcome::kTransient, CallOutcome::kTransient, CallOutcome::kTransient,
                CallOutcome::kOk}});
  ctx_.options.retry_initial_backoff_ms = 60000;
  ctx_.options.retry_max_backoff_ms = 60000;
  auto saga = StartSaga(Spec("g1", {"flight", "hotel"}));
  runner_.RunUntil([&] { return caller_.Count("g1", "flight", "compensate") == 1; });
  runner_.Advance(10);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(OnEngine([&] { return saga->RetryNow({"tester", ""}); }).ok());
    runner_.Advance(10);
  }
  EXPECT_EQ(recorder_.finished["g1"], states::kAborted);
  EXPECT_EQ(caller_.Count("g1", "flight", "compensate"), 4);
  EXPECT_EQ(OnEngine([&] { return saga->RetryNow({"tester", ""}); }).code(), StatusCode::kConflict);
}

TEST_F(SagaTest, ForceAbortCompensatesARunningSaga) {
  caller_.Set("hotel", "action", {{CallOutcome::kTransient}});
  auto saga = StartSaga(Spec("g1", {"flight", "hotel"}));
  runner_.RunUntil([&] { return caller_.Count("g1", "hotel", "action") == 1; });
  ASSERT_TRUE(OnEngine([&] { return saga->ForceAbort({"tester", "operator"}); }).ok());
  EXPECT_EQ(Finish("g1"), states::kAborted);
  EXPECT_EQ(caller_.Count("g1", "hotel", "action"), 1) << "no retry after the abort";
  EXPECT_EQ(caller_.Count("g1", "hotel", "compensate"), 1);
}

// A peer adopts a transaction only once this coordinator's lease expired,
// and then nothing goes ahead of the fenced write that finds out.
TEST_F(SagaTest, LostOwnershipStopsDrivingAtOnce) {
  bool lease = true;
  ctx_.lease_held = [&](const std::string& owner) { return lease && owner == ctx_.owner; };
  caller_.Set("flight", "action", {{CallOutcome::kOk}, 50});
  StartSaga(Spec("g1", {"flight", "hotel", "car"}));
  runner_.RunUntil([&] { return caller_.Count("g1", "flight", "action") == 1; });
  lease = false;
  log_.SetOwner("g1", "coord-2");
  runner_.Advance(10000);
  EXPECT_EQ(recorder_.dropped["g1"].code(), StatusCode::kLostOwnership);
  EXPECT_EQ(caller_.Sequence("g1"), (Seq{"flight/action"}));
  EXPECT_EQ(recorder_.finished.count("g1"), 0u);
}

TEST_F(SagaTest, UnavailableLogWritesAreRetriedWithoutLoss) {
  ctx_.options.log_retry_backoff_ms = 200;
  auto saga = StartSaga(Spec("g1", {"flight", "hotel"}));
  runner_.RunUntil([&] { return caller_.Count("g1", "flight", "action") == 1; });
  log_.fail_next_writes = 3;
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  EXPECT_EQ(caller_.Count("g1", "hotel", "action"), 1);
  EXPECT_EQ(log_.Branch("g1", "flight")->state, states::kSucceeded);
}

TEST_F(SagaTest, CreateConflictIsReportedAndNothingRuns) {
  StartSaga(Spec("g1", {"flight"}));
  Finish("g1");
  Status created = Status::Ok();
  auto again = OnEngine([&] { return Saga::Create(&ctx_, Spec("g1", {"flight"})); });
  again->on_created = [&](Status s) { created = s; };
  OnEngine([&] { again->Start(); });
  runner_.Advance(100);
  EXPECT_EQ(created.code(), StatusCode::kConflict);
  EXPECT_EQ(caller_.Count("g1", "flight", "action"), 1);
}

TEST_F(SagaTest, RecoveryResendsTheInFlightActionAndFinishes) {
  caller_.Set("hotel", "action", {{CallOutcome::kOk}, 10000});
  auto first = StartSaga(Spec("g1", {"flight", "hotel", "car"}));
  runner_.RunUntil([&] { return caller_.Count("g1", "hotel", "action") == 1; });
  runner_.Advance(100);  // flight's success is written behind within write_behind_ms
  OnEngine([&] { first->Drop(Status::Internal("simulated crash")); });  // the process dies
  // A new coordinator claims it and restores it from the log.
  log_.SetOwner("g1", "coord-2");
  ctx_.owner = "coord-2";
  caller_.Set("hotel", "action", {{CallOutcome::kOk}, 5});
  auto restored = Saga::Restore(&ctx_, log_.txns["g1"]);
  ASSERT_TRUE(restored.ok());
  OnEngine([&] { (*restored)->Start(); });
  drivers_.push_back(*restored);
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  EXPECT_EQ(caller_.Count("g1", "flight", "action"), 1) << "a logged success is not resent";
  EXPECT_EQ(caller_.Count("g1", "hotel", "action"), 2) << "the unknown outcome is resent";
  EXPECT_EQ(log_.Branch("g1", "hotel")->attempts, 1) << "resent as the same attempt";
}

TEST_F(SagaTest, RecoveryDuringCompensationFinishesIt) {
  caller_.Set("car", "action", {{CallOutcome::kBusinessFailure}});
  caller_.Set("hotel", "compensate", {{CallOutcome::kOk}, 10000});
  auto first = StartSaga(Spec("g1", {"flight", "hotel", "car"}));
  runner_.RunUntil([&] { return caller_.Count("g1", "hotel", "compensate") == 1; });
  OnEngine([&] { first->Drop(Status::Internal("simulated crash")); });
  log_.SetOwner("g1", "coord-2");
  ctx_.owner = "coord-2";
  caller_.Set("hotel", "compensate", {{CallOutcome::kOk}, 5});
  auto restored = Saga::Restore(&ctx_, log_.txns["g1"]);
  ASSERT_TRUE(restored.ok());
  OnEngine([&] { (*restored)->Start(); });
  drivers_.push_back(*restored);
  EXPECT_EQ(Finish("g1"), states::kAborted);
  EXPECT_EQ(caller_.Count("g1", "car", "compensate"), 1);
  EXPECT_EQ(caller_.Count("g1", "hotel", "compensate"), 2);
  EXPECT_EQ(caller_.Count("g1", "flight", "compensate"), 1);
}

// The saga's deadline passes while the write that precedes the next action
// waits for the log (a stall): once the write is durable the saga is
// compensating, and the planned action is never sent (found by a review
// against the real binary: the action went out ~20 s after the decision).
TEST_F(SagaTest, ActionPlannedBeforeTheDeadlineIsNotSentOnceCompensating) {
  ctx_.options.write_behind_ms = 0;  // hotel's action waits for its write
  caller_.on_call = [this](const ParticipantRequest& r) {
    if (r.branch == "flight" && r.op == "action") log_.fail_next_writes = 40;
  };
  auto spec = Spec("g1", {"flight", "hotel"});
  spec.timeout_ms = 1000;
  StartSaga(spec);
  EXPECT_EQ(Finish("g1"), states::kAborted);
  EXPECT_EQ(caller_.Count("g1", "hotel", "action"), 0);
  EXPECT_EQ(caller_.Sequence("g1"),
            (Seq{"flight/action", "hotel/compensate", "flight/compensate"}));
}

// Write-behind stops while the log fails: hotel went ahead before the log
// was known to fail; once its write has failed, car waits until the log has
// its RUNNING (and hotel's success).
TEST_F(SagaTest, NothingGoesAheadOnceTheLogFails) {
  ctx_.options.write_behind_ms = 50;
  ctx_.options.log_retry_backoff_ms = 200;
  caller_.Set("hotel", "action", {{CallOutcome::kOk}, 100});
  int car_checked = 0;
  caller_.on_call = [&](const ParticipantRequest& r) {
    if (r.branch == "flight" && r.op == "action") log_.fail_next_writes = 3;
    if (r.branch != "car") return;
    EXPECT_EQ(log_.Branch("g1", "hotel")->state, states::kSucceeded);
    EXPECT_EQ(log_.Branch("g1", "car")->state, states::kRunning);
    ++car_checked;
  };
  StartSaga(Spec("g1", {"flight", "hotel", "car"}));
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  EXPECT_EQ(car_checked, 1);
  EXPECT_EQ(caller_.Count("g1", "hotel", "action"), 1);
}

// A write in flight for longer than write_behind_ms (a slow or stalled
// log) stops the next step from going ahead: the log may lag the
// participants by about that much, not more.
TEST_F(SagaTest, NothingGoesAheadOfAWriteInFlightLongerThanTheDelay) {
  ctx_.options.write_behind_ms = 50;
  caller_.Set("hotel", "action", {{CallOutcome::kOk}, 200});
  int car_checked = 0;
  caller_.on_call = [&](const ParticipantRequest& r) {
    // The log answers 500 ms after each write from hotel's call on.
    if (r.branch == "hotel") log_.answer_after_ms = 500;
    if (r.branch != "car") return;
    EXPECT_EQ(log_.Branch("g1", "car")->state, states::kRunning) << "waited for the log";
    EXPECT_GE(runner_.NowMs() - caller_.Times("g1", "hotel", "action")[0], 500);
    ++car_checked;
  };
  StartSaga(Spec("g1", {"flight", "hotel", "car"}));
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  EXPECT_EQ(car_checked, 1);
}

// Resume is logged before anything it allows goes ahead: a step that becomes
// ready while the resume's write is in flight waits for it.
TEST_F(SagaTest, ResumeIsLoggedBeforeAStepGoesAhead) {
  ctx_.options.write_behind_ms = 50;
  caller_.Set("flight", "action", {{CallOutcome::kOk}, 100});
  auto saga = StartSaga(Spec("g1", {"flight", "hotel"}));
  runner_.Advance(20);  // flight in flight
  ASSERT_TRUE(OnEngine([&] { return saga->Pause({"tester", "look"}); }).ok());
  runner_.Advance(200);  // flight answered; hotel held
  ASSERT_EQ(caller_.Count("g1", "hotel", "action"), 0);
  int checked = 0;
  caller_.on_call = [&](const ParticipantRequest& r) {
    EXPECT_FALSE(log_.txns["g1"].txn.paused) << "the resume is logged first";
    ++checked;
  };
  ASSERT_TRUE(OnEngine([&] { return saga->Resume({"tester", "go"}); }).ok());
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  EXPECT_EQ(checked, 1);
}

}  // namespace
}  // namespace treaty
