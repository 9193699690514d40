// The bank example end to end: a real coordinator (treatyd), two
// bank_service processes on two PostgreSQL databases that inject transient
// failures (before and after their real work), and bank_transfer running
// concurrent 2PC transfers. The total balance must be unchanged and no
// prepared transaction may be left behind.

#include "http/http_client.h"
#include "sdk/sdk_test_env.h"
#include "support/subprocess.h"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>

namespace treaty::testing {
namespace {

std::string Example(const std::string& name) {
  return std::string(TREATY_EXAMPLES_DIR) + "/" + name;
}

bool WaitHttp(const std::string& url, int timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    auto r = HttpFetch("POST", url, "{}", {}, 1000);
    if (r.ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(BankExampleTest, TotalBalanceIsInvariantUnderConcurrentTransfersWithFailures) {
  const std::string dir = MakeTempDir("treaty-bank");
  const std::string db_a = FreshDatabase("bank_a"), db_b = FreshDatabase("bank_b");
  const std::string store = FreshDatabase("bank_log");
  ASSERT_FALSE(db_a.empty() || db_b.empty() || store.empty());

  CoordinatorProcess coordinator(store, dir);
  ASSERT_TRUE(coordinator.Start());

  const int port_a = FreePort(), port_b = FreePort();
  auto bank = [&](const std::string& db, int port, const std::string& log) {
    return std::make_unique<Subprocess>(
        std::vector<std::string>{Example("bank_service"), "--port", std::to_string(port), "--db",
                                 db, "--coordinator", coordinator.url(), "--accounts", "5",
                                 "--initial", "1000", "--fail-rate", "0.2"},
        dir + "/" + log);
  };
  auto a = bank(db_a, port_a, "bank_a.log");
  auto b = bank(db_b, port_b, "bank_b.log");
  ASSERT_TRUE(a->Start().ok());
  ASSERT_TRUE(b->Start().ok());
  const std::string url_a = "http://127.0.0.1:" + std::to_string(port_a);
  const std::string url_b = "http://127.0.0.1:" + std::to_string(port_b);
  ASSERT_TRUE(WaitHttp(url_a, 20000)) << a->Log();
  ASSERT_TRUE(WaitHttp(url_b, 20000)) << b->Log();

  Subprocess transfer({Example("bank_transfer"), "--coordinator", coordinator.url(), "--bank-a",
                       url_a, "--bank-b", url_b, "--db-a", db_a, "--db-b", db_b, "--transfers",
                       "40", "--concurrency", "6", "--accounts", "5", "--max-amount", "600"},
                      dir + "/transfer.log");
  ASSERT_TRUE(transfer.Start().ok());
  int rc = transfer.Wait(240000);
  EXPECT_EQ(rc, 0) << transfer.Log() << "\n--- bank A\n"
                   << a->Log() << "\n--- bank B\n"
                   << b->Log();
  std::cout << transfer.Log();

  EXPECT_EQ(QueryInt(db_a, "SELECT sum(balance) FROM accounts") +
                QueryInt(db_b, "SELECT sum(balance) FROM accounts"),
            10000);
  EXPECT_EQ(QueryInt(db_a, "SELECT count(*) FROM accounts WHERE balance < 0"), 0);
  EXPECT_EQ(QueryInt(db_b, "SELECT count(*) FROM accounts WHERE balance < 0"), 0);
  EXPECT_EQ(
      QueryInt(db_a, "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()"),
      0);
  EXPECT_EQ(
      QueryInt(db_b, "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()"),
      0);
  a->Signal(SIGTERM);
  b->Signal(SIGTERM);
  EXPECT_EQ(a->Wait(10000), 0);
  EXPECT_EQ(b->Wait(10000), 0);
  coordinator.Terminate();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace treaty::testing
