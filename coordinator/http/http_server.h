#pragma once

// HttpServer: HTTP/1.1 server on Boost.Beast, keep-alive, many concurrent
// connections on the threads running the given io_context. Requests with a
// body over `max_body_bytes` get 413 with a JSON error; malformed requests get
// 400; neither reaches the handler, and the server stays up.
//
// Threads: each connection has its own strand; the handler runs on it (an
// io_context thread), so it must not block. Requests on one connection are
// handled one at a time (the next is read after the response is written), so
// pipelining is safe. `respond` may be called from any thread, later; a
// handler that throws gets a 500. A responder destroyed without being called
// closes the connection without an answer. Connections idle for longer than
// idle_timeout_ms (also while a request is only partly received) are closed.

#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/status.h"
#include "http/http_types.h"

namespace treaty {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0 picks a free port; see HttpServer::port()
  size_t max_body_bytes = 1 << 20;
  int idle_timeout_ms = 60000;  // keep-alive connections idle longer are closed
};

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, HttpServerOptions options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting. Unavailable if the address cannot be bound.
  Status Start();
  // The bound port (valid after Start).
  uint16_t port() const;
  // Stops accepting and closes open connections. Thread-safe; idempotent.
  void Stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace treaty
