// The SDK's Thrift endpoint (participant-sdk/src/thrift_endpoint.h) on the
// shared server loop (coordinator/thrift/framed_thrift_server.h): the
// protections it gained from treatyd's loop, with small limits so the test
// is fast, and the meaning `handler_threads` keeps.
//
// - A connection over `max_connections` is closed at once; a slot frees when
//   a client leaves.
// - A frame not complete `request_timeout_ms` after its first byte closes
//   the connection, long before the idle time-out.
// - At most `handler_threads` handlers run at once; the other calls wait and
//   are all answered.
// - Stop() waits for the running handler only: calls still waiting for a
//   handler slot are answered RETRY and their handlers never run.
// - ParticipantServerOptions' thrift_* limits reach the endpoint (a small
//   connection cap, idle and request time-outs); a limit below 1 is refused.
// - A bind failure on [::1] names the address in brackets (skipped when the
//   machine has no IPv6 loopback).

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <thrift/transport/TTransportException.h>

#include "ParticipantService.h"
#include "thrift/thrift_wire.h"
#include "thrift_endpoint.h"
#include "treaty/participant_server.h"

namespace treaty::testing {
namespace {

namespace at = apache::thrift;
using treaty_sdk_detail::ThriftEndpoint;
using treaty_sdk_detail::ThriftEndpointLimits;
using treaty_sdk_detail::ThriftOutcome;

// A framed binary-protocol ParticipantService client on 127.0.0.1:`port`.
struct Client {
  std::shared_ptr<at::transport::TTransport> transport;
  std::unique_ptr<rpc::ParticipantServiceClient> rpc;

  explicit Client(int port, const std::string& host = "127.0.0.1") {
    auto socket = std::make_shared<at::transport::TSocket>(host, port);
    socket->setRecvTimeout(10000);
    transport = std::make_shared<at::transport::TFramedTransport>(socket);
    transport->open();
    rpc = std::make_unique<rpc::ParticipantServiceClient>(
        std::make_shared<at::protocol::TBinaryProtocol>(transport));
  }
  ~Client() {
    try {
      transport->close();
    } catch (...) {
    }
  }

  // One action call; its outcome, or throws what the transport threw.
  rpc::Outcome::type Action(const std::string& gtid) {
    rpc::ParticipantCall call;
    call.gtid = gtid;
    call.branch = "book";
    call.op = "action";
    call.payload = "{}";
    call.idempotency_key = gtid + "/book/action";
    rpc::ParticipantReply reply;
    rpc->action(reply, call);
    return reply.outcome;
  }
};

ThriftOutcome Ok(const CallContext&) { return {ThriftOutcome::Kind::kOk, std::nullopt, ""}; }

// A socket listening on [::1]:port (port picked by the kernel), or fd -1
// when the machine has no IPv6 loopback.
struct Ipv6Listener {
  int fd = -1;
  uint16_t port = 0;
  Ipv6Listener() {
    fd = ::socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) return;
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_loopback;
    socklen_t len = sizeof(addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 4) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(fd);
      fd = -1;
      return;
    }
    port = ntohs(addr.sin6_port);
  }
  ~Ipv6Listener() {
    if (fd >= 0) ::close(fd);
  }
};

