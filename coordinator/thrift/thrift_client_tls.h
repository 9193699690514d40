#pragma once

// The client side of a Thrift connection, plain or over TLS, shared by
// treatyd's calls to thrift:// and thrifts:// participants
// (thrift_participant_connection.h) and the SDK's calls to thrift:// and
// thrifts:// coordinators (participant-sdk/src/thrift_coordinator.h), so that
// there is one TLS Thrift client in Treaty.
//
// ConnectThriftSocket resolves the name itself (getaddrinfo), lets the caller
// check every address before any is connected to, connects to a checked
// address (never to the name again) and, with a ClientTlsFactory, runs the
// TLS handshake at once:
//   - TLS 1.2 or newer, the server's certificate verified against
//     TlsClientFiles::ca_file or, when empty, the system's trust store;
//   - the URL's host is the name the certificate must carry
//     (security/peer_name.h ExpectPeerName: a DNS subjectAltName, wildcards
//     but no partial ones, or an IP subjectAltName equal to an IP literal
//     host), and is sent as SNI (Thrift sends an IP literal host too);
//   - a client certificate when TlsClientFiles::cert_file/key_file are set.
// Everything blocks, and the whole open (name lookup, the connects, the
// handshake) ends by ThriftConnectOptions::deadline: the lookup runs on a
// thread of its own and is abandoned at the deadline (it finishes in the
// background), each connect is bounded by timeout_ms and the deadline, and
// the handshake by the deadline however slowly the server sends
// (SocketDeadline, socket_deadline.h). A call on the socket afterwards is
// bounded by its caller the same way: a SocketDeadline around the call.
//
// TLS failures are sorted (TlsFailure) so that each caller can word them:
// a refused server certificate with OpenSSL's reason ("certificate has
// expired", "hostname mismatch"), a refusal by the server (a TLS alert, no
// common protocol version, a server that speaks no TLS), or a passing fault.
// With TLS 1.3 a server refuses a missing client certificate only after the
// client's handshake completed: TlsRefusalAfterExchange tells it apart once
// the first exchange on a fresh connection failed.
//
// SIGPIPE: OpenSSL writes with send(2) without MSG_NOSIGNAL, so writing to (or
// shutting down) a TLS connection the peer hung up raises SIGPIPE, which must
// not end the process. Threads that only ever run such calls block it for
// good (BlockSigpipeOnThisThread); any other thread (an application's, a
// destructor's) holds a ScopedSigpipeBlock while it calls, opens or closes
// a TLS connection.
//
// Thrift exceptions never leave thrift_client_tls.cc; the sockets it returns
// throw them as any Thrift socket does.

#include <signal.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <thrift/transport/TSocket.h>
#include <boost/asio/ip/address.hpp>

#include "common/endpoint.h"
#include "common/socket_deadline.h"
#include "security/tls_context.h"
#include "treaty/status.h"

namespace treaty {

// The TLS client context of Thrift calls (Thrift's socket factory owns
// OpenSSL's context). Thread-safe once made; shared by every connection it
// opens.
class ClientTlsFactory;

// Loads `files` (the same checks and messages as MakeClientTlsContext:
// InvalidArgument naming the file that cannot be used, or a key that does
// not match its certificate). Blocks reading the files. Never throws.
[[nodiscard]] Result<std::shared_ptr<ClientTlsFactory>> MakeClientTlsFactory(
    const TlsClientFiles& files);

// Why a TLS handshake (or the first exchange after it) failed.
struct TlsFailure {
  enum class Kind {
    kNone,         // no TLS refusal: a passing fault (a reset, a time-out) or not TLS
    kCertificate,  // the server's certificate was refused
    kRefused,      // the server refused this client or speaks no common TLS (an alert)
  };
  Kind kind = Kind::kNone;
  // kCertificate: OpenSSL's reason ("certificate has expired", "hostname
  // mismatch"); kRefused: the TLS error ("... tlsv13 alert certificate
  // required"). At most limits::kErrorExcerptBytes of it.
  std::string reason;
  // kCertificate: the certificate verifies but does not name the host.
  bool name_mismatch = false;
};

struct ThriftConnectOptions {
  // The TCP connect to each address is bounded by this (milliseconds), and
  // when `deadline` is unset the whole open too.
  int timeout_ms = 3000;
  // The whole open (lookup, connects, TLS handshake) ends by this time;
  // time_point::max() (the default): timeout_ms after the call starts.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // When set, called with every address the host resolved to, before any
  // is connected to; one that is not ok refuses them all (its message is
  // the failure's error).
  std::function<Status(const boost::asio::ip::address&)> check_address;
};

struct ThriftConnectFailure {
  enum class Stage { kResolve, kAddressCheck, kConnect, kTls };
  Stage stage = Stage::kConnect;
  // Why, naming no peer: "host 'H' does not resolve", the check's message,
  // "Connection refused", "connect timed out after N ms", the TLS error,
  // "timed out" (the deadline passed during the lookup or the handshake).
  std::string error;
  // A configuration problem rather than a passing fault: a name that does
  // not exist, a refused address, a TLS refusal (tls.kind != kNone).
  bool config_error = false;
  // The deadline (or a connect's timeout_ms) passed: a passing fault, which
  // the caller reports as a time-out.
  bool timed_out = false;
  TlsFailure tls;  // with kTls
};

// A socket connected to `endpoint` (TLS handshake done when `tls` is
// non-null), carrying the limits of thrift_limits.h (ThriftConfiguration),
// with TCP_NODELAY and `options.timeout_ms` as its send and receive time-out
// (the caller sets its own per call, and bounds the call with a
// SocketDeadline). Null with `failure` set when it cannot. Blocks until
// options.deadline at most; never throws. Thread-safe. SIGPIPE: see above.
std::shared_ptr<apache::thrift::transport::TSocket> ConnectThriftSocket(
    const Endpoint& endpoint, const std::shared_ptr<ClientTlsFactory>& tls,
    const ThriftConnectOptions& options, ThriftConnectFailure& failure);

// After the first exchange on a fresh `socket` (from ConnectThriftSocket)
// failed with `what`: whether the server refused the TLS connection, e.g.
// "tlsv13 alert certificate required" (the alert may still be unread when a
// write failed first; it is read here without blocking). kNone for a plain
// socket or any other failure. Never throws.
TlsFailure TlsRefusalAfterExchange(apache::thrift::transport::TSocket& socket,
                                   const std::string& what);

// Sets `socket`'s send and receive time-outs to what is left of `limit` (at
// least 1 ms), so that each read and write ends by the deadline on its own
// and the watchdog only has to cut off a peer that trickles. Throws what
// TSocket's setters throw (TTransportException).
void SetTimeoutsUntil(apache::thrift::transport::TSocket& socket, const SocketDeadline& limit);

// Blocks SIGPIPE on the calling thread for good (a write then fails with
// EPIPE); for threads that run only Thrift calls.
void BlockSigpipeOnThisThread();

// Blocks SIGPIPE for the scope, then discards one raised meanwhile and
// restores the thread's mask (a SIGPIPE already blocked stays blocked, and
// pending ones are left for their owner).
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock();
  ~ScopedSigpipeBlock();
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  sigset_t pipe_, old_;
};

}  // namespace treaty
