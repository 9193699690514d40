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

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "common/status.h"

namespace treaty {

class PgConnectionPool {
 public:
  PgConnectionPool(std::string conninfo, int size);
  ~PgConnectionPool();

  using Body = std::function<Status(pqxx::connection&)>;
  // Borrows a connection, runs `body` on it and returns its Status. Every
  // exception thrown inside is caught here: broken connections and server
  // shutdown/overload/serialization failures -> Unavailable (connection
  // dropped when it may be unusable), integrity violations -> Conflict,
  // anything else -> Internal. `what` names the operation in messages.
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
  std::unique_ptr<pqxx::connection> Acquire();
  // Returns a connection, or just frees its slot when it is null (dropped).
  void Release(std::unique_ptr<pqxx::connection> conn);

  const std::string conninfo_;
  const int size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;  // guarded by mu_
  int in_use_ = 0;                                       // guarded by mu_
};

// PostgreSQL array literal of `items` for a `$n::text[]` parameter.
std::string PgTextArray(const std::vector<std::string>& items);

}  // namespace treaty
