#include "http/http_participant_caller.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "common/endpoint.h"
#include "common/json_input.h"
#include "common/limits.h"
#include "common/mutex.h"
#include "common/text.h"
#include "http/bounded_read.h"
#include "http/http_connection_pool.h"
#include "security/peer_name.h"
#include "security/request_signature.h"

namespace treaty {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// A participant's answer body: larger ones fail the call (kTransient, so it is
// retried like any failed call), whatever Content-Length they declare.
constexpr uint64_t kMaxResponseBodyBytes = 8 << 20;

// A header value as sent: printable ASCII only. Any other byte (CR, LF, NUL,
// another control byte, non-ASCII; a gtid or name recovered from an old log
// may hold one) is written as \xNN and '\' as \\, so nothing can end the
// header line or start another.
std::string HeaderValue(std::string_view value) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(value.size());
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      out.push_back(ch);
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// The statuses that say the URL points at nothing that can ever answer (a
// configuration error, ParticipantResponse::config_error) with what the
// operator should check; null for any other status.
const char* ConfigErrorStatus(int status) {
  switch (status) {
    case 404:
      return "HTTP 404 Not Found: the URL is wrong or the participant is not deployed";
    case 405:
      return "HTTP 405 Method Not Allowed: the URL does not take POST (wrong path or method)";
    case 410:
      return "HTTP 410 Gone: the participant no longer serves this URL";
    default:
      return nullptr;
  }
}

// Fails `done` (posted on `io`, never inline) without sending anything.
void FailUncallable(net::io_context& io, ParticipantCaller::Callback done, std::string error) {
  ParticipantResponse out;
  out.outcome = CallOutcome::kUncallable;
  out.error = std::move(error);
  net::post(io, [done = std::move(done), out = std::move(out)] { done(out); });
}

// One participant call: waits for a connection, then resolve → policy check →
// connect → TLS handshake (https) → write → read on that connection's strand;
// the HTTP exchange is one code path over either stream
// (PooledConnection::WithStream). A deadline timer (own strand)
// covers the whole call. Exactly one of the paths wins `finished_` and posts
// `done`; every handler that finds the call finished discards its connection.
class CallState : public PoolWaiter, public std::enable_shared_from_this<CallState> {
 public:
  CallState(std::shared_ptr<HostPool> pool, ParticipantRequest req,
            ParticipantCaller::Callback done, const std::string& target)
      : pool_(std::move(pool)),
        req_(std::move(req)),
        done_(std::move(done)),
        start_(Clock::now()),
        deadline_(start_ + std::chrono::milliseconds(std::max<int64_t>(1, req_.timeout_ms))),
        timer_strand_(net::make_strand(pool_->io())),
        timer_(timer_strand_) {
    BuildRequest(target);
  }

