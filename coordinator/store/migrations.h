#pragma once

// Schema migrations compiled into the binary from migrations/<engine>/*.sql
// (see embed_migrations.cmake). Files are named NNNN_name.sql, numbered and
// forward-only: a released file is never edited, changes go into a new one.
// Each engine records applied versions in `schema_migrations`.

#include <string>
#include <string_view>
#include <vector>

namespace treaty {

struct Migration {
  int version = 0;       // NNNN of the file name
  std::string name;      // the rest of the file name, without ".sql"
  std::string_view sql;  // whole file; several statements
};

// The migrations of `engine` ("sqlite" or "postgres") in ascending version
// order; empty for an unknown engine. Thread-safe, no I/O.
std::vector<Migration> EmbeddedMigrations(std::string_view engine);

}  // namespace treaty
