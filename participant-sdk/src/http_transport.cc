#include "http_transport.h"

#include <optional>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "common/mutex.h"
#include "common/text.h"
#include "http/http_server.h"

namespace treaty_sdk_detail {

// How long Stop() lets the I/O threads close the open connections.
constexpr int64_t kStopGraceMs = 1500;

struct HttpEndpoint::Impl {
  boost::asio::io_context io;
  treaty::HttpServerOptions options;
  treaty::HttpHandler handler;
  EndpointTls tls;
  std::unique_ptr<treaty::HttpServer> server;  // made by Start()
  std::vector<std::thread> threads;
  int io_threads = 1;
  bool started = false;
  // Keeps the I/O threads running until Stop().
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
  // How many I/O threads have not returned yet; Stop() waits on it.
  treaty::Mutex mu;
  treaty::CondVar ended;
  int running TREATY_GUARDED_BY(mu) = 0;
};

HttpEndpoint::HttpEndpoint(std::string host, uint16_t port, int io_threads, EndpointHandler handler,
                           size_t max_body_bytes, EndpointTls tls)
    : impl_(std::make_unique<Impl>()) {
  impl_->io_threads = io_threads < 1 ? 1 : io_threads;
  impl_->options.host = std::move(host);
  impl_->options.port = port;
  impl_->options.max_body_bytes = max_body_bytes;
  impl_->tls = std::move(tls);
  impl_->handler = [handler = std::move(handler)](treaty::HttpRequest req,
                                                  treaty::HttpResponder respond) {
    EndpointRequest r{std::move(req.method),  std::move(req.target), std::move(req.path),
                      std::move(req.headers), std::move(req.body),   std::move(req.tls_peer_cn)};
    handler(std::move(r), [respond = std::move(respond)](EndpointResponse out) {
      treaty::HttpResponse resp;
      resp.status = out.status;
      resp.body = std::move(out.body);
      respond(std::move(resp));
    });
  };
}

HttpEndpoint::~HttpEndpoint() { Stop(); }

std::string HttpEndpoint::Start(bool* bad_tls_files) {
  *bad_tls_files = false;
  if (!impl_->tls.cert_file.empty()) {
    auto tls = treaty::ServerTls::Load(treaty::TlsServerFiles{
        impl_->tls.cert_file, impl_->tls.key_file, impl_->tls.client_ca_file});
    if (!tls.ok()) {
      *bad_tls_files = true;
      return tls.status().message();
    }
    impl_->options.tls = *tls;
  }
  impl_->server = std::make_unique<treaty::HttpServer>(impl_->io, impl_->options, impl_->handler);
  auto s = impl_->server->Start();
  if (!s.ok()) return s.ToString();
  impl_->started = true;
  impl_->work.emplace(impl_->io.get_executor());
  {
    treaty::MutexLock lock(&impl_->mu);
    impl_->running = impl_->io_threads;
  }
  for (int i = 0; i < impl_->io_threads; ++i) {
    impl_->threads.emplace_back([this] {
      // A completion that throws must not end the thread (std::terminate):
      // log it and keep serving (io_context::run may be called again).
      while (true) {
        try {
          impl_->io.run();
          {
            treaty::MutexLock lock(&impl_->mu);
            --impl_->running;
          }
          impl_->ended.NotifyAll();
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

uint16_t HttpEndpoint::port() const { return impl_->server ? impl_->server->port() : 0; }

void HttpEndpoint::Stop() {
  if (!impl_ || !impl_->started) return;
  impl_->started = false;
  impl_->server->Stop();
  // server->Stop() posts each connection's close to the I/O threads: let
  // them run it (the clients see their connections closed now, not when
  // this endpoint is destroyed), bounded by kStopGraceMs (a TLS close_notify
  // takes up to 1 s), then stop what is left.
  impl_->work.reset();
  {
    treaty::MutexLock lock(&impl_->mu);
    impl_->ended.WaitFor(&impl_->mu, kStopGraceMs,
                         [this]() TREATY_REQUIRES(impl_->mu) { return impl_->running == 0; });
  }
  impl_->io.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace treaty_sdk_detail
