#include "support/pg_participant.h"

#include <algorithm>

#include <boost/asio/executor_work_guard.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

namespace treaty::testing {

namespace {

using nlohmann::json;

// SQLSTATEs this participant tells apart.
constexpr const char* kUndefinedObject = "42704";  // no prepared transaction with that gid
constexpr const char* kCheckViolation = "23514";   // balance would go below zero

std::pair<int, std::string> Answer(int status, const std::string& message) {
  return {status, json{{"message", message}}.dump()};
}

// The barrier row of `xid` ("prepare", "commit", "abort"), or "" when none
// is committed.
std::string BarrierOp(pqxx::nontransaction& tx, const std::string& xid) {
  pqxx::result r = tx.exec("SELECT op FROM treaty_barrier WHERE xid = " + tx.quote(xid));
  return r.empty() ? std::string() : r[0][0].as<std::string>();
}

// Debits `amount` from `account` inside the open transaction of `tx`:
// "" when done, else why not (a no vote).
std::string Debit(pqxx::nontransaction& tx, const std::string& account, int64_t amount) {
  try {
    pqxx::result r = tx.exec("UPDATE accounts SET balance = balance - " + std::to_string(amount) +
                             " WHERE id = " + tx.quote(account));
    if (r.affected_rows() == 0) return "no account '" + account + "'";
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() == kCheckViolation) return "insufficient funds in '" + account + "'";
    throw;
  }
  return "";
}

}  // namespace

PgParticipant::PgParticipant(std::string db_uri, Mode mode)
    : db_uri_(std::move(db_uri)), mode_(mode) {}

PgParticipant::~PgParticipant() {
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    holds_.clear();
  }
  cv_.notify_all();
  {
    // Workers may still be spawned by a call arriving now; take them after
    // the server stopped.
    if (server_) server_->Stop();
    io_.stop();
    for (auto& t : io_threads_) t.join();
    std::lock_guard<std::mutex> lock(mu_);
    workers.swap(workers_);
  }
  for (auto& t : workers) t.join();
  server_.reset();
}

Status PgParticipant::Start() {
  try {
    pqxx::connection conn(db_uri_);
    pqxx::nontransaction tx(conn);
    tx.exec(
        "CREATE TABLE IF NOT EXISTS accounts (id text PRIMARY KEY, "
        "balance bigint NOT NULL CHECK (balance >= 0))");
    tx.exec("CREATE TABLE IF NOT EXISTS treaty_barrier (xid text PRIMARY KEY, op text NOT NULL)");
  } catch (const std::exception& e) {
    return Status::Unavailable(std::string("PgParticipant schema: ") + e.what());
  }
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  server_ = std::make_unique<HttpServer>(io_, options, [this](HttpRequest req, HttpResponder r) {
    Handle(std::move(req), std::move(r));
  });
  if (Status s = server_->Start(); !s.ok()) return s;
  auto work =
      std::make_shared<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
          io_.get_executor());
  for (int i = 0; i < 2; ++i) io_threads_.emplace_back([this, work] { io_.run(); });
  return Status::Ok();
}

std::string PgParticipant::Url(const std::string& branch, const std::string& op) const {
  return "http://127.0.0.1:" + std::to_string(server_->port()) + "/" + branch + "/" + op;
}

Status PgParticipant::SetBalance(const std::string& account, int64_t balance) {
  try {
    pqxx::connection conn(db_uri_);
    pqxx::nontransaction tx(conn);
    tx.exec("INSERT INTO accounts VALUES (" + tx.quote(account) + ", " + std::to_string(balance) +
            ") ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance");
  } catch (const std::exception& e) {
    return Status::Unavailable(e.what());
  }
  return Status::Ok();
}

Result<int64_t> PgParticipant::Balance(const std::string& account) const {
  try {
    pqxx::connection conn(db_uri_);
    pqxx::nontransaction tx(conn);
    pqxx::result r = tx.exec("SELECT balance FROM accounts WHERE id = " + tx.quote(account));
    if (r.empty()) return Status::NotFound("no account '" + account + "'");
    return r[0][0].as<int64_t>();
  } catch (const std::exception& e) {
    return Status::Unavailable(e.what());
  }
}

Result<std::vector<std::string>> PgParticipant::PreparedGids() const {
  try {
    pqxx::connection conn(db_uri_);
    pqxx::nontransaction tx(conn);
    pqxx::result r = tx.exec(
        "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() ORDER BY gid");
    std::vector<std::string> out;
    for (const auto& row : r) out.push_back(row[0].as<std::string>());
    return out;
  } catch (const std::exception& e) {
    return Status::Unavailable(e.what());
  }
}

void PgParticipant::Hold(const std::string& branch, const std::string& op) {
  std::lock_guard<std::mutex> lock(mu_);
  holds_.insert({branch, op});
}

void PgParticipant::Release(const std::string& branch, const std::string& op) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    holds_.erase({branch, op});
  }
  cv_.notify_all();
}

void PgParticipant::FailWith(const std::string& branch, const std::string& op, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (status == 0) {
    failures_.erase({branch, op});
  } else {
    failures_[{branch, op}] = status;
  }
}

std::vector<PgParticipant::Call> PgParticipant::Calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_;
}

