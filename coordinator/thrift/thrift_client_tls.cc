#include "thrift/thrift_client_tls.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include <thrift/transport/TSSLSocket.h>

#include "common/limits.h"
#include "common/mutex.h"
#include "common/socket_deadline.h"
#include "common/text.h"
#include "security/peer_name.h"
#include "thrift/thrift_limits.h"

namespace treaty {

namespace at = apache::thrift;

// Thrift's socket factory, for its SSL context. OpenSSL 1.1+ initialises
// itself, so the factory is told to leave the library's global state alone
// (else it would unload OpenSSL's configuration modules when the last
// factory goes, under whoever else in the process uses TLS).
class ClientTlsFactory : public at::transport::TSSLSocketFactory {
 public:
  // Throws TSSLException when a file cannot be used.
  explicit ClientTlsFactory(const TlsClientFiles& files) {
    SSL_CTX* ctx = ctx_->get();
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (files.ca_file.empty()) {
      if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        throw at::transport::TSSLException("the system's trust store cannot be used");
      }
    } else {
      loadTrustedCertificates(files.ca_file.c_str());
    }
    if (!files.cert_file.empty()) {
      loadCertificate(files.cert_file.c_str());
      loadPrivateKey(files.key_file.c_str());
      if (SSL_CTX_check_private_key(ctx) != 1) {
        throw at::transport::TSSLException("the client key does not match its certificate");
      }
    }
    authenticate(true);  // verify the server's certificate
  }
  std::shared_ptr<at::transport::SSLContext> context() const { return ctx_; }
};

namespace {

// Closes `fd` unless released.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

using Clock = std::chrono::steady_clock;

// Owns a getaddrinfo answer.
struct AddrInfoList {
  addrinfo* head = nullptr;
  ~AddrInfoList() {
    if (head) freeaddrinfo(head);
  }
};

// A getaddrinfo on a thread of its own, shared by the thread and the waiter
// (who may give up on it).
struct Lookup {
  Mutex mu;
  CondVar finished;
  bool done TREATY_GUARDED_BY(mu) = false;
  bool abandoned TREATY_GUARDED_BY(mu) = false;  // the waiter gave up: free the answer
  int rc TREATY_GUARDED_BY(mu) = 0;
  addrinfo* head TREATY_GUARDED_BY(mu) = nullptr;
};

addrinfo LookupHints(int extra_flags) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | extra_flags;
  return hints;
}

// getaddrinfo for `endpoint` by `deadline`: false when the deadline passed
// first (the lookup goes on, detached, and frees its answer); else true with
// `rc` and `found` as getaddrinfo left them. An IP literal is looked up
// here (it never waits); a name on a thread of its own, since a resolver
// that never answers blocks getaddrinfo for its own time-outs (10 s and more).
bool ResolveBy(const Endpoint& endpoint, Clock::time_point deadline, AddrInfoList& found, int& rc) {
  const std::string port = std::to_string(endpoint.port);
  addrinfo numeric = LookupHints(AI_NUMERICHOST);
  rc = getaddrinfo(endpoint.host.c_str(), port.c_str(), &numeric, &found.head);
  if (rc == 0) return true;
  found.head = nullptr;
  auto lookup = std::make_shared<Lookup>();
  try {
    std::thread([lookup, host = endpoint.host, port] {
      // Signals meant for the process go to the application's threads.
      sigset_t all;
      sigfillset(&all);
      pthread_sigmask(SIG_BLOCK, &all, nullptr);
      addrinfo hints = LookupHints(0);
      addrinfo* head = nullptr;
      const int result = getaddrinfo(host.c_str(), port.c_str(), &hints, &head);
      MutexLock l(&lookup->mu);
      if (lookup->abandoned) {
        if (head) freeaddrinfo(head);
        return;
      }
      lookup->rc = result;
      lookup->head = head;
      lookup->done = true;
      lookup->finished.NotifyAll();
    }).detach();
  } catch (const std::system_error&) {
    rc = EAI_AGAIN;  // no thread now: a passing fault
    return true;
  }
  MutexLock l(&lookup->mu);
  if (!lookup->finished.WaitUntil(&lookup->mu, deadline,
                                  [&]() TREATY_REQUIRES(lookup->mu) { return lookup->done; })) {
    lookup->abandoned = true;
    return false;
  }
  rc = lookup->rc;
  found.head = std::exchange(lookup->head, nullptr);
  return true;
}

boost::asio::ip::address ToAddress(const sockaddr* sa) {
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    boost::asio::ip::address_v6::bytes_type bytes;
    std::memcpy(bytes.data(), &in6->sin6_addr, bytes.size());
    return boost::asio::ip::address_v6(bytes, in6->sin6_scope_id);
  }
  const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
  return boost::asio::ip::address_v4(ntohl(in->sin_addr.s_addr));
}

// A blocking TCP connection to `ai` within `timeout_ms`; the descriptor, or
// -1 with `error` set (and `timed_out` when the time ran out).
int ConnectTo(const addrinfo& ai, int timeout_ms, std::string& error, bool& timed_out) {
  timed_out = false;
  const int raw = ::socket(ai.ai_family, ai.ai_socktype | SOCK_CLOEXEC, ai.ai_protocol);
  if (raw < 0) {
    error = std::string("socket(): ") + std::strerror(errno);
    return -1;
  }
  FdCloser owner(raw);
  const int flags = ::fcntl(raw, F_GETFL, 0);
  ::fcntl(raw, F_SETFL, flags | O_NONBLOCK);
  if (::connect(raw, ai.ai_addr, ai.ai_addrlen) != 0) {
    if (errno != EINPROGRESS) {
      error = std::strerror(errno);
      return -1;
    }
    pollfd p{raw, POLLOUT, 0};
    int n;
    do {
      n = ::poll(&p, 1, std::max(1, timeout_ms));
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
      error = "connect timed out after " + std::to_string(timeout_ms) + " ms";
      timed_out = true;
      return -1;
    }
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    if (n < 0 || ::getsockopt(raw, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0) {
      error = std::strerror(n < 0 ? errno : so_error);
      return -1;
    }
  }
  ::fcntl(raw, F_SETFL, flags);  // Thrift's sockets block (with time-outs)
  return owner.release();
}

// A client TLS socket over a descriptor already connected to a checked
// address, with `host` (the URL's) as the name the certificate must carry.
class ClientTlsSocket : public at::transport::TSSLSocket {
 public:
  ClientTlsSocket(std::shared_ptr<at::transport::SSLContext> ctx, int fd, const std::string& host,
                  int port)
      : TSSLSocket(std::move(ctx), fd, ThriftConfiguration()) {
    server(false);
    setHost(host);  // also Thrift's SNI
    setPort(port);
  }
  // Runs the handshake now (else it would run on the first write), so its
  // failures are told apart from the call's; OpenSSL checks the host name
  // as part of the certificate (ExpectPeerName), no access manager runs
  // after it. Throws TTransportException.
  void Handshake() {
    initializeHandshakeParams();  // makes ssl_
    if (ssl_ == nullptr) {
      throw at::transport::TTransportException(at::transport::TTransportException::NOT_OPEN,
                                               "TLS cannot be set up on the socket");
    }
    if (!ExpectPeerName(ssl_, getHost())) {
      throw at::transport::TSSLException("cannot verify the server name '" + getHost() + "'");
    }
    initializeHandshake();
  }
  // The server certificate's verification result (X509_V_OK before a handshake).
  long VerifyResult() const { return ssl_ ? SSL_get_verify_result(ssl_) : X509_V_OK; }
  ~ClientTlsSocket() override { close(); }
  // A session never set up (a failed handshake, or one the server ended
  // with an alert), or one whose socket is shut down (SocketDeadline) or
  // reset, is closed without the TLS shutdown Thrift would attempt (and
  // report on stderr).
  void close() override {
    if (ssl_ != nullptr && (SSL_is_init_finished(ssl_) != 1 || SocketHungUp())) {
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    TSSLSocket::close();
  }

  // Whether both directions of the socket are shut (POLLHUP) or it failed
  // (POLLERR): no close_notify can be sent. Never waits.
  bool SocketHungUp() const {
    if (socket_ < 0) return false;
    pollfd p{socket_, 0, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)) != 0;
  }

  // The TLS alert the server sent, if one is waiting ("tlsv13 alert
  // certificate required"), or "". The socket is non-blocking underneath.
  std::string PeerAlert() {
    if (ssl_ == nullptr) return "";
    ERR_clear_error();
    char byte;
    const int n = SSL_read(ssl_, &byte, 1);
    if (n > 0 || SSL_get_error(ssl_, n) != SSL_ERROR_SSL) return "";
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    const char* reason = ERR_reason_error_string(e);
    if (reason == nullptr || std::string_view(reason).find("alert") == std::string_view::npos) {
      return "";
    }
    return reason;
  }
};

// A failed handshake (or first exchange) sorted; `verify` is the
// certificate verification result (X509_V_OK when none failed).
TlsFailure Classify(const std::string& what, long verify) {
  TlsFailure f;
  if (verify != X509_V_OK || what.find("certificate verify failed") != std::string::npos) {
    f.kind = TlsFailure::Kind::kCertificate;
    f.reason = verify != X509_V_OK ? X509_verify_cert_error_string(verify)
                                   : Excerpt(what, limits::kErrorExcerptBytes);
    f.name_mismatch =
        verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH;
    return f;
  }
  if (what.find("cannot verify the server name") != std::string::npos) {
    f.kind = TlsFailure::Kind::kCertificate;
    f.reason = Excerpt(what, limits::kErrorExcerptBytes);
    f.name_mismatch = true;
    return f;
  }
  if (what.find("alert") != std::string::npos ||
      what.find("wrong version number") != std::string::npos ||
      what.find("no protocols available") != std::string::npos ||
      what.find("packet length too long") != std::string::npos) {
    f.kind = TlsFailure::Kind::kRefused;
    f.reason = Excerpt(what, limits::kErrorExcerptBytes);
  }
  return f;
}

}  // namespace

