#include "store/pg_connection_pool.h"

#include <algorithm>
#include <chrono>

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
      options_(std::move(options)) {}

PgConnectionPool::~PgConnectionPool() = default;

int64_t PgConnectionPool::NowMs() const {
  if (options_.now_ms) return options_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<pqxx::connection> PgConnectionPool::Acquire(Status* refused) {
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !idle_.empty() || in_use_ < size_; });
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
    auto conn = std::make_unique<pqxx::connection>(conninfo_);
    std::lock_guard lock(mu_);
    reconnect_not_before_ms_ = 0;
    reconnect_backoff_ms_ = 0;
    return conn;
  } catch (...) {
    {
      std::lock_guard lock(mu_);
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
    std::lock_guard lock(mu_);
    --in_use_;
    if (conn) idle_.push_back(std::move(conn));
  }
  cv_.notify_one();
}

Status PgConnectionPool::Run(const char* what, const Body& body) {
  std::unique_ptr<pqxx::connection> conn;
  bool acquired = false;  // Acquire() frees the slot itself when it throws
  bool drop = false;
  Status status;
  const auto fail = [&](StatusCode code, const std::string& msg) {
    status = Status(code, std::string(what) + ": " + Excerpt(msg, 512));
  };
  try {
    Status refused;
    conn = Acquire(&refused);
    if (!conn) return Status(refused.code(), std::string(what) + ": " + refused.message());
    acquired = true;
    status = body(*conn);
  } catch (const pqxx::broken_connection& e) {
    drop = true;
    fail(StatusCode::kUnavailable, std::string("connection lost: ") + e.what());
  } catch (const pqxx::in_doubt_error& e) {
    drop = true;
    fail(StatusCode::kUnavailable, std::string("commit outcome unknown: ") + e.what());
  } catch (const pqxx::sql_error& e) {
    drop = MayBreakConnection(e.sqlstate());
    status = PgErrorStatus(what, e.sqlstate(), e.what());
  } catch (const std::exception& e) {  // pqxx::usage_error, conversion errors, bad_alloc
    drop = true;
    fail(StatusCode::kInternal, e.what());
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
