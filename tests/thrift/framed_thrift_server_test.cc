// The shared Thrift server loop (coordinator/thrift/framed_thrift_server.h)
// with a service of the test's own, and treatyd's ThriftServer on it:
//
// - each connection gets its own service from the factory, told the peer;
//   close_after_answer closes the connection once the answer is written;
// - a listener that cannot bind on [::1] says "cannot serve Thrift on
//   [::1]:PORT: ..." (the address in brackets), for the loop and for
//   ThriftServer (skipped when the machine has no IPv6 loopback).
//
// The loop's limits and time-outs are covered through treatyd
// (thrift_input_test, tests/faults/front_ends_sockets_test.cc) and the SDK
// (tests/sdk/thrift_endpoint_test.cc).

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <thrift/transport/TTransportException.h>

#include "ParticipantService.h"
#include "common/mutex.h"
#include "thrift/framed_thrift_server.h"
#include "thrift/thrift_server.h"

namespace treaty {
namespace {

namespace at = apache::thrift;

// Answers every call OK, counting them.
class CountingParticipant : public rpc::ParticipantServiceIf {
 public:
  std::atomic<int> calls{0};
  void action(rpc::ParticipantReply& out, const rpc::ParticipantCall&) override { Ok(out); }
  void compensate(rpc::ParticipantReply& out, const rpc::ParticipantCall&) override { Ok(out); }
  void prepare(rpc::ParticipantReply& out, const rpc::ParticipantCall&) override { Ok(out); }
  void commit(rpc::ParticipantReply& out, const rpc::ParticipantCall&) override { Ok(out); }
  void abort(rpc::ParticipantReply& out, const rpc::ParticipantCall&) override { Ok(out); }

 private:
  void Ok(rpc::ParticipantReply& out) {
    ++calls;
    out.outcome = rpc::Outcome::OK;
  }
};

struct Client {
  std::shared_ptr<at::transport::TTransport> transport;
  std::unique_ptr<rpc::ParticipantServiceClient> rpc;
  Client(const std::string& host, int port) {
    auto socket = std::make_shared<at::transport::TSocket>(host, port);
    socket->setRecvTimeout(10000);
    transport = std::make_shared<at::transport::TFramedTransport>(socket);
    transport->open();
    rpc = std::make_unique<rpc::ParticipantServiceClient>(
        std::make_shared<at::protocol::TBinaryProtocol>(transport));
  }
  rpc::Outcome::type Action() {
    rpc::ParticipantCall call;
    call.gtid = "g";
    call.branch = "b";
    call.op = "action";
    rpc::ParticipantReply reply;
    rpc->action(reply, call);
    return reply.outcome;
  }
};

// A socket listening on [::1]:port, or fd -1 without an IPv6 loopback.
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

TEST(FramedThriftServerTest, EachConnectionGetsItsServiceAndMayBeClosedAfterAnAnswer) {
  auto participant = std::make_shared<CountingParticipant>();
  auto processor = std::make_shared<rpc::ParticipantServiceProcessor>(participant);
  Mutex mu;
  std::vector<std::string> peers;
  std::atomic<int> certificates{0};
  FramedThriftServerOptions options;
  options.port = 0;
  FramedThriftServer server(options, [&](const std::string& peer) {
    {
      MutexLock lock(&mu);
      peers.push_back(peer);
    }
    ThriftConnectionService service;
    service.processor = processor;
    service.on_client_certificate = [&](const std::string&) { ++certificates; };
    // Each connection answers two calls, then is closed.
    service.close_after_answer = [answers = std::make_shared<int>(0)] { return ++*answers >= 2; };
    return service;
  });
  ASSERT_TRUE(server.Start().ok());
  ASSERT_NE(server.port(), 0);

  Client c("127.0.0.1", server.port());
  EXPECT_EQ(c.Action(), rpc::Outcome::OK);
  EXPECT_EQ(c.Action(), rpc::Outcome::OK);
  EXPECT_THROW(c.Action(), at::transport::TTransportException);  // closed after two answers
  Client d("127.0.0.1", server.port());
  EXPECT_EQ(d.Action(), rpc::Outcome::OK);
  EXPECT_EQ(participant->calls, 3);
  EXPECT_EQ(certificates, 0);  // plain Thrift: no handshake, no certificate
  {
    MutexLock lock(&mu);
    ASSERT_EQ(peers.size(), 2u);
    EXPECT_EQ(peers[0].rfind("127.0.0.1:", 0), 0u) << peers[0];
  }
  server.Stop();
  server.Stop();  // idempotent
}

TEST(FramedThriftServerTest, BindFailureOnIpv6NamesTheAddressInBrackets) {
  Ipv6Listener taken;
  if (taken.fd < 0) GTEST_SKIP() << "no IPv6 loopback on this machine";
  const std::string expected = "cannot serve Thrift on [::1]:" + std::to_string(taken.port) + ": ";

  FramedThriftServerOptions options;
  options.host = "::1";
  options.port = taken.port;
  FramedThriftServer loop(options, [](const std::string&) { return ThriftConnectionService{}; });
  Status s = loop.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find(expected), std::string::npos) << s.ToString();

  ThriftServerOptions front;
  front.host = "::1";
  front.port = taken.port;
  ThriftServer server([]() -> TxnService* { return nullptr; }, front);
  s = server.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(expected), std::string::npos) << s.ToString();
}

TEST(FramedThriftServerTest, ServesOnIpv6Loopback) {
  Ipv6Listener probe;
  if (probe.fd < 0) GTEST_SKIP() << "no IPv6 loopback on this machine";
  auto processor =
      std::make_shared<rpc::ParticipantServiceProcessor>(std::make_shared<CountingParticipant>());
  FramedThriftServerOptions options;
  options.host = "::1";
  options.port = 0;
  std::string peer;
  FramedThriftServer server(options, [&](const std::string& p) {
    peer = p;  // the accepting thread; read after the call returned
    ThriftConnectionService service;
    service.processor = processor;
    return service;
  });
  ASSERT_TRUE(server.Start().ok());
  Client c("::1", server.port());
  EXPECT_EQ(c.Action(), rpc::Outcome::OK);
  EXPECT_EQ(peer.rfind("[::1]:", 0), 0u) << peer;
}

}  // namespace
}  // namespace treaty
