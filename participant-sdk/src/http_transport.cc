#include "http_transport.h"

#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "common/text.h"
#include "http/http_client.h"
#include "http/http_server.h"

namespace treaty_sdk_detail {

FetchReply Fetch(const std::string& method, const std::string& url, const std::string& body,
                 const std::map<std::string, std::string>& headers, int timeout_ms) {
  FetchReply out;
  auto r = treaty::HttpFetch(method, url, body, headers, timeout_ms);
  if (!r.ok()) {
    switch (r.status().code()) {
      case treaty::StatusCode::kUnavailable:
        out.error = FetchError::kUnavailable;
        break;
      case treaty::StatusCode::kTimedOut:
        out.error = FetchError::kTimedOut;
        break;
      case treaty::StatusCode::kInvalidArgument:
        out.error = FetchError::kInvalidArgument;
        break;
      default:
        out.error = FetchError::kOther;
        break;
    }
    out.error_message = r.status().message();
    return out;
  }
  out.http_status = r->status;
  out.body = std::move(r->body);
  return out;
}

struct HttpEndpoint::Impl {
  boost::asio::io_context io;
  std::unique_ptr<treaty::HttpServer> server;
  std::vector<std::thread> threads;
  int io_threads = 1;
  bool started = false;
};

HttpEndpoint::HttpEndpoint(std::string host, uint16_t port, int io_threads, EndpointHandler handler,
                           size_t max_body_bytes)
    : impl_(std::make_unique<Impl>()) {
  impl_->io_threads = io_threads < 1 ? 1 : io_threads;
  treaty::HttpServerOptions opts;
  opts.host = std::move(host);
  opts.port = port;
  opts.max_body_bytes = max_body_bytes;
  impl_->server = std::make_unique<treaty::HttpServer>(
      impl_->io, opts,
      [handler = std::move(handler)](treaty::HttpRequest req, treaty::HttpResponder respond) {
        EndpointRequest r{std::move(req.method), std::move(req.path), std::move(req.headers),
                          std::move(req.body)};
        handler(std::move(r), [respond = std::move(respond)](EndpointResponse out) {
          treaty::HttpResponse resp;
          resp.status = out.status;
          resp.body = std::move(out.body);
          respond(std::move(resp));
        });
      });
}

HttpEndpoint::~HttpEndpoint() { Stop(); }

std::string HttpEndpoint::Start() {
  auto s = impl_->server->Start();
  if (!s.ok()) return s.ToString();
  impl_->started = true;
  for (int i = 0; i < impl_->io_threads; ++i) {
    impl_->threads.emplace_back([this] {
      auto guard = boost::asio::make_work_guard(impl_->io);
      // A completion that throws must not end the thread (std::terminate):
      // log it and keep serving (io_context::run may be called again).
      while (true) {
        try {
          impl_->io.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("participant server: I/O callback threw: {}",
                        treaty::EscapeControl(e.what()));
        } catch (...) {
          spdlog::error("participant server: I/O callback threw");
        }
      }
    });
  }
  return "";
}

uint16_t HttpEndpoint::port() const { return impl_->server->port(); }

void HttpEndpoint::Stop() {
  if (!impl_ || !impl_->started) return;
  impl_->started = false;
  impl_->server->Stop();
  impl_->io.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace treaty_sdk_detail
