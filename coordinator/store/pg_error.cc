#include "store/pg_error.h"

#include <exception>
#include <utility>

#include <pqxx/pqxx>

#include "common/text.h"

namespace treaty {

namespace {

constexpr size_t kMaxMessageBytes = 512;

std::string_view ClassOf(std::string_view sqlstate) { return sqlstate.substr(0, 2); }

template <typename E>
bool Is(const std::exception& e) {
  return dynamic_cast<const E*>(&e) != nullptr;
}

}  // namespace

PgErrorKind PgErrorKindOf(std::string_view sqlstate) {
  const std::string_view cls = ClassOf(sqlstate);
  if (cls == "08" || cls == "57" || cls == "53" || cls == "40" || sqlstate == "25006" ||
      sqlstate == "55P03") {
    return PgErrorKind::kTransient;
  }
  if (sqlstate == "23505") return PgErrorKind::kUniqueViolation;
  if (cls == "23") return PgErrorKind::kIntegrityViolation;
  if (cls == "22" || cls == "54") return PgErrorKind::kBadData;
  return PgErrorKind::kOther;
}

bool PgErrorMayBreakConnection(std::string_view sqlstate) {
  const std::string_view cls = ClassOf(sqlstate);
  // 0A000 includes "cached plan must not change result type" (a migration
  // changed a table under a prepared statement); 26000 and 42P05 say the
  // session's prepared statements are not what libpqxx believes (a pooler
  // that does not keep sessions). Each fails every later use of the
  // session's prepared statements, so a fresh session is the way out.
  return cls == "08" || cls == "57" || sqlstate.empty() || sqlstate == "0A000" ||
         sqlstate == "26000" || sqlstate == "42P05";
}

Status PgErrorStatus(const char* what, const std::string& sqlstate, const std::string& message) {
  const std::string text = std::string(what) + ": " +
                           (sqlstate.empty() ? "" : "[" + sqlstate + "] ") +
                           Excerpt(message, kMaxMessageBytes);
  switch (PgErrorKindOf(sqlstate)) {
    case PgErrorKind::kTransient:
      return Status::Unavailable(text);
    case PgErrorKind::kUniqueViolation:
      return Status::Conflict(text);
    case PgErrorKind::kIntegrityViolation:
    case PgErrorKind::kBadData:
      // The data error of store/write_rules.h (kept in step by
      // tests/store/log_store_poison_test.cc).
      return Status::InvalidArgument("data error: " + text);
    case PgErrorKind::kOther:
      break;
  }
  return Status::Internal(text);
}

std::string PgSqlStateOf(const std::exception& e) {
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
      sql != nullptr && !sql->sqlstate().empty()) {
    return sql->sqlstate();
  }
  // Most derived classes first.
  if (Is<pqxx::serialization_failure>(e)) return "40001";
  if (Is<pqxx::statement_completion_unknown>(e)) return "40003";
  if (Is<pqxx::deadlock_detected>(e)) return "40P01";
  if (Is<pqxx::transaction_rollback>(e)) return "40000";
  if (Is<pqxx::too_many_connections>(e)) return "53300";
  if (Is<pqxx::insufficient_privilege>(e)) return "42501";
  if (Is<pqxx::undefined_column>(e)) return "42703";
  if (Is<pqxx::undefined_function>(e)) return "42883";
  if (Is<pqxx::undefined_table>(e)) return "42P01";
  if (Is<pqxx::syntax_error>(e)) return "42601";
  if (Is<pqxx::restrict_violation>(e)) return "23001";
  if (Is<pqxx::not_null_violation>(e)) return "23502";
  if (Is<pqxx::foreign_key_violation>(e)) return "23503";
  if (Is<pqxx::unique_violation>(e)) return "23505";
  if (Is<pqxx::check_violation>(e)) return "23514";
  if (Is<pqxx::integrity_constraint_violation>(e)) return "23000";
  if (Is<pqxx::data_exception>(e)) return "22000";
  if (Is<pqxx::feature_not_supported>(e)) return "0A000";
  if (Is<pqxx::invalid_cursor_state>(e)) return "24000";
  if (Is<pqxx::invalid_sql_statement_name>(e)) return "26000";
  if (Is<pqxx::invalid_cursor_name>(e)) return "34000";
  if (Is<pqxx::disk_full>(e)) return "53100";
  if (Is<pqxx::out_of_memory>(e)) return "53200";
  if (Is<pqxx::insufficient_resources>(e)) return "53000";
  if (Is<pqxx::plpgsql_raise>(e)) return "P0001";
  if (Is<pqxx::plpgsql_no_data_found>(e)) return "P0002";
  if (Is<pqxx::plpgsql_too_many_rows>(e)) return "P0003";
  if (Is<pqxx::plpgsql_error>(e)) return "P0000";
  return "";
}

