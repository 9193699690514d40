#pragma once

// PostgreSQL errors as Status: the one reading of SQLSTATEs and of libpqxx
// exceptions, shared by the coordinator's store and the participant SDK
// (target treaty_pg). PgConnectionPool::Run applies it to whatever its body
// throws; the SDK's SqlTx (participant-sdk/src/sql_tx.cc) gives the same
// kinds the codes its public header promises.
//
// Stateless, thread-safe, never throw.

#include <exception>
#include <string>
#include <string_view>

#include "treaty/status.h"

namespace treaty {

// What a PostgreSQL error says about the statement and about retrying it.
enum class PgErrorKind {
  // Classes 08 (connection), 57 (shutdown, cancel, statement time-out),
  // 53 (insufficient resources), 40 (serialization failure, deadlock),
  // 25006 (read-only transaction: a standby after fail-over) and 55P03
  // (lock not available: lock_timeout, NOWAIT): retrying later may succeed.
  kTransient,
  kUniqueViolation,     // 23505
  kIntegrityViolation,  // the rest of class 23: not null, foreign key, check, exclusion
  // Classes 22 (data exception: invalid UTF-8, a malformed number) and 54
  // (program limits: an index row too large): the statement's data is
  // wrong, retrying it cannot help.
  kBadData,
  kOther,  // syntax, undefined objects, permissions, ...
};

PgErrorKind PgErrorKindOf(std::string_view sqlstate);

// Whether the session may be unusable after an error with `sqlstate`
// (classes 08 and 57, no SQLSTATE at all, or a prepared statement the
// session cannot use any more: 0A000, 26000, 42P05): the connection is
// dropped.
bool PgErrorMayBreakConnection(std::string_view sqlstate);

// The Status of a PostgreSQL error (the mapping PgConnectionPool::Run
// applies, also used where a batch catches the failure of one write):
//  - kTransient -> Unavailable;
//  - kUniqueViolation -> Conflict;
//  - kIntegrityViolation, kBadData -> a data error: InvalidArgument whose
//    message starts "data error: " (IsDataError, store/write_rules.h);
//  - kOther -> Internal.
// The message names `what`, the SQLSTATE in brackets (when not empty) and a
// valid-UTF-8 excerpt of `message`.
Status PgErrorStatus(const char* what, const std::string& sqlstate, const std::string& message);

// The SQLSTATE of a libpqxx exception: its sqlstate() when it carries one,
// else the one its class stands for (libpqxx 6.4, Debian 12, throws
// transaction_rollback and its subclasses, which are no sql_error there, and
// insufficient_privilege without one: "40001", "40P01", "42501", ...); ""
// for a lost connection, an unknown commit outcome and libpqxx's own errors.
std::string PgSqlStateOf(const std::exception& e);

// A caught exception, read (CaughtPgError).
struct PgFailure {
  Status status;
  // The SQL error's kind; kTransient for a lost connection or an unknown
  // commit outcome, kOther for everything that is no SQL error.
  PgErrorKind kind = PgErrorKind::kOther;
  bool drop = false;  // the connection may be unusable: do not reuse it
};

// The exception being handled (call only inside a catch block), named after
// `what`. Every libpqxx 6.4 exception class, explicitly:
//  - broken_connection (too_many_connections included) -> Unavailable,
//    dropped;
//  - in_doubt_error (a COMMIT whose outcome is unknown) -> Unavailable,
//    dropped;
//  - transaction_rollback and its subclasses (serialization_failure 40001,
//    deadlock_detected 40P01, statement_completion_unknown 40003) and every
//    sql_error (insufficient_privilege, syntax_error, undefined_table,
//    integrity_constraint_violation's subclasses, data_exception,
//    feature_not_supported, invalid_sql_statement_name, plpgsql_error, ...)
//    -> PgErrorStatus of PgSqlStateOf; dropped only when
//    PgErrorMayBreakConnection (class 08, 57, no SQLSTATE at all, 0A000,
//    26000, 42P05);
//  - other pqxx::failure (a failed libpq call outside a statement) ->
//    Unavailable, dropped;
//  - conversion_error, range_error (unexpected_rows), argument_error
//    (raised while binding or reading, the session untouched; the body's
//    transaction rolls back as it unwinds) -> Internal, kept;
//  - usage_error, internal_error (libpqxx's state of the connection may be
//    inconsistent), any other exception (bad_alloc, non-standard ones;
//    thrown from who knows where) -> Internal, dropped.
// The message names the SQLSTATE in brackets whenever one is known.
PgFailure CaughtPgError(const char* what);

// CaughtPgError's Status; sets *drop when the connection it came from may
// be unusable and must not be reused.
Status CaughtPgErrorStatus(const char* what, bool* drop);

}  // namespace treaty
