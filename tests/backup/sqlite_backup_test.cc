// `treatyd backup` of a SQLite log (store/sqlite_backup.h,
// docs/operations.md "Backup and restore").
//
// Refusals and the copy itself are checked on real files through
// BackupSqliteLog and through the treatyd binary (exit codes 0/1/2). The
// restore test runs a real treatyd on SQLite with sagas held in flight by a
// participant that is down while load continues; a backup attempted while
// it runs is refused (the running coordinator holds the file exclusively)
// and leaves nothing behind; after kill -9 the crashed log is backed up, a
// fresh treatyd runs on the copy in another folder, the participant comes
// back, and every acknowledged saga is present and finishes, with no step
// sent again for a saga that had finished.

#include <sqlite3.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "backup/backup_scenario.h"
#include "store/log_store.h"
#include "store/sqlite_backup.h"
#include "support/subprocess.h"
#include "support/treatyd_process.h"

namespace treaty::testing {
namespace {

namespace fs = std::filesystem;

class SqliteBackupTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("treaty-backup"); }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A migrated log with `n` rows in a scratch table (more than one page).
  std::string MakeLog(const std::string& name, int n = 2000) {
    const std::string path = dir_ + "/" + name;
    {
      auto store = OpenLogStore("sqlite:" + path);
      EXPECT_TRUE(store.ok()) << store.status().ToString();
      if (!store.ok()) return path;
      EXPECT_TRUE((*store)->Migrate().ok());
    }
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    std::string sql = "CREATE TABLE scratch(x TEXT); BEGIN;";
    for (int i = 0; i < n; ++i)
      sql += "INSERT INTO scratch VALUES ('row " + std::to_string(i) + "');";
    sql += "COMMIT;";
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    return path;
  }

  static int64_t ScratchRows(const std::string& path) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return -1;
    sqlite3_stmt* stmt = nullptr;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM scratch", -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      n = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
  }

  // Files in dir_ whose name starts with `prefix`.
  int FilesStartingWith(const std::string& prefix) const {
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path().filename().string().rfind(prefix, 0) == 0) ++n;
    }
    return n;
  }

  // Runs `treatyd ARGS`; returns its exit status and output in `*out`.
  int RunTreatyd(const std::vector<std::string>& args, std::string* out) {
    std::vector<std::string> argv = {BinaryPath("treatyd")};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string log = dir_ + "/run-" + std::to_string(++runs_) + ".log";
    Subprocess p(argv, log);
    if (!p.Start().ok()) return -1;
    const int rc = p.Wait(60000);
    *out = p.Log();
    return rc;
  }

  std::string dir_;
  int runs_ = 0;
};

TEST_F(SqliteBackupTest, CopiesTheLogAndChecksIt) {
  const std::string src = MakeLog("log.db");
  auto report = BackupSqliteLog(src, dir_ + "/copy.db");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(ScratchRows(dir_ + "/copy.db"), 2000);
  EXPECT_EQ(report->transactions, 0);
  EXPECT_GT(report->pages, 1);
  EXPECT_EQ(report->bytes, static_cast<int64_t>(fs::file_size(dir_ + "/copy.db")));
  EXPECT_EQ(FilesStartingWith("copy.db.tmp-"), 0);
  // A coordinator's store opens the copy as a log (the schema came along).
  auto store = OpenLogStore("sqlite:" + dir_ + "/copy.db");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_TRUE((*store)->CheckReady().ok());
}

TEST_F(SqliteBackupTest, RefusesToOverwriteWithoutForce) {
  const std::string src = MakeLog("log.db");
  { std::ofstream(dir_ + "/copy.db") << "precious"; }
  auto refused = BackupSqliteLog(src, dir_ + "/copy.db");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kConflict);
  EXPECT_NE(refused.status().message().find("--force"), std::string::npos);
  EXPECT_EQ(fs::file_size(dir_ + "/copy.db"), 8u);  // untouched
  EXPECT_EQ(FilesStartingWith("copy.db.tmp-"), 0);

  SqliteBackupOptions force;
  force.force = true;
  auto replaced = BackupSqliteLog(src, dir_ + "/copy.db", force);
  ASSERT_TRUE(replaced.ok()) << replaced.status().ToString();
  EXPECT_EQ(ScratchRows(dir_ + "/copy.db"), 2000);
}

