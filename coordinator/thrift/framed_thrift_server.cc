#include "thrift/framed_thrift_server.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>

#include <spdlog/spdlog.h>
#include <thrift/TOutput.h>
#include <thrift/concurrency/ThreadFactory.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TSSLSocket.h>
#include <thrift/transport/TServerSocket.h>
#include <thrift/transport/TSocket.h>

#include "common/host_port.h"
#include "common/log_throttle.h"
#include "common/mutex.h"
#include "common/text.h"
#include "security/tls_context.h"
#include "thrift/thrift_limits.h"

namespace treaty {

namespace at = apache::thrift;
using at::transport::TTransport;
using at::transport::TTransportException;

namespace {

constexpr auto kFirstAcceptDelay = std::chrono::milliseconds(10);
constexpr auto kLastAcceptDelay = std::chrono::milliseconds(1000);
constexpr uint32_t kReadChunkBytes = 64 * 1024;

// "IP:PORT" ("[IP]:PORT" for IPv6) of a connection's peer, or "".
std::string PeerName(at::transport::TSocket& socket) {
  const std::string address = socket.getPeerAddress();
  if (address.empty()) return "";
  return FormatHostPort(address, static_cast<uint16_t>(socket.getPeerPort()));
}

// The OpenSSL errors queued on this thread as text (the queue is cleared),
// or `fallback`.
std::string OpenSslErrors(const std::string& fallback) {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? fallback : out;
}

// One accepted connection over TLS, in server mode. Thrift's TSSLSocket
// does the reading and writing; this class does the handshake itself, from
// the first read on the connection's thread, so that it is bounded: each
// wait lasts at most the socket's receive (or send) timeout (the idle
// timeout) and the whole handshake at most `handshake_ms`, and Stop()'s
// interrupt ends it. The SSL object is made from the ServerTls context
// current when the connection was accepted, so a reload only affects later
// connections. A failed handshake throws TTransportException out of that
// read: only this connection is closed (one throttled warning line).
//
// Peer verification is OpenSSL's chain check, configured in the context
// (with a client CA: a certificate that chains to it is required).
// authorize() is overridden because Thrift's would match the client's
// address against its certificate's names, which is no rule for clients; it
// records the verified certificate's subject CN instead.
//
// TSSLSocket's own context is never used (every path into its handshake
// finds the SSL object made here), so none is given. One connection's
// thread, which blocks SIGPIPE for itself (OpenSSL's writes would raise it).
class TlsConnectionSocket : public at::transport::TSSLSocket {
 public:
  TlsConnectionSocket(std::shared_ptr<boost::asio::ssl::context> context, THRIFT_SOCKET fd,
                      std::shared_ptr<THRIFT_SOCKET> interrupt, int handshake_ms,
                      std::shared_ptr<LogThrottle> failures, std::string log_name)
      : TSSLSocket(nullptr, fd, std::move(interrupt)),
        context_(std::move(context)),
        handshake_ms_(handshake_ms),
        failures_(std::move(failures)),
        log_name_(std::move(log_name)) {
    server(true);
  }

  // The verified client certificate's subject CN after the handshake ("" if none).
  const std::string& peer_common_name() const { return peer_common_name_; }

  uint32_t read(uint8_t* buf, uint32_t len) override {
    Handshake();
    return TSSLSocket::read(buf, len);
  }
  void write(const uint8_t* buf, uint32_t len) override {
    Handshake();
    TSSLSocket::write(buf, len);
  }
  uint32_t write_partial(const uint8_t* buf, uint32_t len) override {
    Handshake();
    return TSSLSocket::write_partial(buf, len);
  }
  bool peek() override {
    if (!TSocket::isOpen()) return false;
    Handshake();
    return TSSLSocket::peek();
  }
  bool hasPendingDataToRead() override {
    if (!TSocket::isOpen()) return false;
    Handshake();
    return TSSLSocket::hasPendingDataToRead();
  }

 protected:
  void authorize() override { peer_common_name_ = PeerCommonName(ssl_); }

