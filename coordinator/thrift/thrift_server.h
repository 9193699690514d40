#pragma once

// ThriftServer: treatyd's Thrift front end (--thrift HOST:PORT). Serves
// CoordinatorService (coordinator_handler.h) with the framed transport and
// the binary protocol on an Apache Thrift TNonblockingServer: `io_threads`
// libevent loops accept and read many concurrent connections; complete
// requests run on a pool of `worker_threads` (a slow request blocks one
// worker, never a connection loop).
//
// Input limits (thrift_limits.h, docs/input-rules.md): frames up to
// `max_frame_bytes` (at most limits::kThriftMaxMessageBytes; a larger
// frame closes the connection), Treaty's TConfiguration and the bounded
// binary protocol on every connection. A request refused by them, or any
// exception out of the processor, is answered with a TApplicationException
// and one warning log line; the connection and the server keep serving.
//
// Lifetime: Start() binds (port 0 picks a free one; port() tells which) and
// starts serving on its own threads; Stop() (or the destructor) stops
// accepting, lets the loops finish and joins them. The TxnService must
// outlive the server (the provider may return nullptr until it exists). Thrift exceptions never
// escape: Start() returns a Status.

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "thrift/coordinator_handler.h"

namespace treaty {

struct ThriftServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 7481;
  int io_threads = 1;
  int worker_threads = 4;
  size_t max_frame_bytes = 1 << 20;  // larger frames are refused (connection closed)
  CoordinatorHandlerOptions handler;
};

class ThriftServer {
 public:
  ThriftServer(CoordinatorHandler::ServiceProvider service, ThriftServerOptions options);
  ~ThriftServer();
  ThriftServer(const ThriftServer&) = delete;
  ThriftServer& operator=(const ThriftServer&) = delete;

  Status Start();
  uint16_t port() const;
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty
