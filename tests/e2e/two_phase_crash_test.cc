// kill -9 of treatyd in the middle of 2PC, then restart on the same store:
// after the commit decision was logged every branch gets commit; before it,
// every prepared branch gets abort (presumed abort). treatyd runs as a real
// subprocess on a real SQLite file; participants are real HTTP servers.

#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "http/http_client.h"
#include "support/subprocess.h"
#include "support/test_participant.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Rule = TestParticipant::Rule;

class TwoPhaseCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-2pc-crash");
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
        std::vector<std::string>{BinaryPath("treatyd"), "--store", "sqlite:" + dir_ + "/t.db",
                                 "--http", "127.0.0.1:" + std::to_string(port_), "--thrift",
                                 "127.0.0.1:0", "--heartbeat-ms", "200", "--lease-ms", "1000",
                                 "--retry-max-backoff-ms", "200", "--log-level", "info"},
        dir_ + "/treatyd.log");
    ASSERT_TRUE(proc_->Start().ok());
    for (int i = 0; i < 300; ++i) {
      auto r = HttpFetch("GET", base_ + "/healthz", "", {}, 500);
      if (r.ok() && r->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    FAIL() << "treatyd did not come up:\n" << proc_->Log();
  }

  json Post(const std::string& path, const json& body, int timeout_ms = 10000) {
    auto r = HttpFetch("POST", base_ + path, body.dump(), {}, timeout_ms);
    if (!r.ok()) return json{{"error", r.status().ToString()}};
    return json::parse(r->body, nullptr, false);
  }
  std::string State(const std::string& gtid) {
    auto r = HttpFetch("GET", base_ + "/v1/transactions/" + gtid, "", {}, 2000);
    if (!r.ok() || r->status != 200) return "";
    return json::parse(r->body).value("state", "");
  }
  bool WaitState(const std::string& gtid, const std::string& state, int timeout_ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < end) {
      if (State(gtid) == state) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  }
  void BeginWithBranches(const std::string& gtid, const std::vector<std::string>& names) {
    ASSERT_EQ(Post("/v1/2pc", {{"gtid", gtid}})["state"], "ACTIVE");
    for (const auto& n : names) {
      json b = {{"name", n},
                {"prepare", participant_.Url(n, "prepare")},
                {"commit", participant_.Url(n, "commit")},
                {"abort", participant_.Url(n, "abort")}};
      ASSERT_EQ(Post("/v1/2pc/" + gtid + "/branches", b)["state"], "ACTIVE");
    }
  }

  std::string dir_, base_;
  int port_ = 0;
  std::unique_ptr<Subprocess> proc_;
  TestParticipant participant_;
};

TEST_F(TwoPhaseCrashTest, KilledAfterDecisionCommitsEveryBranchAfterRestart) {
  StartTreatyd();
  // b's commit keeps failing, so phase 2 cannot complete before the crash.
  participant_.SetRule("b", "commit", Rule{{503}});
  BeginWithBranches("k1", {"a", "b", "c"});
  EXPECT_EQ(Post("/v1/2pc/k1/commit", json::object())["state"], "COMMITTING");
  ASSERT_TRUE(participant_.WaitFor(
      [](const auto& calls) {
        int n = 0;
        for (const auto& c : calls) n += c.branch == "b" && c.op == "commit";
        return n >= 2;
      },
      std::chrono::seconds(10)));
  proc_->Signal(SIGKILL);
  proc_->Wait(5000);
  participant_.SetRule("b", "commit", Rule{{200}});
  StartTreatyd();
  ASSERT_TRUE(WaitState("k1", "COMMITTED", 20000)) << proc_->Log();
  for (const char* n : {"a", "b", "c"}) {
    EXPECT_GE(participant_.CallCount("k1", n, "commit"), 1) << n;
    EXPECT_EQ(participant_.CallCount("k1", n, "abort"), 0) << n;
    EXPECT_EQ(participant_.EffectCount("k1", n, "commit"), 1) << n;
  }
}

TEST_F(TwoPhaseCrashTest, KilledBeforeDecisionAbortsEveryPreparedBranch) {
  StartTreatyd();
  // c's prepare hangs, so no decision is logged before the crash.
  participant_.SetRule("c", "prepare", Rule{{200}, 60000});
  BeginWithBranches("k2", {"a", "b", "c"});
  std::thread committer([&] { Post("/v1/2pc/k2/commit", json::object(), 30000); });
  ASSERT_TRUE(participant_.WaitFor(
      [](const auto& calls) {
        int n = 0;
        for (const auto& c : calls) n += c.op == "prepare";
        return n >= 3;
      },
      std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // a and b voted yes
  EXPECT_EQ(State("k2"), "PREPARING");
  proc_->Signal(SIGKILL);
  proc_->Wait(5000);
  committer.join();
  participant_.SetRule("c", "prepare", Rule{{200}});
  StartTreatyd();
  ASSERT_TRUE(WaitState("k2", "ABORTED", 20000)) << proc_->Log();
  for (const char* n : {"a", "b", "c"}) {
    EXPECT_EQ(participant_.CallCount("k2", n, "commit"), 0) << n;
    EXPECT_GE(participant_.CallCount("k2", n, "abort"), 1) << n;
  }
}

}  // namespace
}  // namespace treaty::testing
