// TxnService on fakes: what happens to a submission whose create commit
// answer is lost.

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

TEST_F(TxnServiceTest, CreateWhoseCommitAnswerWasLostIsHandedBackForRecovery) {
  log_.lose_ack_of_next_writes = 1;
  std::optional<Status> answer;
  service_->SubmitSaga(Spec("g1"), false, 0,
                       [&](Result<SubmitResult> r) { answer = r.status(); });
  runner_.Advance(5000);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->code(), StatusCode::kUnavailable) << "the client is told to retry";
  ASSERT_TRUE(log_.txns.count("g1")) << "the create did commit";
  EXPECT_EQ(log_.txns["g1"].txn.owner, "") << "so it is handed back, for a peer (or us) to adopt";
  EXPECT_EQ(log_.txns["g1"].events.back().type, "recovery");
  EXPECT_EQ(caller_.calls.size(), 0u) << "nothing is driven by the dropped driver";
}

TEST_F(TxnServiceTest, CreateThatNeverCommittedLeavesNothingBehind) {
  log_.fail_next_writes = 1;
  std::optional<Status> answer;
  service_->SubmitSaga(Spec("g2"), false, 0,
                       [&](Result<SubmitResult> r) { answer = r.status(); });
  runner_.Advance(5000);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->code(), StatusCode::kUnavailable);
  EXPECT_FALSE(log_.txns.count("g2"));
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
