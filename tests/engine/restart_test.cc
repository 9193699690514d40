// Restarts in the middle of retries: the retry budget, the
// backoff schedule and the deadlines mean the same whether or not the
// coordinator restarted in between. A restart (kill -9 and start again, a
// takeover by a peer, a hand-back on SIGTERM: all restore from the log) is
// simulated by dropping the driver (its unwritten changes are lost, its
// timers never fire, late answers are ignored) and restoring the log's row
// under a new coordinator id.

#include <algorithm>

#include <gtest/gtest.h>

#include "engine/engine_fakes.h"
#include "engine/saga.h"
#include "engine/states.h"
#include "engine/two_phase.h"

namespace treaty {
namespace {

constexpr auto kOk = CallOutcome::kOk;
constexpr auto kNo = CallOutcome::kBusinessFailure;
constexpr auto kDown = CallOutcome::kTransient;

class RestartTest : public testing::DriverTest {
 protected:
  RestartTest() : DriverTest(11) {}

  // A saga of `names`, each step with `max_attempts` and a fixed backoff
  // of `backoff_ms` (so a retry waits between backoff_ms/2 and backoff_ms).
  static SagaSpec Spec(const std::string& gtid, std::vector<std::string> names, int max_attempts,
                       int64_t backoff_ms) {
    return SagaSpecOf(gtid, names, {max_attempts, backoff_ms, backoff_ms});
  }

  // The process dies: nothing more of this driver reaches the log or a participant.
  void Crash() {
    for (auto& d : drivers_) OnEngine([&] { d->Drop(Status::Internal("kill -9")); });
  }

  // The next coordinator claims `gtid` and resumes it from the log.
  void NewOwner(const std::string& gtid) {
    ctx_.owner = "coord-" + std::to_string(++generation_);
    log_.SetOwner(gtid, ctx_.owner);
  }
  void RestoreSaga(const std::string& gtid) {
    NewOwner(gtid);
    auto saga = Saga::Restore(&ctx_, log_.txns[gtid]);
    ASSERT_TRUE(saga.ok()) << saga.status().ToString();
    drivers_.push_back(*saga);
    OnEngine([&] { (*saga)->Start(); });
  }
  void RestoreTwoPhase(const std::string& gtid) {
    NewOwner(gtid);
    auto t = TwoPhase::Restore(&ctx_, log_.txns[gtid]);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    drivers_.push_back(*t);
    OnEngine([&] { (*t)->Start(); });
  }

  // Runs until branch `name` of `gtid` has a retry planned (for attempt
  // `attempt`, unless 0).
  bool RunUntilPlanned(const std::string& gtid, const std::string& name, int attempt = 0) {
    return runner_.RunUntil([&] {
      const BranchRow* b = log_.Branch(gtid, name);
      return b && b->next_attempt_at_ms > 0 && (attempt == 0 || b->attempts == attempt);
    });
  }

  // Runs until the first action of `branch` of `gtid` has been sent.
  bool RunUntilActionSent(const std::string& gtid, const std::string& branch) {
    return runner_.RunUntil([&] { return caller_.Count(gtid, branch, "action") == 1; });
  }

  // Write-behind: starts `spec`, runs until `branch`'s first action is sent
  // while its RUNNING is not yet logged, crashes, lets the saga's deadline
  // pass while nobody drives it, restores it and runs it to its end. Returns
  // its final state, or why it did not get there.
  std::string CrashInTheWindowPastTheDeadline(const SagaSpec& spec, const std::string& branch) {
    StartSaga(spec);
    if (!RunUntilActionSent(spec.gtid, branch)) return "(" + branch + " never sent)";
    if (log_.Branch(spec.gtid, branch)->state != states::kPending) {
      return "(" + branch + " logged before the crash)";
    }
    Crash();
    runner_.Advance(spec.timeout_ms + 1000);
    RestoreSaga(spec.gtid);
    return Finish(spec.gtid);
  }

