// ThriftParticipantCaller against real loopback Thrift servers: which
// failures are configuration errors (ParticipantResponse::config_error) and
// which are passing faults; thrifts:// (Thrift over TLS, certificates made at
// test time) with keep-alive, a wrong CA, a wrong name and mTLS; the SSRF
// guard at connect time; every call bounded by its time-out however slowly
// a hostile participant trickles its TLS handshake or its reply.

#include "thrift/thrift_participant_caller.h"

#include <netdb.h>
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <future>
#include <memory>
#include <thread>

#include <gtest/gtest.h>
#include <thrift/TOutput.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/server/TNonblockingServer.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TNonblockingServerSocket.h>
#include <thrift/transport/TSSLServerSocket.h>
#include <thrift/transport/TSSLSocket.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "CoordinatorService.h"
#include "ParticipantService.h"
#include "security/participant_policy.h"
#include "support/test_pki.h"
#include "support/thrift_test_participant.h"
#include "thrift/trickle_peer.h"

namespace treaty {
namespace {

using namespace std::chrono_literals;
namespace at = apache::thrift;

// A Thrift server on loopback that speaks framed/binary but serves another
// service (the coordinator's, with a do-nothing handler): every
// ParticipantService method is unknown to it.
class WrongServiceServer {
 public:
  WrongServiceServer() {
    at::GlobalOutput.setOutputFunction([](const char*) {});
    auto processor = std::make_shared<rpc::CoordinatorServiceProcessor>(
        std::make_shared<rpc::CoordinatorServiceNull>());
    auto socket = std::make_shared<at::transport::TNonblockingServerSocket>("127.0.0.1", 0);
    server_ = std::make_unique<at::server::TNonblockingServer>(
        processor, std::make_shared<at::protocol::TBinaryProtocolFactory>(), socket);
    std::promise<void> bound;
    auto bound_future = bound.get_future();
    loop_ = std::thread([this, &bound] {
      server_->registerEvents(nullptr);
      port_ = static_cast<uint16_t>(server_->getListenPort());
      bound.set_value();
      try {
        server_->serve();
      } catch (const std::exception&) {
      }
      done_ = true;
    });
    bound_future.wait();
  }
  ~WrongServiceServer() {
    while (!done_) {
      server_->stop();
      std::this_thread::sleep_for(20ms);
    }
    loop_.join();
  }
  std::string Url() const { return "thrift://127.0.0.1:" + std::to_string(port_); }

 private:
  std::unique_ptr<at::server::TNonblockingServer> server_;
  std::thread loop_;
  std::atomic<bool> done_{false};
  uint16_t port_ = 0;
};

ParticipantResponse CallSync(ThriftParticipantCaller& caller, const std::string& url,
                             const std::string& op, int64_t timeout_ms = 5000) {
  ParticipantRequest req;
  req.url = url;
  req.gtid = "g1";
  req.branch = "b1";
  req.op = op;
  req.payload_json = "{}";
  req.timeout_ms = timeout_ms;
  std::promise<ParticipantResponse> done;
  auto fut = done.get_future();
  caller.Call(req, [&done](ParticipantResponse r) { done.set_value(std::move(r)); });
  EXPECT_EQ(fut.wait_for(30s), std::future_status::ready);
  return fut.get();
}

// A ParticipantService over TLS (thrifts://) on `host`, answering OK to
// everything; counts the connections it serves. With `client_ca`, clients
// must present a certificate from it.
class TlsParticipantServer {
 public:
  TlsParticipantServer(const testing::CertFiles& cert, const std::string& client_ca = "",
                       const std::string& host = "127.0.0.1") {
    at::GlobalOutput.setOutputFunction([](const char*) {});
    at::transport::TSSLSocketFactory::setManualOpenSSLInitialization(true);
    auto factory = std::make_shared<at::transport::TSSLSocketFactory>();
    factory->server(true);
    factory->loadCertificate(cert.cert.c_str());
    factory->loadPrivateKey(cert.key.c_str());
    if (!client_ca.empty()) factory->loadTrustedCertificates(client_ca.c_str());
    factory->authenticate(!client_ca.empty());
    auto socket = std::make_shared<at::transport::TSSLServerSocket>(host, 0, factory);
    socket_ = socket.get();
    server_ = std::make_unique<at::server::TThreadedServer>(
        std::make_shared<rpc::ParticipantServiceProcessor>(std::make_shared<Handler>()), socket,
        std::make_shared<at::transport::TFramedTransportFactory>(),
        std::make_shared<at::protocol::TBinaryProtocolFactory>());
    auto events = std::make_shared<Events>(this);
    server_->setServerEventHandler(events);
    auto listening = events->listening.get_future();
    thread_ = std::thread([this] {
      // The connection threads inherit this mask: a write to a client that
      // hung up (OpenSSL's send(2) raises SIGPIPE) fails instead of ending the test.
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
      try {
        server_->serve();
      } catch (const std::exception&) {
      }
    });
    listening.wait();
  }
  ~TlsParticipantServer() {
    server_->stop();
    thread_.join();
  }
  uint16_t port() const { return static_cast<uint16_t>(socket_->getPort()); }
  int connections() const { return connections_.load(); }

