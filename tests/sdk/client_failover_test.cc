// treaty::Client against two real treatyd coordinators sharing one
// PostgreSQL log: fail-over when the coordinator the client sticks to is
// killed (kill -9, also with a saga in flight: re-sent with the same gtid,
// run once) or drains (SIGTERM: 503 "unavailable", typed), over REST and
// over Thrift, and Thrift keep-alive (one connection for many calls).

#include "support/store_env.h"
#include "support/subprocess.h"
#include "support/test_participant.h"
#include "support/treatyd_process.h"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "coordinator_transport.h"
#include "treaty/client.h"

namespace treaty::testing {
namespace {

namespace sdk = treaty::sdk;
using treaty_sdk_detail::Delivery;

// A loopback TCP port free right now (for treatyd's --thrift).
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool SlowStepStarted(const std::vector<TestParticipant::Call>& calls) {
  for (const auto& c : calls) {
    if (c.branch == "slow") return true;
  }
  return false;
}

class ClientFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-sdk-failover");
    store_ = FreshStoreUri("postgres", dir_);
    ASSERT_FALSE(store_.empty());
    for (const char* name : {"a", "b"}) {
      TreatydOptions o;
      o.store = store_;
      thrift_ports_.push_back(FreePort());
      o.thrift = "127.0.0.1:" + std::to_string(thrift_ports_.back());
      nodes_.push_back(std::make_unique<TreatydProcess>(dir_, name, o));
      auto s = nodes_.back()->Start();
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
  }
  void TearDown() override {
    nodes_.clear();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string ThriftUrl(int i) const {
    return "thrift://127.0.0.1:" + std::to_string(thrift_ports_[i]);
  }

  sdk::SagaSpec Saga(const std::string& gtid, const std::string& step = "step") {
    sdk::SagaSpec saga;
    saga.gtid = gtid;
    saga.steps.push_back({.name = step,
                          .action = participant_.Url(step, "action"),
                          .compensate = participant_.Url(step, "compensate")});
    return saga;
  }

  // Submits `count` sagas and waits for each; all must commit.
  void SubmitCommitted(sdk::Client& client, const std::string& prefix, int count) {
    for (int i = 0; i < count; ++i) {
      const std::string gtid = prefix + std::to_string(i);
      auto r = client.SubmitSaga(Saga(gtid), /*wait=*/true, 15000);
      ASSERT_TRUE(r.ok()) << gtid << ": " << r.status().ToString();
      EXPECT_EQ(r->state, "COMMITTED") << gtid;
      gtids_.push_back(gtid);
    }
  }

  // Every saga submitted ran its step exactly once.
  void ExpectEachRanOnce(sdk::Client& client) {
    for (const auto& g : gtids_) {
      auto t = client.WaitForOutcome(g, 20000);
      ASSERT_TRUE(t.ok()) << g << ": " << t.status().ToString();
      EXPECT_EQ(t->state, "COMMITTED") << g;
      EXPECT_EQ(participant_.EffectCount(g, "step", "action"), 1) << g;
    }
  }

  std::string dir_, store_;
  std::vector<int> thrift_ports_;
  std::vector<std::unique_ptr<TreatydProcess>> nodes_;
  TestParticipant participant_;
  std::vector<std::string> gtids_;
};

TEST_F(ClientFailoverTest, KillNineOfTheStickyCoordinatorOverRest) {
  sdk::Client client({.coordinators = {nodes_[0]->url(), nodes_[1]->url()},
                      .request_timeout_ms = 5000,
                      .backoff_ms = 20});
  SubmitCommitted(client, "rest-before-", 4);
  nodes_[0]->proc().Kill();  // SIGKILL: its kept-alive connection dies with it
  SubmitCommitted(client, "rest-after-", 4);
  ExpectEachRanOnce(client);
}

TEST_F(ClientFailoverTest, KillNineWithASagaInFlightReSendsTheSameGtidOnce) {
  participant_.SetRule("slow", "action", {{200}, 1500, "{}"});
  sdk::Client client({.coordinators = {nodes_[0]->url(), nodes_[1]->url()},
                      .request_timeout_ms = 5000,
                      .backoff_ms = 20});
  std::thread killer([this] {
    participant_.WaitFor([](const auto& calls) { return SlowStepStarted(calls); },
                         std::chrono::seconds(10));
    nodes_[0]->proc().Kill();
  });
  // The waiting submit reaches `a`, which dies while the step runs: the
  // answer never comes, the client re-sends the same gtid to `b`.
  auto r = client.SubmitSaga(Saga("inflight-1", "slow"), /*wait=*/true, 20000);
  killer.join();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto t = client.WaitForOutcome("inflight-1", 30000);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->state, "COMMITTED");
  EXPECT_EQ(participant_.EffectCount("inflight-1", "slow", "action"), 1);
  auto info = client.Get("inflight-1");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->branches.size(), 1u);
}

