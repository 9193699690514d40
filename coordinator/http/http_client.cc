#include "http/http_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "common/idle_socket.h"
#include "common/mutex.h"
#include "http/bounded_read.h"
#include "security/peer_name.h"

namespace treaty {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// True when `s` holds a byte that must never reach a header line (C0 or DEL).
bool HasControl(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

// One connection. It has its own io_context: every operation on it runs on
// the calling thread, inside HttpClient::Send, by the one call that holds it.
struct Connection {
  explicit Connection(const std::shared_ptr<ssl::context>& tls) : tls_context(tls), resolver(io) {
    if (tls) {
      secure.emplace(io, *tls);
    } else {
      plain.emplace(io);
    }
  }
  beast::tcp_stream& tcp() { return secure ? beast::get_lowest_layer(*secure) : *plain; }
  void Close() {
    beast::error_code ignored;
    resolver.cancel();
    tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    tcp().socket().close(ignored);
  }

  net::io_context io;  // first: outlives the streams below
  const std::shared_ptr<ssl::context> tls_context;
  tcp::resolver resolver;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  Clock::time_point idle_since;
  // A host-name lookup is under way: getaddrinfo runs on the resolver's own
  // thread and cannot be interrupted, so a connection given up while it
  // runs is left to finish on a thread of its own (Abandon).
  bool resolving = false;
};

// One step of an exchange and how it ended.
struct Progress {
  const char* stage = "connect";
  beast::error_code error;
  bool done = false;
  void Finish(const char* at, beast::error_code ec) {
    if (done) return;  // a handler cancelled after the deadline
    stage = at;
    error = ec;
    done = true;
  }
};

// Runs c's io_context until `p` is done or `deadline` passes; then cancels
// what is pending and lets it finish, so that nothing outlives the call.
// Returns false when a host-name lookup was still running at the deadline:
// `c` must then be given to Abandon, not destroyed (its io_context would wait
// for the lookup).
bool RunUntil(Connection& c, Progress& p, Clock::time_point deadline) {
  c.io.restart();
  while (!p.done && Clock::now() < deadline) {
    c.io.run_one_until(deadline);
  }
  c.io.restart();
  if (p.done) {
    c.io.poll();  // the stream's cancelled timers; never blocks
    return true;
  }
  p.Finish(p.stage, beast::error::timeout);
  c.Close();
  if (c.resolving) return false;
  c.io.run();  // the cancelled handlers run at once
  return true;
}

// Lets a connection whose host-name lookup outlived its call finish it on a
// detached thread and be destroyed there; its handlers own what they touch.
void Abandon(std::unique_ptr<Connection> c) {
  std::thread([c = std::move(c)] {
    c->io.restart();
    c->io.run();
  }).detach();
}

// The reason of a failed certificate check, e.g. "certificate has expired",
// or "" when the certificate was not the problem.
std::string VerifyFailure(SSL* ssl) {
  const long result = SSL_get_verify_result(ssl);
  if (result == X509_V_OK) return "";
  return X509_verify_cert_error_string(result);
}

// "<stage>: <why>" for a failed step on `c`.
Status Failure(Connection& c, const Progress& p, int timeout_ms) {
  if (p.error == beast::error::timeout) {
    return Status::TimedOut(std::string(p.stage) + ": timed out after " +
                            std::to_string(timeout_ms) + " ms");
  }
  if (p.error == http::error::body_limit) {
    return Status::TooLarge(std::string(p.stage) + ": the answer is larger than " +
                            std::to_string(kMaxHttpAnswerBytes) + " bytes");
  }
  std::string why = p.error.message();
  if (c.secure) {
    if (std::string cert = VerifyFailure(c.secure->native_handle()); !cert.empty()) {
      why = "the server's certificate was refused: " + cert;
    }
  }
  return Status::Unavailable(std::string(p.stage) + ": " + why);
}

HttpClientResponse ResponseOf(http::response<http::string_body>& res) {
  HttpClientResponse out;
  out.status = static_cast<int>(res.result_int());
  out.body = std::move(res.body());
  for (const auto& field : res) {
    std::string name(field.name_string());
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    out.headers[name] = std::string(field.value());
  }
  return out;
}

}  // namespace

struct HttpClient::Impl {
  Endpoint server;
  HttpClientOptions options;
  std::shared_ptr<ssl::context> tls;  // null for http://
  std::atomic<int64_t> opened{0};
  Mutex mu;
  std::vector<std::unique_ptr<Connection>> idle TREATY_GUARDED_BY(mu);  // newest last

