#include "http/http_client.h"

#include <cctype>
#include <chrono>
#include <optional>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/endpoint.h"
#include "http/bounded_read.h"

namespace treaty {

namespace net = boost::asio;
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

// The state of one fetch; everything runs on the private io_context's single thread.
struct Fetch {
  explicit Fetch(net::io_context& io) : resolver(io), stream(io) {}
  tcp::resolver resolver;
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  http::request<http::string_body> req;
  http::response_parser<http::string_body> parser;
  beast::error_code error;
  const char* stage = "resolve";
  bool done = false;
};

}  // namespace

Result<HttpClientResponse> HttpFetch(const std::string& method, const std::string& url,
                                     const std::string& body,
                                     const std::map<std::string, std::string>& headers,
                                     int timeout_ms) {
  auto parsed = ParseEndpoint(url);
  if (!parsed.ok()) return parsed.status();
  if (parsed->scheme != "http") {
    return Status::InvalidArgument("only http:// URLs are supported (got " + parsed->scheme +
                                   "://)");
  }
  http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) return Status::InvalidArgument("unknown HTTP method");
  for (const auto& [name, value] : headers) {
    if (HasControl(name) || HasControl(value) || name.empty()) {
      return Status::InvalidArgument("header names and values must not hold control characters");
    }
  }

  net::io_context io;
  Fetch f(io);
  f.req.method(verb);
  f.req.target(parsed->target);
  f.req.version(11);
  f.req.set(http::field::host, parsed->Authority());
  f.req.set(http::field::user_agent, "treaty");
  f.req.keep_alive(false);
  for (const auto& [name, value] : headers) f.req.set(name, value);
  if (!body.empty() || verb == http::verb::post || verb == http::verb::put) {
    if (f.req.find(http::field::content_type) == f.req.end()) {
      f.req.set(http::field::content_type, "application/json");
    }
    f.req.body() = body;
    f.req.prepare_payload();
  }

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto finish = [&f](const char* stage, beast::error_code ec) {
    f.stage = stage;
    f.error = ec;
    f.done = true;
  };
  f.resolver.async_resolve(
      parsed->host, std::to_string(parsed->port), [&](beast::error_code ec, auto results) {
        if (ec) return finish("resolve", ec);
        f.stream.expires_at(deadline);
        f.stream.async_connect(results, [&](beast::error_code ec, const tcp::endpoint&) {
          if (ec) return finish("connect", ec);
          http::async_write(f.stream, f.req, [&](beast::error_code ec, size_t) {
            if (ec) return finish("write", ec);
            // Header first: see bounded_read.h.
            AsyncReadBounded(f.stream, f.buffer, f.parser, kMaxResponseBodyBytes,
                             [&](beast::error_code ec, size_t) { finish("read", ec); });
          });
        });
      });
  io.run_for(std::chrono::milliseconds(timeout_ms));
  if (!f.done || f.error == beast::error::timeout) {
    return Status::TimedOut(method + " " + url + " timed out after " + std::to_string(timeout_ms) +
                            " ms");
  }
  if (f.error == http::error::body_limit) {
    return Status::Unavailable(method + " " + url + ": the response body is larger than " +
                               std::to_string(kMaxResponseBodyBytes) + " bytes");
  }
  if (f.error) {
    return Status::Unavailable(method + " " + url + ": " + f.stage + ": " + f.error.message());
  }
  HttpClientResponse out;
  auto& res = f.parser.get();
  out.status = static_cast<int>(res.result_int());
  out.body = std::move(res.body());
  for (const auto& field : res) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.headers[name] = std::string(field.value());
  }
  beast::error_code ignored;
  f.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  return out;
}

}  // namespace treaty
