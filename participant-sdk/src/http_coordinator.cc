#include "http_coordinator.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "common/endpoint.h"
#include "common/mutex.h"
#include "http/bounded_read.h"
#include "input_rules.h"
#include "security/peer_name.h"
#include "security/tls_context.h"

namespace treaty_sdk_detail {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
using treaty::StatusCode;

namespace {

constexpr uint64_t kMaxAnswerBytes = 64u << 20;  // as http_coordinator.h states
constexpr size_t kMessageBytes = 200;            // error messages are cut to this

// One keep-alive connection. It has its own io_context: every operation on
// it runs on the calling thread, inside HttpCoordinator::Exchange, by the
// one call that holds it.
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
void RunUntil(Connection& c, Progress& p, Clock::time_point deadline) {
  c.io.restart();
  while (!p.done && Clock::now() < deadline) {
    c.io.run_one_until(deadline);
  }
  c.io.restart();
  if (p.done) {
    c.io.poll();  // the stream's cancelled timers; never blocks
    return;
  }
  p.Finish(p.stage, beast::error::timeout);
  c.Close();
  c.io.run();  // the cancelled handlers run at once (a name lookup may finish first)
}

std::string VerifyFailure(SSL* ssl) {
  const long result = SSL_get_verify_result(ssl);
  if (result == X509_V_OK) return "";
  return X509_verify_cert_error_string(result);
}

// The code of a REST answer with `http_status` (coordinator_transport.h):
// kOk for a 2xx, else the body's {"error":{"code":...}} when it names a
// StatusCode, else by the HTTP status.
StatusCode RestAnswerCode(int http_status, const json& body) {
  if (http_status >= 200 && http_status < 300) return StatusCode::kOk;
  if (body.is_object()) {
    auto error = body.find("error");
    if (error != body.end() && error->is_object()) {
      auto code = error->find("code");
      if (code != error->end() && code->is_string()) {
        const std::string& name = code->get_ref<const std::string&>();
        // ErrorCodeFromName answers kInternal for a name it does not know.
        const StatusCode known = treaty::ErrorCodeFromName(name);
        if (known != StatusCode::kOk && name == treaty::ErrorCodeName(known)) return known;
      }
    }
  }
  switch (http_status) {
    case 400:
    case 422:
      return StatusCode::kInvalidArgument;
    case 401:
      return StatusCode::kUnauthenticated;
    case 403:
      return StatusCode::kPermissionDenied;
    case 404:
      return StatusCode::kNotFound;
    case 409:
      return StatusCode::kConflict;
    case 413:
      return StatusCode::kTooLarge;
    case 502:
    case 503:
      return StatusCode::kUnavailable;
    case 504:
      return StatusCode::kTimedOut;
    default:
      return StatusCode::kInternal;
  }
}

CoordinatorReply Reply(Delivery d, std::string message) {
  CoordinatorReply r;
  r.delivery = d;
  r.message = std::move(message);
  return r;
}

class HttpCoordinator : public CoordinatorTransport {
 public:
  HttpCoordinator(std::string address, treaty::Endpoint endpoint, std::shared_ptr<ssl::context> tls,
                  const TransportOptions& options)
      : address_(std::move(address)),
        endpoint_(std::move(endpoint)),
        tls_(std::move(tls)),
        options_(options) {
    prefix_ = endpoint_.target;
    if (auto q = prefix_.find('?'); q != std::string::npos) prefix_.resize(q);
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
  }

  CoordinatorReply SubmitSaga(const json& request, int timeout_ms,
                              int wait_timeout_ms = 0) override {
    std::string target = "/v1/sagas";
    if (wait_timeout_ms > 0) {  // the coordinator accepts 1 - 3,600,000 (docs/api.md)
      target += "?wait_timeout_ms=" + std::to_string(std::min(wait_timeout_ms, 3600000));
    }
    return Exchange(http::verb::post, target, DumpJson(request), timeout_ms);
  }
  CoordinatorReply Begin(const json& request, int timeout_ms) override {
    return Exchange(http::verb::post, "/v1/2pc", DumpJson(request), timeout_ms);
  }
  CoordinatorReply Enlist(const std::string& gtid, const json& branch, int timeout_ms) override {
    return Exchange(http::verb::post, "/v1/2pc/" + gtid + "/branches", DumpJson(branch),
                    timeout_ms);
  }
  CoordinatorReply Commit(const std::string& gtid, int timeout_ms) override {
    return Exchange(http::verb::post, "/v1/2pc/" + gtid + "/commit", "{}", timeout_ms);
  }
  CoordinatorReply Abort(const std::string& gtid, int timeout_ms) override {
    return Exchange(http::verb::post, "/v1/2pc/" + gtid + "/abort", "{}", timeout_ms);
  }
  CoordinatorReply Get(const std::string& gtid, int timeout_ms) override {
    return Exchange(http::verb::get, "/v1/transactions/" + gtid, "", timeout_ms);
  }
  int64_t connections_opened() const override { return opened_.load(); }

 private:
  CoordinatorReply Exchange(http::verb verb, const std::string& path, const std::string& body,
                            int timeout_ms);
  // The most recent usable idle connection, or null.
  std::unique_ptr<Connection> TakeIdle();
  void GiveBack(std::unique_ptr<Connection> c);
  // Connects (and handshakes) a fresh connection; "" or why not.
  std::string Connect(Connection& c, Clock::time_point deadline);
  CoordinatorReply ReadAnswer(http::response<http::string_body>& res);

  const std::string address_;
  const treaty::Endpoint endpoint_;
  const std::shared_ptr<ssl::context> tls_;  // null for http://
  const TransportOptions options_;
  std::string prefix_;  // the address's path, without a trailing '/'
  std::atomic<int64_t> opened_{0};
  treaty::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ TREATY_GUARDED_BY(mu_);  // newest last
};

std::unique_ptr<Connection> HttpCoordinator::TakeIdle() {
  const auto now = Clock::now();
  std::vector<std::unique_ptr<Connection>> stale;  // closed outside the lock
  std::unique_ptr<Connection> found;
  {
    treaty::MutexLock l(&mu_);
    while (!idle_.empty() && !found) {
      std::unique_ptr<Connection> c = std::move(idle_.back());
      idle_.pop_back();
      const bool fresh = now - c->idle_since < std::chrono::milliseconds(options_.idle_ms);
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

void HttpCoordinator::GiveBack(std::unique_ptr<Connection> c) {
  c->idle_since = Clock::now();
  {
    treaty::MutexLock l(&mu_);
    if (static_cast<int>(idle_.size()) < options_.pool_size) {
      idle_.push_back(std::move(c));
      return;
    }
  }
  c->Close();
}

std::string HttpCoordinator::Connect(Connection& c, Clock::time_point deadline) {
  Progress p;
  p.stage = "resolve";
  c.resolver.async_resolve(
      endpoint_.host, std::to_string(endpoint_.port),
      [&c, &p, deadline](beast::error_code ec, tcp::resolver::results_type results) {
        if (ec) return p.Finish("resolve", ec);
        p.stage = "connect";
        c.tcp().expires_at(deadline);
        c.tcp().async_connect(results, [&c, &p](beast::error_code ec, const tcp::endpoint&) {
          if (ec) return p.Finish("connect", ec);
          if (!c.secure) return p.Finish("connect", ec);
          p.stage = "TLS handshake";
          c.secure->async_handshake(ssl::stream_base::client,
                                    [&p](beast::error_code ec) { p.Finish("TLS handshake", ec); });
        });
      });
  RunUntil(c, p, deadline);
  if (!p.error) {
    opened_.fetch_add(1);
    beast::error_code ignored;
    c.tcp().socket().set_option(tcp::no_delay(true), ignored);
    return "";
  }
  std::string why = p.error == beast::error::timeout ? "timed out" : p.error.message();
  if (c.secure) {
    if (std::string cert = VerifyFailure(c.secure->native_handle()); !cert.empty()) {
      why = "the server's certificate was refused: " + cert;
    }
  }
  c.Close();
  return address_ + ": " + p.stage + ": " + why;
}

CoordinatorReply HttpCoordinator::ReadAnswer(http::response<http::string_body>& res) {
  const int status = static_cast<int>(res.result_int());
  ParsedJson answer = ParseJsonInput(res.body(), "the coordinator's answer");
  CoordinatorReply r;
  r.delivery = Delivery::kAnswered;
  r.code = RestAnswerCode(status, answer.value);
  if (r.code == StatusCode::kOk) {
    if (!answer.value.is_object()) {
      return Reply(
          Delivery::kBadAnswer,
          address_ + ": HTTP " + std::to_string(status) + " but " +
              (answer.ok() ? "the coordinator's answer is not a JSON object" : answer.error));
    }
    r.body = std::move(answer.value);
    return r;
  }
  // {"error":{"message":...}}, else an excerpt of the raw body.
  r.message = Excerpt(res.body(), kMessageBytes);
  if (answer.value.is_object()) {
    auto error = answer.value.find("error");
    if (error != answer.value.end() && error->is_object()) {
      auto m = error->find("message");
      if (m != error->end() && m->is_string()) {
        r.message = Excerpt(m->get_ref<const std::string&>(), kMessageBytes);
      }
    }
  }
  return r;
}

CoordinatorReply HttpCoordinator::Exchange(http::verb verb, const std::string& path,
                                           const std::string& body, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  http::request<http::string_body> req;
  req.method(verb);
  req.target(prefix_ + path);
  req.version(11);
  req.set(http::field::host, endpoint_.Authority());
  req.set(http::field::user_agent, "treaty-sdk");
  req.keep_alive(true);
  if (!options_.token.empty()) req.set(http::field::authorization, "Bearer " + options_.token);
  if (verb == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();

  // At most twice: a second time only when a reused connection turned out
  // to be closed before any answer byte arrived (http_coordinator.h).
  for (int round = 0;; ++round) {
    std::unique_ptr<Connection> c = round == 0 ? TakeIdle() : nullptr;
    const bool reused = c != nullptr;
    if (!c) {
      c = std::make_unique<Connection>(tls_);
      if (c->secure && !treaty::ExpectPeerName(c->secure->native_handle(), endpoint_.host)) {
        return Reply(Delivery::kBadConfig,
                     "cannot verify the server name '" + endpoint_.host + "'");
      }
      if (std::string why = Connect(*c, deadline); !why.empty()) {
        return Reply(Delivery::kNotSent, why);
      }
    }
    Progress p;
    p.stage = "write";
    bool written = false;
    c->buffer.clear();
    http::response_parser<http::string_body> parser;
    auto exchange = [&](auto& stream) {
      c->tcp().expires_at(deadline);
      http::async_write(stream, req, [&](beast::error_code ec, size_t) {
        if (ec) return p.Finish("write", ec);
        written = true;
        p.stage = "read";
        treaty::AsyncReadBounded(stream, c->buffer, parser, kMaxAnswerBytes,
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
      CoordinatorReply r = ReadAnswer(res);
      if (res.keep_alive() && c->buffer.size() == 0) {
        GiveBack(std::move(c));
      } else {
        c->Close();
      }
      return r;
    }
    c->Close();
    const bool timed_out = p.error == beast::error::timeout;
    const std::string why =
        address_ + ": " + p.stage + ": " +
        (timed_out ? "timed out after " + std::to_string(timeout_ms) + " ms" : p.error.message());
    if (p.error == http::error::body_limit) {
      return Reply(Delivery::kBadAnswer, address_ + ": the answer is larger than " +
                                             std::to_string(kMaxAnswerBytes) + " bytes");
    }
    const bool closed_before_answer = !timed_out && !parser.got_some();
    if (reused && round == 0 && closed_before_answer && Clock::now() < deadline) continue;
    return Reply(written ? Delivery::kNoAnswer : Delivery::kNotSent, why);
  }
}

}  // namespace

std::unique_ptr<CoordinatorTransport> MakeHttpCoordinator(const std::string& address,
                                                          const TransportOptions& options,
                                                          std::string* why) {
  auto endpoint = treaty::ParseEndpoint(address, "coordinator URL");
  if (!endpoint.ok()) {
    *why = "coordinator URL " + EscapeControl(Excerpt(address, 200)) + ": " +
           EscapeControl(endpoint.status().message());
    return nullptr;
  }
  if (endpoint->scheme != "http" && endpoint->scheme != "https") {
    *why = "coordinator URL " + EscapeControl(Excerpt(address, 200)) +
           ": the scheme must be http://, https:// or thrift://";
    return nullptr;
  }
  std::shared_ptr<ssl::context> tls;
  if (endpoint->scheme == "https") {
    auto ctx = treaty::MakeClientTlsContext(
        treaty::TlsClientFiles{options.ca_file, options.cert_file, options.key_file});
    if (!ctx.ok()) {
      *why = "coordinator URL " + EscapeControl(Excerpt(address, 200)) + ": " +
             EscapeControl(ctx.status().message());
      return nullptr;
    }
    tls = std::move(*ctx);
  }
  return std::make_unique<HttpCoordinator>(address, std::move(*endpoint), std::move(tls), options);
}

}  // namespace treaty_sdk_detail
