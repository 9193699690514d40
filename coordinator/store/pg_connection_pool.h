#pragma once

// PgConnectionPool: a small pool of libpqxx connections, shared by the
// coordinator's PgLogStore and the participant SDK (Barrier,
// PgResourceManager), and the place where libpqxx exceptions become Status
// (with store/pg_error.h): no library exception crosses a module boundary.
// Part of treaty_pg, which the SDK links privately: includes libpqxx, so it
// never appears in a public header.
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
//
// Deadline: with `call_timeout_ms` > 0 every Run() returns within about that
// long (plus libpq's connect_timeout when it must open a connection), however
// the database behaves (a COMMIT waiting for a synchronous standby that never
// answers, a stopped server). Waiting for a free connection is bounded by the
// deadline (then Unavailable). A body still running at the deadline has its
// socket shut down (shutdown(2)) by the process's watchdog thread
// (SocketDeadline, common/socket_deadline.h), so the blocked libpq
// call returns as a broken connection: the call fails with Unavailable and
// the connection is dropped. For a COMMIT this means "outcome unknown", as
// after any lost connection; the deadline deliberately does not use
// statement_timeout or a query cancel, which PostgreSQL answers, during a
// synchronous-replication wait, with a WARNING and a COMMIT reported as done
// although it is not replicated.
//
// Connection defaults: unless the conninfo (or PGCONNECT_TIMEOUT) sets them,
// connect_timeout (the deadline rounded up to seconds, at least 2 s; 10 s
// without a deadline) and TCP keepalives (keepalives 1, idle 10 s, interval
// 5 s, 3 probes; each only where absent) are added, so opening a connection
// to a stopped server is bounded too. The given conninfo, URI or key=value,
// is read with libpq's own parser (PQconninfoParse) and the connection opened
// with the equivalent key=value conninfo, so every form libpq accepts keeps
// its meaning (a URI ending in "?", one with a query, quoted values,
// multi-host lists).
// Every new session also gets SET idle_in_transaction_session_timeout = the
// deadline at connect time (10 s without one; the SET fails the connect):
// PostgreSQL ends a session of ours that stays idle inside a transaction
// that long, rolling it back. Our transactions never wait between
// statements, so this only ends those of a coordinator that stopped
// mid-transaction (SIGSTOP, a paused VM): otherwise its row locks would
// stay held, and ClaimOrphans (FOR UPDATE SKIP LOCKED) would skip those
// transactions, so no peer could adopt them until it woke up.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "common/mutex.h"
#include "store/pg_error.h"
#include "treaty/status.h"

namespace treaty {

struct PgPoolOptions {
  int size = 4;  // most connections open at a time (at least 1)
  int64_t reconnect_backoff_initial_ms = 50;
  int64_t reconnect_backoff_max_ms = 500;
  // Deadline of every Run(), in ms (see above); 0: none. Changeable later
  // with set_call_timeout_ms().
  int64_t call_timeout_ms = 0;
  // Monotonic milliseconds; defaults to std::chrono::steady_clock.
  std::function<int64_t()> now_ms;
  // Called before every attempt to open a connection (tests count them).
  std::function<void()> on_connect_attempt;
};

class PgConnectionPool {
 public:
  // idle_in_transaction_session_timeout, in ms, of a pool without a deadline.
  static constexpr int64_t kIdleInTransactionMsWithoutDeadline = 10000;

  PgConnectionPool(std::string conninfo, int size);
  PgConnectionPool(std::string conninfo, PgPoolOptions options);
  ~PgConnectionPool();

  using Body = std::function<Status(pqxx::connection&)>;
  // Borrows a connection, runs `body` on it and returns its Status. Every
  // exception thrown inside is caught here and mapped by CaughtPgError
  // (store/pg_error.h, which has the whole table): broken connections, failed
  // libpq calls and server shutdown/overload/serialization failures ->
  // Unavailable (the connection dropped only when it may be unusable; also,
  // without trying, while the reconnect backoff window is open), other SQL
  // errors as PgErrorStatus maps them, libpqxx's own result errors and
  // anything else -> Internal. `what` names the operation in messages. A body must leave its
  // connection outside any transaction block (a pqxx transaction object does
  // so by itself; a nontransaction that sent BEGIN must end the block, also
  // when it throws).
  // Blocks on database I/O and while all connections are busy, at most until
  // the call's deadline (call_timeout_ms; then Unavailable, see above).
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
  // The deadline of calls that start from now on; 0: none. Thread-safe.
  void set_call_timeout_ms(int64_t ms) { call_timeout_ms_.store(ms < 0 ? 0 : ms); }
  int64_t call_timeout_ms() const { return call_timeout_ms_.load(); }

  // `conninfo` (URI or key=value) as a key=value conninfo with
  // connect_timeout and keepalives added where it sets none (see above).
  // A conninfo libpq cannot parse is returned as it is (connecting then
  // reports the error). Exposed for tests.
  static std::string WithConnectionDefaults(const std::string& conninfo, int64_t call_timeout_ms);

  // The keyword/value pairs `conninfo` (a URI or key=value text) sets, read
  // with libpq's own parser (PQconninfoParse: no environment, service file
  // or compiled-in defaults filled in), in libpq's keyword order; nullopt
  // with `*error` set to libpq's message when libpq cannot parse it. No I/O;
  // thread-safe.
  using ConninfoPairs = std::vector<std::pair<std::string, std::string>>;
  static std::optional<ConninfoPairs> ParseConninfo(const std::string& conninfo,
                                                    std::string* error);

 private:
  using Clock = std::chrono::steady_clock;
  // Borrows an idle connection or opens one (may throw pqxx exceptions).
  // Returns null, with *refused set and no slot held, while the reconnect
  // backoff window is open or when no connection is free by `deadline`
  // (Clock::time_point::max(): none).
  std::unique_ptr<pqxx::connection> Acquire(Status* refused, Clock::time_point deadline);
  // Returns a connection, or just frees its slot when it is null (dropped).
  void Release(std::unique_ptr<pqxx::connection> conn) TREATY_EXCLUDES(mu_);

  int64_t NowMs() const;

  const std::string conninfo_;
  const int size_;
  const PgPoolOptions options_;
  Mutex mu_;
  CondVar cv_;  // a slot or an idle connection became free
  std::vector<std::unique_ptr<pqxx::connection>> idle_ TREATY_GUARDED_BY(mu_);
  int in_use_ TREATY_GUARDED_BY(mu_) = 0;
  int64_t reconnect_not_before_ms_ TREATY_GUARDED_BY(mu_) = 0;  // 0: no window
  int64_t reconnect_backoff_ms_ TREATY_GUARDED_BY(mu_) = 0;     // 0: no failure yet
  std::atomic<int64_t> call_timeout_ms_;
};

}  // namespace treaty
