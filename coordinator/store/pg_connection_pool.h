#pragma once

// PgConnectionPool: a small pool of libpqxx connections for PgLogStore, and
// the ONE place where libpqxx exceptions become Status (STYLE.md rule 3).
// Private to treaty_store (includes libpqxx).
//
// Connections are opened lazily, at most `size` at a time; a caller waits for
// a free one. A connection that broke (server restart, fail-over, network)
// is dropped, the call fails with Unavailable, and the next call opens a
// fresh one, so libpq's multi-host conninfo with target_session_attrs picks
// the current primary again. Thread-safe.
//
// Reconnect backoff: while the database is down, calls do not each try to
// connect. After a failed connect, calls that need a new connection within
// a window fail fast with Unavailable without trying; the window starts at
// `reconnect_backoff_initial_ms` and doubles with each further failed
// connect up to `reconnect_backoff_max_ms`. The first successful connect
// resets it. So once the database is back, calls succeed again within at
// most `reconnect_backoff_max_ms` (2 s by default). Idle pooled connections
// are still used during a window.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "common/status.h"

namespace treaty {

struct PgPoolOptions {
  int size = 4;  // most connections open at a time (at least 1)
  int64_t reconnect_backoff_initial_ms = 50;
  int64_t reconnect_backoff_max_ms = 500;
  // Monotonic milliseconds; defaults to std::chrono::steady_clock.
  std::function<int64_t()> now_ms;
  // Called before every attempt to open a connection (tests count them).
  std::function<void()> on_connect_attempt;
};

class PgConnectionPool {
 public:
  PgConnectionPool(std::string conninfo, int size);
  PgConnectionPool(std::string conninfo, PgPoolOptions options);
  ~PgConnectionPool();

  using Body = std::function<Status(pqxx::connection&)>;
  // Borrows a connection, runs `body` on it and returns its Status. Every
  // exception thrown inside is caught here: broken connections and server
  // shutdown/overload/serialization failures -> Unavailable (connection
  // dropped when it may be unusable; also, without trying, while the
  // reconnect backoff window is open), other SQL errors as PgErrorStatus
  // maps them, anything else -> Internal. `what` names the operation in
  // messages.
  // Blocks on database I/O and while all connections are busy.
  [[nodiscard]] Status Run(const char* what, const Body& body);

  // Run() for a body that produces a value of type T.
  template <typename T, typename Fn>
  [[nodiscard]] Result<T> Get(const char* what, Fn&& fn) {
    T out{};
    Status s = Run(what, [&](pqxx::connection& c) { return fn(c, &out); });
    if (!s.ok()) return s;
    return out;
  }

  int size() const { return size_; }

 private:
  // Borrows an idle connection or opens one (may throw pqxx exceptions).
  // Returns null, with *refused set and no slot held, while the reconnect
  // backoff window is open.
  std::unique_ptr<pqxx::connection> Acquire(Status* refused);
  // Returns a connection, or just frees its slot when it is null (dropped).
  void Release(std::unique_ptr<pqxx::connection> conn);

  int64_t NowMs() const;

  const std::string conninfo_;
  const int size_;
  const PgPoolOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;  // guarded by mu_
  int in_use_ = 0;                                       // guarded by mu_
  int64_t reconnect_not_before_ms_ = 0;                  // guarded by mu_; 0: no window
  int64_t reconnect_backoff_ms_ = 0;                     // guarded by mu_; 0: no failure yet
};

// The Status of a PostgreSQL error, by SQLSTATE (the one mapping, also used
// where a batch catches the failure of one write):
//  - classes 08, 57, 53, 40 and 25006 (connection, shutdown, resources,
//    serialization, read-only fail-over) -> Unavailable: retrying may help;
//  - 23505 unique violation -> Conflict;
//  - classes 22 (data exception, e.g. invalid UTF-8), 23 (other integrity
//    violations) and 54 (program limits, e.g. an index row too large) -> a
//    data error (store/write_rules.h): the statement's data is wrong,
//    retrying cannot help;
//  - anything else -> Internal.
// The message names `what`, the SQLSTATE and a valid-UTF-8 excerpt of
// `message`.
Status PgErrorStatus(const char* what, const std::string& sqlstate, const std::string& message);

}  // namespace treaty