TEST_F(SqliteBackupTest, RefusesBadPathsNamingThem) {
  const std::string src = MakeLog("log.db", 10);
  auto missing = BackupSqliteLog(dir_ + "/nope.db", dir_ + "/copy.db");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.db"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ + "/nope.db"));  // not created by the attempt

  auto no_folder = BackupSqliteLog(src, dir_ + "/no/such/copy.db");
  EXPECT_EQ(no_folder.status().code(), StatusCode::kNotFound);
  EXPECT_NE(no_folder.status().message().find("--to"), std::string::npos);

  SqliteBackupOptions force;
  force.force = true;
  auto itself = BackupSqliteLog(src, src, force);
  EXPECT_EQ(itself.status().code(), StatusCode::kInvalidArgument);

  auto pg = BackupStore("postgresql://treaty@db1/treaty", dir_ + "/copy.db");
  EXPECT_EQ(pg.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(pg.status().message().find("pg_basebackup"), std::string::npos);
  auto conninfo = BackupStore("host=db1 dbname=treaty", dir_ + "/copy.db");
  EXPECT_EQ(conninfo.status().code(), StatusCode::kInvalidArgument);
  auto unknown = BackupStore("mysql://x", dir_ + "/copy.db");
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir_ + "/copy.db"));
}

