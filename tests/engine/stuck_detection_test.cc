// Stuck detection and bounded history in the drivers, with a fake clock,
// fake participants and an in-memory log (which collapses events as the
// LogStore does): configuration errors flag at once and retry at the capped
// backoff, failing saga actions flag a RUNNING saga, past-deadline flags
// (also after a restore), the transaction's last_error, and one collapsed
// retry event per branch.

#include <gtest/gtest.h>

#include "engine/engine_fakes.h"
#include "engine/saga.h"
#include "engine/states.h"
#include "engine/two_phase.h"

namespace treaty {
namespace {

using Outcomes = std::vector<CallOutcome>;
constexpr auto kOk = CallOutcome::kOk;
constexpr auto kNo = CallOutcome::kBusinessFailure;
constexpr auto kDown = CallOutcome::kTransient;

class StuckDetectionTest : public testing::DriverTest {
 protected:
  StuckDetectionTest() : DriverTest(11) {}

  // Prepares: 5 attempts, 50..400 ms apart; steps: `max_attempts`, 50..200 ms apart.
  static constexpr RetryPolicy kPrepareRetry{5, 50, 400};
  std::shared_ptr<Saga> RunSaga(const std::string& gtid, std::vector<std::string> names,
                                int max_attempts, int64_t timeout_ms = 0) {
    return StartSaga(SagaSpecOf(gtid, names, {max_attempts, 50, 200}, timeout_ms));
  }

  const TxnRow& Row(const std::string& gtid) { return log_.txns[gtid].txn; }
  bool Flagged(const std::string& gtid) { return log_.txns[gtid].txn.needs_attention; }

