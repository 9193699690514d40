// Retention on a fake clock with a fake store: a backlog is purged in
// batches back to back, then every interval; store errors are retried at
// the next interval; Stop in the middle of a backlog ends the batches.

#include "cluster/retention.h"

#include <gtest/gtest.h>

#include "cluster/cluster_fakes.h"

namespace treaty::testing {
namespace {

constexpr int64_t kHourMs = 3600 * 1000;

class RetentionTest : public ::testing::Test {
 protected:
  RetentionTest() : store_(&runner_) {
    options_.retention_ms = kHourMs;
    options_.batch = 1000;
    options_.interval_ms = 10000;
    options_.batch_pause_ms = 1;
    options_.on_purged = [this](int64_t n) { reported_.push_back(n); };
  }

  void Start() {
    retention_ = std::make_unique<Retention>(&store_, &runner_, options_);
    t0_ = runner_.NowMs();
    retention_->Start();
    runner_.RunUntilIdle();
  }
  // Fake times of the purges, relative to Start.
  std::vector<int64_t> PurgeTimes() const {
    std::vector<int64_t> out;
    for (const auto& p : store_.purges) out.push_back(p.at - t0_);
    return out;
  }

  FakeTaskRunner runner_;
  FakeClusterStore store_;
  RetentionOptions options_;
  std::vector<int64_t> reported_;
  std::unique_ptr<Retention> retention_;
  int64_t t0_ = 0;
};

TEST_F(RetentionTest, DrainsABacklogBackToBackThenWaitsTheInterval) {
  store_.purgeable = 2500;
  Start();
  runner_.Advance(2);
  EXPECT_EQ(PurgeTimes(), (std::vector<int64_t>{0, 1, 2}));
  // One cut-off for the whole run, by the wall clock at its start.
  for (const auto& p : store_.purges) {
    EXPECT_EQ(p.before_ms, t0_ - kHourMs);
    EXPECT_EQ(p.limit, 1000);
  }
  EXPECT_EQ(reported_, (std::vector<int64_t>{1000, 1000, 500}));
  EXPECT_EQ(retention_->purged_total(), 2500);
  // Caught up (500 < 1000): the next run comes a whole interval later.
  runner_.Advance(9999);
  EXPECT_EQ(store_.purges.size(), 3u);
  runner_.Advance(1);
  ASSERT_EQ(PurgeTimes(), (std::vector<int64_t>{0, 1, 2, 10002}));
  EXPECT_EQ(store_.purges.back().before_ms, t0_ + 10002 - kHourMs);  // a new cut-off
  EXPECT_EQ(reported_.size(), 3u);  // nothing deleted: not reported
  runner_.Advance(10000);
  EXPECT_EQ(PurgeTimes(), (std::vector<int64_t>{0, 1, 2, 10002, 20002}));
}

TEST_F(RetentionTest, AStoreErrorIsRetriedAtTheNextInterval) {
  store_.purgeable = 1500;
  store_.fail_purges = 1;
  Start();
  runner_.Advance(9999);
  EXPECT_EQ(PurgeTimes(), (std::vector<int64_t>{0}));
  runner_.Advance(1);  // the next run: the backlog goes back to back
  runner_.Advance(1);
  EXPECT_EQ(PurgeTimes(), (std::vector<int64_t>{0, 10000, 10001}));
  EXPECT_EQ(retention_->purged_total(), 1500);
  // An error in the middle of a run ends it too.
  store_.purgeable = 5000;
  runner_.Advance(10000);  // the run at 20001: a full first batch
  store_.fail_purges = 1;
  runner_.Advance(1);  // its second batch fails
  EXPECT_EQ(PurgeTimes(), (std::vector<int64_t>{0, 10000, 10001, 20001, 20002}));
  runner_.Advance(9999);
  EXPECT_EQ(store_.purges.size(), 5u);
  runner_.Advance(1);
  EXPECT_EQ(store_.purges.back().at - t0_, 30002);
}

TEST_F(RetentionTest, StopInTheMiddleOfABacklogEndsTheBatches) {
  store_.purgeable = 1'000'000;
  Start();
  runner_.Advance(5);
  EXPECT_EQ(store_.purges.size(), 6u);
  retention_->Stop();
  runner_.RunUntilIdle();
  EXPECT_EQ(runner_.pending(), 0u) << "the next batch's timer was not cancelled";
  runner_.Advance(60000);
  EXPECT_EQ(store_.purges.size(), 6u);
  EXPECT_EQ(retention_->purged_total(), 6000);
  retention_->Stop();  // idempotent
  // Started again, it resumes the backlog with a new run.
  retention_->Start();
  runner_.RunUntilIdle();
  EXPECT_EQ(store_.purges.size(), 7u);
}

TEST_F(RetentionTest, ZeroRetentionKeepsEverything) {
  options_.retention_ms = 0;
  store_.purgeable = 10;
  Start();
  runner_.Advance(60000);
  EXPECT_TRUE(store_.purges.empty());
  EXPECT_EQ(runner_.pending(), 0u);
}

TEST_F(RetentionTest, RunOnceDrainsOnTheCallersThread) {
  store_.purgeable = 2100;
  options_.batch_pause_ms = 0;
  Retention retention(&store_, &runner_, options_);
  auto n = retention.RunOnce();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 2100);
  EXPECT_EQ(store_.purges.size(), 3u);
  EXPECT_EQ(runner_.pending(), 0u);  // nothing scheduled
  store_.fail_purges = 1;
  EXPECT_EQ(retention.RunOnce().status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace treaty::testing
