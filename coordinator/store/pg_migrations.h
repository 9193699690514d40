#pragma once

// ApplyPgMigrations: the one PostgreSQL migration runner (target treaty_pg),
// used by the coordinator's PgLogStore (migrations/postgres/, recorded in
// schema_migrations) and by the participant SDK (migrations/participant/,
// recorded in treaty_participant_migrations).
//
// In ONE transaction: takes the transaction-scoped advisory lock `lock_key`
// (so any number of processes may migrate at once: they serialize, and each
// later one finds the work done; released by COMMIT/ROLLBACK even if the
// session dies), creates the version table if it is missing, refuses a
// schema newer than `migrations` know (CheckSchemaNotNewer, nothing applied),
// and applies each migration whose version is not recorded, in the order
// given, recording it. All or nothing.
//
// Version table: (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
// applied_at <applied_at_column>), one row per applied migration.

#include <cstdint>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "store/migrations.h"
#include "treaty/status.h"

namespace treaty {

// Where a schema's owner records its migrations, and what a refusal names.
struct PgMigrationLog {
  std::string table;              // the version table (a plain SQL identifier)
  std::string applied_at_column;  // type and constraints of its applied_at column
  std::string applied_at_value;   // SQL expression stored in applied_at
  int64_t lock_key = 0;           // pg_advisory_xact_lock key of this owner
  std::string subject;            // what holds the schema, e.g. "the log"
  std::string program;            // the binary to upgrade, e.g. "treatyd"
};

// Applies `migrations` (ascending versions) on `conn` as described above.
// OK, or Unavailable when the recorded schema is newer. Throws what libpqxx
// throws: call it inside PgConnectionPool::Run. Blocks on the database
// (also while another process holds the lock).
[[nodiscard]] Status ApplyPgMigrations(pqxx::connection& conn, const PgMigrationLog& log,
                                       const std::vector<Migration>& migrations);

}  // namespace treaty
