#pragma once

// Stores for integration tests: a binary-wide throwaway PostgreSQL started on
// first use, and fresh store URIs (a new SQLite file or a new database).

#include <string>

#include "support/mini_postgres.h"

namespace treaty::testing {

// The binary-wide PostgreSQL; nullptr (with a gtest failure) if it cannot start.
MiniPostgres* IntegrationPostgres();

// A fresh, empty store URI of `engine` ("sqlite" or "postgres"); SQLite files
// go under `dir`.
std::string FreshStoreUri(const std::string& engine, const std::string& dir);

}  // namespace treaty::testing
