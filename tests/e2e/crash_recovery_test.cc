// kill -9 of treatyd at random moments while sagas run, then restart: every
// saga accepted before a crash still ends COMMITTED or ABORTED, every step
// whose action was attempted in an aborted saga is compensated, a committed
// saga has every action applied exactly once and nothing compensated, and no
// effect is applied twice at the (idempotent) participant. Runs treatyd as a
// real subprocess on a real SQLite file and on a real PostgreSQL.

#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "http/http_client.h"
#include "support/store_env.h"
#include "support/subprocess.h"
#include "support/test_participant.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Rule = TestParticipant::Rule;

class CrashRecoveryTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-crash");
    store_ = FreshStoreUri(GetParam(), dir_);
    ASSERT_FALSE(store_.empty());
    port_ = FreePort();
    base_ = "http://127.0.0.1:" + std::to_string(port_);
  }
  void TearDown() override {
    if (proc_) proc_->Kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void StartTreatyd() {
    proc_ = std::make_unique<Subprocess>(
        std::vector<std::string>{BinaryPath("treatyd"), "--store", store_, "--http",
                                 "127.0.0.1:" + std::to_string(port_), "--thrift", "127.0.0.1:0",
                                 "--heartbeat-ms", "200", "--lease-ms", "1000",
                                 "--retry-max-backoff-ms", "200", "--log-level", "warn"},
        dir_ + "/treatyd.log");
    ASSERT_TRUE(proc_->Start().ok());
    for (int i = 0; i < 300; ++i) {
      auto r = HttpFetch("GET", base_ + "/healthz", "", {}, 500);
      if (r.ok() && r->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    FAIL() << "treatyd did not come up:\n" << proc_->Log();
  }

  json Saga(const std::string& gtid, bool fails) {
    json steps = json::array();
    for (std::string name : {"flight", "hotel", fails ? "nocar" : "car"}) {
      steps.push_back(
          {{"name", name},
           {"action", participant_.Url(name, "action")},
           {"compensate", participant_.Url(name, "compensate")},
           {"retry", {{"max_attempts", 50}, {"initial_backoff_ms", 20}, {"max_backoff_ms", 100}}}});
    }
    return {{"gtid", gtid}, {"steps", steps}};
  }

  std::string dir_, store_, base_;
  int port_ = 0;
  std::unique_ptr<Subprocess> proc_;
  TestParticipant participant_;
};

TEST_P(CrashRecoveryTest, KillNineAtRandomMomentsLosesNothing) {
  participant_.SetRule("flight", "action", Rule{{200}, 30});
  participant_.SetRule("hotel", "action", Rule{{503, 200}, 40});
  participant_.SetRule("car", "action", Rule{{200}, 30});
  participant_.SetRule("nocar", "action", Rule{{409}, 20});
  participant_.SetRule("hotel", "compensate", Rule{{500, 200}, 30});
  participant_.SetRule("flight", "compensate", Rule{{200}, 30});

  std::mt19937 rng(GetParam() == "sqlite" ? 1 : 2);
  std::mutex mu;
  std::set<std::string> accepted;  // answered 201: must survive any crash
  std::set<std::string> tried;     // submitted; the answer may have been cut off
  std::atomic<int> n{0};
  for (int round = 0; round < 4; ++round) {
    StartTreatyd();
    auto kill_at = std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(std::uniform_int_distribution<int>(150, 600)(rng));
    // Three clients submit concurrently, so the kill also lands mid-request.
    std::vector<std::thread> clients;
    for (int c = 0; c < 3; ++c) {
      clients.emplace_back([&] {
        while (std::chrono::steady_clock::now() < kill_at) {
          const int i = n++;
          std::string gtid = "crash-" + std::to_string(i);
          {
            std::lock_guard<std::mutex> l(mu);
            tried.insert(gtid);
          }
          auto r = HttpFetch("POST", base_ + "/v1/sagas", Saga(gtid, i % 3 == 0).dump(), {}, 2000);
          if (r.ok() && r->status == 201) {
            std::lock_guard<std::mutex> l(mu);
            accepted.insert(gtid);
          }
        }
      });
    }
    std::this_thread::sleep_until(kill_at);
    proc_->Signal(SIGKILL);
    proc_->Wait(5000);
    for (auto& t : clients) t.join();
  }
  StartTreatyd();
  ASSERT_GE(accepted.size(), 10u);

  // Everything accepted reaches a terminal state after the last restart.
  std::map<std::string, json> final;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (const auto& gtid : tried) {
    while (true) {
      auto r = HttpFetch("GET", base_ + "/v1/transactions/" + gtid, "", {}, 2000);
      ASSERT_TRUE(r.ok());
      if (r->status == 404) {
        EXPECT_FALSE(accepted.count(gtid)) << gtid << " was accepted (201) but is lost";
        break;
      }
      json t = json::parse(r->body);
      if (t["state"] == "COMMITTED" || t["state"] == "ABORTED") {
        final[gtid] = t;
        break;
      }
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << gtid << " stuck in " << t.dump() << "\n"
          << proc_->Log();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  int committed = 0, aborted = 0;
  for (const auto& [gtid, t] : final) {
    for (const auto& b : t["branches"]) {
      const std::string step = b["name"];
      const int acted = participant_.EffectCount(gtid, step, "action");
      const int comped = participant_.EffectCount(gtid, step, "compensate");
      EXPECT_LE(acted, 1);
      EXPECT_LE(comped, 1);
      if (t["state"] == "COMMITTED") {
        EXPECT_EQ(acted, 1) << gtid << "/" << step;
        EXPECT_EQ(participant_.CallCount(gtid, step, "compensate"), 0) << gtid << "/" << step;
      } else if (participant_.CallCount(gtid, step, "action") > 0) {
        EXPECT_EQ(comped, 1) << gtid << "/" << step << " was attempted but not compensated";
        EXPECT_EQ(b["state"], "COMPENSATED") << gtid << "/" << step;
      } else {
        EXPECT_EQ(b["state"], "PENDING");
      }
    }
    (t["state"] == "COMMITTED" ? committed : aborted)++;
    if (gtid.size() && std::stoi(gtid.substr(6)) % 3 == 0) {
      EXPECT_EQ(t["state"], "ABORTED") << gtid;
    }
  }
  EXPECT_GT(committed, 0);
  EXPECT_GT(aborted, 0);
  std::cout << "sagas tried " << tried.size() << ", accepted " << accepted.size() << ", committed "
            << committed << ", aborted " << aborted << "\n";

  // A clean SIGTERM exits 0.
  proc_->Signal(SIGTERM);
  EXPECT_EQ(proc_->Wait(15000), 0) << proc_->Log();
}

INSTANTIATE_TEST_SUITE_P(Engines, CrashRecoveryTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace treaty::testing
