// HttpParticipantCaller over https:// against a real HTTPS participant
// (HttpServer with TLS) using certificates made at test time (TestPki):
// a verified call, keep-alive, a wrong CA and a wrong name (configuration
// errors), mTLS, the Treaty-Signature header, and the scheme as part of the
// pool key.

#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "http/http_participant_caller.h"
#include "http/http_server.h"
#include "http/io_runner.h"
#include "security/request_signature.h"
#include "security/tls_context.h"
#include "support/test_pki.h"

namespace treaty {
namespace {

using namespace std::chrono_literals;
using testing::CertFiles;
using testing::TestPki;

// An HTTPS participant that answers 200 {} and records what arrived.
class HttpsParticipant {
 public:
  HttpsParticipant(IoRunner& runner, const TlsServerFiles& files, std::string host = "127.0.0.1") {
    auto tls = ServerTls::Load(files);
    EXPECT_TRUE(tls.ok()) << tls.status().ToString();
    HttpServerOptions options;
    options.host = std::move(host);
    options.tls = *tls;
    server_ = std::make_unique<HttpServer>(runner.io(), options,
                                           [this](HttpRequest req, HttpResponder respond) {
                                             {
                                               std::lock_guard<std::mutex> lock(mu_);
                                               requests_.push_back(req);
                                             }
                                             respond({200, "application/json", "{}", {}});
                                           });
    Status started = server_->Start();
    EXPECT_TRUE(started.ok()) << started.ToString();
  }
  ~HttpsParticipant() { server_->Stop(); }

  uint16_t port() const { return server_->port(); }
  std::vector<HttpRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  // Connections that carried a request (one peer ip:port each).
  size_t connections() {
    std::set<std::string> remotes;
    for (const auto& r : requests()) remotes.insert(r.remote);
    return remotes.size();
  }

 private:
  std::mutex mu_;
  std::vector<HttpRequest> requests_;  // guarded by mu_
  std::unique_ptr<HttpServer> server_;
};

class HttpsParticipantCallerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status().ToString();
    pki_ = std::make_unique<TestPki>(std::move(*pki));
    auto server = pki_->Issue("localhost", "server");
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_cert_ = *server;
    auto client = pki_->Issue("treaty-coordinator", "client");
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_cert_ = *client;
  }

  std::shared_ptr<boost::asio::ssl::context> ClientContext(bool with_cert = false) {
    TlsClientFiles files{pki_->ca_cert(), "", ""};
    if (with_cert) {
      files.cert_file = client_cert_.cert;
      files.key_file = client_cert_.key;
    }
    auto ctx = MakeClientTlsContext(files);
    EXPECT_TRUE(ctx.ok()) << ctx.status().ToString();
    return ctx.ok() ? *ctx : nullptr;
  }
  TlsServerFiles ServerFiles(const std::string& client_ca = "") const {
    return {server_cert_.cert, server_cert_.key, client_ca};
  }

  ParticipantResponse CallSync(HttpParticipantCaller& caller, const std::string& url,
                               const std::string& gtid = "g1") {
    ParticipantRequest req;
    req.url = url;
    req.gtid = gtid;
    req.branch = "b";
    req.op = "action";
    req.payload_json = R"({"amount":5})";
    req.timeout_ms = 5000;
    std::promise<ParticipantResponse> done;
    auto fut = done.get_future();
    caller.Call(std::move(req), [&done](ParticipantResponse r) { done.set_value(std::move(r)); });
    EXPECT_EQ(fut.wait_for(30s), std::future_status::ready);
    return fut.get();
  }

  IoRunner runner_{2};
  std::unique_ptr<TestPki> pki_;
  CertFiles server_cert_, client_cert_;
};

TEST_F(HttpsParticipantCallerTest, VerifiedCallsShareOneKeepAliveConnection) {
  HttpsParticipant participant(runner_, ServerFiles());
  HttpCallerOptions options;
  options.tls = ClientContext();
  HttpParticipantCaller caller(runner_.io(), options);
  const std::string url = "https://localhost:" + std::to_string(participant.port()) + "/b/action";
  for (int i = 0; i < 3; ++i) {
    auto r = CallSync(caller, url, "g" + std::to_string(i));
    EXPECT_EQ(r.outcome, CallOutcome::kOk) << r.error;
    EXPECT_EQ(r.http_status, 200);
  }
  auto requests = participant.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_TRUE(requests[0].tls);
  EXPECT_EQ(requests[0].path, "/b/action");
  EXPECT_EQ(requests[0].Header("host"), "localhost:" + std::to_string(participant.port()));
  EXPECT_EQ(participant.connections(), 1u);  // keep-alive: one TCP connection, one handshake
  EXPECT_EQ(requests[0].Header("treaty-signature"), "");  // no key: no signature

  // An IP literal is verified against the certificate's IP subjectAltName.
  auto by_ip =
      CallSync(caller, "https://127.0.0.1:" + std::to_string(participant.port()) + "/b/action");
  EXPECT_EQ(by_ip.outcome, CallOutcome::kOk) << by_ip.error;
}

TEST_F(HttpsParticipantCallerTest, CertificateFromAnotherCaIsAConfigError) {
  auto other = TestPki::Create("Some Other CA");
  ASSERT_TRUE(other.ok());
  auto foreign = other->Issue("localhost", "foreign");
  ASSERT_TRUE(foreign.ok());
  HttpsParticipant participant(runner_, {foreign->cert, foreign->key, ""});
  HttpCallerOptions options;
  options.tls = ClientContext();
  HttpParticipantCaller caller(runner_.io(), options);
  auto r =
      CallSync(caller, "https://localhost:" + std::to_string(participant.port()) + "/b/action");
  EXPECT_EQ(r.outcome, CallOutcome::kTransient);
  EXPECT_TRUE(r.config_error);
  EXPECT_EQ(r.error.rfind("certificate verify failed: ", 0), 0u) << r.error;
  EXPECT_TRUE(participant.requests().empty());
}

// The participant listens on 127.0.0.2 with a certificate for localhost and
// 127.0.0.1: the chain is good, the name is not.
TEST_F(HttpsParticipantCallerTest, CertificateForAnotherNameIsAConfigError) {
  HttpsParticipant participant(runner_, ServerFiles(), "127.0.0.2");
  HttpCallerOptions options;
  options.tls = ClientContext();
  HttpParticipantCaller caller(runner_.io(), options);
  auto r =
      CallSync(caller, "https://127.0.0.2:" + std::to_string(participant.port()) + "/b/action");
  EXPECT_EQ(r.outcome, CallOutcome::kTransient);
  EXPECT_TRUE(r.config_error);
  EXPECT_EQ(r.error.rfind("certificate verify failed: ", 0), 0u) << r.error;
  EXPECT_NE(r.error.find("mismatch"), std::string::npos) << r.error;
  EXPECT_TRUE(participant.requests().empty());
}

TEST_F(HttpsParticipantCallerTest, ClientCertificateForMutualTls) {
  HttpsParticipant participant(runner_, ServerFiles(pki_->ca_cert()));
  const std::string url = "https://localhost:" + std::to_string(participant.port()) + "/b/action";

  HttpCallerOptions without;
  without.tls = ClientContext(/*with_cert=*/false);
  HttpParticipantCaller anonymous(runner_.io(), without);
  auto refused = CallSync(anonymous, url);
  EXPECT_EQ(refused.outcome, CallOutcome::kTransient);
  EXPECT_TRUE(refused.config_error) << refused.error;
  EXPECT_TRUE(participant.requests().empty());

  HttpCallerOptions with;
  with.tls = ClientContext(/*with_cert=*/true);
  HttpParticipantCaller caller(runner_.io(), with);
  auto ok = CallSync(caller, url);
  EXPECT_EQ(ok.outcome, CallOutcome::kOk) << ok.error;
  auto requests = participant.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].tls_peer_cn, "treaty-coordinator");
}

TEST_F(HttpsParticipantCallerTest, SignedRequestsVerifyAtTheParticipant) {
  HttpsParticipant participant(runner_, ServerFiles());
  const std::string key(40, 'k');
  HttpCallerOptions options;
  options.tls = ClientContext();
  options.signing_key = key;
  HttpParticipantCaller caller(runner_.io(), options);
  auto r = CallSync(
      caller, "https://localhost:" + std::to_string(participant.port()) + "/b/action?x=1", "g-7");
  ASSERT_EQ(r.outcome, CallOutcome::kOk) << r.error;
  auto requests = participant.requests();
  ASSERT_EQ(requests.size(), 1u);
  const HttpRequest& req = requests[0];
  const std::string header = req.Header("treaty-signature");
  ASSERT_FALSE(header.empty());
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  Status good = VerifyRequestSignature({key}, header, now, 300, "POST", req.target, req.body);
  EXPECT_TRUE(good.ok()) << good.ToString();
  EXPECT_EQ(req.target, "/b/action?x=1");
  // The signature covers the body and the key: anything else fails.
  EXPECT_FALSE(
      VerifyRequestSignature({key}, header, now, 300, "POST", req.target, req.body + " ").ok());
  EXPECT_FALSE(
      VerifyRequestSignature({std::string(40, 'o')}, header, now, 300, "POST", req.target, req.body)
          .ok());
}

TEST_F(HttpsParticipantCallerTest, WithoutTlsConfiguredHttpsIsUncallable) {
  HttpParticipantCaller caller(runner_.io(), HttpCallerOptions{});
  auto r = CallSync(caller, "https://localhost:1/b/action");
  EXPECT_EQ(r.outcome, CallOutcome::kUncallable);
  EXPECT_NE(r.error.find("https participants need TLS configured"), std::string::npos) << r.error;
}

// http:// and https:// to one host:port are two pools: a plain-HTTP call to
// the HTTPS port never borrows the TLS connection (it fails there).
TEST_F(HttpsParticipantCallerTest, SchemeIsPartOfThePoolKey) {
  HttpsParticipant participant(runner_, ServerFiles());
  HttpCallerOptions options;
  options.tls = ClientContext();
  HttpParticipantCaller caller(runner_.io(), options);
  const std::string authority = "127.0.0.1:" + std::to_string(participant.port());
  ASSERT_EQ(CallSync(caller, "https://" + authority + "/b/action").outcome, CallOutcome::kOk);
  auto plain = CallSync(caller, "http://" + authority + "/b/action");
  EXPECT_EQ(plain.outcome, CallOutcome::kTransient);
  EXPECT_EQ(plain.http_status, 0);
  EXPECT_EQ(caller.endpoint_count(), 2u);
  EXPECT_EQ(participant.requests().size(), 1u);
}

}  // namespace
}  // namespace treaty