TEST(ThriftEndpointTest, ConnectionsOverTheCapAreClosedAtOnce) {
  ThriftEndpointLimits limits;
  limits.max_connections = 2;
  ThriftEndpoint endpoint("127.0.0.1", 0, 4, Ok, limits);
  ASSERT_EQ(endpoint.Start(), "");
  const int port = endpoint.port();
  auto a = std::make_unique<Client>(port);
  Client b(port);
  EXPECT_EQ(a->Action("g-a"), rpc::Outcome::OK);
  EXPECT_EQ(b.Action("g-b"), rpc::Outcome::OK);
  {
    Client over(port);  // the kernel accepts; the server closes it on accept
    EXPECT_THROW(over.Action("g-over"), at::transport::TTransportException);
  }
  // The slot of a client that leaves is free again (once its thread saw
  // the end of the connection).
  a.reset();
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    try {
      Client c(port);
      served = c.Action("g-c") == rpc::Outcome::OK;
    } catch (const at::TException&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  EXPECT_TRUE(served);
  EXPECT_EQ(b.Action("g-b2"), rpc::Outcome::OK);  // never disturbed
  endpoint.Stop();
}

TEST(ThriftEndpointTest, AFrameMustBeCompleteWithinTheRequestTimeout) {
  ThriftEndpointLimits limits;
  limits.idle_timeout_ms = 20000;
  limits.request_timeout_ms = 400;
  ThriftEndpoint endpoint("127.0.0.1", 0, 4, Ok, limits);
  ASSERT_EQ(endpoint.Start(), "");
  // A frame header declaring 100 bytes, and 10 of them.
  const std::string partial = ThriftWriter().I32(100).Raw(std::string(10, 'x')).bytes();
  const auto start = std::chrono::steady_clock::now();
  WireReply r = SendRaw(endpoint.port(), partial, 10000);
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count();
  EXPECT_TRUE(r.connected);
  EXPECT_TRUE(r.closed) << "the server kept a half-sent frame past its request time-out";
  EXPECT_TRUE(r.frame.empty());
  EXPECT_GE(elapsed, 300);
  EXPECT_LT(elapsed, 5000);
  Client after(endpoint.port());
  EXPECT_EQ(after.Action("g-after"), rpc::Outcome::OK);
}

TEST(ThriftEndpointTest, HandlerThreadsBoundTheHandlersRunningAtOnce) {
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  auto slow = [&](const CallContext&) {
    const int now = ++running;
    int seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    --running;
    return ThriftOutcome{ThriftOutcome::Kind::kOk, std::nullopt, ""};
  };
  ThriftEndpoint endpoint("127.0.0.1", 0, /*handler_threads=*/2, slow);
  ASSERT_EQ(endpoint.Start(), "");
  const int port = endpoint.port();
  std::atomic<int> ok{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < 6; ++i) {
    callers.emplace_back([&, i] {
      try {
        Client c(port);
        if (c.Action("g-" + std::to_string(i)) == rpc::Outcome::OK) ++ok;
      } catch (const at::TException&) {
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(ok, 6);
  EXPECT_EQ(most, 2);
}

TEST(ThriftEndpointTest, StopWaitsForRunningHandlers) {
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
  auto slow = [&](const CallContext&) {
    started = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    finished = true;
    return ThriftOutcome{ThriftOutcome::Kind::kOk, std::nullopt, ""};
  };
  ThriftEndpoint endpoint("127.0.0.1", 0, 1, slow);
  ASSERT_EQ(endpoint.Start(), "");
  const int port = endpoint.port();
  std::atomic<bool> answered{false};
  std::thread caller([&] {
    try {
      Client c(port);
      answered = c.Action("g-stop") == rpc::Outcome::OK;
    } catch (const at::TException&) {
    }
  });
  for (int i = 0; i < 500 && !started; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(started);
  endpoint.Stop();
  EXPECT_TRUE(finished);
  caller.join();
  EXPECT_TRUE(answered);
  endpoint.Stop();  // idempotent
}

// The repro of the review: one handler slot, a slow handler, several calls
// at once, then Stop() while the first runs. Before the fix Stop() ran every
// waiting call (one handler time each) after it began.
TEST(ThriftEndpointTest, StopRunsNoCallThatHadNotStartedItsHandler) {
  constexpr int kCalls = 5;
  constexpr int kHandlerMs = 1500;
  std::atomic<int> ran{0};
  auto slow = [&](const CallContext&) {
    ++ran;
    std::this_thread::sleep_for(std::chrono::milliseconds(kHandlerMs));
    return ThriftOutcome{ThriftOutcome::Kind::kOk, std::nullopt, ""};
  };
  ThriftEndpoint endpoint("127.0.0.1", 0, /*handler_threads=*/1, slow);
  ASSERT_EQ(endpoint.Start(), "");
  const int port = endpoint.port();
  std::atomic<int> ok{0}, retry{0}, closed{0}, sent{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back([&, i] {
      try {
        Client c(port);
        ++sent;
        const rpc::Outcome::type outcome = c.Action("g-" + std::to_string(i));
        if (outcome == rpc::Outcome::OK) ++ok;
        if (outcome == rpc::Outcome::RETRY) ++retry;
      } catch (const at::TException&) {
        ++closed;
      }
    });
  }
  for (int i = 0; i < 500 && (ran == 0 || sent < kCalls); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(ran, 1);
  ASSERT_EQ(sent, kCalls);
  // Let the other calls' frames arrive and queue for the slot.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  const auto start = std::chrono::steady_clock::now();
  endpoint.Stop();
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count();
  for (auto& t : callers) t.join();
  EXPECT_LT(elapsed, kHandlerMs + 1000) << "Stop() ran calls queued for a handler slot";
  EXPECT_EQ(ran, 1) << "a handler ran after Stop() began";
  EXPECT_EQ(ok, 1);
  // Answered RETRY; a call whose frame had not been read in full when
  // Stop() began has its connection closed instead (rare here: they were
  // sent 300 ms before).
  EXPECT_EQ(retry + closed, kCalls - 1);
  EXPECT_GE(retry, 1) << closed << " calls saw the connection closed";
}

// Options whose Thrift limits are small, on a ParticipantServer serving
// the step "book".
std::unique_ptr<sdk::ParticipantServer> ServerWithLimits(int max_connections, int idle_ms,
                                                         int request_ms) {
  sdk::ParticipantServerOptions options;
  options.thrift_port = 0;
  options.thrift_max_connections = max_connections;
  options.thrift_idle_timeout_ms = idle_ms;
  options.thrift_request_timeout_ms = request_ms;
  auto server = std::make_unique<sdk::ParticipantServer>(options);
  auto ok = [](const CallContext&) { return Status::Ok(); };
  server->AddSagaStep("book", ok, ok);
  return server;
}

TEST(ThriftEndpointTest, ParticipantServerOptionsSetTheConnectionCap) {
  auto server = ServerWithLimits(/*max_connections=*/2, 60000, 30000);
  ASSERT_TRUE(server->Start().ok());
  const int port = server->thrift_port();
  Client a(port), b(port);
  EXPECT_EQ(a.Action("g-a"), rpc::Outcome::OK);
  EXPECT_EQ(b.Action("g-b"), rpc::Outcome::OK);
  Client over(port);  // accepted by the kernel, closed by the server
  EXPECT_THROW(over.Action("g-over"), at::transport::TTransportException);
  EXPECT_EQ(a.Action("g-a2"), rpc::Outcome::OK);  // never disturbed
}

TEST(ThriftEndpointTest, ParticipantServerOptionsSetTheIdleAndRequestTimeouts) {
  auto server = ServerWithLimits(512, /*idle_ms=*/1000, /*request_ms=*/300);
  ASSERT_TRUE(server->Start().ok());
  const int port = server->thrift_port();
  const auto timed = [port](const std::string& bytes, WireReply* r) {
    const auto start = std::chrono::steady_clock::now();
    *r = SendRaw(port, bytes, 10000);
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start)
        .count();
  };
  WireReply r;
  // A silent connection: closed after the idle time-out (not the default 60 s).
  int64_t ms = timed("", &r);
  EXPECT_TRUE(r.closed);
  EXPECT_GE(ms, 800);
  EXPECT_LT(ms, 5000);
  // A frame header declaring 100 bytes, and 10 of them: closed after the
  // request time-out, before the idle one.
  ms = timed(ThriftWriter().I32(100).Raw(std::string(10, 'x')).bytes(), &r);
  EXPECT_TRUE(r.closed);
  EXPECT_GE(ms, 200);
  EXPECT_LT(ms, 900);
}

TEST(ThriftEndpointTest, ParticipantServerRefusesThriftLimitsBelowOne) {
  for (auto [connections, idle, request, name] :
       {std::tuple{0, 60000, 30000, "thrift_max_connections"},
        std::tuple{512, 0, 30000, "thrift_idle_timeout_ms"},
        std::tuple{512, 60000, -1, "thrift_request_timeout_ms"}}) {
    auto server = ServerWithLimits(connections, idle, request);
    const Status s = server->Start();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find(name), std::string::npos) << s.ToString();
    EXPECT_EQ(server->http_port(), 0) << "nothing is served";
  }
}

TEST(ThriftEndpointTest, BindFailureOnIpv6NamesTheAddressInBrackets) {
  Ipv6Listener taken;
  if (taken.fd < 0) GTEST_SKIP() << "no IPv6 loopback on this machine";
  const std::string where = "[::1]:" + std::to_string(taken.port);

  ThriftEndpoint endpoint("::1", taken.port, 1, Ok);
  const std::string error = endpoint.Start();
  EXPECT_NE(error.find("cannot serve Thrift on " + where + ": "), std::string::npos) << error;

  sdk::ParticipantServerOptions options;
  options.http_host = "::1";
  options.thrift_port = taken.port;
  sdk::ParticipantServer server(options);
  const Status s = server.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(where), std::string::npos) << s.ToString();
  EXPECT_EQ(s.message().find(" ::1:"), std::string::npos) << s.ToString();
}

TEST(ThriftEndpointTest, ServesOnIpv6Loopback) {
  Ipv6Listener probe;
  if (probe.fd < 0) GTEST_SKIP() << "no IPv6 loopback on this machine";
  ThriftEndpoint endpoint("::1", 0, 1, Ok);
  ASSERT_EQ(endpoint.Start(), "");
  Client c(endpoint.port(), "::1");
  EXPECT_EQ(c.Action("g-v6"), rpc::Outcome::OK);
}

}  // namespace
}  // namespace treaty::testing
