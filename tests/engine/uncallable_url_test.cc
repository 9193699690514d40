// A participant URL that can never be called. Submission
// refuses such URLs now, but a log written by an older release can hold one:
// the call fails as kUncallable (never retried), a saga still compensates
// every other step, a compensation or phase-2 call that can never be made is
// flagged needs_attention at once, and restoring such a log still works.
// Fake clock, log and participants; the URL check is the callers' own parser.

#include <gtest/gtest.h>

#include "common/endpoint.h"
#include "common/limits.h"
#include "common/text.h"
#include "engine/engine_fakes.h"
#include "engine/saga.h"
#include "engine/states.h"
#include "engine/two_phase.h"

namespace treaty {
namespace {

using testing::FakeCaller;
using testing::FakeTaskRunner;

// What HttpParticipantCaller / RoutingCaller do before sending: a URL
// ParseEndpoint refuses completes as kUncallable (posted, never inline);
// everything else goes to the scripted FakeCaller.
class EndpointCheckingCaller : public ParticipantCaller {
 public:
  EndpointCheckingCaller(FakeCaller* inner, FakeTaskRunner* runner)
      : inner_(inner), runner_(runner) {}

  void Call(ParticipantRequest request, Callback done) override {
    auto endpoint = ParseEndpoint(request.url, "participant URL");
    if (endpoint.ok()) return inner_->Call(std::move(request), std::move(done));
    uncallable.push_back(request.branch + "/" + request.op);
    ParticipantResponse r;
    r.outcome = CallOutcome::kUncallable;
    r.error = endpoint.status().message();
    runner_->Post([done = std::move(done), r] { done(r); });
  }

  std::vector<std::string> uncallable;  // "branch/op" of each call refused

 private:
  FakeCaller* inner_;
  FakeTaskRunner* runner_;
};

class UncallableUrlTest : public testing::DriverTest {
 protected:
  UncallableUrlTest() : DriverTest(11), checking_(&caller_, &runner_) { ctx_.caller = &checking_; }

  static SagaSpec Saga3(const std::string& gtid) {
    SagaSpec spec;
    spec.gtid = gtid;
    for (const std::string n : {"flight", "hotel", "car"}) {
      SagaStep s;
      s.name = n;
      s.action = "http://svc/" + n + "/action";
      s.compensate = "http://svc/" + n + "/compensate";
      s.retry = {5, 50, 200};
      spec.steps.push_back(s);
    }
    return spec;
  }

  static BranchSpec Branch(const std::string& n) {
    BranchSpec b;
    b.name = n;
    b.prepare = "http://svc/" + n + "/prepare";
    b.commit = "http://svc/" + n + "/commit";
    b.abort = "http://svc/" + n + "/abort";
    return b;
  }

  std::shared_ptr<TwoPhase> Begin2pc(const std::string& gtid, std::vector<BranchSpec> branches,
                                     bool one_phase) {
    TwoPhaseSpec spec;
    spec.gtid = gtid;
    spec.timeout_ms = 600000;
    spec.prepare_retry = {3, 50, 200};
    auto t = OnEngine([&] { return TwoPhase::Create(&ctx_, spec); });
    keep_.push_back(t);
    OnEngine([&] { t->Start(); });
    runner_.Advance(10);
    for (auto& b : branches) {
      Status got = Status::Internal("no answer");
      b.one_phase = one_phase;
      OnEngine([&] { t->Enlist(std::move(b), 16, [&](Status s) { got = s; }); });
      runner_.Advance(10);
      EXPECT_TRUE(got.ok()) << got.ToString();
    }
    return t;
  }

  std::string Commit(const std::shared_ptr<TwoPhase>& t) {
    std::string decision = "(no answer)";
    OnEngine([&] {
      t->RequestCommit(
          [&](Result<TxnState> r) { decision = r.ok() ? ToString(*r) : r.status().ToString(); });
    });
    runner_.RunUntil([&] { return decision != "(no answer)"; }, 60000);
    return decision;
  }

