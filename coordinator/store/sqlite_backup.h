#pragma once

// BackupSqliteLog: a consistent copy of the SQLite transaction log
// (`treatyd backup --store sqlite:PATH --to FILE`, docs/operations.md
// "Backup and restore").
//
// How: SQLite's online backup API (sqlite3_backup_init/step/finish) reads
// the source through its own connection, WAL included, `pages_per_step`
// pages at a time with a `step_pause_ms` pause between steps so that a
// writer sharing the file (normal locking) gets the lock in between. A step
// that meets a busy or locked source is retried until `busy_wait_ms` has
// passed in all; a source changed by another connection between steps makes
// SQLite start the copy over, which is bounded by the same `busy_wait_ms`.
// The source is opened read-write (so it can take part in WAL locking) but
// never written: query_only is set and nothing is checkpointed on close.
//
// Crash safety of the destination: the copy is written to a temporary file
// next to FILE (FILE.tmp-XXXXXX), checked with `PRAGMA integrity_check`,
// fsync'ed, renamed over FILE and the folder fsync'ed. A crash at any point
// leaves FILE either absent (or as it was, with `force`) or complete; only a
// stray temporary file may remain. On every failure the temporary file is
// removed.
//
// A running treatyd: its SqliteLogStore holds the file with an EXCLUSIVE
// lock for as long as it runs (sqlite_statement.h: no memory-mapped WAL
// index, so a full or failing disk cannot crash it), so no other process can
// read the log meanwhile: BackupSqliteLog waits `busy_wait_ms` and fails
// with Unavailable saying so. Such a treatyd copies its log itself, from its
// own connection, with BackupLiveSqliteLog, when asked through its control
// socket (api/control_socket.h, `treatyd backup` does that by itself). The
// backup API then keeps the copy consistent with the pages that connection
// writes during the copy: the copy is the log as of the end of the copy.
// A stopped or crashed (the WAL holds every acknowledged commit)
// coordinator's file is copied directly.
//
// Blocking: the whole call blocks the calling thread, for at least the time
// the copy takes plus one pause per step. Thread-safe: each call uses its
// own connections; calls on different destinations may run at once.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "treaty/status.h"

struct sqlite3;

namespace treaty {

struct SqliteBackupOptions {
  bool force = false;        // replace an existing destination file
  int pages_per_step = 256;  // pages copied per sqlite3_backup_step (>= 1)
  int step_pause_ms = 2;     // pause between steps, ms (>= 0)
  int busy_wait_ms = 10000;  // total wait for a busy/locked source, ms (>= 0)
  // When set and true before a step, the copy stops with Unavailable
  // (e.g. the process is stopping); not owned, must outlive the call.
  const std::atomic<bool>* cancel = nullptr;
};

struct SqliteBackupReport {
  int64_t pages = 0;          // pages in the copy
  int64_t bytes = 0;          // size of the copy, bytes
  int64_t transactions = -1;  // rows of `transactions` in the copy (-1: no such table)
  int64_t elapsed_ms = 0;     // wall time of the whole call
};

// Copies the SQLite log at `source_path` to `dest_path` (see above).
// Errors, each naming the file:
//   InvalidArgument  an empty path, both paths the same file, `dest_path`
//                    one of the log's side files (-wal, -journal, -shm,
//                    .ctl), bad options;
//   NotFound         no source file, or no destination folder;
//   Conflict         `dest_path` exists and `force` is false;
//   Unavailable      the source stayed busy/locked past `busy_wait_ms`
//                    (a running treatyd), or a file could not be read,
//                    written, synced or renamed;
//   Internal         the copy failed its integrity check (nothing renamed).
[[nodiscard]] Result<SqliteBackupReport> BackupSqliteLog(const std::string& source_path,
                                                         const std::string& dest_path,
                                                         const SqliteBackupOptions& options = {});

// Runs `use` with the live source connection while holding the lock that
// serializes every use of that connection (SqliteLogStore::LendConnection),
// and returns what `use` returns; an error (e.g. the connection is closed
// after a file failure) without calling `use`. `use` never keeps the pointer.
using SqliteConnectionLender = std::function<Status(const std::function<Status(sqlite3*)>& use)>;

// The copy of a log that a running process has open (SQLITE_OPEN_NOMUTEX
// allowed): every backup call on the source connection runs inside `lend`,
// one step (`pages_per_step` pages) at a time, so the owner's own calls go
// on between steps (`step_pause_ms` apart). `source_path` is the file that
// connection has open (used for the checks and messages only). Same
// destination rules, crash safety and errors as BackupSqliteLog, plus
// Unavailable when the lender refuses or the connection was replaced during
// the copy. Blocks the calling thread for the whole copy; never call it while
// holding the lender's lock.
[[nodiscard]] Result<SqliteBackupReport> BackupLiveSqliteLog(
    const std::string& source_path, const SqliteConnectionLender& lend,
    const std::string& dest_path, const SqliteBackupOptions& options = {});

// The control socket of a treatyd running on the SQLite log `log_path`:
// `log_path` + ".ctl" (api/control_socket.h).
std::string SqliteControlSocketPath(const std::string& log_path);

// PATH of a `sqlite:PATH` (or sqlite://PATH) store URI; InvalidArgument
// for anything else (not naming the URI, which may hold a password).
[[nodiscard]] Result<std::string> SqliteLogPathOf(const std::string& store_uri);

// The same for a store URI as given to --store: `sqlite:PATH` (or
// sqlite://PATH). A PostgreSQL URI or conninfo is refused with
// InvalidArgument pointing to the PostgreSQL procedure (pg_basebackup and a
// WAL archive, docs/operations.md "Backup and restore"); anything else is
// InvalidArgument naming the URI.
[[nodiscard]] Result<SqliteBackupReport> BackupStore(const std::string& store_uri,
                                                     const std::string& dest_path,
                                                     const SqliteBackupOptions& options = {});

}  // namespace treaty
