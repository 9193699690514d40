// RepeatingTask: rounds at the delays they ask for on a fake clock; on a
// real pool, Stop waits for a round in progress and no round runs after it.

#include "cluster/repeating_task.h"

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/asio_task_runner.h"
#include "support/fake_task_runner.h"

namespace treaty::testing {
namespace {

TEST(RepeatingTaskTest, RunsEachRoundAfterTheDelayTheLastOneAsked) {
  FakeTaskRunner runner;
  const int64_t t0 = runner.NowMs();
  std::vector<int64_t> at;
  const std::vector<int64_t> delays = {5, 0, 20, -3, 7};
  RepeatingTask task(&runner);
  task.Start(
      [&] {
        EXPECT_TRUE(runner.RunsTasksOnCurrentThread());
        at.push_back(runner.NowMs() - t0);
        return delays[std::min(at.size(), delays.size()) - 1];
      },
      /*first_delay_ms=*/10);
  EXPECT_TRUE(task.started());
  runner.Advance(9);
  EXPECT_TRUE(at.empty());
  runner.Advance(60);
  // 10, +5, +0, +20, +(-3 as 0), then +7 each.
  EXPECT_EQ(at, (std::vector<int64_t>{10, 15, 15, 35, 35, 42, 49, 56, 63}));
  task.Start([] { return 1; });  // already started: ignored
  runner.Advance(7);
  EXPECT_EQ(at.back(), 70);
  task.Stop();
  EXPECT_FALSE(task.started());
  runner.Advance(100);
  EXPECT_EQ(at.back(), 70);
}

TEST(RepeatingTaskTest, StopWaitsForTheRoundInProgressAndNoRoundRunsAfterIt) {
  boost::asio::thread_pool pool(2);
  AsioTaskRunner runner(boost::asio::make_strand(pool));
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> rounds{0};
  std::atomic<bool> round_done{false};
  auto task = std::make_unique<RepeatingTask>(&runner);
  task->Start([&] {
    if (rounds++ == 0) {
      entered.set_value();
      released.wait();
      round_done = true;
    }
    return 0;  // again at once: only Stop ends it
  });
  entered.get_future().wait();
  // Two Stops at once: neither returns while the round is in progress.
  std::atomic<bool> stopped{false}, stopped_too{false};
  std::thread stopper([&] {
    task->Stop();
    stopped = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::thread second_stopper([&] {
    task->Stop();
    stopped_too = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(stopped.load()) << "Stop returned while a round was in progress";
  EXPECT_FALSE(stopped_too.load()) << "a second, concurrent Stop returned during the round";
  release.set_value();
  stopper.join();
  second_stopper.join();
  EXPECT_TRUE(round_done.load());
  EXPECT_EQ(rounds.load(), 1);
  task.reset();  // the round captures state by reference: none may run now
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(rounds.load(), 1);
  pool.join();  // the cancelled timer does not hold the pool
}

TEST(RepeatingTaskTest, ATimerThatFiresAfterStopRunsNothing) {
  FakeTaskRunner runner;
  int rounds = 0;
  {
    RepeatingTask task(&runner);
    task.Start([&] { return ++rounds, int64_t{10}; });
    runner.RunUntilIdle();
    ASSERT_EQ(rounds, 1);
  }  // destroyed (Stop) with the next round queued; its cancel not run yet
  runner.Advance(100);
  EXPECT_EQ(rounds, 1);
}

}  // namespace
}  // namespace treaty::testing