 private:
  // Completes the handshake if it is not done; throws TTransportException.
  void Handshake() {
    if (checkHandshake()) return;
    if (!TSocket::isOpen()) throw TTransportException(TTransportException::NOT_OPEN);
    try {
      if (ssl_ == nullptr) {
        // OpenSSL writes with plain send(2), which raises SIGPIPE when the
        // client has hung up; that must not end the process. This thread
        // serves only this connection and ends with it: block SIGPIPE here
        // (a write then fails with EPIPE, the connection is closed).
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
        // What TSSLSocket::initializeHandshakeParams does, from our context.
        const int flags = fcntl(socket_, F_GETFL, 0);
        if (flags < 0 || fcntl(socket_, F_SETFL, flags | O_NONBLOCK) < 0) {
          throw TTransportException(TTransportException::UNKNOWN,
                                    "cannot make the socket non-blocking");
        }
        ssl_ = SSL_new(context_->native_handle());
        if (ssl_ == nullptr) {
          throw TTransportException(TTransportException::INTERNAL_ERROR,
                                    "SSL_new: " + OpenSslErrors("out of memory"));
        }
        SSL_set_fd(ssl_, static_cast<int>(socket_));
      }
      const auto deadline =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(handshake_ms_);
      for (;;) {
        ERR_clear_error();
        const int rc = SSL_accept(ssl_);
        if (rc == 1) break;
        const int errno_copy = errno;
        const int error = SSL_get_error(ssl_, rc);
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
          Wait(error == SSL_ERROR_WANT_READ, deadline);
          continue;
        }
        if (error == SSL_ERROR_SYSCALL && (errno_copy == EINTR || errno_copy == EAGAIN)) {
          Wait(true, deadline);
          continue;
        }
        if (error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && errno_copy == 0)) {
          throw TTransportException(TTransportException::END_OF_FILE,
                                    "the client closed the connection during the TLS handshake");
        }
        throw TTransportException(
            TTransportException::INTERNAL_ERROR,
            OpenSslErrors(error == SSL_ERROR_SYSCALL ? std::string(std::strerror(errno_copy))
                                                     : "SSL error " + std::to_string(error)));
      }
      // Done: TSSLSocket's SSL_accept now answers at once; it runs
      // authorize() and marks the handshake complete.
      initializeHandshake();
    } catch (const TTransportException& e) {
      if (e.getType() == TTransportException::END_OF_FILE) {
        spdlog::debug("{}: {} closed its connection during the TLS handshake", log_name_,
                      PeerName(*this));
      } else if (e.getType() != TTransportException::INTERRUPTED) {
        if (auto r = failures_->Tick(); r.log) {
          spdlog::warn("{}: TLS handshake with {} failed, connection closed: {}{}", log_name_,
                       PeerName(*this), EscapeControl(Excerpt(e.what(), 300)), r.Suffix());
        }
      }
      throw;
    }
  }

  // Waits until the socket is readable (or writable) or `deadline`, at most
  // the socket's timeout; throws TIMED_OUT or INTERRUPTED (Stop()).
  void Wait(bool want_read, std::chrono::steady_clock::time_point deadline) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
            .count();
    const int socket_timeout = want_read ? recvTimeout_ : sendTimeout_;
    int64_t timeout = left;
    if (socket_timeout > 0) timeout = std::min<int64_t>(timeout, socket_timeout);
    if (timeout <= 0) {
      throw TTransportException(
          TTransportException::TIMED_OUT,
          "TLS handshake not complete within " + std::to_string(handshake_ms_) + " ms");
    }
    pollfd fds[2] = {};
    fds[0].fd = socket_;
    fds[0].events = static_cast<short>(want_read ? POLLIN : (POLLIN | POLLOUT));
    nfds_t count = 1;
    if (interruptListener_) {
      fds[1].fd = *interruptListener_;
      fds[1].events = POLLIN;
      count = 2;
    }
    const int ret = ::poll(fds, count, static_cast<int>(timeout));
    if (ret < 0) {
      if (errno == EINTR) return;
      throw TTransportException(TTransportException::UNKNOWN, "poll failed", errno);
    }
    if (ret == 0) {
      throw TTransportException(
          TTransportException::TIMED_OUT,
          std::chrono::steady_clock::now() >= deadline
              ? "TLS handshake not complete within " + std::to_string(handshake_ms_) + " ms"
              : "no TLS handshake byte for " + std::to_string(timeout) + " ms");
    }
    if (count == 2 && (fds[1].revents & POLLIN)) {
      throw TTransportException(TTransportException::INTERRUPTED, "the server is stopping");
    }
  }

  const std::shared_ptr<boost::asio::ssl::context> context_;
  const int handshake_ms_;
  const std::shared_ptr<LogThrottle> failures_;
  const std::string log_name_;
  std::string peer_common_name_;
};