int PgParticipant::CallCount(const std::string& gtid, const std::string& branch,
                             const std::string& op) const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(std::count_if(calls_.begin(), calls_.end(), [&](const Call& c) {
    return c.gtid == gtid && c.branch == branch && c.op == op;
  }));
}

bool PgParticipant::WaitFor(const std::function<bool(const std::vector<Call>&)>& pred,
                            std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return pred(calls_); });
}

void PgParticipant::Handle(HttpRequest req, HttpResponder respond) {
  Call call;
  auto body = json::parse(req.body, nullptr, false);
  std::string account;
  int64_t amount = 0;
  if (body.is_object()) {
    call.gtid = body.value("gtid", "");
    call.branch = body.value("branch", "");
    call.op = body.value("op", "");
    call.one_phase = body.value("one_phase", false);
    if (body.contains("payload") && body["payload"].is_object()) {
      account = body["payload"].value("account", "");
      amount = body["payload"].value("amount", int64_t{0});
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  const size_t index = calls_.size();
  calls_.push_back(call);
  cv_.notify_all();
  if (stopping_) return respond(HttpResponse{503, "application/json", "{}", {}});
  workers_.emplace_back([this, index, call, account, amount, respond = std::move(respond)] {
    std::pair<int, std::string> answer;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !holds_.count({call.branch, call.op}); });
      if (auto it = failures_.find({call.branch, call.op}); it != failures_.end()) {
        answer = Answer(it->second, "scripted failure");
      }
    }
    if (answer.first == 0) answer = Work(call, account, amount);
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls_[index].status = answer.first;
      calls_[index].answer = answer.second;
    }
    cv_.notify_all();
    respond(HttpResponse{answer.first, "application/json", answer.second, {}});
  });
}

std::pair<int, std::string> PgParticipant::Work(const Call& call, const std::string& account,
                                                int64_t amount) {
  if (call.gtid.empty() || call.branch.empty()) return Answer(400, "no gtid or branch");
  const std::string xid = call.gtid + ":" + call.branch;
  if (xid.find('\'') != std::string::npos || xid.size() >= 200) return Answer(400, "bad xid");
  const std::string gid = "'" + xid + "'";  // PREPARE TRANSACTION takes a plain literal
  try {
    pqxx::connection conn(db_uri_);
    pqxx::nontransaction tx(conn);
    tx.exec("SET lock_timeout = '2s'");
    if (call.op == "prepare") {
      pqxx::result prepared =
          tx.exec("SELECT 1 FROM pg_prepared_xacts WHERE database = current_database() AND gid = " +
                  tx.quote(xid));
      if (!prepared.empty()) return Answer(200, "already prepared");
      tx.exec("BEGIN");
      pqxx::result mine = tx.exec("INSERT INTO treaty_barrier VALUES (" + tx.quote(xid) +
                                  ", 'prepare') ON CONFLICT (xid) DO NOTHING RETURNING 1");
      if (mine.empty()) {
        tx.exec("ROLLBACK");
        const std::string op = BarrierOp(tx, xid);
        if (op == "prepare") return Answer(200, "already committed");
        return Answer(409, "branch already ended by " + op);
      }
      if (std::string no = Debit(tx, account, amount); !no.empty()) return Answer(409, no);
      tx.exec("PREPARE TRANSACTION " + gid);
      return Answer(200, "prepared");
    }
    if (call.op == "commit" && call.one_phase && mode_ == Mode::kStrict) {
      tx.exec("BEGIN");
      pqxx::result mine = tx.exec("INSERT INTO treaty_barrier VALUES (" + tx.quote(xid) +
                                  ", 'commit') ON CONFLICT (xid) DO NOTHING RETURNING 1");
      if (mine.empty()) {
        tx.exec("ROLLBACK");
        const std::string op = BarrierOp(tx, xid);
        if (op == "commit") return Answer(200, "already committed");
        return Answer(409, "branch already ended by " + op);
      }
      if (std::string no = Debit(tx, account, amount); !no.empty()) return Answer(409, no);
      tx.exec("COMMIT");
      return Answer(200, "committed in one phase");
    }
    if (call.op == "commit") {
      try {
        tx.exec("COMMIT PREPARED " + gid);
        return Answer(200, "committed");
      } catch (const pqxx::sql_error& e) {
        if (e.sqlstate() != kUndefinedObject) throw;
      }
      if (BarrierOp(tx, xid) == "prepare") return Answer(200, "already committed");
      if (mode_ == Mode::kNaive) return Answer(200, "nothing to commit");
      return Answer(409, "nothing prepared for " + xid);
    }
    if (call.op == "abort") {
      try {
        tx.exec("ROLLBACK PREPARED " + gid);
      } catch (const pqxx::sql_error& e) {
        if (e.sqlstate() != kUndefinedObject) throw;
      }
      // Remember the abort, so a late prepare of this branch votes no.
      tx.exec("INSERT INTO treaty_barrier VALUES (" + tx.quote(xid) +
              ", 'abort') ON CONFLICT (xid) DO NOTHING");
      const std::string op = BarrierOp(tx, xid);
      if (op == "abort") return Answer(200, "aborted");
      return Answer(409, "branch already ended by " + op);
    }
    return Answer(404, "unknown op '" + call.op + "'");
  } catch (const std::exception& e) {
    return Answer(503, e.what());
  }
}

}  // namespace treaty::testing