  // The events of `gtid` of `type` (and branch, unless empty).
  std::vector<EventRow> Events(const std::string& gtid, const std::string& type,
                               const std::string& branch = "") {
    std::vector<EventRow> out;
    for (const auto& e : log_.txns[gtid].events) {
      if (e.type == type && (branch.empty() || e.branch == branch)) out.push_back(e);
    }
    return out;
  }
};

// A commit URL answering 404 is a configuration error: flagged at the first
// failure (before: only after attention_after_attempts failures), retried at
// retry_max_backoff_ms (before: from retry_initial_backoff_ms up).
TEST_F(StuckDetectionTest, ConfigErrorOnCommitFlagsAtOnceAndRetriesAtTheCappedBackoff) {
  ctx_.options.attention_after_attempts = 100;
  caller_.Set("a", "commit", {{kDown, kDown, kDown, kOk}, 5, false, /*config_error=*/true});
  auto t = Begin2pc("g1", {"a", "b"}, kPrepareRetry);
  RequestCommit(t);
  ASSERT_TRUE(runner_.RunUntil([&] { return caller_.Count("g1", "a", "commit") == 1; }, 10000));
  ASSERT_TRUE(runner_.RunUntil([&] { return Flagged("g1"); }, 100));
  EXPECT_EQ(Row("g1").state, states::kCommitting);
  auto attention = Events("g1", "attention");
  ASSERT_EQ(attention.size(), 1u);
  EXPECT_NE(attention[0].detail.find("commit of branch 'a'"), std::string::npos)
      << attention[0].detail;
  EXPECT_NE(attention[0].detail.find("404"), std::string::npos) << attention[0].detail;
  // The transaction shows the branch's error.
  EXPECT_EQ(Row("g1").last_error, log_.Branch("g1", "a")->last_error);
  EXPECT_NE(Row("g1").last_error.find("404"), std::string::npos) << Row("g1").last_error;

  ASSERT_TRUE(runner_.RunUntil([&] { return recorder_.finished.count("g1") > 0; }, 60000));
  EXPECT_EQ(recorder_.finished["g1"], states::kCommitted);
  const auto at = caller_.Times("g1", "a", "commit");
  ASSERT_EQ(at.size(), 4u);
  for (size_t i = 1; i < at.size(); ++i) {
    EXPECT_GE(at[i] - at[i - 1], ctx_.options.retry_max_backoff_ms) << "retry " << i;
    EXPECT_LT(at[i] - at[i - 1], ctx_.options.retry_max_backoff_ms + 100) << "retry " << i;
  }
  // Finished: the flag and the error are cleared.
  EXPECT_FALSE(Flagged("g1"));
  EXPECT_EQ(Row("g1").last_error, "");
  // The three retries are one collapsed event naming the last error.
  auto retries = Events("g1", "retry", "a");
  ASSERT_EQ(retries.size(), 1u);
  EXPECT_EQ(retries[0].count, 3);
  EXPECT_LT(retries[0].first_at_ms, retries[0].at_ms);
  EXPECT_NE(retries[0].detail.find("404"), std::string::npos) << retries[0].detail;
}

TEST_F(StuckDetectionTest, ConfigErrorOnAbortAndPrepareFlagsAtOnce) {
  caller_.Set("a", "prepare", {{kDown, kDown}, 5, false, /*config_error=*/true});
  caller_.Set("a", "abort", {{kDown, kOk}, 5, false, /*config_error=*/true});
  auto t = Begin2pc("g1", {"a"}, kPrepareRetry);
  RequestCommit(t);
  ASSERT_TRUE(runner_.RunUntil([&] { return Flagged("g1"); }, 1000));
  EXPECT_EQ(Row("g1").state, states::kPreparing);
  EXPECT_NE(Events("g1", "attention")[0].detail.find("prepare of branch 'a'"), std::string::npos);
  // The prepare retry is planned at the prepare policy's cap (400 ms).
  const BranchRow* a = log_.Branch("g1", "a");
  EXPECT_EQ(a->next_attempt_at_ms - runner_.NowMs(), 400);
  // The prepare policy still ends in a no vote: abort, retried until acked.
  ASSERT_TRUE(runner_.RunUntil([&] { return recorder_.finished.count("g1") > 0; }, 60000));
  EXPECT_EQ(recorder_.finished["g1"], states::kAborted);
  EXPECT_EQ(caller_.Count("g1", "a", "prepare"), 5);
  EXPECT_EQ(Row("g1").last_error, "");
}

// A saga whose action keeps failing (transiently) stayed a plain RUNNING row
// for as long as its retry policy allowed: flagged after
// attention_after_attempts (3 in the fixture) failed attempts.
TEST_F(StuckDetectionTest, RunningSagaWhoseActionKeepsFailingIsFlagged) {
  caller_.Set("pay", "action", {{kDown}});
  RunSaga("s1", {"pay"}, /*max_attempts=*/20);
  ASSERT_TRUE(runner_.RunUntil([&] { return caller_.Count("s1", "pay", "action") == 2; }, 10000));
  runner_.Advance(20);  // the second answer is logged
  EXPECT_FALSE(Flagged("s1"));
  ASSERT_TRUE(runner_.RunUntil([&] { return Flagged("s1"); }, 10000));
  EXPECT_EQ(caller_.Count("s1", "pay", "action"), 3);
  EXPECT_EQ(Row("s1").state, states::kRunning);
  const auto attention = Events("s1", "attention");
  ASSERT_EQ(attention.size(), 1u);
  EXPECT_NE(attention[0].detail.find("action of step 'pay' failed 3 times"), std::string::npos)
      << attention[0].detail;
  EXPECT_NE(Row("s1").last_error, "");
  // It keeps its retry policy: all 20 attempts, then compensation.
  ASSERT_TRUE(runner_.RunUntil([&] { return recorder_.finished.count("s1") > 0; }, 60000));
  EXPECT_EQ(recorder_.finished["s1"], states::kAborted);
  EXPECT_EQ(caller_.Count("s1", "pay", "action"), 20);
  EXPECT_EQ(Events("s1", "retry", "pay").size(), 1u);
  EXPECT_EQ(Events("s1", "retry", "pay")[0].count, 19);
}

TEST_F(StuckDetectionTest, ConfigErrorOnSagaActionFlagsAtOnceAndStillFailsAfterMaxAttempts) {
  caller_.Set("pay", "action", {{kDown}, 5, false, /*config_error=*/true});
  RunSaga("s1", {"ship", "pay"}, /*max_attempts=*/3);
  ASSERT_TRUE(runner_.RunUntil([&] { return Flagged("s1"); }, 10000));
  EXPECT_EQ(caller_.Count("s1", "pay", "action"), 1);
  EXPECT_EQ(Row("s1").state, states::kRunning);
  ASSERT_TRUE(runner_.RunUntil([&] { return recorder_.finished.count("s1") > 0; }, 60000));
  EXPECT_EQ(recorder_.finished["s1"], states::kAborted);
  const auto at = caller_.Times("s1", "pay", "action");
  ASSERT_EQ(at.size(), 3u);
  EXPECT_GE(at[1] - at[0], 200);  // the step's max_backoff_ms
  EXPECT_GE(at[2] - at[1], 200);
  EXPECT_EQ(caller_.Count("s1", "ship", "compensate"), 1);
}

TEST_F(StuckDetectionTest, ConfigErrorOnCompensationFlagsAtOnce) {
  caller_.Set("pay", "action", {{kNo}});
  caller_.Set("ship", "compensate", {{kDown, kDown, kOk}, 5, false, /*config_error=*/true});
  RunSaga("s1", {"ship", "pay"}, 3);
  ASSERT_TRUE(runner_.RunUntil([&] { return Flagged("s1"); }, 10000));
  EXPECT_EQ(caller_.Count("s1", "ship", "compensate"), 1);
  EXPECT_NE(Events("s1", "attention")[0].detail.find("compensate of step 'ship'"),
            std::string::npos);
  ASSERT_TRUE(runner_.RunUntil([&] { return recorder_.finished.count("s1") > 0; }, 60000));
  const auto at = caller_.Times("s1", "ship", "compensate");
  ASSERT_EQ(at.size(), 3u);
  EXPECT_GE(at[2] - at[1], ctx_.options.retry_max_backoff_ms);
  EXPECT_EQ(Row("s1").last_error, "");
}

// Decided (COMMITTING) before its deadline and still unfinished when it
// passes: flagged at the deadline.
TEST_F(StuckDetectionTest, CommittingPastItsDeadlineIsFlaggedThen) {
  ctx_.options.attention_after_attempts = 1000;
  caller_.Set("a", "commit", {{kDown}});
  const int64_t begin = runner_.NowMs();
  auto t = Begin2pc("g1", {"a"}, kPrepareRetry, /*timeout_ms=*/5000);
  RequestCommit(t);
  runner_.RunUntil([] { return false; }, begin + 4900 - runner_.NowMs());
  EXPECT_EQ(Row("g1").state, states::kCommitting);
  EXPECT_FALSE(Flagged("g1"));
  ASSERT_TRUE(runner_.RunUntil([&] { return Flagged("g1"); }, 1000));
  EXPECT_GE(runner_.NowMs(), begin + 5000);
  EXPECT_NE(Events("g1", "attention")[0].detail.find("still COMMITTING past its deadline"),
            std::string::npos)
      << Events("g1", "attention")[0].detail;
}

// The deadline itself decided the abort: flagged only if still unfinished
// stuck_after_ms after it.
TEST_F(StuckDetectionTest, AbortTheDeadlineDecidedIsFlaggedStuckAfterLater) {
  ctx_.options.attention_after_attempts = 1000;
  ctx_.options.stuck_after_ms = 5000;
  caller_.Set("a", "abort", {{kDown}});
  const int64_t begin = runner_.NowMs();
  Begin2pc("g1", {"a"}, kPrepareRetry, /*timeout_ms=*/1000);
  runner_.RunUntil([] { return false; }, begin + 5900 - runner_.NowMs());
  EXPECT_EQ(Row("g1").state, states::kAborting);
  EXPECT_FALSE(Flagged("g1"));
  ASSERT_TRUE(runner_.RunUntil([&] { return Flagged("g1"); }, 1000));
  EXPECT_GE(runner_.NowMs(), begin + 6000);
  EXPECT_NE(Events("g1", "attention")[0].detail.find("still ABORTING 5000 ms past its deadline"),
            std::string::npos)
      << Events("g1", "attention")[0].detail;
}

TEST_F(StuckDetectionTest, SagaPastDeadlineFlags) {
  ctx_.options.attention_after_attempts = 1000;
  ctx_.options.stuck_after_ms = 3000;
  // s1: compensating (a step failed) before its deadline -> flagged at it.
  caller_.Set("x", "action", {{kNo}});
  caller_.Set("w", "compensate", {{kDown}});
  const int64_t begin = runner_.NowMs();
  RunSaga("s1", {"w", "x"}, 3, /*timeout_ms=*/2000);
  // s2: its deadline sends it into compensation -> flagged 3000 ms later.
  caller_.Set("slow", "action", {{kDown}});
  caller_.Set("v", "compensate", {{kDown}});
  RunSaga("s2", {"v", "slow"}, 1000, /*timeout_ms=*/2000);
  runner_.RunUntil([] { return false; }, begin + 1900 - runner_.NowMs());
  EXPECT_EQ(Row("s1").state, states::kCompensating);
  EXPECT_FALSE(Flagged("s1"));
  runner_.RunUntil([] { return false; }, begin + 2100 - runner_.NowMs());
  EXPECT_TRUE(Flagged("s1"));
  EXPECT_EQ(Row("s2").state, states::kCompensating);
  EXPECT_FALSE(Flagged("s2"));
  runner_.RunUntil([] { return false; }, begin + 4900 - runner_.NowMs());
  EXPECT_FALSE(Flagged("s2"));
  runner_.RunUntil([] { return false; }, begin + 5100 - runner_.NowMs());
  EXPECT_TRUE(Flagged("s2"));
}

TEST_F(StuckDetectionTest, StuckAfterZeroRaisesNoDeadlineFlag) {
  ctx_.options.attention_after_attempts = 1000;
  ctx_.options.stuck_after_ms = 0;
  caller_.Set("a", "commit", {{kDown}});
  auto t = Begin2pc("g1", {"a"}, kPrepareRetry, /*timeout_ms=*/1000);
  RequestCommit(t);
  runner_.RunUntil([] { return false; }, 100000);
  EXPECT_EQ(Row("g1").state, states::kCommitting);
  EXPECT_FALSE(Flagged("g1"));
}

// A restored transaction computes the same flags from its logged deadline.
TEST_F(StuckDetectionTest, RestoredCommittingIsFlaggedAtItsLoggedDeadline) {
  ctx_.options.attention_after_attempts = 1000;
  ctx_.options.stuck_after_ms = 5000;
  caller_.Set("a", "commit", {{kDown}});
  caller_.Set("b", "commit", {{kDown}});
  const int64_t begin = runner_.NowMs();
  auto t1 = Begin2pc("g1", {"a"}, kPrepareRetry, /*timeout_ms=*/3000);
  auto t2 = Begin2pc("g2", {"b"}, kPrepareRetry, /*timeout_ms=*/3000);
  RequestCommit(t1);
  RequestCommit(t2);
  runner_.RunUntil([] { return false; }, 1000);
  ASSERT_EQ(Row("g1").state, states::kCommitting);
  OnEngine([&] { t1->Drop(Status::LostOwnership("restart")); });
  OnEngine([&] { t2->Drop(Status::LostOwnership("restart")); });
  // g1 comes back before its deadline: flagged at the deadline.
  auto r1 = TwoPhase::Restore(&ctx_, log_.txns["g1"]);
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  drivers_.push_back(*r1);
  OnEngine([&] { (*r1)->Start(); });
  runner_.RunUntil([] { return false; }, begin + 2900 - runner_.NowMs());
  EXPECT_FALSE(Flagged("g1"));
  runner_.RunUntil([] { return false; }, begin + 3200 - runner_.NowMs());
  EXPECT_TRUE(Flagged("g1"));
  // g2 comes back past its deadline: flagged stuck_after_ms after the deadline.
  runner_.RunUntil([] { return false; }, begin + 4000 - runner_.NowMs());
  auto r2 = TwoPhase::Restore(&ctx_, log_.txns["g2"]);
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  drivers_.push_back(*r2);
  OnEngine([&] { (*r2)->Start(); });
  runner_.RunUntil([] { return false; }, begin + 7900 - runner_.NowMs());
  EXPECT_FALSE(Flagged("g2"));
  runner_.RunUntil([] { return false; }, begin + 8200 - runner_.NowMs());
  EXPECT_TRUE(Flagged("g2"));
}

// One branch retried 30 times leaves one retry event (before: 30), and the
// transaction's last_error follows the branch's.
TEST_F(StuckDetectionTest, ThirtyRetriesOfOneBranchAreOneEvent) {
  ctx_.options.attention_after_attempts = 1000;
  Outcomes outcomes(30, kDown);
  outcomes.push_back(kOk);
  caller_.Set("a", "commit", {outcomes});
  auto t = Begin2pc("g1", {"a", "b"}, kPrepareRetry);
  RequestCommit(t);
  ASSERT_TRUE(runner_.RunUntil([&] { return caller_.Count("g1", "a", "commit") == 20; }, 600000));
  runner_.Advance(20);
  EXPECT_NE(Row("g1").last_error, "");
  EXPECT_EQ(Row("g1").last_error, log_.Branch("g1", "a")->last_error);
  ASSERT_TRUE(runner_.RunUntil([&] { return recorder_.finished.count("g1") > 0; }, 600000));
  auto retries = Events("g1", "retry", "a");
  ASSERT_EQ(retries.size(), 1u);
  EXPECT_EQ(retries[0].count, 30);
  EXPECT_NE(retries[0].detail.find("scripted"), std::string::npos) << retries[0].detail;
  EXPECT_NE(retries[0].detail.find("failed 30 times"), std::string::npos) << retries[0].detail;
  size_t of_a = 0;
  for (const auto& e : log_.txns["g1"].events) of_a += e.branch == "a";
  EXPECT_LE(of_a, 6u);  // enlisted, preparing, prepared, committing, retry, committed
  EXPECT_EQ(Row("g1").last_error, "");
}

}  // namespace
}  // namespace treaty
