// The Thrift front end's security over real loopback connections to an
// in-process treaty::Server on SQLite (docs/security.md): authentication
// (authenticate(token), brute force cut-off), the role x method matrix, the
// audit records and actors of operator actions, TLS (a trusted client, a
// plain client on the TLS port, a trickled handshake, mTLS by certificate,
// a certificate of another CA) and certificate reload. Certificates are made at test time
// (TestPki).

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSSLSocket.h>
#include <thrift/transport/TSocket.h>
#include <nlohmann/json.hpp>

#include "CoordinatorService.h"
#include "api/server.h"
#include "security/authenticator.h"
#include "support/store_env.h"
#include "support/subprocess.h"
#include "support/test_pki.h"

namespace treaty::testing {
namespace {

namespace at = apache::thrift;
using at::transport::TTransportException;

constexpr const char* kReadToken = "read-token-0123456789";
constexpr const char* kSubmitToken = "submit-token-0123456789";
constexpr const char* kOperateToken = "operate-token-0123456789";
constexpr const char* kAllToken = "all-token-0123456789";

// One client connection.
struct Connection {
  std::shared_ptr<at::transport::TTransport> transport;
  std::unique_ptr<rpc::CoordinatorServiceClient> rpc;
  ~Connection() {
    try {
      if (transport) transport->close();
    } catch (...) {
    }
  }
};

std::unique_ptr<Connection> Open(std::shared_ptr<at::transport::TSocket> socket) {
  socket->setRecvTimeout(20000);
  socket->setSendTimeout(20000);
  auto c = std::make_unique<Connection>();
  c->transport = std::make_shared<at::transport::TFramedTransport>(socket);
  c->transport->open();
  c->rpc = std::make_unique<rpc::CoordinatorServiceClient>(
      std::make_shared<at::protocol::TBinaryProtocol>(c->transport));
  return c;
}

// A TLS client context: trusts `ca_file`, presents `cert` when given.
std::shared_ptr<at::transport::TSSLSocketFactory> TlsClient(const std::string& ca_file,
                                                            const CertFiles* cert = nullptr) {
  auto factory = std::make_shared<at::transport::TSSLSocketFactory>(at::transport::SSLTLS);
  factory->authenticate(true);
  factory->loadTrustedCertificates(ca_file.c_str());
  if (cert) {
    factory->loadCertificate(cert->cert.c_str());
    factory->loadPrivateKey(cert->key.c_str());
  }
  return factory;
}

enum class Outcome { kUnauthenticated, kForbidden, kPassed };

std::ostream& operator<<(std::ostream& os, Outcome o) {
  return os << (o == Outcome::kUnauthenticated ? "Unauthenticated"
                : o == Outcome::kForbidden     ? "Forbidden"
                                               : "passed the role check");
}

// Runs `call`: which way it got past (or not past) the authorization checks.
// Other errors (InvalidRequest, NotFound...) come after them: passed.
Outcome Classify(const std::function<void()>& call) {
  try {
    call();
  } catch (const rpc::Unauthenticated&) {
    return Outcome::kUnauthenticated;
  } catch (const rpc::Forbidden&) {
    return Outcome::kForbidden;
  } catch (const rpc::InvalidRequest&) {
  } catch (const rpc::NotFound&) {
  } catch (const rpc::Conflict&) {
  } catch (const rpc::Unavailable&) {
  }
  return Outcome::kPassed;
}

// Every method of CoordinatorService but authenticate, with arguments that
// cannot change anything, and the role it needs.
struct Method {
  std::string name;
  Role role;
  std::function<void(rpc::CoordinatorServiceClient&)> call;
};

std::vector<Method> Methods() {
  return {
      {"submitSaga", Role::kSubmit,
       [](auto& c) {
         rpc::TxnStatus out;
         rpc::SagaRequest req;  // no steps: InvalidRequest
         c.submitSaga(out, req);
       }},
      {"begin2pc", Role::kSubmit,
       [](auto& c) {
         rpc::TxnStatus out;
         rpc::Begin2pcRequest req;
         req.__set_one_phase(true);  // refused: InvalidRequest
         c.begin2pc(out, req);
       }},
      {"registerBranch", Role::kSubmit,
       [](auto& c) {
         rpc::TxnStatus out;
         c.registerBranch(out, "t-nobody", rpc::Branch2pc());
       }},
      {"commit2pc", Role::kSubmit,
       [](auto& c) {
         rpc::TxnStatus out;
         c.commit2pc(out, "t-nobody");
       }},
      {"abort2pc", Role::kSubmit,
       [](auto& c) {
         rpc::TxnStatus out;
         c.abort2pc(out, "t-nobody");
       }},
      {"getTransaction", Role::kRead,
       [](auto& c) {
         rpc::Transaction out;
         c.getTransaction(out, "t-nobody");
       }},
      {"listTransactions", Role::kRead,
       [](auto& c) {
         rpc::TxnPage out;
         c.listTransactions(out, rpc::ListRequest());
       }},
      {"retryTransaction", Role::kOperate,
       [](auto& c) {
         rpc::TxnStatus out;
         c.retryTransaction(out, "t-nobody", "");
       }},
      {"abortTransaction", Role::kOperate,
       [](auto& c) {
         rpc::TxnStatus out;
         c.abortTransaction(out, "t-nobody", "");
       }},
      {"pauseTransaction", Role::kOperate,
       [](auto& c) {
         rpc::TxnStatus out;
         c.pauseTransaction(out, "t-nobody", "");
       }},
      {"resumeTransaction", Role::kOperate,
       [](auto& c) {
         rpc::TxnStatus out;
         c.resumeTransaction(out, "t-nobody", "");
       }},
      {"resolveBranch", Role::kOperate,
       [](auto& c) {
         rpc::TxnStatus out;
         c.resolveBranch(out, "t-nobody", "b", "COMMITTED", "fixed by hand");
       }},
  };
}

class ThriftSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-thrift-sec");
    tokens_file_ = dir_ + "/tokens";
    WriteTokens("");
    audit_file_ = dir_ + "/audit.log";
    options_.store_uri = FreshStoreUri("sqlite", dir_);
    options_.http_port = 0;
    options_.heartbeat_ms = 200;
    options_.lease_ms = 1000;
    options_.drain_timeout_ms = 1000;
    options_.auth_tokens_file = tokens_file_;
    options_.audit_log_file = audit_file_;
  }
  void TearDown() override {
    server_.reset();
    SetSigpipeBlocked(false);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // The tokens file: the four token clients, then `more` lines.
  void WriteTokens(const std::string& more) {
    std::ofstream f(tokens_file_, std::ios::trunc);
    f << "reader read " << Sha256Hex(kReadToken) << "\n"
      << "submitter submit " << Sha256Hex(kSubmitToken) << "\n"
      << "operator operate " << Sha256Hex(kOperateToken) << "\n"
      << "ops-all submit,read,operate " << Sha256Hex(kAllToken) << "\n"
      << more;
  }

  // The server's threads start with SIGPIPE as the process has it (not
  // ignored, not blocked), so a server that let a hung-up client raise it
  // would die here. This thread's own clients may write to a connection the
  // server closed: it blocks SIGPIPE once the server runs.
  void StartServer() {
    SetSigpipeBlocked(false);
    server_ = std::make_unique<Server>(options_);
    Status s = server_->Start();
    SetSigpipeBlocked(true);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  static void SetSigpipeBlocked(bool blocked) {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    if (!blocked) {
      // Discard a SIGPIPE this thread's clients raised while it was blocked.
      timespec zero{};
      while (sigtimedwait(&pipe, nullptr, &zero) > 0) {
      }
    }
    pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &pipe, nullptr);
  }

  std::unique_ptr<Connection> Plain() {
    return Open(std::make_shared<at::transport::TSocket>("127.0.0.1", server_->thrift_port()));
  }
  std::unique_ptr<Connection> Tls(at::transport::TSSLSocketFactory& factory) {
    std::shared_ptr<at::transport::TSocket> socket =
        factory.createSocket("127.0.0.1", server_->thrift_port());
    return Open(std::move(socket));
  }

  // The audit file's records.
  std::vector<nlohmann::json> AuditRecords() {
    std::vector<nlohmann::json> out;
    std::ifstream f(audit_file_);
    for (std::string line; std::getline(f, line);) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded()) out.push_back(std::move(j));
    }
    return out;
  }
  bool HasAudit(const std::string& actor, const std::string& action, int result) {
    for (const auto& r : AuditRecords()) {
      if (r.value("actor", "") == actor && r.value("action", "") == action &&
          r.value("result", 0) == result && r.value("peer", "").rfind("thrift ", 0) == 0) {
        return true;
      }
    }
    return false;
  }

  std::string dir_;
  std::string tokens_file_;
  std::string audit_file_;
  ServerOptions options_;
  std::unique_ptr<Server> server_;
};

