#pragma once

// Blocking HTTP/1.1 client for tools and tests (treatyctl, test harnesses).
// One request per call on a fresh connection. Not for the engine's hot path
// (that is HttpParticipantCaller).

#include <map>
#include <string>

#include "common/status.h"

namespace treaty {

struct HttpClientResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

// `url` is an http:// URL as ParseEndpoint accepts it
// ("http://host:port/path?query"; common/endpoint.h). Unavailable on
// connection errors, TimedOut after `timeout_ms`, InvalidArgument for a URL
// ParseEndpoint refuses, a scheme other than http, an unknown method, or a
// header name or value holding a control character (CR, LF, NUL...).
// A response body over 64 MiB (declared or sent, chunked or not) fails with
// Unavailable; memory stays bounded by that, whatever Content-Length says.
Result<HttpClientResponse> HttpFetch(const std::string& method, const std::string& url,
                                     const std::string& body = "",
                                     const std::map<std::string, std::string>& headers = {},
                                     int timeout_ms = 10000);

}  // namespace treaty