PgFailure CaughtPgError(const char* what) {
  const auto fail = [&](StatusCode code, const std::string& sqlstate, const std::string& message,
                        PgErrorKind kind, bool drop) {
    const std::string state = sqlstate.empty() ? "" : "[" + sqlstate + "] ";
    return PgFailure{
        Status(code, std::string(what) + ": " + state + Excerpt(message, kMaxMessageBytes)), kind,
        drop};
  };
  // The SQL error: its SQLSTATE's kind and Status; dropped only when the
  // session may be broken (no SQLSTATE: an error libpq made up itself).
  const auto sql = [&](const std::exception& e) {
    const std::string sqlstate = PgSqlStateOf(e);
    return PgFailure{PgErrorStatus(what, sqlstate, e.what()), PgErrorKindOf(sqlstate),
                     PgErrorMayBreakConnection(sqlstate)};
  };
  try {
    throw;
  } catch (const pqxx::broken_connection& e) {
    return fail(StatusCode::kUnavailable, PgSqlStateOf(e),
                std::string("connection lost: ") + e.what(), PgErrorKind::kTransient, true);
  } catch (const pqxx::in_doubt_error& e) {
    return fail(StatusCode::kUnavailable, "", std::string("commit outcome unknown: ") + e.what(),
                PgErrorKind::kTransient, true);
  } catch (const pqxx::transaction_rollback& e) {  // no sql_error in libpqxx 6.4
    return sql(e);
  } catch (const pqxx::sql_error& e) {
    return sql(e);
  } catch (const pqxx::failure& e) {
    return fail(StatusCode::kUnavailable, "", std::string("database failure: ") + e.what(),
                PgErrorKind::kTransient, true);
  } catch (const pqxx::conversion_error& e) {
    return fail(StatusCode::kInternal, "", e.what(), PgErrorKind::kOther, false);
  } catch (const pqxx::range_error& e) {  // unexpected_rows too
    return fail(StatusCode::kInternal, "", e.what(), PgErrorKind::kOther, false);
  } catch (const pqxx::argument_error& e) {
    return fail(StatusCode::kInternal, "", e.what(), PgErrorKind::kOther, false);
  } catch (const pqxx::usage_error& e) {
    return fail(StatusCode::kInternal, "", std::string("libpqxx usage error: ") + e.what(),
                PgErrorKind::kOther, true);
  } catch (const pqxx::internal_error& e) {
    return fail(StatusCode::kInternal, "", e.what(), PgErrorKind::kOther, true);
  } catch (const std::exception& e) {  // bad_alloc, the body's own exceptions
    return fail(StatusCode::kInternal, "", e.what(), PgErrorKind::kOther, true);
  } catch (...) {
    return fail(StatusCode::kInternal, "", "a non-standard exception", PgErrorKind::kOther, true);
  }
}

Status CaughtPgErrorStatus(const char* what, bool* drop) {
  PgFailure failure = CaughtPgError(what);
  *drop = failure.drop;
  return std::move(failure.status);
}

}  // namespace treaty
