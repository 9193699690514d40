#include "ctl/coordinator_client.h"

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
    : urls_(std::move(base_urls)), timeout_ms_(timeout_ms), credentials_(std::move(credentials)) {}

Result<HttpClientResponse> CoordinatorClient::Request(const std::string& method,
                                                      const std::string& path,
                                                      const std::string& body) {
  std::string tried;
  for (size_t n = 0; n < urls_.size(); ++n) {
    const size_t i = (current_ + n) % urls_.size();
    std::map<std::string, std::string> headers;
    if (!body.empty()) headers["Content-Type"] = "application/json";
    if (!credentials_.token.empty()) headers["Authorization"] = "Bearer " + credentials_.token;
    auto r = HttpFetch(method, urls_[i] + path, body, headers, timeout_ms_, &credentials_.tls);
    if (r.ok()) {
      current_ = i;
      return r;
    }
    if (r.status().code() == StatusCode::kInvalidArgument) return r.status();
    tried += (tried.empty() ? "" : "; ") + urls_[i] + ": " + r.status().message();
  }
  return Status::Unavailable("no coordinator reachable (" + tried + ")");
}

}  // namespace treaty::ctl
