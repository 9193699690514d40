#include "pg_support.h"

#include <cstdlib>

#include "participant_migrations.h"

namespace treaty {
inline namespace sdk {

int64_t SqlRow::Int(size_t i) const {
  if (IsNull(i)) return 0;
  return std::strtoll(cells_.at(i)->c_str(), nullptr, 10);
}

Result<SqlResult> SqlTx::Exec(const std::string& sql, const std::vector<SqlParam>& params) {
  return impl_->Exec(sql, params);
}

Result<SqlResult> SqlTx::Impl::Exec(const std::string& sql, const std::vector<SqlParam>& params) {
  SqlResult out;
  Status s = PgGuard([&] {
    pqxx::result r = tx_.exec_params(sql, pqxx::prepare::make_dynamic_params(params));
    out.affected_rows = static_cast<int64_t>(r.affected_rows());
    for (const auto& row : r) {
      std::vector<std::optional<std::string>> cells;
      cells.reserve(row.size());
      for (const auto& f : row) {
        if (f.is_null()) {
          cells.emplace_back(std::nullopt);
        } else {
          cells.emplace_back(std::string(f.c_str(), f.size()));
        }
      }
      out.rows.emplace_back(std::move(cells));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Status StatusFromPgException(const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return Status::Unavailable(std::string("database connection lost: ") + e.what());
  }
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return Status::Unavailable(std::string("commit outcome unknown: ") + e.what());
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string& state = sql->sqlstate();
    std::string what = e.what();
    while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
    std::string msg = what + (state.empty() ? "" : " (SQLSTATE " + state + ")");
    // 40001 serialization, 40P01 deadlock, 55P03 lock not available,
    // 57014 statement/lock time-out, class 08 connection.
    if (state == "40001" || state == "40P01" || state == "55P03" || state == "57014" ||
        state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0) {
      return Status::Unavailable(msg);
    }
    if (state.rfind("23", 0) == 0) return Status::Conflict(msg);
    return Status::Internal(msg);
  }
  return Status::Internal(e.what());
}

Status PgGuard(const std::function<Status()>& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return StatusFromPgException(e);
  } catch (...) {
    return Status::Internal("unknown exception");
  }
}

PgPool::PgPool(std::string uri, int max_connections)
    : uri_(std::move(uri)), max_(max_connections < 1 ? 1 : max_connections) {}

PgPool::~PgPool() = default;

PgPool::Lease::~Lease() {
  if (pool_ != nullptr && c_ != nullptr) pool_->Return(std::move(c_), discard_);
}

Result<PgPool::Lease> PgPool::Acquire() {
  std::unique_ptr<pqxx::connection> c;
  {
    treaty::MutexLock l(&mu_);
    cv_.Wait(&mu_, [this]() TREATY_REQUIRES(mu_) { return !idle_.empty() || leased_ < max_; });
    ++leased_;
    if (!idle_.empty()) {
      c = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (c != nullptr && !c->is_open()) c.reset();
  if (c == nullptr) {
    Status s = PgGuard([&] {
      c = std::make_unique<pqxx::connection>(uri_);
      return Status::Ok();
    });
    if (!s.ok()) {
      treaty::MutexLock l(&mu_);
      --leased_;
      cv_.NotifyOne();
      return Status::Unavailable("cannot connect to " + uri_ + ": " + s.message());
    }
  }
  return Lease(this, std::move(c));
}

void PgPool::Return(std::unique_ptr<pqxx::connection> c, bool discard) {
  treaty::MutexLock l(&mu_);
  --leased_;
  if (!discard && c->is_open()) idle_.push_back(std::move(c));
  cv_.NotifyOne();
}

Status MigrateParticipantSchema(pqxx::connection& conn) {
  return PgGuard([&] {
    pqxx::work w(conn);
    // One migrator at a time across processes (key: "treaty_p" in ASCII).
    w.exec("SELECT pg_advisory_xact_lock(7526752110455754864)");
    w.exec(
        "CREATE TABLE IF NOT EXISTS treaty_participant_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())");
    for (const auto& m : ParticipantMigrations()) {
      pqxx::result r = w.exec_params(
          "SELECT 1 FROM treaty_participant_migrations WHERE version = $1", m.version);
      if (!r.empty()) continue;
      w.exec(m.sql);
      w.exec_params("INSERT INTO treaty_participant_migrations(version, name) VALUES ($1, $2)",
                    m.version, m.name);
    }
    w.commit();
    return Status::Ok();
  });
}

}  // namespace sdk
}  // namespace treaty
