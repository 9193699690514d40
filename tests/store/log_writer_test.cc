// LogWriter: group commit on real stores, retries while PostgreSQL restarts.
#include "store/log_writer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "store/store_fixture.h"
#include "support/forwarding_log_store.h"

namespace treaty::testing {
namespace {

// Forwards to a real store, counting ApplyBatch calls and their sizes.
class CountingStore : public ForwardingLogStore {
 public:
  explicit CountingStore(LogStore* inner) : ForwardingLogStore(inner) {}
  std::atomic<int> batches{0};
  std::atomic<size_t> largest{0};
  std::atomic<int> fail_next{0};  // fail this many calls with Unavailable first

  Result<std::vector<Status>> ApplyStorable(const std::vector<TxnWrite>& w) override {
    ++batches;
    if (w.size() > largest) largest = w.size();
    if (fail_next > 0) {
      --fail_next;
      return Status::Unavailable("injected");
    }
    return inner_->ApplyBatch(w);
  }
};

// Collects callback results and lets the test wait for all of them.
class Completions {
 public:
  LogWriter::Callback Add(const std::string& key) {
    return [this, key](Status s) {
      std::lock_guard lock(mu_);
      results_.emplace_back(key, std::move(s));
      cv_.notify_all();
    };
  }
  std::vector<std::pair<std::string, Status>> Wait(size_t n, int timeout_ms = 60000) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return results_.size() >= n; });
    return results_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, Status>> results_;
};

using LogWriterTest = StoreTest;

TEST_P(LogWriterTest, ConcurrentSubmitsAreBatchedAndDurable) {
  CountingStore counting(&store());
  constexpr int kThreads = 6, kPerThread = 150;
  Completions done;
  {
    LogWriter writer(&counting, {.max_batch = 64});
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          const std::string gtid = "w" + std::to_string(t) + "-" + std::to_string(i);
          TxnWrite w = CreateWrite(gtid, "c1", 1000 + i);
          w.events.push_back({0, "", "", "state", "created", 0});
          writer.Submit(std::move(w), done.Add(gtid));
        }
      });
    }
    for (auto& th : threads) th.join();
    // A duplicate in the same stream fails alone.
    writer.Submit(CreateWrite("w0-0", "c1"), done.Add("dup"));
    writer.Stop();  // drains the queue
    EXPECT_EQ(writer.queue_depth(), 0u);
  }
  auto results = done.Wait(kThreads * kPerThread + 1);
  ASSERT_EQ(results.size(), static_cast<size_t>(kThreads * kPerThread + 1));
  for (const auto& [key, status] : results) {
    if (key == "dup") {
      EXPECT_EQ(status.code(), StatusCode::kConflict);
    } else {
      EXPECT_TRUE(status.ok()) << key << ": " << status.ToString();
    }
  }
  EXPECT_LT(counting.batches.load(), kThreads * kPerThread);  // group commit happened
  EXPECT_LE(counting.largest.load(), 64u);
  Result<TxnPage> all = store().ListTransactions({.limit = 1000});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->items.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(store().GetTransaction("w5-149")->events.size(), 1u);
}

// Lanes: a batch blocked in its COMMIT (here: held inside ApplyBatch) holds
// only the writes of its own lane; writes of other gtids commit meanwhile on
// other lanes, and the held ones commit once it returns.
class HoldingStore : public ForwardingLogStore {
 public:
  explicit HoldingStore(LogStore* inner) : ForwardingLogStore(inner) {}
  Result<std::vector<Status>> ApplyStorable(const std::vector<TxnWrite>& w) override {
    const bool hold =
        std::any_of(w.begin(), w.end(), [](const TxnWrite& x) { return x.gtid == "held"; });
    if (hold) {
      std::unique_lock lock(mu_);
      holding_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return released_; });
    }
    return inner_->ApplyBatch(w);
  }
  void AwaitHolding() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return holding_; });
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool holding_ = false;
  bool released_ = false;
};

TEST_P(LogWriterTest, OtherLanesCommitWhileOneLaneIsHeld) {
  HoldingStore holding(&store());
  Completions done;
  constexpr int kOthers = 40;
  {
    LogWriter writer(&holding, {.max_batch = 8, .lanes = 4});
    EXPECT_EQ(writer.lanes(), 4u);
    writer.Submit(CreateWrite("held", "c1"), done.Add("held"));
    holding.AwaitHolding();
    for (int i = 0; i < kOthers; ++i) {
      const std::string gtid = "other-" + std::to_string(i);
      writer.Submit(CreateWrite(gtid, "c1"), done.Add(gtid));
    }
    // With one lane nothing could pass the held batch. With four, the
    // gtids hashed to the three free lanes (all but a few of 40) commit.
    auto meanwhile = done.Wait(kOthers / 2);
    EXPECT_GE(meanwhile.size(), static_cast<size_t>(kOthers / 2));
    for (const auto& [key, status] : meanwhile) {
      EXPECT_NE(key, "held");
      EXPECT_TRUE(status.ok()) << key << ": " << status.ToString();
    }
    holding.Release();
    writer.Stop();
  }
  auto all = done.Wait(kOthers + 1);
  ASSERT_EQ(all.size(), static_cast<size_t>(kOthers + 1));
  for (const auto& [key, status] : all)
    EXPECT_TRUE(status.ok()) << key << ": " << status.ToString();
  EXPECT_TRUE(store().GetTransactionNoEvents("held").ok());
}

