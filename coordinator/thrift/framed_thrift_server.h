#pragma once

// FramedThriftServer: the one Thrift server loop of Treaty, shared by
// treatyd's CoordinatorService front end (thrift_server.h) and the SDK's
// ParticipantService endpoint (participant-sdk/src/thrift_endpoint.h). It
// serves any generated processor with the framed transport and the binary
// protocol on an Apache Thrift TThreadedServer: one thread per connection,
// at most `max_connections` connections. What the service does is the
// caller's: a ConnectionFactory makes each connection's processor when the
// connection is accepted.
//
// Why a thread per connection: a handler may block its thread while a call
// runs (treatyd's submitSaga with wait=true until the saga ends, a
// participant's database work). On a shared worker pool a few such calls
// held every worker and every other client waited. Here a waiting call holds
// only its own connection's thread, which its client is waiting on anyway;
// other connections are served by their own threads. The connection cap
// bounds the threads (and descriptors).
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
// - A connection whose thread cannot be started (out of threads or memory)
//   is closed; the server goes on accepting.
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
// Lifetime: Start() binds (port 0 picks a free one; port() tells which) and
// starts serving on its own threads; Stop() (or the destructor) stops
// accepting, interrupts every connection that waits for a request, waits
// for calls in progress to return and joins the threads. Thrift exceptions
// never escape: Start() returns a Status (InvalidArgument naming the option
// for unusable TLS files; Unavailable "cannot serve Thrift on HOST:PORT:
// ..." when it cannot listen, HOST bracketed when it is IPv6). Start/Stop
// from one owner thread; ReloadTls from any thread between them.
//
// Log lines start with `options.log_name` ("thrift" for treatyd, whose
// operators grep the lines docs/operations.md quotes).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <thrift/TProcessor.h>

#include "security/tls_context.h"
#include "treaty/status.h"

namespace treaty {

// What serves one accepted connection, made by the ConnectionFactory on the
// accepting thread; then used only by that connection's thread, and
// destroyed when the connection ends.
struct ThriftConnectionService {
  // The generated processor over this connection's handler (required).
  std::shared_ptr<apache::thrift::TProcessor> processor;
  // TLS only: called once, after the handshake and before the first request
  // is read in full, with the verified client certificate's subject CN (""
  // when the client presented none). May be empty.
  std::function<void(const std::string& client_common_name)> on_client_certificate;
  // Called after each answer is written: true closes the connection (the
  // callee logs why). May be empty (never close).
  std::function<bool()> close_after_answer;
};

// Makes the service of a connection accepted from `peer` ("IP:PORT",
// "[IP]:PORT" for IPv6, or "" when unknown). Runs on the accepting thread;
// must not block.
using ThriftConnectionFactory = std::function<ThriftConnectionService(const std::string& peer)>;

struct FramedThriftServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;                 // 0 picks a free port
  int max_connections = 512;         // open at once (one thread each); more are closed
  int idle_timeout_ms = 60000;       // a connection silent this long is closed
  int request_timeout_ms = 30000;    // a frame must be complete this long after its first byte
  size_t max_frame_bytes = 1 << 20;  // larger frames are refused (connection closed)
  // enabled(): TLS on every connection (client certificates required with
  // client_ca_file). ReloadTls() re-reads the files for new connections.
  TlsServerFiles tls;
  // First word of every log line ("thrift: closed a connection: ...").
  std::string log_name = "thrift";
  // How the slow-frame warning names the request time-out to operators.
  std::string request_timeout_name = "request time-out";
};

class FramedThriftServer {
 public:
  FramedThriftServer(FramedThriftServerOptions options, ThriftConnectionFactory connections);
  ~FramedThriftServer();  // Stop()
  FramedThriftServer(const FramedThriftServer&) = delete;
  FramedThriftServer& operator=(const FramedThriftServer&) = delete;

  // Binds, listens and serves on its own threads. Not again after Stop().
  Status Start();
  // The bound port once Start() succeeded, else 0.
  uint16_t port() const;
  // Whether connections are TLS with client certificates required.
  bool requires_client_cert() const;
  // Re-reads options.tls (SIGHUP); connections already open keep theirs. A
  // failure keeps the old certificates. Ok when TLS is off.
  Status ReloadTls();
  // Stops accepting, interrupts idle connections, waits for calls in
  // progress, joins the threads. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty
