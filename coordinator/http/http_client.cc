#include "http/http_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <chrono>
#include <memory>
#include <optional>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "common/endpoint.h"
#include "http/bounded_read.h"
#include "security/peer_name.h"

namespace treaty {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr uint64_t kMaxResponseBodyBytes = 64u << 20;  // as http_client.h states

// True when `s` holds a byte that must never reach a header line (C0 or DEL).
bool HasControl(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

// One request and its answer; everything runs on the private io_context's
// single thread.
struct Exchange {
  http::request<http::string_body> req;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  beast::error_code error;
  const char* stage = "resolve";
  bool done = false;

  void Finish(const char* at, beast::error_code ec) {
    stage = at;
    error = ec;
    done = true;
  }
};

// Writes the request on a connected (for TLS: handshaken) stream, then reads
// the answer, header first (bounded_read.h).
template <class Stream>
void WriteAndRead(Stream& stream, Exchange& x) {
  http::async_write(stream, x.req, [&stream, &x](beast::error_code ec, size_t) {
    if (ec) return x.Finish("write", ec);
    AsyncReadBounded(stream, x.buffer, x.parser, kMaxResponseBodyBytes,
                     [&x](beast::error_code ec, size_t) { x.Finish("read", ec); });
  });
}

// Resolves and connects the TCP layer of `stream`, then calls `then()`.
template <class Stream, class Then>
void Connect(tcp::resolver& resolver, Stream& stream, const Endpoint& ep,
             std::chrono::steady_clock::time_point deadline, Exchange& x, Then then) {
  resolver.async_resolve(
      ep.host, std::to_string(ep.port),
      [&stream, &x, deadline, then = std::move(then)](beast::error_code ec, auto results) {
        if (ec) return x.Finish("resolve", ec);
        beast::get_lowest_layer(stream).expires_at(deadline);
        beast::get_lowest_layer(stream).async_connect(
            results, [&x, then](beast::error_code ec, const tcp::endpoint&) {
              if (ec) return x.Finish("connect", ec);
              then();
            });
      });
}

// The reason of a failed certificate check, e.g. "certificate has expired",
// or "" when the certificate was not the problem.
std::string VerifyFailure(SSL* ssl) {
  const long result = SSL_get_verify_result(ssl);
  if (result == X509_V_OK) return "";
  return X509_verify_cert_error_string(result);
}

}  // namespace

Result<HttpClientResponse> HttpFetch(const std::string& method, const std::string& url,
                                     const std::string& body,
                                     const std::map<std::string, std::string>& headers,
                                     int timeout_ms, const TlsClientFiles* tls) {
  auto parsed = ParseEndpoint(url);
  if (!parsed.ok()) return parsed.status();
  const bool https = parsed->scheme == "https";
  if (parsed->scheme != "http" && !https) {
    return Status::InvalidArgument("only http:// and https:// URLs are supported (got " +
                                   parsed->scheme + "://)");
  }
  http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) return Status::InvalidArgument("unknown HTTP method");
  for (const auto& [name, value] : headers) {
    if (HasControl(name) || HasControl(value) || name.empty()) {
      return Status::InvalidArgument("header names and values must not hold control characters");
    }
  }
  std::shared_ptr<ssl::context> tls_context;
  if (https) {
    auto ctx = MakeClientTlsContext(tls ? *tls : TlsClientFiles{});
    if (!ctx.ok()) return ctx.status();
    tls_context = std::move(*ctx);
  }

  net::io_context io;
  Exchange x;
  x.req.method(verb);
  x.req.target(parsed->target);
  x.req.version(11);
  x.req.set(http::field::host, parsed->Authority());
  x.req.set(http::field::user_agent, "treaty");
  x.req.keep_alive(false);
  for (const auto& [name, value] : headers) x.req.set(name, value);
  if (!body.empty() || verb == http::verb::post || verb == http::verb::put) {
    // The coordinator refuses state-changing bodies that are not JSON.
    if (x.req.find(http::field::content_type) == x.req.end()) {
      x.req.set(http::field::content_type, "application/json");
    }
    x.req.body() = body;
    x.req.prepare_payload();
  }

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  tcp::resolver resolver(io);
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  if (https) {
    secure.emplace(io, *tls_context);
    if (!ExpectPeerName(secure->native_handle(), parsed->host)) {
      return Status::InvalidArgument("cannot verify the server name '" + parsed->host + "'");
    }
    Connect(resolver, *secure, *parsed, deadline, x, [&secure, &x] {
      secure->async_handshake(ssl::stream_base::client, [&secure, &x](beast::error_code ec) {
        if (ec) return x.Finish("TLS handshake", ec);
        WriteAndRead(*secure, x);
      });
    });
  } else {
    plain.emplace(io);
    Connect(resolver, *plain, *parsed, deadline, x, [&plain, &x] { WriteAndRead(*plain, x); });
  }
  io.run_for(std::chrono::milliseconds(timeout_ms));
  if (!x.done || x.error == beast::error::timeout) {
    return Status::TimedOut(method + " " + url + " timed out after " + std::to_string(timeout_ms) +
                            " ms");
  }
  if (x.error == http::error::body_limit) {
    return Status::Unavailable(method + " " + url + ": the response body is larger than " +
                               std::to_string(kMaxResponseBodyBytes) + " bytes");
  }
  if (x.error) {
    std::string why = x.error.message();
    if (secure) {
      if (std::string cert = VerifyFailure(secure->native_handle()); !cert.empty()) {
        why = "the server's certificate was refused: " + cert;
      }
    }
    return Status::Unavailable(method + " " + url + ": " + x.stage + ": " + why);
  }
  HttpClientResponse out;
  auto& res = x.parser.get();
  out.status = static_cast<int>(res.result_int());
  out.body = std::move(res.body());
  for (const auto& field : res) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.headers[name] = std::string(field.value());
  }
  // The server closes too (Connection: close); no TLS close_notify is awaited.
  beast::error_code ignored;
  beast::get_lowest_layer(secure ? secure->next_layer() : *plain)
      .socket()
      .shutdown(tcp::socket::shutdown_both, ignored);
  return out;
}

}  // namespace treaty
