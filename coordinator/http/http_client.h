#pragma once

// Blocking HTTP/1.1 client for tools and tests (treatyctl, test harnesses).
// One request per call on a fresh connection. Not for the engine's hot path
// (that is HttpParticipantCaller).

#include <map>
#include <string>

#include "security/tls_context.h"
#include "treaty/status.h"

namespace treaty {

struct HttpClientResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

// `url` is an http:// or https:// URL as ParseEndpoint accepts it
// ("https://host:port/path?query"; common/endpoint.h). https verifies the
// server against `tls->ca_file` (the system's trust store when `tls` is null
// or its ca_file empty), checks that the certificate names the URL's host (a
// DNS name, sent as SNI, or an IP address) and presents tls->cert_file as
// client certificate when set. A request with a body, or any POST or PUT,
// carries Content-Type: application/json unless `headers` sets one.
// Unavailable on connection and TLS errors (a refused server certificate
// says why, e.g. "certificate has expired"), TimedOut after `timeout_ms`,
// InvalidArgument for a URL ParseEndpoint refuses, a scheme other than http
// or https, an unknown method, unusable TLS files, or a header name or value
// holding a control character (CR, LF, NUL...).
// A response body over 64 MiB (declared or sent, chunked or not) fails with
// Unavailable; memory stays bounded by that, whatever Content-Length says.
Result<HttpClientResponse> HttpFetch(const std::string& method, const std::string& url,
                                     const std::string& body = "",
                                     const std::map<std::string, std::string>& headers = {},
                                     int timeout_ms = 10000, const TlsClientFiles* tls = nullptr);

}  // namespace treaty
