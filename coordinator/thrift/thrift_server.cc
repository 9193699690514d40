#include "thrift/thrift_server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <thrift/TOutput.h>
#include <thrift/concurrency/ThreadFactory.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TServerSocket.h>
#include <thrift/transport/TSocket.h>

#include "common/log_throttle.h"
#include "common/text.h"
#include "thrift/thrift_limits.h"

namespace treaty {

namespace at = apache::thrift;
using at::transport::TTransport;
using at::transport::TTransportException;

namespace {

constexpr auto kFirstAcceptDelay = std::chrono::milliseconds(10);
constexpr auto kLastAcceptDelay = std::chrono::milliseconds(1000);
constexpr uint32_t kReadChunkBytes = 64 * 1024;

// The listening socket. Its accept never gives up on a failing accept(2)
// (TServerFramework would stop serving on it): it backs off and tries
// again. A connection over the cap is closed as soon as it is accepted.
// Called by the serve thread; interrupt() from any thread.
class BackoffServerSocket : public at::transport::TServerSocket {
 public:
  BackoffServerSocket(const std::string& host, int port, int max_connections)
      : TServerSocket(host, port), max_connections_(max_connections) {}

  // How many connections are open; set before serving.
  void set_open_connections(std::function<int64_t()> open) { open_ = std::move(open); }
  // The last connection accepted (the serve thread's; see GuardedThreadedServer).
  std::shared_ptr<TTransport> last_accepted() const { return last_accepted_; }

  // Binds and listens once: Start() calls it to learn the port, serve() again.
  void listen() override {
    if (listening_) return;
    TServerSocket::listen();
    listening_ = true;
  }

  void interrupt() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      interrupted_ = true;
    }
    wake_.notify_all();
    TServerSocket::interrupt();
  }

 protected:
  std::shared_ptr<TTransport> acceptImpl() override {
    auto delay = std::chrono::milliseconds(0);
    for (;;) {
      last_accepted_.reset();
      std::shared_ptr<TTransport> client;
      try {
        client = TServerSocket::acceptImpl();
      } catch (const TTransportException& e) {
        // UNKNOWN is what a failing poll(2) or accept(2) throws; the other
        // types (INTERRUPTED, NOT_OPEN) mean the server is stopping.
        if (e.getType() != TTransportException::UNKNOWN) throw;
        delay = delay.count() == 0 ? kFirstAcceptDelay : std::min(delay * 2, kLastAcceptDelay);
        if (auto r = accept_failures_.Tick(); r.log) {
          spdlog::warn("thrift accept failed: {}{}; retrying in {} ms", EscapeControl(e.what()),
                       r.Suffix(), delay.count());
        }
        std::unique_lock<std::mutex> lock(mu_);
        if (wake_.wait_for(lock, delay, [this] { return interrupted_; })) {
          throw TTransportException(TTransportException::INTERRUPTED);
        }
        continue;
      }
      delay = std::chrono::milliseconds(0);
      const int64_t open = open_ ? open_() : 0;
      if (open < max_connections_) {
        last_accepted_ = client;
        return client;
      }
      if (auto r = refusals_.Tick(); r.log) {
        spdlog::warn("thrift connection closed at once: {} connections open, the cap is {}{}", open,
                     max_connections_, r.Suffix());
      }
      client->close();
    }
  }

 private:
  const int64_t max_connections_;
  bool listening_ = false;
  std::function<int64_t()> open_;
  std::shared_ptr<TTransport> last_accepted_;
  LogThrottle accept_failures_;
  LogThrottle refusals_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool interrupted_ = false;  // guarded by mu_
};

// Thrift Threads that failed to start. Such a Thread cannot be destroyed
// (its destructor would use the std::thread it never got), so it is kept
// for the life of the process, reachable from here. Any thread.
void KeepUnstartedThread(std::shared_ptr<at::concurrency::Thread> thread) {
  static std::mutex mu;
  static auto* threads = new std::vector<std::shared_ptr<at::concurrency::Thread>>();
  std::lock_guard<std::mutex> lock(mu);
  threads->push_back(std::move(thread));
}

// TThreadedServer whose serve loop survives a thread that cannot be
// started (std::system_error when the process is out of threads or
// memory): that connection is closed and the server goes on accepting.
class GuardedThreadedServer : public at::server::TThreadedServer {
 public:
  using TThreadedServer::TThreadedServer;
  void set_socket(BackoffServerSocket* socket) { socket_ = socket; }

 protected:
  void onClientConnected(const std::shared_ptr<at::server::TConnectedClient>& client) override {
    try {
      TThreadedServer::onClientConnected(client);
      return;
    } catch (const std::exception& e) {
      if (auto r = thread_failures_.Tick(); r.log) {
        spdlog::error("thrift: no thread for a new connection, closing it: {}{}",
                      EscapeControl(e.what()), r.Suffix());
      }
    }
    // The thread that failed to start still holds the connection: keep the
    // thread (KeepUnstartedThread) and close the connection's socket.
    std::shared_ptr<at::concurrency::Thread> unstarted;
    {
      at::concurrency::Synchronized sync(clientMonitor_);
      auto it = activeClientMap_.find(client.get());
      if (it != activeClientMap_.end()) {
        unstarted = it->second;
        activeClientMap_.erase(it);
      }
    }
    if (unstarted) KeepUnstartedThread(std::move(unstarted));
    if (socket_ && socket_->last_accepted()) {
      try {
        socket_->last_accepted()->close();
      } catch (...) {
      }
    }
  }

 private:
  BackoffServerSocket* socket_ = nullptr;
  LogThrottle thread_failures_;
};

// The processor each connection runs: reads one frame from the connection
// (memory grows with the bytes that arrive, up to `max_frame_bytes`), runs
// `inner` (a GuardedProcessor) on it through a FrameReader and the bounded
// binary protocol, and writes the answer as one frame. A transport failure
// (end-of-file, idle timeout, interrupt) ends the connection quietly in
// TConnectedClient; an oversized frame ends it with one warning line.
// Stateless; shared by all connections.
class FramedRequestProcessor : public at::TProcessor {
 public:
  FramedRequestProcessor(std::shared_ptr<at::TProcessor> inner, uint32_t max_frame_bytes)
      : inner_(std::move(inner)), max_frame_bytes_(max_frame_bytes) {}

  bool process(std::shared_ptr<at::protocol::TProtocol> in,
               std::shared_ptr<at::protocol::TProtocol> /*out*/,
               void* connection_context) override {
    std::shared_ptr<TTransport> connection = in->getTransport();
    uint8_t size_bytes[4];
    connection->readAll(size_bytes, sizeof(size_bytes));
    const uint32_t size = (uint32_t{size_bytes[0]} << 24) | (uint32_t{size_bytes[1]} << 16) |
                          (uint32_t{size_bytes[2]} << 8) | uint32_t{size_bytes[3]};
    if (size == 0 || size > max_frame_bytes_) {
      if (auto r = oversized_.Tick(); r.log) {
        spdlog::warn("thrift: closed a connection: a frame of {} bytes (the limit is {}){}", size,
                     max_frame_bytes_, r.Suffix());
      }
      throw TTransportException(TTransportException::CORRUPTED_DATA, "frame size refused");
    }
    auto frame = std::make_shared<at::transport::TMemoryBuffer>();
    std::array<uint8_t, kReadChunkBytes> chunk;
    for (uint32_t left = size; left > 0;) {
      const uint32_t n = connection->read(chunk.data(), std::min<uint32_t>(left, kReadChunkBytes));
      if (n == 0) {
        throw TTransportException(TTransportException::END_OF_FILE, "end of file inside a frame");
      }
      frame->write(chunk.data(), n);
      left -= n;
    }
    auto answer = std::make_shared<at::transport::TMemoryBuffer>();
    inner_->process(LimitedBinaryProtocol(std::make_shared<FrameReader>(frame)),
                    LimitedBinaryProtocol(answer), connection_context);
    uint8_t* bytes = nullptr;
    uint32_t length = 0;
    answer->getBuffer(&bytes, &length);
    if (length == 0) return true;  // a oneway call: nothing to answer
    std::vector<uint8_t> out(4 + length);
    out[0] = static_cast<uint8_t>(length >> 24);
    out[1] = static_cast<uint8_t>(length >> 16);
    out[2] = static_cast<uint8_t>(length >> 8);
    out[3] = static_cast<uint8_t>(length);
    std::copy(bytes, bytes + length, out.begin() + 4);
    connection->write(out.data(), static_cast<uint32_t>(out.size()));
    connection->flush();
    return true;  // a refused request was answered; the connection keeps serving
  }

