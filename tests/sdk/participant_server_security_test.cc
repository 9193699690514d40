// The SDK's ParticipantServer trusting only its coordinator
// (docs/security.md "Participants can trust the caller"): Treaty-Signature
// checks over plain HTTP (raw sockets), and HTTPS with client certificates
// and a CN allow-list (certificates made at test time).

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "sdk/raw_http.h"
#include "sdk/security_env.h"
#include "support/tls_test_client.h"
#include "treaty/participant_server.h"

namespace treaty::testing {
namespace {

namespace sdk = treaty::sdk;
using nlohmann::json;

const std::string kKey = "k1-0123456789abcdef0123456789abcdef";
const std::string kNextKey = "k2-0123456789abcdef0123456789abcdef";
const std::string kTarget = "/flight/action";
const std::string kBody = R"({"gtid":"g-1","op":"action"})";

std::string ErrorCode(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("error")) return "";
  return j["error"].value("code", "");
}

class ParticipantServerSecurityTest : public ::testing::Test {
 protected:
  void Start(sdk::ParticipantServerOptions options) {
    server_ = std::make_unique<sdk::ParticipantServer>(std::move(options));
    auto step = [this](const sdk::CallContext&) {
      ++calls_;
      return treaty::Status::Ok();
    };
    server_->AddSagaStep("flight", step, step);
    auto s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // Plain HTTP POST of `body` to kTarget with `headers`.
  RawResponse Post(const std::string& body, const std::map<std::string, std::string>& headers) {
    return RawExchange(server_->http_port(), RawPost(kTarget, body, headers));
  }

  std::unique_ptr<sdk::ParticipantServer> server_;
  std::atomic<int> calls_{0};
};

class SignedRequestTest : public ParticipantServerSecurityTest {
 protected:
  void SetUp() override {
    sdk::ParticipantServerOptions options;
    options.signing_keys = {kKey, kNextKey};  // a rotation: both are accepted
    Start(std::move(options));
  }
};

TEST_F(SignedRequestTest, UnsignedRequestIs401AndNeverReachesTheHandler) {
  RawResponse r = Post(kBody, {});
  ASSERT_TRUE(r.well_formed) << r.raw;
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(ErrorCode(r.body), "unauthenticated") << r.body;
  EXPECT_EQ(calls_, 0);
}

TEST_F(SignedRequestTest, CorrectlySignedRequestIsServedWithEitherKey) {
  for (const std::string& key : {kKey, kNextKey}) {
    RawResponse r =
        Post(kBody, {{"Treaty-Signature", SignatureHeader(key, "POST", kTarget, kBody)}});
    ASSERT_TRUE(r.well_formed) << r.raw;
    EXPECT_EQ(r.status, 200) << r.body;
  }
  EXPECT_EQ(calls_, 2);
}

TEST_F(SignedRequestTest, TamperedOrMisdirectedOrForeignSignatureIs401) {
  const std::string tampered = R"({"gtid":"g-2","op":"action"})";
  RawResponse r =
      Post(tampered, {{"Treaty-Signature", SignatureHeader(kKey, "POST", kTarget, kBody)}});
  EXPECT_EQ(r.status, 401) << r.raw;
  r = Post(kBody,
           {{"Treaty-Signature", SignatureHeader(kKey, "POST", "/flight/compensate", kBody)}});
  EXPECT_EQ(r.status, 401) << r.raw;
  const std::string foreign = "k3-0123456789abcdef0123456789abcdef";
  r = Post(kBody, {{"Treaty-Signature", SignatureHeader(foreign, "POST", kTarget, kBody)}});
  EXPECT_EQ(r.status, 401) << r.raw;
  r = Post(kBody, {{"Treaty-Signature", "t=1,v1=nothex"}});
  EXPECT_EQ(r.status, 401) << r.raw;
  EXPECT_EQ(calls_, 0);
}

TEST_F(SignedRequestTest, OldTimestampIs401) {
  RawResponse r = Post(kBody, {{"Treaty-Signature", SignatureHeader(kKey, "POST", kTarget, kBody,
                                                                    /*age_s=*/600)}});
  EXPECT_EQ(r.status, 401) << r.raw;
  EXPECT_EQ(ErrorCode(r.body), "unauthenticated") << r.body;
  EXPECT_EQ(calls_, 0);
}

class HttpsParticipantTest : public ParticipantServerSecurityTest {
 protected:
  void SetUp() override {
    std::string error;
    ca_ = SdkTestCa::Create("Participant Test CA", &error);
    ASSERT_TRUE(ca_) << error;
    ASSERT_TRUE(ca_->Issue("localhost", "server", &server_cert_, &error)) << error;
  }

