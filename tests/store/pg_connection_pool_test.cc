// PgConnectionPool's reconnect backoff against a real PostgreSQL
// (MiniPostgres): while the database is down, calls fail fast with
// Unavailable without each trying to connect; once it is back, calls succeed
// again within the backoff cap. Time is a fake clock the test advances, and
// connect attempts are counted through PgPoolOptions::on_connect_attempt.

#include "store/pg_connection_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "support/mini_postgres.h"

namespace treaty::testing {
namespace {

Status SelectOne(pqxx::connection& c) {
  pqxx::nontransaction tx(c);
  tx.exec("SELECT 1");
  return Status::Ok();
}

TEST(PgConnectionPoolTest, BacksOffReconnectsWhileDownAndRecovers) {
  MiniPostgres pg;
  Status s = pg.Start();
  ASSERT_TRUE(s.ok()) << s.ToString();

  std::atomic<int64_t> now_ms{1000};
  std::atomic<int> attempts{0};
  PgPoolOptions options;
  options.size = 2;
  options.reconnect_backoff_initial_ms = 50;
  options.reconnect_backoff_max_ms = 2000;
  options.now_ms = [&] { return now_ms.load(); };
  options.on_connect_attempt = [&] { ++attempts; };
  PgConnectionPool pool(pg.Uri(), options);

  ASSERT_TRUE(pool.Run("select", SelectOne).ok());
  EXPECT_EQ(attempts.load(), 1);

  ASSERT_TRUE(pg.Stop().ok());
  // The pooled connection is found broken and dropped; the next call tries
  // to connect once, fails, and opens the window.
  EXPECT_EQ(pool.Run("select", SelectOne).code(), StatusCode::kUnavailable);
  const int after_drop = attempts.load();
  while (attempts.load() == after_drop) {
    ASSERT_EQ(pool.Run("select", SelectOne).code(), StatusCode::kUnavailable);
    ASSERT_LE(attempts.load(), after_drop + 1);
  }
  const int first_failure = attempts.load();

  // Inside the window: many calls, no connect attempt.
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(pool.Run("select", SelectOne).code(), StatusCode::kUnavailable);
  }
  EXPECT_EQ(attempts.load(), first_failure);

  // The window doubles: 50 ms, then 100 ms, then 200 ms.
  now_ms += 50;
  EXPECT_EQ(pool.Run("select", SelectOne).code(), StatusCode::kUnavailable);
  EXPECT_EQ(attempts.load(), first_failure + 1);
  now_ms += 99;
  EXPECT_EQ(pool.Run("select", SelectOne).code(), StatusCode::kUnavailable);
  EXPECT_EQ(attempts.load(), first_failure + 1);
  now_ms += 1;
  EXPECT_EQ(pool.Run("select", SelectOne).code(), StatusCode::kUnavailable);
  EXPECT_EQ(attempts.load(), first_failure + 2);

  // ... up to the cap: after many failures the window is 2 s, never more.
  for (int i = 0; i < 10; ++i) {
    now_ms += 2000;
    EXPECT_EQ(pool.Run("select", SelectOne).code(), StatusCode::kUnavailable);
  }
  EXPECT_EQ(attempts.load(), first_failure + 12);
  now_ms += 1999;
  EXPECT_EQ(pool.Run("select", SelectOne).code(), StatusCode::kUnavailable);
  EXPECT_EQ(attempts.load(), first_failure + 12);

  // Back up: a refused call does not try, but within the cap one succeeds,
  // and success resets the backoff.
  ASSERT_TRUE(pg.Restart().ok());
  EXPECT_EQ(pool.Run("select", SelectOne).code(), StatusCode::kUnavailable);
  now_ms += 1;
  s = pool.Run("select", SelectOne);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(attempts.load(), first_failure + 13);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(pool.Run("select", SelectOne).ok());

  // After the reset a new outage starts again at the initial window.
  ASSERT_TRUE(pg.Stop().ok());
  while (pool.Run("select", SelectOne).ok()) {
  }
  const int second_outage = attempts.load();
  while (attempts.load() == second_outage) {
    ASSERT_EQ(pool.Run("select", SelectOne).code(), StatusCode::kUnavailable);
  }
  now_ms += 50;
  EXPECT_EQ(pool.Run("select", SelectOne).code(), StatusCode::kUnavailable);
  EXPECT_EQ(attempts.load(), second_outage + 2);
}

// A coordinator stopped between two statements of a transaction (SIGSTOP, a
// paused VM) must not keep its row locks: ClaimOrphans skips locked rows, so
// no peer could adopt those transactions until it woke up. The pool's
// sessions get idle_in_transaction_session_timeout = the call deadline at
// connect time, and PostgreSQL ends such a session.
TEST(PgConnectionPoolTest, SessionIdleInsideATransactionIsEndedByTheServer) {
  MiniPostgres pg;
  Status s = pg.Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  pqxx::connection other(pg.Uri());
  {
    pqxx::work setup(other);
    setup.exec0("CREATE TABLE t (id int PRIMARY KEY)");
    setup.exec0("INSERT INTO t VALUES (1)");
    setup.commit();
  }
  PgPoolOptions options;
  options.size = 1;  // the session opened below is the one reused after
  options.call_timeout_ms = 1000;
  PgConnectionPool pool(pg.Uri(), options);
  std::string shown;
  ASSERT_TRUE(
      pool.Run("show",
               [&](pqxx::connection& c) {
                 pqxx::nontransaction tx(c);
                 shown = tx.exec1("SHOW idle_in_transaction_session_timeout")[0].as<std::string>();
                 return Status::Ok();
               })
          .ok());
  EXPECT_EQ(shown, "1s");

  // That session stops inside a transaction holding a row lock (no call
  // deadline now, so only the server's limit can end it): the server ends
  // it and the lock is free again.
  pool.set_call_timeout_ms(0);
  int64_t free_rows = 0;
  bool ended = false;
  (void)pool.Run("stopped", [&](pqxx::connection& c) {
    pqxx::work held(c);
    held.exec1("SELECT id FROM t WHERE id = 1 FOR UPDATE");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (free_rows == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      pqxx::work probe(other);
      free_rows = probe.exec1("SELECT count(*) FROM (SELECT id FROM t FOR UPDATE SKIP LOCKED) s")[0]
                      .as<int64_t>();
    }
    // The stopped session learns it was ended on its next statement.
    try {
      held.exec1("SELECT 1");
    } catch (const std::exception&) {
      ended = true;
    }
    return Status::Ok();
  });
  EXPECT_EQ(free_rows, 1) << "the idle transaction still holds its row lock";
  EXPECT_TRUE(ended);
}

}  // namespace
}  // namespace treaty::testing
