#pragma once

// Transport-neutral HTTP request/response used by the REST API and tests, so
// the API layer stays free of Beast types.

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace treaty {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // raw request target: "/v1/transactions?limit=5"
  std::string path;    // percent-decoded path without query: "/v1/transactions"
  std::map<std::string, std::string> query;    // percent-decoded query parameters
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string remote;  // "ip:port" of the peer
  bool tls = false;    // arrived over TLS
  // Subject CN of the client certificate, verified against --tls-client-ca
  // (mTLS); "" when none.
  std::string tls_peer_cn;

  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// Handles one request. `respond` must be called exactly once, from any thread,
// possibly later (long-poll `wait`).
using HttpResponder = std::function<void(HttpResponse)>;
using HttpHandler = std::function<void(HttpRequest, HttpResponder respond)>;

}  // namespace treaty
