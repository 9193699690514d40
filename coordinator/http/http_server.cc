#include "http/http_server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <exception>
#include <optional>
#include <set>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "common/exception_guard.h"
#include "common/host_port.h"
#include "common/log_throttle.h"
#include "common/mutex.h"
#include "common/text.h"
#include "http/bounded_read.h"
#include "http/http_request_parsing.h"

namespace treaty {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr uint32_t kHeaderLimitBytes = 32 * 1024;
// After an error response that closes the connection, unread request bytes
// are drained for at most this long so the peer sees the response, not a RST.
constexpr auto kDrainTime = std::chrono::seconds(1);
// Over-cap connections answered 503 at once. A newcomer past this closes
// the oldest of them whose 503 is written (it only waits, up to kDrainTime,
// for its client to close) and takes its place, so every newcomer hears 503
// under a flood of connections. Only when none has written its answer yet
// (HTTPS handshakes under way), or twice this many are open (evicted ones not
// closed yet), is a newcomer closed unanswered.
constexpr size_t kMaxRefusing = 64;
// Accept back-off while accept fails: the first delay, doubled up to the last.
constexpr auto kFirstAcceptDelay = std::chrono::milliseconds(10);
constexpr auto kLastAcceptDelay = std::chrono::milliseconds(1000);
// Bytes asked for by the first read of a request (which waits up to the idle timeout).
constexpr size_t kFirstReadBytes = 4096;
// HTTPS: how long close_notify may take when a connection ends.
constexpr auto kTlsShutdownTime = std::chrono::milliseconds(1000);

// RFC 9110 token: what a header name may be.
bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) &&
        std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

// What the server keeps of a session: enough to close it from Stop().
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Starts serving (HTTPS: the handshake first), on the session's strand.
  virtual void Start() = 0;
  // Closes the connection from any thread; a later response is dropped.
  virtual void Close() = 0;
  // Closes the connection at once from any thread, HTTPS without waiting
  // for close_notify: for an evicted refused session, whose 503 (with its
  // length) is written, so its client has the whole answer.
  virtual void Abort() = 0;
};

// Shared by the HttpServer facade, the accept loop and every session, so a
// session outliving the HttpServer object still has its handler and options.
struct ServerCore : std::enable_shared_from_this<ServerCore> {
  ServerCore(net::io_context& io_context, HttpServerOptions opts, HttpHandler h)
      : io(io_context),
        options(std::move(opts)),
        handler(std::move(h)),
        acceptor(net::make_strand(io_context)),
        retry_timer(acceptor.get_executor()) {}

  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void RetryAcceptLater(const beast::error_code& ec);
  void Forget(uint64_t id, bool refused);
  // A refusing session has written its 503: a newcomer may now evict it.
  void Answered(uint64_t id);

  net::io_context& io;
  const HttpServerOptions options;
  const HttpHandler handler;
  std::atomic<uint16_t> port{0};