// The listening socket. Its accept never gives up on a failing accept(2)
// (TServerFramework would stop serving on it): it backs off and tries
// again. A connection over the cap is closed as soon as it is accepted.
// Called by the serve thread; interrupt() from any thread.
class BackoffServerSocket : public at::transport::TServerSocket {
 public:
  BackoffServerSocket(const std::string& host, int port, int max_connections, std::string log_name)
      : TServerSocket(host, port),
        max_connections_(max_connections),
        log_name_(std::move(log_name)) {}

  // How many connections are open; set before serving.
  void set_open_connections(std::function<int64_t()> open) { open_ = std::move(open); }
  // TLS on every accepted connection from `tls`'s current context, the
  // handshake bounded by `handshake_ms`; set before serving.
  void set_tls(std::shared_ptr<ServerTls> tls, int handshake_ms) {
    tls_ = std::move(tls);
    handshake_ms_ = handshake_ms;
  }
  // The last connection accepted (the serve thread's; see GuardedThreadedServer).
  std::shared_ptr<TTransport> last_accepted() const { return last_accepted_; }

  // Binds and listens once: Start() calls it to learn the port, serve() again.
  void listen() override {
    if (listening_) return;
    TServerSocket::listen();
    listening_ = true;
  }

  void interrupt() override {
    {
      MutexLock lock(&mu_);
      interrupted_ = true;
    }
    wake_.NotifyAll();
    TServerSocket::interrupt();
  }

 protected:
  std::shared_ptr<at::transport::TSocket> createSocket(THRIFT_SOCKET client) override {
    if (!tls_) return TServerSocket::createSocket(client);
    return std::make_shared<TlsConnectionSocket>(
        tls_->context(), client, interruptableChildren_ ? pChildInterruptSockReader_ : nullptr,
        handshake_ms_, handshake_failures_, log_name_);
  }

  std::shared_ptr<TTransport> acceptImpl() override {
    auto delay = std::chrono::milliseconds(0);
    for (;;) {
      last_accepted_.reset();
      std::shared_ptr<TTransport> client;
      try {
        client = TServerSocket::acceptImpl();
      } catch (const TTransportException& e) {
        // UNKNOWN is what a failing poll(2) or accept(2) throws; the other
        // types (INTERRUPTED, NOT_OPEN) mean the server is stopping.
        if (e.getType() != TTransportException::UNKNOWN) throw;
        delay = delay.count() == 0 ? kFirstAcceptDelay : std::min(delay * 2, kLastAcceptDelay);
        if (auto r = accept_failures_.Tick(); r.log) {
          spdlog::warn("{} accept failed: {}{}; retrying in {} ms", log_name_,
                       EscapeControl(e.what()), r.Suffix(), delay.count());
        }
        MutexLock lock(&mu_);
        if (wake_.WaitFor(&mu_, delay.count(),
                          [this]() TREATY_REQUIRES(mu_) { return interrupted_; })) {
          throw TTransportException(TTransportException::INTERRUPTED);
        }
        continue;
      }
      delay = std::chrono::milliseconds(0);
      const int64_t open = open_ ? open_() : 0;
      if (open < max_connections_) {
        last_accepted_ = client;
        return client;
      }
      if (auto r = refusals_.Tick(); r.log) {
        spdlog::warn("{} connection closed at once: {} connections open, the cap is {}{}",
                     log_name_, open, max_connections_, r.Suffix());
      }
      client->close();
    }
  }

