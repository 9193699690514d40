#include "store/sqlite_log_store.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <set>

#include "store/event_collapse.h"
#include "store/list_cursor.h"
#include "store/migrations.h"

namespace treaty {

namespace {

constexpr int kBusyTimeoutMs = 5000;
// At most one "closed after a file failure" warning per this many ms.
constexpr int64_t kWarningEveryMs = 10000;

bool IsDatabaseFailure(const Status& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kInternal;
}

std::string Now() { return SqliteLogStore::kNowSql; }

}  // namespace

Result<std::unique_ptr<SqliteLogStore>> SqliteLogStore::Open(const std::string& path) {
  if (path.empty()) return Status::InvalidArgument("sqlite: empty path");
  if (path != ":memory:") {
    std::error_code ec;
    const auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec)
      return Status::Unavailable("sqlite: cannot create " + parent.string() + ": " + ec.message());
  }
  std::unique_ptr<SqliteLogStore> store(new SqliteLogStore());
  if (Status s = store->conn_.Open(path, kBusyTimeoutMs); !s.ok()) return s;
  return store;
}

void SqliteLogStore::CallLock::Lock() {
  mu_.Lock();
  // A failure leaves the connection closed; Exec and Prepare then say why.
  (void)conn_->EnsureOpen();
}

void SqliteLogStore::CallLock::Unlock() {
  if (conn_->broken()) {
    const Status why = conn_->broken_by();
    conn_->Close();
    failing_ = true;
    ++closes_since_warning_;
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    if (now - last_warning_ms_ >= kWarningEveryMs) {
      spdlog::warn(
          "sqlite log: {}; closed it, opening it again at the next call ({} times since the last "
          "warning)",
          why.message(), closes_since_warning_);
      last_warning_ms_ = now;
      closes_since_warning_ = 0;
    }
  } else if (failing_) {
    if (conn_->is_open() && conn_->changes_since_open() > 0) {
      failing_ = false;
      spdlog::info("sqlite log {}: writable again", conn_->path());
    } else {
      conn_->Close();
    }
  }
  mu_.Unlock();
}

Status SqliteLogStore::LendConnection(const std::function<Status(sqlite3*)>& use) {
  CallScope lock(&mu_);
  if (conn_.db() == nullptr) {
    return Status::Unavailable("sqlite: " + conn_.path() + " is not open (a file failure)");
  }
  return use(conn_.db());
}

Status SqliteLogStore::InTransaction(const Body& body) {
  if (Status s = conn_.Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  Status s = body();
  if (s.ok()) s = conn_.Exec("COMMIT");
  if (!s.ok()) (void)conn_.Exec("ROLLBACK");
  return s;
}

Status SqliteLogStore::Migrate() {
  CallScope lock(&mu_);
  return InTransaction([&]() TREATY_REQUIRES(mu_) -> Status {
    Status s = conn_.Exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        "name TEXT NOT NULL, applied_at BIGINT NOT NULL)");
    if (!s.ok()) return s;
    std::set<int64_t> applied;
    {
      auto st = Prepare("SELECT version FROM schema_migrations", &s);
      if (!st) return s;
      for (Result<bool> row = st->Step();; row = st->Step()) {
        if (!row.ok()) return row.status();
        if (!*row) break;
        applied.insert(st->Int(0));
      }
    }
    if (!applied.empty()) {
      if (s = CheckSchemaNotNewer(*applied.rbegin(), LatestMigrationVersion("sqlite")); !s.ok()) {
        return s;
      }
    }
    for (const Migration& m : EmbeddedMigrations("sqlite")) {
      if (applied.count(m.version)) continue;
      if (s = conn_.Exec(std::string(m.sql)); !s.ok()) {
        return Status(s.code(), "migration " + std::to_string(m.version) + ": " + s.message());
      }
      auto st =
          Prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, " +
                      Now() + ")",
                  &s);
      if (!st) return s;
      if (Result<int64_t> r = st->Bind(1, int64_t{m.version}).Bind(2, m.name).Run(); !r.ok()) {
        return r.status();
      }
    }
    return Status::Ok();
  });
}

Status SqliteLogStore::CheckReady() {
  CallScope lock(&mu_);
  Status s;
  auto st = Prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &s);
  if (!st) return Status::Unavailable("schema not migrated: " + s.message());
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::Internal("schema_migrations: no row from MAX(version)");
  const int64_t have = st->Int(0);
  const int64_t want = LatestMigrationVersion("sqlite");
  if (have < want) {
    return Status::Unavailable("schema at version " + std::to_string(have) + ", want " +
                               std::to_string(want));
  }
  return CheckSchemaNotNewer(have, want);
}

