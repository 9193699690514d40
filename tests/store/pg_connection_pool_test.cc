// PgConnectionPool's reconnect backoff against a real PostgreSQL
// (MiniPostgres): while the database is down, calls fail fast with
// Unavailable without each trying to connect; once it is back, calls succeed
// again within the backoff cap. Time is a fake clock the test advances, and
// connect attempts are counted through PgPoolOptions::on_connect_attempt.
// Also: the connection defaults added to every conninfo form libpq accepts,
// and the one mapping of PostgreSQL errors (store/pg_error.h).

#include "store/pg_connection_pool.h"

#include <gtest/gtest.h>

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/mini_postgres.h"

namespace treaty::testing {
namespace {

Status SelectOne(pqxx::connection& c) {
  pqxx::nontransaction tx(c);
  tx.exec("SELECT 1");
  return Status::Ok();
}

// Every parameter `conninfo` sets, as libpq reads it; {"error", why} when it
// cannot.
std::map<std::string, std::string> Parsed(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    std::string why = error != nullptr ? error : "out of memory";
    PQfreemem(error);
    return {{"error", why}};
  }
  std::map<std::string, std::string> out;
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) out[o->keyword] = o->val;
  }
  PQconninfoFree(options);
  return out;
}

// `given` plus the defaults PgConnectionPool adds where absent.
std::map<std::string, std::string> WithDefaults(std::map<std::string, std::string> given,
                                                const std::string& connect_timeout) {
  for (const auto& [key, value] :
       std::map<std::string, std::string>{{"connect_timeout", connect_timeout},
                                          {"keepalives", "1"},
                                          {"keepalives_idle", "10"},
                                          {"keepalives_interval", "5"},
                                          {"keepalives_count", "3"}}) {
    given.emplace(key, value);
  }
  return given;
}

// Regression: the defaults used to be appended to the conninfo as text, which
// broke a URI ending in "?" ("?&connect_timeout=..."), and could not tell a
// parameter from a value that happens to contain its name.
TEST(PgConnectionDefaultsTest, KeepsEveryGivenValueAndAddsDefaultsOnlyWhereAbsent) {
  ::unsetenv("PGCONNECT_TIMEOUT");
  const auto defaults = [](const std::string& conninfo, int64_t call_timeout_ms) {
    return Parsed(PgConnectionPool::WithConnectionDefaults(conninfo, call_timeout_ms));
  };
  EXPECT_EQ(defaults("postgresql://u@127.0.0.1:5432/db?", 3000),
            WithDefaults({{"user", "u"}, {"host", "127.0.0.1"}, {"port", "5432"}, {"dbname", "db"}},
                         "3"));
  EXPECT_EQ(defaults("postgresql://127.0.0.1/db?sslmode=disable", 500),
            WithDefaults({{"host", "127.0.0.1"}, {"dbname", "db"}, {"sslmode", "disable"}}, "2"));
  EXPECT_EQ(defaults("postgres://h/db?connect_timeout=7&keepalives=0&application_name=a%20b", 0),
            WithDefaults({{"host", "h"},
                          {"dbname", "db"},
                          {"connect_timeout", "7"},
                          {"keepalives", "0"},
                          {"application_name", "a b"}},
                         "unused"));
  // Quoted key=value values, with spaces, escaped quotes and backslashes,
  // and an empty one.
  EXPECT_EQ(defaults(R"(host=h dbname='my db' password='it\'s \\ x' application_name='')", 0),
            WithDefaults({{"host", "h"},
                          {"dbname", "my db"},
                          {"password", R"(it's \ x)"},
                          {"application_name", ""}},
                         "10"));
  // A value naming a parameter does not set it.
  EXPECT_EQ(
      defaults("host=h application_name=keepalives_connect_timeout", 0),
      WithDefaults({{"host", "h"}, {"application_name", "keepalives_connect_timeout"}}, "10"));
  // Multi-host lists, key=value and URI.
  EXPECT_EQ(
      defaults("host=a,b port=5432,5433 target_session_attrs=read-write", 2500),
      WithDefaults({{"host", "a,b"}, {"port", "5432,5433"}, {"target_session_attrs", "read-write"}},
                   "3"));
  EXPECT_EQ(defaults("postgresql://a:1,b:2/db?target_session_attrs=read-write", 0),
            WithDefaults({{"host", "a,b"},
                          {"port", "1,2"},
                          {"dbname", "db"},
                          {"target_session_attrs", "read-write"}},
                         "10"));
  EXPECT_EQ(defaults("host=h connect_timeout=7 keepalives=0", 3000),
            WithDefaults({{"host", "h"}, {"connect_timeout", "7"}, {"keepalives", "0"}}, "unused"));
  EXPECT_EQ(defaults("", 0), WithDefaults({}, "10"));
  // What libpq cannot parse is left for the connect to report.
  EXPECT_EQ(PgConnectionPool::WithConnectionDefaults("host='unterminated", 0),
            "host='unterminated");
  EXPECT_EQ(PgConnectionPool::WithConnectionDefaults("postgresql://h/db?nokey=1", 0),
            "postgresql://h/db?nokey=1");
}

// The rebuilt conninfo reaches the server as given: a URI ending in "?" and
// one with a query both connect, the latter with its application_name.
TEST(PgConnectionDefaultsTest, UriFormsConnect) {
  MiniPostgres pg;
  Status s = pg.Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (const std::string& uri :
       {pg.Uri() + "?", pg.Uri() + "?sslmode=disable&application_name=treaty%20pool"}) {
    PgConnectionPool pool(uri, 1);
    std::string name;
    s = pool.Run("show", [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      name = tx.exec1("SHOW application_name")[0].as<std::string>();
      return Status::Ok();
    });
    ASSERT_TRUE(s.ok()) << uri << ": " << s.ToString();
    if (uri.find("application_name") != std::string::npos) EXPECT_EQ(name, "treaty pool");
  }
}

// The one reading of SQLSTATEs (store/pg_error.h); the store's data errors
// are checked in log_store_poison_test.cc.
TEST(PgErrorTest, KindsOfSqlstates) {
  for (const char* transient :
       {"08006", "57P01", "57014", "53300", "40001", "40P01", "25006", "55P03"}) {
    EXPECT_EQ(PgErrorKindOf(transient), PgErrorKind::kTransient) << transient;
    EXPECT_EQ(PgErrorStatus("w", transient, "m").code(), StatusCode::kUnavailable) << transient;
  }
  EXPECT_EQ(PgErrorKindOf("23505"), PgErrorKind::kUniqueViolation);
  for (const char* integrity : {"23502", "23503", "23514", "23P01"}) {
    EXPECT_EQ(PgErrorKindOf(integrity), PgErrorKind::kIntegrityViolation) << integrity;
  }
  for (const char* bad : {"22021", "22P02", "54000"}) {
    EXPECT_EQ(PgErrorKindOf(bad), PgErrorKind::kBadData) << bad;
  }
  for (const char* other : {"42601", "42P01", "42501", "55000", ""}) {
    EXPECT_EQ(PgErrorKindOf(other), PgErrorKind::kOther) << other;
  }
  EXPECT_TRUE(PgErrorMayBreakConnection("08006"));
  EXPECT_TRUE(PgErrorMayBreakConnection(""));
  EXPECT_FALSE(PgErrorMayBreakConnection("40001"));
  // A prepared statement the session cannot use any more.
  EXPECT_TRUE(PgErrorMayBreakConnection("0A000"));
  EXPECT_TRUE(PgErrorMayBreakConnection("26000"));
  EXPECT_TRUE(PgErrorMayBreakConnection("42P05"));
}

