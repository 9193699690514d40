// Membership on a fake clock with a fake store and adopter: heartbeat
// cadence, peers expired only after a whole lease of good heartbeats,
// re-registration when declared dead, bounded claims, hand-back, and a loop
// that survives every store error.

#include "cluster/membership.h"

#include <gtest/gtest.h>

#include "cluster/cluster_fakes.h"

namespace treaty::testing {
namespace {

class MembershipTest : public ::testing::Test {
 protected:
  MembershipTest() : store_(&runner_) {
    options_.node_name = "node";
    options_.heartbeat_ms = 1000;
    options_.lease_ms = 5000;
    options_.claim_batch = 3;
  }

  // Joins and starts; the first round runs at once (fake time t0_).
  void JoinAndStart() {
    membership_ = std::make_unique<Membership>(&store_, &runner_, options_);
    ASSERT_TRUE(membership_->Join().ok());
    t0_ = runner_.NowMs();
    membership_->Start(&adopter_);
    runner_.RunUntilIdle();
  }
  // Fake time since JoinAndStart.
  int64_t Elapsed() { return runner_.NowMs() - t0_; }
  std::vector<int64_t> MarkTimes() const {
    std::vector<int64_t> out;
    for (int64_t at : store_.mark_expired_at) out.push_back(at - t0_);
    return out;
  }

