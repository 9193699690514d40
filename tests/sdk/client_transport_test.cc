// The Client's coordinator transports and its one fail-over loop, against
// scripted loopback coordinators (loopback_coordinator.h): keep-alive (one
// TCP connection for many calls), reconnecting after the coordinator closes
// idle connections, the typed classification of every kind of failure
// (CoordinatorTransport, participant-sdk/src/coordinator_transport.h), and
// the loop's decisions: sticky coordinator, the same gtid on a re-send,
// Conflict rules for 2PC calls. Real coordinators: client_failover_test.cc.

#include "loopback_coordinator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordinator_transport.h"
#include "treaty/client.h"

namespace treaty::testing {
namespace {

namespace sdk = treaty::sdk;
using nlohmann::json;
using treaty_sdk_detail::Delivery;
using Mode = LoopbackCoordinator::Mode;

sdk::SagaSpec Saga(const std::string& gtid = "") {
  sdk::SagaSpec saga;
  saga.gtid = gtid;
  saga.steps.push_back(
      {.name = "s", .action = "http://127.0.0.1:1/a", .compensate = "http://127.0.0.1:1/c"});
  return saga;
}

std::string GtidOf(const LoopbackCoordinator::Request& r) {
  json j = json::parse(r.body, nullptr, false);
  return j.is_object() && j.contains("gtid") ? j["gtid"].get<std::string>() : "";
}

TEST(ClientTransportTest, KeepAliveCarriesManyCallsOnOneConnection) {
  LoopbackCoordinator c;
  sdk::Client client({.coordinators = {c.url()}});
  constexpr int kCalls = 25;
  for (int i = 0; i < kCalls; ++i) {
    const treaty::Status s = i % 2 ? client.Get("g").status() : client.SubmitSaga(Saga()).status();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  EXPECT_EQ(c.requests().size(), static_cast<size_t>(kCalls));
  EXPECT_EQ(c.accepted(), 1);

  // keepalive_connections = 0: a fresh connection per call.
  LoopbackCoordinator d;
  sdk::Client no_pool({.coordinators = {d.url()}, .keepalive_connections = 0});
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(no_pool.Get("g").ok());
  EXPECT_EQ(d.accepted(), 5);
}

TEST(ClientTransportTest, ReconnectsWhenTheCoordinatorClosesConnections) {
  LoopbackCoordinator c;
  // Closed right after each answer (no "Connection: close" warning).
  c.SetBehavior({.mode = Mode::kAnswerAndClose});
  sdk::Client client({.coordinators = {c.url()}, .max_attempts = 1});
  for (int i = 0; i < 5; ++i) {
    auto r = client.SubmitSaga(Saga("close-" + std::to_string(i)));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  // Each request was sent once, each on its own connection.
  auto reqs = c.requests();
  ASSERT_EQ(reqs.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(GtidOf(reqs[i]), "close-" + std::to_string(i));
  EXPECT_EQ(c.accepted(), 5);

  // Closed after 100 ms idle: a call after 300 ms reconnects; calls in
  // quick succession share a connection.
  LoopbackCoordinator d;
  d.SetBehavior({.idle_close_ms = 100});
  sdk::Client idle({.coordinators = {d.url()}, .max_attempts = 1});
  ASSERT_TRUE(idle.Get("a").ok());
  ASSERT_TRUE(idle.Get("b").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(idle.Get("c").ok());
  ASSERT_TRUE(idle.Get("d").ok());
  EXPECT_EQ(d.requests().size(), 4u);
  EXPECT_EQ(d.accepted(), 2);
}

TEST(ClientTransportTest, IdleConnectionsAreClosedByTheClientAfterKeepaliveIdleMs) {
  LoopbackCoordinator c;
  sdk::Client client({.coordinators = {c.url()}, .keepalive_idle_ms = 50});
  ASSERT_TRUE(client.Get("a").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  ASSERT_TRUE(client.Get("b").ok());
  EXPECT_EQ(c.accepted(), 2);
}

// Every kind of failure, as the transport classifies it.
TEST(ClientTransportTest, EachOutcomeIsTyped) {
  treaty_sdk_detail::TransportOptions options;
  auto refused = treaty_sdk_detail::MakeCoordinatorTransport("http://127.0.0.1:1", options);
  auto r = refused->Get("g", 2000);
  EXPECT_EQ(r.delivery, Delivery::kNotSent) << r.message;

  auto bad = treaty_sdk_detail::MakeCoordinatorTransport("ftp://127.0.0.1:1", options);
  EXPECT_EQ(bad->Get("g", 2000).delivery, Delivery::kBadConfig);
  auto bad_tls = treaty_sdk_detail::MakeCoordinatorTransport("https://127.0.0.1:1",
                                                             {.ca_file = "/nonexistent/ca.pem"});
  EXPECT_EQ(bad_tls->Get("g", 2000).delivery, Delivery::kBadConfig);

  LoopbackCoordinator c;
  auto t = treaty_sdk_detail::MakeCoordinatorTransport(c.url(), options);
  struct Case {
    int status;
    std::string body;
    StatusCode code;
  };
  const std::vector<Case> cases = {
      {503, R"({"error":{"code":"unavailable","message":"draining"}})", StatusCode::kUnavailable},
      {409, R"({"error":{"code":"not_owner","message":"x"}})", StatusCode::kLostOwnership},
      // The code string decides, not the message text.
      {409, R"({"error":{"code":"conflict","message":"driven by coordinator 'a'"}})",
       StatusCode::kConflict},
      {400, R"({"error":{"code":"invalid_argument","message":"x"}})", StatusCode::kInvalidArgument},
      {404, R"({"error":{"code":"not_found","message":"x"}})", StatusCode::kNotFound},
      {401, R"({"error":{"code":"unauthenticated","message":"x"}})", StatusCode::kUnauthenticated},
      {403, R"({"error":{"code":"forbidden","message":"x"}})", StatusCode::kPermissionDenied},
      {413, R"({"error":{"code":"too_large","message":"x"}})", StatusCode::kTooLarge},
      {504, R"({"error":{"code":"timed_out","message":"x"}})", StatusCode::kTimedOut},
      {500, R"({"error":{"code":"internal","message":"x"}})", StatusCode::kInternal},
      // No known code (a proxy's page): the HTTP status decides.
      {502, "<html>bad gateway</html>", StatusCode::kUnavailable},
      {409, R"({"error":{"code":"something_new"}})", StatusCode::kConflict},
      // "ok" names no error: an error status never reads as a success.
      {400, R"({"error":{"code":"ok","message":"x"}})", StatusCode::kInvalidArgument},
  };
  for (const auto& k : cases) {
    c.SetBehavior({.status = k.status, .body = k.body});
    auto a = t->Commit("g", 2000);
    EXPECT_EQ(a.delivery, Delivery::kAnswered) << k.body;
    EXPECT_EQ(a.code, k.code) << k.status << " " << k.body << " -> "
                              << treaty::ErrorCodeName(a.code);
  }
  c.SetBehavior({.status = 200, .body = "not json"});
  EXPECT_EQ(t->Get("g", 2000).delivery, Delivery::kBadAnswer);
  c.SetBehavior({.mode = Mode::kDropRequest});
  EXPECT_EQ(t->Get("g", 2000).delivery, Delivery::kNoAnswer);
  c.SetBehavior({.mode = Mode::kSilent});
  const auto t0 = std::chrono::steady_clock::now();
  auto silent = t->Get("g", 300);
  EXPECT_EQ(silent.delivery, Delivery::kNoAnswer);
  EXPECT_NE(silent.message.find("timed out"), std::string::npos) << silent.message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  c.SetBehavior({});
  auto ok = t->Get("g", 2000);
  EXPECT_EQ(ok.delivery, Delivery::kAnswered);
  EXPECT_EQ(ok.code, StatusCode::kOk);
  EXPECT_EQ(ok.body["state"], "COMMITTED");
}

TEST(ClientTransportTest, FailsOverOnUnavailableAndStaysWithTheHealthyCoordinator) {
  LoopbackCoordinator a, b;
  a.SetBehavior(
      {.status = 503, .body = R"({"error":{"code":"unavailable","message":"draining"}})"});
  sdk::Client client({.coordinators = {a.url(), b.url()}, .backoff_ms = 1});
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(client.SubmitSaga(Saga()).ok());
  // The first call met the 503 once; the later ones went straight to b.
  EXPECT_EQ(a.requests().size(), 1u);
  EXPECT_EQ(b.requests().size(), 5u);
  EXPECT_EQ(b.accepted(), 1);
}

TEST(ClientTransportTest, AnUnknownOutcomeIsReSentWithTheSameGtid) {
  LoopbackCoordinator a, b;
  a.SetBehavior({.mode = Mode::kDropRequest});
  sdk::Client client({.coordinators = {a.url(), b.url()}, .backoff_ms = 1});
  auto r = client.SubmitSaga(Saga());  // the client makes the gtid
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto sent_a = a.requests();
  auto sent_b = b.requests();
  ASSERT_EQ(sent_a.size(), 1u);
  ASSERT_EQ(sent_b.size(), 1u);
  EXPECT_FALSE(GtidOf(sent_a[0]).empty());
  EXPECT_EQ(GtidOf(sent_a[0]), GtidOf(sent_b[0]));
  EXPECT_EQ(sent_a[0].body, sent_b[0].body);
}

TEST(ClientTransportTest, TypedRefusalsEndTheCallAtOnce) {
  LoopbackCoordinator a, b;
  for (auto* c : {&a, &b}) {
    c->SetBehavior(
        {.status = 409, .body = R"({"error":{"code":"conflict","message":"other body"}})"});
  }
  sdk::Client client({.coordinators = {a.url(), b.url()}, .backoff_ms = 1});
  EXPECT_EQ(client.SubmitSaga(Saga("x")).status().code(), treaty::StatusCode::kConflict);
  EXPECT_EQ(a.requests().size() + b.requests().size(), 1u);
  a.SetBehavior({.status = 404, .body = R"({"error":{"code":"not_found","message":"no"}})"});
  EXPECT_EQ(client.Get("x").status().code(), treaty::StatusCode::kNotFound);
  EXPECT_EQ(a.requests().size() + b.requests().size(), 2u);
}

// Enlist/Commit/Abort: a Conflict from a coordinator other than the
// transaction's owner may only mean "not the owner" (the IDL and REST share
// one code for both); the loop waits for a takeover.
TEST(ClientTransportTest, TwoPhaseConflictsWaitForATakeoverUnlessTheOwnerSaidSo) {
  LoopbackCoordinator a, b;
  a.SetBehavior({.body = R"({"gtid":"t1","state":"ACTIVE"})"});
  sdk::Client client({.coordinators = {a.url(), b.url()},
                      .request_timeout_ms = 1000,
                      .backoff_ms = 20,
                      .failover_timeout_ms = 5000});
  ASSERT_TRUE(client.Begin("t1").ok());  // a owns t1

  // The owner's Conflict is final: b is never asked.
  a.SetBehavior({.status = 409, .body = R"({"error":{"code":"conflict","message":"late"}})"});
  EXPECT_EQ(client.Abort("t1").status().code(), treaty::StatusCode::kConflict);
  EXPECT_EQ(b.requests().size(), 0u);

  // The owner dies; b refuses until it has taken t1 over, then commits.
  a.Stop();
  b.SetBehavior({.status = 409, .body = R"({"error":{"code":"conflict","message":"not mine"}})"});
  std::thread takeover([&b] {
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    b.SetBehavior({.body = R"({"gtid":"t1","state":"COMMITTED"})"});
  });
  auto r = client.Commit("t1");
  takeover.join();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state, "COMMITTED");
  EXPECT_GE(b.requests().size(), 2u);

  // No takeover within failover_timeout_ms: Unavailable, in bounded time.
  LoopbackCoordinator c;
  c.SetBehavior({.status = 409, .body = R"({"error":{"code":"not_owner","message":"lost"}})"});
  sdk::Client bounded({.coordinators = {c.url()}, .backoff_ms = 20, .failover_timeout_ms = 500});
  const auto t0 = std::chrono::steady_clock::now();
  const treaty::Status commit = bounded.Commit("t2").status();
  EXPECT_EQ(commit.code(), treaty::StatusCode::kUnavailable);
  EXPECT_EQ(commit.message().rfind("transaction t2: no coordinator acted", 0), 0u)
      << commit.message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  // Get pins no gtid: its message names none ("transaction : ..." before).
  const treaty::Status get = bounded.Get("t2").status();
  EXPECT_EQ(get.code(), treaty::StatusCode::kUnavailable);
  EXPECT_EQ(get.message().rfind("the call: no coordinator acted", 0), 0u) << get.message();
}

// A coordinator's message reaches the Client's Status escaped, however the
// call ends (final answer, retries exhausted, no takeover): control
// characters and invalid UTF-8 made visible, so the Status is safe to log.
TEST(ClientTransportTest, CoordinatorMessagesAreEscapedInEveryStatus) {
  const auto error = [](int status, const std::string& code) {
    // The JSON escapes are LF and ESC: the parsed message holds both.
    return LoopbackCoordinator::Behavior{
        .status = status,
        .body = R"({"error":{"code":")" + code + R"(","message":"line1\nline2\u001b[31m"}})"};
  };
  const std::string shown = "line1\\nline2\\x1b[31m";
  const auto clean = [](const std::string& m) {
    for (unsigned char ch : m) {
      if (ch < 0x20 || ch == 0x7F) return false;
    }
    return true;
  };
  LoopbackCoordinator c;
  sdk::Client client(
      {.coordinators = {c.url()}, .max_attempts = 2, .backoff_ms = 1, .failover_timeout_ms = 200});

  // Retried until the attempts run out: Unavailable naming the last error.
  for (const auto& [status, code] : std::vector<std::pair<int, std::string>>{
           {503, "unavailable"}, {504, "timed_out"}, {500, "internal"}}) {
    c.SetBehavior(error(status, code));
    const treaty::Status s = client.Get("g").status();
    EXPECT_EQ(s.code(), treaty::StatusCode::kUnavailable) << code;
    EXPECT_NE(s.message().find(code + ": " + shown), std::string::npos) << s.message();
    EXPECT_TRUE(clean(s.message())) << s.message();
  }
  // not_owner: no takeover within failover_timeout_ms.
  c.SetBehavior(error(409, "not_owner"));
  treaty::Status s = client.Commit("g").status();
  EXPECT_EQ(s.code(), treaty::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find(shown), std::string::npos) << s.message();
  EXPECT_TRUE(clean(s.message())) << s.message();

  // Final answers carry the message itself, escaped.
  struct Final {
    int status;
    std::string code;
    treaty::StatusCode expected;
  };
  for (const auto& f :
       std::vector<Final>{{404, "not_found", treaty::StatusCode::kNotFound},
                          {409, "conflict", treaty::StatusCode::kConflict},
                          {400, "invalid_argument", treaty::StatusCode::kInvalidArgument},
                          {403, "forbidden", treaty::StatusCode::kPermissionDenied},
                          {401, "unauthenticated", treaty::StatusCode::kUnauthenticated}}) {
    c.SetBehavior(error(f.status, f.code));
    s = client.Abort("g").status();
    EXPECT_EQ(s.code(), f.expected) << f.code;
    EXPECT_NE(s.message().find(shown), std::string::npos) << f.code << ": " << s.message();
    EXPECT_TRUE(clean(s.message())) << s.message();
  }

  // A body that is not JSON (a proxy's page): an excerpt of it, ill-formed
  // UTF-8 as U+FFFD and control bytes escaped.
  c.SetBehavior({.status = 502, .body = "bad\x01gateway\xff\r\n"});
  s = client.Get("g").status();
  EXPECT_EQ(s.code(), treaty::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("bad\\x01gateway\xEF\xBF\xBD\\r\\n"), std::string::npos)
      << s.message();
  EXPECT_TRUE(clean(s.message())) << s.message();
}

}  // namespace
}  // namespace treaty::testing
