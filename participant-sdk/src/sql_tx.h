#pragma once

// SqlTx::Impl: the libpqxx side of SqlTx (treaty/sql.h), private to the SDK.
// Wraps a transaction of Barrier::Run or PgResourceManager for the
// business code, for the duration of its callback.

#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "treaty/sql.h"
#include "treaty/status.h"

namespace treaty {
inline namespace sdk {

class SqlTx::Impl {
 public:
  explicit Impl(pqxx::transaction_base& tx) : tx_(tx) {}

  // Runs one statement; never throws. Errors as treaty/sql.h promises, on
  // the shared reading of SQLSTATEs (store/pg_error.h): a lost connection,
  // an unknown commit outcome and transient SQL errors (serialization
  // failure, deadlock, lock or statement time-out, shutdown, fail-over) ->
  // Unavailable; any integrity violation (unique, not null, foreign key,
  // check, exclusion) -> Conflict; everything else (bad data, syntax, ...)
  // -> Internal.
  Result<SqlResult> Exec(const std::string& sql, const std::vector<SqlParam>& params);

 private:
  pqxx::transaction_base& tx_;
};

}  // namespace sdk
}  // namespace treaty
