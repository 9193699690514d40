// treatyd's security options on real child processes: refusing a network
// listener without authentication, --thrift off, HTTPS with certificates
// made at test time (good chain, wrong CA, expired, host name, missing or
// mismatched key) and SIGHUP re-reading certificates and tokens while a
// saga is in flight.

#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <nlohmann/json.hpp>

#include "http/http_client.h"
#include "security/authenticator.h"
#include "security/tls_context.h"
#include "support/subprocess.h"
#include "support/test_participant.h"
#include "support/test_pki.h"
#include "support/treatyd_process.h"

namespace treaty::testing {
namespace {

using nlohmann::json;

void WriteFile(const std::string& path, const std::string& text) {
  // Written aside and renamed, as a deployment tool would: a reload never
  // sees half a file.
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp, std::ios::trunc) << text;
  std::filesystem::rename(tmp, path);
}

void CopyFile(const std::string& from, const std::string& to) {
  std::filesystem::copy_file(from, to + ".tmp", std::filesystem::copy_options::overwrite_existing);
  std::filesystem::rename(to + ".tmp", to);
}

// A tokens file line granting `roles` to `name` holding `token`.
std::string TokenLine(const std::string& name, const std::string& roles, const std::string& token) {
  return name + " " + roles + " " + Sha256Hex(token) + "\n";
}

std::map<std::string, std::string> Bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

// Polls `pred` every 50 ms for up to `timeout`; whether it held.
template <class Pred>
bool Eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

// The subject CN of the certificate a new TLS connection to 127.0.0.1:port
// is served with (verified against `ca_file`), or "" when the handshake fails.
std::string ServedCommonName(int port, const std::string& ca_file) {
  namespace net = boost::asio;
  auto ctx = MakeClientTlsContext({.ca_file = ca_file});
  if (!ctx.ok()) return "";
  net::io_context io;
  net::ssl::stream<net::ip::tcp::socket> stream(io, **ctx);
  boost::system::error_code ec;
  stream.next_layer().connect({net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)},
                              ec);
  if (ec) return "";
  timeval limit{5, 0};  // a stuck server fails the handshake instead of hanging the test
  setsockopt(stream.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  stream.handshake(net::ssl::stream_base::client, ec);
  if (ec) return "";
  std::string cn = PeerCommonName(stream.native_handle());
  stream.next_layer().close(ec);
  return cn;
}

class SecurityOptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-security-options");
    auto pki = TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status().ToString();
    pki_ = std::make_unique<TestPki>(std::move(*pki));
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    if (pki_) std::filesystem::remove_all(pki_->dir(), ec);
  }

  TreatydOptions Options(const std::string& db) {
    TreatydOptions o;
    o.store = "sqlite:" + dir_ + "/" + db + ".db";
    return o;
  }

  // Runs treatyd with `args` (after --store and a free --http) expecting it
  // to refuse to start; returns its exit status and log.
  std::pair<int, std::string> RunRefused(const std::string& name, std::vector<std::string> args,
                                         const std::string& http = "") {
    std::vector<std::string> argv = {
        BinaryPath("treatyd"),
        "--store",
        "sqlite:" + dir_ + "/" + name + ".db",
        "--http",
        http.empty() ? "127.0.0.1:" + std::to_string(FreePort()) : http,
        "--thrift",
        "127.0.0.1:0"};
    argv.insert(argv.end(), args.begin(), args.end());
    Subprocess proc(argv, dir_ + "/" + name + ".log");
    if (!proc.Start().ok()) return {-1, "not started"};
    const int code = proc.Wait(15000);
    return {code, proc.Log()};
  }

  std::string dir_;
  std::unique_ptr<TestPki> pki_;
};

TEST_F(SecurityOptionsTest, NonLoopbackListenerNeedsAuthOrInsecure) {
  auto [code, log] = RunRefused("open", {}, "0.0.0.0:0");
  EXPECT_GT(code, 0) << log;
  EXPECT_NE(log.find("--auth-tokens"), std::string::npos) << log;
  EXPECT_NE(log.find("--insecure"), std::string::npos) << log;

  TreatydOptions insecure = Options("insecure");
  insecure.listen_host = "0.0.0.0";
  insecure.extra = {"--insecure"};
  TreatydProcess a(dir_, "insecure", insecure);
  ASSERT_TRUE(a.Start().ok()) << a.Log();
  auto r = HttpFetch("GET", a.url() + "/v1/cluster");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200) << r->body;

  WriteFile(dir_ + "/tokens", TokenLine("reader", "read", "reader-token"));
  TreatydOptions authed = Options("authed");
  authed.listen_host = "0.0.0.0";
  authed.token = "reader-token";
  authed.extra = {"--auth-tokens", dir_ + "/tokens"};
  TreatydProcess b(dir_, "authed", authed);
  ASSERT_TRUE(b.Start().ok()) << b.Log();
  r = HttpFetch("GET", b.url() + "/v1/cluster");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 401) << r->body;
  EXPECT_FALSE(b.CoordinatorId().empty()) << "the reader token is accepted";
}

TEST_F(SecurityOptionsTest, ThriftOffOpensNoThriftPort) {
  TestParticipant participant;
  TreatydOptions o = Options("nothrift");
  o.thrift = "off";
  TreatydProcess t(dir_, "nothrift", o);
  ASSERT_TRUE(t.Start().ok()) << t.Log();
  EXPECT_NE(t.Log().find("thrift off"), std::string::npos) << t.Log();
  auto cluster = HttpFetch("GET", t.url() + "/v1/cluster");
  ASSERT_TRUE(cluster.ok() && cluster->status == 200) << t.Log();
  json doc = json::parse(cluster->body);
  ASSERT_EQ(doc["coordinators"].size(), 1u) << cluster->body;
  EXPECT_EQ(doc["coordinators"][0].value("thrift", "?"), "") << cluster->body;
  // The REST API works.
  json saga = {{"gtid", "no-thrift-1"},
               {"wait", true},
               {"steps",
                {{{"name", "a"},
                  {"action", participant.Url("a", "action")},
                  {"compensate", participant.Url("a", "compensate")}}}}};
  auto r = HttpFetch("POST", t.url() + "/v1/sagas", saga.dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(json::parse(r->body).value("state", ""), "COMMITTED") << r->body;
}

TEST_F(SecurityOptionsTest, HttpsWithTheTestCa) {
  auto cert = pki_->Issue("treaty-server", "server");
  ASSERT_TRUE(cert.ok()) << cert.status().ToString();
  TreatydOptions o = Options("https");
  o.https = true;
  o.tls.ca_file = pki_->ca_cert();
  o.listen_host = "0.0.0.0";  // reachable as 127.0.0.2 too: a name the certificate lacks
  o.extra = {"--tls-cert", cert->cert, "--tls-key", cert->key, "--insecure"};
  TreatydProcess t(dir_, "https", o);
  ASSERT_TRUE(t.Start().ok()) << t.Log();
  ASSERT_EQ(t.url().rfind("https://", 0), 0u) << t.url();
  const std::string port = std::to_string(t.port());

  auto r = HttpFetch("GET", t.url() + "/v1/cluster", "", {}, 5000, &o.tls);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  r = HttpFetch("GET", "https://localhost:" + port + "/v1/cluster", "", {}, 5000, &o.tls);
  ASSERT_TRUE(r.ok()) << "by DNS name (SNI): " << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(ServedCommonName(t.port(), pki_->ca_cert()), "treaty-server");

  // Plain HTTP to the TLS port gets no answer.
  r = HttpFetch("GET", "http://127.0.0.1:" + port + "/v1/cluster", "", {}, 5000);
  EXPECT_TRUE(!r.ok() || r->status >= 400) << r->status << " " << r->body;
  // A CA that did not sign the server's certificate.
  auto other = TestPki::Create("Other CA");
  ASSERT_TRUE(other.ok());
  TlsClientFiles wrong{.ca_file = other->ca_cert()};
  r = HttpFetch("GET", t.url() + "/healthz", "", {}, 5000, &wrong);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("certificate"), std::string::npos) << r.status().ToString();
  // The right CA, but an address the certificate does not name.
  r = HttpFetch("GET", "https://127.0.0.2:" + port + "/healthz", "", {}, 5000, &o.tls);
  EXPECT_FALSE(r.ok()) << "host name not verified";
  // No CA given: the system store does not know the test CA.
  r = HttpFetch("GET", t.url() + "/healthz", "", {}, 5000);
  EXPECT_FALSE(r.ok());
  std::error_code ec;
  std::filesystem::remove_all(other->dir(), ec);
}

TEST_F(SecurityOptionsTest, AnExpiredServerCertificateStopsTheStart) {
  auto cert = pki_->Issue("localhost", "expired", /*expired=*/true);
  ASSERT_TRUE(cert.ok()) << cert.status().ToString();
  auto [code, log] = RunRefused("expired", {"--tls-cert", cert->cert, "--tls-key", cert->key});
  EXPECT_GT(code, 0) << log;
  EXPECT_NE(log.find("--tls-cert: certificate '" + cert->cert + "' expired on 2020-01-02"),
            std::string::npos)
      << log;
}

TEST_F(SecurityOptionsTest, BadTlsFilesStopTheStartNamingTheOption) {
  auto a = pki_->Issue("a", "a");
  auto b = pki_->Issue("b", "b");
  ASSERT_TRUE(a.ok() && b.ok());
  auto [code, log] = RunRefused("nokey", {"--tls-cert", a->cert});
  EXPECT_GT(code, 0) << log;
  EXPECT_NE(log.find("--tls-key"), std::string::npos) << log;

  std::tie(code, log) = RunRefused("mismatch", {"--tls-cert", a->cert, "--tls-key", b->key});
  EXPECT_GT(code, 0) << log;
  EXPECT_NE(log.find("--tls-key"), std::string::npos) << log;

  std::tie(code, log) =
      RunRefused("missing", {"--tls-cert", dir_ + "/absent.pem", "--tls-key", a->key});
  EXPECT_GT(code, 0) << log;
  EXPECT_NE(log.find("--tls-cert"), std::string::npos) << log;

  std::tie(code, log) = RunRefused("notokens", {"--auth-tokens", dir_ + "/absent-tokens"});
  EXPECT_GT(code, 0) << log;
  EXPECT_NE(log.find("--auth-tokens"), std::string::npos) << log;
}

TEST_F(SecurityOptionsTest, SighupReloadsCertificatesAndTokensWithoutDroppingWork) {
  auto first = pki_->Issue("treaty-first", "first");
  auto second = pki_->Issue("treaty-second", "second");
  ASSERT_TRUE(first.ok() && second.ok());
  const std::string cert = dir_ + "/server.pem", key = dir_ + "/server.key";
  const std::string tokens = dir_ + "/tokens";
  CopyFile(first->cert, cert);
  CopyFile(first->key, key);
  WriteFile(tokens, TokenLine("app", "submit,read", "old-token"));

  TestParticipant participant;
  participant.SetRule("slow", "action", TestParticipant::Rule{{200}, 3000});
  TreatydOptions o = Options("reload");
  o.https = true;
  o.tls.ca_file = pki_->ca_cert();
  o.token = "old-token";
  o.extra = {"--tls-cert", cert, "--tls-key", key, "--auth-tokens", tokens};
  TreatydProcess t(dir_, "reload", o);
  ASSERT_TRUE(t.Start().ok()) << t.Log();
  ASSERT_EQ(ServedCommonName(t.port(), pki_->ca_cert()), "treaty-first");

  // A saga whose step answers after 3 s: in flight across the reload.
  json saga = {{"gtid", "reload-1"},
               {"steps",
                {{{"name", "slow"},
                  {"action", participant.Url("slow", "action")},
                  {"compensate", participant.Url("slow", "compensate")}}}}};
  auto r = HttpFetch("POST", t.url() + "/v1/sagas", saga.dump(), Bearer("old-token"), 5000, &o.tls);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_LT(r->status, 300) << r->body;
  ASSERT_TRUE(participant.WaitForCalls(1, std::chrono::seconds(10)));

  CopyFile(second->cert, cert);
  CopyFile(second->key, key);
  WriteFile(tokens, TokenLine("app", "submit,read", "new-token"));
  t.proc().Signal(SIGHUP);
  ASSERT_TRUE(Eventually([&] {
    auto a = HttpFetch("GET", t.url() + "/v1/transactions/reload-1", "", Bearer("new-token"), 5000,
                       &o.tls);
    return a.ok() && a->status == 200;
  })) << t.Log();
  EXPECT_EQ(ServedCommonName(t.port(), pki_->ca_cert()), "treaty-second");
  r = HttpFetch("GET", t.url() + "/v1/transactions/reload-1", "", Bearer("old-token"), 5000,
                &o.tls);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401) << r->body;
  // The saga in flight during the reload finishes.
  std::string state;
  EXPECT_TRUE(Eventually([&] {
    auto a = HttpFetch("GET", t.url() + "/v1/transactions/reload-1", "", Bearer("new-token"), 5000,
                       &o.tls);
    if (a.ok() && a->status == 200) state = json::parse(a->body).value("state", "");
    return state == "COMMITTED";
  })) << state;

  // A broken tokens file: the reload keeps the old tokens, the process stays up.
  WriteFile(tokens, "this is not a tokens file\n");
  t.proc().Signal(SIGHUP);
  ASSERT_TRUE(Eventually([&] { return t.Log().find("kept as it was") != std::string::npos; }))
      << t.Log();
  EXPECT_EQ(t.proc().Wait(0), -1) << "treatyd exited:\n" << t.Log();
  r = HttpFetch("GET", t.url() + "/v1/cluster", "", Bearer("new-token"), 5000, &o.tls);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200) << r->body;
}

}  // namespace
}  // namespace treaty::testing