  void Start(int connect_timeout_ms) {
    connect_timeout_ = std::chrono::milliseconds(connect_timeout_ms);
    timer_.expires_at(deadline_);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->OnTimeout();
    });
    pool_->Acquire(shared_from_this());
  }

  bool finished() const override { return finished_.load(); }

  // On conn->strand.
  void Attach(std::shared_ptr<PooledConnection> conn) override {
    {
      MutexLock lock(&mu_);
      conn_ = conn;
    }
    if (finished()) return Discard(conn);
    if (conn->connected) return Write(conn);
    conn->resolver.async_resolve(
        pool_->host(), pool_->port(),
        [self = shared_from_this(), conn](beast::error_code ec, tcp::resolver::results_type r) {
          self->OnResolve(conn, ec, r);
        });
  }

 private:
  void BuildRequest(const std::string& target) {
    nlohmann::ordered_json head = {{"gtid", req_.gtid}, {"branch", req_.branch}, {"op", req_.op}};
    std::string body = head.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::string payload = req_.payload_json.empty() ? "null" : req_.payload_json;
    if (!nlohmann::json::accept(payload)) payload = DumpJson(nlohmann::json(payload));
    body.pop_back();  // '}'
    body += ",\"payload\":" + payload;
    if (req_.one_phase) body += ",\"one_phase\":true";  // 2PC commit without prepare
    body += "}";

    http_req_.method(http::verb::post);
    http_req_.target(target);  // from ParseEndpoint: printable ASCII, no space
    http_req_.version(11);
    http_req_.set(http::field::host, pool_->authority());
    http_req_.set(http::field::user_agent, "treaty");
    http_req_.set(http::field::content_type, "application/json");
    http_req_.set("Treaty-Gtid", HeaderValue(req_.gtid));
    http_req_.set("Treaty-Branch", HeaderValue(req_.branch));
    http_req_.set("Treaty-Op", HeaderValue(req_.op));
    http_req_.set("Idempotency-Key", HeaderValue(req_.gtid + "/" + req_.branch + "/" + req_.op));
    if (!req_.traceparent.empty()) http_req_.set("traceparent", HeaderValue(req_.traceparent));
    if (!req_.tracestate.empty()) http_req_.set("tracestate", HeaderValue(req_.tracestate));
    if (req_.one_phase) http_req_.set("Treaty-One-Phase", "true");
    // HTTP/1.1 keeps alive by default, so Beast's keep_alive(true) omits the
    // header; the protocol spec asks for it explicitly.
    http_req_.set(http::field::connection, "keep-alive");
    const std::string& key = pool_->options().signing_key;
    if (!key.empty()) {
      const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
      http_req_.set(kSignatureHeader, SignRequest(key, now_s, "POST", target, body));
    }
    http_req_.body() = std::move(body);
    http_req_.prepare_payload();
  }

  void OnResolve(const std::shared_ptr<PooledConnection>& conn, beast::error_code ec,
                 const tcp::resolver::results_type& results) {
    if (finished()) return Discard(conn);
    // A name the resolver says does not exist is a configuration error; a
    // resolver that cannot answer now (no DNS server reachable, temporary
    // failure) is a passing fault like a refused connection: retried, not
    // flagged, so that a DNS outage does not flag every transaction.
    if (ec) {
      const bool no_such_name =
          ec == boost::asio::error::host_not_found || ec == boost::asio::error::no_data;
      return Fail(conn, "host '" + pool_->host() + "' does not resolve: " + ec.message(),
                  /*config_error=*/no_such_name);
    }
    // The SSRF guard at connect time: every address the name resolved to
    // must be allowed, else none is connected to (a name answering with a
    // mix of public and internal addresses is refused as a whole).
    if (const auto& policy = pool_->options().policy) {
      for (const auto& entry : results) {
        Status allowed = policy->CheckAddress(pool_->endpoint(), entry.endpoint().address());
        if (!allowed.ok()) return Fail(conn, allowed.message(), /*config_error=*/true);
      }
    }
    conn->tcp().expires_at(std::min(deadline_, Clock::now() + connect_timeout_));
    conn->tcp().async_connect(
        results, [self = shared_from_this(), conn](beast::error_code ec, const tcp::endpoint&) {
          self->OnConnect(conn, ec);
        });
  }

  void OnConnect(const std::shared_ptr<PooledConnection>& conn, beast::error_code ec) {
    if (finished()) return Discard(conn);
    const std::string& where = pool_->authority();
    if (ec == beast::error::timeout) return Fail(conn, "connect to " + where + " timed out");
    if (ec) return Fail(conn, "connect to " + where + ": " + ec.message());
    if (conn->tls()) return Handshake(conn);
    conn->connected = true;
    Write(conn);
  }

  // https://: TLS with SNI and the URL's host (a name or an IP literal) as
  // the name the certificate must carry, within the call's deadline.
  void Handshake(const std::shared_ptr<PooledConnection>& conn) {
    TlsStream& tls = *conn->tls();
    SSL* ssl = tls.native_handle();
    if (!ExpectPeerName(ssl, pool_->host())) {
      return Fail(conn, "TLS to " + pool_->authority() + ": cannot set the expected host name");
    }
    tls.set_verify_mode(ssl::verify_peer);  // whatever the context says
    conn->tcp().expires_at(deadline_);
    tls.async_handshake(
        ssl::stream_base::client,
        [self = shared_from_this(), conn](beast::error_code ec) { self->OnHandshake(conn, ec); });
  }

  void OnHandshake(const std::shared_ptr<PooledConnection>& conn, beast::error_code ec) {
    if (finished()) return Discard(conn);
    if (ec) {
      if (auto why = TlsRefusal(conn, ec)) return Fail(conn, *why, /*config_error=*/true);
      return Fail(conn, IoError("TLS handshake with", ec));
    }
    conn->connected = true;
    Write(conn);
  }

  // A TLS failure that is a configuration problem (the participant's
  // certificate does not verify, or one side refuses the other's TLS: no
  // common version, a client certificate missing or not trusted), as a
  // message; nullopt for anything else (a reset, a time-out, a close).
  std::optional<std::string> TlsRefusal(const std::shared_ptr<PooledConnection>& conn,
                                        beast::error_code ec) const {
    TlsStream* tls = conn->tls();
    if (!tls || ec.category() != net::error::get_ssl_category()) return std::nullopt;
    const long verify = SSL_get_verify_result(tls->native_handle());
    if (verify != X509_V_OK) {
      return "certificate verify failed: " + std::string(X509_verify_cert_error_string(verify)) +
             " (participant " + pool_->authority() + ", expected name '" + pool_->host() + "')";
    }
    return "TLS with " + pool_->authority() + " failed: " + ec.message();
  }

  void Write(const std::shared_ptr<PooledConnection>& conn) {
    parser_.reset();
    conn->tcp().expires_at(deadline_);
    conn->WithStream([&](auto& stream) {
      http::async_write(stream, http_req_,
                        [self = shared_from_this(), conn](beast::error_code ec, size_t) {
                          self->OnWrite(conn, ec);
                        });
    });
  }

  void OnWrite(const std::shared_ptr<PooledConnection>& conn, beast::error_code ec) {
    if (finished()) return Discard(conn);
    if (ec && !(conn->tls() && !conn->reused && ec != beast::error::timeout)) {
      return OnIoError(conn, "write", ec);
    }
    // A fresh TLS connection whose write failed reads on: with TLS 1.3 a
    // server refuses the client certificate after the client's handshake
    // completed, and its alert (the reason) waits to be read.
    Read(conn);
  }

  void Read(const std::shared_ptr<PooledConnection>& conn) {
    parser_.emplace();
    // Header first: a declared Content-Length above the limit fails the call
    // before any body storage exists (bounded_read.h).
    conn->WithStream([&](auto& stream) {
      AsyncReadBounded(stream, conn->buffer, *parser_, kMaxResponseBodyBytes,
                       [self = shared_from_this(), conn](beast::error_code ec, size_t) {
                         self->OnRead(conn, ec);
                       });
    });
  }

  void OnIoError(const std::shared_ptr<PooledConnection>& conn, const char* what,
                 beast::error_code ec) {
    if (CanRetry(conn, ec)) return Retry(conn);
    // TLS 1.3: a server refuses the client certificate after the client's
    // handshake completed, so its alert arrives with the first read.
    if (!conn->reused && !(parser_ && parser_->got_some())) {
      if (auto why = TlsRefusal(conn, ec)) return Fail(conn, *why, /*config_error=*/true);
    }
    Fail(conn, IoError(what, ec));
  }

  void OnRead(const std::shared_ptr<PooledConnection>& conn, beast::error_code ec) {
    if (finished()) return Discard(conn);
    if (ec == http::error::body_limit) {
      return Fail(conn, "read " + pool_->authority() + ": the answer's body is larger than " +
                            std::to_string(kMaxResponseBodyBytes) + " bytes");
    }
    if (ec) return OnIoError(conn, "read", ec);
    const auto& res = parser_->get();
    ParticipantResponse out;
    out.http_status = static_cast<int>(res.result_int());
    const std::string& body = res.body();
    if (out.http_status >= 200 && out.http_status < 300) {
      out.outcome = CallOutcome::kOk;
      auto j = ParseJson(body, "the participant's answer");
      out.readonly_vote =
          j.ok() && j->is_object() && j->contains("vote") && (*j)["vote"] == "readonly";
    } else {
      out.outcome =
          out.http_status == 409 ? CallOutcome::kBusinessFailure : CallOutcome::kTransient;
      out.error = "HTTP " + std::to_string(out.http_status);
      if (const char* why = ConfigErrorStatus(out.http_status)) {
        out.config_error = true;
        out.error = why;
      }
      // The answer's text is the participant's: cut on a code point, valid UTF-8, no NUL.
      if (!body.empty()) out.error += ": " + Excerpt(body, limits::kErrorExcerptBytes);
    }
    bool reusable = res.keep_alive() && !res.need_eof() && conn->buffer.size() == 0;
    if (!Finish(std::move(out))) return Discard(conn);
    if (!reusable) conn->Close();
    pool_->Release(conn, reusable);
  }

  // A reused connection that failed before any response byte: the server
  // probably closed it while idle. Retried once on a fresh connection.
  bool CanRetry(const std::shared_ptr<PooledConnection>& conn, beast::error_code ec) const {
    return conn->reused && !retried_ && ec != beast::error::timeout &&
           (!parser_ || !parser_->got_some()) && Clock::now() < deadline_;
  }

  void Retry(const std::shared_ptr<PooledConnection>& stale) {
    retried_ = true;
    stale->Close();
    auto fresh = pool_->NewConnection();  // keeps the stale one's slot
    net::post(fresh->strand, [self = shared_from_this(), fresh] { self->Attach(fresh); });
  }

  std::string IoError(const char* what, beast::error_code ec) const {
    if (ec == beast::error::timeout)
      return "timed out after " + std::to_string(req_.timeout_ms) + " ms";
    return std::string(what) + " " + pool_->authority() + ": " + ec.message();
  }

  void Fail(const std::shared_ptr<PooledConnection>& conn, std::string error,
            bool config_error = false) {
    ParticipantResponse out;
    out.outcome = CallOutcome::kTransient;
    out.config_error = config_error;
    out.error = std::move(error);
    Finish(std::move(out));
    Discard(conn);
  }

  void Discard(const std::shared_ptr<PooledConnection>& conn) {
    conn->Close();
    pool_->Release(conn, false);
  }

  void OnTimeout() {
    ParticipantResponse out;
    out.outcome = CallOutcome::kTransient;
    out.error = "timed out after " + std::to_string(req_.timeout_ms) + " ms";
    if (!Finish(std::move(out))) return;
    std::shared_ptr<PooledConnection> conn;
    {
      MutexLock lock(&mu_);
      conn = conn_;
    }
    if (conn) {
      net::post(conn->strand, [conn] { conn->Close(); });  // its handler discards it
    } else {
      pool_->Forget(this);
    }
  }

  // Claims the call's single completion; posts `done`. False if already finished.
  bool Finish(ParticipantResponse out) {
    if (finished_.exchange(true)) return false;
    out.latency_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_).count();
    net::post(pool_->io(),
              [done = std::move(done_), out = std::move(out)]() mutable { done(std::move(out)); });
    net::post(timer_strand_, [self = shared_from_this()] { self->timer_.cancel(); });
    return true;
  }

  const std::shared_ptr<HostPool> pool_;
  const ParticipantRequest req_;
  ParticipantCaller::Callback done_;  // moved out by the Finish that wins
  const Clock::time_point start_, deadline_;
  std::chrono::milliseconds connect_timeout_{3000};
  net::strand<net::io_context::executor_type> timer_strand_;
  net::steady_timer timer_;  // on timer_strand_
  std::atomic<bool> finished_{false};
  Mutex mu_;
  std::shared_ptr<PooledConnection> conn_ TREATY_GUARDED_BY(mu_);  // in use, for OnTimeout
  // Below: touched only on the strand of the connection in use (handed over by post).
  http::request<http::string_body> http_req_;
  std::optional<http::response_parser<http::string_body>> parser_;
  bool retried_ = false;
};

}  // namespace

struct HttpParticipantCaller::Impl : std::enable_shared_from_this<Impl> {
  Impl(net::io_context& io_context, HttpCallerOptions opts)
      : io(io_context), options(opts), prune_timer(io_context) {}
  net::io_context& io;
  HttpCallerOptions options;
  mutable Mutex mu;
  std::unordered_map<std::string, std::shared_ptr<HostPool>> pools TREATY_GUARDED_BY(mu);
  net::steady_timer prune_timer TREATY_GUARDED_BY(mu);
  bool prune_armed TREATY_GUARDED_BY(mu) = false;
  bool shut_down TREATY_GUARDED_BY(mu) = false;

  std::shared_ptr<HostPool> PoolFor(const Endpoint& endpoint) {
    MutexLock lock(&mu);
    // The scheme is part of the key: http:// and https:// to one host:port
    // never share a connection.
    auto& pool = pools[endpoint.scheme + "://" + endpoint.Authority()];
    if (!pool) pool = std::make_shared<HostPool>(io, endpoint, options);
    pool->Touch();
    ArmPrune();
    return pool;
  }

  void ArmPrune() TREATY_REQUIRES(mu) {
    if (prune_armed || shut_down) return;
    prune_armed = true;
    prune_timer.expires_after(std::chrono::milliseconds(std::max(1, options.endpoint_idle_ms / 4)));
    prune_timer.async_wait([weak = weak_from_this()](beast::error_code) {
      if (auto self = weak.lock()) self->Prune();
    });
  }

  // Forgets every endpoint that is unused and that no call holds (a
  // CallState keeps its HostPool alive: use_count() > 1). New holders come
  // only through PoolFor, under mu, so nothing can pick a pool up meanwhile.
  void Prune() {
    MutexLock lock(&mu);
    prune_armed = false;
    const auto now = Clock::now();
    const auto idle_for = std::chrono::milliseconds(options.endpoint_idle_ms);
    for (auto it = pools.begin(); it != pools.end();) {
      if (it->second.use_count() == 1 && it->second->Unused(now, idle_for)) {
        it->second->Shutdown();
        it = pools.erase(it);
      } else {
        ++it;
      }
    }
    if (!pools.empty()) ArmPrune();
  }
};

HttpParticipantCaller::HttpParticipantCaller(net::io_context& io, HttpCallerOptions options)
    : impl_(std::make_shared<Impl>(io, options)) {
  if (impl_->options.max_connections_per_host < 1) impl_->options.max_connections_per_host = 1;
}

HttpParticipantCaller::~HttpParticipantCaller() {
  MutexLock lock(&impl_->mu);
  impl_->shut_down = true;
  impl_->prune_timer.cancel();
  for (auto& [key, pool] : impl_->pools) pool->Shutdown();
}

size_t HttpParticipantCaller::endpoint_count() const {
  MutexLock lock(&impl_->mu);
  return impl_->pools.size();
}

