#pragma once

// CoordinatorClient: treatyctl's way to the coordinators. Takes a list of
// base URLs (http:// or https://); each request goes to the last one that
// answered, failing over to the next on connection errors and time-outs (not
// on HTTP errors: a 4xx from one coordinator would be the same from any
// other). Every request carries `Authorization: Bearer TOKEN` when a token
// is set; https:// coordinators are verified with the TLS files (CA, and a
// client certificate for coordinators that require one). Blocking; one
// owner; uses HttpFetch (fresh connection per request).

#include <string>
#include <vector>

#include "http/http_client.h"
#include "security/tls_context.h"

namespace treaty::ctl {

struct Credentials {
  std::string token;   // "" none; never printed
  TlsClientFiles tls;  // for https:// coordinators
};

class CoordinatorClient {
 public:
  CoordinatorClient(std::vector<std::string> base_urls, int timeout_ms,
                    Credentials credentials = {});

  // Unavailable (with every URL tried named) when no coordinator answered;
  // InvalidArgument for a URL, header or TLS file that cannot be used.
  Result<HttpClientResponse> Request(const std::string& method, const std::string& path,
                                     const std::string& body = "");
  bool has_token() const { return !credentials_.token.empty(); }
  bool has_certificate() const { return !credentials_.tls.cert_file.empty(); }

 private:
  std::vector<std::string> urls_;
  size_t current_ = 0;
  int timeout_ms_;
  Credentials credentials_;
};

// Splits "a,b,c", trimming spaces and a trailing '/'; drops empty items.
std::vector<std::string> SplitUrls(const std::string& list);

// Every URL must be an http:// or https:// URL as ParseEndpoint accepts it;
// otherwise InvalidArgument naming the --coordinator entry (1-based) and the
// rule broken.
Status CheckCoordinatorUrls(const std::vector<std::string>& urls);

}  // namespace treaty::ctl
