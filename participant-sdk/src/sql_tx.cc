#include "sql_tx.h"

#include <cstdlib>

#include "store/pg_error.h"

namespace treaty {
inline namespace sdk {

namespace {

// treaty/sql.h's codes for the Status CaughtPgError gives an SQL error of
// `kind`: the store's data errors (InvalidArgument) are, for
// business code, a Conflict (integrity violations) or Internal (bad data).
Status SqlTxStatus(PgErrorKind kind, const Status& mapped) {
  switch (kind) {
    case PgErrorKind::kUniqueViolation:
    case PgErrorKind::kIntegrityViolation:
      return Status::Conflict(mapped.message());
    case PgErrorKind::kBadData:
      return Status::Internal(mapped.message());
    case PgErrorKind::kTransient:
    case PgErrorKind::kOther:
      break;
  }
  return mapped;
}

}  // namespace

int64_t SqlRow::Int(size_t i) const {
  if (IsNull(i)) return 0;
  return std::strtoll(cells_.at(i)->c_str(), nullptr, 10);
}

Result<SqlResult> SqlTx::Exec(const std::string& sql, const std::vector<SqlParam>& params) {
  return impl_->Exec(sql, params);
}

Result<SqlResult> SqlTx::Impl::Exec(const std::string& sql, const std::vector<SqlParam>& params) {
  SqlResult out;
  try {
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
  } catch (...) {
    // Every libpqxx exception, as the pool reads it (a transaction_rollback
    // is no sql_error in libpqxx 6.4). A broken connection is the pool's to
    // notice (it drops connections that are no longer open when the call
    // ends).
    const PgFailure failure = CaughtPgError("sql");
    return SqlTxStatus(failure.kind, failure.status);
  }
  return out;
}

}  // namespace sdk
}  // namespace treaty
