// TxnService on fakes: what happens to a submission whose create commit
// answer is lost (outcome unknown: answered Unavailable, the create is sent
// again until the log answers, and the saga runs if it was logged).

#include "engine/txn_service.h"

#include <gtest/gtest.h>

#include "engine/engine_fakes.h"
#include "engine/states.h"

namespace treaty {
namespace {

using testing::FakeCaller;
using testing::FakeLog;
using testing::FakeTaskRunner;

// Counts what TxnService reports to its observer (the metrics in production).
class CountingObserver : public TxnObserver {
 public:
  void OnStarted(const std::string&, const std::string& kind) override { ++started[kind]; }
  void OnFinished(const std::string&, const std::string&, const std::string& state) override {
    ++finished[state];
  }
  void OnDropped(const std::string&, const Status&) override { ++dropped; }
  std::map<std::string, int> started, finished;
  int dropped = 0;
};

class TxnServiceTest : public ::testing::Test {
 protected:
  TxnServiceTest() : caller_(&runner_), log_(&runner_) {
    TxnServiceDeps deps;
    deps.engine_runner = &runner_;
    deps.blocking_runner = &runner_;
    deps.caller = &caller_;
    deps.log = &log_;
    deps.owner = "coord-1";
    deps.observer = &observer_;
    service_ = std::make_unique<TxnService>(deps, TxnServiceOptions{});
  }

  SagaSpec Spec(const std::string& gtid) {
    SagaSpec spec;
    spec.gtid = gtid;
    SagaStep s;
    s.name = "flight";
    s.action = "http://svc/flight";
    s.compensate = "http://svc/flight/undo";
    spec.steps.push_back(s);
    return spec;
  }

  FakeTaskRunner runner_;
  FakeCaller caller_;
  FakeLog log_;
  CountingObserver observer_;
  std::unique_ptr<TxnService> service_;
};

TEST_F(TxnServiceTest, CreateWhoseCommitAnswerWasLostIsAnsweredUnknownThenRuns) {
  log_.lose_ack_of_next_writes = 1;
  std::optional<Status> answer;
  service_->SubmitSaga(Spec("g1"), false, 0, [&](Result<SubmitResult> r) { answer = r.status(); });
  runner_.Advance(5000);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->code(), StatusCode::kUnavailable) << "the client is told: outcome unknown";
  ASSERT_TRUE(log_.txns.count("g1")) << "the create did commit";
  EXPECT_EQ(log_.txns["g1"].txn.owner, "coord-1");
  EXPECT_EQ(log_.txns["g1"].txn.state, states::kCommitted)
      << "the driver sent the create again, recognized its own row and ran it";
  EXPECT_EQ(caller_.calls.size(), 1u) << "the step ran once";
  EXPECT_EQ(observer_.started["saga"], 1) << "started once, when the log confirmed it";
  EXPECT_EQ(service_->active_drivers(), 0) << "finished: no driver left in memory";
}

TEST_F(TxnServiceTest, CreateThatNeverCommittedIsSentAgainUntilTheLogAnswers) {
  log_.fail_next_writes = 3;
  std::optional<Status> answer;
  service_->SubmitSaga(Spec("g2"), false, 0, [&](Result<SubmitResult> r) { answer = r.status(); });
  runner_.Advance(10);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->code(), StatusCode::kUnavailable);
  EXPECT_FALSE(log_.txns.count("g2"));
  // A re-submission while the outcome is unknown claims nothing.
  std::optional<Result<SubmitResult>> again;
  service_->SubmitSaga(Spec("g2"), false, 0, [&](Result<SubmitResult> r) { again = r; });
  runner_.Advance(10);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->status().code(), StatusCode::kUnavailable) << again->status().ToString();
  runner_.Advance(5000);
  ASSERT_TRUE(log_.txns.count("g2"));
  EXPECT_EQ(log_.txns["g2"].txn.state, states::kCommitted);
  EXPECT_EQ(caller_.calls.size(), 1u);
}

// A drain or re-registration while a create is still being written: the
// creator (here one held by `wait`) is answered Unavailable, outcome unknown,
// once; the log's late answer changes nothing.
TEST_F(TxnServiceTest, DropBeforeTheCreateIsAnsweredAnswersTheCreatorOnce) {
  std::vector<Status> answers;
  service_->SubmitSaga(Spec("g1"), /*wait=*/true, 30000,
                       [&](Result<SubmitResult> r) { answers.push_back(r.status()); });
  runner_.RunUntilIdle();  // the create is sent; the log answers 1 ms later
  ASSERT_EQ(log_.writes, 1);
  service_->DropAllAndReown("coord-2");
  runner_.RunUntilIdle();
  ASSERT_EQ(answers.size(), 1u) << "the creator must not be left without an answer";
  EXPECT_EQ(answers[0].code(), StatusCode::kUnavailable);
  EXPECT_NE(answers[0].message().find("outcome unknown"), std::string::npos)
      << answers[0].message();
  runner_.Advance(60000);
  EXPECT_EQ(answers.size(), 1u) << "answered exactly once";
}

