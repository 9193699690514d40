#pragma once

// Private to the SDK: the participant server's HTTP endpoint, over the
// coordinator's Beast layer (treaty_http, linked privately); the Client's
// side is http_coordinator.h. Its types are plain structs so that Beast and
// Asio stay inside http_transport.cc (participant_server.cc needs neither).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace treaty_sdk_detail {

struct EndpointRequest {
  std::string method;
  std::string target;                          // as sent: path and query, not decoded
  std::string path;                            // percent-decoded, without query
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string tls_peer_cn;  // HTTPS with a client CA: the client certificate's CN
};
struct EndpointResponse {
  int status = 200;
  std::string body;  // JSON
};
using EndpointResponder = std::function<void(EndpointResponse)>;
using EndpointHandler = std::function<void(EndpointRequest, EndpointResponder)>;

// An HTTP server on its own io_context and `io_threads` threads. `handler`
// runs on an I/O thread and must not block (hand work to a pool); the
// responder may be called from any thread, exactly once. A request whose
// body exceeds `max_body_bytes` is answered 413 and malformed HTTP 400
// without reaching `handler`; an exception thrown by `handler` answers 500.
// With `tls.cert_file` set it serves HTTPS only (a client CA requires client
// certificates chaining to it; the handshake fails otherwise).
struct EndpointTls {
  std::string cert_file, key_file, client_ca_file;  // PEM files; empty cert_file: HTTP
};
class HttpEndpoint {
 public:
  HttpEndpoint(std::string host, uint16_t port, int io_threads, EndpointHandler handler,
               size_t max_body_bytes, EndpointTls tls = {});
  ~HttpEndpoint();
  // "" on success, else why the TLS files or the address cannot be used;
  // *bad_tls_files tells which.
  std::string Start(bool* bad_tls_files);
  uint16_t port() const;
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty_sdk_detail
