// treaty::Client's credentials against real treatyd processes (SQLite):
// a bearer token on every REST call, the typed errors for a missing or
// refused token and a missing role (never retried on other coordinators),
// and https:// coordinators verified against a CA made at test time.

#include "security/authenticator.h"
#include "support/subprocess.h"
#include "support/test_participant.h"
#include "support/test_pki.h"
#include "support/treatyd_process.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "treaty/client.h"

namespace treaty::testing {
namespace {

namespace sdk = treaty::sdk;

constexpr const char* kAppToken = "app-token-51d0c7";
constexpr const char* kViewerToken = "viewer-token-2b9e44";

class ClientAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-sdk-client-auth");
    std::ofstream(dir_ + "/tokens") << "app submit,read " << Sha256Hex(kAppToken) << "\n"
                                    << "viewer read " << Sha256Hex(kViewerToken) << "\n";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // A treatyd with --auth-tokens, started; `more` adds flags.
  std::unique_ptr<TreatydProcess> StartTreatyd(const std::string& name, TreatydOptions o = {}) {
    o.store = "sqlite:" + dir_ + "/" + name + ".db";
    o.token = kAppToken;
    o.extra.push_back("--auth-tokens");
    o.extra.push_back(dir_ + "/tokens");
    auto t = std::make_unique<TreatydProcess>(dir_, name, o);
    auto s = t->Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
    return s.ok() ? std::move(t) : nullptr;
  }

  sdk::SagaSpec Saga(const std::string& gtid) {
    sdk::SagaSpec saga;
    saga.gtid = gtid;
    saga.steps.push_back({.name = "step",
                          .action = participant_.Url("step", "action"),
                          .compensate = participant_.Url("step", "compensate")});
    return saga;
  }

  std::string dir_;
  TestParticipant participant_;
};

TEST_F(ClientAuthTest, ATokenIsSentAndItsAbsenceIsTyped) {
  auto t = StartTreatyd("auth");
  ASSERT_TRUE(t);
  sdk::Client with_token({.coordinators = {t->url()}, .token = kAppToken});
  auto r = with_token.SubmitSaga(Saga("auth-1"), /*wait=*/true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state, "COMMITTED");
  auto got = with_token.Get("auth-1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->state, "COMMITTED");

  sdk::Client without({.coordinators = {t->url()}});
  r = without.SubmitSaga(Saga("auth-2"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), treaty::StatusCode::kUnauthenticated) << r.status().ToString();
  EXPECT_NE(r.status().message().find("token"), std::string::npos) << r.status().ToString();

  sdk::Client wrong({.coordinators = {t->url()}, .token = "not-a-token"});
  r = wrong.SubmitSaga(Saga("auth-3"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), treaty::StatusCode::kUnauthenticated) << r.status().ToString();
  EXPECT_EQ(r.status().message().find("not-a-token"), std::string::npos) << r.status().ToString();

  sdk::Client viewer({.coordinators = {t->url()}, .token = kViewerToken});
  r = viewer.SubmitSaga(Saga("auth-4"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), treaty::StatusCode::kPermissionDenied) << r.status().ToString();
  EXPECT_TRUE(viewer.Get("auth-1").ok()) << "read is enough to read";
}

// Every coordinator would refuse the same credentials: a 401 or 403 ends
// the call at the first coordinator instead of going round the list.
TEST_F(ClientAuthTest, RefusedCredentialsAreNotRetriedOnOtherCoordinators) {
  TestParticipant first, second;
  for (TestParticipant* fake : {&first, &second}) {
    fake->SetRule("v1", "sagas",
                  {{401}, 0, R"({"error":{"code":"unauthenticated","message":"no token"}})"});
    fake->SetRule("v1", "2pc", {{403}, 0, R"({"error":{"code":"forbidden","message":"no"}})"});
  }
  const std::string a = "http://127.0.0.1:" + std::to_string(first.port());
  const std::string b = "http://127.0.0.1:" + std::to_string(second.port());
  sdk::Client client({.coordinators = {a, b}, .max_attempts = 6});
  auto r = client.SubmitSaga(Saga("once-1"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), treaty::StatusCode::kUnauthenticated) << r.status().ToString();
  EXPECT_EQ(first.Calls().size() + second.Calls().size(), 1u);
  r = client.Begin("once-2");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), treaty::StatusCode::kPermissionDenied) << r.status().ToString();
  EXPECT_EQ(first.Calls().size() + second.Calls().size(), 2u);
}

TEST_F(ClientAuthTest, HttpsCoordinator) {
  auto pki = TestPki::Create();
  ASSERT_TRUE(pki.ok()) << pki.status().ToString();
  auto cert = pki->Issue("treaty-server", "server");
  ASSERT_TRUE(cert.ok()) << cert.status().ToString();
  TreatydOptions o;
  o.https = true;
  o.tls.ca_file = pki->ca_cert();
  o.extra = {"--tls-cert", cert->cert, "--tls-key", cert->key};
  auto t = StartTreatyd("https", o);
  ASSERT_TRUE(t);
  const std::string url = "https://localhost:" + std::to_string(t->port());
  sdk::Client client({.coordinators = {url}, .token = kAppToken, .ca_file = pki->ca_cert()});
  auto r = client.SubmitSaga(Saga("tls-1"), /*wait=*/true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state, "COMMITTED");

  // Without the CA the coordinator is not trusted: no answer, Unavailable.
  sdk::Client untrusting({.coordinators = {url}, .max_attempts = 1, .token = kAppToken});
  r = untrusting.SubmitSaga(Saga("tls-2"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), treaty::StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_NE(r.status().message().find("certificate"), std::string::npos) << r.status().ToString();
  std::error_code ec;
  std::filesystem::remove_all(pki->dir(), ec);
}

}  // namespace
}  // namespace treaty::testing