  // The options of an HTTPS participant requiring client certificates from ca_.
  sdk::ParticipantServerOptions TlsOptions() {
    sdk::ParticipantServerOptions options;
    options.tls_cert_file = server_cert_.cert;
    options.tls_key_file = server_cert_.key;
    options.tls_client_ca_file = ca_->ca_cert();
    return options;
  }

  // POSTs kBody over HTTPS presenting `client` (none when null). Fails the
  // test's expectations and returns 0 when the connection is refused.
  int PostOverTls(const PemFiles* client, std::string* body = nullptr) {
    TlsTestClient c(ca_->ca_cert(), client ? client->cert : "", client ? client->key : "");
    EXPECT_EQ(c.setup_error(), "");
    if (c.Connect(server_->http_port())) return 0;
    TlsTestResponse res;
    if (c.Request("POST", kTarget, kBody, {{"Content-Type", "application/json"}}, &res)) return 0;
    if (body) *body = res.body;
    return res.status;
  }

  std::unique_ptr<SdkTestCa> ca_;
  PemFiles server_cert_;
};

TEST_F(HttpsParticipantTest, ClientCertificateIsRequiredAndItsNameChecked) {
  auto options = TlsOptions();
  options.allowed_client_cns = {"coordinator"};
  Start(std::move(options));
  EXPECT_EQ(server_->http_url().rfind("https://", 0), 0u) << server_->http_url();

  EXPECT_EQ(PostOverTls(nullptr), 0);  // refused at the handshake

  std::string error;
  PemFiles coordinator, intruder;
  ASSERT_TRUE(ca_->Issue("coordinator", "coordinator", &coordinator, &error)) << error;
  ASSERT_TRUE(ca_->Issue("intruder", "intruder", &intruder, &error)) << error;
  std::string body;
  EXPECT_EQ(PostOverTls(&intruder, &body), 403);
  EXPECT_EQ(ErrorCode(body), "forbidden") << body;
  EXPECT_EQ(calls_, 0);

  EXPECT_EQ(PostOverTls(&coordinator, &body), 200) << body;
  EXPECT_EQ(calls_, 1);
}

TEST_F(HttpsParticipantTest, CertificateFromAnotherCaIsRefused) {
  Start(TlsOptions());
  std::string error;
  auto other = SdkTestCa::Create("Other CA", &error);
  ASSERT_TRUE(other) << error;
  PemFiles stranger;
  ASSERT_TRUE(other->Issue("coordinator", "stranger", &stranger, &error)) << error;
  EXPECT_EQ(PostOverTls(&stranger), 0);
  EXPECT_EQ(calls_, 0);

  PemFiles any;  // without allowed_client_cns, any certificate from the CA
  ASSERT_TRUE(ca_->Issue("anyone", "anyone", &any, &error)) << error;
  EXPECT_EQ(PostOverTls(&any), 200);
}

TEST_F(HttpsParticipantTest, StartRefusesUnusableSecurityOptions) {
  auto bad = [](sdk::ParticipantServerOptions options) {
    sdk::ParticipantServer server(std::move(options));
    return server.Start().code();
  };
  sdk::ParticipantServerOptions cns_without_ca;
  cns_without_ca.allowed_client_cns = {"coordinator"};
  EXPECT_EQ(bad(cns_without_ca), treaty::StatusCode::kInvalidArgument);
  sdk::ParticipantServerOptions short_key;
  short_key.signing_keys = {"short"};
  EXPECT_EQ(bad(short_key), treaty::StatusCode::kInvalidArgument);
  auto missing_file = TlsOptions();
  missing_file.tls_cert_file = ca_->ca_cert() + ".missing";
  EXPECT_EQ(bad(missing_file), treaty::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace treaty::testing
