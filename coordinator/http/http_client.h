#pragma once

// The blocking HTTP/1.1 client of Treaty's tools and SDK: treatyctl, the
// participant SDK's REST transport to the coordinator, test harnesses. Not for
// the engine's hot path (that is HttpParticipantCaller, asynchronous).
//
// HttpClient talks to one server and keeps idle keep-alive connections;
// HttpFetch is one request on a fresh connection, for a URL.
//
// Both:
// - https verifies the server against `tls.ca_file` (the system's trust store
//   when empty), checks that the certificate names the host (a DNS name, sent
//   as SNI, or an IP address) and presents tls.cert_file/key_file as the
//   client certificate when set. A refused certificate says why
//   ("the server's certificate was refused: certificate has expired").
// - An answer is read with a bound of kMaxHttpAnswerBytes (declared or sent,
//   chunked or not; http/bounded_read.h): memory stays bounded whatever
//   Content-Length says.
// - A request with a body, or any POST or PUT, carries
//   Content-Type: application/json unless the caller's headers set one.

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/endpoint.h"
#include "security/tls_context.h"
#include "treaty/status.h"

namespace treaty {

// The largest answer body either client reads: 64 MiB.
inline constexpr uint64_t kMaxHttpAnswerBytes = 64u << 20;

struct HttpClientResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

struct HttpClientOptions {
  TlsClientFiles tls;  // used for https only
  std::string user_agent = "treaty";
  // Idle keep-alive connections kept for reuse; any number may be in use at
  // once (one per concurrent call). 0: every request on a fresh connection,
  // sent with "Connection: close".
  int pool_size = 0;
  // An idle connection older than this (ms) is closed instead of reused.
  int idle_ms = 30000;
};

// What HttpClient::Send did on the wire, so that a caller knows whether the
// request may have reached the server (and acted) although its answer says
// nothing of it.
struct HttpSendTrace {
  // The request was completely written at least once (in any round).
  bool sent = false;
  // A second try was made on a fresh connection after a reused one closed
  // with the request completely written on it: that first copy may have
  // acted, whatever the answer (or failure) of the second try says.
  bool resent = false;
};

// Thread-safe: any number of threads may call Send at once, each on its own
// connection. Every operation of a call runs on the calling thread and ends
// by the call's deadline, except a host-name lookup, which is abandoned at
// the deadline and finishes on a thread of its own. The client must outlive
// every Send in progress (an in-flight call returns its connection to it).
class HttpClient {
 public:
  // A client for `server`'s scheme, host and port (its target is ignored).
  // InvalidArgument when the scheme is not http or https, or TLS files are
  // unusable (naming the file).
  static Result<std::unique_ptr<HttpClient>> Open(const Endpoint& server,
                                                  HttpClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `method target` (target: "/path?query") with `body` and `headers`,
  // and reads the answer, all within `timeout_ms`. An idle connection is
  // reused most-recent-first, after checking that the server has not closed it
  // (IdleSocketUsable); one that fails before a single byte of the answer
  // arrives (the server closed it just as the request left) is retried once
  // on a fresh connection, so callers must only send requests that are safe to
  // repeat over a keep-alive client (every Treaty call is). A connection goes
  // back to the pool when the answer allows keep-alive.
  // Errors (messages say "<stage>: <why>", stage being resolve, connect,
  // TLS handshake, write or read):
  //   InvalidArgument  unknown method; a header name or value holding a
  //                    control character (CR, LF, NUL...); a host name that
  //                    cannot be checked against a certificate
  //   TimedOut         the deadline passed ("read: timed out after 500 ms")
  //   TooLarge         the answer body is over kMaxHttpAnswerBytes
  //   Unavailable      any other connection, TLS or protocol error
  // `*trace` (when given) says what went on the wire, for an answer and for
  // a failure alike.
  Result<HttpClientResponse> Send(const std::string& method, const std::string& target,
                                  const std::string& body,
                                  const std::map<std::string, std::string>& headers, int timeout_ms,
                                  HttpSendTrace* trace = nullptr);

  // TCP connections opened so far (a test and diagnostics figure).
  int64_t connections_opened() const;

 private:
  struct Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One request to `url` ("https://host:port/path?query" as ParseEndpoint
// accepts it; common/endpoint.h) on a fresh connection, closed afterwards.
// Errors as HttpClient::Send's, with "METHOD URL: " before the message, except
// that an answer over kMaxHttpAnswerBytes is Unavailable; also InvalidArgument
// for a URL ParseEndpoint refuses or a scheme other than http or https, and
// for unusable TLS files. `tls` may be null (system trust store, no client
// certificate).
Result<HttpClientResponse> HttpFetch(const std::string& method, const std::string& url,
                                     const std::string& body = "",
                                     const std::map<std::string, std::string>& headers = {},
                                     int timeout_ms = 10000, const TlsClientFiles* tls = nullptr);

}  // namespace treaty