 private:
  struct Handler : rpc::ParticipantServiceIf {
    static void Ok(rpc::ParticipantReply& out) { out.outcome = rpc::Outcome::OK; }
    void action(rpc::ParticipantReply& out, const rpc::ParticipantCall&) override { Ok(out); }
    void compensate(rpc::ParticipantReply& out, const rpc::ParticipantCall&) override { Ok(out); }
    void prepare(rpc::ParticipantReply& out, const rpc::ParticipantCall&) override { Ok(out); }
    void commit(rpc::ParticipantReply& out, const rpc::ParticipantCall&) override { Ok(out); }
    void abort(rpc::ParticipantReply& out, const rpc::ParticipantCall&) override { Ok(out); }
  };
  struct Events : at::server::TServerEventHandler {
    explicit Events(TlsParticipantServer* s) : server(s) {}
    void preServe() override { listening.set_value(); }
    void* createContext(std::shared_ptr<at::protocol::TProtocol>,
                        std::shared_ptr<at::protocol::TProtocol>) override {
      ++server->connections_;
      return nullptr;
    }
    TlsParticipantServer* server;
    std::promise<void> listening;
  };

  at::transport::TSSLServerSocket* socket_ = nullptr;
  std::unique_ptr<at::server::TThreadedServer> server_;
  std::thread thread_;
  std::atomic<int> connections_{0};
};

class ThriftsCallerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = testing::TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status().ToString();
    pki_ = std::make_unique<testing::TestPki>(std::move(*pki));
    auto server = pki_->Issue("localhost", "server");
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_cert_ = *server;
    auto client = pki_->Issue("treaty-coordinator", "client");
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_cert_ = *client;
  }
  ThriftCallerOptions Options(bool client_cert = false) const {
    ThriftCallerOptions o;
    o.tls.ca_file = pki_->ca_cert();
    if (client_cert) {
      o.tls.cert_file = client_cert_.cert;
      o.tls.key_file = client_cert_.key;
    }
    return o;
  }
  std::unique_ptr<testing::TestPki> pki_;
  testing::CertFiles server_cert_, client_cert_;
};

TEST_F(ThriftsCallerTest, VerifiedCallsShareOneKeepAliveConnection) {
  TlsParticipantServer server(server_cert_);
  ThriftParticipantCaller caller(Options());
  const std::string url = "thrifts://localhost:" + std::to_string(server.port());
  for (const char* op : {"prepare", "commit", "action"}) {
    auto r = CallSync(caller, url, op);
    EXPECT_EQ(r.outcome, CallOutcome::kOk) << op << ": " << r.error;
  }
  EXPECT_EQ(server.connections(), 1);
  // An IP literal is checked against the certificate's IP subjectAltName.
  auto by_ip = CallSync(caller, "thrifts://127.0.0.1:" + std::to_string(server.port()), "commit");
  EXPECT_EQ(by_ip.outcome, CallOutcome::kOk) << by_ip.error;
  // thrift:// to the same port is another pool (and plain Thrift fails there).
  auto plain = CallSync(caller, "thrift://127.0.0.1:" + std::to_string(server.port()), "commit");
  EXPECT_EQ(plain.outcome, CallOutcome::kTransient);
  EXPECT_EQ(caller.endpoint_count(), 3u);
}

TEST_F(ThriftsCallerTest, CertificateFromAnotherCaIsAConfigError) {
  auto other = testing::TestPki::Create("Some Other CA");
  ASSERT_TRUE(other.ok());
  auto foreign = other->Issue("localhost", "foreign");
  ASSERT_TRUE(foreign.ok());
  TlsParticipantServer server(*foreign);
  ThriftParticipantCaller caller(Options());
  auto r = CallSync(caller, "thrifts://localhost:" + std::to_string(server.port()), "commit");
  EXPECT_EQ(r.outcome, CallOutcome::kTransient);
  EXPECT_TRUE(r.config_error) << r.error;
  EXPECT_EQ(r.error.rfind("certificate verify failed: ", 0), 0u) << r.error;
}

// A good chain for localhost and 127.0.0.1, served on 127.0.0.2.
TEST_F(ThriftsCallerTest, CertificateForAnotherNameIsAConfigError) {
  TlsParticipantServer server(server_cert_, "", "127.0.0.2");
  ThriftParticipantCaller caller(Options());
  auto r = CallSync(caller, "thrifts://127.0.0.2:" + std::to_string(server.port()), "commit");
  EXPECT_EQ(r.outcome, CallOutcome::kTransient);
  EXPECT_TRUE(r.config_error) << r.error;
  EXPECT_NE(r.error.find("does not name '127.0.0.2'"), std::string::npos) << r.error;
}

TEST_F(ThriftsCallerTest, ClientCertificateForMutualTls) {
  TlsParticipantServer server(server_cert_, pki_->ca_cert());
  const std::string url = "thrifts://localhost:" + std::to_string(server.port());
  ThriftParticipantCaller anonymous(Options(/*client_cert=*/false));
  auto refused = CallSync(anonymous, url, "commit");
  EXPECT_EQ(refused.outcome, CallOutcome::kTransient);
  EXPECT_TRUE(refused.config_error) << refused.error;

  ThriftParticipantCaller caller(Options(/*client_cert=*/true));
  auto ok = CallSync(caller, url, "commit");
  EXPECT_EQ(ok.outcome, CallOutcome::kOk) << ok.error;
}

TEST_F(ThriftsCallerTest, UnreadableCaFileIsAConfigError) {
  ThriftCallerOptions options;
  options.tls.ca_file = pki_->dir() + "/no-such-ca.pem";
  ThriftParticipantCaller caller(options);
  auto r = CallSync(caller, "thrifts://localhost:1", "commit");
  EXPECT_EQ(r.outcome, CallOutcome::kTransient);
  EXPECT_TRUE(r.config_error) << r.error;
  EXPECT_NE(r.error.find("TLS cannot be set up"), std::string::npos) << r.error;
}

// The SSRF guard: every loopback spelling of this coordinator's own port is
// denied after resolution and never connected to.
TEST(ThriftParticipantCallerPolicyTest, DeniedAddressesAreNeverConnectedTo) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor own(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  own.non_blocking(true);
  const std::string port = std::to_string(own.local_endpoint().port());
  auto policy = ParticipantPolicy::Create({});
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  (*policy)->AddOwnListener("127.0.0.1", own.local_endpoint().port());
  ThriftCallerOptions options;
  options.policy = *policy;
  ThriftParticipantCaller caller(options);
  for (const std::string& url :
       {"thrift://127.0.0.1:" + port, "thrift://localhost:" + port, "thrift://0x7f000001:" + port,
        "thrifts://localhost:" + port, "thrift://[::1]:" + port}) {
    auto r = CallSync(caller, url, "commit");
    EXPECT_EQ(r.outcome, CallOutcome::kTransient) << url;
    EXPECT_TRUE(r.config_error) << url << ": " << r.error;
    EXPECT_NE(r.error.find("denied"), std::string::npos) << url << ": " << r.error;
  }
  boost::system::error_code ec;
  own.accept(ec);  // non-blocking: would_block when nobody connected
  EXPECT_EQ(ec, boost::asio::error::would_block);
}

TEST(ThriftParticipantCallerTest, UnknownMethodIsAConfigError) {
  WrongServiceServer wrong;
  ThriftParticipantCaller caller(ThriftCallerOptions{});
  auto r = CallSync(caller, wrong.Url(), "commit");
  EXPECT_EQ(r.outcome, CallOutcome::kTransient);
  EXPECT_TRUE(r.config_error) << r.error;
  EXPECT_NE(r.error.find("does not know the method 'commit'"), std::string::npos) << r.error;
}

// As over HTTP: "no such name" from this machine's resolver is a
// configuration error; a resolver that cannot answer now (EAI_AGAIN, e.g. no
// DNS server reachable) is a passing fault.
TEST(ThriftParticipantCallerTest, UnresolvableHostIsAConfigError) {
  ThriftParticipantCaller caller(ThriftCallerOptions{});
  auto r = CallSync(caller, "thrift://no-such-participant.invalid:9090", "commit");
  EXPECT_EQ(r.outcome, CallOutcome::kTransient);
  addrinfo* found = nullptr;
  const int gai = getaddrinfo("no-such-participant.invalid", nullptr, nullptr, &found);
  if (found) freeaddrinfo(found);
  ASSERT_NE(gai, 0) << "the resolver claims a name under .invalid exists";
  const bool no_such_name = gai == EAI_NONAME
#ifdef EAI_NODATA
                            || gai == EAI_NODATA
#endif
      ;
  EXPECT_EQ(r.config_error, no_such_name) << r.error << "; getaddrinfo: " << gai_strerror(gai);
  EXPECT_NE(r.error.find("host 'no-such-participant.invalid' does not resolve"), std::string::npos)
      << r.error;
}

