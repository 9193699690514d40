// PostgreSQL point-in-time recovery of the transaction log, as
// docs/operations.md "Backup and restore" tells an operator to do it: WAL
// archiving on (archive_mode, archive_command), a base backup with
// pg_basebackup, then sagas acknowledged after the base backup (so they
// exist only in archived WAL), some held in flight by a participant that is
// down. treatyd and PostgreSQL are killed (-9); the base backup is restored
// into a fresh data folder with recovery.signal and a restore_command
// reading the archive; a fresh treatyd on it adopts the dead coordinator's
// work once its lease has expired. Checked: every acknowledged saga is in
// the restored log, the in-flight ones finish once the participant is back
// (their logged step not sent again), the finished ones get no call.

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "backup/backup_scenario.h"
#include "store/log_store.h"
#include "support/mini_postgres.h"
#include "support/subprocess.h"
#include "support/treatyd_process.h"

namespace treaty::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

TEST(PgRestoreTest, BaseBackupPlusArchivedWalRestoresAndFinishes) {
  const std::string dir = MakeTempDir("treaty-pitr");
  struct RemoveDir {
    std::string path;
    ~RemoveDir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } remove_dir{dir};  // also when an assertion ends the test early
  const std::string archive = dir + "/wal-archive";
  fs::create_directories(archive);

  MiniPostgres primary;
  primary.set_settings(
      {"wal_level=replica", "archive_mode=on",
       "archive_command=test ! -f " + archive + "/%f && cp %p " + archive + "/%f"});
  ASSERT_TRUE(primary.Start().ok());
  // The server (run as `postgres` when the test is root) writes the archive.
  if (primary.run_uid() != 0) {
    ASSERT_EQ(chown(dir.c_str(), primary.run_uid(), primary.run_gid()), 0);
    ASSERT_EQ(chown(archive.c_str(), primary.run_uid(), primary.run_gid()), 0);
  }
  ASSERT_TRUE(primary.CreateDatabase("treaty").ok());

  BackupScenario scenario;
  TreatydOptions o;
  o.store = primary.Uri("treaty");
  auto live = std::make_unique<TreatydProcess>(dir, "live", o);
  ASSERT_TRUE(live->Start().ok()) << live->Log();
  scenario.SubmitMany(live->url(), "before-base", 5, false);
  ASSERT_TRUE(scenario.WaitSettled(live->url(), std::chrono::seconds(20)));

  auto t = Clock::now();
  Result<std::string> base = primary.BaseBackup();
  ASSERT_TRUE(base.ok()) << base.status().ToString();
  std::cerr << "pg_basebackup: " << MsSince(t) << " ms\n";

  // Only in WAL from here on.
  scenario.SubmitMany(live->url(), "after-base", 10, false);
  scenario.SubmitMany(live->url(), "held", 10, true);
  ASSERT_TRUE(scenario.WaitSettled(live->url(), std::chrono::seconds(20)));

  live->proc().Kill();  // kill -9 the coordinator ...
  const size_t calls_before = scenario.participant().Calls().size();
  // ... make sure the last WAL segment is archived (archive_timeout does
  // this on its own in production), then kill -9 PostgreSQL.
  Result<std::string> segment = primary.Query("SELECT pg_walfile_name(pg_switch_wal())");
  ASSERT_TRUE(segment.ok()) << segment.status().ToString();
  t = Clock::now();
  std::string archived;
  while (MsSince(t) < 20000) {
    Result<std::string> last = primary.Query("SELECT last_archived_wal FROM pg_stat_archiver");
    if (last.ok() && !last->empty() && *last >= *segment) {
      archived = *last;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(archived.empty()) << "segment " << *segment << " was not archived";
  ASSERT_TRUE(primary.Kill().ok());

  // Restore into a fresh data folder from the base backup and the archive.
  t = Clock::now();
  MiniPostgres restored;
  ASSERT_TRUE(restored.StartFromBaseBackup(*base, "cp " + archive + "/%f %p").ok());
  std::cerr << "restore (copy + WAL replay + promotion): " << MsSince(t) << " ms\n";

  const std::set<std::string> acknowledged = scenario.Acknowledged();
  std::map<std::string, std::string> restored_states;
  {
    auto store = OpenLogStore(restored.Uri("treaty"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    restored_states = scenario.ReadRestored(**store, acknowledged);
  }
  ASSERT_EQ(restored_states.size(), 25u);
  int running = 0;
  for (const auto& [gtid, state] : restored_states) running += state == "RUNNING";
  EXPECT_EQ(running, 10);

  TreatydOptions r = o;
  r.store = restored.Uri("treaty");
  TreatydProcess fresh(dir, "restored", r);
  t = Clock::now();
  ASSERT_TRUE(fresh.Start().ok()) << fresh.Log();
  scenario.BringUp();
  scenario.CheckFinishedOnRestore(fresh.url(), restored_states, calls_before,
                                  std::chrono::seconds(30));
  std::cerr << "all " << restored_states.size() << " sagas COMMITTED " << MsSince(t)
            << " ms after treatyd started on the restored log\n";
  if (HasFailure()) std::cerr << fresh.Log() << "\n";
  fresh.proc().Kill();
}

}  // namespace
}  // namespace treaty::testing
