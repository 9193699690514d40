// A log migrated by a newer release: schema_migrations
// holds a version above the newest this binary knows. `treatyd` must refuse
// to start and `treatyd migrate` to migrate, exiting non-zero with a message
// naming both versions; LogStore::CheckReady (/readyz) must fail likewise.
// On a real SQLite file and a real PostgreSQL (tests/support/mini_postgres.h).

#include <sqlite3.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "store/log_store.h"
#include "store/migrations.h"
#include "support/mini_postgres.h"
#include "support/subprocess.h"

namespace treaty::testing {
namespace {

class SchemaVersionTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-schema-version");
    if (engine() == "sqlite") {
      store_ = "sqlite:" + dir_ + "/t.db";
    } else {
      ASSERT_TRUE(pg_.Start().ok());
      ASSERT_TRUE(pg_.CreateDatabase("schema_version").ok());
      store_ = pg_.Uri("schema_version");
    }
    known_ = LatestMigrationVersion(engine());
    ASSERT_GT(known_, 0);
    future_ = known_ + 5;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& engine() const { return GetParam(); }

  // Runs treatyd with `args`; its exit status (-1: still running after
  // 30 s, killed) and its output.
  int RunTreatyd(const std::vector<std::string>& args, std::string* output) {
    std::vector<std::string> argv = {BinaryPath("treatyd")};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string log = dir_ + "/treatyd-" + std::to_string(runs_++) + ".log";
    Subprocess proc(argv, log);
    if (!proc.Start().ok()) return -2;
    const int rc = proc.Wait(30000);
    *output = proc.Log();
    return rc;
  }
  std::vector<std::string> ServeArgs() const {
    return {"--store",  store_,       "--http", "127.0.0.1:" + std::to_string(FreePort()),
            "--thrift", "127.0.0.1:0"};
  }

  // What a newer release would have left: one more applied migration.
  void RecordFutureMigration() {
    const std::string sql = "INSERT INTO schema_migrations (version, name, applied_at) VALUES (" +
                            std::to_string(future_) + ", 'from_a_newer_release', 0)";
    if (engine() == "postgres") {
      ASSERT_TRUE(pg_.Query(sql, "schema_version").ok());
      return;
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(store_.substr(7).c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }

  void ExpectNamesBothVersions(const std::string& text) {
    EXPECT_NE(text.find("version " + std::to_string(future_)), std::string::npos) << text;
    EXPECT_NE(text.find("up to " + std::to_string(known_)), std::string::npos) << text;
  }

  MiniPostgres pg_;
  std::string dir_, store_;
  int64_t known_ = 0, future_ = 0;
  int runs_ = 0;
};

TEST_P(SchemaVersionTest, NewerLogIsRefusedByStartMigrateAndReadiness) {
  {
    auto store = OpenLogStore(store_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->Migrate().ok());
  }
  RecordFutureMigration();
  std::string out;

  EXPECT_NE(RunTreatyd({"migrate", "--store", store_}, &out), 0) << out;
  ExpectNamesBothVersions(out);

  const int rc = RunTreatyd(ServeArgs(), &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(rc, -1) << "treatyd started on a log migrated by a newer release:\n" << out;
  ExpectNamesBothVersions(out);

  auto store = OpenLogStore(store_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Status ready = (*store)->CheckReady();
  EXPECT_FALSE(ready.ok());
  ExpectNamesBothVersions(ready.message());
  Status migrated = (*store)->Migrate();
  EXPECT_FALSE(migrated.ok());
  ExpectNamesBothVersions(migrated.message());
}

// The log at this binary's own version is fine: migrate is idempotent and
// readiness holds.
TEST_P(SchemaVersionTest, SameVersionIsReady) {
  std::string out;
  ASSERT_EQ(RunTreatyd({"migrate", "--store", store_}, &out), 0) << out;
  ASSERT_EQ(RunTreatyd({"migrate", "--store", store_}, &out), 0) << out;
  auto store = OpenLogStore(store_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_TRUE((*store)->CheckReady().ok());
}

INSTANTIATE_TEST_SUITE_P(Engines, SchemaVersionTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace treaty::testing
