#include "store/pg_connection_pool.h"

#include <spdlog/spdlog.h>

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

}  // namespace

PgConnectionPool::PgConnectionPool(std::string conninfo, int size)
    : conninfo_(std::move(conninfo)), size_(size < 1 ? 1 : size) {}

PgConnectionPool::~PgConnectionPool() = default;

std::unique_ptr<pqxx::connection> PgConnectionPool::Acquire() {
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !idle_.empty() || in_use_ < size_; });
    ++in_use_;
    if (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return conn;
    }
  }
  // Open outside the lock: connecting may take a while.
  try {
    return std::make_unique<pqxx::connection>(conninfo_);
  } catch (...) {
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
    status = Status(code, std::string(what) + ": " + msg);
  };
  try {
    conn = Acquire();
    acquired = true;
    status = body(*conn);
  } catch (const pqxx::broken_connection& e) {
    drop = true;
    fail(StatusCode::kUnavailable, std::string("connection lost: ") + e.what());
  } catch (const pqxx::in_doubt_error& e) {
    drop = true;
    fail(StatusCode::kUnavailable, std::string("commit outcome unknown: ") + e.what());
  } catch (const pqxx::sql_error& e) {
    const std::string& state = e.sqlstate();
    drop = MayBreakConnection(state);
    if (IsTransient(state)) {
      fail(StatusCode::kUnavailable, e.what());
    } else if (state.rfind("23", 0) == 0) {
      fail(StatusCode::kConflict, e.what());
    } else {
      fail(StatusCode::kInternal, "[" + state + "] " + e.what());
    }
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

std::string PgTextArray(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out.push_back(',');
    out.push_back('"');
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

}  // namespace treaty
