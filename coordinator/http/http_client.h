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

// `url` is "http://host:port/path?query". Unavailable on connection errors,
// TimedOut after `timeout_ms`, InvalidArgument for a malformed URL.
Result<HttpClientResponse> HttpFetch(const std::string& method, const std::string& url,
                                     const std::string& body = "",
                                     const std::map<std::string, std::string>& headers = {},
                                     int timeout_ms = 10000);

// Splits "http://host:port/path" into its parts; port defaults to 80.
struct ParsedUrl {
  std::string scheme, host, port, target;
};
Result<ParsedUrl> ParseUrl(const std::string& url);

}  // namespace treaty
