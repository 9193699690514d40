// A restart during a retry's backoff does not change the outcome. A saga
// step with max_attempts 2 gets a 503 on its first attempt;
// while its second attempt waits out the backoff, the coordinator that owns
// it goes away: kill -9 and a restart on the same log, kill -9 and a takeover
// by a peer, or SIGTERM and a hand-back to a peer. In every case the second
// attempt is sent exactly once, no earlier than the backoff the history
// announced, and the saga ends COMMITTED (before the fix: ABORTED, "outcome
// unknown after restart and no attempts left", one attempt sent).
//
// treatyd runs as a real child process on a real SQLite file or PostgreSQL
// database; the participant is a real HTTP server.

#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <regex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "http/http_client.h"
#include "support/store_env.h"
#include "support/subprocess.h"
#include "support/test_participant.h"
#include "support/treatyd_process.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using Rule = TestParticipant::Rule;

constexpr int64_t kBackoffMs = 5000;  // initial = max: the retry waits 2.5..5 s

class RestartRetryTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("treaty-restart"); }
  void TearDown() override {
    for (auto& n : nodes_) {
      if (n->running()) n->proc().Kill();
    }
    if (HasFailure()) {
      for (auto& n : nodes_) std::cerr << "---- " << n->name() << " ----\n" << n->Log() << "\n";
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  TreatydProcess& StartNode(const std::string& name, int drain_timeout_ms = 10000) {
    TreatydOptions o;
    o.store = store_;
    o.heartbeat_ms = 200;
    o.lease_ms = 1500;
    o.drain_timeout_ms = drain_timeout_ms;
    nodes_.push_back(std::make_unique<TreatydProcess>(dir_, name, o));
    Status s = nodes_.back()->Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
    return *nodes_.back();
  }

  // Submits a two-step saga: "book" (answers 200) then "pay" (503, then 200;
  // max_attempts 2, backoff kBackoffMs).
  void Submit(const TreatydProcess& node, const std::string& gtid) {
    participant_.SetRule("book", "action", Rule{{200}});
    participant_.SetRule("pay", "action", Rule{{503, 200}});
    json steps = json::array();
    for (std::string name : {"book", "pay"}) {
      steps.push_back({{"name", name},
                       {"action", participant_.Url(name, "action")},
                       {"compensate", participant_.Url(name, "compensate")},
                       {"retry",
                        {{"max_attempts", 2},
                         {"initial_backoff_ms", kBackoffMs},
                         {"max_backoff_ms", kBackoffMs}}}});
    }
    json saga = {{"gtid", gtid}, {"steps", steps}};
    auto r = HttpFetch("POST", node.url() + "/v1/sagas", saga.dump(), {}, 5000);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->status, 201) << r->body;
  }

  json Get(const TreatydProcess& node, const std::string& gtid) {
    auto r = HttpFetch("GET", node.url() + "/v1/transactions/" + gtid, "", {}, 2000);
    if (!r.ok() || r->status != 200) return json();
    return json::parse(r->body, nullptr, false);
  }

  // Waits until the retry of "pay" is logged as planned; returns the delay
  // the history announced for it ("attempt 2 in N ms"), or -1.
  int64_t WaitRetryPlanned(const TreatydProcess& node, const std::string& gtid) {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    const std::regex announced("attempt 2 in ([0-9]+) ms");
    while (Clock::now() < deadline) {
      json t = Get(node, gtid);
      if (t.is_object()) {
        for (const auto& e : t["history"]) {
          std::smatch m;
          const std::string detail = e.value("detail", "");
          if (e.value("branch", "") == "pay" && e.value("type", "") == "retry" &&
              std::regex_search(detail, m, announced)) {
            return std::stoll(m[1].str());
          }
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

  // The final document once `gtid` is COMMITTED or ABORTED (null after 30 s).
  json WaitTerminal(const TreatydProcess& node, const std::string& gtid) {
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline) {
      json t = Get(node, gtid);
      if (t.is_object() && (t["state"] == "COMMITTED" || t["state"] == "ABORTED")) return t;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return json();
  }

  // The checks every variant ends with.
  void ExpectCommittedAfterOneRetry(const json& final, const std::string& gtid,
                                    int64_t announced_ms) {
    ASSERT_TRUE(final.is_object()) << "not finished within 30 s";
    EXPECT_EQ(final.value("state", ""), "COMMITTED") << final.dump(1);
    EXPECT_EQ(final.dump().find("outcome unknown"), std::string::npos);
    EXPECT_EQ(participant_.CallCount(gtid, "book", "action"), 1) << "a logged success is kept";
    EXPECT_EQ(participant_.CallCount(gtid, "pay", "action"), 2) << "exactly attempts 1 and 2";
    EXPECT_LE(participant_.EffectCount(gtid, "pay", "action"), 1);
    EXPECT_EQ(participant_.CallCount(gtid, "pay", "compensate"), 0);
    std::vector<Clock::time_point> at;
    for (const auto& c : participant_.Calls()) {
      if (c.gtid == gtid && c.branch == "pay" && c.op == "action") at.push_back(c.at);
    }
    ASSERT_EQ(at.size(), 2u);
    const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(at[1] - at[0]).count();
    // The coordinator plans by the wall clock in whole milliseconds; the
    // participant measures by the steady clock: allow 5 ms for the rounding.
    EXPECT_GE(gap, announced_ms - 5) << "the second attempt came before its backoff";
    for (const auto& b : final["branches"]) {
      if (b.value("name", "") == "pay") EXPECT_EQ(b.value("attempts", 0), 2);
    }
    std::string resumed;
    for (const auto& e : final["history"]) {
      if (e.value("branch", "") == "pay" && e.value("type", "") == "recovery") {
        resumed = e.value("detail", "");
      }
    }
    std::cout << "backoff announced " << announced_ms << " ms, attempts 1 -> 2 apart " << gap
              << " ms; " << resumed << "\n";
  }

  std::string dir_, store_;
  TestParticipant participant_;
  std::vector<std::unique_ptr<TreatydProcess>> nodes_;
};

class RestartOnSameLogTest : public RestartRetryTest,
                             public ::testing::WithParamInterface<std::string> {};

// kill -9 during the backoff, then the same binary started again on the same log.
TEST_P(RestartOnSameLogTest, KillNineDuringBackoffThenRestartCommits) {
  store_ = FreshStoreUri(GetParam(), dir_);
  ASSERT_FALSE(store_.empty());
  TreatydProcess& first = StartNode("first");
  ASSERT_NO_FATAL_FAILURE(Submit(first, "r1"));
  const int64_t announced = WaitRetryPlanned(first, "r1");
  ASSERT_GT(announced, 0) << "no retry was announced";
  first.proc().Signal(SIGKILL);
  first.proc().Wait(5000);
  TreatydProcess& second = StartNode("second");
  ExpectCommittedAfterOneRetry(WaitTerminal(second, "r1"), "r1", announced);
}

INSTANTIATE_TEST_SUITE_P(Stores, RestartOnSameLogTest, ::testing::Values("sqlite", "postgres"));

// kill -9 during the backoff; a peer on the same PostgreSQL takes it over
// once the lease expires.
TEST_F(RestartRetryTest, KillNineDuringBackoffThenPeerTakeoverCommits) {
  store_ = FreshStoreUri("postgres", dir_);
  ASSERT_FALSE(store_.empty());
  TreatydProcess& owner = StartNode("owner");
  TreatydProcess& peer = StartNode("peer");
  ASSERT_NO_FATAL_FAILURE(Submit(owner, "p1"));
  const int64_t announced = WaitRetryPlanned(owner, "p1");
  ASSERT_GT(announced, 0) << "no retry was announced";
  owner.proc().Signal(SIGKILL);
  owner.proc().Wait(5000);
  json final = WaitTerminal(peer, "p1");
  ExpectCommittedAfterOneRetry(final, "p1", announced);
  EXPECT_NE(final.dump().find("resumed by coordinator " + peer.CoordinatorId()), std::string::npos)
      << "the peer finished it";
}

// SIGTERM during the backoff with a short drain: the saga is handed back
// and the peer adopts it within a heartbeat.
TEST_F(RestartRetryTest, SigtermDuringBackoffThenHandBackCommits) {
  store_ = FreshStoreUri("postgres", dir_);
  ASSERT_FALSE(store_.empty());
  TreatydProcess& owner = StartNode("owner", /*drain_timeout_ms=*/300);
  TreatydProcess& peer = StartNode("peer");
  ASSERT_NO_FATAL_FAILURE(Submit(owner, "h1"));
  const int64_t announced = WaitRetryPlanned(owner, "h1");
  ASSERT_GT(announced, 0) << "no retry was announced";
  owner.proc().Signal(SIGTERM);
  EXPECT_EQ(owner.proc().Wait(10000), 0) << "a drain exits 0";
  json final = WaitTerminal(peer, "h1");
  ExpectCommittedAfterOneRetry(final, "h1", announced);
  EXPECT_NE(final.dump().find("resumed by coordinator " + peer.CoordinatorId()), std::string::npos)
      << "the peer finished it";
}

}  // namespace
}  // namespace treaty::testing
