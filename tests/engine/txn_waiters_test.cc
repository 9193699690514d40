// TxnWaiters on a fake clock: held answers are given once, when the
// transaction finishes or when their wait runs out, whichever comes first.

#include "engine/txn_waiters.h"

#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include "support/fake_task_runner.h"

namespace treaty {
namespace {

using testing::FakeTaskRunner;

class TxnWaitersTest : public ::testing::Test {
 protected:
  TxnWaitersTest()
      : waiters_(std::make_unique<TxnWaiters>(
            &runner_, [this](const std::string& gtid) { return state_of_[gtid]; })) {}

  // Adds a waiter of `gtid` that records its answers in `answers_`.
  void Add(const std::string& gtid, int64_t wait_ms, bool created, int tag) {
    runner_.RunInTask([&] {
      waiters_->Add(gtid, wait_ms, created, [this, tag](Result<SubmitResult> r) {
        ASSERT_TRUE(r.ok());
        answers_.push_back({tag, *r});
      });
    });
  }
  void Finished(const std::string& gtid, const std::string& state) {
    runner_.RunInTask([&] { waiters_->Finished(gtid, state); });
  }

  struct Answer {
    int tag;
    SubmitResult result;
  };
  FakeTaskRunner runner_;
  std::map<std::string, std::string> state_of_;
  std::unique_ptr<TxnWaiters> waiters_;
  std::vector<Answer> answers_;
};

TEST_F(TxnWaitersTest, FinishedAnswersEveryWaiterOfThatTransactionInOrderOnce) {
  Add("g1", 1000, true, 1);
  Add("g2", 1000, false, 2);
  Add("g1", 5000, false, 3);
  EXPECT_EQ(waiters_->size(), 3u);
  Finished("g1", "COMMITTED");
  ASSERT_EQ(answers_.size(), 2u);
  EXPECT_EQ(answers_[0].tag, 1);
  EXPECT_EQ(answers_[1].tag, 3);
  for (const Answer& a : answers_) {
    EXPECT_EQ(a.result.gtid, "g1");
    EXPECT_EQ(a.result.state, "COMMITTED");
    EXPECT_TRUE(a.result.finished);
    EXPECT_FALSE(a.result.wait_expired);
  }
  EXPECT_TRUE(answers_[0].result.created) << "passed through";
  EXPECT_FALSE(answers_[1].result.created);
  EXPECT_EQ(waiters_->size(), 1u) << "g2 still held";
  runner_.Advance(10000);  // g1's timers were cancelled: no second answer
  ASSERT_EQ(answers_.size(), 3u);
  EXPECT_EQ(answers_[2].tag, 2);
  EXPECT_TRUE(answers_[2].result.wait_expired);
}

TEST_F(TxnWaitersTest, AWaitThatRunsOutAnswersTheCurrentStateAndOnlyThatWaiter) {
  state_of_["g1"] = "COMPENSATING";
  Add("g1", 100, true, 1);
  Add("g1", 300, false, 2);
  runner_.Advance(99);
  EXPECT_TRUE(answers_.empty());
  runner_.Advance(1);
  ASSERT_EQ(answers_.size(), 1u);
  EXPECT_EQ(answers_[0].tag, 1);
  EXPECT_EQ(answers_[0].result.state, "COMPENSATING");
  EXPECT_TRUE(answers_[0].result.wait_expired);
  EXPECT_FALSE(answers_[0].result.finished);
  EXPECT_TRUE(answers_[0].result.created);
  Finished("g1", "ABORTED");
  ASSERT_EQ(answers_.size(), 2u);
  EXPECT_EQ(answers_[1].tag, 2);
  EXPECT_EQ(answers_[1].result.state, "ABORTED");
  EXPECT_TRUE(answers_[1].result.finished);
  runner_.Advance(1000);
  EXPECT_EQ(answers_.size(), 2u) << "each waiter is answered exactly once";
  EXPECT_EQ(waiters_->size(), 0u);
}

// Drain or re-registration: every held answer is given at once with the
// current state, exactly once; the timers are cancelled.
TEST_F(TxnWaitersTest, ExpireAllAnswersEveryHeldWaiterOnceWithItsCurrentState) {
  state_of_["g1"] = "RUNNING";
  state_of_["g2"] = "COMMITTING";
  Add("g1", 1000, true, 1);
  Add("g2", 1000, false, 2);
  Add("g1", 5000, false, 3);
  runner_.RunInTask([&] { waiters_->ExpireAll(); });
  ASSERT_EQ(answers_.size(), 3u);
  for (const Answer& a : answers_) {
    EXPECT_TRUE(a.result.wait_expired);
    EXPECT_FALSE(a.result.finished);
    EXPECT_EQ(a.result.state, a.tag == 2 ? "COMMITTING" : "RUNNING");
  }
  EXPECT_EQ(waiters_->size(), 0u);
  Finished("g1", "COMMITTED");
  runner_.Advance(10000);
  EXPECT_EQ(answers_.size(), 3u) << "each waiter is answered exactly once";
}

TEST_F(TxnWaitersTest, FinishedWithoutWaitersDoesNothing) {
  Finished("unknown", "COMMITTED");
  EXPECT_TRUE(answers_.empty());
}

TEST_F(TxnWaitersTest, TimersFiringAfterDestructionDoNothing) {
  Add("g1", 100, false, 1);
  waiters_.reset();
  runner_.Advance(1000);
  EXPECT_TRUE(answers_.empty());
}

TEST_F(TxnWaitersTest, RunsOnlyOnItsRunner) {
  EXPECT_DEATH(waiters_->Add("g1", 100, false, [](Result<SubmitResult>) {}), "");
}

}  // namespace
}  // namespace treaty
