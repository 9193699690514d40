#pragma once

// ThriftParticipantCaller: calls thrift://host:port participants
// (idl/participant.thrift, ParticipantService, framed transport, binary
// protocol) with the outcome rules of docs/2pc.md "What participants receive":
//   OK -> kOk (prepare: vote READONLY sets readonly_vote; vote NO -> kBusinessFailure)
//   FAILED -> kBusinessFailure;  RETRY, any exception, time-out or
//   connection error -> kTransient.
//   A TApplicationException UNKNOWN_METHOD or WRONG_METHOD_NAME (the service
//   on that port does not know the op) or a host name that does not resolve
//   also sets config_error (still kTransient). Names are resolved by
//   TSocket::open on the call pool, never on the engine strand or io_context.
//
// Connections are pooled per host:port (up to `max_idle_per_host` idle
// ones kept). Thrift's C++ client blocks, so calls run on a small dedicated
// thread pool (`threads`, started lazily), never on the engine strand or the io_context;
// at most `threads` calls are in flight, the rest queue. A pooled connection
// that fails is closed; a failure on a reused connection is retried once on
// a fresh one (delivery is at least once anyway).
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

namespace treaty {

struct ThriftCallerOptions {
  int threads = 4;  // started on the first thrift:// call
  int max_idle_per_host = 16;
  int connect_timeout_ms = 3000;
  int idle_timeout_ms = 30000;   // pooled idle connections are closed after this
  int endpoint_idle_ms = 60000;  // an endpoint unused this long (no connection) is forgotten
};

class ThriftParticipantCaller : public ParticipantCaller {
 public:
  explicit ThriftParticipantCaller(ThriftCallerOptions options);
  ~ThriftParticipantCaller() override;

  void Call(ParticipantRequest request, Callback done) override;

  // Endpoints (host:port) the caller keeps state for now. Thread-safe.
  size_t endpoint_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty
