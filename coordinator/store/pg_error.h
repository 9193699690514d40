#pragma once

// PostgreSQL errors as Status: the one reading of SQLSTATEs and of libpqxx
// exceptions, shared by the coordinator's store and the participant SDK
// (target treaty_pg). PgConnectionPool::Run applies it to whatever its body
// throws; the SDK's SqlTx (participant-sdk/src/sql_tx.cc) gives the same
// kinds the codes its public header promises.
//
// Stateless, thread-safe, never throw.

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
// (classes 08 and 57, or no SQLSTATE at all): the connection is dropped.
bool PgErrorMayBreakConnection(std::string_view sqlstate);

// The Status of a PostgreSQL error (the mapping PgConnectionPool::Run
// applies, also used where a batch catches the failure of one write):
//  - kTransient -> Unavailable;
//  - kUniqueViolation -> Conflict;
//  - kIntegrityViolation, kBadData -> a data error: InvalidArgument whose
//    message starts "data error: " (IsDataError, store/write_rules.h);
//  - kOther -> Internal.
// The message names `what`, the SQLSTATE and a valid-UTF-8 excerpt of
// `message`.
Status PgErrorStatus(const char* what, const std::string& sqlstate, const std::string& message);

// The Status of the exception being handled (call only inside a catch
// block), named after `what`: a lost connection or a COMMIT whose outcome is
// unknown (pqxx::in_doubt_error) -> Unavailable; an SQL error as
// PgErrorStatus; anything else (libpqxx usage and conversion errors,
// bad_alloc, non-standard exceptions) -> Internal. Sets *drop when the
// connection it came from may be unusable and must not be reused.
Status CaughtPgErrorStatus(const char* what, bool* drop);

}  // namespace treaty