TEST_F(SqliteBackupTest, LockedLogFailsWithinTheBoundAndLeavesNothing) {
  const std::string src = MakeLog("log.db", 10);
  auto holder = OpenLogStore("sqlite:" + src);  // holds the file as treatyd does
  ASSERT_TRUE(holder.ok());
  ASSERT_TRUE((*holder)->CheckReady().ok());
  SqliteBackupOptions options;
  options.busy_wait_ms = 300;
  const auto start = std::chrono::steady_clock::now();
  auto locked = BackupSqliteLog(src, dir_ + "/copy.db", options);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(locked.ok());
  EXPECT_EQ(locked.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(locked.status().message().find("locked"), std::string::npos)
      << locked.status().message();
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_FALSE(fs::exists(dir_ + "/copy.db"));
  EXPECT_EQ(FilesStartingWith("copy.db.tmp-"), 0);
}

TEST_F(SqliteBackupTest, CorruptLogFailsTheIntegrityCheck) {
  const std::string src = MakeLog("log.db");
  {
    // Overwrite a page in the middle of the scratch table's b-tree.
    std::fstream f(src, std::ios::in | std::ios::out | std::ios::binary);
    const auto size = fs::file_size(src);
    f.seekp(static_cast<std::streamoff>(size - 3 * 4096 + 100));
    const std::string junk(3000, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto bad = BackupSqliteLog(src, dir_ + "/copy.db");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInternal) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("integrity"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ + "/copy.db"));
  EXPECT_EQ(FilesStartingWith("copy.db.tmp-"), 0);
}

TEST_F(SqliteBackupTest, CommandExitCodes) {
  const std::string src = MakeLog("log.db", 10);
  std::string out;
  EXPECT_EQ(RunTreatyd({"backup", "--store", "sqlite:" + src, "--to", dir_ + "/a.db"}, &out), 0)
      << out;
  EXPECT_NE(out.find("backup written to"), std::string::npos) << out;
  EXPECT_EQ(RunTreatyd({"backup", "--store", "sqlite:" + src, "--to", dir_ + "/a.db"}, &out), 1)
      << out;
  EXPECT_NE(out.find("already exists"), std::string::npos) << out;
  EXPECT_EQ(
      RunTreatyd({"backup", "--store", "sqlite:" + src, "--to", dir_ + "/a.db", "--force"}, &out),
      0)
      << out;
  EXPECT_EQ(RunTreatyd({"backup", "--store", "sqlite:" + src}, &out), 2) << out;
  EXPECT_NE(out.find("--to"), std::string::npos) << out;
  EXPECT_EQ(
      RunTreatyd({"backup", "--store", "postgresql://treaty@db1/treaty", "--to", dir_ + "/b.db"},
                 &out),
      2)
      << out;
  EXPECT_NE(out.find("pg_basebackup"), std::string::npos) << out;
  EXPECT_EQ(
      RunTreatyd({"backup", "--store", "sqlite:" + src, "--to", dir_ + "/b.db", "--bogus"}, &out),
      2)
      << out;
  EXPECT_FALSE(fs::exists(dir_ + "/b.db"));
}

TEST_F(SqliteBackupTest, CrashedCoordinatorsLogRestoresAndFinishes) {
  BackupScenario scenario;
  fs::create_directories(dir_ + "/live");
  fs::create_directories(dir_ + "/restored");
  const std::string live = dir_ + "/live/treaty.db";
  TreatydOptions o;
  o.store = "sqlite:" + live;
  auto node = std::make_unique<TreatydProcess>(dir_ + "/live", "live", o);
  ASSERT_TRUE(node->Start().ok()) << node->Log();

  scenario.SubmitMany(node->url(), "done", 10, false);
  scenario.SubmitMany(node->url(), "held", 10, true);
  ASSERT_TRUE(scenario.WaitSettled(node->url(), std::chrono::seconds(20)));

  std::atomic<bool> stop{false};
  std::thread load([&] { scenario.RunLoad(node->url(), "load", stop); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  // While it runs and writes, the coordinator holds its log exclusively: the
  // backup says so within its bound and leaves no file.
  std::string out;
  const std::string refused_to = dir_ + "/restored/refused.db";
  EXPECT_EQ(RunTreatyd({"backup", "--store", "sqlite:" + live, "--to", refused_to, "--busy-wait-ms",
                        "500"},
                       &out),
            1)
      << out;
  EXPECT_NE(out.find("running treatyd"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(refused_to));

  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  node->proc().Kill();  // kill -9 with load going on
  stop = true;
  load.join();
  const size_t calls_before = scenario.participant().Calls().size();

  // The crashed log: every acknowledged commit is in it (WAL).
  const std::string copy = dir_ + "/restored/treaty.db";
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(RunTreatyd({"backup", "--store", "sqlite:" + live, "--to", copy}, &out), 0) << out;
  std::cerr << "backup of the crashed log: " << out << " ("
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count()
            << " ms with process start)\n";
  fs::remove_all(dir_ + "/live");  // the original is gone: only the copy is left

  const std::set<std::string> acknowledged = scenario.Acknowledged();
  std::map<std::string, std::string> restored;
  {
    auto store = OpenLogStore("sqlite:" + copy);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    restored = scenario.ReadRestored(**store, acknowledged);
  }
  ASSERT_GT(acknowledged.size(), 20u);
  int running = 0;
  for (const auto& [gtid, state] : restored) running += state == "RUNNING";
  EXPECT_GE(running, 10);

  TreatydOptions r = o;
  r.store = "sqlite:" + copy;
  TreatydProcess fresh(dir_ + "/restored", "restored", r);
  ASSERT_TRUE(fresh.Start().ok()) << fresh.Log();
  scenario.BringUp();
  scenario.CheckFinishedOnRestore(fresh.url(), restored, calls_before, std::chrono::seconds(20));
  if (HasFailure()) std::cerr << fresh.Log() << "\n";
  std::cerr << acknowledged.size() << " acknowledged sagas, " << running
            << " in flight in the copy, all COMMITTED after the restore\n";
}

}  // namespace
}  // namespace treaty::testing
