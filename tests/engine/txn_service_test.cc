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

class TxnServiceTest : public ::testing::Test {
 protected:
  TxnServiceTest() : caller_(&runner_), log_(&runner_) {
    TxnServiceDeps deps;
    deps.engine_runner = &runner_;
    deps.blocking_runner = &runner_;
    deps.caller = &caller_;
    deps.log = &log_;
    deps.owner = "coord-1";
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
  EXPECT_EQ(service_->counters().started, 1);
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
  EXPECT_EQ(service_->counters().committed, 1);
}

}  // namespace
}  // namespace treaty
