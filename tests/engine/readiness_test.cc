// Readiness (engine/readiness.h): the one answer of /readyz and of the 503
// of new work. Its checks in order (draining, a known-bad store answered at
// once with a background write probe, the write probe, the log's read
// check), their words, what the probe reports to StoreHealth, at most one
// probe at a time, and a store that throws. On a manual clock.

#include "engine/readiness.h"

#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <stdexcept>
#include <string>

#include "support/fake_task_runner.h"
#include "support/forwarding_log_store.h"

namespace treaty {
namespace {

using testing::FakeTaskRunner;

// Only CheckReady is called (through TxnQueries); it answers `ready`.
class ReadyStore : public testing::ForwardingLogStore {
 public:
  ReadyStore() : ForwardingLogStore(nullptr) {}
  Status CheckReady() override {
    ++checks;
    if (throws) throw std::runtime_error("ready check exploded");
    return ready;
  }
  Status ready;
  bool throws = false;
  int checks = 0;
};

class ReadinessTest : public ::testing::Test {
 protected:
  ReadinessTest() : health_(1000, &runner_) {}

  std::unique_ptr<Readiness> Make(bool with_probe = true) {
    ReadinessDeps deps;
    deps.queries = &queries_;
    deps.blocking = &runner_;
    deps.draining = &draining_;
    deps.health = &health_;
    if (with_probe) {
      deps.write_probe = [this] {
        ++probes_;
        if (probe_throws_) throw std::runtime_error("heartbeat exploded");
        return probe_;
      };
    }
    return std::make_unique<Readiness>(std::move(deps));
  }

  // Check's answer once the runner is idle; nullopt if none.
  std::optional<Status> Check(Readiness& r) {
    std::optional<Status> answer;
    r.Check([&](Status s) { answer = std::move(s); });
    runner_.RunUntilIdle();
    return answer;
  }

  FakeTaskRunner runner_;
  ReadyStore store_;
  TxnQueries queries_{&store_, &runner_};
  std::atomic<bool> draining_{false};
  StoreHealth health_;
  Status probe_;
  bool probe_throws_ = false;
  int probes_ = 0;
};

TEST_F(ReadinessTest, ReadyWhenTheProbeWritesAndTheLogIsCurrent) {
  auto r = Make();
  auto answer = Check(*r);
  ASSERT_TRUE(answer.has_value());
  EXPECT_TRUE(answer->ok()) << answer->ToString();
  EXPECT_EQ(probes_, 1);
  EXPECT_EQ(store_.checks, 1);
  EXPECT_TRUE(r->AdmitNewWork().ok());
}

TEST_F(ReadinessTest, DrainingAnswersAtOnceWithoutTouchingTheStore) {
  auto r = Make();
  draining_ = true;
  std::optional<Status> answer;
  r->Check([&](Status s) { answer = std::move(s); });
  ASSERT_TRUE(answer.has_value()) << "answered on the caller's thread";
  EXPECT_EQ(answer->code(), StatusCode::kUnavailable);
  EXPECT_EQ(answer->message(), "draining");
  runner_.RunUntilIdle();
  EXPECT_EQ(probes_, 0);
  EXPECT_EQ(store_.checks, 0);
  Status admitted = r->AdmitNewWork();
  EXPECT_EQ(admitted.code(), StatusCode::kUnavailable);
  EXPECT_EQ(admitted.message(), "this coordinator is draining; use another");
}

TEST_F(ReadinessTest, FailingWritesMakeItUnreadyAndMarkTheStoreDown) {
  auto r = Make();
  probe_ = Status::Unavailable("cannot execute UPDATE in a read-only transaction");
  auto answer = Check(*r);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->code(), StatusCode::kUnavailable);
  EXPECT_EQ(answer->message(),
            "writes to the transaction log fail: cannot execute UPDATE in a read-only transaction");
  EXPECT_EQ(store_.checks, 0) << "no read check after a failed write";
  EXPECT_FALSE(health_.up());
  Status admitted = r->AdmitNewWork();
  EXPECT_EQ(admitted.code(), StatusCode::kUnavailable);
  EXPECT_EQ(admitted.message(),
            "the transaction log is unreachable: cannot execute UPDATE in a read-only "
            "transaction; retry later");
}

TEST_F(ReadinessTest, KnownBadStoreAnswersAtOnceAndProbesInTheBackground) {
  auto r = Make();
  health_.Report(Status::Unavailable("connection refused"));
  std::optional<Status> answer;
  r->Check([&](Status s) { answer = std::move(s); });
  ASSERT_TRUE(answer.has_value()) << "answered on the caller's thread";
  EXPECT_EQ(answer->message(), "the transaction log is unreachable: connection refused");
  EXPECT_EQ(probes_, 0);
  runner_.RunUntilIdle();
  EXPECT_EQ(probes_, 1) << "the background probe";
  EXPECT_TRUE(health_.up()) << "its success marks the store up";
  auto again = Check(*r);
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->ok()) << again->ToString();
}

