#pragma once

// Thin RAII layer over the SQLite C API for SqliteLogStore: a connection that
// caches prepared statements, and a statement handle that binds by position
// and resets itself when it goes out of scope. Not thread-safe: the owner
// serializes every use (SqliteLogStore holds its call lock).

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "treaty/status.h"

namespace treaty {

// Maps an SQLite result code to a Status: busy/locked, I/O errors, disk full,
// read-only, cannot open -> Unavailable (retrying may help once the file
// system is fixed);
// a primary-key or unique constraint -> Conflict; the statement's data
// refused (TOOBIG, MISMATCH, any other constraint) -> a data error
// (store/write_rules.h); anything else -> Internal. With `db`, its extended
// error code decides; the message is a valid-UTF-8 excerpt.
Status SqliteStatus(int rc, sqlite3* db, const std::string& what);

class SqliteConnection;

// True for the result codes that say the database files themselves failed
// (I/O error, disk full, read-only, cannot open, corrupt): the connection
// that met one must be closed and opened afresh (SqliteConnection::broken).
bool IsSqliteFileFailure(int rc);

// A cached prepared statement in use. Bind with 1-based positions (?1, ?2..).
class SqliteStatement {
 public:
  SqliteStatement(SqliteConnection* conn, sqlite3_stmt* stmt);
  ~SqliteStatement();
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  SqliteStatement& Bind(int pos, int64_t v);
  SqliteStatement& Bind(int pos, const std::string& v);
  SqliteStatement& Bind(int pos, const std::optional<std::string>& v);
  SqliteStatement& Bind(int pos, const std::optional<int64_t>& v);
  SqliteStatement& BindNull(int pos);
  // A string that is NULL when empty (owner).
  SqliteStatement& BindNullIfEmpty(int pos, const std::string& v);

  // Next row: true when a row is available, false when done; errors in Status.
  [[nodiscard]] Result<bool> Step();
  // Runs to completion; returns sqlite3_changes().
  [[nodiscard]] Result<int64_t> Run();

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const;  // "" for NULL

 private:
  Status Failed(int rc, const std::string& what);

  SqliteConnection* conn_;
  sqlite3_stmt* stmt_;
  Status bind_status_;
};

// One database file with a statement cache.
//
// No memory mapping: the file is opened in WAL mode with
// locking_mode=EXCLUSIVE set before its first access, so the WAL index lives
// in this process's heap instead of a memory-mapped "-shm" file, and with
// mmap_size=0. A mapped page is what turns a full, read-only or failing file
// system into SIGBUS; without one, every such failure is an error code
// (SQLITE_FULL, SQLITE_IOERR_*, SQLITE_READONLY_*) and becomes Unavailable.
// The price: while open, the connection holds an exclusive lock on the file.
// No other connection, in this process or another, can read or write it
// meanwhile; one that tries waits busy_timeout, then fails "database is
// locked" (Unavailable).
//
// Broken files: a call that fails with IsSqliteFileFailure marks the
// connection broken(). Its owner then Close()s it, once no statement is in
// use, and EnsureOpen()s it at the start of its next call: nothing cached
// from before the failure survives, no file handle is held in between (the
// file system can be remounted), and the log is read afresh from disk, WAL
// included, which holds every commit that succeeded. While closed, Exec and
// Prepare fail with Unavailable, saying why the last open failed.
class SqliteConnection {
 public:
  SqliteConnection() = default;
  ~SqliteConnection();
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  // Opens (creating) `path`: exclusive lock, WAL, synchronous=FULL,
  // mmap_size=0, busy_timeout. Unavailable when the file cannot be opened for
  // writing (missing folder, read-only file system, no permission, locked by
  // another connection for longer than `busy_timeout_ms`).
  [[nodiscard]] Status Open(const std::string& path, int busy_timeout_ms);
  // Opens the file of the last Open() again if it is closed; OK if open.
  [[nodiscard]] Status EnsureOpen();
  // Finalizes every cached statement and closes the file (releasing its
  // lock). No SqliteStatement of this connection may be alive. Idempotent.
  void Close();
  bool is_open() const { return db_ != nullptr; }
  // A call failed because the files did (see above), with that Status.
  bool broken() const { return broken_; }
  const Status& broken_by() const { return broken_by_; }
  const std::string& path() const { return path_; }
  // Rows written (and, outside a transaction, committed) since it was opened.
  int64_t changes_since_open() const { return db_ ? sqlite3_total_changes64(db_) : 0; }

  // Runs one or more statements without results (DDL, BEGIN, pragmas).
  [[nodiscard]] Status Exec(const std::string& sql);
  // Prepares `sql` once and returns it ready to bind; nullopt + `*status` on error.
  [[nodiscard]] std::optional<SqliteStatement> Prepare(const std::string& sql, Status* status);
  // The Status of failed result code `rc` (SqliteStatus, naming the file);
  // marks the connection broken when the files failed.
  Status Failed(int rc, const std::string& what);

  sqlite3* db() const { return db_; }

 private:
  Status NotOpen() const;

  sqlite3* db_ = nullptr;
  std::string path_;
  int busy_timeout_ms_ = 0;
  bool broken_ = false;
  Status broken_by_;
  Status open_status_;  // why the last Open() failed
  std::map<std::string, sqlite3_stmt*> cache_;
};

}  // namespace treaty