 private:
  const int64_t max_connections_;
  const std::string log_name_;
  bool listening_ = false;
  std::shared_ptr<ServerTls> tls_;  // null: plain connections
  int handshake_ms_ = 0;
  std::shared_ptr<LogThrottle> handshake_failures_ = std::make_shared<LogThrottle>();
  std::function<int64_t()> open_;
  std::shared_ptr<TTransport> last_accepted_;
  LogThrottle accept_failures_;
  LogThrottle refusals_;
  Mutex mu_;
  CondVar wake_;  // interrupted_ was set
  bool interrupted_ TREATY_GUARDED_BY(mu_) = false;
};

// Thrift Threads that failed to start. Such a Thread cannot be destroyed
// (its destructor would use the std::thread it never got), so it is kept
// for the life of the process, reachable from here. Any thread.
void KeepUnstartedThread(std::shared_ptr<at::concurrency::Thread> thread) {
  static Mutex mu;
  static auto* threads = new std::vector<std::shared_ptr<at::concurrency::Thread>>();
  MutexLock lock(&mu);
  threads->push_back(std::move(thread));
}

// TThreadedServer whose serve loop survives a thread that cannot be
// started (std::system_error when the process is out of threads or
// memory): that connection is closed and the server goes on accepting.
class GuardedThreadedServer : public at::server::TThreadedServer {
 public:
  using TThreadedServer::TThreadedServer;
  // Set before serving.
  void set_socket(BackoffServerSocket* socket) { socket_ = socket; }
  void set_log_name(std::string log_name) { log_name_ = std::move(log_name); }

 protected:
  void onClientConnected(const std::shared_ptr<at::server::TConnectedClient>& client) override {
    try {
      TThreadedServer::onClientConnected(client);
      return;
    } catch (const std::exception& e) {
      if (auto r = thread_failures_.Tick(); r.log) {
        spdlog::error("{}: no thread for a new connection, closing it: {}{}", log_name_,
                      EscapeControl(e.what()), r.Suffix());
      }
    }
    // The thread that failed to start still holds the connection: keep the
    // thread (KeepUnstartedThread) and close the connection's socket.
    std::shared_ptr<at::concurrency::Thread> unstarted;
    {
      at::concurrency::Synchronized sync(clientMonitor_);
      auto it = activeClientMap_.find(client.get());
      if (it != activeClientMap_.end()) {
        unstarted = it->second;
        activeClientMap_.erase(it);
      }
    }
    if (unstarted) KeepUnstartedThread(std::move(unstarted));
    if (socket_ && socket_->last_accepted()) {
      try {
        socket_->last_accepted()->close();
      } catch (...) {
      }
    }
  }

 private:
  BackoffServerSocket* socket_ = nullptr;
  std::string log_name_ = "thrift";
  LogThrottle thread_failures_;
};

// The reads of one frame on a connection, under the frame's deadline: from
// the first byte of the frame, the whole frame must arrive within
// `request_ms`. Each read waits at most the idle timeout and at most the
// time left (the socket's receive timeout is lowered to it), so a client
// that sends a byte just inside the idle timeout is still cut at the
// deadline. Restores the idle timeout when destroyed. One connection's
// thread.
class FrameDeadline {
 public:
  // `connection` is the accepted socket (its receive timeout is adjusted)
  // or another transport (then only the elapsed time is checked).
  FrameDeadline(TTransport& connection, int idle_ms, int request_ms)
      : connection_(connection),
        socket_(dynamic_cast<at::transport::TSocket*>(&connection)),
        idle_ms_(idle_ms),
        deadline_(std::chrono::steady_clock::now() + std::chrono::milliseconds(request_ms)) {}
  ~FrameDeadline() {
    if (socket_ && lowered_) socket_->setRecvTimeout(idle_ms_);
  }
  FrameDeadline(const FrameDeadline&) = delete;
  FrameDeadline& operator=(const FrameDeadline&) = delete;

