// SqlTx::Exec (participant-sdk/src/sql_tx.h) under real errors of a real
// PostgreSQL, as libpqxx throws them: each gets the code treaty/sql.h
// promises and names its SQLSTATE, and the session stays usable. In
// libpqxx 6.4 the class 40 errors are no pqxx::sql_error and
// insufficient_privilege carries no SQLSTATE: these used to come out as
// Internal with an empty "[]".

#include "sql_tx.h"

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "sdk/sdk_test_env.h"

namespace treaty::testing {
namespace {

using treaty::StatusCode;
using treaty::sdk::SqlTx;

class SqlTxErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uri_ = FreshDatabase("sqltx");
    ASSERT_FALSE(uri_.empty());
    ExecSql(uri_,
            "CREATE TABLE account(id int PRIMARY KEY, balance bigint NOT NULL "
            "CHECK (balance >= 0));"
            "INSERT INTO account VALUES (1, 10), (2, 10);"
            "DO $$ BEGIN CREATE ROLE treaty_weak LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$");
  }

  // `uri_` as the role `user`.
  std::string UriAs(const std::string& user) const {
    std::string uri = uri_;
    uri.replace(uri.find("postgres@"), 9, user + "@");
    return uri;
  }

  // Runs `body` on a transaction (of type Tx) of a new session as `user`
  // through SqlTx; expects `code` naming `sqlstate`, and the same session
  // usable afterwards.
  template <typename Tx = pqxx::work>
  void ExpectMapped(const std::string& user,
                    const std::function<treaty::Status(SqlTx&, pqxx::transaction_base&)>& body,
                    StatusCode code, const std::string& sqlstate) {
    pqxx::connection c(UriAs(user));
    treaty::Status s;
    {
      Tx tx(c);
      SqlTx::Impl impl(tx);
      SqlTx sql(&impl);
      s = body(sql, tx);
    }
    EXPECT_EQ(s.code(), code) << sqlstate << ": " << s.ToString();
    EXPECT_NE(s.message().find("[" + sqlstate + "]"), std::string::npos) << s.ToString();
    ASSERT_TRUE(c.is_open()) << sqlstate;
    pqxx::work after(c);
    SqlTx::Impl impl(after);
    auto one = impl.Exec("SELECT 1", {});
    ASSERT_TRUE(one.ok()) << sqlstate << ": " << one.status().ToString();
    EXPECT_EQ(one->rows.at(0).Int(0), 1);
  }

  static std::function<treaty::Status(SqlTx&, pqxx::transaction_base&)> Exec(
      const std::string& sql) {
    return [sql](SqlTx& tx, pqxx::transaction_base&) { return tx.Exec(sql).status(); };
  }

  std::string uri_;
};

TEST_F(SqlTxErrorTest, SerializationFailureIsUnavailable) {
  ExpectMapped<pqxx::transaction<pqxx::isolation_level::repeatable_read>>(
      "postgres",
      [&](SqlTx& tx, pqxx::transaction_base&) {
        EXPECT_TRUE(tx.Exec("SELECT balance FROM account WHERE id = 1").ok());  // the snapshot
        ExecSql(uri_, "UPDATE account SET balance = balance + 1 WHERE id = 1");
        return tx.Exec("UPDATE account SET balance = balance - 1 WHERE id = 1").status();
      },
      StatusCode::kUnavailable, "40001");
}

TEST_F(SqlTxErrorTest, DeadlockIsUnavailable) {
  ExpectMapped(
      "postgres",
      [&](SqlTx& tx, pqxx::transaction_base& raw) {
        // This session checks for the deadlock first, so it is the victim.
        EXPECT_TRUE(tx.Exec("SET LOCAL deadlock_timeout = '50ms'").ok());
        EXPECT_TRUE(tx.Exec("SELECT 1 FROM account WHERE id = 1 FOR UPDATE").ok());
        std::atomic<bool> holds_2{false};
        std::thread other([&] {
          try {
            pqxx::connection oc(uri_);
            pqxx::work w(oc);
            w.exec("SET LOCAL deadlock_timeout = '60s'");
            w.exec("SELECT 1 FROM account WHERE id = 2 FOR UPDATE");
            holds_2 = true;
            w.exec("SELECT 1 FROM account WHERE id = 1 FOR UPDATE");  // waits for tx
          } catch (const std::exception&) {
            holds_2 = true;
          }
        });
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (
            std::chrono::steady_clock::now() < deadline &&
            (!holds_2 ||
             tx.Exec("SELECT count(*) FROM pg_locks WHERE NOT granted")->rows.at(0).Int(0) == 0)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        treaty::Status s = tx.Exec("SELECT 1 FROM account WHERE id = 2 FOR UPDATE").status();
        raw.abort();  // frees row 1 for the other session
        other.join();
        return s;
      },
      StatusCode::kUnavailable, "40P01");
}

TEST_F(SqlTxErrorTest, PermissionDeniedIsInternal) {
  ExpectMapped("treaty_weak", Exec("INSERT INTO account VALUES (3, 1)"), StatusCode::kInternal,
               "42501");
}

TEST_F(SqlTxErrorTest, StatementErrors) {
  ExpectMapped("postgres", Exec("INSERT INTO account VALUES (1, 5)"), StatusCode::kConflict,
               "23505");
  ExpectMapped("postgres", Exec("UPDATE account SET balance = -1"), StatusCode::kConflict, "23514");
  ExpectMapped("postgres", Exec("SELECT 1 / 0"), StatusCode::kInternal, "22012");
  ExpectMapped("postgres", Exec("SELEC 1"), StatusCode::kInternal, "42601");
  ExpectMapped("postgres", Exec("SELECT * FROM nowhere"), StatusCode::kInternal, "42P01");
}

}  // namespace
}  // namespace treaty::testing
