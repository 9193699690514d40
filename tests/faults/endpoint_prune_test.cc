// Per-endpoint state is freed. The HTTP and Thrift
// participant callers are made to call thousands of distinct host:port
// endpoints (closed loopback ports, plus real participants whose pooled
// keep-alive connections stay open); once nothing has called them for the
// (short, in this test) endpoint idle period, the callers keep state for none.
//
// Before the change: every endpoint ever called kept its HostPool (HTTP) or
// idle list (Thrift) for good, ~1.3 KB each, and idle Thrift connections had
// no time-out.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "http/http_participant_caller.h"
#include "support/test_participant.h"
#include "support/thrift_test_participant.h"
#include "thrift/thrift_participant_caller.h"

namespace treaty::testing {
namespace {

using Clock = std::chrono::steady_clock;

// `n` loopback ports that were free a moment ago (bound to port 0 at once,
// then closed): calling them is refused, as a participant that went away.
std::vector<uint16_t> ClosedPorts(int n) {
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  for (int i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot bind a loopback port";
      if (fd >= 0) ::close(fd);
      break;
    }
    fds.push_back(fd);
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) ::close(fd);
  return ports;
}

ParticipantRequest Request(const std::string& url) {
  ParticipantRequest req;
  req.url = url;
  req.gtid = "g-endpoints";
  req.branch = "b";
  req.op = "action";
  req.payload_json = "null";
  req.timeout_ms = 5000;
  return req;
}

// Waits until `count()` is 0, up to `timeout`; returns the last count.
template <typename Count>
size_t WaitForZero(Count count, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  size_t n = count();
  while (n > 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    n = count();
  }
  return n;
}

TEST(EndpointPruneTest, HttpCallerForgetsIdleEndpoints) {
  constexpr int kClosed = 2000;
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([&io] { io.run(); });

  TestParticipant participant;  // a live one: its keep-alive connection stays pooled
  HttpCallerOptions options;
  options.idle_timeout_ms = 300;
  options.endpoint_idle_ms = 500;
  auto caller = std::make_unique<HttpParticipantCaller>(io, options);

  std::atomic<int> done{0}, ok{0};
  const auto count_done = [&](ParticipantResponse r) {
    if (r.outcome == CallOutcome::kOk) ++ok;
    ++done;
  };
  caller->Call(Request(participant.Url("b", "action")), count_done);
  const std::vector<uint16_t> ports = ClosedPorts(kClosed);
  ASSERT_EQ(ports.size(), static_cast<size_t>(kClosed));
  for (uint16_t port : ports) {
    caller->Call(Request("http://127.0.0.1:" + std::to_string(port) + "/b/action"), count_done);
  }
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (done < kClosed + 1 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(done.load(), kClosed + 1);
  EXPECT_EQ(ok.load(), 1);
  const size_t peak = caller->endpoint_count();
  std::printf("[ endpoints ] http: %zu endpoints known right after %d calls\n", peak, kClosed + 1);
  EXPECT_GT(peak, 0u);

  // Generous: the idle period is 0.5 s.
  EXPECT_EQ(WaitForZero([&] { return caller->endpoint_count(); }, std::chrono::seconds(15)), 0u);

  // A forgotten endpoint is called again as if new.
  done = 0;
  caller->Call(Request(participant.Url("b", "action")), count_done);
  while (done < 1 && Clock::now() < deadline + std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(ok.load(), 2);

  caller.reset();
  work.reset();
  for (auto& t : threads) t.join();
}

TEST(EndpointPruneTest, ThriftCallerClosesIdleConnectionsAndForgetsEndpoints) {
  constexpr int kLive = 10;
  constexpr int kClosed = 300;
  std::vector<std::unique_ptr<ThriftTestParticipant>> live;
  for (int i = 0; i < kLive; ++i) live.push_back(std::make_unique<ThriftTestParticipant>());
  ThriftCallerOptions options;
  options.idle_timeout_ms = 300;
  options.endpoint_idle_ms = 500;
  ThriftParticipantCaller caller(options);

  std::atomic<int> done{0}, ok{0};
  const auto count_done = [&](ParticipantResponse r) {
    if (r.outcome == CallOutcome::kOk) ++ok;
    ++done;
  };
  for (const auto& p : live) caller.Call(Request(p->Url()), count_done);
  for (uint16_t port : ClosedPorts(kClosed)) {
    caller.Call(Request("thrift://127.0.0.1:" + std::to_string(port)), count_done);
  }
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (done < kLive + kClosed && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(done.load(), kLive + kClosed);
  EXPECT_EQ(ok.load(), kLive);
  const size_t peak = caller.endpoint_count();
  std::printf("[ endpoints ] thrift: %zu endpoints known right after %d calls\n", peak,
              kLive + kClosed);
  EXPECT_GT(peak, 0u);

  EXPECT_EQ(WaitForZero([&] { return caller.endpoint_count(); }, std::chrono::seconds(15)), 0u);

  // Forgotten endpoints are called again as if new.
  done = 0;
  for (const auto& p : live) caller.Call(Request(p->Url()), count_done);
  while (done < kLive && Clock::now() < deadline + std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(ok.load(), 2 * kLive);
}

}  // namespace
}  // namespace treaty::testing
