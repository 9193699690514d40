#pragma once

// ThriftServer: treatyd's Thrift front end (--thrift HOST:PORT). Serves
// CoordinatorService (coordinator_handler.h) on the shared Thrift server
// loop, FramedThriftServer (framed_thrift_server.h): framed transport,
// binary protocol, one thread per connection, at most `max_connections`
// connections. Everything that is not CoordinatorService is that loop's, and
// its header comment is the contract:
// - why a thread per connection (a submitSaga with wait=true blocks its
//   thread until the saga ends, bounded by the handler's call_timeout_ms;
//   it holds only its own connection's thread);
// - bounded resources: the connection cap, the idle and request timeouts,
//   accept-failure backoff (docs/operations.md, "What happens when ...");
// - input limits: frames of at most `max_frame_bytes` (at most
//   limits::kThriftMaxMessageBytes), the bounded binary protocol and the
//   GuardedProcessor of thrift_limits.h (docs/input-rules.md);
// - TLS and mTLS (options.tls; docs/security.md "TLS") and ReloadTls();
// - Start/Stop and their Status. The log lines start with "thrift" and name
//   --thrift-request-timeout-ms, as docs/operations.md quotes them.
//
// Authentication (options.handler.auth set; coordinator_handler.h): each
// connection has its own CoordinatorHandler and ThriftConnection, made when
// it is accepted (the loop's ThriftConnectionFactory; no state is shared
// between connections). The identity comes from authenticate(token), or,
// over mTLS, from the verified client certificate's subject CN when the
// tokens file names it (looked up once, right after the handshake). After
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
// the option for unusable TLS files; Unavailable "cannot serve Thrift on
// HOST:PORT: ...", an IPv6 HOST in brackets). Start/Stop from one owner
// thread; ReloadTls from any thread between them.

#include <cstdint>
#include <memory>
#include <string>

#include "security/tls_context.h"
#include "thrift/coordinator_handler.h"
#include "treaty/status.h"

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
