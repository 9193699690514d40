// treaty::Client's token over the Thrift transport (thrift://) against a
// real treatyd with --auth-tokens (SQLite): authenticate(token) once per
// connection, then the call; a missing or wrong token is Unauthenticated, a
// missing role PermissionDenied, as over REST.

// Coordinator and test-support headers before treaty/ (see sdk_test_env.h).
#include "security/authenticator.h"
#include "support/subprocess.h"
#include "support/test_participant.h"
#include "support/treatyd_process.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "sdk/one_step_saga.h"
#include "treaty/client.h"

namespace treaty::testing {
namespace {

namespace sdk = treaty::sdk;

constexpr const char* kAppToken = "thrift-app-token-7d1e";
constexpr const char* kViewerToken = "thrift-viewer-token-93ab";

class SdkThriftAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-sdk-thrift-auth");
    std::ofstream(dir_ + "/tokens") << "app submit,read " << Sha256Hex(kAppToken) << "\n"
                                    << "viewer read " << Sha256Hex(kViewerToken) << "\n";
    const int thrift_port = FreePort();
    TreatydOptions o;
    o.store = "sqlite:" + dir_ + "/t.db";
    o.token = kAppToken;
    o.thrift = "127.0.0.1:" + std::to_string(thrift_port);
    o.extra = {"--auth-tokens", dir_ + "/tokens"};
    treatyd_ = std::make_unique<TreatydProcess>(dir_, "thrift-auth", o);
    auto s = treatyd_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    url_ = "thrift://127.0.0.1:" + std::to_string(thrift_port);
  }
  void TearDown() override {
    treatyd_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // A client of this coordinator only, sending `token` ("" none).
  sdk::ClientOptions Options(const std::string& token = "") {
    sdk::ClientOptions o;
    o.coordinators = {url_};
    o.token = token;
    return o;
  }

  sdk::SagaSpec Saga(const std::string& gtid) { return OneStepSaga(participant_, gtid); }

  std::string dir_;
  std::string url_;
  TestParticipant participant_;
  std::unique_ptr<TreatydProcess> treatyd_;
};

TEST_F(SdkThriftAuthTest, TokenAuthenticatesTheThriftConnection) {
  sdk::Client app(Options(kAppToken));
  auto r = app.SubmitSaga(Saga("thrift-auth-1"), /*wait=*/true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state, "COMMITTED");
  auto got = app.Get("thrift-auth-1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->state, "COMMITTED");

  sdk::Client without(Options());
  r = without.SubmitSaga(Saga("thrift-auth-2"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), treaty::StatusCode::kUnauthenticated) << r.status().ToString();

  sdk::Client wrong(Options("not-a-token"));
  r = wrong.SubmitSaga(Saga("thrift-auth-3"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), treaty::StatusCode::kUnauthenticated) << r.status().ToString();
  EXPECT_EQ(r.status().message().find("not-a-token"), std::string::npos) << r.status().ToString();

  sdk::Client viewer(Options(kViewerToken));
  r = viewer.SubmitSaga(Saga("thrift-auth-4"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), treaty::StatusCode::kPermissionDenied) << r.status().ToString();
  EXPECT_NE(r.status().message().find("'submit'"), std::string::npos) << r.status().ToString();
  EXPECT_TRUE(viewer.Get("thrift-auth-1").ok()) << "read is enough to read";
}

}  // namespace
}  // namespace treaty::testing
