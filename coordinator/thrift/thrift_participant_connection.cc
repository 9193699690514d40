#include "thrift/thrift_participant_connection.h"

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

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

#include <thrift/transport/TBufferTransports.h>
#include <boost/asio/ip/address.hpp>

#include "common/limits.h"
#include "common/text.h"
#include "thrift/thrift_limits.h"

namespace treaty {

namespace at = apache::thrift;

// Thrift's socket factory, for its SSL context (and OpenSSL set-up). OpenSSL
// 1.1+ initialises itself, so the factory is told to leave the library's
// global state alone (else it would unload OpenSSL's configuration modules
// when the last factory goes, under whoever else in the process uses TLS).
class ClientTlsFactory : public at::transport::TSSLSocketFactory {
 public:
  static std::shared_ptr<ClientTlsFactory> Make(const TlsClientFiles& files) {
    at::transport::TSSLSocketFactory::setManualOpenSSLInitialization(true);
    auto f = std::make_shared<ClientTlsFactory>();
    SSL_CTX* ctx = f->ctx_->get();
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (files.ca_file.empty()) {
      if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        throw at::transport::TSSLException("the system's trust store cannot be used");
      }
    } else {
      f->loadTrustedCertificates(files.ca_file.c_str());
    }
    if (!files.cert_file.empty()) {
      f->loadCertificate(files.cert_file.c_str());
      f->loadPrivateKey(files.key_file.c_str());
      if (SSL_CTX_check_private_key(ctx) != 1) {
        throw at::transport::TSSLException("the client key does not match its certificate");
      }
    }
    f->authenticate(true);  // verify the participant's certificate
    return f;
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

// Owns a getaddrinfo answer.
struct AddrInfoList {
  addrinfo* head = nullptr;
  ~AddrInfoList() {
    if (head) freeaddrinfo(head);
  }
};

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
// -1 with `error` set.
int ConnectTo(const addrinfo& ai, int timeout_ms, std::string& error) {
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
// address, with `host` (the URL's) as SNI and as the name the certificate
// must carry (Thrift's DefaultClientAccessManager: DNS names with
// wildcards, or an IP subjectAltName equal to the peer's address).
class ClientTlsSocket : public at::transport::TSSLSocket {
 public:
  ClientTlsSocket(std::shared_ptr<at::transport::SSLContext> ctx, int fd, const std::string& host,
                  int port)
      : TSSLSocket(std::move(ctx), fd, ThriftConfiguration()) {
    server(false);
    access(std::make_shared<at::transport::DefaultClientAccessManager>());
    setHost(host);
    setPort(port);
  }
  // Runs the handshake now (else it would run on the first write), so its
  // failures are told apart from the call's. Throws TSSLException.
  void Handshake() { initializeHandshake(); }
  // The peer certificate's verification result (X509_V_OK before a handshake).
  long VerifyResult() const { return ssl_ ? SSL_get_verify_result(ssl_) : X509_V_OK; }

  // After the first exchange on this connection failed: the TLS alert the
  // participant sent, if that is why ("tlsv13 alert certificate required":
  // with TLS 1.3 a server refuses the client certificate after the client's
  // handshake completed, and a write may fail before the alert is read), or "".
  std::string PeerAlert() {
    if (ssl_ == nullptr) return "";
    ERR_clear_error();
    char byte;
    const int n = SSL_read(ssl_, &byte, 1);  // the socket is non-blocking here
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

// A TLS handshake failure that is a configuration problem, as a message;
// "" for a passing fault (a reset or a time-out during the handshake).
// `verify`: the certificate verification result (X509_V_OK when none failed).
std::string TlsRefusal(const std::string& what, long verify, const std::string& key,
                       const std::string& host) {
  if (verify != X509_V_OK || what.find("certificate verify failed") != std::string::npos) {
    const std::string why = verify != X509_V_OK ? X509_verify_cert_error_string(verify)
                                                : Excerpt(what, limits::kErrorExcerptBytes);
    return "certificate verify failed: " + why + " (participant " + key + ", expected name '" +
           host + "')";
  }
  if (what.find("authorize:") != std::string::npos) {
    return "certificate verify failed: the participant's certificate does not name '" + host +
           "' (participant " + key + ")";
  }
  if (what.find("alert") != std::string::npos ||
      what.find("wrong version number") != std::string::npos ||
      what.find("no protocols available") != std::string::npos) {
    return "TLS with " + key + " failed: " + Excerpt(what, limits::kErrorExcerptBytes);
  }
  return "";
}

}  // namespace

void ParticipantConnection::Close() {
  try {
    transport->close();
  } catch (const std::exception&) {
  }
}

std::string ParticipantConnection::TlsRefusal(const std::string& what, const std::string& key,
                                              const std::string& host) {
  auto* tls = dynamic_cast<ClientTlsSocket*>(socket.get());
  if (tls == nullptr) return "";
  std::string refusal = treaty::TlsRefusal(what, X509_V_OK, key, host);
  if (refusal.empty()) {
    if (std::string alert = tls->PeerAlert(); !alert.empty()) {
      refusal = "TLS with " + key + " failed: " + alert;
    }
  }
  return refusal;
}

std::shared_ptr<ClientTlsFactory> MakeClientTlsFactory(const TlsClientFiles& files,
                                                       OpenFailure& failure) {
  try {
    return ClientTlsFactory::Make(files);
  } catch (const std::exception& e) {
    failure.error = "thrifts:// participants: TLS cannot be set up: " +
                    Excerpt(e.what(), limits::kErrorExcerptBytes);
    failure.config_error = true;
    return nullptr;
  }
}

std::unique_ptr<ParticipantConnection> OpenParticipantConnection(
    const Endpoint& endpoint, const std::string& key, const ThriftCallerOptions& options,
    const std::shared_ptr<ClientTlsFactory>& tls, OpenFailure& failure) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  AddrInfoList found;
  const int rc = getaddrinfo(endpoint.host.c_str(), std::to_string(endpoint.port).c_str(), &hints,
                             &found.head);
  if (rc != 0 || !found.head) {
    // Only "no such name" is a configuration error; a resolver that
    // cannot answer now (EAI_AGAIN) is a passing fault.
    failure.config_error = rc == EAI_NONAME
#ifdef EAI_NODATA
                           || rc == EAI_NODATA
#endif
        ;
    failure.error = "host '" + endpoint.host + "' does not resolve" +
                    (failure.config_error ? "" : " (the resolver cannot answer now)");
    return nullptr;
  }
  if (options.policy) {
    for (const addrinfo* ai = found.head; ai; ai = ai->ai_next) {
      Status allowed = options.policy->CheckAddress(endpoint, ToAddress(ai->ai_addr));
      if (!allowed.ok()) {
        failure.error = allowed.message();
        failure.config_error = true;
        return nullptr;
      }
    }
  }
  int connected = -1;
  std::string why;
  for (const addrinfo* ai = found.head; ai && connected < 0; ai = ai->ai_next) {
    connected = ConnectTo(*ai, options.connect_timeout_ms, why);
  }
  if (connected < 0) {
    failure.error = "thrift call to " + key + " failed: could not connect: " + why;
    return nullptr;
  }
  FdCloser fd(connected);  // until a socket owns it
  auto c = std::make_unique<ParticipantConnection>();
  try {
    if (tls) {
      auto socket = std::make_shared<ClientTlsSocket>(tls->context(), fd.release(), endpoint.host,
                                                      endpoint.port);
      c->socket = socket;
      socket->setRecvTimeout(options.connect_timeout_ms);
      socket->setSendTimeout(options.connect_timeout_ms);
      socket->Handshake();
    } else {
      c->socket = std::make_shared<at::transport::TSocket>(fd.release(), ThriftConfiguration());
      c->socket->setHost(endpoint.host);
      c->socket->setPort(endpoint.port);
    }
  } catch (const std::exception& e) {
    auto* tls_socket = dynamic_cast<ClientTlsSocket*>(c->socket.get());
    const long verify = tls_socket ? tls_socket->VerifyResult() : X509_V_OK;
    if (c->socket) c->socket->close();  // it owns fd
    std::string refusal = TlsRefusal(e.what(), verify, key, endpoint.host);
    failure.config_error = !refusal.empty();
    failure.error = failure.config_error
                        ? refusal
                        : "TLS handshake with " + key +
                              " failed: " + Excerpt(e.what(), limits::kErrorExcerptBytes);
    return nullptr;
  }
  c->socket->setNoDelay(true);
  c->transport =
      std::make_shared<at::transport::TFramedTransport>(c->socket, ThriftConfiguration());
  c->client = std::make_unique<rpc::ParticipantServiceClient>(LimitedBinaryProtocol(c->transport));
  return c;
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