  // Reads 1..len bytes. Throws TTransportException: END_OF_FILE (the peer
  // closed), TIMED_OUT (idle timeout, or the deadline when expired() says
  // so), or whatever the socket throws.
  uint32_t Read(uint8_t* buf, uint32_t len) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      expired_ = true;
      throw TTransportException(TTransportException::TIMED_OUT, "frame deadline passed");
    }
    if (socket_) {
      socket_->setRecvTimeout(static_cast<int>(std::min<int64_t>(idle_ms_, left.count())));
      lowered_ = true;
    }
    uint32_t n = 0;
    try {
      n = connection_.read(buf, len);
    } catch (const TTransportException& e) {
      if (e.getType() == TTransportException::TIMED_OUT &&
          std::chrono::steady_clock::now() >= deadline_) {
        expired_ = true;
      }
      throw;
    }
    if (n == 0) {
      throw TTransportException(TTransportException::END_OF_FILE, "end of file inside a frame");
    }
    return n;
  }
  // Whether the last failed Read failed because the deadline had passed.
  bool expired() const { return expired_; }

 private:
  TTransport& connection_;
  at::transport::TSocket* const socket_;
  const int idle_ms_;
  const std::chrono::steady_clock::time_point deadline_;
  bool lowered_ = false;
  bool expired_ = false;
};

// What every connection's FramedRequestProcessor shares: the limits, the
// log name and the throttles of their warning lines. Thread-safe
// (constants, LogThrottle).
struct FrameRules {
  uint32_t max_frame_bytes = 0;
  int idle_timeout_ms = 0;
  int request_timeout_ms = 0;
  std::string log_name;
  std::string request_timeout_name;
  LogThrottle oversized;
  LogThrottle slow_frames;
};

// The processor of one connection: reads one frame from the connection
// (memory grows with the bytes that arrive, up to `max_frame_bytes`; from
// its first byte the whole frame must arrive within `request_timeout_ms`,
// see FrameDeadline, else the connection is closed with a warning line), runs
// `inner` (a GuardedProcessor over the service's processor) on it through a
// FrameReader and the bounded binary protocol, and writes the answer as one
// frame. A transport failure (end-of-file, idle timeout, interrupt, a failed
// TLS handshake) ends the connection quietly in TConnectedClient; an
// oversized frame ends it with one warning line.
//
// Over TLS the first read completes the handshake; then the verified client
// certificate's CN is offered to the service once (on_client_certificate).
// When the service asks to close after an answer (close_after_answer),
// process() returns false once the answer is written and TConnectedClient
// closes the connection. One connection's thread.
class FramedRequestProcessor : public at::TProcessor {
 public:
  FramedRequestProcessor(std::shared_ptr<at::TProcessor> inner, std::shared_ptr<FrameRules> rules,
                         ThriftConnectionService service, std::shared_ptr<TTransport> transport)
      : inner_(std::move(inner)),
        rules_(std::move(rules)),
        service_(std::move(service)),
        tls_(std::dynamic_pointer_cast<TlsConnectionSocket>(transport)) {}

  bool process(std::shared_ptr<at::protocol::TProtocol> in,
               std::shared_ptr<at::protocol::TProtocol> /*out*/,
               void* connection_context) override {
    std::shared_ptr<TTransport> connection = in->getTransport();
    // Between frames the client may stay silent up to the idle timeout (the
    // socket's receive timeout); the frame's deadline starts with its first
    // byte. Over TLS, the first read does the handshake.
    uint8_t size_bytes[4];
    uint32_t got = connection->read(size_bytes, sizeof(size_bytes));
    if (got == 0) throw TTransportException(TTransportException::END_OF_FILE, "connection closed");
    if (tls_) {
      if (service_.on_client_certificate) service_.on_client_certificate(tls_->peer_common_name());
      tls_.reset();  // once per connection
    }
    auto frame = std::make_shared<at::transport::TMemoryBuffer>();
    {
      FrameDeadline deadline(*connection, rules_->idle_timeout_ms, rules_->request_timeout_ms);
      try {
        ReadFrame(deadline, size_bytes, got, *frame);
      } catch (const TTransportException& e) {
        if (deadline.expired()) {
          if (auto r = rules_->slow_frames.Tick(); r.log) {
            spdlog::warn(
                "{}: closed a connection: its frame was not complete {} ms after its first "
                "byte ({}){}",
                rules_->log_name, rules_->request_timeout_ms, rules_->request_timeout_name,
                r.Suffix());
          }
        }
        throw;
      }
    }
    auto answer = std::make_shared<at::transport::TMemoryBuffer>();
    inner_->process(LimitedBinaryProtocol(std::make_shared<FrameReader>(frame)),
                    LimitedBinaryProtocol(answer), connection_context);
    uint8_t* bytes = nullptr;
    uint32_t length = 0;
    answer->getBuffer(&bytes, &length);
    if (length > 0) {  // 0: a oneway call, nothing to answer
      std::vector<uint8_t> out(4 + length);
      out[0] = static_cast<uint8_t>(length >> 24);
      out[1] = static_cast<uint8_t>(length >> 16);
      out[2] = static_cast<uint8_t>(length >> 8);
      out[3] = static_cast<uint8_t>(length);
      std::copy(bytes, bytes + length, out.begin() + 4);
      connection->write(out.data(), static_cast<uint32_t>(out.size()));
      connection->flush();
    }
    if (service_.close_after_answer && service_.close_after_answer()) return false;
    return true;  // a refused request was answered; the connection keeps serving
  }

 private:
  // The rest of the frame header (`got` of its 4 bytes are in `size_bytes`),
  // then the frame's body into `frame`, every read under `deadline`.
  void ReadFrame(FrameDeadline& deadline, uint8_t (&size_bytes)[4], uint32_t got,
                 at::transport::TMemoryBuffer& frame) {
    while (got < sizeof(size_bytes)) {
      got += deadline.Read(size_bytes + got, static_cast<uint32_t>(sizeof(size_bytes)) - got);
    }
    const uint32_t size = (uint32_t{size_bytes[0]} << 24) | (uint32_t{size_bytes[1]} << 16) |
                          (uint32_t{size_bytes[2]} << 8) | uint32_t{size_bytes[3]};
    if (size == 0 || size > rules_->max_frame_bytes) {
      if (auto r = rules_->oversized.Tick(); r.log) {
        spdlog::warn("{}: closed a connection: a frame of {} bytes (the limit is {}){}",
                     rules_->log_name, size, rules_->max_frame_bytes, r.Suffix());
      }
      throw TTransportException(TTransportException::CORRUPTED_DATA, "frame size refused");
    }
    std::array<uint8_t, kReadChunkBytes> chunk;
    for (uint32_t left = size; left > 0;) {
      const uint32_t n = deadline.Read(chunk.data(), std::min<uint32_t>(left, kReadChunkBytes));
      frame.write(chunk.data(), n);
      left -= n;
    }
  }

  const std::shared_ptr<at::TProcessor> inner_;
  const std::shared_ptr<FrameRules> rules_;
  const ThriftConnectionService service_;
  std::shared_ptr<TlsConnectionSocket> tls_;  // until its certificate was looked at
};

// Makes each connection's processor: the caller's service for it (so a
// connection's state lives with its handler and no state is shared between
// connections; TThreadedServer runs one thread per connection), under a
// GuardedProcessor and a FramedRequestProcessor. Called by the serve thread.
class ConnectionProcessorFactory : public at::TProcessorFactory {
 public:
  ConnectionProcessorFactory(ThriftConnectionFactory connections, std::shared_ptr<FrameRules> rules)
      : connections_(std::move(connections)), rules_(std::move(rules)) {}

  std::shared_ptr<at::TProcessor> getProcessor(const at::TConnectionInfo& info) override {
    std::string peer;
    if (auto* socket = dynamic_cast<at::transport::TSocket*>(info.transport.get())) {
      peer = PeerName(*socket);
    }
    ThriftConnectionService service = connections_(peer);
    // The limits of thrift_limits.h: frames up to max_frame_bytes, each read
    // through a FrameReader with Treaty's TConfiguration by the bounded
    // binary protocol; a request refused by them is answered with a
    // TApplicationException and logged, never an exit.
    auto guarded = std::make_shared<GuardedProcessor>(
        service.processor, [rules = rules_](const std::string& reason) {
          spdlog::warn("{}: refused a request: {}", rules->log_name,
                       EscapeControl(Excerpt(reason, 200)));
        });
    return std::make_shared<FramedRequestProcessor>(std::move(guarded), rules_, std::move(service),
                                                    info.transport);
  }

 private:
  const ThriftConnectionFactory connections_;
  const std::shared_ptr<FrameRules> rules_;
};

}  // namespace

