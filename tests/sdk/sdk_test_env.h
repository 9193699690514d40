#pragma once

// Helpers of the SDK integration tests: fresh databases on the binary-wide
// throwaway PostgreSQL and direct SQL to check what the SDK did.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
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

// ROLLBACK PREPARED every prepared transaction of the database.
void RollbackAllPrepared(const std::string& uri);

// A real `treatyd` child process (HTTP on `port` or a free one, Thrift on
// another free one) on `store`, with short heartbeats, leases and backoffs.
// Start() waits until /readyz answers. The destructor SIGKILLs it.
class CoordinatorProcess {
 public:
  CoordinatorProcess(std::string store, std::string log_dir, int port = 0);
  ~CoordinatorProcess();
  // false (with a gtest failure and the log) if it does not become ready.
  bool Start(int timeout_ms = 30000);
  void Kill();                     // SIGKILL: a crash
  void Terminate();                // SIGTERM and wait: a graceful shutdown
  std::string url() const;         // http://127.0.0.1:PORT
  std::string thrift_url() const;  // thrift://127.0.0.1:PORT
  std::string Log() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A stand-in coordinator that only answers GET /v1/transactions/{gtid}
// with the state set by the test (404 for unknown gtids), and counts the
// requests. For PgResourceManager recovery tests. Thread-safe.
class FakeCoordinator {
 public:
  FakeCoordinator();
  ~FakeCoordinator();
  void SetState(const std::string& gtid, const std::string& state);
  std::string url() const;
  int lookups() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty::testing