  // The most recent usable idle connection, or null.
  std::unique_ptr<Connection> TakeIdle();
  void GiveBack(std::unique_ptr<Connection> c);
  // Connects (and handshakes) `c`; OK or why not. Sets *abandon when `c`
  // must be given to Abandon (a lookup still running at the deadline).
  Status Connect(Connection& c, Clock::time_point deadline, int timeout_ms, bool* abandon);
};

std::unique_ptr<Connection> HttpClient::Impl::TakeIdle() {
  const auto now = Clock::now();
  std::vector<std::unique_ptr<Connection>> stale;  // closed outside the lock
  std::unique_ptr<Connection> found;
  {
    MutexLock l(&mu);
    while (!idle.empty() && !found) {
      std::unique_ptr<Connection> c = std::move(idle.back());
      idle.pop_back();
      const bool fresh = now - c->idle_since < std::chrono::milliseconds(options.idle_ms);
      if (fresh && IdleSocketUsable(c->tcp().socket().native_handle())) {
        found = std::move(c);
      } else {
        stale.push_back(std::move(c));
      }
    }
  }
  for (auto& c : stale) c->Close();
  return found;
}

void HttpClient::Impl::GiveBack(std::unique_ptr<Connection> c) {
  c->idle_since = Clock::now();
  {
    MutexLock l(&mu);
    if (static_cast<int>(idle.size()) < options.pool_size) {
      idle.push_back(std::move(c));
      return;
    }
  }
  c->Close();
}

Status HttpClient::Impl::Connect(Connection& c, Clock::time_point deadline, int timeout_ms,
                                 bool* abandon) {
  // Shared with the handlers: after an abandoned lookup they run on another
  // thread, after this call has returned.
  auto p = std::make_shared<Progress>();
  p->stage = "resolve";
  c.resolving = true;
  c.resolver.async_resolve(
      server.host, std::to_string(server.port),
      [&c, p, deadline](beast::error_code ec, tcp::resolver::results_type results) {
        c.resolving = false;
        if (ec) return p->Finish("resolve", ec);
        if (p->done) return;  // the call gave up meanwhile
        p->stage = "connect";
        c.tcp().expires_at(deadline);
        c.tcp().async_connect(results, [&c, p](beast::error_code ec, const tcp::endpoint&) {
          if (ec) return p->Finish("connect", ec);
          if (!c.secure) return p->Finish("connect", ec);
          p->stage = "TLS handshake";
          c.secure->async_handshake(ssl::stream_base::client,
                                    [p](beast::error_code ec) { p->Finish("TLS handshake", ec); });
        });
      });
  *abandon = !RunUntil(c, *p, deadline);
  if (!p->error) {
    opened.fetch_add(1);
    beast::error_code ignored;
    c.tcp().socket().set_option(tcp::no_delay(true), ignored);
    return Status::Ok();
  }
  Status why = Failure(c, *p, timeout_ms);
  if (!*abandon) c.Close();
  return why;
}

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpClient::~HttpClient() {
  MutexLock l(&impl_->mu);
  for (auto& c : impl_->idle) c->Close();
}

int64_t HttpClient::connections_opened() const { return impl_->opened.load(); }

Result<std::unique_ptr<HttpClient>> HttpClient::Open(const Endpoint& server,
                                                     HttpClientOptions options) {
  if (server.scheme != "http" && server.scheme != "https") {
    return Status::InvalidArgument("only http:// and https:// URLs are supported (got " +
                                   server.scheme + "://)");
  }
  auto impl = std::make_unique<Impl>();
  if (server.scheme == "https") {
    auto ctx = MakeClientTlsContext(options.tls);
    if (!ctx.ok()) return ctx.status();
    impl->tls = std::move(*ctx);
  }
  impl->server = server;
  impl->options = std::move(options);
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

Result<HttpClientResponse> HttpClient::Send(const std::string& method, const std::string& target,
                                            const std::string& body,
                                            const std::map<std::string, std::string>& headers,
                                            int timeout_ms, HttpSendTrace* trace) {
  HttpSendTrace local;
  HttpSendTrace& wire = trace ? *trace : local;
  wire = HttpSendTrace();
  const http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) return Status::InvalidArgument("unknown HTTP method");
  for (const auto& [name, value] : headers) {
    if (HasControl(name) || HasControl(value) || name.empty()) {
      return Status::InvalidArgument("header names and values must not hold control characters");
    }
  }
  const bool keep_alive = impl_->options.pool_size > 0;
  http::request<http::string_body> req;
  req.method(verb);
  req.target(target);
  req.version(11);
  req.set(http::field::host, impl_->server.Authority());
  req.set(http::field::user_agent, impl_->options.user_agent);
  req.keep_alive(keep_alive);
  for (const auto& [name, value] : headers) req.set(name, value);
  if (!body.empty() || verb == http::verb::post || verb == http::verb::put) {
    // The coordinator refuses state-changing bodies that are not JSON.
    if (req.find(http::field::content_type) == req.end()) {
      req.set(http::field::content_type, "application/json");
    }
    req.body() = body;
  }
  req.prepare_payload();

  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  // At most twice: a second time only when a reused connection turned out
  // to be closed before any answer byte arrived (http_client.h).
  for (int round = 0;; ++round) {
    std::unique_ptr<Connection> c = round == 0 && keep_alive ? impl_->TakeIdle() : nullptr;
    const bool reused = c != nullptr;
    if (!c) {
      c = std::make_unique<Connection>(impl_->tls);
      if (c->secure && !ExpectPeerName(c->secure->native_handle(), impl_->server.host)) {
        return Status::InvalidArgument("cannot verify the server name '" + impl_->server.host +
                                       "'");
      }
      if (wire.sent) wire.resent = true;  // round 1, after a complete write in round 0
      bool abandon = false;
      if (Status s = impl_->Connect(*c, deadline, timeout_ms, &abandon); !s.ok()) {
        if (abandon) Abandon(std::move(c));
        return s;
      }
    }
    Progress p;
    p.stage = "write";
    c->buffer.clear();
    http::response_parser<http::string_body> parser;
    auto exchange = [&](auto& stream) {
      c->tcp().expires_at(deadline);
      http::async_write(stream, req, [&](beast::error_code ec, size_t) {
        if (ec) return p.Finish("write", ec);
        wire.sent = true;
        p.stage = "read";
        AsyncReadBounded(stream, c->buffer, parser, kMaxHttpAnswerBytes,
                         [&p](beast::error_code ec, size_t) { p.Finish("read", ec); });
      });
    };
    if (c->secure) {
      exchange(*c->secure);
    } else {
      exchange(*c->plain);
    }
    RunUntil(*c, p, deadline);
    if (!p.error) {
      auto& res = parser.get();
      const bool reusable = keep_alive && res.keep_alive() && c->buffer.size() == 0;
      HttpClientResponse out = ResponseOf(res);
      if (reusable) {
        impl_->GiveBack(std::move(c));
      } else {
        c->Close();  // no TLS close_notify is awaited
      }
      return out;
    }
    Status failed = Failure(*c, p, timeout_ms);
    c->Close();
    const bool closed_before_answer = p.error != beast::error::timeout &&
                                      p.error != http::error::body_limit && !parser.got_some();
    if (reused && round == 0 && closed_before_answer && Clock::now() < deadline) continue;
    return failed;
  }
}

Result<HttpClientResponse> HttpFetch(const std::string& method, const std::string& url,
                                     const std::string& body,
                                     const std::map<std::string, std::string>& headers,
                                     int timeout_ms, const TlsClientFiles* tls) {
  auto parsed = ParseEndpoint(url);
  if (!parsed.ok()) return parsed.status();
  HttpClientOptions options;
  if (tls) options.tls = *tls;
  auto client = HttpClient::Open(*parsed, std::move(options));
  if (!client.ok()) return client.status();
  auto r = (*client)->Send(method, parsed->target, body, headers, timeout_ms);
  if (r.ok()) return r;
  const Status& s = r.status();
  const std::string message = method + " " + url + ": " + s.message();
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return Status::InvalidArgument(s.message());
    case StatusCode::kTimedOut:
      return Status::TimedOut(message);
    default:  // TooLarge included: the answer could not be had
      return Status::Unavailable(message);
  }
}

}  // namespace treaty
