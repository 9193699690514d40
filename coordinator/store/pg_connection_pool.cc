#include "store/pg_connection_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include "common/socket_deadline.h"

namespace treaty {

namespace {

// A conninfo value, quoted for a key=value conninfo: in single quotes, with
// backslash and single quote escaped by a backslash.
std::string QuotedValue(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  return out + "'";
}

PgPoolOptions SizedOptions(int size) {
  PgPoolOptions options;
  options.size = size;
  return options;
}

}  // namespace

PgConnectionPool::PgConnectionPool(std::string conninfo, int size)
    : PgConnectionPool(std::move(conninfo), SizedOptions(size)) {}

PgConnectionPool::PgConnectionPool(std::string conninfo, PgPoolOptions options)
    : conninfo_(std::move(conninfo)),
      size_(options.size < 1 ? 1 : options.size),
      options_(std::move(options)),
      call_timeout_ms_(options_.call_timeout_ms < 0 ? 0 : options_.call_timeout_ms) {}

PgConnectionPool::~PgConnectionPool() = default;

std::optional<PgConnectionPool::ConninfoPairs> PgConnectionPool::ParseConninfo(
    const std::string& conninfo, std::string* error) {
  char* message = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &message);
  if (options == nullptr) {
    *error = message != nullptr ? message : "out of memory";
    PQfreemem(message);
    return std::nullopt;
  }
  ConninfoPairs given;
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) given.emplace_back(o->keyword, o->val);
  }
  PQconninfoFree(options);
  return given;
}

std::string PgConnectionPool::WithConnectionDefaults(const std::string& conninfo,
                                                     int64_t call_timeout_ms) {
  // Both forms (URI and key=value), as libpq reads them.
  std::string error;
  std::optional<ConninfoPairs> parsed = ParseConninfo(conninfo, &error);
  if (!parsed) return conninfo;  // not a conninfo libpq accepts: connecting reports why
  const ConninfoPairs& given = *parsed;
  const auto absent = [&](const char* keyword) {
    return std::none_of(given.begin(), given.end(),
                        [&](const auto& kv) { return kv.first == keyword; });
  };
  ConninfoPairs add;
  if (absent("connect_timeout") && std::getenv("PGCONNECT_TIMEOUT") == nullptr) {
    const int64_t seconds = call_timeout_ms > 0 ? (call_timeout_ms + 999) / 1000 : 10;
    add.emplace_back("connect_timeout", std::to_string(std::max<int64_t>(seconds, 2)));
  }
  static constexpr const char* kKeepalives[][2] = {{"keepalives", "1"},
                                                   {"keepalives_idle", "10"},
                                                   {"keepalives_interval", "5"},
                                                   {"keepalives_count", "3"}};
  for (const auto& [keyword, value] : kKeepalives) {
    if (absent(keyword)) add.emplace_back(keyword, value);
  }
  std::string out;
  const ConninfoPairs* lists[] = {&given, &add};
  for (const ConninfoPairs* list : lists) {
    for (const auto& [keyword, value] : *list) {
      out += (out.empty() ? "" : " ") + keyword + "=" + QuotedValue(value);
    }
  }
  return out;
}

int64_t PgConnectionPool::NowMs() const {
  if (options_.now_ms) return options_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<pqxx::connection> PgConnectionPool::Acquire(Status* refused,
                                                            Clock::time_point deadline) {
  {
    MutexLock lock(&mu_);
    if (!cv_.WaitUntil(&mu_, deadline,
                       [&]() TREATY_REQUIRES(mu_) { return !idle_.empty() || in_use_ < size_; })) {
      *refused = Status::Unavailable("no free database connection (all " + std::to_string(size_) +
                                     " busy) within the call deadline");
      return nullptr;
    }
    if (!idle_.empty()) {
      ++in_use_;
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return conn;
    }
    if (reconnect_not_before_ms_ != 0) {
      const int64_t wait_ms = reconnect_not_before_ms_ - NowMs();
      if (wait_ms > 0) {
        *refused = Status::Unavailable("database unreachable; not reconnecting for another " +
                                       std::to_string(wait_ms) + " ms");
        return nullptr;
      }
    }
    ++in_use_;
  }
  // Open outside the lock: connecting may take a while.
  if (options_.on_connect_attempt) options_.on_connect_attempt();
  try {
    const int64_t call_timeout_ms = call_timeout_ms_.load();
    auto conn =
        std::make_unique<pqxx::connection>(WithConnectionDefaults(conninfo_, call_timeout_ms));
    // See the header: a session of ours idle inside a transaction this long
    // is ended by the server. A SET, not the conninfo's `options`, so that
    // the operator's conninfo, PGOPTIONS and service file stay as they are.
    pqxx::nontransaction(*conn).exec0("SET idle_in_transaction_session_timeout = " +
                                      std::to_string(call_timeout_ms > 0
                                                         ? call_timeout_ms
                                                         : kIdleInTransactionMsWithoutDeadline));
    MutexLock lock(&mu_);
    reconnect_not_before_ms_ = 0;
    reconnect_backoff_ms_ = 0;
    return conn;
  } catch (...) {
    {
      MutexLock lock(&mu_);
      reconnect_backoff_ms_ =
          reconnect_backoff_ms_ == 0
              ? options_.reconnect_backoff_initial_ms
              : std::min(reconnect_backoff_ms_ * 2, options_.reconnect_backoff_max_ms);
      reconnect_not_before_ms_ = NowMs() + reconnect_backoff_ms_;
    }
    Release(nullptr);
    throw;
  }
}

void PgConnectionPool::Release(std::unique_ptr<pqxx::connection> conn) {
  {
    MutexLock lock(&mu_);
    --in_use_;
    if (conn) idle_.push_back(std::move(conn));
  }
  cv_.NotifyOne();
}

Status PgConnectionPool::Run(const char* what, const Body& body) {
  std::unique_ptr<pqxx::connection> conn;
  bool acquired = false;  // Acquire() frees the slot itself when it throws
  bool drop = false;
  Status status;
  const int64_t timeout_ms = call_timeout_ms_.load();
  const auto deadline = timeout_ms > 0 ? Clock::now() + std::chrono::milliseconds(timeout_ms)
                                       : Clock::time_point::max();
  // The call deadline: the socket is shut down when it passes, so a body
  // blocked on a database that does not answer returns (SocketDeadline).
  std::optional<SocketDeadline> limit;
  bool timed_out = false;
  const auto unwatch = [&] {
    if (limit) timed_out = limit->Release();
    limit.reset();
  };
  try {
    Status refused;
    conn = Acquire(&refused, deadline);
    if (!conn) return Status(refused.code(), std::string(what) + ": " + refused.message());
    acquired = true;
    if (timeout_ms > 0) limit.emplace(conn->sock(), deadline);
    status = body(*conn);
    unwatch();
  } catch (...) {
    unwatch();
    status = CaughtPgErrorStatus(what, &drop);
  }
  if (timed_out) {
    // The socket was shut down at the deadline. A body that still finished
    // OK got every answer it needed; anything else failed because the
    // database did not answer in time: outcome unknown.
    drop = true;
    if (!status.ok()) {
      status = Status::Unavailable(std::string(what) + ": no answer from the database within " +
                                   std::to_string(timeout_ms) +
                                   " ms (call deadline; connection closed, outcome unknown)");
    }
  }
  if (conn && (drop || !conn->is_open())) {
    spdlog::warn("postgres: dropping connection after {}", status.ToString());
    try {
      conn->disconnect();
    } catch (...) {
    }
    conn.reset();
  }
  if (acquired) Release(std::move(conn));
  return status;
}

}  // namespace treaty
