#include "thrift/thrift_server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include <spdlog/spdlog.h>
#include <thrift/TOutput.h>
#include <thrift/concurrency/ThreadFactory.h>
#include <thrift/concurrency/ThreadManager.h>
#include <thrift/server/TNonblockingServer.h>
#include <thrift/transport/TNonblockingServerSocket.h>

#include "common/text.h"
#include "thrift/thrift_limits.h"

namespace treaty {

namespace at = apache::thrift;

struct ThriftServer::Impl {
  CoordinatorHandler::ServiceProvider service;
  ThriftServerOptions options;
  std::shared_ptr<at::concurrency::ThreadManager> workers;
  std::shared_ptr<at::transport::TNonblockingServerSocket> socket;
  std::unique_ptr<at::server::TNonblockingServer> server;
  std::thread loop;
  std::atomic<bool> loop_done{false};
  uint16_t port = 0;
};

ThriftServer::ThriftServer(CoordinatorHandler::ServiceProvider service, ThriftServerOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->service = std::move(service);
  impl_->options = std::move(options);
}

ThriftServer::~ThriftServer() { Stop(); }

Status ThriftServer::Start() {
  Impl& m = *impl_;
  // Thrift's own chatter (one line per loop start, per closed connection)
  // goes to our log at debug level. A library global; set the same each time.
  at::GlobalOutput.setOutputFunction([](const char* msg) { spdlog::debug("thrift: {}", msg); });
  try {
    auto handler = std::make_shared<CoordinatorHandler>(m.service, m.options.handler);
    // The limits of thrift_limits.h: frames up to max_frame_bytes, each read
    // through a FrameReader with Treaty's TConfiguration by the bounded
    // binary protocol; a request refused by them is answered with a
    // TApplicationException and logged, never an exit.
    auto processor = std::make_shared<GuardedProcessor>(
        std::make_shared<rpc::CoordinatorServiceProcessor>(handler), [](const std::string& reason) {
          spdlog::warn("thrift: refused a request: {}", EscapeControl(Excerpt(reason, 200)));
        });
    auto protocol = LimitedBinaryProtocolFactory();
    m.workers = at::concurrency::ThreadManager::newSimpleThreadManager(
        static_cast<size_t>(std::max(1, m.options.worker_threads)));
    m.workers->threadFactory(std::make_shared<at::concurrency::ThreadFactory>());
    m.workers->start();
    m.socket =
        std::make_shared<at::transport::TNonblockingServerSocket>(m.options.host, m.options.port);
    m.server = std::make_unique<at::server::TNonblockingServer>(
        processor, LimitedServerInputTransportFactory(),
        std::make_shared<at::transport::TTransportFactory>(), protocol, protocol, m.socket,
        m.workers);
    m.server->setNumIOThreads(static_cast<size_t>(std::max(1, m.options.io_threads)));
    m.server->setMaxFrameSize(std::min<size_t>(
        m.options.max_frame_bytes, static_cast<size_t>(limits::kThriftMaxMessageBytes)));
  } catch (const std::exception& e) {
    m.server.reset();
    if (m.workers) m.workers->stop();
    return Status::Unavailable("cannot serve Thrift on " + m.options.host + ":" +
                               std::to_string(m.options.port) + ": " + e.what());
  }
  // Bind (registerEvents) and serve on the same thread: TNonblockingServer
  // remembers the registering thread as its loop thread, and stop() from
  // another thread relies on that to wake the loop.
  std::promise<std::string> bound;  // "" or why binding failed
  auto bound_future = bound.get_future();
  m.loop = std::thread([&m, &bound] {
    try {
      m.server->registerEvents(nullptr);
      m.port = static_cast<uint16_t>(m.server->getListenPort());
      bound.set_value("");
    } catch (const std::exception& e) {
      bound.set_value(e.what());
      m.loop_done = true;
      return;
    }
    try {
      m.server->serve();
    } catch (const std::exception& e) {
      spdlog::error("thrift server stopped: {}", e.what());
    }
    m.loop_done = true;
  });
  if (std::string error = bound_future.get(); !error.empty()) {
    m.loop.join();
    m.server.reset();
    m.workers->stop();
    return Status::Unavailable("cannot serve Thrift on " + m.options.host + ":" +
                               std::to_string(m.options.port) + ": " + error);
  }
  spdlog::info("thrift front end listening on {}:{}", m.options.host, m.port);
  return Status::Ok();
}

uint16_t ThriftServer::port() const { return impl_->port; }

void ThriftServer::Stop() {
  Impl& m = *impl_;
  if (!m.server) return;
  // A stop that lands before the event loop starts is lost: repeat it.
  while (m.loop.joinable() && !m.loop_done) {
    m.server->stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (m.loop.joinable()) m.loop.join();
  m.server.reset();
  if (m.workers) m.workers->stop();
  m.workers.reset();
}

}  // namespace treaty
