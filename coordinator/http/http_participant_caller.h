#pragma once

// HttpParticipantCaller: calls http:// participants as docs/2pc.md "What participants receive"
// specifies (POST, JSON body {"gtid","branch","op","payload"}, Treaty-* headers, Idempotency-Key,
// traceparent). Keeps a pool of keep-alive connections per host:port, bounded by
// `max_connections_per_host`; calls beyond the bound queue. All I/O is async on `io`; no thread per
// call.
//
// Outcome mapping: 2xx -> kOk (readonly_vote when the body is
// {"vote":"readonly"}); 409 -> kBusinessFailure; anything else, a time-out
// (request.timeout_ms, covering connect+write+read) or a connection error ->
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
//    submissions; a URL it refuses, or one that is not http://, completes as
//    kUncallable and nothing is sent;
//  - every header value (Treaty-Gtid, Treaty-Branch, Treaty-Op,
//    Idempotency-Key, traceparent) is sent as printable ASCII: any other
//    byte is written \xNN and '\' as \\, so no CR, LF, NUL or other control
//    byte reaches the wire (the JSON body carries the exact values);
//  - the participant's answer text kept in `error` is an Excerpt of
//    limits::kErrorExcerptBytes: valid UTF-8, cut on a code point, no NUL.
//
// Per-endpoint state (a HostPool per host:port) is forgotten once the
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

#include "engine/participant_caller.h"

namespace treaty {

struct HttpCallerOptions {
  int max_connections_per_host = 64;
  int connect_timeout_ms = 3000;
  int idle_timeout_ms = 30000;   // pooled idle connections are closed after this
  int endpoint_idle_ms = 60000;  // an endpoint unused this long (no connection) is forgotten
};

class HttpParticipantCaller : public ParticipantCaller {
 public:
  HttpParticipantCaller(boost::asio::io_context& io, HttpCallerOptions options);
  ~HttpParticipantCaller() override;

  void Call(ParticipantRequest request, Callback done) override;

  // Endpoints (host:port) the caller keeps state for now. Thread-safe.
  size_t endpoint_count() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace treaty