TEST(ThriftParticipantCallerTest, PassingFaultsAreNotConfigErrors) {
  ThriftTestParticipant participant;
  participant.SetRule("b1", "prepare", {{ThriftTestParticipant::Reply::kOk}});
  participant.SetRule("b1", "commit", {{ThriftTestParticipant::Reply::kRetry}});
  participant.SetRule("b1", "abort", {{ThriftTestParticipant::Reply::kThrow}});
  ThriftParticipantCaller caller(ThriftCallerOptions{});

  auto ok = CallSync(caller, participant.Url(), "prepare");
  EXPECT_EQ(ok.outcome, CallOutcome::kOk);
  EXPECT_FALSE(ok.config_error);

  auto retry = CallSync(caller, participant.Url(), "commit");
  EXPECT_EQ(retry.outcome, CallOutcome::kTransient);
  EXPECT_FALSE(retry.config_error) << retry.error;

  auto raised = CallSync(caller, participant.Url(), "abort");  // handler threw
  EXPECT_EQ(raised.outcome, CallOutcome::kTransient);
  EXPECT_FALSE(raised.config_error) << raised.error;

  auto refused = CallSync(caller, "thrift://127.0.0.1:1", "commit");
  EXPECT_EQ(refused.outcome, CallOutcome::kTransient);
  EXPECT_FALSE(refused.config_error) << refused.error;
}

// A participant that trickles (one byte every 300 ms, so no per-read
// time-out fires) is cut off at the call's time-out: the TLS handshake of a
// thrifts:// call, the reply of a thrift:// call. Four such participants
// would otherwise hold every thread of the call pool.
TEST(ThriftParticipantCallerDeadlineTest, TrickledTlsHandshakeTimesOut) {
  testing::TricklePeer peer(testing::TricklePeer::Mode::kTlsHandshake);
  ThriftParticipantCaller caller(ThriftCallerOptions{});  // system trust store: never reached
  const auto start = std::chrono::steady_clock::now();
  auto r = CallSync(caller, "thrifts://127.0.0.1:" + std::to_string(peer.port()), "action", 1000);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.outcome, CallOutcome::kTransient);
  EXPECT_FALSE(r.config_error) << r.error;
  EXPECT_NE(r.error.find("timed out after 1000 ms"), std::string::npos) << r.error;
  EXPECT_LT(took, 2500ms);
  EXPECT_EQ(peer.accepted(), 1);
}

TEST(ThriftParticipantCallerDeadlineTest, TrickledReplyTimesOut) {
  testing::TricklePeer peer(testing::TricklePeer::Mode::kReply);
  ThriftParticipantCaller caller(ThriftCallerOptions{});
  const auto start = std::chrono::steady_clock::now();
  auto r = CallSync(caller, "thrift://127.0.0.1:" + std::to_string(peer.port()), "commit", 1000);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.outcome, CallOutcome::kTransient);
  EXPECT_FALSE(r.config_error) << r.error;
  EXPECT_NE(r.error.find("timed out after 1000 ms"), std::string::npos) << r.error;
  EXPECT_LT(took, 2500ms);
}

// Calls on the whole pool at once: each ends by its own deadline, and a
// participant that answers is served right after.
TEST(ThriftParticipantCallerDeadlineTest, TricklersDoNotHoldThePool) {
  testing::TricklePeer peer(testing::TricklePeer::Mode::kTlsHandshake);
  ThriftTestParticipant good;
  good.SetRule("b1", "commit", {{ThriftTestParticipant::Reply::kOk}});
  ThriftCallerOptions options;
  options.threads = 2;
  ThriftParticipantCaller caller(options);
  const std::string url = "thrifts://127.0.0.1:" + std::to_string(peer.port());
  std::vector<std::future<ParticipantResponse>> slow;
  for (int i = 0; i < 4; ++i) {
    slow.push_back(
        std::async(std::launch::async, [&] { return CallSync(caller, url, "action", 1000); }));
  }
  const auto start = std::chrono::steady_clock::now();
  for (auto& f : slow) {
    auto r = f.get();
    EXPECT_NE(r.error.find("timed out after 1000 ms"), std::string::npos) << r.error;
  }
  auto ok = CallSync(caller, good.Url(), "commit", 1000);
  EXPECT_EQ(ok.outcome, CallOutcome::kOk) << ok.error;
  // Two rounds of two calls of 1 s each on two threads, and the good one.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5000ms);
}

}  // namespace
}  // namespace treaty