TEST_F(ClientFailoverTest, SigtermDrainAnswersUnavailableAndTheClientMovesOn) {
  participant_.SetRule("slow", "action", {{200}, 2500, "{}"});
  sdk::Client client({.coordinators = {nodes_[0]->url(), nodes_[1]->url()},
                      .request_timeout_ms = 5000,
                      .backoff_ms = 20});
  SubmitCommitted(client, "drain-before-", 2);
  // In-flight work keeps `a` draining (not gone) for a while.
  auto slow = client.SubmitSaga(Saga("drain-slow", "slow"));
  ASSERT_TRUE(slow.ok()) << slow.status().ToString();
  ASSERT_TRUE(participant_.WaitFor([](const auto& calls) { return SlowStepStarted(calls); },
                                   std::chrono::seconds(10)));
  nodes_[0]->proc().Signal(SIGTERM);

  // `a` itself, asked directly: new work is refused with the typed 503.
  auto a = treaty_sdk_detail::MakeCoordinatorTransport(nodes_[0]->url(), {});
  treaty_sdk_detail::CoordinatorReply reply;
  for (int i = 0; i < 50; ++i) {
    reply = a->SubmitSaga({{"gtid", "drain-probe-" + std::to_string(i)},
                           {"steps",
                            {{{"name", "step"},
                              {"action", participant_.Url("step", "action")},
                              {"compensate", participant_.Url("step", "compensate")}}}}},
                          2000);
    if (reply.delivery == Delivery::kAnswered && reply.code == StatusCode::kUnavailable) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(reply.delivery, Delivery::kAnswered) << reply.message;
  EXPECT_EQ(reply.code, StatusCode::kUnavailable) << reply.message;

  // The client, still stuck to `a`, moves on to `b`.
  SubmitCommitted(client, "drain-after-", 3);
  ExpectEachRanOnce(client);
  auto t = client.WaitForOutcome("drain-slow", 30000);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->state, "COMMITTED");
  EXPECT_EQ(participant_.EffectCount("drain-slow", "slow", "action"), 1);
}

TEST_F(ClientFailoverTest, ThriftKeepsOneConnectionAndFailsOverOnKillNine) {
  // The transport itself: many calls, one connection.
  auto t = treaty_sdk_detail::MakeCoordinatorTransport(ThriftUrl(1), {});
  for (int i = 0; i < 10; ++i) {
    auto r = t->Get("nobody-" + std::to_string(i), 5000);
    ASSERT_EQ(r.delivery, Delivery::kAnswered) << r.message;
    EXPECT_EQ(r.code, StatusCode::kNotFound);
  }
  EXPECT_EQ(t->connections_opened(), 1);

  sdk::Client client(
      {.coordinators = {ThriftUrl(0), ThriftUrl(1)}, .request_timeout_ms = 5000, .backoff_ms = 20});
  SubmitCommitted(client, "thrift-before-", 3);
  nodes_[0]->proc().Kill();
  SubmitCommitted(client, "thrift-after-", 3);
  ExpectEachRanOnce(client);

  // 2PC over Thrift: Begin pins the owner, Commit follows it.
  auto begin = client.Begin("thrift-2pc");
  ASSERT_TRUE(begin.ok()) << begin.status().ToString();
  ASSERT_TRUE(client
                  .Enlist("thrift-2pc", {.name = "rm",
                                         .prepare = participant_.Url("rm", "prepare"),
                                         .commit = participant_.Url("rm", "commit"),
                                         .abort = participant_.Url("rm", "abort")})
                  .ok());
  auto commit = client.Commit("thrift-2pc");
  ASSERT_TRUE(commit.ok()) << commit.status().ToString();
  auto done = client.WaitForOutcome("thrift-2pc", 20000);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->state, "COMMITTED");
}

}  // namespace
}  // namespace treaty::testing