TEST_F(ThriftSecurityTest, RoleByMethodMatrix) {
  StartServer();
  const std::map<std::string, std::optional<RoleSet>> clients = {
      {"", std::nullopt},  // never authenticates
      {kReadToken,
       [] {
         RoleSet r;
         r.Add(Role::kRead);
         return r;
       }()},
      {kSubmitToken,
       [] {
         RoleSet r;
         r.Add(Role::kSubmit);
         return r;
       }()},
      {kOperateToken,
       [] {
         RoleSet r;
         r.Add(Role::kOperate);
         return r;
       }()},
  };
  for (const auto& [token, roles] : clients) {
    auto c = Plain();
    if (!token.empty()) c->rpc->authenticate(token);
    for (const auto& m : Methods()) {
      const Outcome want = !roles               ? Outcome::kUnauthenticated
                           : roles->Has(m.role) ? Outcome::kPassed
                                                : Outcome::kForbidden;
      EXPECT_EQ(Classify([&] { m.call(*c->rpc); }), want)
          << m.name << " with token '" << token << "'";
    }
  }
}

TEST_F(ThriftSecurityTest, ForbiddenNamesTheMissingRole) {
  StartServer();
  auto c = Plain();
  c->rpc->authenticate(kReadToken);
  rpc::TxnStatus out;
  try {
    c->rpc->retryTransaction(out, "t-nobody", "");
    FAIL() << "retry as a reader was allowed";
  } catch (const rpc::Forbidden& e) {
    EXPECT_NE(e.message.find("'operate'"), std::string::npos) << e.message;
  }
}

TEST_F(ThriftSecurityTest, WrongTokenIsUnauthenticatedAndUnbinds) {
  StartServer();
  auto c = Plain();
  EXPECT_THROW(c->rpc->authenticate("not-a-token"), rpc::Unauthenticated);
  c->rpc->authenticate(kReadToken);
  rpc::TxnPage page;
  EXPECT_NO_THROW(c->rpc->listTransactions(page, rpc::ListRequest()));
  // A wrong token afterwards drops the identity the connection had.
  EXPECT_THROW(c->rpc->authenticate("still-not-a-token"), rpc::Unauthenticated);
  EXPECT_THROW(c->rpc->listTransactions(page, rpc::ListRequest()), rpc::Unauthenticated);
}

TEST_F(ThriftSecurityTest, FiveWrongTokensCloseTheConnection) {
  StartServer();
  auto c = Plain();
  for (int i = 0; i < 5; ++i) {
    EXPECT_THROW(c->rpc->authenticate("guess-" + std::to_string(i)), rpc::Unauthenticated) << i;
  }
  // Closed after the fifth answer: even the right token gets no answer.
  EXPECT_THROW(c->rpc->authenticate(kReadToken), TTransportException);
  // Other connections are served.
  auto other = Plain();
  other->rpc->authenticate(kReadToken);
  rpc::TxnPage page;
  EXPECT_NO_THROW(other->rpc->listTransactions(page, rpc::ListRequest()));
}

TEST_F(ThriftSecurityTest, ReloadedTokensFileAppliesToOpenConnections) {
  StartServer();
  auto c = Plain();
  c->rpc->authenticate(kAllToken);
  rpc::TxnPage page;
  EXPECT_NO_THROW(c->rpc->listTransactions(page, rpc::ListRequest()));
  // ops-all loses read, reader disappears.
  {
    std::ofstream f(tokens_file_, std::ios::trunc);
    f << "ops-all submit,operate " << Sha256Hex(kAllToken) << "\n";
  }
  ASSERT_TRUE(server_->Reload().ok());
  EXPECT_THROW(c->rpc->listTransactions(page, rpc::ListRequest()), rpc::Forbidden);
  auto r = Plain();
  EXPECT_THROW(r->rpc->authenticate(kReadToken), rpc::Unauthenticated);
}

TEST_F(ThriftSecurityTest, OperatorActionsAreAuditedWithTheIdentity) {
  StartServer();
  rpc::TxnStatus out;
  auto anonymous = Plain();
  EXPECT_THROW(anonymous->rpc->retryTransaction(out, "t-audit", ""), rpc::Unauthenticated);
  auto reader = Plain();
  reader->rpc->authenticate(kReadToken);
  EXPECT_THROW(reader->rpc->pauseTransaction(out, "t-audit", ""), rpc::Forbidden);
  auto op = Plain();
  op->rpc->authenticate(kOperateToken);
  EXPECT_THROW(op->rpc->retryTransaction(out, "t-audit", "try again"), rpc::NotFound);

  EXPECT_TRUE(HasAudit("(unauthenticated)", "retry", 401));
  EXPECT_TRUE(HasAudit("reader", "pause", 403));
  EXPECT_TRUE(HasAudit("operator", "retry", 404));
  bool reason_kept = false;
  for (const auto& r : AuditRecords()) {
    if (r.value("actor", "") == "operator") {
      reason_kept = r.value("reason", "") == "try again" && r.value("gtid", "") == "t-audit" &&
                    r.value("method", "") == "token";
    }
  }
  EXPECT_TRUE(reason_kept);
}

TEST_F(ThriftSecurityTest, OperatorEventNamesTheIdentity) {
  StartServer();
  auto c = Plain();
  c->rpc->authenticate(kAllToken);
  rpc::TxnStatus out;
  rpc::Begin2pcRequest begin;
  begin.__set_gtid("t-force");
  c->rpc->begin2pc(out, begin);
  c->rpc->abortTransaction(out, "t-force", "cleanup");
  EXPECT_TRUE(HasAudit("ops-all", "abort", 200));
  rpc::Transaction txn;
  c->rpc->getTransaction(txn, "t-force");
  bool named = false;
  for (const auto& e : txn.history) named |= e.detail.find("ops-all@thrift") != std::string::npos;
  EXPECT_TRUE(named) << "no event names ops-all@thrift";
}

// A 2PC transaction is bound to the client that began it: another client
// holding submit cannot enlist into, commit or abort it (Forbidden).
TEST_F(ThriftSecurityTest, OnlyTheClientThatBeganA2pcDrivesIt) {
  StartServer();
  auto owner = Plain();
  owner->rpc->authenticate(kSubmitToken);
  auto other = Plain();
  other->rpc->authenticate(kAllToken);
  rpc::TxnStatus out;
  rpc::Begin2pcRequest begin;
  begin.__set_gtid("t-bound");
  owner->rpc->begin2pc(out, begin);
  rpc::Branch2pc branch;
  branch.name = "b";
  branch.prepare = "http://127.0.0.1:9/b/prepare";
  branch.commit = "http://127.0.0.1:9/b/commit";
  branch.abort = "http://127.0.0.1:9/b/abort";
  EXPECT_THROW(other->rpc->registerBranch(out, "t-bound", branch), rpc::Forbidden);
  EXPECT_THROW(other->rpc->commit2pc(out, "t-bound"), rpc::Forbidden);
  EXPECT_THROW(other->rpc->abort2pc(out, "t-bound"), rpc::Forbidden);
  EXPECT_THROW(other->rpc->begin2pc(out, begin), rpc::Forbidden);
  owner->rpc->commit2pc(out, "t-bound");  // no branch: straight to COMMITTED
  EXPECT_EQ(out.state, "COMMITTED");
}

TEST_F(ThriftSecurityTest, AuthenticationOffLetsEveryoneInAndAcceptsTokens) {
  options_.auth_tokens_file.clear();
  StartServer();
  auto c = Plain();
  rpc::TxnPage page;
  EXPECT_NO_THROW(c->rpc->listTransactions(page, rpc::ListRequest()));
  EXPECT_NO_THROW(c->rpc->authenticate("whatever"));  // a client configured with a token works
  rpc::TxnStatus out;
  EXPECT_THROW(c->rpc->retryTransaction(out, "t-nobody", ""), rpc::NotFound);
  EXPECT_TRUE(HasAudit("anonymous", "retry", 404));
}

// TLS on the Thrift listener.
class ThriftTlsTest : public ThriftSecurityTest {
 protected:
  void SetUp() override {
    ThriftSecurityTest::SetUp();
    auto pki = TestPki::Create("Thrift Test CA");
    ASSERT_TRUE(pki.ok()) << pki.status().ToString();
    pki_ = std::make_unique<TestPki>(std::move(*pki));
    auto leaf = pki_->Issue("localhost", "server");
    ASSERT_TRUE(leaf.ok()) << leaf.status().ToString();
    // Copies at fixed paths, so a reload can swap them.
    options_.tls.cert_file = dir_ + "/server.pem";
    options_.tls.key_file = dir_ + "/server.key";
    InstallServerCert(*leaf);
  }
  void InstallServerCert(const CertFiles& files) {
    const auto overwrite = std::filesystem::copy_options::overwrite_existing;
    std::filesystem::copy_file(files.cert, options_.tls.cert_file, overwrite);
    std::filesystem::copy_file(files.key, options_.tls.key_file, overwrite);
  }

  std::unique_ptr<TestPki> pki_;
};

TEST_F(ThriftTlsTest, TrustedClientIsServedAndPlainClientIsRefused) {
  StartServer();
  auto factory = TlsClient(pki_->ca_cert());
  auto c = Tls(*factory);
  c->rpc->authenticate(kReadToken);
  rpc::TxnPage page;
  EXPECT_NO_THROW(c->rpc->listTransactions(page, rpc::ListRequest()));

  // A plain Thrift client on the TLS port: its connection is closed.
  auto plain = Plain();
  EXPECT_THROW(plain->rpc->listTransactions(page, rpc::ListRequest()), TTransportException);
  // The server keeps serving, the open connection and new ones.
  EXPECT_NO_THROW(c->rpc->listTransactions(page, rpc::ListRequest()));
  auto again = Tls(*factory);
  again->rpc->authenticate(kReadToken);
  EXPECT_NO_THROW(again->rpc->listTransactions(page, rpc::ListRequest()));
}

// A client trickling its handshake a byte at a time, well inside the idle
// timeout, is cut at the request time-out: the handshake is bounded as a
// whole, and the server keeps serving.
TEST_F(ThriftTlsTest, SlowHandshakeIsCut) {
  options_.thrift_request_timeout_ms = 300;
  StartServer();
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server_->thrift_port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  // The start of a TLS record header (handshake, TLS 1.0 record version),
  // then nothing more than a byte every 50 ms.
  const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
  bool closed = false;
  for (int i = 0; i < 200 && !closed; ++i) {  // at most about 10 s
    const uint8_t byte = hello[i % sizeof(hello)];
    if (send(fd, &byte, 1, MSG_NOSIGNAL) != 1) {
      closed = true;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) > 0) {
      char buf[64];
      closed = recv(fd, buf, sizeof(buf), 0) <= 0;  // end-of-file or reset, not data
    }
  }
  close(fd);
  EXPECT_TRUE(closed) << "the server held a trickling handshake for 10 s";
  auto factory = TlsClient(pki_->ca_cert());
  auto c = Tls(*factory);
  c->rpc->authenticate(kReadToken);
  rpc::TxnPage page;
  EXPECT_NO_THROW(c->rpc->listTransactions(page, rpc::ListRequest()));
}

TEST_F(ThriftTlsTest, ClientThatDoesNotTrustTheServerFails) {
  StartServer();
  auto other = TestPki::Create("Some Other CA");
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  auto factory = TlsClient(other->ca_cert());
  auto c = Tls(*factory);
  rpc::TxnPage page;
  EXPECT_THROW(c->rpc->listTransactions(page, rpc::ListRequest()), TTransportException);
}

