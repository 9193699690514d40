// HttpClient (http/http_client.h), the base library's blocking keep-alive
// client that treatyctl (through HttpFetch) and the SDK's REST transport
// share: connection reuse, the one retry of a reused connection found closed,
// typed failures and whether the request was sent. Against scripted loopback
// servers (tests/sdk/loopback_coordinator.h).

#include "http/http_client.h"

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "sdk/loopback_coordinator.h"

namespace treaty {
namespace {

using testing::LoopbackCoordinator;
using Mode = LoopbackCoordinator::Mode;

std::unique_ptr<HttpClient> OpenClient(const std::string& url, int pool_size) {
  auto endpoint = ParseEndpoint(url);
  EXPECT_TRUE(endpoint.ok()) << endpoint.status().message();
  HttpClientOptions options;
  options.pool_size = pool_size;
  auto client = HttpClient::Open(*endpoint, options);
  EXPECT_TRUE(client.ok()) << client.status().message();
  return std::move(*client);
}

TEST(HttpClientTest, KeepAliveCarriesEveryRequestOnOneConnection) {
  LoopbackCoordinator server;
  auto client = OpenClient(server.url(), 2);
  for (int i = 0; i < 10; ++i) {
    auto r = client->Send("GET", "/v1/transactions/g" + std::to_string(i), "", {}, 5000);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->status, 200);
    EXPECT_NE(r->body.find("COMMITTED"), std::string::npos);
  }
  EXPECT_EQ(server.requests().size(), 10u);
  EXPECT_EQ(server.accepted(), 1);
  EXPECT_EQ(client->connections_opened(), 1);
}

TEST(HttpClientTest, WithoutAPoolEveryRequestHasItsOwnConnection) {
  LoopbackCoordinator server;
  auto client = OpenClient(server.url(), 0);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->Send("GET", "/", "", {}, 5000).ok());
  EXPECT_EQ(server.accepted(), 3);
  EXPECT_EQ(client->connections_opened(), 3);
}

TEST(HttpClientTest, AConnectionTheServerClosedIsReplacedAndEachRequestSentOnce) {
  LoopbackCoordinator server;
  server.SetBehavior({.mode = Mode::kAnswerAndClose});
  auto client = OpenClient(server.url(), 2);
  for (int i = 0; i < 5; ++i) {
    auto r = client->Send("POST", "/v1/sagas", "{\"n\":" + std::to_string(i) + "}", {}, 5000);
    ASSERT_TRUE(r.ok()) << r.status().message();
  }
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(requests[i].body, "{\"n\":" + std::to_string(i) + "}");
}

TEST(HttpClientTest, AReusedConnectionClosedBeforeTheAnswerIsRetriedOnceOnly) {
  LoopbackCoordinator server;
  auto client = OpenClient(server.url(), 2);
  ASSERT_TRUE(client->Send("GET", "/first", "", {}, 5000).ok());
  // From now on every request is read and its connection closed unanswered:
  // the reused connection's failure is retried once on a fresh one, whose
  // failure is the answer.
  server.SetBehavior({.mode = Mode::kDropRequest});
  HttpSendTrace trace;
  auto r = client->Send("POST", "/second", "{}", {}, 5000, &trace);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().message();
  EXPECT_TRUE(trace.sent);
  EXPECT_TRUE(trace.resent);                // the first copy may have acted
  EXPECT_EQ(server.requests().size(), 3u);  // /first, then /second twice
  EXPECT_EQ(server.accepted(), 2);

  // A fresh connection's failure is not retried.
  auto fresh = OpenClient(server.url(), 0);
  ASSERT_FALSE(fresh->Send("POST", "/third", "{}", {}, 5000).ok());
  EXPECT_EQ(server.requests().size(), 4u);
}

// The server read the request on the reused connection, closed it and
// stopped listening: the second try cannot connect, yet the request was
// sent (and may have acted). Before, the second try's failure to connect
// reported the request as never sent.
TEST(HttpClientTest, ARequestSentBeforeTheServerWentAwayIsReportedSent) {
  LoopbackCoordinator server;
  auto client = OpenClient(server.url(), 2);
  ASSERT_TRUE(client->Send("GET", "/keep", "", {}, 5000).ok());
  server.SetBehavior({.mode = Mode::kDropRequest});
  std::thread stopper([&] {
    while (server.requests().size() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    server.Stop();
  });
  HttpSendTrace trace;
  auto r = client->Send("POST", "/v1/2pc/g/commit", "{}", {}, 5000, &trace);
  stopper.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(server.requests()[1].target, "/v1/2pc/g/commit");
  EXPECT_TRUE(trace.sent) << r.status().message();
  EXPECT_TRUE(trace.resent) << r.status().message();
}

TEST(HttpClientTest, FailuresSayWhereAndWhetherTheRequestWasSent) {
  LoopbackCoordinator silent;
  silent.SetBehavior({.mode = Mode::kSilent});
  auto client = OpenClient(silent.url(), 2);
  HttpSendTrace trace;
  auto r = client->Send("POST", "/v1/sagas", "{}", {}, 300, &trace);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kTimedOut);
  EXPECT_EQ(r.status().message(), "read: timed out after 300 ms");
  EXPECT_TRUE(trace.sent);
  EXPECT_FALSE(trace.resent);

  std::string closed_url;
  {
    LoopbackCoordinator gone;
    closed_url = gone.url();
  }  // stopped: nothing listens on its port any more
  auto refused = OpenClient(closed_url, 2);
  trace = HttpSendTrace{.sent = true};
  r = refused->Send("POST", "/v1/sagas", "{}", {}, 2000, &trace);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message().rfind("connect: ", 0), 0u) << r.status().message();
  EXPECT_FALSE(trace.sent);
  EXPECT_EQ(refused->connections_opened(), 0);
}

TEST(HttpClientTest, HeadersWithControlCharactersAreRefusedBeforeConnecting) {
  LoopbackCoordinator server;
  auto client = OpenClient(server.url(), 2);
  for (const auto& [name, value] : std::map<std::string, std::string>{
           {"X-Evil", "a\r\nInjected: 1"}, {"X-Nul", std::string("a\0b", 3)}, {"", "v"}}) {
    auto r = client->Send("GET", "/", "", {{name, value}}, 2000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  auto r = client->Send("BREW", "/", "", {}, 2000);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(server.accepted(), 0);
}

TEST(HttpClientTest, OnlyHttpAndHttpsServersCanBeOpened) {
  auto thrift = ParseEndpoint("thrift://127.0.0.1:9090");
  ASSERT_TRUE(thrift.ok());
  auto client = HttpClient::Open(*thrift, {});
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument);

  auto https = ParseEndpoint("https://127.0.0.1:9443");
  ASSERT_TRUE(https.ok());
  HttpClientOptions bad_ca;
  bad_ca.tls.ca_file = "/nonexistent/ca.pem";
  client = HttpClient::Open(*https, bad_ca);
  ASSERT_FALSE(client.ok());
  EXPECT_NE(client.status().message().find("ca.pem"), std::string::npos)
      << client.status().message();
}

}  // namespace
}  // namespace treaty