// Every libpqxx 6.4 exception class, constructed as libpqxx throws it (the
// class 40 ones and insufficient_privilege without a SQLSTATE, the other
// SQL errors with one): its Status code, the SQLSTATE named, and whether
// the connection is dropped.
TEST(PgErrorTest, EveryLibpqxxExceptionClass) {
  struct Case {
    std::function<void()> raise;
    StatusCode code;
    std::string sqlstate;  // "" when none is known
    bool drop;
  };
  const auto sql = [](auto error) { return [error] { throw error; }; };
  const std::vector<Case> cases = {
      {sql(pqxx::broken_connection("gone")), StatusCode::kUnavailable, "", true},
      {sql(pqxx::too_many_connections("full")), StatusCode::kUnavailable, "53300", true},
      {sql(pqxx::in_doubt_error("commit")), StatusCode::kUnavailable, "", true},
      {sql(pqxx::transaction_rollback("rb")), StatusCode::kUnavailable, "40000", false},
      {sql(pqxx::serialization_failure("sf")), StatusCode::kUnavailable, "40001", false},
      {sql(pqxx::statement_completion_unknown("scu")), StatusCode::kUnavailable, "40003", false},
      {sql(pqxx::deadlock_detected("dl")), StatusCode::kUnavailable, "40P01", false},
      {sql(pqxx::insufficient_privilege("perm", "q")), StatusCode::kInternal, "42501", false},
      {sql(pqxx::syntax_error("syn", "q", "42601")), StatusCode::kInternal, "42601", false},
      {sql(pqxx::undefined_table("t", "q", "42P01")), StatusCode::kInternal, "42P01", false},
      {sql(pqxx::undefined_column("c", "q", "42703")), StatusCode::kInternal, "42703", false},
      {sql(pqxx::undefined_function("f", "q", "42883")), StatusCode::kInternal, "42883", false},
      {sql(pqxx::unique_violation("u", "q", "23505")), StatusCode::kConflict, "23505", false},
      {sql(pqxx::check_violation("c", "q", "23514")), StatusCode::kInvalidArgument, "23514", false},
      {sql(pqxx::not_null_violation("n", "q", "23502")), StatusCode::kInvalidArgument, "23502",
       false},
      {sql(pqxx::foreign_key_violation("f", "q", "23503")), StatusCode::kInvalidArgument, "23503",
       false},
      {sql(pqxx::restrict_violation("r", "q", "23001")), StatusCode::kInvalidArgument, "23001",
       false},
      {sql(pqxx::data_exception("d", "q", "22012")), StatusCode::kInvalidArgument, "22012", false},
      // Prepared statements the session cannot use any more: dropped.
      {sql(pqxx::feature_not_supported("f", "q", "0A000")), StatusCode::kInternal, "0A000", true},
      {sql(pqxx::invalid_sql_statement_name("s", "q", "26000")), StatusCode::kInternal, "26000",
       true},
      {sql(pqxx::invalid_cursor_state("c", "q", "24000")), StatusCode::kInternal, "24000", false},
      {sql(pqxx::invalid_cursor_name("c", "q", "34000")), StatusCode::kInternal, "34000", false},
      {sql(pqxx::insufficient_resources("r", "q", "53000")), StatusCode::kUnavailable, "53000",
       false},
      {sql(pqxx::disk_full("d", "q", "53100")), StatusCode::kUnavailable, "53100", false},
      {sql(pqxx::plpgsql_raise("r", "q", "P0001")), StatusCode::kInternal, "P0001", false},
      {sql(pqxx::plpgsql_error("p", "q", "P0000")), StatusCode::kInternal, "P0000", false},
      {sql(pqxx::sql_error("shutdown", "q", "57P01")), StatusCode::kUnavailable, "57P01", true},
      {sql(pqxx::sql_error("libpq's own", "q")), StatusCode::kInternal, "", true},
      {sql(pqxx::failure("libpq call")), StatusCode::kUnavailable, "", true},
      {sql(pqxx::conversion_error("conv")), StatusCode::kInternal, "", false},
      {sql(pqxx::unexpected_rows("rows")), StatusCode::kInternal, "", false},
      {sql(pqxx::range_error("range")), StatusCode::kInternal, "", false},
      {sql(pqxx::argument_error("arg")), StatusCode::kInternal, "", false},
      {sql(pqxx::usage_error("usage")), StatusCode::kInternal, "", true},
      {sql(pqxx::internal_error("bug")), StatusCode::kInternal, "", true},
      {sql(std::bad_alloc()), StatusCode::kInternal, "", true},
      {[] { throw 42; }, StatusCode::kInternal, "", true},
  };
  for (const Case& c : cases) {
    PgFailure failure;
    try {
      c.raise();
    } catch (...) {
      failure = CaughtPgError("w");
    }
    const std::string text = failure.status.ToString();
    EXPECT_EQ(failure.status.code(), c.code) << text;
    EXPECT_EQ(failure.drop, c.drop) << text;
    if (c.sqlstate.empty()) {
      EXPECT_EQ(text.find('['), std::string::npos) << text;
    } else {
      EXPECT_NE(text.find("[" + c.sqlstate + "]"), std::string::npos) << text;
    }
  }
}

