#include "store/pg_connection_pool.h"

#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include <spdlog/spdlog.h>

#include "common/text.h"
#include "store/write_rules.h"

namespace treaty {

namespace {

// SQLSTATE classes after which retrying later may succeed.
bool IsTransient(const std::string& state) {
  const std::string cls = state.substr(0, 2);
  return cls == "08" || cls == "57" || cls == "53" || cls == "40" || state == "25006";
}

// Classes after which the session itself may be unusable.
bool MayBreakConnection(const std::string& state) {
  const std::string cls = state.substr(0, 2);
  return cls == "08" || cls == "57" || state.empty();
}

// Whether `conninfo` (URI or key=value) names `keyword`: both forms spell
// parameter names literally (a value containing the word counts as setting
// it; then the user's conninfo is left as it is).
bool Names(const std::string& conninfo, const char* keyword) {
  return conninfo.find(keyword) != std::string::npos;
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

PgConnectionPool::~PgConnectionPool() {
  {
    MutexLock lock(&watch_mu_);
    watch_stop_ = true;
  }
  watch_cv_.NotifyAll();
  // No Watch() can run any more: the thread is read without the lock.
  if (watchdog_.joinable()) watchdog_.join();
}

std::string PgConnectionPool::WithConnectionDefaults(const std::string& conninfo,
                                                     int64_t call_timeout_ms) {
  std::vector<std::pair<std::string, std::string>> add;
  if (!Names(conninfo, "connect_timeout") && std::getenv("PGCONNECT_TIMEOUT") == nullptr) {
    const int64_t seconds = call_timeout_ms > 0 ? (call_timeout_ms + 999) / 1000 : 10;
    add.emplace_back("connect_timeout", std::to_string(std::max<int64_t>(seconds, 2)));
  }
  if (!Names(conninfo, "keepalives")) {
    add.emplace_back("keepalives", "1");
    add.emplace_back("keepalives_idle", "10");
    add.emplace_back("keepalives_interval", "5");
    add.emplace_back("keepalives_count", "3");
  }
  const bool uri = conninfo.rfind("postgresql://", 0) == 0 || conninfo.rfind("postgres://", 0) == 0;
  std::string out = conninfo;
  for (const auto& [key, value] : add) {
    if (uri) {
      out += (out.find('?') == std::string::npos ? "?" : "&") + key + "=" + value;
    } else {
      out += (out.empty() ? "" : " ") + key + "=" + value;
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
                                     " busy) within the store timeout");
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

uint64_t PgConnectionPool::Watch(int fd, Clock::time_point deadline) {
  MutexLock lock(&watch_mu_);
  if (!watchdog_.joinable()) watchdog_ = std::thread([this] { WatchdogLoop(); });
  const uint64_t id = next_watch_id_++;
  watched_[id] = Watched{fd, deadline, false};
  watch_cv_.NotifyAll();
  return id;
}

bool PgConnectionPool::Unwatch(uint64_t id) {
  MutexLock lock(&watch_mu_);
  auto it = watched_.find(id);
  if (it == watched_.end()) return false;
  const bool fired = it->second.fired;
  watched_.erase(it);
  return fired;
}

void PgConnectionPool::WatchdogLoop() {
  MutexLock lock(&watch_mu_);
  while (!watch_stop_) {
    auto next = Clock::time_point::max();
    const auto now = Clock::now();
    for (auto& [id, w] : watched_) {
      if (w.fired) continue;
      if (w.deadline <= now) {
        // The connection is still borrowed (Unwatch takes this lock before
        // the socket can be closed), so `fd` is still its socket.
        ::shutdown(w.fd, SHUT_RDWR);
        w.fired = true;
      } else {
        next = std::min(next, w.deadline);
      }
    }
    if (next == Clock::time_point::max()) {
      watch_cv_.Wait(&watch_mu_);
    } else {
      watch_cv_.WaitUntil(&watch_mu_, next);
    }
  }
}

Status PgConnectionPool::Run(const char* what, const Body& body) {
  std::unique_ptr<pqxx::connection> conn;
  bool acquired = false;  // Acquire() frees the slot itself when it throws
  bool drop = false;
  Status status;
  const auto fail = [&](StatusCode code, const std::string& msg) {
    status = Status(code, std::string(what) + ": " + Excerpt(msg, 512));
  };
  const int64_t timeout_ms = call_timeout_ms_.load();
  const auto deadline = timeout_ms > 0 ? Clock::now() + std::chrono::milliseconds(timeout_ms)
                                       : Clock::time_point::max();
  uint64_t watch = 0;
  bool timed_out = false;
  const auto unwatch = [&] {
    if (watch != 0) timed_out = Unwatch(watch);
    watch = 0;
  };
  try {
    Status refused;
    conn = Acquire(&refused, deadline);
    if (!conn) return Status(refused.code(), std::string(what) + ": " + refused.message());
    acquired = true;
    if (timeout_ms > 0) watch = Watch(conn->sock(), deadline);
    status = body(*conn);
    unwatch();
  } catch (const pqxx::broken_connection& e) {
    unwatch();
    drop = true;
    fail(StatusCode::kUnavailable, std::string("connection lost: ") + e.what());
  } catch (const pqxx::in_doubt_error& e) {
    unwatch();
    drop = true;
    fail(StatusCode::kUnavailable, std::string("commit outcome unknown: ") + e.what());
  } catch (const pqxx::sql_error& e) {
    unwatch();
    drop = MayBreakConnection(e.sqlstate());
    status = PgErrorStatus(what, e.sqlstate(), e.what());
  } catch (const std::exception& e) {  // pqxx::usage_error, conversion errors, bad_alloc
    unwatch();
    drop = true;
    fail(StatusCode::kInternal, e.what());
  }
  if (timed_out) {
    // The socket was shut down at the deadline. A body that still finished
    // OK got every answer it needed; anything else failed because the
    // database did not answer in time: outcome unknown.
    drop = true;
    if (!status.ok()) {
      status = Status::Unavailable(std::string(what) + ": no answer from the database within " +
                                   std::to_string(timeout_ms) +
                                   " ms (store timeout; connection closed, outcome unknown)");
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

Status PgErrorStatus(const char* what, const std::string& sqlstate, const std::string& message) {
  constexpr size_t kMaxMessageBytes = 512;
  const std::string text =
      std::string(what) + ": [" + sqlstate + "] " + Excerpt(message, kMaxMessageBytes);
  const std::string cls = sqlstate.substr(0, 2);
  if (IsTransient(sqlstate)) return Status::Unavailable(text);
  if (sqlstate == "23505") return Status::Conflict(text);
  if (cls == "22" || cls == "23" || cls == "54") return DataError(text);
  return Status::Internal(text);
}

}  // namespace treaty
