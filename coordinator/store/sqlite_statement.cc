#include "store/sqlite_statement.h"

#include "common/text.h"
#include "store/write_rules.h"

namespace treaty {

bool IsSqliteFileFailure(int rc) {
  switch (rc & 0xff) {
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return true;
    default:
      return false;
  }
}

Status SqliteStatus(int rc, sqlite3* db, const std::string& what) {
  if (db != nullptr && rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) {
    rc = sqlite3_extended_errcode(db);
  }
  const std::string msg = what + ": " + Excerpt(db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), 512);
  switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
      return Status::Ok();
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_FULL:
    case SQLITE_PROTOCOL:
    case SQLITE_READONLY:
      return Status::Unavailable(msg);
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
        return Status::Conflict(msg);
      }
      return DataError(msg);
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH:
      return DataError(msg);
    default:
      return Status::Internal(msg);
  }
}

SqliteStatement::SqliteStatement(SqliteConnection* conn, sqlite3_stmt* stmt)
    : conn_(conn), stmt_(stmt) {}

Status SqliteStatement::Failed(int rc, const std::string& what) { return conn_->Failed(rc, what); }

SqliteStatement::~SqliteStatement() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

SqliteStatement& SqliteStatement::Bind(int pos, int64_t v) {
  if (int rc = sqlite3_bind_int64(stmt_, pos, v); rc != SQLITE_OK && bind_status_.ok()) {
    bind_status_ = Failed(rc, "bind");
  }
  return *this;
}

SqliteStatement& SqliteStatement::Bind(int pos, const std::string& v) {
  int rc = sqlite3_bind_text(stmt_, pos, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = Failed(rc, "bind");
  return *this;
}

SqliteStatement& SqliteStatement::Bind(int pos, const std::optional<std::string>& v) {
  return v ? Bind(pos, *v) : BindNull(pos);
}

SqliteStatement& SqliteStatement::Bind(int pos, const std::optional<int64_t>& v) {
  return v ? Bind(pos, *v) : BindNull(pos);
}

SqliteStatement& SqliteStatement::BindNull(int pos) {
  if (int rc = sqlite3_bind_null(stmt_, pos); rc != SQLITE_OK && bind_status_.ok()) {
    bind_status_ = Failed(rc, "bind");
  }
  return *this;
}

SqliteStatement& SqliteStatement::BindNullIfEmpty(int pos, const std::string& v) {
  return v.empty() ? BindNull(pos) : Bind(pos, v);
}

Result<bool> SqliteStatement::Step() {
  if (!bind_status_.ok()) return bind_status_;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Failed(rc, "step");
}

Result<int64_t> SqliteStatement::Run() {
  while (true) {
    Result<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
  }
  return static_cast<int64_t>(sqlite3_changes(conn_->db()));
}

std::string SqliteStatement::Text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  if (p == nullptr) return {};
  return std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

SqliteConnection::~SqliteConnection() { Close(); }

Status SqliteConnection::Open(const std::string& path, int busy_timeout_ms) {
  Close();
  path_ = path;
  busy_timeout_ms_ = busy_timeout_ms;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  Status s;
  if (int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr); rc != SQLITE_OK) {
    s = SqliteStatus(rc, db_, "sqlite: cannot open " + path);
    if (s.code() == StatusCode::kInternal) s = Status::Unavailable(s.message());
  } else {
    sqlite3_busy_timeout(db_, busy_timeout_ms);
    // locking_mode before journal_mode: the first access in WAL mode then
    // keeps the WAL index in heap memory (no -shm file, nothing mapped).
    s = Exec(
        "PRAGMA locking_mode=EXCLUSIVE; PRAGMA mmap_size=0; PRAGMA journal_mode=WAL; "
        "PRAGMA synchronous=FULL;");
    if (!s.ok() && (sqlite3_errcode(db_) == SQLITE_BUSY || sqlite3_errcode(db_) == SQLITE_LOCKED)) {
      s = Status::Unavailable("sqlite: " + path +
                              " is locked by another connection (another treatyd or tool has it "
                              "open): " +
                              s.message());
    } else if (s.ok() && sqlite3_db_readonly(db_, "main") == 1) {
      s = Status::Unavailable("sqlite: " + path +
                              " can only be opened read-only (read-only file system or no write "
                              "permission)");
    }
  }
  if (!s.ok()) Close();
  open_status_ = s;
  return s;
}

Status SqliteConnection::EnsureOpen() {
  if (db_ != nullptr || path_.empty()) return Status::Ok();
  return Open(path_, busy_timeout_ms_);
}

void SqliteConnection::Close() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  cache_.clear();
  // close_v2: a connection an online backup still reads (sqlite_backup.h)
  // is freed when that backup finishes, instead of leaking.
  if (db_ != nullptr) sqlite3_close_v2(db_);
  db_ = nullptr;
  broken_ = false;
}

Status SqliteConnection::NotOpen() const {
  if (!open_status_.ok()) return open_status_;
  return Status::Unavailable("sqlite: " + path_ + " is not open");
}

Status SqliteConnection::Failed(int rc, const std::string& what) {
  Status s = SqliteStatus(rc, db_, "sqlite " + path_ + ": " + what);
  if (s.ok()) return s;
  const int code = db_ != nullptr ? sqlite3_extended_errcode(db_) : rc;
  if (!broken_ && (IsSqliteFileFailure(code) || IsSqliteFileFailure(rc))) {
    broken_ = true;
    broken_by_ = s;
  }
  return s;
}

Status SqliteConnection::Exec(const std::string& sql) {
  if (db_ == nullptr) return NotOpen();
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::Ok();
  std::string msg = err ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  Status s = Failed(rc, "exec");
  msg = "sqlite " + path_ + ": exec: " + Excerpt(msg, 512);
  return IsDataError(s) ? DataError(msg) : Status(s.code(), msg);
}

std::optional<SqliteStatement> SqliteConnection::Prepare(const std::string& sql, Status* status) {
  if (db_ == nullptr) {
    *status = NotOpen();
    return std::nullopt;
  }
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      *status = Failed(rc, "prepare");
      return std::nullopt;
    }
    it = cache_.emplace(sql, stmt).first;
  }
  *status = Status::Ok();
  return std::optional<SqliteStatement>(std::in_place, this, it->second);
}

}  // namespace treaty
