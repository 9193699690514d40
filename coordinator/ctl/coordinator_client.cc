#include "ctl/coordinator_client.h"

#include <map>
#include <optional>

#include "common/endpoint.h"

namespace treaty::ctl {

std::vector<std::string> SplitUrls(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '/')) item.pop_back();
    if (!item.empty()) out.push_back(item);
    start = comma + 1;
  }
  return out;
}

Status CheckCoordinatorUrls(const std::vector<std::string>& urls) {
  for (size_t i = 0; i < urls.size(); ++i) {
    const std::string field = "--coordinator URL #" + std::to_string(i + 1);
    auto ep = ParseEndpoint(urls[i], field);
    if (!ep.ok()) return ep.status();
    if (ep->scheme != "http" && ep->scheme != "https") {
      return Status::InvalidArgument(field + " must be an http:// or https:// URL");
    }
  }
  return Status::Ok();
}

CoordinatorClient::CoordinatorClient(std::vector<std::string> base_urls, int timeout_ms,
                                     Credentials credentials)
    : urls_(std::move(base_urls)),
      clients_(urls_.size()),
      timeout_ms_(timeout_ms),
      credentials_(std::move(credentials)) {}

Result<HttpClientResponse> CoordinatorClient::Request(const std::string& method,
                                                      const std::string& path,
                                                      const std::string& body,
                                                      bool fail_over_on_503) {
  std::map<std::string, std::string> headers;
  if (!body.empty()) headers["Content-Type"] = "application/json";
  if (!credentials_.token.empty()) headers["Authorization"] = "Bearer " + credentials_.token;
  std::string tried;
  std::optional<HttpClientResponse> unavailable;  // the last 503
  for (size_t n = 0; n < urls_.size(); ++n) {
    const size_t i = (current_ + n) % urls_.size();
    auto endpoint = ParseEndpoint(urls_[i] + path);
    if (!endpoint.ok()) return endpoint.status();
    if (!clients_[i]) {
      HttpClientOptions options;
      options.tls = credentials_.tls;
      options.pool_size = 1;  // treatyctl sends one request at a time
      auto client = HttpClient::Open(*endpoint, std::move(options));
      if (!client.ok()) return client.status();
      clients_[i] = std::move(*client);
    }
    auto r = clients_[i]->Send(method, endpoint->target, body, headers, timeout_ms_);
    if (r.ok() && (r->status != 503 || !fail_over_on_503)) {
      current_ = i;
      return r;
    }
    if (!r.ok() && r.status().code() == StatusCode::kInvalidArgument) return r.status();
    tried += (tried.empty() ? "" : "; ") + urls_[i] + ": " +
             (r.ok() ? "HTTP 503" : r.status().message());
    if (r.ok()) unavailable = std::move(*r);
  }
  if (unavailable) return std::move(*unavailable);
  return Status::Unavailable("no coordinator reachable (" + tried + ")");
}

}  // namespace treaty::ctl