 private:
  const std::shared_ptr<at::TProcessor> inner_;
  const uint32_t max_frame_bytes_;
  LogThrottle oversized_;
};

}  // namespace

struct ThriftServer::Impl {
  CoordinatorHandler::ServiceProvider service;
  ThriftServerOptions options;
  std::shared_ptr<BackoffServerSocket> socket;
  std::unique_ptr<GuardedThreadedServer> server;
  std::thread loop;
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
  // Thrift's own chatter (one line per failed accept, per closed connection)
  // goes to our log at debug level. A library global; set the same each time.
  at::GlobalOutput.setOutputFunction([](const char* msg) { spdlog::debug("thrift: {}", msg); });
  const auto fail = [&m](const std::string& why) {
    return Status::Unavailable("cannot serve Thrift on " + m.options.host + ":" +
                               std::to_string(m.options.port) + ": " + why);
  };
  try {
    auto handler = std::make_shared<CoordinatorHandler>(m.service, m.options.handler);
    // The limits of thrift_limits.h: frames up to max_frame_bytes, each read
    // through a FrameReader with Treaty's TConfiguration by the bounded
    // binary protocol; a request refused by them is answered with a
    // TApplicationException and logged, never an exit.
    auto guarded = std::make_shared<GuardedProcessor>(
        std::make_shared<rpc::CoordinatorServiceProcessor>(handler), [](const std::string& reason) {
          spdlog::warn("thrift: refused a request: {}", EscapeControl(Excerpt(reason, 200)));
        });
    auto processor = std::make_shared<FramedRequestProcessor>(
        guarded,
        static_cast<uint32_t>(std::min<size_t>(
            m.options.max_frame_bytes, static_cast<size_t>(limits::kThriftMaxMessageBytes))));
    m.socket = std::make_shared<BackoffServerSocket>(m.options.host, m.options.port,
                                                     std::max(1, m.options.max_connections));
    const int idle_ms = std::max(1, m.options.idle_timeout_ms);
    m.socket->setRecvTimeout(idle_ms);
    m.socket->setSendTimeout(idle_ms);
    m.socket->setAcceptBacklog(1024);
    // The connection transport is passed as is: FramedRequestProcessor reads
    // and writes the frames; the protocol objects only carry the transport.
    auto plain = std::make_shared<at::transport::TTransportFactory>();
    m.server = std::make_unique<GuardedThreadedServer>(
        processor, m.socket, plain, plain, LimitedBinaryProtocolFactory(),
        LimitedBinaryProtocolFactory(), std::make_shared<at::concurrency::ThreadFactory>(false));
    m.server->set_socket(m.socket.get());
    m.socket->set_open_connections(
        [server = m.server.get()] { return server->getConcurrentClientCount(); });
    // Bind here, so Start() can report the port or the failure; serve()
    // calls listen() again, which then does nothing more than return.
    m.socket->listen();
    m.port = static_cast<uint16_t>(m.socket->getPort());
  } catch (const std::exception& e) {
    m.server.reset();
    m.socket.reset();
    return fail(e.what());
  }
  m.loop = std::thread([&m] {
    try {
      m.server->serve();
    } catch (const std::exception& e) {
      spdlog::error("thrift server stopped: {}", EscapeControl(e.what()));
    }
  });
  spdlog::info("thrift front end listening on {}:{} (at most {} connections, idle timeout {} ms)",
               m.options.host, m.port, m.options.max_connections, m.options.idle_timeout_ms);
  return Status::Ok();
}

uint16_t ThriftServer::port() const { return impl_->port; }

void ThriftServer::Stop() {
  Impl& m = *impl_;
  if (!m.server) return;
  m.server->stop();  // interrupts the accept and every connection waiting for a request
  if (m.loop.joinable()) m.loop.join();
  m.server.reset();
  m.socket.reset();
}

}  // namespace treaty