Result<std::shared_ptr<ClientTlsFactory>> MakeClientTlsFactory(const TlsClientFiles& files) {
  // The checks and messages every TLS client of Treaty gives (tls_context.h).
  auto checked = MakeClientTlsContext(files);
  if (!checked.ok()) return checked.status();
  try {
    at::transport::TSSLSocketFactory::setManualOpenSSLInitialization(true);
    return std::make_shared<ClientTlsFactory>(files);
  } catch (const std::exception& e) {
    return Status::InvalidArgument("TLS cannot be set up: " +
                                   Excerpt(e.what(), limits::kErrorExcerptBytes));
  }
}

std::shared_ptr<at::transport::TSocket> ConnectThriftSocket(
    const Endpoint& endpoint, const std::shared_ptr<ClientTlsFactory>& tls,
    const ThriftConnectOptions& options, ThriftConnectFailure& failure) {
  const Clock::time_point deadline =
      options.deadline != Clock::time_point::max()
          ? options.deadline
          : Clock::now() + std::chrono::milliseconds(std::max(1, options.timeout_ms));
  AddrInfoList found;
  int rc = 0;
  if (!ResolveBy(endpoint, deadline, found, rc)) {
    failure.stage = ThriftConnectFailure::Stage::kResolve;
    failure.timed_out = true;
    failure.error = "host '" + endpoint.host + "' did not resolve in time (timed out)";
    return nullptr;
  }
  if (rc != 0 || !found.head) {
    // Only "no such name" is a configuration error; a resolver that
    // cannot answer now (EAI_AGAIN) is a passing fault.
    failure.stage = ThriftConnectFailure::Stage::kResolve;
    failure.config_error = rc == EAI_NONAME
#ifdef EAI_NODATA
                           || rc == EAI_NODATA
#endif
        ;
    failure.error = "host '" + endpoint.host + "' does not resolve" +
                    (failure.config_error ? "" : " (the resolver cannot answer now)");
    return nullptr;
  }
  if (options.check_address) {
    for (const addrinfo* ai = found.head; ai; ai = ai->ai_next) {
      Status allowed = options.check_address(ToAddress(ai->ai_addr));
      if (!allowed.ok()) {
        failure.stage = ThriftConnectFailure::Stage::kAddressCheck;
        failure.error = allowed.message();
        failure.config_error = true;
        return nullptr;
      }
    }
  }
  int connected = -1;
  std::string why = "connect timed out";
  bool timed_out = true;  // when no address is tried: the deadline passed
  for (const addrinfo* ai = found.head; ai && connected < 0 && Clock::now() < deadline;
       ai = ai->ai_next) {
    connected = ConnectTo(*ai, std::min(options.timeout_ms, MillisUntil(deadline)), why, timed_out);
  }
  if (connected < 0) {
    failure.stage = ThriftConnectFailure::Stage::kConnect;
    failure.error = why;
    failure.timed_out = timed_out;
    return nullptr;
  }
  FdCloser fd(connected);  // until a socket owns it
  std::shared_ptr<at::transport::TSocket> socket;
  std::optional<SocketDeadline> limit;  // the handshake's
  try {
    if (tls) {
      auto tls_socket = std::make_shared<ClientTlsSocket>(tls->context(), fd.release(),
                                                          endpoint.host, endpoint.port);
      socket = tls_socket;
      // However slowly the server sends, the handshake ends by the deadline.
      limit.emplace(tls_socket->getSocketFD(), deadline);
      SetTimeoutsUntil(*tls_socket, *limit);
      tls_socket->Handshake();
      limit.reset();
    } else {
      socket = std::make_shared<at::transport::TSocket>(fd.release(), ThriftConfiguration());
      socket->setHost(endpoint.host);
      socket->setPort(endpoint.port);
    }
    socket->setRecvTimeout(options.timeout_ms);
    socket->setSendTimeout(options.timeout_ms);
    socket->setNoDelay(true);
    return socket;
  } catch (const std::exception& e) {
    const bool expired = limit && limit->expired();
    const bool thrift_timeout = [&] {
      auto* te = dynamic_cast<const at::transport::TTransportException*>(&e);
      return te != nullptr && te->getType() == at::transport::TTransportException::TIMED_OUT;
    }();
    limit.reset();  // disarmed before the descriptor is closed
    auto* tls_socket = dynamic_cast<ClientTlsSocket*>(socket.get());
    const long verify = tls_socket ? tls_socket->VerifyResult() : X509_V_OK;
    try {
      if (socket) socket->close();  // it owns the descriptor
    } catch (const std::exception&) {
    }
    failure.stage = ThriftConnectFailure::Stage::kTls;
    if (expired || thrift_timeout) {
      failure.timed_out = true;
      failure.error = "timed out";
      return nullptr;
    }
    failure.error = Excerpt(e.what(), limits::kErrorExcerptBytes);
    failure.tls = Classify(e.what(), verify);
    failure.config_error = failure.tls.kind != TlsFailure::Kind::kNone;
    return nullptr;
  }
}

