#pragma once

// Private to the SDK: serves Treaty's ParticipantService
// (idl/participant.thrift) on host:port, framed transport, binary protocol,
// and hands each call to one function. thrift_endpoint.cc is the only file
// of the participant server that includes Thrift headers; this one shows
// none of them.
//
// Serving: Treaty's one Thrift server loop, treaty::FramedThriftServer
// (coordinator/thrift/framed_thrift_server.h, the loop treatyd's front end
// runs on), without TLS. So the endpoint has the same protections as
// treatyd's Thrift port, with the limits of ThriftEndpointLimits:
// - one thread per connection, at most `max_connections` connections (one
//   accepted over the cap is closed at once; the client reads end-of-file);
// - a connection silent for `idle_timeout_ms` while a request is awaited, or
//   not taking its answer within that time, is closed; a frame must be
//   complete `request_timeout_ms` after its first byte, else the connection
//   is closed (slowloris);
// - frames of at most `max_frame_bytes`, read as they arrive; a larger one
//   closes the connection;
// - accept failures (out of descriptors) back off from 10 ms to 1 s;
// - warning lines (spdlog) start with "participant thrift".
//
// Threads: the handler runs on the connection's thread, and at most
// `handler_threads` handlers run at once across all connections: a call
// that finds them all busy waits on its connection's thread until one
// returns (what a pool of `handler_threads` workers did before this
// endpoint moved to the shared loop). The handler may block. Thrift
// exceptions never leave thrift_endpoint.cc: a handler that throws gets the
// RETRY outcome.
//
// Stopping: a call whose handler has not started when Stop() begins (one
// waiting for a handler slot, or read later) never runs: it is answered
// RETRY ("the participant server is stopping; ...") and its connection is
// then closed, so the coordinator retries it later or elsewhere. Stop()
// waits only for the handlers already running.
//
// Input rules (docs/input-rules.md): the Thrift limits of
// coordinator/thrift/thrift_limits.h (frames up to 16 MiB, strings,
// containers, nesting); gtid, branch and op must be identifiers and the
// payload JSON of depth at most 64, else the call is answered with a
// TApplicationException ("invalid request: ...") and the handler is not
// called. A request the limits refuse is answered the same way; the server
// keeps serving.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "treaty/call_context.h"
#include "treaty/participant_server.h"

namespace treaty_sdk_detail {

// The server loop's limits (see the file comment). The defaults are
// treatyd's Thrift defaults, but for frames: 16 MiB, the Thrift message
// limit of coordinator/common/limits.h (docs/input-rules.md).
struct ThriftEndpointLimits {
  int max_connections = 512;
  int idle_timeout_ms = 60000;
  int request_timeout_ms = 30000;
  size_t max_frame_bytes = size_t{16} << 20;
};

// ParticipantReply without Thrift types (see idl/participant.thrift).
struct ThriftOutcome {
  enum class Kind { kOk, kFailed, kRetry };
  Kind kind = Kind::kRetry;
  std::optional<treaty::Vote> vote;  // prepare only
  std::string message;               // why, for kFailed / kRetry
};

class ThriftEndpoint {
 public:
  // ctx.op is the method called; ctx.branch names the handler.
  using Handler = std::function<ThriftOutcome(const treaty::CallContext& ctx)>;

  // handler_threads < 1 counts as 1.
  ThriftEndpoint(std::string host, uint16_t port, int handler_threads, Handler handler,
                 ThriftEndpointLimits limits = {});
  ~ThriftEndpoint();  // Stop()

  // Binds and serves on its own threads; "" or why it cannot
  // ("cannot serve Thrift on HOST:PORT: ...", an IPv6 HOST in brackets).
  std::string Start();
  // Stops accepting, answers RETRY to calls waiting for a handler slot
  // (their handlers never run), closes connections waiting for a request,
  // waits for running handlers and joins the threads. Blocks about as long
  // as the longest running handler. Idempotent.
  void Stop();
  uint16_t port() const;  // the bound port once Start() succeeded

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty_sdk_detail