void HttpParticipantCaller::Call(ParticipantRequest request, Callback done) {
  auto endpoint = ParseEndpoint(request.url, "participant URL");
  if (!endpoint.ok()) {
    return FailUncallable(impl_->io, std::move(done),
                          "cannot call: " + endpoint.status().message());
  }
  if (!endpoint->http()) {
    return FailUncallable(impl_->io, std::move(done),
                          "cannot call: participant URL is " + endpoint->scheme +
                              "://, and the HTTP caller serves http:// and https:// only");
  }
  if (endpoint->tls() && !impl_->options.tls) {
    return FailUncallable(impl_->io, std::move(done),
                          "cannot call: https participants need TLS configured (the coordinator "
                          "has no client TLS context)");
  }
  try {
    auto pool = impl_->PoolFor(*endpoint);
    auto call = std::make_shared<CallState>(std::move(pool), std::move(request), std::move(done),
                                            endpoint->target);
    call->Start(impl_->options.connect_timeout_ms);
  } catch (const std::exception& e) {
    // Only allocation or Asio set-up can throw here, before anything was sent.
    if (!done) return;  // the call owns it and will answer
    ParticipantResponse out;
    out.outcome = CallOutcome::kTransient;
    out.error = "participant call failed: " + ToValidUtf8(e.what());
    net::post(impl_->io, [done = std::move(done), out = std::move(out)] { done(out); });
  }
}

}  // namespace treaty
