// bank_service: one bank's accounts in its own PostgreSQL database, taking
// part in Treaty 2PC transfers through the SDK's PgResourceManager.
//   POST /account/{prepare,commit,abort}   payload {"account": N, "amount": +/-M}
// Prepare adds `amount` to the account inside a prepared PostgreSQL
// transaction and votes no when the balance would go negative.
// --fail-rate injects transient failures (HTTP 500) before or after the
// real work, so that the coordinator retries and redelivers.
//
// Usage: bank_service --port 7601 --db postgresql://.../bank_a \
//          --coordinator http://127.0.0.1:7480 [--accounts 10 --initial 1000] [--fail-rate 0.2]

#include <signal.h>

#include <iostream>
#include <mutex>
#include <random>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "treaty/barrier.h"
#include "treaty/pg_resource_manager.h"

namespace {

using nlohmann::json;

// Wraps a resource manager and fails some calls on purpose: before the work
// (nothing happened) or after it (the work happened but the answer is lost).
class FlakyResourceManager : public treaty::ResourceManager {
 public:
  FlakyResourceManager(std::shared_ptr<treaty::ResourceManager> inner, double rate)
      : inner_(std::move(inner)), rate_(rate) {}

  treaty::Result<treaty::Vote> Prepare(const treaty::CallContext& ctx) override {
    if (Roll()) return treaty::Status::Unavailable("injected failure before prepare");
    auto v = inner_->Prepare(ctx);
    if (Roll()) return treaty::Status::Unavailable("injected failure after prepare");
    return v;
  }
  treaty::Status Commit(const treaty::CallContext& ctx) override {
    if (Roll()) return treaty::Status::Unavailable("injected failure before commit");
    auto s = inner_->Commit(ctx);
    if (s.ok() && Roll()) return treaty::Status::Unavailable("injected failure after commit");
    return s;
  }
  treaty::Status Abort(const treaty::CallContext& ctx) override {
    if (Roll()) return treaty::Status::Unavailable("injected failure before abort");
    auto s = inner_->Abort(ctx);
    if (s.ok() && Roll()) return treaty::Status::Unavailable("injected failure after abort");
    return s;
  }

 private:
  bool Roll() {
    std::lock_guard<std::mutex> l(mu_);
    return std::uniform_real_distribution<double>(0, 1)(rng_) < rate_;
  }
  std::shared_ptr<treaty::ResourceManager> inner_;
  double rate_;
  std::mutex mu_;
  std::mt19937 rng_{std::random_device{}()};
};

// Prepare's work: move `amount` on `account`; a negative balance votes no.
treaty::Result<treaty::Vote> ApplyTransfer(treaty::SqlTx& tx, const treaty::CallContext& ctx) {
  json p = json::parse(ctx.payload, nullptr, false);
  if (p.is_discarded() || !p.contains("account") || !p.contains("amount")) {
    return treaty::Status::BusinessFailure("payload must be {\"account\", \"amount\"}");
  }
  // Two transfers in opposite directions can each hold, prepared, the row the
  // other needs in the other bank: a distributed deadlock that PostgreSQL
  // cannot see. Wait briefly for a busy account, then vote no.
  if (auto s = tx.Exec("SET LOCAL lock_timeout = '300ms'"); !s.ok()) return s.status();
  auto r = tx.Exec(
      "UPDATE accounts SET balance = balance + $2::bigint WHERE id = $1::int RETURNING balance",
      {std::to_string(p["account"].get<int64_t>()), std::to_string(p["amount"].get<int64_t>())});
  if (!r.ok() && r.status().code() == treaty::StatusCode::kUnavailable &&
      r.status().message().find("55P03") != std::string::npos) {
    return treaty::Vote::kNo;  // account busy (lock_timeout)
  }
  if (!r.ok()) return r.status();
  if (r->rows.empty()) return treaty::Status::BusinessFailure("no such account");
  if (r->rows[0].Int(0) < 0) return treaty::Vote::kNo;  // insufficient funds
  return treaty::Vote::kYes;
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, ',');) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bank_service: a bank's accounts as a Treaty 2PC participant"};
  int port = 7601, accounts = 10;
  int64_t initial = 1000;
  double fail_rate = 0;
  std::string db, coordinators = "http://127.0.0.1:7480";
  app.add_option("--port", port, "HTTP port on 127.0.0.1 (0 = any)")->capture_default_str();
  app.add_option("--db", db, "PostgreSQL URI of this bank's database")->required();
  app.add_option("--coordinator", coordinators, "Coordinator URL(s), comma-separated")
      ->capture_default_str();
  app.add_option("--accounts", accounts, "Accounts to create if the table is empty")
      ->capture_default_str();
  app.add_option("--initial", initial, "Initial balance of each new account")
      ->capture_default_str();
  app.add_option("--fail-rate", fail_rate, "Probability of an injected transient failure")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  // Block SIGTERM/SIGINT before any thread starts; main waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Schema and seed data, through a barrier-guarded one-off transaction.
  auto setup = treaty::Barrier::Open({.pg_uri = db});
  if (!setup.ok()) {
    std::cerr << "bank_service: " << setup.status().ToString() << "\n";
    return 1;
  }
  auto seeded = (*setup)->Run(
      {.gtid = "bank-setup", .branch = "accounts", .op = "action"}, [&](treaty::SqlTx& tx) {
        auto r = tx.Exec(
            "CREATE TABLE IF NOT EXISTS accounts(id int PRIMARY KEY, balance bigint NOT NULL)");
        if (!r.ok()) return r.status();
        r = tx.Exec(
            "INSERT INTO accounts SELECT g, $2::bigint FROM generate_series(1, $1::int) g "
            "ON CONFLICT DO NOTHING",
            {std::to_string(accounts), std::to_string(initial)});
        return r.status();
      });
  if (!seeded.ok()) {
    std::cerr << "bank_service: setup: " << seeded.status().ToString() << "\n";
    return 1;
  }

  treaty::PgResourceManagerOptions rm_options{.pg_uri = db,
                                              .coordinators = Split(coordinators),
                                              .recovery_interval_ms = 5000,
                                              .recovery_min_age_ms = 10000};
  auto rm = treaty::PgResourceManager::Open(rm_options, ApplyTransfer);
  if (!rm.ok()) {
    std::cerr << "bank_service: " << rm.status().ToString() << "\n";
    return 1;
  }
  const auto& rec = (*rm)->open_recovery();
  std::cout << "recovered in-doubt transactions: " << rec.committed << " committed, "
            << rec.rolled_back << " rolled back, " << rec.left_in_doubt << " left" << std::endl;

  treaty::ParticipantServer server({.http_port = static_cast<uint16_t>(port)});
  std::shared_ptr<treaty::ResourceManager> served = *rm;
  if (fail_rate > 0) served = std::make_shared<FlakyResourceManager>(served, fail_rate);
  server.AddResourceManager("account", served);
  if (auto s = server.Start(); !s.ok()) {
    std::cerr << "bank_service: " << s.ToString() << "\n";
    return 1;
  }
  std::cout << "bank service on " << server.http_url() << " (account/{prepare,commit,abort})"
            << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  server.Stop();
  return 0;
}
