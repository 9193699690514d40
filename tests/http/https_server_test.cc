// HttpServer over TLS (HttpServerOptions::tls): real certificates made at
// test time (TestPki), a TLS client on Asio / Beast ssl (TlsTestClient),
// real loopback sockets.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <openssl/x509_vfy.h>

#include <gtest/gtest.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>

#include "http/http_server.h"
#include "http/io_runner.h"
#include "security/tls_context.h"
#include "support/test_pki.h"
#include "support/tls_test_client.h"

namespace treaty {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;
using testing::CertFiles;
using testing::TestPki;
using testing::TlsTestClient;
using testing::TlsTestResponse;

// A plain TCP connection (no TLS) on its own io_context.
class RawTcp {
 public:
  explicit RawTcp(uint16_t port) : stream_(io_) {
    stream_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }
  void Send(const std::string& bytes) { net::write(stream_.socket(), net::buffer(bytes)); }
  // Reads until the server closes the connection; false if it did not
  // within 10 s (a guard against a hang, not a timing check). `received`
  // gets what arrived.
  bool ReadUntilClosed(std::string* received) {
    stream_.expires_after(std::chrono::seconds(10));
    beast::error_code result;
    char buf[4096];
    std::function<void(beast::error_code, size_t)> on_read = [&](beast::error_code ec, size_t n) {
      received->append(buf, n);
      if (ec) {
        result = ec;
        return;
      }
      stream_.async_read_some(net::buffer(buf), on_read);
    };
    stream_.async_read_some(net::buffer(buf), on_read);
    io_.run();
    return result != beast::error::timeout;
  }

 private:
  net::io_context io_;
  beast::tcp_stream stream_;
};

class HttpsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status().ToString();
    pki_ = std::make_unique<TestPki>(std::move(*pki));
    auto server_cert = pki_->Issue("localhost", "server");
    ASSERT_TRUE(server_cert.ok()) << server_cert.status().ToString();
    server_cert_ = *server_cert;
  }

  // Starts an HTTPS server whose handler answers 200 "tls=<0|1> cn=<peer CN>".
  void StartServer(TlsServerFiles files, HttpServerOptions options = {}) {
    auto tls = ServerTls::Load(std::move(files));
    ASSERT_TRUE(tls.ok()) << tls.status().ToString();
    tls_ = *tls;
    options.tls = tls_;
    server_ = std::make_unique<HttpServer>(
        runner_.io(), options, [this](HttpRequest req, HttpResponder respond) {
          ++handled_;
          respond(HttpResponse{
              200, "text/plain", "tls=" + std::to_string(req.tls) + " cn=" + req.tls_peer_cn, {}});
        });
    ASSERT_TRUE(server_->Start().ok());
  }
  void StartServer(HttpServerOptions options = {}) {
    StartServer(TlsServerFiles{server_cert_.cert, server_cert_.key, ""}, options);
  }

  // A fresh connection trusting the test CA (with `client` as client
  // certificate when given) is answered 200 `body`.
  void ExpectServed(const std::string& body, const CertFiles* client = nullptr) {
    TlsTestClient c(pki_->ca_cert(), client ? client->cert : "", client ? client->key : "");
    ASSERT_FALSE(c.Connect(server_->port()));
    TlsTestResponse res;
    ASSERT_FALSE(c.Get("/", &res));
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.body, body);
  }

  void TearDown() override {
    if (server_) server_->Stop();
  }

  std::unique_ptr<TestPki> pki_;
  CertFiles server_cert_;
  std::shared_ptr<ServerTls> tls_;
  std::atomic<int> handled_{0};
  IoRunner runner_{2};
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpsServerTest, GoodChainIsServedWithKeepAlive) {
  StartServer();
  TlsTestClient client(pki_->ca_cert());
  ASSERT_FALSE(client.Connect(server_->port()));
  EXPECT_EQ(client.ServerCommonName(), "localhost");
  for (int i = 0; i < 2; ++i) {  // the second request reuses the connection
    TlsTestResponse res;
    ASSERT_FALSE(client.Get("/x", &res));
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.body, "tls=1 cn=");  // no client certificate was asked for
  }
  EXPECT_EQ(handled_, 2);
}

TEST_F(HttpsServerTest, ClientTrustingAnotherCaFailsTheHandshake) {
  StartServer();
  auto other = TestPki::Create("Other CA");
  ASSERT_TRUE(other.ok());
  TlsTestClient client(other->ca_cert());
  EXPECT_TRUE(client.Connect(server_->port()));
  EXPECT_EQ(client.VerifyResult(), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  EXPECT_EQ(handled_, 0);
  ExpectServed("tls=1 cn=");  // the server stays up
}

// An expired server certificate never gets as far as a client: the server
// refuses to load it.
TEST_F(HttpsServerTest, ExpiredServerCertificateIsRefusedAtLoad) {
  auto expired = pki_->Issue("localhost", "expired", /*expired=*/true);
  ASSERT_TRUE(expired.ok());
  auto tls = ServerTls::Load(TlsServerFiles{expired->cert, expired->key, ""});
  ASSERT_FALSE(tls.ok());
  EXPECT_NE(tls.status().message().find("expired on 2020-01-02"), std::string::npos)
      << tls.status().ToString();
}

// Under mTLS a client is refused at the handshake unless its certificate
// chains to the client CA. With TLS 1.3 the client may finish its side of
// the handshake before the server's refusal arrives; then its request fails.
TEST_F(HttpsServerTest, MutualTlsRequiresAClientCertificateFromTheClientCa) {
  StartServer(TlsServerFiles{server_cert_.cert, server_cert_.key, pki_->ca_cert()});
  auto refused = [&](const CertFiles* client) {
    TlsTestClient c(pki_->ca_cert(), client ? client->cert : "", client ? client->key : "");
    EXPECT_EQ(c.setup_error(), "");
    if (c.Connect(server_->port())) return true;
    TlsTestResponse res;
    return static_cast<bool>(c.Get("/", &res));
  };
  EXPECT_TRUE(refused(nullptr));  // no certificate

  auto other = TestPki::Create("Other CA");
  ASSERT_TRUE(other.ok());
  auto stranger = other->Issue("svc-a", "stranger");
  ASSERT_TRUE(stranger.ok());
  EXPECT_TRUE(refused(&*stranger));  // same CN, another CA
  EXPECT_EQ(handled_, 0);

  auto good = pki_->Issue("svc-a", "client");
  ASSERT_TRUE(good.ok());
  ExpectServed("tls=1 cn=svc-a", &*good);
}

TEST_F(HttpsServerTest, ReloadServesTheNewCertificateToNewConnectionsOnly) {
  auto one = pki_->Issue("server-one", "one");
  auto two = pki_->Issue("server-two", "two");
  ASSERT_TRUE(one.ok() && two.ok());
  const std::string cert = pki_->dir() + "/live.pem", key = pki_->dir() + "/live.key";
  auto install = [&](const CertFiles& files) {
    namespace fs = std::filesystem;
    fs::copy_file(files.cert, cert, fs::copy_options::overwrite_existing);
    fs::copy_file(files.key, key, fs::copy_options::overwrite_existing);
  };
  install(*one);
  StartServer(TlsServerFiles{cert, key, ""});
  TlsTestClient before(pki_->ca_cert());
  ASSERT_FALSE(before.Connect(server_->port()));
  TlsTestResponse res;
  ASSERT_FALSE(before.Get("/", &res));
  EXPECT_EQ(before.ServerCommonName(), "server-one");

  install(*two);
  ASSERT_TRUE(tls_->Reload().ok());
  TlsTestClient after(pki_->ca_cert());
  ASSERT_FALSE(after.Connect(server_->port()));
  EXPECT_EQ(after.ServerCommonName(), "server-two");
  ASSERT_FALSE(after.Get("/", &res));
  EXPECT_EQ(res.status, 200);

  ASSERT_FALSE(before.Get("/", &res));  // the connection from before keeps working
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(before.ServerCommonName(), "server-one");
}

TEST_F(HttpsServerTest, PlainHttpClientIsClosedAndTheServerStaysUp) {
  StartServer();
  RawTcp raw(server_->port());
  raw.Send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
  std::string received;
  EXPECT_TRUE(raw.ReadUntilClosed(&received));
  EXPECT_EQ(received.find("HTTP/1.1"), std::string::npos);
  EXPECT_EQ(handled_, 0);
  ExpectServed("tls=1 cn=");
}

TEST_F(HttpsServerTest, SilentClientIsClosedAfterTheHandshakeTimeout) {
  HttpServerOptions options;
  options.request_timeout_ms = 200;  // idle_timeout_ms stays at 60 s
  StartServer(options);
  RawTcp raw(server_->port());
  std::string received;
  EXPECT_TRUE(raw.ReadUntilClosed(&received));
  EXPECT_TRUE(received.empty());
  ExpectServed("tls=1 cn=");
}

TEST_F(HttpsServerTest, BodyLimitIsAnsweredOverTls) {
  HttpServerOptions options;
  options.max_body_bytes = 16;
  StartServer(options);
  TlsTestClient client(pki_->ca_cert());
  ASSERT_FALSE(client.Connect(server_->port()));
  TlsTestResponse res;
  ASSERT_FALSE(client.Request("POST", "/", std::string(17, 'x'), {}, &res));
  EXPECT_EQ(res.status, 413);
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpsServerTest, OverCapConnectionIsAnswered503AfterItsHandshake) {
  HttpServerOptions options;
  options.max_connections = 1;
  StartServer(options);
  TlsTestClient served(pki_->ca_cert());
  ASSERT_FALSE(served.Connect(server_->port()));
  TlsTestResponse res;
  ASSERT_FALSE(served.Get("/", &res));
  EXPECT_EQ(res.status, 200);
  TlsTestClient over_cap(pki_->ca_cert());  // `served` holds the only slot
  ASSERT_FALSE(over_cap.Connect(server_->port()));
  ASSERT_FALSE(over_cap.Get("/", &res));
  EXPECT_EQ(res.status, 503);
  EXPECT_EQ(res.headers["retry-after"], "1");
  EXPECT_EQ(handled_, 1);
}

// HTTPS under a flood over the cap: each refused client completes its
// handshake and reads its 503, then keeps the connection open (the server
// waits up to a second for it to close). With more of them than may be
// refusing at once, a newcomer still hears 503: it takes the place of the
// oldest one whose answer is written.
TEST_F(HttpsServerTest, NewcomerHears503WhileManyRefusedConnectionsDrain) {
  HttpServerOptions options;
  options.max_connections = 1;
  StartServer(options);
  TlsTestClient served(pki_->ca_cert());
  ASSERT_FALSE(served.Connect(server_->port()));
  TlsTestResponse res;
  ASSERT_FALSE(served.Get("/", &res));
  ASSERT_EQ(res.status, 200);
  std::vector<std::unique_ptr<TlsTestClient>> refused;
  for (int i = 0; i < 150; ++i) {
    refused.push_back(std::make_unique<TlsTestClient>(pki_->ca_cert()));
    ASSERT_FALSE(refused.back()->Connect(server_->port())) << "client " << i;
    TlsTestResponse r;
    ASSERT_FALSE(refused.back()->Get("/", &r)) << "client " << i;
    ASSERT_EQ(r.status, 503) << "client " << i;
  }
  TlsTestClient newcomer(pki_->ca_cert());
  ASSERT_FALSE(newcomer.Connect(server_->port()));
  TlsTestResponse late;
  ASSERT_FALSE(newcomer.Get("/", &late));
  EXPECT_EQ(late.status, 503);
  EXPECT_EQ(handled_, 1);
}

TEST_F(HttpsServerTest, StopEndsOpenConnectionsWithCloseNotify) {
  StartServer();
  TlsTestClient client(pki_->ca_cert());
  ASSERT_FALSE(client.Connect(server_->port()));
  TlsTestResponse res;
  ASSERT_FALSE(client.Get("/", &res));
  server_->Stop();
  EXPECT_EQ(client.ReadAfterEnd(), net::error::eof);  // stream_truncated without close_notify
}

}  // namespace
}  // namespace treaty
