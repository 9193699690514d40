#pragma once

// Thin RAII layer over the SQLite C API for SqliteLogStore: a connection that
// caches prepared statements, and a statement handle that binds by position
// and resets itself when it goes out of scope. Not thread-safe: the owner
// serializes every use (SqliteLogStore holds its mutex).

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/status.h"

namespace treaty {

// Maps an SQLite result code to a Status: busy/locked/I/O -> Unavailable;
// a primary-key or unique constraint -> Conflict; the statement's data
// refused (TOOBIG, MISMATCH, any other constraint) -> a data error
// (store/write_rules.h); anything else -> Internal. With `db`, its extended
// error code decides; the message is a valid-UTF-8 excerpt.
Status SqliteStatus(int rc, sqlite3* db, const std::string& what);

// A cached prepared statement in use. Bind with 1-based positions (?1, ?2..).
class SqliteStatement {
 public:
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
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
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  Status bind_status_;
};

// One open database file with a statement cache.
class SqliteConnection {
 public:
  SqliteConnection() = default;
  ~SqliteConnection();
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  // Opens (creating) `path`: WAL, synchronous=FULL, busy_timeout.
  [[nodiscard]] Status Open(const std::string& path, int busy_timeout_ms);
  // Runs one or more statements without results (DDL, BEGIN, pragmas).
  [[nodiscard]] Status Exec(const std::string& sql);
  // Prepares `sql` once and returns it ready to bind; nullopt + `*status` on error.
  [[nodiscard]] std::optional<SqliteStatement> Prepare(const std::string& sql, Status* status);

  sqlite3* db() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::map<std::string, sqlite3_stmt*> cache_;
};

}  // namespace treaty
