#include "store/sqlite_backup.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "store/open_log_store.h"

namespace treaty {

namespace {

using Clock = std::chrono::steady_clock;

int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

std::string Folder(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string Errno(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}

// Closes a connection when it goes out of scope; nullptr-safe.
struct CloseDb {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Db = std::unique_ptr<sqlite3, CloseDb>;

// Removes the temporary copy (and any side file SQLite left) unless kept.
class TempCopy {
 public:
  explicit TempCopy(std::string path) : path_(std::move(path)) {}
  ~TempCopy() {
    if (keep_) return;
    for (const char* suffix : {"", "-journal", "-wal", "-shm"}) unlink((path_ + suffix).c_str());
  }
  const std::string& path() const { return path_; }
  void Keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

Status SqliteFailure(sqlite3* db, int rc, const std::string& what) {
  const char* msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return Status::Unavailable(what + ": " + (msg ? msg : sqlite3_errstr(rc)));
}

// Runs `sql` and returns the first column of every row.
Result<std::vector<std::string>> Rows(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteFailure(db, rc, sql);
  std::vector<std::string> rows;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    rows.emplace_back(text ? text : "");
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return SqliteFailure(db, rc, sql);
  return rows;
}

Status CheckPaths(const std::string& source, const std::string& dest,
                  const SqliteBackupOptions& options) {
  if (source.empty()) return Status::InvalidArgument("--store: the SQLite path is empty");
  if (dest.empty()) return Status::InvalidArgument("--to: the backup file name is empty");
  if (options.pages_per_step < 1 || options.step_pause_ms < 0 || options.busy_wait_ms < 0) {
    return Status::InvalidArgument(
        "backup options: pages_per_step must be >= 1, step_pause_ms and busy_wait_ms >= 0");
  }
  struct stat src {};
  if (stat(source.c_str(), &src) != 0) {
    if (errno == ENOENT) return Status::NotFound("--store: no SQLite log at '" + source + "'");
    return Status::Unavailable(Errno("--store: cannot read", source));
  }
  if (!S_ISREG(src.st_mode)) {
    return Status::InvalidArgument("--store: '" + source + "' is not a regular file");
  }
  // The log's side files: replacing one (its WAL above all) would lose
  // acknowledged commits of a running coordinator.
  std::error_code ec;
  const std::filesystem::path dest_real = std::filesystem::weakly_canonical(dest, ec);
  for (const char* suffix : {"-wal", "-journal", "-shm", ".ctl"}) {
    const std::filesystem::path side = std::filesystem::weakly_canonical(source + suffix, ec);
    if (!ec && side == dest_real) {
      return Status::InvalidArgument("--to: '" + dest + "' is a file of the log itself (" +
                                     side.string() + ")");
    }
  }
  struct stat folder {};
  const std::string dir = Folder(dest);
  if (stat(dir.c_str(), &folder) != 0 || !S_ISDIR(folder.st_mode)) {
    return Status::NotFound("--to: no folder '" + dir + "' for the backup file '" + dest + "'");
  }
  struct stat dst {};
  if (stat(dest.c_str(), &dst) == 0) {
    if (dst.st_dev == src.st_dev && dst.st_ino == src.st_ino) {
      return Status::InvalidArgument("--to: '" + dest + "' is the log itself (--store)");
    }
    if (!S_ISREG(dst.st_mode)) {
      return Status::InvalidArgument("--to: '" + dest + "' exists and is not a regular file");
    }
    if (!options.force) {
      return Status::Conflict("--to: '" + dest +
                              "' already exists; pass --force to replace it, or choose another "
                              "name");
    }
  }
  return Status::Ok();
}

// Opens the source for reading through SQLite's locks, never writing it.
Result<Db> OpenSource(const std::string& path) {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  Db db(raw);
  if (rc != SQLITE_OK) return SqliteFailure(raw, rc, "--store: cannot open '" + path + "'");
  // No checkpoint when this connection closes: the source stays as it was.
  sqlite3_db_config(raw, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  char* err = nullptr;
  if (sqlite3_exec(raw, "PRAGMA query_only=1; PRAGMA mmap_size=0;", nullptr, nullptr, &err) !=
      SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return Status::Unavailable("--store: cannot prepare '" + path + "' for reading: " + msg);
  }
  return db;
}

// Copies the lent source into dst page by page, retrying a busy/locked
// source until `busy_wait_ms` of waiting has passed. Every call on the
// source connection (init, each step, finish) runs inside `lend`.
Status CopyPages(const SqliteConnectionLender& lend, sqlite3* dst, const std::string& source,
                 const SqliteBackupOptions& options) {
  sqlite3_backup* backup = nullptr;
  sqlite3* first = nullptr;  // the connection the copy started on
  Status lent = lend([&](sqlite3* src) {
    first = src;
    backup = sqlite3_backup_init(dst, "main", src, "main");
    return Status::Ok();
  });
  if (!lent.ok()) return lent;
  if (backup == nullptr) return SqliteFailure(dst, sqlite3_errcode(dst), "backup: cannot start");
  const auto started = Clock::now();
  int64_t waited_ms = 0;
  int last_remaining = -1;
  Status failure;
  while (true) {
    if (options.cancel != nullptr && options.cancel->load()) {
      failure = Status::Unavailable("backup of '" + source + "' cancelled: treatyd is stopping");
      break;
    }
    int rc = SQLITE_OK;
    int remaining = 0;
    lent = lend([&](sqlite3* src) {
      if (src != first) {
        return Status::Unavailable("--store: '" + source +
                                   "' was closed and opened again during the copy (after a file "
                                   "failure); try the backup again");
      }
      rc = sqlite3_backup_step(backup, options.pages_per_step);
      remaining = sqlite3_backup_remaining(backup);
      return Status::Ok();
    });
    if (!lent.ok()) {
      failure = lent;
      break;
    }
    if (rc == SQLITE_DONE) break;
    if (rc == SQLITE_OK) {
      // A copy that starts over (the source was changed by another
      // connection) shows as more pages remaining than before.
      if (last_remaining >= 0 && remaining > last_remaining &&
          MsSince(started) > options.busy_wait_ms) {
        failure = Status::Unavailable("--store: '" + source +
                                      "' kept changing under the copy for longer than " +
                                      std::to_string(options.busy_wait_ms) + " ms");
        break;
      }
      last_remaining = remaining;
      if (options.step_pause_ms > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(options.step_pause_ms));
      }
      continue;
    }
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
      if (waited_ms >= options.busy_wait_ms) {
        failure = Status::Unavailable(
            "--store: '" + source + "' stayed locked for " + std::to_string(waited_ms) +
            " ms: another process holds it (a running treatyd keeps its SQLite log locked "
            "exclusively: ask it through its control socket, or back up after it has stopped "
            "or crashed)");
        break;
      }
      constexpr int kBusyPauseMs = 25;
      std::this_thread::sleep_for(std::chrono::milliseconds(kBusyPauseMs));
      waited_ms += kBusyPauseMs;
      continue;
    }
    failure = SqliteFailure(dst, rc, "backup: copying '" + source + "' failed");
    break;
  }
  // Finishing touches the source connection too: lent again, whatever the
  // connection now is (a replaced one stays allocated until this call).
  int finish = SQLITE_OK;
  Status finished = lend([&](sqlite3*) {
    finish = sqlite3_backup_finish(backup);
    return Status::Ok();
  });
  // The lender refuses only when the connection is closed: the old one is
  // then a zombie only this copy still uses, finished without the lock.
  if (!finished.ok()) finish = sqlite3_backup_finish(backup);
  if (!failure.ok()) return failure;
  if (finish != SQLITE_OK) return SqliteFailure(dst, finish, "backup: finishing the copy failed");
  return Status::Ok();
}

// integrity_check must answer exactly "ok".
Status CheckCopy(sqlite3* dst, const std::string& source) {
  Result<std::vector<std::string>> rows = Rows(dst, "PRAGMA integrity_check");
  if (!rows.ok()) return rows.status();
  if (rows->size() == 1 && (*rows)[0] == "ok") return Status::Ok();
  std::string what;
  for (size_t i = 0; i < rows->size() && i < 5; ++i) what += (i ? "; " : "") + (*rows)[i];
  return Status::Internal("backup of '" + source +
                          "' failed its integrity check (nothing written to --to): " + what);
}

Status SyncFile(const std::string& path, bool folder) {
  const int fd = open(path.c_str(), (folder ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Unavailable(Errno("backup: cannot open", path));
  const int rc = fsync(fd);
  const int saved = errno;
  close(fd);
  errno = saved;
  if (rc != 0) return Status::Unavailable(Errno("backup: fsync failed for", path));
  return Status::Ok();
}

// The copy itself, from the connection `lend` lends; `release_source` runs
// as soon as the pages are copied.
Result<SqliteBackupReport> Backup(const std::string& source_path,
                                  const SqliteConnectionLender& lend,
                                  const std::function<void()>& release_source,
                                  const std::string& dest_path, const SqliteBackupOptions& options,
                                  Clock::time_point started) {
  std::string pattern = dest_path + ".tmp-XXXXXX";
  const int fd = mkstemp(pattern.data());
  if (fd < 0) return Status::Unavailable(Errno("--to: cannot create a file next to", dest_path));
  close(fd);
  TempCopy temp(pattern);

  sqlite3* raw_dst = nullptr;
  const int rc = sqlite3_open_v2(temp.path().c_str(), &raw_dst,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  Db dst(raw_dst);
  if (rc != SQLITE_OK) return SqliteFailure(raw_dst, rc, "--to: cannot open '" + temp.path() + "'");

  if (Status s = CopyPages(lend, dst.get(), source_path, options); !s.ok()) return s;
  release_source();
  // The copy carries the source's WAL flag; a rollback journal keeps it one
  // self-contained file (treatyd switches it back to WAL when it opens it).
  if (Result<std::vector<std::string>> mode = Rows(dst.get(), "PRAGMA journal_mode=DELETE");
      !mode.ok()) {
    return mode.status();
  }
  if (Status s = CheckCopy(dst.get(), source_path); !s.ok()) return s;

  SqliteBackupReport report;
  if (Result<std::vector<std::string>> n = Rows(dst.get(), "PRAGMA page_count"); n.ok()) {
    report.pages = n->empty() ? 0 : std::atoll((*n)[0].c_str());
  }
  Result<std::vector<std::string>> has_table =
      Rows(dst.get(), "SELECT name FROM sqlite_master WHERE type='table' AND name='transactions'");
  if (has_table.ok() && !has_table->empty()) {
    Result<std::vector<std::string>> n = Rows(dst.get(), "SELECT count(*) FROM transactions");
    if (!n.ok()) return n.status();
    report.transactions = n->empty() ? 0 : std::atoll((*n)[0].c_str());
  }
  if (const int closed = sqlite3_close(dst.release()); closed != SQLITE_OK) {
    return Status::Unavailable("--to: closing '" + temp.path() +
                               "' failed: " + sqlite3_errstr(closed));
  }

  if (Status s = SyncFile(temp.path(), false); !s.ok()) return s;
  struct stat copied {};
  if (stat(temp.path().c_str(), &copied) == 0) report.bytes = copied.st_size;
  if (!options.force) {
    // Checked again at the last moment: a file that appeared meanwhile is kept.
    if (link(temp.path().c_str(), dest_path.c_str()) != 0) {
      if (errno == EEXIST) {
        return Status::Conflict("--to: '" + dest_path +
                                "' appeared during the backup; pass --force to replace it");
      }
      return Status::Unavailable(Errno("--to: cannot create", dest_path));
    }
  } else if (rename(temp.path().c_str(), dest_path.c_str()) != 0) {
    return Status::Unavailable(Errno("--to: cannot rename the copy to", dest_path));
  } else {
    temp.Keep();
  }
  if (Status s = SyncFile(Folder(dest_path), true); !s.ok()) return s;
  report.elapsed_ms = MsSince(started);
  return report;
}

}  // namespace

Result<SqliteBackupReport> BackupSqliteLog(const std::string& source_path,
                                           const std::string& dest_path,
                                           const SqliteBackupOptions& options) {
  const auto started = Clock::now();
  if (Status s = CheckPaths(source_path, dest_path, options); !s.ok()) return s;
  Result<Db> src = OpenSource(source_path);
  if (!src.ok()) return src.status();
  Db db = std::move(*src);
  SqliteConnectionLender lend = [&db](const std::function<Status(sqlite3*)>& use) {
    return use(db.get());
  };
  // The own read-only connection, alone in this call: lent without a lock.
  return Backup(
      source_path, lend, [&db] { db.reset(); }, dest_path, options, started);
}

Result<SqliteBackupReport> BackupLiveSqliteLog(const std::string& source_path,
                                               const SqliteConnectionLender& lend,
                                               const std::string& dest_path,
                                               const SqliteBackupOptions& options) {
  const auto started = Clock::now();
  if (Status s = CheckPaths(source_path, dest_path, options); !s.ok()) return s;
  return Backup(
      source_path, lend, [] {}, dest_path, options, started);
}

std::string SqliteControlSocketPath(const std::string& log_path) { return log_path + ".ctl"; }

Result<std::string> SqliteLogPathOf(const std::string& store_uri) {
  if (!StartsWith(store_uri, "sqlite:")) {
    // The URI itself is not echoed: it may hold a password.
    return Status::InvalidArgument("--store: not a SQLite log (want sqlite:PATH)");
  }
  std::string path = store_uri.substr(7);
  if (StartsWith(path, "//")) path = path.substr(2);  // sqlite://PATH, as OpenLogStore
  return path;
}

Result<SqliteBackupReport> BackupStore(const std::string& store_uri, const std::string& dest_path,
                                       const SqliteBackupOptions& options) {
  if (StartsWith(store_uri, "sqlite:")) {
    return BackupSqliteLog(*SqliteLogPathOf(store_uri), dest_path, options);
  }
  if (IsPostgresStoreUri(store_uri)) {
    return Status::InvalidArgument(
        "--store is a PostgreSQL log: treatyd backup copies SQLite logs only; back up PostgreSQL "
        "with pg_basebackup and a WAL archive (point-in-time recovery), as docs/operations.md "
        "\"Backup and restore\" describes");
  }
  // The URI itself is not echoed: it may hold a password.
  return Status::InvalidArgument("--store: unknown store URI (want sqlite:PATH)");
}

}  // namespace treaty
