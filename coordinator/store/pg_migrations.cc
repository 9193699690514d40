#include "store/pg_migrations.h"

#include <algorithm>
#include <set>

namespace treaty {

Status ApplyPgMigrations(pqxx::connection& conn, const PgMigrationLog& log,
                         const std::vector<Migration>& migrations) {
  pqxx::work tx(conn);
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", log.lock_key);
  tx.exec("CREATE TABLE IF NOT EXISTS " + log.table +
          " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at " + log.applied_at_column +
          ")");
  std::set<int64_t> applied;
  for (const auto& row : tx.exec("SELECT version FROM " + log.table)) {
    applied.insert(row[0].as<int64_t>());
  }
  if (!applied.empty()) {
    int64_t known = 0;
    for (const Migration& m : migrations) known = std::max<int64_t>(known, m.version);
    // Migrated by a newer release: apply nothing (rolled back).
    Status newer = CheckSchemaNotNewer(*applied.rbegin(), known, log.subject, log.program);
    if (!newer.ok()) return newer;
  }
  for (const Migration& m : migrations) {
    if (applied.count(m.version) != 0) continue;
    tx.exec(std::string(m.sql));
    tx.exec_params("INSERT INTO " + log.table + " (version, name, applied_at) VALUES ($1, $2, " +
                       log.applied_at_value + ")",
                   m.version, m.name);
  }
  tx.commit();
  return Status::Ok();
}

}  // namespace treaty