  bool HasEvent(const std::string& gtid, const std::string& text) {
    for (const auto& e : log_.txns[gtid].events) {
      if (e.detail.find(text) != std::string::npos) return true;
    }
    return false;
  }

  int generation_ = 1;
};

// The reported case: the first attempt of a step with max_attempts 2 fails
// transiently and the coordinator dies during the backoff. Before the fix
// the restored saga declared "outcome unknown after restart and no attempts
// left" and ended ABORTED with one attempt sent.
TEST_F(RestartTest, PlannedAttemptIsSentOnceAfterTheRestOfItsBackoff) {
  caller_.Set("pay", "action", {{kDown, kOk}});
  StartSaga(Spec("g1", {"pay"}, 2, 4000));
  ASSERT_TRUE(RunUntilPlanned("g1", "pay", 2));
  const int64_t planned = log_.Branch("g1", "pay")->next_attempt_at_ms;
  runner_.Advance(500);
  Crash();
  runner_.Advance(300);  // down for a while, still within the backoff
  RestoreSaga("g1");
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  const auto at = caller_.Times("g1", "pay", "action");
  ASSERT_EQ(at.size(), 2u) << "attempt 2 is sent once, after the restart";
  EXPECT_GE(at[1], planned) << "not before the rest of its backoff";
  EXPECT_LE(at[1], planned + 50) << "nor much later";
  EXPECT_EQ(log_.Branch("g1", "pay")->attempts, 2);
  EXPECT_FALSE(HasEvent("g1", "outcome unknown"));
}

// Attempt 2 was sent (and logged as sent) when the coordinator died: the
// restored saga sends attempt 2 again, it does not use up attempt 3.
TEST_F(RestartTest, SentAttemptIsResentAsTheSameAttempt) {
  caller_.Set("pay", "action", {{kDown, kOk}, 1000});
  int retries_checked = 0;
  caller_.on_call = [&](const ParticipantRequest& r) {
    if (caller_.Count("g1", "pay", "action") == 0) return;  // the first attempt
    const BranchRow* b = log_.Branch("g1", "pay");
    EXPECT_EQ(b->next_attempt_at_ms, 0) << "logged as sent before it is sent";
    EXPECT_EQ(b->attempts, 2);
    ++retries_checked;
  };
  StartSaga(Spec("g1", {"pay"}, 2, 100));
  ASSERT_TRUE(runner_.RunUntil([&] { return caller_.Count("g1", "pay", "action") == 2; }));
  runner_.Advance(100);  // attempt 2 in flight
  Crash();
  RestoreSaga("g1");
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  EXPECT_EQ(caller_.Count("g1", "pay", "action"), 3) << "attempt 2, then attempt 2 again";
  EXPECT_EQ(retries_checked, 2);
  EXPECT_EQ(log_.Branch("g1", "pay")->attempts, 2);
  EXPECT_TRUE(HasEvent("g1", "action attempt 2 was sent"));
}

// Restarts during a backoff and during a call never add nor remove
// attempts: a participant that stays down gets attempts 1, 2 (twice: it was
// in flight at a crash) and 3, then the step fails and is compensated.
TEST_F(RestartTest, MaxAttemptsHoldsAcrossSeveralRestarts) {
  caller_.Set("pay", "action", {{kDown}, 10});
  StartSaga(Spec("g1", {"pay"}, 3, 1000));
  ASSERT_TRUE(RunUntilPlanned("g1", "pay", 2));
  Crash();  // during the first backoff
  RestoreSaga("g1");
  ASSERT_TRUE(runner_.RunUntil([&] { return caller_.Count("g1", "pay", "action") == 2; }));
  Crash();  // attempt 2 in flight
  RestoreSaga("g1");
  ASSERT_TRUE(RunUntilPlanned("g1", "pay", 3));
  Crash();  // during the second backoff
  RestoreSaga("g1");
  EXPECT_EQ(Finish("g1"), states::kAborted);
  EXPECT_EQ(caller_.Count("g1", "pay", "action"), 4);
  EXPECT_EQ(caller_.Count("g1", "pay", "compensate"), 1);
  EXPECT_TRUE(HasEvent("g1", "3 attempts used"));
}

// A compensation retry waits out its logged time after a restart, and its
// backoff goes on from where it was instead of starting over.
TEST_F(RestartTest, CompensationRetryTimeSurvivesRestore) {
  ctx_.options.retry_initial_backoff_ms = 1000;
  ctx_.options.retry_max_backoff_ms = 8000;
  ctx_.options.attention_after_attempts = 100;
  caller_.Set("pay", "action", {{kNo}});
  caller_.Set("book", "compensate", {{kDown, kDown, kOk}});
  StartSaga(Spec("g1", {"book", "pay"}, 3, 100));
  ASSERT_TRUE(RunUntilPlanned("g1", "book"));
  const int64_t planned = log_.Branch("g1", "book")->next_attempt_at_ms;
  runner_.Advance(200);
  Crash();
  RestoreSaga("g1");
  ASSERT_TRUE(runner_.RunUntil([&] { return caller_.Count("g1", "book", "compensate") == 2; }));
  runner_.Advance(50);  // its answer (a failure) is logged with the next retry
  const auto at = caller_.Times("g1", "book", "compensate");
  ASSERT_EQ(at.size(), 2u);
  EXPECT_GE(at[1], planned) << "the planned compensation waited out its backoff";
  // The second failure backs off at the second level (1000..2000 ms), not
  // the first again (500..1000 ms). The answer came 5 ms after the call.
  const int64_t second_delay = log_.Branch("g1", "book")->next_attempt_at_ms - (at[1] + 5);
  EXPECT_GE(second_delay, 1000);
  EXPECT_LE(second_delay, 2000);
  Crash();
  RestoreSaga("g1");
  EXPECT_EQ(Finish("g1"), states::kAborted);
  EXPECT_EQ(caller_.Count("g1", "book", "compensate"), 3);
  EXPECT_EQ(log_.Branch("g1", "book")->attempts, 1) << "its action attempts";
  EXPECT_EQ(log_.Branch("g1", "book")->state, states::kCompensated);
}

// A saga deadline is absolute: passed while the coordinator was down, the
// restored saga compensates without sending the planned attempt.
TEST_F(RestartTest, DeadlinePassedWhileDownCompensatesWithoutSending) {
  caller_.Set("pay", "action", {{kDown}});
  auto spec = Spec("g1", {"pay"}, 3, 2000);
  spec.timeout_ms = 3000;
  StartSaga(spec);
  ASSERT_TRUE(RunUntilPlanned("g1", "pay", 2));
  Crash();
  runner_.Advance(5000);
  RestoreSaga("g1");
  EXPECT_EQ(Finish("g1"), states::kAborted);
  EXPECT_EQ(caller_.Count("g1", "pay", "action"), 1);
  EXPECT_EQ(caller_.Count("g1", "pay", "compensate"), 1);
  EXPECT_TRUE(HasEvent("g1", "deadline"));
}

// Write-behind (EngineOptions::write_behind_ms): a step's first action goes
// out before its progress is logged. A crash within that window leaves the
// log behind the participants: flight RUNNING, hotel and car PENDING while
// all three were sent. The restored saga resends forward, in order, from the
// first step not logged SUCCEEDED.
TEST_F(RestartTest, ProgressLostWithWriteBehindIsResentInOrder) {
  caller_.Set("car", "action", {{kOk}, 5000});
  StartSaga(Spec("g1", {"flight", "hotel", "car"}, 3, 100));
  ASSERT_TRUE(RunUntilActionSent("g1", "car"));
  EXPECT_EQ(log_.Branch("g1", "flight")->state, states::kRunning);
  EXPECT_EQ(log_.Branch("g1", "hotel")->state, states::kPending) << "written behind";
  EXPECT_EQ(log_.Branch("g1", "car")->state, states::kPending) << "written behind";
  Crash();
  RestoreSaga("g1");
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  EXPECT_EQ(caller_.Sequence("g1"),
            (std::vector<std::string>{"flight/action", "hotel/action", "car/action",
                                      "flight/action", "hotel/action", "car/action"}));
  EXPECT_TRUE(HasEvent("g1", "may have started"));
}

// The same crash, but the saga's deadline passes while nobody drives it: the
// restored saga compensates every step that may have started (hotel and car
// were sent though logged PENDING), in reverse order, and sends no action.
TEST_F(RestartTest, StepsThatMayHaveStartedAreCompensatedWhenTheSagaAborts) {
  caller_.Set("car", "action", {{kOk}, 5000});
  auto spec = Spec("g1", {"flight", "hotel", "car", "insurance"}, 3, 100);
  spec.timeout_ms = 1000;
  EXPECT_EQ(CrashInTheWindowPastTheDeadline(spec, "car"), states::kAborted);
  // The log cannot tell whether car succeeded and insurance started: it is
  // compensated too (a null compensation at its participant).
  EXPECT_EQ(caller_.Sequence("g1"),
            (std::vector<std::string>{"flight/action", "hotel/action", "car/action",
                                      "insurance/compensate", "car/compensate", "hotel/compensate",
                                      "flight/compensate"}));
  for (const char* step : {"flight", "hotel", "car", "insurance"}) {
    EXPECT_EQ(log_.Branch("g1", step)->state, states::kCompensated) << step;
  }
  EXPECT_TRUE(HasEvent("g1",
                       "may have started (progress written behind), so compensated should "
                       "the saga abort: 'hotel', 'car', 'insurance'"));
}

// A second crash while the restored saga compensates: the steps that may
// have started were logged RUNNING with the decision, so the third owner,
// restoring a COMPENSATING saga, still compensates them.
TEST_F(RestartTest, StepsThatMayHaveStartedStayCompensatedAcrossASecondCrash) {
  caller_.Set("car", "action", {{kOk}, 5000});
  auto spec = Spec("g1", {"flight", "hotel", "car"}, 3, 100);
  spec.timeout_ms = 1000;
  StartSaga(spec);
  ASSERT_TRUE(RunUntilActionSent("g1", "car"));
  Crash();
  runner_.Advance(2000);
  caller_.Set("car", "compensate", {{kOk}, 5000});  // in flight at the second crash
  RestoreSaga("g1");
  ASSERT_TRUE(runner_.RunUntil([&] { return caller_.Count("g1", "car", "compensate") == 1; }));
  EXPECT_EQ(log_.txns["g1"].txn.state, states::kCompensating);
  EXPECT_EQ(log_.Branch("g1", "hotel")->state, states::kRunning) << "logged with the decision";
  Crash();
  caller_.Set("car", "compensate", {{kOk}});
  RestoreSaga("g1");
  EXPECT_EQ(Finish("g1"), states::kAborted);
  EXPECT_EQ(caller_.Count("g1", "car", "compensate"), 2);
  EXPECT_EQ(caller_.Count("g1", "hotel", "compensate"), 1);
  EXPECT_EQ(caller_.Count("g1", "flight", "compensate"), 1);
  EXPECT_EQ(log_.Branch("g1", "hotel")->state, states::kCompensated);
}

// Progress is written behind within write_behind_ms: a crash after that
// resends only the step still in flight.
TEST_F(RestartTest, ProgressWrittenBehindIsLoggedWithinItsDelay) {
  ctx_.options.write_behind_ms = 50;
  caller_.Set("car", "action", {{kOk}, 5000});
  StartSaga(Spec("g1", {"flight", "hotel", "car"}, 3, 100));
  ASSERT_TRUE(RunUntilActionSent("g1", "car"));
  const int64_t sent = caller_.Times("g1", "car", "action")[0];
  ASSERT_TRUE(
      runner_.RunUntil([&] { return log_.Branch("g1", "car")->state == states::kRunning; }));
  EXPECT_LE(runner_.NowMs() - sent, 50);
  EXPECT_EQ(log_.Branch("g1", "hotel")->state, states::kSucceeded);
  Crash();
  RestoreSaga("g1");
  EXPECT_EQ(Finish("g1"), states::kCommitted);
  EXPECT_EQ(caller_.Count("g1", "flight", "action"), 1);
  EXPECT_EQ(caller_.Count("g1", "hotel", "action"), 1);
  EXPECT_EQ(caller_.Count("g1", "car", "action"), 2);
  EXPECT_FALSE(HasEvent("g1", "may have started"));
}

// Concurrent saga (`after` may name a later step): every PENDING step may
// have started, and compensation still follows the dependencies in reverse
// (z after x after y), whatever the order of the steps.
TEST_F(RestartTest, StepsThatMayHaveStartedAreCompensatedInReverseDependencyOrder) {
  auto spec = Spec("g1", {"z", "x", "y", "v", "w"}, 3, 100);
  spec.concurrent = true;
  spec.steps[0].after = {"x"};
  spec.steps[1].after = {"y"};
  spec.steps[4].after = {"v"};
  spec.timeout_ms = 1000;
  caller_.Set("v", "action", {{kOk}, 5000});  // in flight at the crash: w not started
  caller_.Set("z", "action", {{kOk}, 5000});
  EXPECT_EQ(CrashInTheWindowPastTheDeadline(spec, "z"), states::kAborted);
  for (const char* step : {"z", "x", "y", "v", "w"}) {
    EXPECT_EQ(caller_.Count("g1", step, "compensate"), 1) << step;
    EXPECT_EQ(log_.Branch("g1", step)->state, states::kCompensated) << step;
  }
  EXPECT_EQ(caller_.Count("g1", "w", "action"), 0);
  const auto seq = caller_.Sequence("g1");
  const auto pos = [&](const std::string& c) { return std::find(seq.begin(), seq.end(), c); };
  EXPECT_LT(pos("z/compensate"), pos("x/compensate"));
  EXPECT_LT(pos("x/compensate"), pos("y/compensate"));
  EXPECT_LT(pos("w/compensate"), pos("v/compensate"));
}

// A 2PC commit retry waits out its logged time after a restart; a branch
// whose commit is logged is not sent it again.
TEST_F(RestartTest, TwoPhaseCommitRetryTimeSurvivesRestore) {
  ctx_.options.retry_initial_backoff_ms = 1000;
  ctx_.options.retry_max_backoff_ms = 8000;
  TwoPhaseSpec spec;
  spec.gtid = "t1";
  spec.timeout_ms = 60000;
  auto t = OnEngine([&] { return TwoPhase::Create(&ctx_, spec); });
  drivers_.push_back(t);
  OnEngine([&] { t->Start(); });
  for (const std::string n : {"a", "b"}) {
    BranchSpec b;
    b.name = n;
    b.prepare = "http://svc/" + n + "/prepare";
    b.commit = "http://svc/" + n + "/commit";
    b.abort = "http://svc/" + n + "/abort";
    OnEngine([&] { t->Enlist(b, 16, [](Status s) { EXPECT_TRUE(s.ok()) << s.ToString(); }); });
    runner_.Advance(10);
  }
  caller_.Set("b", "commit", {{kDown, kOk}});
  OnEngine([&] { t->RequestCommit([](Result<TxnState>) {}); });
  ASSERT_TRUE(RunUntilPlanned("t1", "b"));
  ASSERT_EQ(log_.Branch("t1", "a")->state, states::kCommitted);
  const int64_t planned = log_.Branch("t1", "b")->next_attempt_at_ms;
  runner_.Advance(100);
  Crash();
  RestoreTwoPhase("t1");
  EXPECT_EQ(Finish("t1"), states::kCommitted);
  const auto at = caller_.Times("t1", "b", "commit");
  ASSERT_EQ(at.size(), 2u);
  EXPECT_GE(at[1], planned) << "the planned commit waited out its backoff";
  EXPECT_EQ(caller_.Count("t1", "a", "commit"), 1);
  EXPECT_EQ(log_.Branch("t1", "b")->attempts, 2);
}

}  // namespace
}  // namespace treaty
