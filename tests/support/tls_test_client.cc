#include "support/tls_test_client.h"

#include <cctype>
#include <chrono>

#include <openssl/ssl.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "security/tls_context.h"

namespace treaty::testing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr auto kGuard = std::chrono::seconds(10);

// Runs one asynchronous operation on `io` to completion and returns its
// error. The tcp_stream's time-out bounds every operation, so this returns.
template <class Initiate>
beast::error_code RunOne(net::io_context& io, Initiate&& initiate) {
  beast::error_code result = net::error::would_block;
  initiate([&result](beast::error_code ec, auto&&...) { result = ec; });
  io.restart();
  io.run();
  return result;
}

}  // namespace

struct TlsTestClient::Impl {
  std::string setup_error;
  std::shared_ptr<net::ssl::context> ctx;  // outlives stream
  net::io_context io;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
};

TlsTestClient::TlsTestClient(const std::string& ca_file, const std::string& cert_file,
                             const std::string& key_file)
    : impl_(std::make_unique<Impl>()) {
  auto ctx = MakeClientTlsContext(TlsClientFiles{ca_file, cert_file, key_file});
  if (!ctx.ok()) {
    impl_->setup_error = ctx.status().ToString();
    impl_->ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
  } else {
    impl_->ctx = *ctx;
  }
  impl_->stream = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(impl_->io, *impl_->ctx);
}

TlsTestClient::~TlsTestClient() = default;

const std::string& TlsTestClient::setup_error() const { return impl_->setup_error; }

boost::system::error_code TlsTestClient::Connect(uint16_t port) {
  if (!impl_->setup_error.empty()) return net::error::invalid_argument;
  auto& tcp_stream = beast::get_lowest_layer(*impl_->stream);
  tcp_stream.expires_after(kGuard);
  beast::error_code ec = RunOne(impl_->io, [&](auto handler) {
    tcp_stream.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), handler);
  });
  if (ec) return ec;
  tcp_stream.expires_after(kGuard);
  return RunOne(impl_->io, [&](auto handler) {
    impl_->stream->async_handshake(net::ssl::stream_base::client, handler);
  });
}

boost::system::error_code TlsTestClient::Request(const std::string& method,
                                                 const std::string& target, const std::string& body,
                                                 const std::map<std::string, std::string>& headers,
                                                 TlsTestResponse* out) {
  http::request<http::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, "localhost");
  for (const auto& [name, value] : headers) req.set(name, value);
  req.body() = body;
  req.prepare_payload();
  beast::get_lowest_layer(*impl_->stream).expires_after(kGuard);
  beast::error_code ec =
      RunOne(impl_->io, [&](auto handler) { http::async_write(*impl_->stream, req, handler); });
  if (ec) return ec;
  http::response<http::string_body> res;
  ec = RunOne(impl_->io,
              [&](auto handler) { http::async_read(*impl_->stream, impl_->buffer, res, handler); });
  if (ec) return ec;
  *out = {};
  out->status = static_cast<int>(res.result_int());
  out->body = res.body();
  for (const auto& field : res) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out->headers[name] = std::string(field.value());
  }
  return {};
}

boost::system::error_code TlsTestClient::ReadAfterEnd() {
  char byte;
  beast::get_lowest_layer(*impl_->stream).expires_after(kGuard);
  return RunOne(impl_->io, [&](auto handler) {
    impl_->stream->async_read_some(net::buffer(&byte, 1), handler);
  });
}

std::string TlsTestClient::ServerCommonName() const {
  return PeerCommonName(impl_->stream->native_handle());
}

long TlsTestClient::VerifyResult() const {
  return SSL_get_verify_result(impl_->stream->native_handle());
}

}  // namespace treaty::testing
