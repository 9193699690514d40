// treaty::Client against thrifts:// coordinators: real treatyd processes
// (SQLite) serving TLS on their Thrift port (--tls-cert/--tls-key, and
// --tls-client-ca for mTLS), certificates made at test time (TestPki). A
// saga commits over TLS on a kept-alive connection; a certificate the client
// cannot verify (another CA, another name) and a coordinator refusing a
// client without a certificate fail with a status naming why, as kNotSent
// (never "maybe acted"); plain thrift:// against the TLS port fails within
// its time-out, and so does a call to a hostile coordinator that trickles
// its TLS handshake or its reply (TricklePeer). Reaches the SDK's private
// CoordinatorTransport (participant-sdk/src) for the typed Delivery.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "coordinator_transport.h"
#include "sdk/one_step_saga.h"
#include "support/subprocess.h"
#include "support/test_participant.h"
#include "support/test_pki.h"
#include "support/treatyd_process.h"
#include "thrift/trickle_peer.h"
#include "treaty/client.h"

namespace treaty::testing {
namespace {

namespace sdk = treaty::sdk;
using treaty_sdk_detail::Delivery;
using treaty_sdk_detail::MakeCoordinatorTransport;
using treaty_sdk_detail::TransportOptions;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Transport options trusting `ca_file`, with a client certificate when given.
TransportOptions Tls(const std::string& ca_file, const CertFiles& client = {}) {
  TransportOptions o;
  o.ca_file = ca_file;
  o.cert_file = client.cert;
  o.key_file = client.key;
  return o;
}

// A Client of `coordinator` trusting `ca_file` (none: plain), with a client
// certificate when given; `max_attempts` 1 to see one attempt's failure.
sdk::ClientOptions ClientOf(const std::string& coordinator, const std::string& ca_file,
                            const CertFiles& client = {}, int max_attempts = 6) {
  sdk::ClientOptions o;
  o.coordinators = {coordinator};
  o.max_attempts = max_attempts;
  o.ca_file = ca_file;
  o.cert_file = client.cert;
  o.key_file = client.key;
  return o;
}

class ClientThriftTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-sdk-thrift-tls");
    auto pki = TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status().ToString();
    pki_ = std::make_unique<TestPki>(std::move(*pki));
    auto server = pki_->Issue("treaty-server", "server");
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = *server;
    auto client = pki_->Issue("treaty-app", "client");
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = *client;
  }
  void TearDown() override {
    std::error_code ec;
    if (pki_) std::filesystem::remove_all(pki_->dir(), ec);
    std::filesystem::remove_all(dir_, ec);
  }

  enum class Serve { kPlain, kTls, kMutualTls };

  // A treatyd serving HTTP and Thrift (Thrift on `thrift_host`), started:
  // kTls with the test CA's server certificate, kMutualTls also requiring
  // client certificates signed by it. thrift_port_ is its Thrift port.
  std::unique_ptr<TreatydProcess> StartTreatyd(const std::string& name, Serve serve = Serve::kTls,
                                               const std::string& thrift_host = "127.0.0.1") {
    thrift_port_ = FreePort();
    TreatydOptions o;
    o.store = "sqlite:" + dir_ + "/" + name + ".db";
    o.thrift = thrift_host + ":" + std::to_string(thrift_port_);
    if (thrift_host != "127.0.0.1") o.extra.push_back("--insecure");  // no tokens: a test
    if (serve != Serve::kPlain) {
      o.https = true;
      o.tls.ca_file = pki_->ca_cert();
      o.extra.insert(o.extra.end(), {"--tls-cert", server_.cert, "--tls-key", server_.key});
    }
    if (serve == Serve::kMutualTls) {
      o.tls.cert_file = client_.cert;  // the harness's own health checks
      o.tls.key_file = client_.key;
      o.extra.push_back("--tls-client-ca");
      o.extra.push_back(pki_->ca_cert());
    }
    auto t = std::make_unique<TreatydProcess>(dir_, name, o);
    auto s = t->Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
    return s.ok() ? std::move(t) : nullptr;
  }

  std::string Url(const std::string& scheme, const std::string& host = "localhost") const {
    return scheme + "://" + host + ":" + std::to_string(thrift_port_);
  }

  sdk::SagaSpec Saga(const std::string& gtid) { return OneStepSaga(participant_, gtid); }

  std::string dir_;
  std::unique_ptr<TestPki> pki_;
  CertFiles server_, client_;
  int thrift_port_ = 0;
  TestParticipant participant_;
};