// An exception of any kind thrown by a body becomes a Status; the pool
// stays usable.
TEST(PgConnectionPoolTest, AnyExceptionOfABodyBecomesAStatus) {
  MiniPostgres pg;
  Status s = pg.Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  PgConnectionPool pool(pg.Uri(), 1);
  s = pool.Run("syntax", [](pqxx::connection& c) {
    pqxx::work(c).exec("SELEC 1");
    return Status::Ok();
  });
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
  EXPECT_NE(s.message().find("42601"), std::string::npos) << s.ToString();
  s = pool.Run("throw", [](pqxx::connection&) -> Status { throw 42; });
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
  EXPECT_TRUE(pool.Run("select", SelectOne).ok());
}

// Real errors of a real PostgreSQL through PgConnectionPool::Run, as
// libpqxx throws them (its exception classes differ from the SQLSTATE's:
// in libpqxx 6.4 the class 40 ones are no sql_error and
// insufficient_privilege carries no SQLSTATE). Each gets its Status code,
// names its SQLSTATE, and leaves the one pooled connection in use: the call
// after it succeeds without a reconnect.
class PgRealErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status s = pg_.Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    admin_ = std::make_unique<pqxx::connection>(pg_.Uri());
    pqxx::work setup(*admin_);
    setup.exec0(
        "CREATE TABLE account(id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0))");
    setup.exec0("INSERT INTO account VALUES (1, 10), (2, 10)");
    setup.exec0("CREATE ROLE treaty_weak LOGIN");  // no privilege on account
    setup.commit();
  }

  // Runs `body` on a pool of one connection as `user`; expects `code` with
  // `sqlstate` in the message, and the connection kept.
  void ExpectMapped(const std::string& user, const PgConnectionPool::Body& body, StatusCode code,
                    const std::string& sqlstate) {
    std::atomic<int> connects{0};
    PgPoolOptions options;
    options.size = 1;
    options.on_connect_attempt = [&] { ++connects; };
    PgConnectionPool pool(
        "postgresql://" + user + "@127.0.0.1:" + std::to_string(pg_.port()) + "/postgres", options);
    ASSERT_TRUE(pool.Run("warm", SelectOne).ok());
    const Status s = pool.Run("w", body);
    EXPECT_EQ(s.code(), code) << sqlstate << ": " << s.ToString();
    EXPECT_NE(s.message().find("[" + sqlstate + "]"), std::string::npos) << s.ToString();
    const Status after = pool.Run("after", SelectOne);
    EXPECT_TRUE(after.ok()) << sqlstate << ": " << after.ToString();
    EXPECT_EQ(connects.load(), 1) << sqlstate << ": the connection was dropped";
  }

  static PgConnectionPool::Body Exec(const std::string& sql) {
    return [sql](pqxx::connection& c) {
      pqxx::work tx(c);
      tx.exec(sql);
      tx.commit();
      return Status::Ok();
    };
  }

  MiniPostgres pg_;
  std::unique_ptr<pqxx::connection> admin_;  // the superuser's own session
};

TEST_F(PgRealErrorTest, SerializationFailureIsUnavailableAndKeepsTheConnection) {
  ExpectMapped(
      "postgres",
      [&](pqxx::connection& c) {
        pqxx::transaction<pqxx::isolation_level::repeatable_read> tx(c);
        tx.exec("SELECT balance FROM account WHERE id = 1");  // takes the snapshot
        pqxx::work concurrent(*admin_);
        concurrent.exec0("UPDATE account SET balance = balance + 1 WHERE id = 1");
        concurrent.commit();
        tx.exec("UPDATE account SET balance = balance - 1 WHERE id = 1");  // 40001
        tx.commit();
        return Status::Ok();
      },
      StatusCode::kUnavailable, "40001");
}

