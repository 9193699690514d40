#pragma once

// CoordinatorClient: treatyctl's way to the coordinators. Takes a list of
// base URLs; each request goes to the last one that answered, failing over
// to the next on connection errors and time-outs (not on HTTP errors: a 4xx
// from one coordinator would be the same from any other). Blocking; one
// owner; uses HttpFetch (fresh connection per request).

#include <string>
#include <vector>

#include "http/http_client.h"

namespace treaty::ctl {

class CoordinatorClient {
 public:
  CoordinatorClient(std::vector<std::string> base_urls, int timeout_ms);

  // Unavailable (with every URL tried named) when no coordinator answered.
  Result<HttpClientResponse> Request(const std::string& method, const std::string& path,
                                     const std::string& body = "");

 private:
  std::vector<std::string> urls_;
  size_t current_ = 0;
  int timeout_ms_;
};

// Splits "a,b,c", trimming spaces and a trailing '/'; drops empty items.
std::vector<std::string> SplitUrls(const std::string& list);

// Every URL must be an http:// URL as ParseEndpoint accepts it; otherwise
// InvalidArgument naming the --coordinator entry (1-based) and the rule broken.
Status CheckCoordinatorUrls(const std::vector<std::string>& urls);

}  // namespace treaty::ctl