struct FramedThriftServer::Impl {
  FramedThriftServerOptions options;
  ThriftConnectionFactory connections;
  std::shared_ptr<ServerTls> tls;  // null: plain Thrift
  std::shared_ptr<BackoffServerSocket> socket;
  std::unique_ptr<GuardedThreadedServer> server;
  std::thread loop;
  uint16_t port = 0;
};

FramedThriftServer::FramedThriftServer(FramedThriftServerOptions options,
                                       ThriftConnectionFactory connections)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->connections = std::move(connections);
}

FramedThriftServer::~FramedThriftServer() { Stop(); }

Status FramedThriftServer::Start() {
  Impl& m = *impl_;
  // Thrift's own chatter (one line per failed accept, per closed connection)
  // goes to our log at debug level. A library global; set the same each time.
  at::GlobalOutput.setOutputFunction([](const char* msg) { spdlog::debug("thrift: {}", msg); });
  const auto fail = [&m](const std::string& why) {
    return Status::Unavailable("cannot serve Thrift on " +
                               FormatHostPort(m.options.host, m.options.port) + ": " + why);
  };
  if (m.options.tls.enabled()) {
    auto tls = ServerTls::Load(m.options.tls);
    if (!tls.ok()) return tls.status();
    m.tls = std::move(*tls);
  }
  try {
    auto rules = std::make_shared<FrameRules>();
    rules->max_frame_bytes = static_cast<uint32_t>(std::min<size_t>(
        m.options.max_frame_bytes, static_cast<size_t>(limits::kThriftMaxMessageBytes)));
    rules->idle_timeout_ms = std::max(1, m.options.idle_timeout_ms);
    rules->request_timeout_ms = std::max(1, m.options.request_timeout_ms);
    rules->log_name = m.options.log_name;
    rules->request_timeout_name = m.options.request_timeout_name;
    auto processors = std::make_shared<ConnectionProcessorFactory>(m.connections, rules);
    m.socket = std::make_shared<BackoffServerSocket>(
        m.options.host, m.options.port, std::max(1, m.options.max_connections), m.options.log_name);
    m.socket->setRecvTimeout(rules->idle_timeout_ms);
    m.socket->setSendTimeout(rules->idle_timeout_ms);
    m.socket->setAcceptBacklog(1024);
    // The handshake is bounded like a request (it is the connection's first one).
    if (m.tls) m.socket->set_tls(m.tls, rules->request_timeout_ms);
    // The connection transport is passed as is: FramedRequestProcessor reads
    // and writes the frames; the protocol objects only carry the transport.
    auto plain = std::make_shared<at::transport::TTransportFactory>();
    m.server = std::make_unique<GuardedThreadedServer>(
        processors, m.socket, plain, plain, LimitedBinaryProtocolFactory(),
        LimitedBinaryProtocolFactory(), std::make_shared<at::concurrency::ThreadFactory>(false));
    m.server->set_socket(m.socket.get());
    m.server->set_log_name(m.options.log_name);
    m.socket->set_open_connections(
        [server = m.server.get()] { return server->getConcurrentClientCount(); });
    // Bind here, so Start() can report the port or the failure; serve()
    // calls listen() again, which then does nothing more than return.
    m.socket->listen();
    m.port = static_cast<uint16_t>(m.socket->getPort());
  } catch (const std::exception& e) {
    m.server.reset();
    m.socket.reset();
    m.tls.reset();
    return fail(e.what());
  }
  m.loop = std::thread([&m] {
    try {
      m.server->serve();
    } catch (const std::exception& e) {
      spdlog::error("{} server stopped: {}", m.options.log_name, EscapeControl(e.what()));
    }
  });
  return Status::Ok();
}

uint16_t FramedThriftServer::port() const { return impl_->port; }

bool FramedThriftServer::requires_client_cert() const {
  return impl_->tls && impl_->tls->requires_client_cert();
}

Status FramedThriftServer::ReloadTls() {
  if (!impl_->tls) return Status::Ok();
  return impl_->tls->Reload();
}

void FramedThriftServer::Stop() {
  Impl& m = *impl_;
  if (!m.server) return;
  m.server->stop();  // interrupts the accept and every connection waiting for a request
  if (m.loop.joinable()) m.loop.join();
  m.server.reset();
  m.socket.reset();
}

}  // namespace treaty