// A stall is the writer's, not one lane's: while one lane's COMMIT hangs,
// commits on the other lanes do not end it (they used to: /readyz turned
// ready again and health flapped while writes piled up behind the stuck
// lane). It ends when the stuck lane commits.
TEST_P(LogWriterTest, ALaneStallLastsUntilThatLaneCommits) {
  HoldingStore holding(&store());
  Completions done;
  LogWriter writer(&holding, {.max_batch = 8, .lanes = 4, .stall_after_ms = 100});
  writer.Submit(CreateWrite("held", "c1"), done.Add("held"));
  holding.AwaitHolding();
  for (int i = 0; i < 100 && !writer.stalled(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(writer.stalled());
  for (int i = 0; i < 20; ++i) {
    writer.Submit(CreateWrite("free-" + std::to_string(i), "c1"), done.Add("free"));
  }
  auto meanwhile = done.Wait(10);
  ASSERT_GE(meanwhile.size(), 10u);
  EXPECT_TRUE(writer.stalled()) << "a commit on another lane ended the held lane's stall";
  holding.Release();
  auto all = done.Wait(21);
  ASSERT_EQ(all.size(), 21u);
  for (int i = 0; i < 100 && writer.stalled(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(writer.stalled());
  writer.Stop();
}

// The writes of one gtid, queued back to back without waiting for each
// other, are applied in submission order whatever the number of lanes: the
// create first, then every update, the last one winning.
TEST_P(LogWriterTest, WritesOfOneGtidStayInOrderAcrossLanes) {
  Completions done;
  constexpr int kUpdates = 30;
  {
    LogWriter writer(&store(), {.max_batch = 4, .lanes = 8});
    for (int g = 0; g < 4; ++g) {
      const std::string gtid = "ordered-" + std::to_string(g);
      writer.Submit(CreateWrite(gtid, "c1"), done.Add(gtid + "/create"));
      for (int i = 1; i <= kUpdates; ++i) {
        TxnWrite w;
        w.gtid = gtid;
        w.owner = "c1";
        w.now_ms = 2000 + i;
        w.attempts = i;
        writer.Submit(std::move(w), done.Add(gtid + "/" + std::to_string(i)));
      }
    }
    writer.Stop();
  }
  auto all = done.Wait(4 * (kUpdates + 1));
  ASSERT_EQ(all.size(), static_cast<size_t>(4 * (kUpdates + 1)));
  for (const auto& [key, status] : all)
    EXPECT_TRUE(status.ok()) << key << ": " << status.ToString();
  for (int g = 0; g < 4; ++g) {
    auto row = store().GetTransactionNoEvents("ordered-" + std::to_string(g));
    ASSERT_TRUE(row.ok()) << row.status().ToString();
    EXPECT_EQ(row->txn.attempts, kUpdates);
  }
}

// Stop must not wait out the stall watcher's window: after a batch, the
// watcher sleeps until that batch would have been "stalled" and used to
// ignore Stop's wake-up, so every shutdown (of treatyd, of each test's
// server) hung for up to stall_after_ms. The bound below is a hang check,
// a tenth of the window, not a speed target.
TEST_P(LogWriterTest, StopDoesNotWaitOutTheStallWindow) {
  Completions done;
  LogWriter writer(&store(), {.stall_after_ms = 600000});
  writer.Submit(CreateWrite("s1", "c1"), done.Add("s1"));
  auto results = done.Wait(1);
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0].second.ok()) << results[0].second.ToString();
  const auto start = std::chrono::steady_clock::now();
  writer.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
}

TEST_P(LogWriterTest, RetriesUnavailableThenGivesUp) {
  CountingStore counting(&store());
  Completions done;
  LogWriter writer(&counting, {.retry_for_ms = 3000});
  counting.fail_next = 3;
  writer.Submit(CreateWrite("r1", "c1"), done.Add("r1"));
  auto results = done.Wait(1);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].second.ok()) << results[0].second.ToString();
  EXPECT_EQ(counting.batches.load(), 4);

  LogWriter impatient(&counting, {.retry_for_ms = 200});
  counting.fail_next = 1000000;
  const auto start = std::chrono::steady_clock::now();
  impatient.Submit(CreateWrite("r2", "c1"), done.Add("r2"));
  results = done.Wait(2);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1].second.code(), StatusCode::kUnavailable);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
  EXPECT_EQ(store().GetTransaction("r2").status().code(), StatusCode::kNotFound);
  counting.fail_next = 0;
}