Result<std::vector<Status>> SqliteLogStore::ApplyStorable(const std::vector<TxnWrite>& writes) {
  CallScope lock(&mu_);
  std::vector<Status> results;
  results.reserve(writes.size());
  Status s = InTransaction([&]() TREATY_REQUIRES(mu_) -> Status {
    results.clear();
    for (const TxnWrite& w : writes) {
      if (Status sp = conn_.Exec("SAVEPOINT w"); !sp.ok()) return sp;
      Status ws = ApplyOne(w);
      if (IsDatabaseFailure(ws)) return ws;
      if (!ws.ok()) {
        if (Status rb = conn_.Exec("ROLLBACK TO w"); !rb.ok()) return rb;
      }
      if (Status rel = conn_.Exec("RELEASE w"); !rel.ok()) return rel;
      results.push_back(std::move(ws));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return results;
}

Status SqliteLogStore::ApplyOne(const TxnWrite& w) {
  Status s;
  if (w.create) {
    const TxnRow& c = *w.create;
    if (!c.gtid.empty() && c.gtid != w.gtid)
      return Status::InvalidArgument("create: gtid mismatch");
    auto st = Prepare(
        "INSERT INTO transactions (gtid, kind, state, spec, deadline_ms, owner, "
        "next_attempt_at_ms, "
        "attempts, needs_attention, version, created_at_ms, updated_at_ms, paused, last_error) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, COALESCE(NULLIF(?11, 0), " +
            Now() + "), COALESCE(NULLIF(?12, 0), NULLIF(?11, 0), " + Now() +
            "), ?13, ?14) ON CONFLICT (gtid) DO NOTHING",
        &s);
    if (!st) return s;
    st->Bind(1, w.gtid).Bind(2, c.kind).Bind(3, c.state).Bind(4, c.spec).Bind(5, c.deadline_ms);
    st->BindNullIfEmpty(6, c.owner.empty() ? w.owner : c.owner).Bind(7, c.next_attempt_at_ms);
    st->Bind(8, int64_t{c.attempts}).Bind(9, int64_t{c.needs_attention}).Bind(10, c.version);
    st->Bind(11, c.created_at_ms ? c.created_at_ms : w.now_ms).Bind(12, c.updated_at_ms);
    st->Bind(13, int64_t{c.paused}).Bind(14, c.last_error);
    Result<int64_t> n = st->Run();
    if (!n.ok()) return n.status();
    if (*n == 0) return Status::Conflict("transaction " + w.gtid + " already exists");
  } else if (!ChangesTransactionRow(w)) {
    // The write transaction holds SQLite's only write lock: no take-over can
    // commit between this check and the commit.
    auto owned = Prepare("SELECT 1 FROM transactions WHERE gtid = ?1 AND owner = ?2", &s);
    if (!owned) return s;
    Result<bool> row = owned->Bind(1, w.gtid).Bind(2, w.owner).Step();
    if (!row.ok()) return row.status();
    if (!*row) return NotOwnedOrMissing(w);
  } else {
    auto st = Prepare(
        "UPDATE transactions SET state = COALESCE(?3, state), needs_attention = COALESCE(?4, "
        "needs_attention), next_attempt_at_ms = COALESCE(?5, next_attempt_at_ms), attempts = "
        "COALESCE(?6, attempts), deadline_ms = COALESCE(?7, deadline_ms), owner = CASE WHEN ?8 "
        "<> 0 THEN NULL ELSE owner END, paused = COALESCE(?10, paused), last_error = "
        "COALESCE(?11, last_error), version = version + 1, updated_at_ms = "
        "COALESCE(NULLIF(?9, 0), " +
            Now() + ") WHERE gtid = ?1 AND owner = ?2",
        &s);
    if (!st) return s;
    st->Bind(1, w.gtid).Bind(2, w.owner).Bind(3, w.state);
    st->Bind(4, w.needs_attention ? std::optional<int64_t>(*w.needs_attention) : std::nullopt);
    st->Bind(5, w.next_attempt_at_ms);
    st->Bind(6, w.attempts ? std::optional<int64_t>(*w.attempts) : std::nullopt);
    st->Bind(7, w.deadline_ms).Bind(8, int64_t{w.release_owner}).Bind(9, w.now_ms);
    st->Bind(10, w.paused ? std::optional<int64_t>(*w.paused) : std::nullopt);
    st->Bind(11, w.last_error);
    Result<int64_t> n = st->Run();
    if (!n.ok()) return n.status();
    if (*n == 0) return NotOwnedOrMissing(w);
  }
  for (const BranchRow& b : w.new_branches) {
    auto st = Prepare(
        "INSERT INTO branches (gtid, name, idx, state, attempts, last_error, next_attempt_at_ms, "
        "spec, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, COALESCE(NULLIF(?9, 0), " +
            Now() + ")) ON CONFLICT (gtid, name) DO NOTHING",
        &s);
    if (!st) return s;
    st->Bind(1, w.gtid).Bind(2, b.name).Bind(3, int64_t{b.idx}).Bind(4, b.state);
    st->Bind(5, int64_t{b.attempts}).Bind(6, b.last_error).Bind(7, b.next_attempt_at_ms);
    st->Bind(8, b.spec).Bind(9, b.updated_at_ms ? b.updated_at_ms : w.now_ms);
    Result<int64_t> n = st->Run();
    if (!n.ok()) return n.status();
    if (*n == 0) return Status::Conflict("branch " + b.name + " of " + w.gtid + " already exists");
  }
  for (const BranchUpdate& u : w.branch_updates) {
    auto st = Prepare(
        "UPDATE branches SET state = COALESCE(?3, state), attempts = COALESCE(?4, attempts), "
        "last_error = COALESCE(?5, last_error), next_attempt_at_ms = COALESCE(?6, "
        "next_attempt_at_ms), updated_at_ms = COALESCE(NULLIF(?7, 0), " +
            Now() + ") WHERE gtid = ?1 AND name = ?2",
        &s);
    if (!st) return s;
    st->Bind(1, w.gtid).Bind(2, u.name).Bind(3, u.state);
    st->Bind(4, u.attempts ? std::optional<int64_t>(*u.attempts) : std::nullopt);
    st->Bind(5, u.last_error).Bind(6, u.next_attempt_at_ms).Bind(7, w.now_ms);
    Result<int64_t> n = st->Run();
    if (!n.ok()) return n.status();
    if (*n == 0) return Status::NotFound("branch " + u.name + " of " + w.gtid + " not found");
  }
  for (const PlannedEvent& p : PlanEvents(w)) {
    if (Status es = ApplyEvent(p); !es.ok()) return es;
  }
  return Status::Ok();
}

Status SqliteLogStore::NotOwnedOrMissing(const TxnWrite& w) {
  Status s;
  auto exists = Prepare("SELECT 1 FROM transactions WHERE gtid = ?1", &s);
  if (!exists) return s;
  Result<bool> row = exists->Bind(1, w.gtid).Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::NotFound("transaction " + w.gtid + " not found");
  return Status::LostOwnership("transaction " + w.gtid + " is not owned by " + w.owner);
}

Status SqliteLogStore::ApplyEvent(const PlannedEvent& p) {
  const EventRow& e = p.row;
  Status s;
  if (p.into_stored) {
    // The newest event of this gtid and branch (index events_gtid_branch).
    auto st = Prepare(
        "UPDATE events SET count = count + ?1, detail = ?2, at_ms = COALESCE(NULLIF(?3, 0), " +
            Now() +
            ") WHERE id = (SELECT MAX(id) FROM events WHERE gtid = ?4 AND branch = ?5) AND "
            "type = ?6",
        &s);
    if (!st) return s;
    st->Bind(1, e.count).Bind(2, e.detail).Bind(3, e.at_ms).Bind(4, e.gtid).Bind(5, e.branch);
    st->Bind(6, e.type);
    Result<int64_t> n = st->Run();
    if (!n.ok()) return n.status();
    if (*n > 0) return Status::Ok();
  }
  auto st = Prepare(
      "INSERT INTO events (gtid, branch, type, detail, at_ms, count, first_at_ms) VALUES (?1, ?2, "
      "?3, ?4, COALESCE(NULLIF(?5, 0), " +
          Now() + "), ?6, COALESCE(NULLIF(?7, 0), NULLIF(?5, 0), " + Now() + "))",
      &s);
  if (!st) return s;
  st->Bind(1, e.gtid).Bind(2, e.branch).Bind(3, e.type).Bind(4, e.detail).Bind(5, e.at_ms);
  st->Bind(6, e.count).Bind(7, e.first_at_ms);
  if (Result<int64_t> n = st->Run(); !n.ok()) return n.status();
  return Status::Ok();
}

TxnRow SqliteLogStore::ReadTxn(const SqliteStatement& st) {
  TxnRow t;
  t.gtid = st.Text(0);
  t.kind = st.Text(1);
  t.state = st.Text(2);
  t.spec = st.Text(3);
  t.deadline_ms = st.Int(4);
  t.owner = st.Text(5);
  t.next_attempt_at_ms = st.Int(6);
  t.attempts = static_cast<int>(st.Int(7));
  t.needs_attention = st.Int(8) != 0;
  t.version = st.Int(9);
  t.created_at_ms = st.Int(10);
  t.updated_at_ms = st.Int(11);
  t.paused = st.Int(12) != 0;
  t.last_error = st.Text(13);
  return t;
}

}  // namespace treaty
