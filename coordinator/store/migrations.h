#pragma once

// Schema migrations compiled into the binary from migrations/<engine>/*.sql
// (treaty_embed_files in cmake/EmbedFiles.cmake). Files are named NNNN_name.sql, numbered and
// forward-only: a released file is never edited, changes go into a new one.
// Each engine records applied versions in `schema_migrations` (PostgreSQL
// through ApplyPgMigrations, store/pg_migrations.h, the runner the
// participant SDK uses for migrations/participant/ too).
//
// A log migrated by a newer release (schema_migrations holds a version above
// the newest compiled in) is refused by Migrate() and CheckReady(): this
// binary cannot know what the newer migrations changed.
//
// Migration and CheckSchemaNotNewer are header-only, shared with treaty_pg;
// EmbeddedMigrations is treaty_store's (generated embedded_migrations.cc).

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "treaty/status.h"

namespace treaty {

struct Migration {
  int version = 0;       // NNNN of the file name
  std::string name;      // the rest of the file name, without ".sql"
  std::string_view sql;  // whole file; several statements
};

// The migrations of `engine` ("sqlite" or "postgres") in ascending version
// order; empty for an unknown engine. Thread-safe, no I/O.
std::vector<Migration> EmbeddedMigrations(std::string_view engine);

// The newest version among EmbeddedMigrations(engine); 0 for none.
inline int64_t LatestMigrationVersion(std::string_view engine) {
  int64_t latest = 0;
  for (const Migration& m : EmbeddedMigrations(engine))
    latest = std::max<int64_t>(latest, m.version);
  return latest;
}

// OK when a schema whose newest applied migration is `applied` can be used
// by a binary whose newest compiled-in migration is `known`; otherwise
// Unavailable naming both versions, what holds the schema (`subject`, e.g.
// "the log") and the binary to upgrade (`program`, e.g. "treatyd").
inline Status CheckSchemaNotNewer(int64_t applied, int64_t known,
                                  std::string_view subject = "the log",
                                  std::string_view program = "treatyd") {
  if (applied <= known) return Status::Ok();
  return Status::Unavailable(std::string(subject) + "'s schema is at version " +
                             std::to_string(applied) + " but this " + std::string(program) +
                             " knows versions up to " + std::to_string(known) +
                             ": a newer release migrated it; upgrade " + std::string(program));
}

}  // namespace treaty