TEST_F(TxnServiceTest, SubmittedSagaRunsToCommit) {
  std::optional<SubmitResult> answer;
  service_->SubmitSaga(Spec("g3"), true, 10000, [&](Result<SubmitResult> r) {
    ASSERT_TRUE(r.ok());
    answer = *r;
  });
  runner_.Advance(1000);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->state, states::kCommitted);
  EXPECT_TRUE(answer->created);
  EXPECT_EQ(observer_.started["saga"], 1);
  EXPECT_EQ(observer_.finished["COMMITTED"], 1);
  EXPECT_EQ(service_->active_drivers(), 0);
}

// Drain: FlushAll writes what was written behind now, not when its timer
// fires, and says when it is durable.
TEST_F(TxnServiceTest, FlushAllWritesWhatIsWrittenBehind) {
  SagaSpec spec = Spec("g5");
  SagaStep hotel = spec.steps[0];
  hotel.name = "hotel";
  spec.steps.push_back(hotel);
  caller_.Set("hotel", "action", {{CallOutcome::kOk}, 5000});
  service_->SubmitSaga(spec, false, 0, [](Result<SubmitResult>) {});
  ASSERT_TRUE(runner_.RunUntil([&] { return caller_.Count("g5", "hotel", "action") == 1; }));
  ASSERT_EQ(log_.Branch("g5", "flight")->state, states::kRunning) << "written behind";
  bool done = false;
  service_->FlushAll([&] { done = true; });
  runner_.Advance(2);  // the fake log answers 1 ms after a write
  EXPECT_TRUE(done);
  EXPECT_EQ(log_.Branch("g5", "flight")->state, states::kSucceeded);
  EXPECT_EQ(log_.Branch("g5", "hotel")->state, states::kRunning);
}

TEST_F(TxnServiceTest, ActiveDriversCountsTheTransactionsDrivenHere) {
  caller_.Set("flight", "action", {{CallOutcome::kOk}, 500});
  service_->SubmitSaga(Spec("g4"), false, 0, [](Result<SubmitResult>) {});
  runner_.Advance(10);
  EXPECT_EQ(service_->active_drivers(), 1);
  runner_.Advance(1000);
  EXPECT_EQ(service_->active_drivers(), 0);
}

TEST_F(TxnServiceTest, AdoptRestoresEachKindByItsProtocolAndSkipsUnknownKinds) {
  // Log a saga and a 2PC transaction, then let the log hand them over again
  // (as a peer's takeover would) along with one of an unknown kind.
  caller_.Set("flight", "action", {{CallOutcome::kOk}, 60000});
  service_->SubmitSaga(Spec("s1"), false, 0, [](Result<SubmitResult>) {});
  TwoPhaseSpec tpc;
  tpc.gtid = "t1";
  tpc.timeout_ms = 60000;
  service_->Begin2pc(tpc, [](Result<SubmitResult>) {});
  runner_.Advance(10);
  ASSERT_TRUE(log_.txns.count("s1") && log_.txns.count("t1"));
  service_->DropAllAndReown("coord-2");
  runner_.Advance(10);
  EXPECT_EQ(service_->active_drivers(), 0);
  log_.SetOwner("s1", "coord-2");
  log_.SetOwner("t1", "coord-2");
  TxnDetail unknown = log_.txns["s1"];
  unknown.txn.gtid = "x1";
  unknown.txn.kind = "tcc";
  service_->Adopt({log_.txns["s1"], log_.txns["t1"], unknown});
  runner_.RunUntilIdle();
  EXPECT_EQ(service_->active_drivers(), 2) << "the saga and the 2PC; not the unknown kind";
  runner_.Advance(120000);
  EXPECT_EQ(log_.txns["t1"].txn.state, states::kAborted) << "2PC restored: presumed abort";
  EXPECT_EQ(log_.txns["s1"].txn.state, states::kCommitted);
  EXPECT_EQ(service_->active_drivers(), 0);
}

}  // namespace
}  // namespace treaty