  std::string Finish(const std::string& gtid) {
    runner_.RunUntil([&] { return recorder_.finished.count(gtid) > 0; });
    return recorder_.finished.count(gtid) ? recorder_.finished[gtid] : "(not finished)";
  }

  bool HasEvent(const std::string& gtid, const std::string& type, const std::string& text) {
    for (const auto& e : log_.txns[gtid].events) {
      if (e.type == type && e.detail.find(text) != std::string::npos) return true;
    }
    return false;
  }

  EndpointCheckingCaller checking_;
  std::vector<std::shared_ptr<TxnDriver>> keep_;
};

TEST_F(UncallableUrlTest, UncallableActionFailsTheStepAtOnceAndTheSagaCompensates) {
  SagaSpec spec = Saga3("g1");
  spec.steps[1].action = "http://svc:99999/hotel/action";
  auto saga = OnEngine([&] { return Saga::Create(&ctx_, spec); });
  keep_.push_back(saga);
  OnEngine([&] { saga->Start(); });
  EXPECT_EQ(Finish("g1"), states::kAborted);
  EXPECT_EQ(checking_.uncallable, (std::vector<std::string>{"hotel/action"})) << "never retried";
  EXPECT_EQ(log_.Branch("g1", "hotel")->state, states::kCompensated);
  EXPECT_EQ(caller_.Count("g1", "flight", "compensate"), 1);
  EXPECT_EQ(caller_.Count("g1", "car", "action"), 0);
}

// The reported case: the uncallable step's compensation must not hold the
// earlier step's compensation back forever.
TEST_F(UncallableUrlTest, UncallableCompensationIsFlaggedAndDoesNotBlockEarlierSteps) {
  SagaSpec spec = Saga3("g1");
  spec.steps[1].action = "http://svc:0/hotel/action";
  spec.steps[1].compensate = "http://svc:abc/hotel/compensate";
  auto saga = OnEngine([&] { return Saga::Create(&ctx_, spec); });
  keep_.push_back(saga);
  OnEngine([&] { saga->Start(); });
  ASSERT_TRUE(runner_.RunUntil([&] { return caller_.Count("g1", "flight", "compensate") == 1; }));
  runner_.Advance(10 * 60 * 1000);  // ten minutes: nothing is retried
  EXPECT_EQ(checking_.uncallable, (std::vector<std::string>{"hotel/action", "hotel/compensate"}));
  EXPECT_EQ(log_.Branch("g1", "flight")->state, states::kCompensated);
  EXPECT_EQ(log_.Branch("g1", "hotel")->state, states::kCompensating);
  EXPECT_NE(log_.Branch("g1", "hotel")->last_error.find("not callable"), std::string::npos)
      << log_.Branch("g1", "hotel")->last_error;
  EXPECT_EQ(log_.txns["g1"].txn.state, states::kCompensating) << "an operator must look at it";
  EXPECT_TRUE(log_.txns["g1"].txn.needs_attention);
  EXPECT_TRUE(HasEvent("g1", "attention", "compensation of step 'hotel' cannot be called"));
  EXPECT_EQ(recorder_.finished.count("g1"), 0u);
}

// A log written by an older release: the stored spec holds a URL today's
// submission rules refuse. Restoring it must work (else nothing ever drives
// it again) and the saga must still finish its compensation.
TEST_F(UncallableUrlTest, RestoredSpecWithAnUncallableUrlIsStillDriven) {
  caller_.Set("hotel", "action", {{CallOutcome::kOk}, 10000});
  auto first = OnEngine([&] { return Saga::Create(&ctx_, Saga3("g1")); });
  keep_.push_back(first);
  OnEngine([&] { first->Start(); });
  runner_.RunUntil([&] { return caller_.Count("g1", "hotel", "action") == 1; });
  OnEngine([&] { first->Drop(Status::Internal("simulated crash")); });
  std::string& stored = log_.txns["g1"].txn.spec;
  const std::string good = "http://svc/hotel/action";
  ASSERT_NE(stored.find(good), std::string::npos);
  stored.replace(stored.find(good), good.size(), "http://svc:99999/hotel/action");
  log_.SetOwner("g1", "coord-2");
  ctx_.owner = "coord-2";

  auto restored = Saga::Restore(&ctx_, log_.txns["g1"]);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  OnEngine([&] { (*restored)->Start(); });
  keep_.push_back(*restored);
  EXPECT_EQ(Finish("g1"), states::kAborted);
  EXPECT_EQ(log_.Branch("g1", "hotel")->state, states::kCompensated);
  EXPECT_EQ(log_.Branch("g1", "flight")->state, states::kCompensated);
}

TEST_F(UncallableUrlTest, UncallablePrepareIsANoVote) {
  BranchSpec bad = Branch("b");
  bad.prepare = "http://[::1/b/prepare";
  auto t = Begin2pc("t1", {Branch("a"), bad}, false);
  EXPECT_EQ(Commit(t), states::kAborting);
  EXPECT_EQ(Finish("t1"), states::kAborted);
  EXPECT_EQ(caller_.Count("t1", "a", "abort"), 1);
  EXPECT_EQ(caller_.Count("t1", "b", "abort"), 1);
}

TEST_F(UncallableUrlTest, UncallableCommitIsFlaggedAndTheOtherBranchesCommit) {
  BranchSpec bad = Branch("b");
  bad.commit = "http://svc:99999/b/commit";
  auto t = Begin2pc("t1", {Branch("a"), bad}, false);
  EXPECT_EQ(Commit(t), states::kCommitting);
  ASSERT_TRUE(runner_.RunUntil([&] { return log_.txns["t1"].txn.needs_attention; }));
  runner_.Advance(10 * 60 * 1000);
  EXPECT_EQ(checking_.uncallable, (std::vector<std::string>{"b/commit"})) << "never retried";
  EXPECT_EQ(log_.Branch("t1", "a")->state, states::kCommitted);
  EXPECT_EQ(log_.Branch("t1", "b")->state, states::kCommitting);
  EXPECT_EQ(log_.txns["t1"].txn.state, states::kCommitting);
  EXPECT_TRUE(HasEvent("t1", "attention", "commit of branch 'b' cannot be called"));
}

TEST_F(UncallableUrlTest, UncallableOnePhaseCommitAbortsNothingWasSent) {
  BranchSpec bad = Branch("only");
  bad.commit = "thrift://svc:abc";
  auto t = Begin2pc("t1", {bad}, true);
  Commit(t);
  EXPECT_EQ(Finish("t1"), states::kAborted);
  EXPECT_EQ(checking_.uncallable, (std::vector<std::string>{"only/commit"}));
}

// At the engine boundary: whatever a caller puts in `error`, what the
// engine stores (last_error, history) is valid UTF-8 without NUL, bounded.
TEST(DescribeResponseTest, IsValidUtf8AndBounded) {
  ParticipantResponse r;
  r.outcome = CallOutcome::kTransient;
  r.http_status = 503;
  r.error = "HTTP 503: x";
  for (int i = 0; i < 300; ++i) r.error += "\xC3\xA9";
  r.error += std::string("\0\xFF", 2);
  const std::string d = DescribeResponse(r);
  EXPECT_TRUE(IsValidUtf8(d));
  EXPECT_EQ(d.find('\0'), std::string::npos);
  EXPECT_LE(d.size(), limits::kErrorExcerptBytes);
  r.outcome = CallOutcome::kUncallable;
  r.error = "participant URL has an invalid port";
  EXPECT_EQ(DescribeResponse(r), "not callable: participant URL has an invalid port");
}

}  // namespace
}  // namespace treaty
