#pragma once

// Private libpqxx plumbing of the SDK: a small connection pool, the one
// place where libpqxx exceptions become Status, and the SqlTx implementation.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "common/mutex.h"
#include "treaty/sql.h"
#include "treaty/status.h"

namespace treaty {
inline namespace sdk {

class SqlTx::Impl {
 public:
  explicit Impl(pqxx::transaction_base& tx) : tx_(tx) {}
  Result<SqlResult> Exec(const std::string& sql, const std::vector<SqlParam>& params);

 private:
  pqxx::transaction_base& tx_;
};

// Runs `fn`, turning any exception (libpqxx or other) into a Status:
// broken connection, serialization failure, deadlock, lock time-out, in-doubt
// commit -> Unavailable; integrity violation -> Conflict; else Internal.
Status PgGuard(const std::function<Status()>& fn);
// The SQLSTATE of the exception being handled, "" if not an SQL error.
Status StatusFromPgException(const std::exception& e);

// Fixed-size pool of connections to one database. Thread-safe; Acquire
// blocks while all connections are leased. A connection that failed is
// dropped on return (Lease::Discard) and reopened on the next Acquire.
class PgPool {
 public:
  PgPool(std::string uri, int max_connections);
  ~PgPool();

  class Lease {
   public:
    Lease(PgPool* pool, std::unique_ptr<pqxx::connection> c) : pool_(pool), c_(std::move(c)) {}
    Lease(Lease&&) = default;
    ~Lease();
    pqxx::connection& conn() { return *c_; }
    // Drop this connection instead of returning it (after a failure).
    void Discard() { discard_ = true; }

   private:
    PgPool* pool_;
    std::unique_ptr<pqxx::connection> c_;
    bool discard_ = false;
  };

  // A connected connection, or Unavailable.
  Result<Lease> Acquire() TREATY_EXCLUDES(mu_);
  const std::string& uri() const { return uri_; }

 private:
  void Return(std::unique_ptr<pqxx::connection> c, bool discard) TREATY_EXCLUDES(mu_);

  const std::string uri_;
  const int max_;
  treaty::Mutex mu_;
  treaty::CondVar cv_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_ TREATY_GUARDED_BY(mu_);
  int leased_ TREATY_GUARDED_BY(mu_) = 0;
};

// Applies migrations/participant/*.sql not yet recorded in
// treaty_participant_migrations, under an advisory lock (safe from many
// processes at once).
Status MigrateParticipantSchema(pqxx::connection& conn);

}  // namespace sdk
}  // namespace treaty