TEST_F(ClientThriftTlsTest, ASagaCommitsOverThriftsOnAKeptAliveConnection) {
  auto t = StartTreatyd("tls");
  ASSERT_TRUE(t);
  sdk::Client client(ClientOf(Url("thrifts"), pki_->ca_cert()));
  auto r = client.SubmitSaga(Saga("thrifts-1"), /*wait=*/true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state, "COMMITTED");
  auto got = client.Get("thrifts-1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->state, "COMMITTED");

  // An IP literal is checked against the certificate's IP names.
  sdk::Client by_ip(ClientOf(Url("thrifts", "127.0.0.1"), pki_->ca_cert()));
  got = by_ip.Get("thrifts-1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->state, "COMMITTED");

  // One TLS connection carries every call.
  auto transport = MakeCoordinatorTransport(Url("thrifts"), Tls(pki_->ca_cert()));
  for (int i = 0; i < 5; ++i) {
    auto reply = transport->Get("nobody-" + std::to_string(i), 5000);
    ASSERT_EQ(reply.delivery, Delivery::kAnswered) << reply.message;
    EXPECT_EQ(reply.code, StatusCode::kNotFound) << reply.message;
  }
  EXPECT_EQ(transport->connections_opened(), 1);
}

TEST_F(ClientThriftTlsTest, ACertificateThatDoesNotVerifyIsNotSent) {
  // On every address, so that 127.0.0.2 (a name the certificate lacks) reaches it.
  auto t = StartTreatyd("refused", Serve::kTls, "0.0.0.0");
  ASSERT_TRUE(t);
  auto other = TestPki::Create("Some Other CA");
  ASSERT_TRUE(other.ok()) << other.status().ToString();

  // Another CA: refused before anything is sent, naming why.
  auto transport = MakeCoordinatorTransport(Url("thrifts"), Tls(other->ca_cert()));
  auto reply = transport->SubmitSaga({{"gtid", "wrong-ca-1"},
                                      {"steps",
                                       {{{"name", "step"},
                                         {"action", participant_.Url("step", "action")},
                                         {"compensate", participant_.Url("step", "compensate")}}}}},
                                     5000);
  EXPECT_EQ(reply.delivery, Delivery::kNotSent) << reply.message;
  EXPECT_TRUE(Contains(reply.message, "the server's certificate was refused: ")) << reply.message;
  EXPECT_TRUE(Contains(reply.message, "unable to get local issuer certificate")) << reply.message;

  // The Client: Unavailable naming the certificate, and the coordinator never
  // saw the saga.
  sdk::Client untrusting(ClientOf(Url("thrifts"), other->ca_cert(), {}, /*max_attempts=*/1));
  auto r = untrusting.SubmitSaga(Saga("wrong-ca-2"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_TRUE(Contains(r.status().message(), "the server's certificate was refused"))
      << r.status().ToString();
  sdk::Client trusting(ClientOf(Url("thrifts"), pki_->ca_cert()));
  for (const char* gtid : {"wrong-ca-1", "wrong-ca-2"}) {
    EXPECT_EQ(trusting.Get(gtid).status().code(), StatusCode::kNotFound) << gtid;
  }

  // The right CA, but a name the certificate does not carry.
  auto elsewhere = MakeCoordinatorTransport(Url("thrifts", "127.0.0.2"), Tls(pki_->ca_cert()));
  reply = elsewhere->Get("anything", 5000);
  EXPECT_EQ(reply.delivery, Delivery::kNotSent) << reply.message;
  EXPECT_TRUE(Contains(reply.message, "the server's certificate was refused: IP address mismatch"))
      << reply.message;
  std::error_code ec;
  std::filesystem::remove_all(other->dir(), ec);
}

TEST_F(ClientThriftTlsTest, MutualTlsNeedsTheClientCertificate) {
  auto t = StartTreatyd("mtls", Serve::kMutualTls);
  ASSERT_TRUE(t);
  // Without a certificate: the coordinator refuses the connection (with
  // TLS 1.3, on the first exchange), before reading the call.
  auto transport = MakeCoordinatorTransport(Url("thrifts"), Tls(pki_->ca_cert()));
  auto reply = transport->Get("anything", 5000);
  EXPECT_EQ(reply.delivery, Delivery::kNotSent) << reply.message;
  EXPECT_TRUE(Contains(reply.message, "the coordinator refused TLS: ")) << reply.message;
  EXPECT_TRUE(Contains(reply.message, "certificate")) << reply.message;

  sdk::Client anonymous(ClientOf(Url("thrifts"), pki_->ca_cert(), {}, /*max_attempts=*/1));
  auto r = anonymous.SubmitSaga(Saga("mtls-0"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_TRUE(Contains(r.status().message(), "refused TLS")) << r.status().ToString();

  sdk::Client client(ClientOf(Url("thrifts"), pki_->ca_cert(), client_));
  r = client.SubmitSaga(Saga("mtls-1"), /*wait=*/true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state, "COMMITTED");
  EXPECT_EQ(client.Get("mtls-0").status().code(), StatusCode::kNotFound);
}

TEST_F(ClientThriftTlsTest, PlainThriftAgainstTheTlsPortFailsWithinItsTimeOut) {
  auto t = StartTreatyd("plain");
  ASSERT_TRUE(t);
  sdk::ClientOptions plain_options = ClientOf(Url("thrift", "127.0.0.1"), "", {}, 1);
  plain_options.request_timeout_ms = 3000;
  sdk::Client plain(plain_options);
  const auto start = std::chrono::steady_clock::now();
  auto r = plain.SubmitSaga(Saga("plain-1"));
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_LT(took, std::chrono::milliseconds(3000 + 2000)) << r.status().ToString();
  sdk::Client trusting(ClientOf(Url("thrifts"), pki_->ca_cert()));
  EXPECT_EQ(trusting.Get("plain-1").status().code(), StatusCode::kNotFound);

  // The other way round: TLS against a plain Thrift port is not sent either.
  auto plain_server = StartTreatyd("plain-server", Serve::kPlain);
  ASSERT_TRUE(plain_server);
  auto transport = MakeCoordinatorTransport(Url("thrifts"), Tls(pki_->ca_cert()));
  const auto tls_start = std::chrono::steady_clock::now();
  auto reply = transport->Get("anything", 3000);
  EXPECT_EQ(reply.delivery, Delivery::kNotSent) << reply.message;
  EXPECT_LT(std::chrono::steady_clock::now() - tls_start, std::chrono::milliseconds(3000 + 2000))
      << reply.message;
}

TEST_F(ClientThriftTlsTest, UnusableTlsFilesAreAConfigurationError) {
  auto transport = MakeCoordinatorTransport("thrifts://localhost:1", Tls(dir_ + "/no-such-ca.pem"));
  auto reply = transport->Get("anything", 1000);
  EXPECT_EQ(reply.delivery, Delivery::kBadConfig) << reply.message;
  EXPECT_TRUE(Contains(reply.message, "no-such-ca.pem")) << reply.message;
}

// A coordinator that trickles (one byte every 300 ms, so no per-read
// time-out fires) is cut off at the call's time-out: during the TLS
// handshake (nothing was sent: kNotSent), or while the reply trickles in
// (the call was sent: kNoAnswer).
TEST(ClientThriftDeadlineTest, TrickledTlsHandshakeTimesOut) {
  TricklePeer peer(TricklePeer::Mode::kTlsHandshake);
  auto transport =
      MakeCoordinatorTransport("thrifts://127.0.0.1:" + std::to_string(peer.port()), {});
  const auto start = std::chrono::steady_clock::now();
  auto reply = transport->Commit("t", 1000);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(reply.delivery, Delivery::kNotSent) << reply.message;
  EXPECT_TRUE(Contains(reply.message, "TLS handshake: timed out after 1000 ms")) << reply.message;
  EXPECT_FALSE(reply.resent);
  EXPECT_LT(took, std::chrono::milliseconds(2500));
}

TEST(ClientThriftDeadlineTest, TrickledReplyTimesOut) {
  TricklePeer peer(TricklePeer::Mode::kReply);
  auto transport =
      MakeCoordinatorTransport("thrift://127.0.0.1:" + std::to_string(peer.port()), {});
  const auto start = std::chrono::steady_clock::now();
  auto reply = transport->Commit("t", 1000);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(reply.delivery, Delivery::kNoAnswer) << reply.message;
  EXPECT_TRUE(Contains(reply.message, "timed out after 1000 ms")) << reply.message;
  EXPECT_LT(took, std::chrono::milliseconds(2500));

  // The Client: Unavailable after its attempts, each bounded.
  sdk::ClientOptions options =
      ClientOf("thrift://127.0.0.1:" + std::to_string(peer.port()), "", {}, /*max_attempts=*/2);
  options.request_timeout_ms = 1000;
  options.backoff_ms = 10;
  sdk::Client client(options);
  const auto client_start = std::chrono::steady_clock::now();
  auto r = client.Get("t");
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_TRUE(Contains(r.status().message(), "timed out")) << r.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - client_start, std::chrono::milliseconds(2 * 2500));
}

}  // namespace
}  // namespace treaty::testing
