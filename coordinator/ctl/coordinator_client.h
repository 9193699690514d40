#pragma once

// CoordinatorClient: treatyctl's way to the coordinators. Takes a list of
// base URLs (http:// or https://); each request goes to the last one that
// answered, failing over to the next on connection errors, time-outs and a
// 503 (unavailable, draining or overloaded: docs/api.md says to retry on any
// coordinator), not on other HTTP errors (a 4xx from one coordinator would be
// the same from any other). Every request treatyctl sends is safe to repeat
// on another coordinator (a saga submit or 2PC begin carries its gtid from
// the first attempt). Every request carries `Authorization: Bearer TOKEN`
// when a token is set; https:// coordinators are verified with the TLS files
// (CA, and a client certificate for coordinators that require one). One
// keep-alive HttpClient per coordinator (http/http_client.h). Blocking; one
// owner.

#include <memory>
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

  // The answer of the first coordinator that answered other than 503; the
  // last 503 when every coordinator answered 503; Unavailable (with every
  // URL tried named) when none answered; InvalidArgument for a URL, header
  // or TLS file that cannot be used. With `fail_over_on_503` false a 503 is
  // the answer (for an operator action, which the coordinator may have
  // applied before its write failed: another coordinator, not the owner,
  // would only answer 409 and hide that). Each coordinator tried gets
  // `timeout_ms`, so a request may take that times the coordinators.
  Result<HttpClientResponse> Request(const std::string& method, const std::string& path,
                                     const std::string& body = "", bool fail_over_on_503 = true);
  bool has_token() const { return !credentials_.token.empty(); }
  bool has_certificate() const { return !credentials_.tls.cert_file.empty(); }

 private:
  std::vector<std::string> urls_;
  std::vector<std::unique_ptr<HttpClient>> clients_;  // one per URL, opened on first use
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