TEST_F(PgRealErrorTest, DeadlockIsUnavailableAndKeepsTheConnection) {
  ExpectMapped(
      "postgres",
      [&](pqxx::connection& c) {
        pqxx::work tx(c);
        // This session checks for the deadlock first, so it is the victim.
        tx.exec("SET LOCAL deadlock_timeout = '50ms'");
        tx.exec("SELECT 1 FROM account WHERE id = 1 FOR UPDATE");
        std::atomic<bool> holds_2{false};
        std::thread other([&] {
          try {
            pqxx::work w(*admin_);
            w.exec("SET LOCAL deadlock_timeout = '60s'");
            w.exec("SELECT 1 FROM account WHERE id = 2 FOR UPDATE");
            holds_2 = true;
            w.exec("SELECT 1 FROM account WHERE id = 1 FOR UPDATE");  // waits for tx
          } catch (const std::exception&) {
            holds_2 = true;
          }
        });
        try {
          const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
          while (std::chrono::steady_clock::now() < deadline &&
                 (!holds_2 ||
                  tx.exec1("SELECT count(*) FROM pg_locks WHERE NOT granted")[0].as<int>() == 0)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
          tx.exec("SELECT 1 FROM account WHERE id = 2 FOR UPDATE");  // 40P01
        } catch (...) {
          tx.abort();  // frees row 1 for the other session
          other.join();
          throw;
        }
        tx.abort();
        other.join();
        return Status::Ok();
      },
      StatusCode::kUnavailable, "40P01");
}

TEST_F(PgRealErrorTest, PermissionDeniedIsInternalAndKeepsTheConnection) {
  ExpectMapped("treaty_weak", Exec("INSERT INTO account VALUES (3, 1)"), StatusCode::kInternal,
               "42501");
}

TEST_F(PgRealErrorTest, StatementErrorsKeepTheConnection) {
  ExpectMapped("postgres", Exec("INSERT INTO account VALUES (1, 5)"), StatusCode::kConflict,
               "23505");
  ExpectMapped("postgres", Exec("UPDATE account SET balance = -1"), StatusCode::kInvalidArgument,
               "23514");
  ExpectMapped("postgres", Exec("SELECT 1 / 0"), StatusCode::kInvalidArgument, "22012");
  ExpectMapped("postgres", Exec("SELEC 1"), StatusCode::kInternal, "42601");
  ExpectMapped("postgres", Exec("SELECT * FROM nowhere"), StatusCode::kInternal, "42P01");
}

// libpqxx's own errors raised while reading a result leave the session
// usable: Internal, connection kept. A usage error may leave libpqxx's
// state of the connection inconsistent: dropped.
TEST_F(PgRealErrorTest, LibpqxxClientErrors) {
  std::atomic<int> connects{0};
  PgPoolOptions options;
  options.size = 1;
  options.on_connect_attempt = [&] { ++connects; };
  PgConnectionPool pool(pg_.Uri(), options);
  Status s = pool.Run("conversion", [](pqxx::connection& c) {
    pqxx::work tx(c);
    (void)tx.exec1("SELECT 'x'")[0].as<int>();  // pqxx::conversion_error
    return Status::Ok();
  });
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
  s = pool.Run("rows", [](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec1("SELECT 1 WHERE false");  // pqxx::unexpected_rows
    return Status::Ok();
  });
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
  EXPECT_TRUE(pool.Run("after", SelectOne).ok());
  EXPECT_EQ(connects.load(), 1);
  s = pool.Run("usage", [](pqxx::connection& c) {
    pqxx::work tx(c);
    pqxx::work second(c);  // pqxx::usage_error: one transaction at a time
    return Status::Ok();
  });
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
  EXPECT_TRUE(pool.Run("after", SelectOne).ok());
  EXPECT_EQ(connects.load(), 2);
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
