// Authenticator: the tokens file (parse errors name the line and never echo
// it, roles, certificate-only clients) and Reload (replaces on success,
// keeps the old clients on failure).

#include "security/authenticator.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/subprocess.h"

namespace treaty {
namespace {

const std::string kAliceToken = "alice-secret-token-0123456789";
const std::string kBobToken = "bob-secret-token-9876543210";

std::string Line(const std::string& name, const std::string& roles, const std::string& token) {
  return name + " " + roles + " " + Sha256Hex(token) + "\n";
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

TEST(Sha256HexTest, KnownVector) {
  EXPECT_EQ(Sha256Hex("test"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
}

TEST(AuthenticatorTest, TokensMapToTheirClientAndRoles) {
  auto auth =
      Authenticator::Parse("# clients\n\n" + Line("ops-alice", "operate,read", kAliceToken) + "  " +
                               Line("ci@build", "submit", kBobToken),
                           "tokens");
  ASSERT_TRUE(auth.ok()) << auth.status().ToString();
  EXPECT_EQ((*auth)->size(), 2u);
  auto alice = (*auth)->ForToken(kAliceToken);
  ASSERT_TRUE(alice.has_value());
  EXPECT_EQ(alice->name, "ops-alice");
  EXPECT_EQ(alice->method, AuthMethod::kToken);
  EXPECT_TRUE(alice->roles.Has(Role::kOperate));
  EXPECT_TRUE(alice->roles.Has(Role::kRead));
  EXPECT_FALSE(alice->roles.Has(Role::kSubmit));
  EXPECT_FALSE(alice->roles.Has(Role::kAdmin));
  auto bob = (*auth)->ForToken(kBobToken);
  ASSERT_TRUE(bob.has_value());
  EXPECT_EQ(bob->name, "ci@build");
  EXPECT_TRUE(bob->roles.Has(Role::kSubmit));
  EXPECT_FALSE(bob->roles.Has(Role::kRead));

  EXPECT_FALSE((*auth)->ForToken("").has_value());
  EXPECT_FALSE((*auth)->ForToken(kAliceToken + "x").has_value());
  EXPECT_FALSE((*auth)->ForToken(Sha256Hex(kAliceToken)).has_value()) << "the hash is no token";
}

TEST(AuthenticatorTest, UpperCaseHexAndCrLfAreAccepted) {
  std::string hex = Sha256Hex(kAliceToken);
  for (char& c : hex) c = static_cast<char>(toupper(c));
  auto auth = Authenticator::Parse("alice admin\t" + hex + "\r\n", "tokens");
  ASSERT_TRUE(auth.ok()) << auth.status().ToString();
  auto alice = (*auth)->ForToken(kAliceToken);
  ASSERT_TRUE(alice.has_value());
  EXPECT_TRUE(alice->roles.Has(Role::kAdmin));
}

TEST(AuthenticatorTest, CertificateOnlyClient) {
  auto auth = Authenticator::Parse(
      "svc.example.com read,submit -\n" + Line("alice", "operate", kAliceToken), "tokens");
  ASSERT_TRUE(auth.ok()) << auth.status().ToString();
  auto svc = (*auth)->ForCertificate("svc.example.com");
  ASSERT_TRUE(svc.has_value());
  EXPECT_EQ(svc->method, AuthMethod::kCertificate);
  EXPECT_TRUE(svc->roles.Has(Role::kRead));
  EXPECT_TRUE(svc->roles.Has(Role::kSubmit));
  EXPECT_FALSE((*auth)->ForToken("-").has_value());
  EXPECT_FALSE((*auth)->ForCertificate("other.example.com").has_value());
  // A token line's name may be a certificate's CN too.
  EXPECT_TRUE((*auth)->ForCertificate("alice").has_value());
  auto by_name = (*auth)->ForName("svc.example.com");
  ASSERT_TRUE(by_name.has_value());
  EXPECT_EQ(by_name->method, AuthMethod::kSession);
  EXPECT_FALSE((*auth)->ForName("nobody").has_value());
}

struct BadFile {
  const char* what;
  std::string text;
  int line;
  const char* expect;  // a part of the message
};

TEST(AuthenticatorTest, ParseErrorsNameTheLineAndNeverEchoIt) {
  const std::string good = Line("alice", "read", kAliceToken);
  const std::string hash = Sha256Hex("secret-pasted-by-mistake");
  const std::vector<BadFile> cases = {
      {"two fields", "# header\n" + good + "bob read\n", 3, "three fields"},
      {"four fields", "bob read " + hash + " extra\n", 1, "three fields"},
      {"unknown role", good + "bob read,root " + hash + "\n", 2, "unknown role"},
      {"trailing comma", "bob read, " + hash + "\n", 1, "unknown role"},
      {"empty role in list", "bob read,,submit " + hash + "\n", 1, "unknown role"},
      {"upper-case role", "bob READ " + hash + "\n", 1, "unknown role"},
      {"short hash", "bob read " + hash.substr(0, 63) + "\n", 1, "64 hex digits"},
      {"bad hex", "bob read " + hash.substr(0, 63) + "g\n", 1, "64 hex digits"},
      {"bad name", "bob/1 read " + hash + "\n", 1, "NAME may hold only"},
      {"long name", std::string(65, 'n') + " read " + hash + "\n", 1, "longer than 64"},
      {"duplicate name", good + "\n" + Line("alice", "submit", kBobToken), 3, "earlier line"},
      {"duplicate token", good + Line("bob", "submit", kAliceToken), 2, "same as an earlier"},
      {"control byte", "bob read\x01 " + hash + "\n", 1, "control character"},
  };
  for (const BadFile& c : cases) {
    auto auth = Authenticator::Parse(c.text, "tokens.txt");
    ASSERT_FALSE(auth.ok()) << c.what;
    const std::string& m = auth.status().message();
    EXPECT_EQ(auth.status().code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_NE(m.find("tokens.txt line " + std::to_string(c.line) + ":"), std::string::npos)
        << c.what << ": " << m;
    EXPECT_NE(m.find(c.expect), std::string::npos) << c.what << ": " << m;
    EXPECT_EQ(m.find(hash.substr(0, 16)), std::string::npos) << c.what << " echoes the line";
    EXPECT_EQ(m.find("bob"), std::string::npos) << c.what << " echoes the line";
  }
}

TEST(AuthenticatorTest, AFileWithoutClientsIsRefused) {
  auto auth = Authenticator::Parse("# nobody yet\n\n", "tokens.txt");
  ASSERT_FALSE(auth.ok());
  EXPECT_NE(auth.status().message().find("no client"), std::string::npos);
}

TEST(AuthenticatorTest, LoadNamesTheFile) {
  auto missing = Authenticator::Load("/nonexistent-dir/tokens");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent-dir/tokens"), std::string::npos);

  const std::string dir = testing::MakeTempDir("treaty-auth");
  ASSERT_FALSE(dir.empty());
  const std::string path = dir + "/tokens";
  WriteFile(path, Line("alice", "read", kAliceToken) + "bad line\n");
  auto bad = Authenticator::Load(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(path), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("line 2"), std::string::npos) << bad.status().message();
  std::filesystem::remove_all(dir);
}

TEST(AuthenticatorTest, ReloadReplacesTheClientsAndAFailedReloadKeepsThem) {
  const std::string dir = testing::MakeTempDir("treaty-auth");
  ASSERT_FALSE(dir.empty());
  const std::string path = dir + "/tokens";
  WriteFile(path, Line("alice", "read", kAliceToken));
  auto loaded = Authenticator::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  auto auth = *loaded;
  ASSERT_TRUE(auth->ForToken(kAliceToken).has_value());
  EXPECT_FALSE(auth->ForToken(kBobToken).has_value());

  // Alice removed, Bob added with new roles.
  WriteFile(path, Line("bob", "operate,admin", kBobToken));
  ASSERT_TRUE(auth->Reload().ok());
  EXPECT_FALSE(auth->ForToken(kAliceToken).has_value());
  EXPECT_FALSE(auth->ForName("alice").has_value()) << "a removed client loses its sessions";
  auto bob = auth->ForToken(kBobToken);
  ASSERT_TRUE(bob.has_value());
  EXPECT_TRUE(bob->roles.Has(Role::kAdmin));

  // A broken file: the error names the line, Bob stays.
  WriteFile(path, Line("carol", "read", "carol-token") + "dave read nothex\n");
  Status s = auth->Reload();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("line 2"), std::string::npos) << s.message();
  EXPECT_TRUE(auth->ForToken(kBobToken).has_value());
  EXPECT_FALSE(auth->ForToken("carol-token").has_value());
  EXPECT_EQ(auth->size(), 1u);

  // A vanished file keeps them too.
  ASSERT_EQ(::unlink(path.c_str()), 0);
  EXPECT_FALSE(auth->Reload().ok());
  EXPECT_TRUE(auth->ForToken(kBobToken).has_value());
  std::filesystem::remove_all(dir);
}

TEST(AuthenticatorTest, TheNameAnonymousIsReserved) {
  auto auth = Authenticator::Parse(
      Line("alice", "read", kAliceToken) + Line("anonymous", "admin", kBobToken), "tokens");
  ASSERT_FALSE(auth.ok());
  EXPECT_NE(auth.status().message().find("line 2"), std::string::npos) << auth.status().message();
  EXPECT_NE(auth.status().message().find("reserved"), std::string::npos) << auth.status().message();
}

// A directory is refused as an error naming the option and the path, at
// load and at reload (where the old clients stay); reading one must not
// throw (libstdc++ streams throw "Is a directory").
TEST(AuthenticatorTest, ADirectoryIsRefusedAtLoadAndReload) {
  const std::string dir = testing::MakeTempDir("treaty-auth");
  ASSERT_FALSE(dir.empty());
  auto loaded = Authenticator::Load(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(loaded.status().message().find("--auth-tokens"), std::string::npos);
  EXPECT_NE(loaded.status().message().find(dir), std::string::npos) << loaded.status().message();
  EXPECT_NE(loaded.status().message().find("directory"), std::string::npos);

  const std::string path = dir + "/tokens";
  WriteFile(path, Line("alice", "read", kAliceToken));
  auto auth = Authenticator::Load(path);
  ASSERT_TRUE(auth.ok()) << auth.status().ToString();
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
  Status s = (*auth)->Reload();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
  EXPECT_TRUE((*auth)->ForToken(kAliceToken).has_value()) << "the old clients stay";
  std::filesystem::remove_all(dir);
}

// A tokens file other users can read is accepted with a warning, at load
// and at reload; a private one gives none.
TEST(AuthenticatorTest, AFileOthersCanReadIsWarnedAbout) {
  const std::string dir = testing::MakeTempDir("treaty-auth");
  ASSERT_FALSE(dir.empty());
  const std::string path = dir + "/tokens";
  WriteFile(path, Line("alice", "read", kAliceToken));
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  sink->set_pattern("%l %v");
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("auth-test", sink));

  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  auto auth = Authenticator::Load(path);
  ASSERT_TRUE(auth.ok());
  const std::string private_log = captured.str();
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  const Status reloaded = (*auth)->Reload();
  const std::string reload_log = captured.str();
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  auto group_readable = Authenticator::Load(path);
  const std::string load_log = captured.str().substr(reload_log.size());
  spdlog::set_default_logger(previous);

  EXPECT_EQ(private_log, "");
  ASSERT_TRUE(reloaded.ok());
  EXPECT_NE(reload_log.find("warning --auth-tokens '" + path + "'"), std::string::npos)
      << reload_log;
  EXPECT_NE(reload_log.find("0644"), std::string::npos) << reload_log;
  ASSERT_TRUE(group_readable.ok());
  EXPECT_NE(load_log.find("0640"), std::string::npos) << load_log;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace treaty