// Forwards to a real store after failing the first `fail_first` calls with
// Unavailable; notes when each call began (steady clock).
class TimedStore : public ForwardingLogStore {
 public:
  TimedStore(LogStore* inner, int fail_first) : ForwardingLogStore(inner), left_(fail_first) {}

  Result<std::vector<Status>> ApplyStorable(const std::vector<TxnWrite>& w) override {
    {
      std::lock_guard lock(mu_);
      calls_.push_back(std::chrono::steady_clock::now());
      if (left_ > 0) {
        --left_;
        return Status::Unavailable("injected: store away");
      }
    }
    return inner_->ApplyBatch(w);
  }
  std::vector<std::chrono::steady_clock::time_point> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  int left_;
  std::vector<std::chrono::steady_clock::time_point> calls_;
};

// During an outage a batch is retried 10 ms, 20 ms, ... doubling up to
// kLogWriterMaxRetryBackoffMs (250 ms) apart, so once the store is back a
// waiting write commits within about 250 ms. The cap used to be 1 s, so
// acknowledged-pending writes waited up to a second after the database
// recovered. 12 failures: the pauses reach the cap and stay there.
TEST_P(LogWriterTest, RetriesDuringAnOutageAreAtMostTheCapApart) {
  static_assert(kLogWriterMaxRetryBackoffMs <= 250);
  TimedStore timed(&store(), 12);
  Completions done;
  LogWriter writer(&timed, {.retry_for_ms = 60000});
  writer.Submit(CreateWrite("cap-1", "c1"), done.Add("cap-1"));
  auto results = done.Wait(1);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].second.ok()) << results[0].second.ToString();
  const auto calls = timed.calls();
  ASSERT_EQ(calls.size(), 13u);
  std::chrono::steady_clock::duration longest{};
  for (size_t i = 1; i < calls.size(); ++i) longest = std::max(longest, calls[i] - calls[i - 1]);
  // Slack for a loaded machine (sanitizers, -j2), well under the old 1 s.
  EXPECT_LE(longest, std::chrono::milliseconds(250 + 150));
  EXPECT_GE(longest, std::chrono::milliseconds(250)) << "the backoff did not reach its cap";
  // The store came back at the 13th call: the write was answered then.
  EXPECT_LT(calls.back() - calls.front(),
            std::chrono::milliseconds(10 + 20 + 40 + 80 + 160 + 7 * 250 + 1000));
}

TEST(LogWriterPostgresTest, RetriesWhilePostgresRestartsThenFailsWhenDown) {
  MiniPostgres pg;
  Status s = pg.Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(pg.CreateDatabase("writer").ok());
  Result<std::unique_ptr<LogStore>> store = OpenLogStore(pg.Uri("writer"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->Migrate().ok());
  ASSERT_TRUE(ApplyOne(**store, CreateWrite("before", "c1")).ok());  // pooled connection

  Completions done;
  LogWriter writer(store->get(), {.retry_for_ms = 20000});
  ASSERT_TRUE(pg.Stop().ok());
  for (int i = 0; i < 10; ++i)
    writer.Submit(CreateWrite("during" + std::to_string(i), "c1"), done.Add("during"));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  EXPECT_TRUE(done.Wait(1, 0).empty());  // still retrying
  ASSERT_TRUE(pg.Restart().ok());
  auto results = done.Wait(10);
  ASSERT_EQ(results.size(), 10u);
  for (const auto& r : results) EXPECT_TRUE(r.second.ok()) << r.second.ToString();
  EXPECT_TRUE((*store)->GetTransaction("during9").ok());

  // Down for longer than retry_for_ms: every write fails with Unavailable.
  LogWriter impatient(store->get(), {.retry_for_ms = 500});
  ASSERT_TRUE(pg.Stop().ok());
  impatient.Submit(CreateWrite("lost", "c1"), done.Add("lost"));
  results = done.Wait(11);
  ASSERT_EQ(results.size(), 11u);
  EXPECT_EQ(results[10].second.code(), StatusCode::kUnavailable);
  EXPECT_EQ((*store)->GetTransaction("x").status().code(), StatusCode::kUnavailable);

  // The store reconnects once the database is back, within the pool's
  // reconnect backoff cap (2 s).
  ASSERT_TRUE(pg.Restart().ok());
  Status got;
  for (int i = 0; i < 60; ++i) {
    got = (*store)->GetTransaction("before").status();
    if (got.code() != StatusCode::kUnavailable) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(got.ok()) << got.ToString();
  EXPECT_EQ((*store)->GetTransaction("lost").status().code(), StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Engines, LogWriterTest, ::testing::Values("sqlite", "postgres"),
                         EngineName);

}  // namespace
}  // namespace treaty::testing