  Mutex mu;
  // Guarded so that initiations and close never overlap.
  tcp::acceptor acceptor TREATY_GUARDED_BY(mu);
  net::steady_timer retry_timer TREATY_GUARDED_BY(mu);  // the accept back-off
  bool stopped TREATY_GUARDED_BY(mu) = false;
  size_t serving TREATY_GUARDED_BY(mu) = 0;   // sessions counted against max_connections
  size_t refusing TREATY_GUARDED_BY(mu) = 0;  // sessions answering 503
  // The refusing sessions whose 503 is written and that are not evicted
  // yet, oldest (lowest id) first: those a newcomer may evict.
  std::set<uint64_t> answered_refusing TREATY_GUARDED_BY(mu);
  // Touched only on the acceptor's strand (OnAccept and the timer's handler).
  std::chrono::milliseconds accept_delay{0};
  LogThrottle accept_failures;
  LogThrottle refusals;
  LogThrottle handshake_failures;  // thread-safe; ticked by TLS sessions
  uint64_t next_session_id TREATY_GUARDED_BY(mu) = 0;
  std::unordered_map<uint64_t, std::weak_ptr<SessionBase>> sessions TREATY_GUARDED_BY(mu);
};

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// One connection, over `Stream`: beast::tcp_stream (HTTP) or TlsStream
// (HTTPS; the handshake comes first). Every member is touched only on the
// connection's strand (the executor of stream_). Requests are handled one at
// a time: the next one is read only after the previous response was written,
// so pipelined requests wait in the buffer / socket. At most one operation on
// stream_ is in flight at a time (io_busy_). The session lives as long as an
// operation or an outstanding responder holds a shared_ptr to it.
template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  // `tls_context` is null for HTTP; for HTTPS it is the context this
  // connection was accepted with, kept alive as long as the stream.
  Session(tcp::socket socket, std::shared_ptr<net::ssl::context> tls_context,
          std::shared_ptr<ServerCore> server, uint64_t id, bool refused)
      : tls_context_(std::move(tls_context)),
        stream_(MakeStream(std::move(socket), tls_context_.get())),
        server_(std::move(server)),
        id_(id),
        refused_(refused) {
    beast::error_code ec;
    auto ep = Tcp().socket().remote_endpoint(ec);
    if (!ec) remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  ~Session() override { server_->Forget(id_, refused_); }

  void Start() override {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->Handshake();
      } else {
        self->Begin();
      }
    });
  }

  void Abort() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] { self->CloseNow(); });
  }

  // Plain HTTP closes at once. HTTPS sends close_notify first (bounded by
  // kTlsShutdownTime): an operation in flight is cancelled, and its
  // completion starts the shutdown.
  void Close() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (!kTls) {
        self->CloseNow();
      } else {
        if (self->closed_ || self->stopping_ || self->ending_) return;  // ending: bounded already
        self->stopping_ = true;
        if (self->io_busy_) {
          self->Tcp().cancel();
        } else {
          self->EndConnection();
        }
      }
    });
  }

 private:
  static Stream MakeStream(tcp::socket socket, net::ssl::context* tls_context) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *tls_context);
    } else {
      return Stream(std::move(socket));
    }
  }

  // The TCP layer: time-outs, cancel, the socket.
  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }

  // First thing in every completion of an operation on stream_: false when
  // the session is ending and the completion must do nothing else (after
  // Close() on HTTPS this starts the TLS shutdown).
  bool Resume() {
    io_busy_ = false;
    if (closed_) return false;
    if (stopping_) {
      EndConnection();
      return false;
    }
    return true;
  }

  // HTTPS only: the handshake, bounded by request_timeout_ms. A failure
  // closes the connection and logs one throttled line.
  void Handshake() {
    if (closed_ || stopping_) return CloseNow();
    Tcp().expires_after(std::chrono::milliseconds(server_->options.request_timeout_ms));
    io_busy_ = true;
    stream_.async_handshake(
        net::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
          self->io_busy_ = false;
          if (self->closed_ || self->stopping_) return self->CloseNow();
          if (ec) {
            if (auto r = self->server_->handshake_failures.Tick(); r.log) {
              spdlog::warn("https handshake with {} failed: {}{}", self->remote_,
                           ec == beast::error::timeout ? "timed out" : ec.message(), r.Suffix());
            }
            return self->CloseNow();
          }
          self->handshake_done_ = true;
          self->tls_peer_cn_ = PeerCommonName(self->stream_.native_handle());
          self->Begin();
        });
  }

  // Serves the first request, or answers 503 when over the connection cap.
  void Begin() {
    if (!refused_) return ReadRequest();
    WriteError(503, "overloaded",
               "too many open connections (" + std::to_string(server_->options.max_connections) +
                   "); retry later");
  }

  // Waits up to the idle timeout for the first byte of the next request
  // (none if pipelined bytes are already buffered), then reads the request.
  void ReadRequest() {
    if (closed_ || stopping_) return;
    if (buffer_.size() > 0) return ReadRestOfRequest();
    Tcp().expires_after(std::chrono::milliseconds(server_->options.idle_timeout_ms));
    io_busy_ = true;
    stream_.async_read_some(
        buffer_.prepare(kFirstReadBytes),
        [self = this->shared_from_this()](beast::error_code ec, size_t bytes) {
          if (!self->Resume()) return;
          if (ec) return self->CloseNow();  // idle timeout, EOF, reset: nothing is owed
          self->buffer_.commit(bytes);
          self->ReadRestOfRequest();
        });
  }

  void ReadRestOfRequest() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimitBytes);
    Tcp().expires_after(std::chrono::milliseconds(server_->options.request_timeout_ms));
    // Header first, so a declared Content-Length over the limit is answered
    // 413 before any body storage exists (bounded_read.h).
    io_busy_ = true;
    AsyncReadBounded(stream_, buffer_, *parser_, server_->options.max_body_bytes,
                     beast::bind_front_handler(&Session::OnRead, this->shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t /*bytes*/) {
    if (!Resume()) return;
    if (ec == http::error::end_of_stream) return EndConnection();
    if (ec == http::error::body_limit) {
      return WriteError(
          413, "too_large",
          "request body exceeds " + std::to_string(server_->options.max_body_bytes) + " bytes");
    }
    if (ec == http::error::header_limit) {
      return WriteError(431, "headers_too_large", "request headers are too large");
    }
    if (ec && ec.category() == http::make_error_code(http::error::bad_method).category() &&
        ec != http::error::partial_message) {
      return WriteError(400, "bad_request", "malformed HTTP request: " + ec.message());
    }
    // Past request_timeout_ms the stream has already closed the socket
    // (beast::error::timeout): nothing can be answered.
    if (ec) return CloseNow();  // timeout, reset, EOF mid-message
    Dispatch();
  }

  void Dispatch() {
    http::request<http::string_body> msg = parser_->release();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    SplitTarget(req.target, &req.path, &req.query);
    for (const auto& field : msg) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto [it, inserted] = req.headers.emplace(name, std::string(field.value()));
      if (!inserted) it->second += ", " + std::string(field.value());
    }
    req.body = std::move(msg.body());
    req.remote = remote_;
    req.tls = kTls;
    req.tls_peer_cn = tls_peer_cn_;

    const bool keep_alive = msg.keep_alive();
    const unsigned version = msg.version();
    auto responded = std::make_shared<std::atomic<bool>>(false);
    HttpResponder respond = [self = this->shared_from_this(), responded, keep_alive,
                             version](HttpResponse res) {
      if (responded->exchange(true)) return;  // exactly once; later calls are ignored
      net::post(self->stream_.get_executor(),
                [self, res = std::move(res), keep_alive, version]() mutable {
                  self->Write(std::move(res), keep_alive, version);
                });
    };
    AnswerGuarded(respond, "http handler", [&] { server_->handler(std::move(req), respond); });
  }

  // Runs on the strand (posted by the responder).
  void Write(HttpResponse res, bool keep_alive, unsigned version) {
    if (closed_ || stopping_) return;
    try {
      response_ = {};
      response_.version(version);
      const int status = res.status >= 100 && res.status <= 999 ? res.status : 500;
      response_.result(static_cast<unsigned>(status));
      response_.set(http::field::server, "treaty");
      if (!res.content_type.empty()) {
        response_.set(http::field::content_type, EscapeControl(res.content_type));
      }
      for (auto& [name, value] : res.headers) {
        if (!IsToken(name)) {
          spdlog::warn("http response header dropped: its name is not an HTTP token");
          continue;
        }
        response_.set(name, EscapeControl(value));
      }
      response_.body() = std::move(res.body);
      response_.keep_alive(keep_alive);
      response_.prepare_payload();
    } catch (...) {
      LogCurrentException("http response");
      return WriteError(500, "internal", "the response could not be built");
    }
    Tcp().expires_after(std::chrono::milliseconds(server_->options.idle_timeout_ms));
    io_busy_ = true;
    http::async_write(
        stream_, response_,
        beast::bind_front_handler(&Session::OnWrite, this->shared_from_this(), false));
  }

  // Answers a request that never reached the handler, then closes.
  void WriteError(int status, const std::string& code, const std::string& message) {
    response_ = {};
    response_.version(11);
    response_.result(static_cast<unsigned>(status));
    response_.set(http::field::server, "treaty");
    response_.set(http::field::content_type, "application/json");
    response_.body() = JsonError(code, message);
    if (status == 503) response_.set(http::field::retry_after, "1");
    response_.keep_alive(false);
    response_.prepare_payload();
    Tcp().expires_after(std::chrono::milliseconds(server_->options.idle_timeout_ms));
    io_busy_ = true;
    http::async_write(stream_, response_,
                      beast::bind_front_handler(&Session::OnWrite, this->shared_from_this(), true));
  }

  void OnWrite(bool drain, beast::error_code ec, size_t /*bytes*/) {
    if (!Resume()) return;
    if (ec) return CloseNow();
    if (refused_) server_->Answered(id_);
    if (drain) return Drain();
    if (response_.need_eof()) return EndConnection();
    ReadRequest();
  }

  // Discards what the peer still sends until it closes too (each read
  // bounded by kDrainTime), so it sees the answer rather than a reset.
  // HTTP half-closes first; HTTPS sends close_notify after.
  void Drain() {
    if constexpr (!kTls) {
      beast::error_code ignored;
      Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
    Tcp().expires_after(kDrainTime);
    io_busy_ = true;
    stream_.async_read_some(net::buffer(drain_buf_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (!self->Resume()) return;
                              if (ec) return kTls ? self->EndConnection() : self->CloseNow();
                              self->Drain();
                            });
  }

  // Ends a connection in good order: HTTP half-closes and closes; HTTPS
  // sends close_notify (bounded by kTlsShutdownTime), then closes.
  void EndConnection() {
    if (closed_ || ending_) return;
    ending_ = true;
    if constexpr (kTls) {
      if (!handshake_done_) return CloseNow();
      Tcp().expires_after(kTlsShutdownTime);
      io_busy_ = true;
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
        self->io_busy_ = false;
        self->CloseNow();
      });
    } else {
      beast::error_code ignored;
      Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
      CloseNow();
    }
  }

  void CloseNow() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ignored;
    Tcp().socket().close(ignored);
  }

  std::shared_ptr<net::ssl::context> tls_context_;  // null for HTTP; outlives stream_
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;  // alive until its write completes
  std::array<char, 4096> drain_buf_;
  std::shared_ptr<ServerCore> server_;
  const uint64_t id_;
  const bool refused_;  // over the connection cap: answered 503, never read
  std::string remote_;
  std::string tls_peer_cn_;      // HTTPS: verified client certificate CN, "" if none
  bool handshake_done_ = false;  // HTTPS: close_notify can be sent
  bool io_busy_ = false;         // an operation on stream_ is in flight
  bool stopping_ = false;        // HTTPS: Close() asked for a TLS shutdown
  bool ending_ = false;          // EndConnection() started
  bool closed_ = false;
};

// Shared by the copies of an OwedResponder: answers 500 if none of them
// answered before the last one went away.
class OwedAnswer {
 public:
  explicit OwedAnswer(HttpResponder respond) : respond_(std::move(respond)) {}
  ~OwedAnswer() {
    if (answered_.exchange(true)) return;
    try {
      spdlog::error("a request was dropped without an answer (a bug); answering 500");
      respond_(HttpResponse{500,
                            "application/json",
                            JsonError("internal", "the request was dropped without an answer"),
                            {}});
    } catch (...) {
    }
  }
  void Answer(HttpResponse res) {
    if (!answered_.exchange(true)) respond_(std::move(res));
  }

 private:
  HttpResponder respond_;
  std::atomic<bool> answered_{false};
};

}  // namespace

void AnswerCurrentException(const HttpResponder& respond, std::string_view where) noexcept {
  LogCurrentException(where);
  try {
    respond(HttpResponse{
        500,
        "application/json",
        JsonError("internal", std::string(where) + " failed: " + CurrentExceptionMessage()),
        {}});
  } catch (...) {
    LogCurrentException("answering 500");
  }
}

HttpResponder OwedResponder(HttpResponder respond) {
  auto owed = std::make_shared<OwedAnswer>(std::move(respond));
  return [owed](HttpResponse res) { owed->Answer(std::move(res)); };
}

