// Every PostgreSQL call has a deadline (PgConnectionPool::call_timeout_ms),
// against a real, deliberately broken PostgreSQL of this test's own:
//  - a SIGSTOPped server: calls on pooled and on new connections fail with
//    Unavailable in bounded time, and work again after SIGCONT;
//  - a call waiting for a pool slot gives up at its deadline;
//  - a COMMIT waiting for a synchronous standby that never answers
//    (synchronous_standby_names = 'nobody') is cut at the deadline as
//    "outcome unknown"; the LogWriter reports the stall, and once commits
//    complete again it recognizes its own create and answers OK.

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "store/log_writer.h"
#include "store/pg_connection_pool.h"
#include "store/pg_log_store.h"
#include "store/store_fixture.h"
#include "support/mini_postgres.h"

namespace treaty::testing {
namespace {

using Clock = std::chrono::steady_clock;

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

Status SelectOne(pqxx::connection& c) {
  pqxx::nontransaction tx(c);
  tx.exec("SELECT 1");
  return Status::Ok();
}

class PgDeadlineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status s = pg_.Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    (void)pg_.Resume();
    (void)pg_.Query("ALTER SYSTEM RESET synchronous_standby_names");
    (void)pg_.Query("SELECT pg_reload_conf()");
  }
  MiniPostgres pg_;
};

TEST_F(PgDeadlineTest, PausedServerFailsCallsInBoundedTimeAndRecovers) {
  PgPoolOptions options;
  options.size = 2;
  options.call_timeout_ms = 1000;
  options.reconnect_backoff_max_ms = 500;
  PgConnectionPool pool(pg_.Uri(), options);
  ASSERT_TRUE(pool.Run("select", SelectOne).ok());

  ASSERT_TRUE(pg_.Pause().ok());
  // On the pooled connection: cut by the watchdog at the deadline.
  auto began = Clock::now();
  Status s = pool.Run("select", SelectOne);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_LT(MsSince(began), 5000);
  EXPECT_NE(s.message().find("no answer"), std::string::npos) << s.ToString();
  // On a new connection: bounded by connect_timeout (2 s at the least).
  for (int i = 0; i < 3; ++i) {
    began = Clock::now();
    s = pool.Run("select", SelectOne);
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    EXPECT_LT(MsSince(began), 6000) << s.ToString();
  }

  ASSERT_TRUE(pg_.Resume().ok());
  began = Clock::now();
  while (!pool.Run("select", SelectOne).ok()) {
    ASSERT_LT(MsSince(began), 15000) << "no recovery after SIGCONT";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

TEST_F(PgDeadlineTest, WaitForAFreeConnectionIsBounded) {
  PgPoolOptions options;
  options.size = 1;
  options.call_timeout_ms = 0;  // the busy call below has no deadline
  PgConnectionPool pool(pg_.Uri(), options);
  auto busy = std::async(std::launch::async, [&] {
    return pool.Run("sleep", [](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      tx.exec("SELECT pg_sleep(3)");
      return Status::Ok();
    });
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  pool.set_call_timeout_ms(500);
  const auto began = Clock::now();
  Status waiting = pool.Run("select", SelectOne);
  EXPECT_EQ(waiting.code(), StatusCode::kUnavailable) << waiting.ToString();
  EXPECT_NE(waiting.message().find("no free database connection"), std::string::npos)
      << waiting.ToString();
  EXPECT_LT(MsSince(began), 2000);
  EXPECT_TRUE(busy.get().ok());
  EXPECT_TRUE(pool.Run("select", SelectOne).ok());
}

TEST_F(PgDeadlineTest, CommitWaitingForAStandbyIsCutAndItsCreateRecognizedLater) {
  Result<std::unique_ptr<LogStore>> opened = OpenLogStore(pg_.Uri());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<LogStore> store = std::move(*opened);
  ASSERT_TRUE(store->Migrate().ok());
  auto* pg_store = dynamic_cast<PgLogStore*>(store.get());
  ASSERT_NE(pg_store, nullptr);
  pg_store->set_call_timeout_ms(1000);

  StoreHealth health;
  LogWriter writer(store.get(), {.retry_for_ms = 60000, .stall_after_ms = 500, .health = &health});
  std::promise<Status> before;
  writer.Submit(CreateWrite("before", "c1"), [&](Status s) { before.set_value(s); });
  ASSERT_TRUE(before.get_future().get().ok());

  // The state after a fail-over that kept the old synchronous setting.
  ASSERT_TRUE(pg_.Query("ALTER SYSTEM SET synchronous_standby_names = 'nobody'").ok());
  ASSERT_TRUE(pg_.Query("SELECT pg_reload_conf()").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  // A lone store call: cut at the deadline, outcome unknown.
  auto began = Clock::now();
  Result<std::vector<Status>> direct = store->ApplyBatch({CreateWrite("direct", "c1")});
  EXPECT_FALSE(direct.ok());
  EXPECT_EQ(direct.status().code(), StatusCode::kUnavailable) << direct.status().ToString();
  EXPECT_LT(MsSince(began), 5000);

  // Through the writer: a stall within seconds, then OK once commits work.
  std::promise<Status> during;
  auto during_done = during.get_future();
  began = Clock::now();
  writer.Submit(CreateWrite("during", "c1"), [&](Status s) { during.set_value(s); });
  while (!health.stalled() && MsSince(began) < 10000) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const int64_t stall_ms = MsSince(began);
  ASSERT_TRUE(health.stalled()) << "no stall reported after " << stall_ms << " ms";
  EXPECT_FALSE(health.AcceptsNewWork());
  std::printf("[measure] sync-standby stall reported after %lld ms\n",
              static_cast<long long>(stall_ms));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a few cut attempts
  EXPECT_EQ(during_done.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);

  began = Clock::now();
  ASSERT_TRUE(pg_.Query("ALTER SYSTEM RESET synchronous_standby_names").ok());
  ASSERT_TRUE(pg_.Query("SELECT pg_reload_conf()").ok());
  ASSERT_EQ(during_done.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  Status s = during_done.get();
  EXPECT_TRUE(s.ok()) << s.ToString();
  std::printf("[measure] un-stall to write answered OK: %lld ms\n",
              static_cast<long long>(MsSince(began)));
  EXPECT_FALSE(health.stalled());
  Result<TxnDetail> row = store->GetTransactionNoEvents("during");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->txn.owner, "c1");
  // The cut lone COMMIT had committed locally: it is there too.
  EXPECT_TRUE(store->GetTransactionNoEvents("direct").ok());
}

}  // namespace
}  // namespace treaty::testing