TEST_F(ReadinessTest, StalledStoreIsNotReady) {
  auto r = Make(/*with_probe=*/false);
  health_.ReportStall(5000, 3);
  std::optional<Status> answer;
  r->Check([&](Status s) { answer = std::move(s); });
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->message().rfind("the transaction log is stalled", 0), 0u) << answer->ToString();
  EXPECT_EQ(r->AdmitNewWork().code(), StatusCode::kUnavailable);
}

TEST_F(ReadinessTest, AnswerWithoutWriteNeitherFailsNorReports) {
  auto r = Make();
  health_.Report(Status::Unavailable("earlier failure"));
  probe_ = Status::LostOwnership("the membership row is taken");
  // Check 2 answers (down) and probes in the background; the probe's answer
  // is no evidence either way, so the store stays down.
  auto answer = Check(*r);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->code(), StatusCode::kUnavailable);
  EXPECT_EQ(probes_, 1);
  EXPECT_FALSE(health_.up());
}

TEST_F(ReadinessTest, OutdatedSchemaIsNotReady) {
  auto r = Make();
  store_.ready = Status::Unavailable("the log's schema is version 3, this release needs 4");
  auto answer = Check(*r);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->code(), StatusCode::kUnavailable);
  EXPECT_EQ(answer->message(),
            "the transaction log is not ready: the log's schema is version 3, this release "
            "needs 4");
  EXPECT_TRUE(r->AdmitNewWork().ok()) << "the read check does not gate new work";
}

TEST_F(ReadinessTest, ThrowingStoreIsInternalAndTheProbeRunsAgain) {
  auto r = Make();
  store_.throws = true;
  auto answer = Check(*r);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->code(), StatusCode::kInternal);
  EXPECT_NE(answer->message().find("ready check exploded"), std::string::npos)
      << answer->ToString();

  store_.throws = false;
  probe_throws_ = true;
  answer = Check(*r);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->code(), StatusCode::kUnavailable);
  EXPECT_NE(answer->message().find("heartbeat exploded"), std::string::npos) << answer->ToString();
  EXPECT_FALSE(health_.up());
  // A probe that threw does not hold the "one probe at a time" slot.
  probe_throws_ = false;
  runner_.Advance(2000);
  (void)Check(*r);  // down: answered at once, probes in the background
  EXPECT_EQ(probes_, 3);
  EXPECT_TRUE(health_.up());
}

TEST_F(ReadinessTest, WithoutProbeOrHealthOnlyTheReadCheck) {
  ReadinessDeps deps;
  deps.queries = &queries_;
  deps.blocking = &runner_;
  Readiness r(std::move(deps));
  auto answer = Check(r);
  ASSERT_TRUE(answer.has_value());
  EXPECT_TRUE(answer->ok());
  EXPECT_EQ(store_.checks, 1);
  EXPECT_TRUE(r.AdmitNewWork().ok());
}

}  // namespace
}  // namespace treaty
