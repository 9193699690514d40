#pragma once

// Helpers of the SDK integration tests: fresh databases on the binary-wide
// throwaway PostgreSQL and direct SQL to check what the SDK did.
// Include coordinator/test-support headers before treaty/ headers (see
// participant-sdk/include/treaty/status.h on the inline namespace).

#include <cstdint>
#include <string>

namespace treaty::testing {

// A new empty database on IntegrationPostgres(); "" (with a gtest failure)
// if it cannot be made.
std::string FreshDatabase(const std::string& prefix);
// Runs `sql` in its own transaction; the first column of the first row as
// an integer (0 when there is no row). Fails the test on SQL errors.
int64_t QueryInt(const std::string& uri, const std::string& sql);
// Runs statements in one transaction; fails the test on SQL errors.
void ExecSql(const std::string& uri, const std::string& sql);

}  // namespace treaty::testing