struct HttpServer::Impl {
  std::shared_ptr<ServerCore> core;
};

void ServerCore::Accept() {
  MutexLock lock(&mu);
  if (stopped) return;
  acceptor.async_accept(net::make_strand(io),
                        beast::bind_front_handler(&ServerCore::OnAccept, shared_from_this()));
}

void ServerCore::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted) return;
  if (ec) return RetryAcceptLater(ec);
  accept_delay = std::chrono::milliseconds(0);
  std::shared_ptr<SessionBase> session;
  std::shared_ptr<SessionBase> evicted;
  size_t open = 0;
  {
    MutexLock lock(&mu);
    if (stopped) return;
    open = serving;
    const bool refuse = serving >= options.max_connections;
    bool admit = !refuse || refusing < kMaxRefusing;
    if (!admit && refusing < 2 * kMaxRefusing && !answered_refusing.empty()) {
      const uint64_t oldest = *answered_refusing.begin();
      answered_refusing.erase(answered_refusing.begin());
      if (auto it = sessions.find(oldest); it != sessions.end()) evicted = it->second.lock();
      admit = true;
    }
    if (admit) {
      uint64_t id = next_session_id++;
      if (options.tls) {
        session = std::make_shared<Session<TlsStream>>(std::move(socket), options.tls->context(),
                                                       shared_from_this(), id, refuse);
      } else {
        session = std::make_shared<Session<beast::tcp_stream>>(std::move(socket), nullptr,
                                                               shared_from_this(), id, refuse);
      }
      sessions.emplace(id, session);
      ++(refuse ? refusing : serving);
    }
  }
  if (evicted) evicted->Abort();
  if (!session || open >= options.max_connections) {
    if (auto r = refusals.Tick(); r.log) {
      spdlog::warn("http connection refused with 503: {} connections open, the cap is {}{}", open,
                   options.max_connections, r.Suffix());
    }
  }
  if (session) session->Start();  // else the socket closes here, unanswered
  Accept();
}

