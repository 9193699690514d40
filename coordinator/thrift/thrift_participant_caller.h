#pragma once

// ThriftParticipantCaller: calls thrift://host:port and thrifts://host:port
// (Thrift over TLS) participants (idl/participant.thrift, ParticipantService,
// framed transport, binary protocol) with the outcome rules of docs/2pc.md
// "What participants receive":
//   OK -> kOk (prepare: vote READONLY sets readonly_vote; vote NO -> kBusinessFailure)
//   FAILED -> kBusinessFailure;  RETRY, any exception, time-out or
//   connection error -> kTransient.
//   A TApplicationException UNKNOWN_METHOD or WRONG_METHOD_NAME (the service
//   on that port does not know the op) or a host name that does not resolve
//   also sets config_error (still kTransient).
//
// Time-out: every call ends within request.timeout_ms of its start on the
// call pool (lookup, connects, TLS handshake, write and read together),
// however slowly a participant sends: a peer trickling its handshake or its
// reply byte by byte is cut off at the deadline (SocketDeadline,
// socket_deadline.h), kTransient "... timed out after N ms". A lookup that
// outlives the deadline is abandoned (it finishes on a thread of its own).
//
// Connecting: the caller resolves the host itself (getaddrinfo, on the call
// pool, never on the engine strand or io_context), checks every address with
// options.policy when set (ParticipantPolicy::CheckAddress; one denied
// address: none is connected to, the call completes kTransient with
// config_error and the policy's message), then connects to the checked
// addresses in order (connect_timeout_ms each), never to the name again.
// thrifts://: TLS 1.2 or newer over that connection, the participant's
// certificate verified against tls.ca_file (or the system's trust store)
// with the URL's host as SNI and as the name the certificate must carry (a
// DNS subjectAltName, wildcards allowed, or, for a URL whose host is an IP
// literal, an IP subjectAltName equal to it: ExpectPeerName, as for
// https://); tls.cert_file/key_file: a client certificate
// (mTLS). The handshake runs when the connection opens. A certificate that does not verify, or a
// TLS refusal by the participant, is a configuration error (kTransient, config_error, "certificate
// verify failed: ..." or "TLS with ... failed: ..."); so are TLS files that cannot be loaded (tried
// again at the next thrifts:// call).
//
// Connections are pooled per scheme://host:port (thrift and thrifts to one
// host:port never share one; up to `max_idle_per_host` idle
// ones kept). Thrift's C++ client blocks, so calls run on a small dedicated
// thread pool (`threads`, started lazily), never on the engine strand or the io_context;
// at most `threads` calls are in flight, the rest queue. A pooled connection
// that fails is closed; a failure on a reused connection is retried once on
// a fresh one within the same deadline (delivery is at least once anyway),
// unless it timed out.
//
// Idle pooled connections are closed after `idle_timeout_ms`; an endpoint
// with no call in flight and no idle connection for `endpoint_idle_ms` is
// forgotten (a timer on the call pool checks every endpoint_idle_ms / 4
// while any endpoint is known), so calling ever new hosts or ports costs no
// memory or sockets for good.
//
// Thread-safe. The destructor stops taking work, waits for calls in flight
// (each bounded by its time-out) and drops queued ones without answering.

#include <memory>

#include "engine/participant_caller.h"
#include "security/participant_policy.h"
#include "security/tls_context.h"

namespace treaty {

struct ThriftCallerOptions {
  int threads = 4;  // started on the first thrift:// call
  int max_idle_per_host = 16;
  int connect_timeout_ms = 3000;
  int idle_timeout_ms = 30000;   // pooled idle connections are closed after this
  int endpoint_idle_ms = 60000;  // an endpoint unused this long (no connection) is forgotten
  // thrifts:// participants: TLS verified against tls.ca_file (or the system
  // store) with host name verification; tls.cert_file/key_file: client certificate.
  TlsClientFiles tls;
  // Non-null: resolved addresses are checked before connecting (ParticipantPolicy).
  std::shared_ptr<const ParticipantPolicy> policy;
};

class ThriftParticipantCaller : public ParticipantCaller {
 public:
  explicit ThriftParticipantCaller(ThriftCallerOptions options);
  ~ThriftParticipantCaller() override;

  void Call(ParticipantRequest request, Callback done) override;

  // Endpoints (scheme://host:port) the caller keeps state for now. Thread-safe.
  size_t endpoint_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty
