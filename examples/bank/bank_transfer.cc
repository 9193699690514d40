// bank_transfer: runs concurrent money transfers between two banks as Treaty
// 2PC transactions (debit on one bank, credit on the other) and checks that
// the total balance across both databases never changes.
//
// Usage: bank_transfer --coordinator http://127.0.0.1:7480 \
//          --bank-a http://127.0.0.1:7601 --bank-b http://127.0.0.1:7602 \
//          --db-a postgresql://.../bank_a --db-b postgresql://.../bank_b \
//          [--transfers 50 --concurrency 8 --accounts 10 --max-amount 400]
// Exit status 0 when the invariant holds and every transfer ended, else 1.

#include <atomic>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "treaty/client.h"

namespace {

int64_t TotalBalance(const std::string& uri) {
  pqxx::connection c(uri);
  pqxx::work w(c);
  return w.exec1("SELECT coalesce(sum(balance), 0) FROM accounts")[0].as<int64_t>();
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
  CLI::App app{"bank_transfer: concurrent 2PC transfers between two banks"};
  std::string coordinators = "http://127.0.0.1:7480", bank_a, bank_b, db_a, db_b;
  int transfers = 50, concurrency = 8, accounts = 10, max_amount = 400;
  app.add_option("--coordinator", coordinators, "Coordinator URL(s), comma-separated")
      ->capture_default_str();
  app.add_option("--bank-a", bank_a, "URL of bank A's bank_service")->required();
  app.add_option("--bank-b", bank_b, "URL of bank B's bank_service")->required();
  app.add_option("--db-a", db_a, "Bank A's database (to check the invariant)")->required();
  app.add_option("--db-b", db_b, "Bank B's database (to check the invariant)")->required();
  app.add_option("--transfers", transfers)->capture_default_str();
  app.add_option("--concurrency", concurrency)->capture_default_str();
  app.add_option("--accounts", accounts)->capture_default_str();
  app.add_option("--max-amount", max_amount)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const int64_t before = TotalBalance(db_a) + TotalBalance(db_b);
  std::cout << "total balance before: " << before << std::endl;

  treaty::Client client({.coordinators = Split(coordinators)});
  std::atomic<int> next{0}, committed{0}, aborted{0}, failed{0};
  auto worker = [&](int seed) {
    std::mt19937 rng(seed);
    for (int i = next++; i < transfers; i = next++) {
      const bool a_to_b = rng() % 2 == 0;
      const int from = 1 + rng() % accounts, to = 1 + rng() % accounts;
      const int64_t amount = 1 + rng() % max_amount;
      auto branch = [](const std::string& name, const std::string& bank, int account,
                       int64_t delta) {
        const std::string base = bank + "/account/";
        return treaty::BranchSpec{
            .name = name,
            .prepare = base + "prepare",
            .commit = base + "commit",
            .abort = base + "abort",
            .payload = nlohmann::json({{"account", account}, {"amount", delta}}).dump()};
      };
      auto begin = client.Begin("", 30000);
      treaty::Status s = begin.status();
      if (s.ok())
        s = client.Enlist(begin->gtid, branch("debit", a_to_b ? bank_a : bank_b, from, -amount));
      if (s.ok())
        s = client.Enlist(begin->gtid, branch("credit", a_to_b ? bank_b : bank_a, to, amount));
      if (!s.ok()) {
        std::cerr << "transfer " << i << ": " << s.ToString() << "\n";
        if (begin.ok()) (void)client.Abort(begin->gtid);
        failed++;
        continue;
      }
      (void)client.Commit(begin->gtid);  // the outcome is what WaitForOutcome reports
      auto done = client.WaitForOutcome(begin->gtid, 60000);
      if (!done.ok()) {
        std::cerr << "transfer " << begin->gtid << ": " << done.status().ToString() << "\n";
        failed++;
      } else if (done->state == "COMMITTED") {
        committed++;
      } else {
        aborted++;  // insufficient funds (a no vote) or a failed prepare
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) threads.emplace_back(worker, 1000 + t);
  for (auto& t : threads) t.join();

  const int64_t after = TotalBalance(db_a) + TotalBalance(db_b);
  std::cout << "transfers: " << committed << " committed, " << aborted << " aborted, " << failed
            << " unfinished" << std::endl;
  std::cout << "total balance after: " << after
            << (after == before ? " (invariant holds)" : " (INVARIANT BROKEN)") << std::endl;
  return after == before && failed == 0 ? 0 : 1;
}