// On the acceptor's strand. Accept fails mostly for want of a descriptor
// (EMFILE, ENFILE) or of buffers (ENOBUFS, ENOMEM); trying again at once
// would spin, so wait, doubling the wait while it keeps failing.
void ServerCore::RetryAcceptLater(const beast::error_code& ec) {
  accept_delay = accept_delay.count() == 0
                     ? kFirstAcceptDelay
                     : std::min<std::chrono::milliseconds>(accept_delay * 2, kLastAcceptDelay);
  if (auto r = accept_failures.Tick(); r.log) {
    spdlog::warn("http accept failed: {}{}; retrying in {} ms", ec.message(), r.Suffix(),
                 accept_delay.count());
  }
  MutexLock lock(&mu);
  if (stopped) return;
  retry_timer.expires_after(accept_delay);
  retry_timer.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec) self->Accept();
  });
}

void ServerCore::Answered(uint64_t id) {
  MutexLock lock(&mu);
  if (sessions.count(id)) answered_refusing.insert(id);
}

void ServerCore::Forget(uint64_t id, bool refused) {
  MutexLock lock(&mu);
  sessions.erase(id);
  --(refused ? refusing : serving);
  if (refused) answered_refusing.erase(id);
}

HttpServer::HttpServer(net::io_context& io, HttpServerOptions options, HttpHandler handler)
    : impl_(std::make_shared<Impl>(
          Impl{std::make_shared<ServerCore>(io, std::move(options), std::move(handler))})) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  beast::error_code ec;
  tcp::resolver resolver(impl_->core->io);
  auto results =
      resolver.resolve(impl_->core->options.host, std::to_string(impl_->core->options.port),
                       tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    return Status::Unavailable("cannot resolve " + impl_->core->options.host + ": " + ec.message());
  }
  tcp::endpoint endpoint = results.begin()->endpoint();
  {
    MutexLock lock(&impl_->core->mu);
    if (impl_->core->stopped) return Status::Unavailable("server was stopped");
    auto& acceptor = impl_->core->acceptor;
    auto fail = [&](const char* what) TREATY_REQUIRES(impl_->core->mu) {
      beast::error_code ignored;
      acceptor.close(ignored);
      return Status::Unavailable(std::string(what) + " " +
                                 FormatHostPort(endpoint.address().to_string(), endpoint.port()) +
                                 ": " + ec.message());
    };
    acceptor.open(endpoint.protocol(), ec);
    if (ec) return fail("cannot open");
    acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (ec) return fail("cannot configure");
    acceptor.bind(endpoint, ec);
    if (ec) return fail("cannot bind");
    acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return fail("cannot listen");
    impl_->core->port = acceptor.local_endpoint(ec).port();
  }
  impl_->core->Accept();
  return Status::Ok();
}

uint16_t HttpServer::port() const { return impl_->core->port; }

void HttpServer::Stop() {
  std::vector<std::shared_ptr<SessionBase>> open;
  {
    MutexLock lock(&impl_->core->mu);
    if (impl_->core->stopped) return;
    impl_->core->stopped = true;
    beast::error_code ec;
    impl_->core->acceptor.close(ec);
    impl_->core->retry_timer.cancel();
    for (auto& [id, weak] : impl_->core->sessions) {
      if (auto s = weak.lock()) open.push_back(std::move(s));
    }
  }
  for (auto& s : open) s->Close();
}

}  // namespace treaty
