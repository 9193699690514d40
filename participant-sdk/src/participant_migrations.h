#pragma once

// The SDK's own schema in the participant's database
// (migrations/participant/NNNN_name.sql, compiled in; treaty_barrier, see
// docs/barrier.md), applied by Barrier::Open and PgResourceManager::Open
// through the shared runner ApplyPgMigrations (store/pg_migrations.h),
// recorded in treaty_participant_migrations under the advisory lock
// 7526752110455754864 ("treaty_p" in ASCII), so many processes may start at
// once.
//
// A database migrated by a newer SDK (treaty_participant_migrations holds a
// version above the newest compiled in) is refused, as the coordinator
// refuses a newer log: this SDK cannot know what the newer migrations
// changed in the barrier's rules, and exactly-once holds only while every
// writer of treaty_barrier follows the same ones.

#include <vector>

#include "store/migrations.h"
#include "store/pg_connection_pool.h"
#include "treaty/status.h"

namespace treaty {
inline namespace sdk {

// In ascending version order. Thread-safe, no I/O.
std::vector<Migration> ParticipantMigrations();

// Applies the pending ones on a connection of `pool`. OK; Unavailable when
// the database is unreachable or its schema is newer (nothing applied);
// another error of the pool's mapping. Blocks.
[[nodiscard]] Status MigrateParticipantSchema(PgConnectionPool& pool);

}  // namespace sdk
}  // namespace treaty
