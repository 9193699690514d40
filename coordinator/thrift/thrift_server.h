#pragma once

// ThriftServer: treatyd's Thrift front end (--thrift HOST:PORT). Serves
// CoordinatorService (coordinator_handler.h) with the framed transport and
// the binary protocol on an Apache Thrift TThreadedServer: one thread per
// connection, at most `max_connections` connections.
//
// Why a thread per connection: CoordinatorHandler blocks its thread while a
// call runs, and submitSaga with wait=true blocks until the saga ends
// (bounded by the handler's call_timeout_ms). On a shared worker pool four
// such calls held every worker and every other client waited. Here a
// waiting call holds only its own connection's thread, which its client is
// waiting on anyway; other connections are served by their own threads. The
// connection cap bounds the threads (and descriptors).
//
// Bounded resources (docs/operations.md, "What happens when ..."):
// - A connection accepted while `max_connections` are open is closed at
//   once (the client reads end-of-file); open ones are not disturbed. One
//   warning line per 10 s says so (LogThrottle).
// - A connection on which no byte arrives for `idle_timeout_ms` while the
//   server waits for (the rest of) a request is closed; so is one that does
//   not take its answer within that time. A connection the client closed
//   is closed by the server at once (its thread sees end-of-file).
// - Once the first byte of a frame has arrived, the whole frame must arrive
//   within `request_timeout_ms`, else the connection is closed (a client
//   trickling a byte just inside the idle timeout would otherwise hold its
//   connection, and its slot under the cap, forever). One warning line per
//   10 s says so (LogThrottle). The time to run the call and write the
//   answer is not counted.
// - When accept fails (EMFILE, ENFILE, ENOBUFS...), the accept loop waits
//   10 ms, doubling up to 1 s while it keeps failing, and logs one warning
//   line per 10 s with a count; it never spins and never stops serving.
//
// Input limits (thrift_limits.h, docs/input-rules.md): each request is one
// frame of at most `max_frame_bytes` (at most limits::kThriftMaxMessageBytes;
// a larger one closes the connection), read into memory as it arrives
// (memory grows with the bytes received, not with the declared length), then
// parsed through a FrameReader by the bounded binary protocol under a
// GuardedProcessor: a request refused by them, or any exception out of the
// processor, is answered with a TApplicationException and one warning log
// line; the connection and the server keep serving.
//
// TLS (options.tls enabled; docs/security.md "TLS"): every connection is
// TLS 1.2 or newer with the certificate chain and key of the files; with
// client_ca_file a client must present a certificate that chains to it
// (mTLS: OpenSSL's chain check; no host name check of clients). The
// handshake runs on the connection's own thread at its first read, bounded
// like a request: each wait at most `idle_timeout_ms`, the whole handshake
// at most `request_timeout_ms`. A client that fails it (a plain Thrift
// client, an unknown CA, no certificate under mTLS, a timeout) has only its
// own connection closed, with one warning line per 10 s (LogThrottle).
// ReloadTls() re-reads the files: connections accepted later use them, open
// ones keep theirs; a failure keeps the old ones and returns the error.
// OpenSSL writes to the socket itself, so a TLS connection's thread blocks
// SIGPIPE for itself: a client that hangs up never ends the process.
//
// Authentication (options.handler.auth set; coordinator_handler.h): each
// connection has its own CoordinatorHandler and ThriftConnection, made when
// it is accepted (a TProcessorFactory; no state is shared between
// connections). The identity comes from authenticate(token), or, over mTLS,
// from the verified client certificate's subject CN when the tokens file
// names it (looked up once, right after the handshake). After
// kMaxFailedAuthentications wrong tokens the connection is closed once that
// answer is written (one warning line per 10 s).
//
// Lifetime: Start() binds (port 0 picks a free one; port() tells which) and
// starts serving on its own threads; Stop() (or the destructor) stops
// accepting, interrupts every connection that waits for a request, waits
// for calls in progress to return (each bounded by the handler's
// call_timeout_ms) and joins the threads. The TxnService must outlive the
// server (the provider may return nullptr until it exists). Thrift
// exceptions never escape: Start() returns a Status (InvalidArgument naming
// the option for unusable TLS files). Start/Stop from one owner thread;
// ReloadTls from any thread between them.

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "security/tls_context.h"
#include "thrift/coordinator_handler.h"

namespace treaty {

struct ThriftServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 7481;
  int max_connections = 512;         // open at once (one thread each); more are closed
  int idle_timeout_ms = 60000;       // a connection silent this long is closed
  int request_timeout_ms = 30000;    // a frame must be complete this long after its first byte
  size_t max_frame_bytes = 1 << 20;  // larger frames are refused (connection closed)
  CoordinatorHandlerOptions handler;
  // enabled(): TLS on every connection (client certificates required with
  // client_ca_file). ReloadTls() re-reads the files for new connections.
  TlsServerFiles tls;
};

class ThriftServer {
 public:
  ThriftServer(CoordinatorHandler::ServiceProvider service, ThriftServerOptions options);
  ~ThriftServer();
  ThriftServer(const ThriftServer&) = delete;
  ThriftServer& operator=(const ThriftServer&) = delete;

  Status Start();
  uint16_t port() const;
  // Re-reads options.tls (SIGHUP); connections already open keep theirs. A
  // failure keeps the old certificates. Ok when TLS is off.
  Status ReloadTls();
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty
