// PostgreSQL point-in-time recovery of the transaction log, as
// docs/operations.md "Backup and restore" tells an operator to do it: WAL
// archiving on (archive_mode, archive_command), a base backup with
// pg_basebackup, then sagas acknowledged after the base backup (so they
// exist only in archived WAL), some held in flight by a participant that is
// down. treatyd and PostgreSQL are killed (-9); the base backup is restored
// into a fresh data folder with recovery.signal and a restore_command
// reading the archive; a fresh treatyd on it adopts the dead coordinator's
// work once its lease has expired.
//
// BaseBackupPlusArchivedWalRestoresAndFinishes replays the whole archive:
// every acknowledged saga is in the restored log, the in-flight ones finish
// once the participant is back (their logged step not sent again), the
// finished ones get no call.
//
// RestoreToTargetLeavesOutLaterSagas stops recovery at a target between two
// phases of sagas, both phases in the archive: phase 1 is restored and
// finished as above, no phase-2 gtid exists (404), and the restored
// coordinator takes new sagas. Targets: a named restore point, and a
// timestamp by the server's clock.

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "backup/backup_scenario.h"
#include "http/http_client.h"
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

// Each gtid of `gtids` is unknown to the log at `uri`.
void ExpectAbsentFromLog(const std::string& uri, const std::set<std::string>& gtids) {
  auto store = OpenLogStore(uri);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (const std::string& gtid : gtids) {
    auto d = (*store)->GetTransactionNoEvents(gtid);
    EXPECT_EQ(d.status().code(), StatusCode::kNotFound)
        << gtid << " is after the recovery target, yet "
        << (d.ok() ? "in the restored log as " + d->txn.state : d.status().ToString());
  }
}

// Every test: a PostgreSQL archiving its WAL into dir_/wal-archive, as
// docs/operations.md sets it up, with a `treaty` database; the scenario's
// participant; treatyd "live" on that database.
class PgRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-pitr");
    archive_ = dir_ + "/wal-archive";
    fs::create_directories(archive_);
    primary_.set_settings(
        {"wal_level=replica", "archive_mode=on",
         "archive_command=test ! -f " + archive_ + "/%f && cp %p " + archive_ + "/%f"});
    ASSERT_TRUE(primary_.Start().ok());
    // The server (run as `postgres` when the test is root) writes the archive.
    if (primary_.run_uid() != 0) {
      ASSERT_EQ(chown(dir_.c_str(), primary_.run_uid(), primary_.run_gid()), 0);
      ASSERT_EQ(chown(archive_.c_str(), primary_.run_uid(), primary_.run_gid()), 0);
    }
    ASSERT_TRUE(primary_.CreateDatabase("treaty").ok());
    options_.store = primary_.Uri("treaty");
    live_ = std::make_unique<TreatydProcess>(dir_, "live", options_);
    Status started = live_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
  }

  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // kill -9 of the live treatyd; returns how many participant calls there
  // were by then.
  size_t KillLive() {
    live_->proc().Kill();
    return scenario_.participant().Calls().size();
  }

  // Makes sure the current WAL segment is archived (archive_timeout does
  // this on its own in production), then kill -9 of PostgreSQL.
  [[nodiscard]] Status ArchiveWalAndKillPrimary() {
    Result<std::string> segment = primary_.Query("SELECT pg_walfile_name(pg_switch_wal())");
    if (!segment.ok()) return segment.status();
    const auto t = Clock::now();
    for (;;) {
      Result<std::string> last = primary_.Query("SELECT last_archived_wal FROM pg_stat_archiver");
      if (last.ok() && !last->empty() && *last >= *segment) break;
      if (MsSince(t) > 20000) return Status::TimedOut("segment " + *segment + " not archived");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return primary_.Kill();
  }

  // Restores `base_backup` into `restored`'s fresh data folder and replays
  // the archive: all of it, or up to the recovery target that `restored`'s
  // set_settings() name. Returns once the server accepts writes.
  [[nodiscard]] Status Restore(MiniPostgres& restored, const std::string& base_backup) {
    const auto t = Clock::now();
    Status s = restored.StartFromBaseBackup(base_backup, "cp " + archive_ + "/%f %p");
    std::cerr << "restore (copy + WAL replay + promotion): " << MsSince(t) << " ms\n";
    return s;
  }

  std::string dir_, archive_;
  // A base backup of the primary (MiniPostgres::BaseBackup), its time logged.
  Result<std::string> TimedBaseBackup() {
    const auto t = Clock::now();
    Result<std::string> base = primary_.BaseBackup();
    std::cerr << "pg_basebackup: " << MsSince(t) << " ms\n";
    return base;
  }

  MiniPostgres primary_;
  BackupScenario scenario_;
  TreatydOptions options_;
  std::unique_ptr<TreatydProcess> live_;
};

TEST_F(PgRestoreTest, BaseBackupPlusArchivedWalRestoresAndFinishes) {
  scenario_.SubmitMany(live_->url(), "before-base", 5, false);
  ASSERT_TRUE(scenario_.WaitSettled(live_->url(), std::chrono::seconds(20)));

  Result<std::string> base = TimedBaseBackup();
  ASSERT_TRUE(base.ok()) << base.status().ToString();

  // Only in WAL from here on.
  scenario_.SubmitMany(live_->url(), "after-base", 10, false);
  scenario_.SubmitMany(live_->url(), "held", 10, true);
  ASSERT_TRUE(scenario_.WaitSettled(live_->url(), std::chrono::seconds(20)));

  const size_t calls_before = KillLive();
  Status archived = ArchiveWalAndKillPrimary();
  ASSERT_TRUE(archived.ok()) << archived.ToString();

  MiniPostgres restored;
  Status s = Restore(restored, *base);
  ASSERT_TRUE(s.ok()) << s.ToString();

  std::map<std::string, std::string> restored_states;
  {
    auto store = OpenLogStore(restored.Uri("treaty"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    restored_states = scenario_.ReadRestored(**store, scenario_.Acknowledged());
  }
  ASSERT_EQ(restored_states.size(), 25u);
  int running = 0;
  for (const auto& [gtid, state] : restored_states) running += state == "RUNNING";
  EXPECT_EQ(running, 10);

  TreatydOptions r = options_;
  r.store = restored.Uri("treaty");
  TreatydProcess fresh(dir_, "restored", r);
  auto t = Clock::now();
  Status started = fresh.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  scenario_.BringUp();
  scenario_.CheckFinishedOnRestore(fresh.url(), restored_states, calls_before,
                                   std::chrono::seconds(30));
  std::cerr << "all " << restored_states.size() << " sagas COMMITTED " << MsSince(t)
            << " ms after treatyd started on the restored log\n";
  if (HasFailure()) std::cerr << fresh.Log() << "\n";
  fresh.proc().Kill();
}

TEST_F(PgRestoreTest, RestoreToTargetLeavesOutLaterSagas) {
  Result<std::string> base = TimedBaseBackup();
  ASSERT_TRUE(base.ok()) << base.status().ToString();

  // Phase 1: finished sagas and sagas held in flight, all committed.
  scenario_.SubmitMany(live_->url(), "phase1", 5, false);
  scenario_.SubmitMany(live_->url(), "phase1-held", 5, true);
  ASSERT_TRUE(scenario_.WaitSettled(live_->url(), std::chrono::seconds(20)));
  const std::set<std::string> phase1 = scenario_.Acknowledged();

  // The targets, as docs/operations.md has the operator take them: a named
  // restore point, and a time by the server's own clock (the one its commit
  // records carry), read after phase 1's WAL is closed.
  Result<std::string> point = primary_.Query("SELECT pg_create_restore_point('before_phase2')");
  ASSERT_TRUE(point.ok()) << point.status().ToString();
  Result<std::string> switched = primary_.Query("SELECT pg_switch_wal()");
  ASSERT_TRUE(switched.ok()) << switched.status().ToString();
  Result<std::string> target_time = primary_.Query("SELECT clock_timestamp()");
  ASSERT_TRUE(target_time.ok()) << target_time.status().ToString();

  // Phase 2: more sagas, committed on the primary and archived, not to be
  // restored.
  scenario_.SubmitMany(live_->url(), "phase2", 5, false);
  scenario_.SubmitMany(live_->url(), "phase2-held", 5, true);
  ASSERT_TRUE(scenario_.WaitSettled(live_->url(), std::chrono::seconds(20)));
  const std::set<std::string> all = scenario_.Acknowledged();
  std::set<std::string> phase2;
  std::set_difference(all.begin(), all.end(), phase1.begin(), phase1.end(),
                      std::inserter(phase2, phase2.end()));
  ASSERT_EQ(phase2.size(), 10u);

  const size_t calls_before = KillLive();
  Status archived = ArchiveWalAndKillPrimary();
  ASSERT_TRUE(archived.ok()) << archived.ToString();

  // Restored to the named restore point.
  MiniPostgres by_name;
  by_name.set_settings({"recovery_target_name=before_phase2", "recovery_target_action=promote"});
  Status s = Restore(by_name, *base);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::map<std::string, std::string> restored_states;
  {
    auto store = OpenLogStore(by_name.Uri("treaty"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    restored_states = scenario_.ReadRestored(**store, phase1);
  }
  ASSERT_EQ(restored_states.size(), 10u);
  int running = 0;
  for (const auto& [gtid, state] : restored_states) running += state == "RUNNING";
  EXPECT_EQ(running, 5);
  ExpectAbsentFromLog(by_name.Uri("treaty"), phase2);

  TreatydOptions r = options_;
  r.store = by_name.Uri("treaty");
  TreatydProcess fresh(dir_, "restored", r);
  auto t = Clock::now();
  Status started = fresh.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  scenario_.BringUp();
  scenario_.CheckFinishedOnRestore(fresh.url(), restored_states, calls_before,
                                   std::chrono::seconds(30));
  std::cerr << "phase 1 COMMITTED " << MsSince(t)
            << " ms after treatyd started on the restored log\n";
  for (const std::string& gtid : phase2) {
    auto got = HttpFetch("GET", fresh.url() + "/v1/transactions/" + gtid, "", {}, 2000);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->status, 404) << gtid << ": " << got->body;
  }
  // New work on the restored coordinator.
  scenario_.SubmitMany(fresh.url(), "after-restore", 3, false);
  EXPECT_TRUE(scenario_.WaitCommitted(fresh.url(),
                                      {"after-restore-0", "after-restore-1", "after-restore-2"},
                                      std::chrono::seconds(10)));
  if (HasFailure()) std::cerr << fresh.Log() << "\n";
  fresh.proc().Kill();

  // The same base backup and archive, restored to the time instead: the
  // same sagas, none of phase 2.
  MiniPostgres by_time;
  by_time.set_settings({"recovery_target_time=" + *target_time, "recovery_target_action=promote"});
  s = Restore(by_time, *base);
  ASSERT_TRUE(s.ok()) << s.ToString();
  {
    auto store = OpenLogStore(by_time.Uri("treaty"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    EXPECT_EQ(scenario_.ReadRestored(**store, phase1), restored_states);
  }
  ExpectAbsentFromLog(by_time.Uri("treaty"), phase2);
}

}  // namespace
}  // namespace treaty::testing
