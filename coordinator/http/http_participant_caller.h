#pragma once

// HttpParticipantCaller: calls http:// and https:// participants as docs/2pc.md "What participants
// receive" specifies (POST, JSON body {"gtid","branch","op","payload"}, Treaty-* headers,
// Idempotency-Key, traceparent, tracestate when the submitter sent one, and Treaty-Signature
// when a signing key is set). Keeps a pool of
// keep-alive connections per scheme://host:port (http and https to one host:port never share
// one), bounded by `max_connections_per_host`; calls beyond the bound queue. All I/O is async on
// `io`; no thread per call.
//
// https://: TLS over the same pooled keep-alive connections, verified against options.tls (the
// --participant-ca or the system store, optional client certificate), with SNI (for a host name)
// and the URL's host (name or IP literal) as the name the certificate must carry. The handshake
// counts within the call's time-out. A certificate that does not verify, or a TLS refusal by
// either side (no common version, a client certificate missing or untrusted), is a
// configuration error: kTransient with config_error and "certificate verify failed: ..." or
// "TLS with host:port failed: ...". Without options.tls an https:// call is kUncallable.
//
// SSRF guard (options.policy): after resolution every address is checked with
// ParticipantPolicy::CheckAddress; if any is denied, none is connected to and the call
// completes kTransient with config_error and the policy's message. Connections are made to
// the addresses checked, never by resolving the name again.
//
// Outcome mapping: 2xx -> kOk (readonly_vote when the body is
// {"vote":"readonly"}); 409 -> kBusinessFailure; anything else, a time-out
// (request.timeout_ms, covering connect+handshake+write+read) or a connection error ->
// kTransient. A stale pooled connection that fails before any byte of the
// response is read is retried once on a fresh connection. HTTP 404, 405 and
// 410, and a host name the resolver cannot resolve (any resolver error, told
// apart from a refused connection or a time-out), also set config_error:
// still kTransient, but the URL points at nothing that will ever answer.
// Names are resolved by Asio's asynchronous resolver (its own thread), never
// on an `io` thread.
//
// What goes out and comes back is made safe here, whatever the request holds
// (a log written by an older release may hold anything):
//  - the URL is parsed by ParseEndpoint, the one parser that also validates
//    submissions; a URL it refuses, or one that is not http:// or https://,
//    completes as kUncallable and nothing is sent;
//  - every header value (Treaty-Gtid, Treaty-Branch, Treaty-Op,
//    Idempotency-Key, traceparent, tracestate) is sent as printable ASCII: any other
//    byte is written \xNN and '\' as \\, so no CR, LF, NUL or other control
//    byte reaches the wire (the JSON body carries the exact values);
//  - the participant's answer text kept in `error` is an Excerpt of
//    limits::kErrorExcerptBytes: valid UTF-8, cut on a code point, no NUL.
//
// Per-endpoint state (a HostPool per scheme://host:port) is forgotten once the
// endpoint has had no call, no queued call and no connection (idle ones
// included: they close after idle_timeout_ms) for endpoint_idle_ms, so
// calling ever new hosts or ports costs no memory for good. A timer on `io`
// checks every endpoint_idle_ms / 4 while any endpoint is known.
//
// Threads: Call may be invoked from any thread; `done` is posted to `io` and
// runs on one of its threads. `io` must outlive every call in flight.
// Destroying the caller closes idle connections; calls already started still
// complete and invoke `done` while `io` runs.

#include <memory>

#include <boost/asio/io_context.hpp>

#include <boost/asio/ssl/context.hpp>

#include "engine/participant_caller.h"
#include "security/participant_policy.h"

namespace treaty {

struct HttpCallerOptions {
  int max_connections_per_host = 64;
  int connect_timeout_ms = 3000;
  int idle_timeout_ms = 30000;   // pooled idle connections are closed after this
  int endpoint_idle_ms = 60000;  // an endpoint unused this long (no connection) is forgotten
  // https:// participants: verified against this context (MakeClientTlsContext:
  // --participant-ca or the system store, optional client certificate), with
  // SNI and host name verification. Null: https:// calls complete kUncallable.
  std::shared_ptr<boost::asio::ssl::context> tls;
  // Non-empty: every call carries a Treaty-Signature header (request_signature.h).
  std::string signing_key;
  // Non-null: every resolved address is checked before connecting
  // (ParticipantPolicy::CheckAddress); a denied one is never connected to.
  std::shared_ptr<const ParticipantPolicy> policy;
};

class HttpParticipantCaller : public ParticipantCaller {
 public:
  HttpParticipantCaller(boost::asio::io_context& io, HttpCallerOptions options);
  ~HttpParticipantCaller() override;

  void Call(ParticipantRequest request, Callback done) override;

  // Endpoints (scheme://host:port) the caller keeps state for now. Thread-safe.
  size_t endpoint_count() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace treaty