TlsFailure TlsRefusalAfterExchange(at::transport::TSocket& socket, const std::string& what) {
  auto* tls = dynamic_cast<ClientTlsSocket*>(&socket);
  if (tls == nullptr) return {};
  TlsFailure f = Classify(what, X509_V_OK);
  if (f.kind != TlsFailure::Kind::kNone) return f;
  try {
    if (std::string alert = tls->PeerAlert(); !alert.empty()) {
      f.kind = TlsFailure::Kind::kRefused;
      f.reason = Excerpt(alert, limits::kErrorExcerptBytes);
    }
  } catch (const std::exception&) {
  }
  return f;
}

void SetTimeoutsUntil(at::transport::TSocket& socket, const SocketDeadline& limit) {
  socket.setRecvTimeout(limit.remaining_ms());
  socket.setSendTimeout(limit.remaining_ms());
}

void BlockSigpipeOnThisThread() {
  thread_local bool blocked = false;
  if (blocked) return;
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  blocked = true;
}

ScopedSigpipeBlock::ScopedSigpipeBlock() {
  sigemptyset(&pipe_);
  sigaddset(&pipe_, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
}

ScopedSigpipeBlock::~ScopedSigpipeBlock() {
  if (sigismember(&old_, SIGPIPE)) return;  // it was blocked before: leave it so
  timespec zero{};
  while (sigtimedwait(&pipe_, nullptr, &zero) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

}  // namespace treaty