  FakeTaskRunner runner_;
  FakeClusterStore store_;
  FakeAdopter adopter_;
  MembershipOptions options_;
  std::unique_ptr<Membership> membership_;
  int64_t t0_ = 0;
};

TEST_F(MembershipTest, JoinRegistersAFreshIdNamedAfterTheNode) {
  Membership a(&store_, &runner_, options_), b(&store_, &runner_, options_);
  EXPECT_EQ(a.id(), "");
  ASSERT_TRUE(a.Join().ok());
  ASSERT_TRUE(b.Join().ok());
  EXPECT_EQ(a.id().rfind("node-", 0), 0u) << a.id();
  EXPECT_NE(a.id(), b.id());
  EXPECT_EQ(store_.registered, (std::vector<std::string>{a.id(), b.id()}));
  EXPECT_EQ(store_.rows[a.id()], "alive");

  store_.fail_register = true;
  const std::string before = a.id();
  EXPECT_EQ(a.Join().code(), StatusCode::kUnavailable);
  EXPECT_EQ(a.id(), before);  // a failed Join keeps the id it had
}

TEST_F(MembershipTest, HeartbeatsOnceEveryIntervalWithItsId) {
  JoinAndStart();
  EXPECT_EQ(store_.HeartbeatTimes(t0_), (std::vector<int64_t>{0}));
  runner_.Advance(999);
  EXPECT_EQ(store_.heartbeats.size(), 1u);
  runner_.Advance(1);
  runner_.Advance(3000);
  EXPECT_EQ(store_.HeartbeatTimes(t0_), (std::vector<int64_t>{0, 1000, 2000, 3000, 4000}));
  for (const auto& h : store_.heartbeats) EXPECT_EQ(h.id, membership_->id());
  // Nothing to claim: one census per round, and no claim.
  EXPECT_EQ(store_.censuses.size(), 5u);
  EXPECT_TRUE(store_.claims.empty());
  EXPECT_TRUE(adopter_.batches.empty());
}

TEST_F(MembershipTest, ExpiresPeersOnlyAfterAWholeLeaseOfGoodHeartbeats) {
  JoinAndStart();
  runner_.Advance(4000);
  EXPECT_TRUE(store_.mark_expired_at.empty()) << "peers judged before a whole lease";
  runner_.Advance(2000);
  EXPECT_EQ(MarkTimes(), (std::vector<int64_t>{5000, 6000}));
}

TEST_F(MembershipTest, AStoreOutageRestartsTheLeaseOfGoodHeartbeats) {
  JoinAndStart();
  runner_.Advance(6000);
  ASSERT_EQ(MarkTimes(), (std::vector<int64_t>{5000, 6000}));
  // The database goes away at 7000 and is back for the round at 10000.
  runner_.Advance(999);
  store_.fail_heartbeats = true;
  runner_.Advance(2001);  // rounds at 7000, 8000, 9000 fail
  store_.fail_heartbeats = false;
  EXPECT_EQ(MarkTimes(), (std::vector<int64_t>{5000, 6000}));
  runner_.Advance(5000);  // 10000 .. 14000: back, but not yet a whole lease
  EXPECT_EQ(MarkTimes(), (std::vector<int64_t>{5000, 6000}));
  runner_.Advance(1000);  // 15000: a whole lease of good heartbeats again
  EXPECT_EQ(MarkTimes(), (std::vector<int64_t>{5000, 6000, 15000}));
  // Failed rounds looked for nothing to claim; the others did.
  EXPECT_EQ(store_.censuses.size(), store_.heartbeats.size() - 3);
}

TEST_F(MembershipTest, DeclaredDeadDropsEverythingAndReRegistersUnderANewId) {
  JoinAndStart();
  const std::string old_id = membership_->id();
  store_.MarkDead(old_id);
  runner_.Advance(1000);
  const std::string new_id = membership_->id();
  EXPECT_NE(new_id, old_id);
  EXPECT_EQ(store_.registered, (std::vector<std::string>{old_id, new_id}));
  EXPECT_EQ(adopter_.reowned, (std::vector<std::string>{new_id}));
  // That round looks for nothing to claim under either id; the next one
  // heartbeats and claims as the new coordinator.
  EXPECT_EQ(store_.censuses.size(), 1u);
  store_.orphans = Orphans("o", 1);
  runner_.Advance(1000);
  ASSERT_EQ(store_.heartbeats.size(), 3u);
  EXPECT_EQ(store_.heartbeats.back().id, new_id);
  EXPECT_EQ(store_.claims.back().id, new_id);
  EXPECT_EQ(adopter_.reowned.size(), 1u);
}

// The lease the engine's write-behind asks for: held from registering,
// renewed by each good heartbeat, lost lease - heartbeat after the last one
// (peers wait a whole lease), and after being declared dead until a
// heartbeat under the new id succeeds.
TEST_F(MembershipTest, LeaseIsHeldWhileHeartbeatsSucceed) {
  membership_ = std::make_unique<Membership>(&store_, &runner_, options_);
  EXPECT_FALSE(membership_->LeaseHeld("")) << "before registering";
  ASSERT_TRUE(membership_->Join().ok());
  const std::string first_id = membership_->id();
  EXPECT_TRUE(membership_->LeaseHeld(first_id)) << "registering is a heartbeat";
  EXPECT_FALSE(membership_->LeaseHeld("someone-else"));
  membership_->Start(&adopter_);
  runner_.RunUntilIdle();
  runner_.Advance(10000);
  EXPECT_TRUE(membership_->LeaseHeld(first_id));
  store_.fail_heartbeats = true;  // the last good one at 10000
  runner_.Advance(3999);
  EXPECT_TRUE(membership_->LeaseHeld(first_id));
  runner_.Advance(1);  // lease 5000 - heartbeat 1000 after it
  EXPECT_FALSE(membership_->LeaseHeld(first_id));
  store_.fail_heartbeats = false;
  runner_.Advance(1000);
  EXPECT_TRUE(membership_->LeaseHeld(first_id));
  store_.MarkDead(first_id);
  runner_.Advance(1000);  // LostOwnership, re-registered
  const std::string new_id = membership_->id();
  ASSERT_NE(new_id, first_id);
  EXPECT_FALSE(membership_->LeaseHeld(new_id)) << "not until the new id's first heartbeat";
  runner_.Advance(1000);
  EXPECT_TRUE(membership_->LeaseHeld(new_id));
  EXPECT_FALSE(membership_->LeaseHeld(first_id))
      << "work still driven under the dead id never goes ahead";
}

TEST_F(MembershipTest, AFailedReRegistrationKeepsTryingEveryRound) {
  JoinAndStart();
  const std::string old_id = membership_->id();
  store_.MarkDead(old_id);
  store_.fail_register = true;
  runner_.Advance(2000);
  EXPECT_EQ(membership_->id(), old_id);
  EXPECT_TRUE(adopter_.reowned.empty());
  store_.fail_register = false;
  runner_.Advance(1000);
  EXPECT_NE(membership_->id(), old_id);
  EXPECT_EQ(adopter_.reowned, (std::vector<std::string>{membership_->id()}));
}

TEST_F(MembershipTest, AFullBatchIsFollowedByAnotherClaimWithoutWaitingAHeartbeat) {
  store_.orphans = Orphans("o", 7);
  JoinAndStart();
  ASSERT_EQ(adopter_.batches.size(), 1u);
  EXPECT_EQ(adopter_.batches[0], (std::vector<std::string>{"o-0", "o-1", "o-2"}));
  runner_.Advance(Membership::kFullBatchPauseMs);
  ASSERT_EQ(adopter_.batches.size(), 2u);
  EXPECT_EQ(adopter_.batches[1], (std::vector<std::string>{"o-3", "o-4", "o-5"}));
  runner_.Advance(Membership::kFullBatchPauseMs);
  ASSERT_EQ(adopter_.batches.size(), 3u);
  EXPECT_EQ(adopter_.batches[2], (std::vector<std::string>{"o-6"}));
  // Not full: back to the heartbeat interval; the next round finds nothing.
  runner_.Advance(999);
  EXPECT_EQ(store_.censuses.size(), 1u);
  runner_.Advance(1);
  EXPECT_EQ(store_.censuses.size(), 2u);
  EXPECT_EQ(store_.claims.size(), 3u);  // the short third batch ended the take-over
  EXPECT_EQ(adopter_.batches.size(), 3u);
  for (const auto& c : store_.claims) EXPECT_EQ(c.id, membership_->id());
}

// With a live peer, the census before the first claim opens a share window:
// this one takes ceil(10 / 2) = 5 (3 + 2), waits out the window (two
// heartbeat intervals) for the peer to take its share, then takes what is
// left.
TEST_F(MembershipTest, ATakeOverIsSharedWithLivePeersThenWhatIsLeftIsTaken) {
  store_.orphans = Orphans("o", 10);
  store_.live = 2;
  JoinAndStart();
  ASSERT_EQ(adopter_.batches.size(), 1u);
  EXPECT_EQ(adopter_.batches[0].size(), 3u);
  ASSERT_EQ(store_.censuses.size(), 1u);
  runner_.Advance(Membership::kFullBatchPauseMs);
  ASSERT_EQ(adopter_.batches.size(), 2u);
  EXPECT_EQ(adopter_.batches[1], (std::vector<std::string>{"o-3", "o-4"}));
  EXPECT_EQ(store_.claims.back().limit, 2);
  // Its share is taken: no claim until the window ends, 2,000 ms after it
  // began; the peer takes none of its share meanwhile.
  runner_.Advance(2000 - 1 - Membership::kFullBatchPauseMs);
  EXPECT_EQ(store_.claims.size(), 2u);
  EXPECT_EQ(store_.HeartbeatTimes(t0_).back(), 1000 + 2 * Membership::kFullBatchPauseMs);
  runner_.Advance(1);
  ASSERT_EQ(adopter_.batches.size(), 3u);
  EXPECT_EQ(adopter_.batches[2], (std::vector<std::string>{"o-5", "o-6", "o-7"}));
  runner_.Advance(Membership::kFullBatchPauseMs);
  ASSERT_EQ(adopter_.batches.size(), 4u);
  EXPECT_EQ(adopter_.batches[3], (std::vector<std::string>{"o-8", "o-9"}));
  EXPECT_EQ(store_.censuses.size(), 1u);  // one census per take-over
  // Over: a later take-over is shared again.
  store_.orphans = Orphans("p", 4);
  runner_.Advance(1000);
  EXPECT_EQ(adopter_.batches.back(), (std::vector<std::string>{"p-0", "p-1"}));  // 4 / 2
  EXPECT_EQ(store_.censuses.size(), 2u);
}

// The peer takes its share within the window: afterwards nothing is left.
TEST_F(MembershipTest, APeerTakingItsShareLeavesNothingAfterTheWindow) {
  store_.orphans = Orphans("o", 12);
  store_.live = 3;
  JoinAndStart();
  runner_.Advance(Membership::kFullBatchPauseMs);
  ASSERT_EQ(adopter_.batches.size(), 2u);
  EXPECT_EQ(adopter_.batches[1].size(), 1u);  // share ceil(12 / 3) = 4
  store_.orphans.clear();                     // the peers took the rest
  runner_.Advance(2000 - Membership::kFullBatchPauseMs);
  ASSERT_EQ(adopter_.batches.size(), 2u);
  EXPECT_EQ(store_.claims.size(), 3u);  // one empty claim at the window's end
  runner_.Advance(999);
  EXPECT_EQ(store_.censuses.size(), 1u);  // then back to the heartbeat interval
  runner_.Advance(1);
  EXPECT_EQ(store_.censuses.size(), 2u);
  EXPECT_EQ(store_.claims.size(), 3u);
}

// The census comes before the first claim, so even a take-over smaller than
// one batch is shared: 4 orphans among 3 live coordinators, 2 here.
TEST_F(MembershipTest, EvenTheFirstBatchKeepsToTheShare) {
  options_.claim_batch = 100;
  store_.orphans = Orphans("o", 4);
  store_.live = 3;
  JoinAndStart();
  ASSERT_EQ(store_.claims.size(), 1u);
  EXPECT_EQ(store_.claims[0].limit, 2);
  EXPECT_EQ(adopter_.batches[0], (std::vector<std::string>{"o-0", "o-1"}));
  runner_.Advance(2000);  // no peer took theirs: the rest after the window
  ASSERT_EQ(adopter_.batches.size(), 2u);
  EXPECT_EQ(adopter_.batches[1], (std::vector<std::string>{"o-2", "o-3"}));
}

// A claim batch below 1 claims one at a time and never spins.
TEST_F(MembershipTest, AClaimBatchBelowOneIsOne) {
  options_.claim_batch = 0;
  store_.orphans = Orphans("o", 2);
  JoinAndStart();
  runner_.Advance(3000);
  EXPECT_EQ(adopter_.batches.size(), 2u);
  EXPECT_EQ(store_.HeartbeatTimes(t0_), (std::vector<int64_t>{0, 10, 20, 1020, 2020}));
}

// Alone, or without a census, nothing holds the claims back.
TEST_F(MembershipTest, AloneOrWithoutACensusTheClaimsAreNotLimited) {
  for (bool fail_census : {false, true}) {
    SCOPED_TRACE(fail_census ? "census fails" : "alone");
    store_.orphans = Orphans("o", 9);
    store_.live = fail_census ? 3 : 1;
    store_.fail_census = fail_census;
    adopter_.batches.clear();
    JoinAndStart();
    runner_.Advance(2 * Membership::kFullBatchPauseMs);
    EXPECT_EQ(adopter_.batches.size(), 3u);
    membership_.reset();
  }
}

TEST_F(MembershipTest, StopWithHandBackReleasesDeregistersAndEndsTheRounds) {
  JoinAndStart();
  runner_.Advance(2000);
  const std::string me = membership_->id();
  store_.owned = 4;
  ASSERT_TRUE(membership_->Stop(/*hand_back=*/true).ok());
  EXPECT_EQ(store_.released, (std::vector<std::string>{me}));
  EXPECT_EQ(store_.deleted, (std::vector<std::string>{me}));
  EXPECT_EQ(membership_->id(), "");
  runner_.RunUntilIdle();
  EXPECT_EQ(runner_.pending(), 0u) << "the next round's timer was not cancelled";
  const size_t heartbeats = store_.heartbeats.size();
  runner_.Advance(10000);
  EXPECT_EQ(store_.heartbeats.size(), heartbeats);
  // Again: nothing more to hand back.
  EXPECT_TRUE(membership_->Stop(true).ok());
  EXPECT_EQ(store_.released.size(), 1u);
}

TEST_F(MembershipTest, StopWithoutHandBackKeepsTheRowAndALaterStopHandsBack) {
  JoinAndStart();
  const std::string me = membership_->id();
  ASSERT_TRUE(membership_->Stop(false).ok());
  EXPECT_TRUE(store_.released.empty());
  EXPECT_TRUE(store_.deleted.empty());
  EXPECT_EQ(membership_->id(), me);
  runner_.Advance(5000);
  EXPECT_EQ(store_.heartbeats.size(), 1u);
  ASSERT_TRUE(membership_->Stop(true).ok());
  EXPECT_EQ(store_.released, (std::vector<std::string>{me}));
}

TEST_F(MembershipTest, AFailedHandBackIsReportedAndKeepsTheRow) {
  JoinAndStart();
  store_.fail_release = true;
  EXPECT_EQ(membership_->Stop(true).code(), StatusCode::kUnavailable);
  EXPECT_TRUE(store_.deleted.empty());
  EXPECT_NE(membership_->id(), "");
}

TEST_F(MembershipTest, StoreErrorsNeverStopTheLoop) {
  store_.fail_heartbeats = true;
  store_.fail_mark_expired = true;
  store_.fail_census = true;
  store_.fail_claims = true;
  JoinAndStart();
  runner_.Advance(3000);
  EXPECT_EQ(store_.heartbeats.size(), 4u);
  EXPECT_TRUE(store_.claims.empty());  // no claim without a heartbeat
  store_.fail_heartbeats = false;
  runner_.Advance(6000);  // heartbeats good from 4000; expiry tried from 9000
  EXPECT_EQ(store_.heartbeats.size(), 10u);
  EXPECT_EQ(MarkTimes(), (std::vector<int64_t>{9000}));
  EXPECT_EQ(store_.claims.size(), 6u);
  EXPECT_TRUE(adopter_.batches.empty());
  // Everything back: orphans are adopted on the next round.
  store_.fail_mark_expired = false;
  store_.fail_census = false;
  store_.fail_claims = false;
  store_.orphans = Orphans("late", 2);
  runner_.Advance(1000);
  ASSERT_EQ(adopter_.batches.size(), 1u);
  EXPECT_EQ(adopter_.batches[0], (std::vector<std::string>{"late-0", "late-1"}));
}

TEST_F(MembershipTest, ExpiredPeersAreMarkedDeadInTheStore) {
  JoinAndStart();
  store_.rows["peer-1"] = "alive";
  store_.expired_ids = {"peer-1"};
  runner_.Advance(5000);
  EXPECT_EQ(store_.rows["peer-1"], "dead");
  EXPECT_EQ(store_.rows[membership_->id()], "alive");
}

}  // namespace
}  // namespace treaty::testing
