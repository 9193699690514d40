#pragma once

// HttpServer: HTTP/1.1 server (or HTTPS) on Boost.Beast, keep-alive, many concurrent
// connections on the threads running the given io_context. Requests with a
// body over `max_body_bytes` get 413 with a JSON error; malformed requests get
// 400; neither reaches the handler, and the server stays up.
//
// Threads: each connection has its own strand; the handler runs on it (an
// io_context thread), so it must not block. Requests on one connection are
// handled one at a time (the next is read after the response is written), so
// pipelining is safe. `respond` may be called from any thread, later; only
// its first call counts, later ones are ignored. A handler that throws gets a
// 500 and one log line (AnswerGuarded). A responder destroyed without being
// called closes the connection without an answer (wrap it in OwedResponder
// to answer 500 instead). Header values of a response are written with
// control characters escaped (EscapeControl); headers whose name is not an
// HTTP token are dropped.
//
// Bounded resources (docs/operations.md, "What happens when ..."):
// - At most `max_connections` connections are served at once. One accepted
//   over that cap is answered 503 {"error":{"code":"overloaded"}} with
//   Retry-After: 1 and closed; connections being served are not disturbed.
//   At most 64 such answers are in flight; past that an over-cap
//   connection is closed without an answer. Over-cap refusals are logged as
//   one warning line per 10 s (LogThrottle).
// - A connection that sends nothing for `idle_timeout_ms` (after accept or
//   after its last response) is closed. Once the first byte of a request has
//   arrived, the whole request (header and body) must arrive within
//   `request_timeout_ms`, else the connection is closed (slowloris; Beast
//   closes the socket when the time-out fires, so there is no 408).
//   Writing a response is bounded by `idle_timeout_ms`.
// - When accept fails (EMFILE, ENFILE, ENOBUFS: no descriptor or buffer to
//   spare), the accept loop waits 10 ms, doubling up to 1 s while it keeps
//   failing, instead of spinning; the failure is logged as one warning line
//   per 10 s with a count. The first accept that succeeds resets the delay.
//
// HTTPS (HttpServerOptions::tls non-null): every connection is TLS. Each
// one takes tls->context() at accept, so ServerTls::Reload() applies to new
// connections while open ones keep the context they were accepted with. The
// handshake comes first and must finish within `request_timeout_ms`; a
// handshake that fails or is too slow (a plain-HTTP client, a client that
// sends nothing, a wrong or missing client certificate when the context
// requires one) closes the connection without an answer and is logged as
// one warning line per 10 s (LogThrottle). Then the same session as for
// HTTP runs over the TLS stream: keep-alive, limits and 413 / 431 / 400
// answers; an over-cap connection is answered 503 after its handshake.
// Requests carry HttpRequest::tls = true and tls_peer_cn (the verified
// client certificate's subject CN; "" unless the context requires client
// certificates). A connection is ended with close_notify, bounded by 1 s;
// Stop() cancels what a connection is doing and sends close_notify the same
// way (best effort; a connection still handshaking is closed at once).
//
// No exception escapes into the io_context: the handler, its completions run
// through AnswerGuarded, and the server's own callbacks are guarded.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/io_context.hpp>

#include "http/http_types.h"
#include "security/tls_context.h"
#include "treaty/status.h"

namespace treaty {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0 picks a free port; see HttpServer::port()
  size_t max_body_bytes = 1 << 20;
  int idle_timeout_ms = 60000;     // keep-alive connections idle longer are closed
  int request_timeout_ms = 30000;  // a request must be complete this long after its first byte
  size_t max_connections = 4096;   // served at once; more are answered 503 and closed
  // Non-null: HTTPS only (see "HTTPS" above). Shared with whoever reloads it.
  std::shared_ptr<ServerTls> tls;
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

// Answers 500 through `respond` for the exception being handled and logs it as
// one line naming `where`. Call only inside a catch block. Never throws.
void AnswerCurrentException(const HttpResponder& respond, std::string_view where) noexcept;

// Runs `fn()`, a step that owes an answer through `respond` (a handler, or a
// completion callback that serializes a result). If it throws, the client
// gets 500 and the log one line naming `where`; with HttpServer's responders
// (first call wins) that is harmless when `fn` had already answered. Never
// throws: use it at every executor entry that holds a responder.
template <class Fn>
void AnswerGuarded(const HttpResponder& respond, std::string_view where, Fn&& fn) noexcept {
  try {
    std::forward<Fn>(fn)();
  } catch (...) {
    AnswerCurrentException(respond, where);
  }
}

// `respond`, wrapped so that an answer owed is never lost: when the last copy
// of the returned responder is destroyed without having been called (an
// exception unwound the task that held it, or a bug forgot it), the client
// gets 500 "the request was dropped" through `respond`. Calls after the
// first are ignored. Thread-safe like `respond`.
HttpResponder OwedResponder(HttpResponder respond);

}  // namespace treaty
