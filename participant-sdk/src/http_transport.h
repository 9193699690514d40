#pragma once

// The SDK's HTTP transport, over the coordinator's Beast layer (treaty_http,
// linked privately). This header deliberately uses plain types only, and
// http_transport.cc (with input_rules.cc) is the only SDK file that includes
// coordinator headers: the coordinator's treaty::Status and the SDK's
// treaty::sdk::Status must never meet in one translation unit.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace treaty_sdk_detail {

enum class FetchError { kNone, kUnavailable, kTimedOut, kInvalidArgument, kOther };

struct FetchReply {
  FetchError error = FetchError::kNone;
  std::string error_message;  // when error != kNone
  int http_status = 0;
  std::string body;
};

// One blocking request on a fresh connection.
FetchReply Fetch(const std::string& method, const std::string& url, const std::string& body,
                 const std::map<std::string, std::string>& headers, int timeout_ms);

struct EndpointRequest {
  std::string method;
  std::string path;                            // percent-decoded, without query
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
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
class HttpEndpoint {
 public:
  HttpEndpoint(std::string host, uint16_t port, int io_threads, EndpointHandler handler,
               size_t max_body_bytes);
  ~HttpEndpoint();
  // "" on success, else why the address cannot be used.
  std::string Start();
  uint16_t port() const;
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty_sdk_detail
