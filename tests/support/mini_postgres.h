#pragma once

// MiniPostgres: a throwaway PostgreSQL server for tests (after apache/kudu's
// postgres/mini_postgres.h). Start() runs initdb into a fresh folder under
// /tmp and starts `postgres` on a free loopback port with fsync off; the
// destructor stops it and deletes the folder.
//
// Binaries come from /usr/lib/postgresql/15/bin, or $TREATY_PG_BIN. When the
// test runs as root (CI), initdb and postgres run as the `postgres` system
// user (PostgreSQL refuses to run as root); the folder is chowned to it.
//
// Replication (tests/e2e/replication_test.cc, scripts/pg-replicated.sh does
// the same by hand): set_settings({"synchronous_standby_names=treaty_standby",
// "synchronous_commit=on"}) on the primary before Start(); StartStandbyOf()
// clones it with `pg_basebackup -R` (streaming, standby.signal written) and
// runs it as cluster_name=treaty_standby, which is the application_name its
// WAL receiver reports, so the primary's commits wait for it; Promote() makes
// it a primary (pg_ctl promote).
//
// Not thread-safe: drive one instance from one thread. Every call blocks.

#include <sys/types.h>

#include <string>
#include <vector>

#include "treaty/status.h"

namespace treaty::testing {

class MiniPostgres {
 public:
  MiniPostgres() = default;
  ~MiniPostgres();
  MiniPostgres(const MiniPostgres&) = delete;
  MiniPostgres& operator=(const MiniPostgres&) = delete;

  // Extra server settings ("name=value", passed as -c); before Start().
  void set_settings(std::vector<std::string> settings) { settings_ = std::move(settings); }
  // initdb + start; waits (up to 60 s) until the server accepts connections.
  [[nodiscard]] Status Start();
  // Instead of Start(): a streaming standby of the running `primary`
  // (pg_basebackup -R -X stream), cluster_name `name`, on its own port.
  [[nodiscard]] Status StartStandbyOf(const MiniPostgres& primary,
                                      const std::string& name = "treaty_standby");
  // Point-in-time recovery (tests/backup/pg_restore_test.cc): BaseBackup()
  // runs pg_basebackup (plain format, WAL fetched, fast checkpoint) of this
  // running server into a new folder under its temp folder and returns it.
  [[nodiscard]] Result<std::string> BaseBackup();
  // Instead of Start(): copies `base_backup` (another instance's
  // BaseBackup()) into a fresh data folder, writes recovery.signal and starts
  // with `restore_command` and the set_settings() (e.g. recovery_target_time);
  // waits (up to 60 s) until recovery has ended and the server accepts writes.
  [[nodiscard]] Status StartFromBaseBackup(const std::string& base_backup,
                                           const std::string& restore_command);
  // The user the server runs as (uid/gid to chown a folder it must write,
  // such as a WAL archive); 0 when it runs as the test's own user.
  uid_t run_uid() const { return run_uid_; }
  gid_t run_gid() const { return run_gid_; }
  // pg_ctl promote -w: the standby becomes a read-write primary.
  [[nodiscard]] Status Promote();
  // Runs `sql` with psql on `dbname`; the unaligned, tuples-only output.
  [[nodiscard]] Result<std::string> Query(const std::string& sql,
                                          const std::string& dbname = "postgres");
  // Fast shutdown (SIGINT), waits for exit. Data is kept.
  [[nodiscard]] Status Stop();
  // Stop() if running, then start again on the same port with the same data.
  [[nodiscard]] Status Restart();
  // SIGKILL the postmaster (a crash); data is kept, Restart() recovers it.
  [[nodiscard]] Status Kill();
  // CREATE DATABASE `name` (a plain identifier).
  [[nodiscard]] Status CreateDatabase(const std::string& name);
  // SIGSTOP the postmaster and every process it started (this server's
  // only): the server hangs without closing a socket, as a frozen host
  // would. Resume() sends SIGCONT to the same processes. Stop(), Kill() and
  // the destructor resume a paused server first.
  [[nodiscard]] Status Pause();
  [[nodiscard]] Status Resume();
  bool paused() const { return !paused_pids_.empty(); }

  // postgresql://postgres@127.0.0.1:PORT/dbname
  std::string Uri(const std::string& dbname = "postgres") const;
  int port() const { return port_; }
  bool running() const { return pid_ > 0; }
  const std::string& data_dir() const { return data_dir_; }

 private:
  // Forks and execs `argv` (as the postgres user when root), output appended
  // to `log_path`. Returns the child's pid, or -1.
  pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_path);
  [[nodiscard]] Status StartServer();
  // mkdtemp the root folder and chown it to the user the server runs as.
  [[nodiscard]] Status MakeRoot();
  [[nodiscard]] Status WaitUntilReady(int timeout_ms);

  std::string bin_dir_;
  std::string root_;      // temp folder (socket, logs)
  std::string data_dir_;  // root_/data
  int port_ = 0;
  pid_t pid_ = -1;
  std::vector<std::string> settings_;  // extra -c name=value
  std::vector<pid_t> paused_pids_;     // SIGSTOPped by Pause()
  int base_backups_ = 0;               // BaseBackup() folders made
  uid_t run_uid_ = 0;                  // user to run as when root; 0 = do not switch
  gid_t run_gid_ = 0;
};

}  // namespace treaty::testing
