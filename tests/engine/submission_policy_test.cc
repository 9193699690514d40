// TxnService with a ParticipantPolicy (the SSRF guard at submission): a saga
// or a 2PC branch naming a denied participant URL is refused with
// InvalidArgument naming the field, before anything is logged or called.

#include <gtest/gtest.h>

#include "engine/engine_fakes.h"
#include "engine/txn_service.h"
#include "security/participant_policy.h"

namespace treaty {
namespace {

using testing::FakeCaller;
using testing::FakeLog;
using testing::FakeTaskRunner;

class SubmissionPolicyTest : public ::testing::Test {
 protected:
  SubmissionPolicyTest() : caller_(&runner_), log_(&runner_) {
    auto policy = ParticipantPolicy::Create({});
    EXPECT_TRUE(policy.ok()) << policy.status().ToString();
    policy_ = std::move(*policy);
    policy_->AddOwnListener("127.0.0.1", 8080);
    TxnServiceDeps deps;
    deps.engine_runner = &runner_;
    deps.blocking_runner = &runner_;
    deps.caller = &caller_;
    deps.log = &log_;
    deps.owner = "coord-1";
    deps.participant_policy = policy_.get();
    service_ = std::make_unique<TxnService>(deps, TxnServiceOptions{});
  }

  static SagaSpec Spec(const std::string& gtid, const std::string& action,
                       const std::string& compensate) {
    SagaSpec spec;
    spec.gtid = gtid;
    SagaStep s;
    s.name = "pay";
    s.action = action;
    s.compensate = compensate;
    spec.steps.push_back(s);
    return spec;
  }

  Result<SubmitResult> Submit(SagaSpec spec) {
    std::optional<Result<SubmitResult>> answer;
    service_->SubmitSaga(std::move(spec), false, 0,
                         [&](Result<SubmitResult> r) { answer = std::move(r); });
    runner_.Advance(1000);
    EXPECT_TRUE(answer.has_value());
    return answer.value_or(Status::Internal("no answer"));
  }

  static BranchSpec Branch(const std::string& name, const std::string& host) {
    BranchSpec b;
    b.name = name;
    b.prepare = "http://" + host + "/prepare";
    b.commit = "http://" + host + "/commit";
    b.abort = "http://" + host + "/abort";
    return b;
  }

  Result<SubmitResult> Enlist(const std::string& gtid, BranchSpec branch) {
    std::optional<Result<SubmitResult>> answer;
    service_->RegisterBranch(gtid, std::move(branch), /*client=*/"",
                             [&](Result<SubmitResult> r) { answer = std::move(r); });
    runner_.Advance(10);
    EXPECT_TRUE(answer.has_value());
    return answer.value_or(Status::Internal("no answer"));
  }

  FakeTaskRunner runner_;
  FakeCaller caller_;
  FakeLog log_;
  std::shared_ptr<ParticipantPolicy> policy_;
  std::unique_ptr<TxnService> service_;
};

TEST_F(SubmissionPolicyTest, SagaCallingTheMetadataAddressIsRefusedAndNothingIsLogged) {
  auto r = Submit(Spec("g1", "http://169.254.169.254/latest/meta-data", "http://svc/undo"));
  ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find("step 'pay': 'action'"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("denied by the participant policy"), std::string::npos);
  EXPECT_EQ(log_.writes, 0);
  EXPECT_TRUE(log_.txns.empty());
  EXPECT_TRUE(caller_.calls.empty());
}

TEST_F(SubmissionPolicyTest, CompensateOnTheCoordinatorsOwnListenerIsRefused) {
  auto r = Submit(Spec("g2", "http://svc/pay", "http://0x7f000001:8080/v1/2pc/victim/abort"));
  ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find("step 'pay': 'compensate'"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("own listener"), std::string::npos);
  EXPECT_EQ(log_.writes, 0);
  EXPECT_TRUE(caller_.calls.empty());
}

TEST_F(SubmissionPolicyTest, AllowedSagaRuns) {
  auto r = Submit(Spec("g3", "http://svc/pay", "http://127.0.0.1:9090/undo"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->created);
  ASSERT_TRUE(log_.txns.count("g3"));
  EXPECT_EQ(caller_.calls.size(), 1u);
}

TEST_F(SubmissionPolicyTest, BranchWithALinkLocalUrlIsNotEnlisted) {
  std::optional<Result<SubmitResult>> begun;
  TwoPhaseSpec spec;
  spec.gtid = "t1";
  service_->Begin2pc(spec, [&](Result<SubmitResult> r) { begun = std::move(r); });
  runner_.Advance(10);
  ASSERT_TRUE(begun.has_value() && begun->ok());
  const int writes_after_begin = log_.writes;

  auto bad = Branch("a", "svc");
  bad.abort = "http://[fe80::1]:8443/abort";
  auto r = Enlist("t1", bad);
  ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find("'abort' (URL [fe80::1]:8443)"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("link-local address"), std::string::npos);
  EXPECT_EQ(log_.writes, writes_after_begin);
  EXPECT_EQ(log_.Branch("t1", "a"), nullptr);

  auto own = Enlist("t1", Branch("b", "[::1]:8080"));
  ASSERT_EQ(own.status().code(), StatusCode::kInvalidArgument) << own.status().ToString();
  EXPECT_NE(own.status().message().find("'prepare'"), std::string::npos);

  auto good = Enlist("t1", Branch("c", "svc"));
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_NE(log_.Branch("t1", "c"), nullptr);
}

}  // namespace
}  // namespace treaty