TEST_F(ThriftTlsTest, ClientCertificateAuthenticatesTheConnection) {
  options_.tls.client_ca_file = pki_->ca_cert();
  WriteTokens("cert-client read -\n");
  StartServer();
  auto cert = pki_->Issue("cert-client", "cert-client");
  ASSERT_TRUE(cert.ok()) << cert.status().ToString();
  auto factory = TlsClient(pki_->ca_cert(), &*cert);
  auto c = Tls(*factory);
  // No authenticate(): the certificate names a client with the read role.
  rpc::TxnPage page;
  EXPECT_NO_THROW(c->rpc->listTransactions(page, rpc::ListRequest()));
  rpc::TxnStatus out;
  EXPECT_THROW(c->rpc->retryTransaction(out, "t-nobody", ""), rpc::Forbidden);
  EXPECT_TRUE(HasAudit("cert-client", "retry", 403));

  // A verified certificate the tokens file does not name: TLS works, but
  // the connection must still authenticate.
  auto stranger_cert = pki_->Issue("stranger", "stranger");
  ASSERT_TRUE(stranger_cert.ok()) << stranger_cert.status().ToString();
  auto stranger_factory = TlsClient(pki_->ca_cert(), &*stranger_cert);
  auto stranger = Tls(*stranger_factory);
  EXPECT_THROW(stranger->rpc->listTransactions(page, rpc::ListRequest()), rpc::Unauthenticated);
  stranger->rpc->authenticate(kReadToken);
  EXPECT_NO_THROW(stranger->rpc->listTransactions(page, rpc::ListRequest()));
}

TEST_F(ThriftTlsTest, MutualTlsRefusesOtherCaAndMissingCertificate) {
  options_.tls.client_ca_file = pki_->ca_cert();
  WriteTokens("cert-client read -\n");
  StartServer();
  auto other = TestPki::Create("Rogue CA");
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  auto rogue_cert = other->Issue("cert-client", "rogue");  // the right name, the wrong CA
  ASSERT_TRUE(rogue_cert.ok()) << rogue_cert.status().ToString();
  rpc::TxnPage page;
  {
    auto factory = TlsClient(pki_->ca_cert(), &*rogue_cert);
    auto c = Tls(*factory);
    EXPECT_THROW(c->rpc->listTransactions(page, rpc::ListRequest()), TTransportException);
  }
  {
    auto factory = TlsClient(pki_->ca_cert());  // no certificate at all
    auto c = Tls(*factory);
    EXPECT_THROW(c->rpc->authenticate(kReadToken), TTransportException);
  }
  // Still serving a good client.
  auto good_cert = pki_->Issue("cert-client", "good");
  ASSERT_TRUE(good_cert.ok()) << good_cert.status().ToString();
  auto factory = TlsClient(pki_->ca_cert(), &*good_cert);
  auto c = Tls(*factory);
  EXPECT_NO_THROW(c->rpc->listTransactions(page, rpc::ListRequest()));
}

TEST_F(ThriftTlsTest, ReloadServesTheNewCertificateToNewConnections) {
  StartServer();
  auto old_factory = TlsClient(pki_->ca_cert());
  auto before = Tls(*old_factory);
  before->rpc->authenticate(kReadToken);
  rpc::TxnPage page;
  ASSERT_NO_THROW(before->rpc->listTransactions(page, rpc::ListRequest()));

  auto next = TestPki::Create("Next CA");
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  auto leaf = next->Issue("localhost", "server");
  ASSERT_TRUE(leaf.ok()) << leaf.status().ToString();
  InstallServerCert(*leaf);
  ASSERT_TRUE(server_->Reload().ok());

  // New connections get the new certificate: trusted by the new CA only.
  auto new_factory = TlsClient(next->ca_cert());
  auto after = Tls(*new_factory);
  after->rpc->authenticate(kReadToken);
  EXPECT_NO_THROW(after->rpc->listTransactions(page, rpc::ListRequest()));
  auto stale = Tls(*old_factory);
  EXPECT_THROW(stale->rpc->authenticate(kReadToken), TTransportException);
  // The connection made before the reload keeps working.
  EXPECT_NO_THROW(before->rpc->listTransactions(page, rpc::ListRequest()));
}

TEST_F(ThriftTlsTest, FailedReloadKeepsTheOldCertificate) {
  StartServer();
  {
    std::ofstream f(options_.tls.cert_file, std::ios::trunc);
    f << "not a certificate\n";
  }
  EXPECT_FALSE(server_->Reload().ok());
  auto factory = TlsClient(pki_->ca_cert());
  auto c = Tls(*factory);
  c->rpc->authenticate(kReadToken);
  rpc::TxnPage page;
  EXPECT_NO_THROW(c->rpc->listTransactions(page, rpc::ListRequest()));
}

}  // namespace
}  // namespace treaty::testing
