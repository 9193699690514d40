#pragma once

// Private to the SDK: serves Treaty's ParticipantService
// (idl/participant.thrift) on host:port, framed transport, binary protocol,
// and hands each call to one function. thrift_endpoint.cc is the only file
// of the participant server that includes Thrift headers; this one shows
// none of them.
//
// Threads: one event-loop thread (bind and serve on it, so Stop() can wake
// it) and `handler_threads` workers that run the handler, which may block.
// Thrift exceptions never leave thrift_endpoint.cc: a handler that throws
// gets the RETRY outcome.
//
// Input rules (docs/input-rules.md): the Thrift limits of
// coordinator/thrift/thrift_limits.h (frames up to 16 MiB, strings,
// containers, nesting); gtid, branch and op must be identifiers and the
// payload JSON of depth at most 64, else the call is answered with a
// TApplicationException ("invalid request: ...") and the handler is not
// called. A request the limits refuse is answered the same way; the server
// keeps serving.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "treaty/call_context.h"
#include "treaty/participant_server.h"

namespace treaty_sdk_detail {

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

  ThriftEndpoint(std::string host, uint16_t port, int handler_threads, Handler handler);
  ~ThriftEndpoint();  // Stop()

  // Binds and serves on its own thread; "" or why it cannot bind.
  std::string Start();
  // Stops serving, waits for the loop thread and running handlers. Idempotent.
  void Stop();
  uint16_t port() const;  // the bound port once Start() succeeded

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty_sdk_detail
