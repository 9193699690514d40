// MakeServerTlsContext and ServerTls with real certificates made at test
// time (TestPki): a server certificate that has expired is refused at load
// naming the file and the date, and a reload to one keeps the old context;
// one that expires within 7 days loads with a warning; a directory given as
// a PEM file is refused naming the option.

#include "security/tls_context.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>
#include <sstream>

#include "support/test_pki.h"

namespace treaty {
namespace {

using testing::TestPki;

class TlsContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status().ToString();
    pki_ = std::make_unique<TestPki>(std::move(*pki));
  }
  void TearDown() override {
    if (pki_) std::filesystem::remove_all(pki_->dir());
  }
  std::unique_ptr<TestPki> pki_;
};

TEST_F(TlsContextTest, AnExpiredServerCertificateIsRefusedNamingTheFileAndDate) {
  auto expired = pki_->Issue("localhost", "expired", /*expired=*/true);
  ASSERT_TRUE(expired.ok()) << expired.status().ToString();
  auto ctx = MakeServerTlsContext(TlsServerFiles{expired->cert, expired->key, ""});
  ASSERT_FALSE(ctx.ok());
  EXPECT_EQ(ctx.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ctx.status().message(),
            "--tls-cert: certificate '" + expired->cert + "' expired on 2020-01-02");
  EXPECT_FALSE(ServerTls::Load(TlsServerFiles{expired->cert, expired->key, ""}).ok());
}

TEST_F(TlsContextTest, AReloadToAnExpiredCertificateKeepsTheOldContext) {
  auto good = pki_->Issue("localhost", "server", /*expired=*/false, /*valid_days=*/30);
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  auto tls = ServerTls::Load(TlsServerFiles{good->cert, good->key, ""});
  ASSERT_TRUE(tls.ok()) << tls.status().ToString();
  auto before = (*tls)->context();
  // The same file names now hold an expired certificate.
  auto expired = pki_->Issue("localhost", "server", /*expired=*/true);
  ASSERT_TRUE(expired.ok()) << expired.status().ToString();
  Status s = (*tls)->Reload();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("expired on 2020-01-02"), std::string::npos) << s.message();
  EXPECT_EQ((*tls)->context(), before);
}

TEST_F(TlsContextTest, ACertificateExpiringWithinAWeekLoadsWithAWarning) {
  auto soon = pki_->Issue("localhost", "soon", /*expired=*/false, /*valid_days=*/2);
  auto later = pki_->Issue("localhost", "later", /*expired=*/false, /*valid_days=*/30);
  ASSERT_TRUE(soon.ok() && later.ok());
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  sink->set_pattern("%l %v");
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("tls-test", sink));
  auto later_ctx = MakeServerTlsContext(TlsServerFiles{later->cert, later->key, ""});
  const std::string later_log = captured.str();
  auto soon_ctx = MakeServerTlsContext(TlsServerFiles{soon->cert, soon->key, ""});
  const std::string soon_log = captured.str();
  spdlog::set_default_logger(previous);
  EXPECT_TRUE(later_ctx.ok()) << later_ctx.status().ToString();
  EXPECT_EQ(later_log, "");
  ASSERT_TRUE(soon_ctx.ok()) << soon_ctx.status().ToString();
  EXPECT_NE(soon_log.find("warning --tls-cert: certificate '" + soon->cert + "' expires on"),
            std::string::npos)
      << soon_log;
}

TEST_F(TlsContextTest, ADirectoryIsRefusedNamingTheOption) {
  auto good = pki_->Issue("localhost", "server");
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  auto cert = MakeServerTlsContext(TlsServerFiles{pki_->dir(), good->key, ""});
  ASSERT_FALSE(cert.ok());
  EXPECT_EQ(cert.status().message(),
            "--tls-cert: cannot read '" + pki_->dir() + "': it is a directory, not a file");
  auto key = MakeServerTlsContext(TlsServerFiles{good->cert, pki_->dir(), ""});
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.status().message().find("--tls-key"), std::string::npos);
  auto ca = MakeServerTlsContext(TlsServerFiles{good->cert, good->key, pki_->dir()});
  ASSERT_FALSE(ca.ok());
  EXPECT_NE(ca.status().message().find("--tls-client-ca"), std::string::npos);
  auto client = MakeClientTlsContext(TlsClientFiles{pki_->dir(), "", ""});
  ASSERT_FALSE(client.ok());
  EXPECT_NE(client.status().message().find("directory"), std::string::npos);
}

}  // namespace
}  // namespace treaty
