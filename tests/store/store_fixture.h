#pragma once

// Shared fixture of the store tests: every TEST_P runs once per engine, on a
// fresh, migrated store (SQLite: a new file in a temp folder; PostgreSQL: a
// new database on one MiniPostgres shared by the whole binary).

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "store/log_store.h"
#include "support/mini_postgres.h"

namespace treaty::testing {

// The binary-wide PostgreSQL, started on first use (fails the test if it
// cannot start).
MiniPostgres* SharedPostgres();

// Opens a fresh, unmigrated store of `engine` ("sqlite" or "postgres"). For
// SQLite, `*scratch_dir` (if given) is set to the folder to delete afterwards.
Result<std::unique_ptr<LogStore>> OpenFreshStore(const std::string& engine,
                                                 std::string* scratch_dir = nullptr);

// Creates database `db` on SharedPostgres() and opens a migrated store on it,
// for PostgreSQL-only tests that also reach the database by name (psql).
Result<std::unique_ptr<LogStore>> OpenNewPgStore(const std::string& db);

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override;
  void TearDown() override;
  LogStore& store() { return *store_; }

  std::unique_ptr<LogStore> store_;
  std::string scratch_dir_;
};

// A create of `gtid` owned by `owner` with created_at = `created_at_ms`.
TxnWrite CreateWrite(const std::string& gtid, const std::string& owner,
                     int64_t created_at_ms = 1000, const std::string& state = "RUNNING",
                     const std::string& kind = "saga");
// Applies one write; the store-level failure or that write's Status.
Status ApplyOne(LogStore& store, const TxnWrite& write);
std::string EngineName(const ::testing::TestParamInfo<std::string>& info);

}  // namespace treaty::testing
