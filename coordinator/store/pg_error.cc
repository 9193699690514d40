#include "store/pg_error.h"

#include <exception>

#include <pqxx/pqxx>

#include "common/text.h"

namespace treaty {

namespace {

constexpr size_t kMaxMessageBytes = 512;

std::string_view ClassOf(std::string_view sqlstate) { return sqlstate.substr(0, 2); }

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
  return cls == "08" || cls == "57" || sqlstate.empty();
}

Status PgErrorStatus(const char* what, const std::string& sqlstate, const std::string& message) {
  const std::string text =
      std::string(what) + ": [" + sqlstate + "] " + Excerpt(message, kMaxMessageBytes);
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

Status CaughtPgErrorStatus(const char* what, bool* drop) {
  const auto fail = [&](StatusCode code, const std::string& message) {
    return Status(code, std::string(what) + ": " + Excerpt(message, kMaxMessageBytes));
  };
  try {
    throw;
  } catch (const pqxx::broken_connection& e) {
    *drop = true;
    return fail(StatusCode::kUnavailable, std::string("connection lost: ") + e.what());
  } catch (const pqxx::in_doubt_error& e) {
    *drop = true;
    return fail(StatusCode::kUnavailable, std::string("commit outcome unknown: ") + e.what());
  } catch (const pqxx::sql_error& e) {
    *drop = PgErrorMayBreakConnection(e.sqlstate());
    return PgErrorStatus(what, e.sqlstate(), e.what());
  } catch (const std::exception& e) {  // pqxx::usage_error, conversion errors, bad_alloc
    *drop = true;
    return fail(StatusCode::kInternal, e.what());
  } catch (...) {
    *drop = true;
    return fail(StatusCode::kInternal, "a non-standard exception");
  }
}

}  // namespace treaty
