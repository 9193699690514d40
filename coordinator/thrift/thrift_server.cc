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

// The reads of one frame on a connection, under the frame's deadline: from
// the first byte of the frame, the whole frame must arrive within
// `request_ms`. Each read waits at most the idle timeout and at most the
// time left (the socket's receive timeout is lowered to it), so a client
// that sends a byte just inside the idle timeout is still cut at the
// deadline. Restores the idle timeout when destroyed. One connection's
// thread.
class FrameDeadline {
 public:
  // `connection` is the accepted socket (its receive timeout is adjusted)
  // or another transport (then only the elapsed time is checked).
  FrameDeadline(TTransport& connection, int idle_ms, int request_ms)
      : connection_(connection),
        socket_(dynamic_cast<at::transport::TSocket*>(&connection)),
        idle_ms_(idle_ms),
        deadline_(std::chrono::steady_clock::now() + std::chrono::milliseconds(request_ms)) {}
  ~FrameDeadline() {
    if (socket_ && lowered_) socket_->setRecvTimeout(idle_ms_);
  }
  FrameDeadline(const FrameDeadline&) = delete;
  FrameDeadline& operator=(const FrameDeadline&) = delete;

  // Reads 1..len bytes. Throws TTransportException: END_OF_FILE (the peer
  // closed), TIMED_OUT (idle timeout, or the deadline when expired() says
  // so), or whatever the socket throws.
  uint32_t Read(uint8_t* buf, uint32_t len) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      expired_ = true;
      throw TTransportException(TTransportException::TIMED_OUT, "frame deadline passed");
    }
    if (socket_) {
      socket_->setRecvTimeout(static_cast<int>(std::min<int64_t>(idle_ms_, left.count())));
      lowered_ = true;
    }
    uint32_t n = 0;
    try {
      n = connection_.read(buf, len);
    } catch (const TTransportException& e) {
      if (e.getType() == TTransportException::TIMED_OUT &&
          std::chrono::steady_clock::now() >= deadline_) {
        expired_ = true;
      }
      throw;
    }
    if (n == 0) {
      throw TTransportException(TTransportException::END_OF_FILE, "end of file inside a frame");
    }
    return n;
  }
  // Whether the last failed Read failed because the deadline had passed.
  bool expired() const { return expired_; }

 private:
  TTransport& connection_;
  at::transport::TSocket* const socket_;
  const int idle_ms_;
  const std::chrono::steady_clock::time_point deadline_;
  bool lowered_ = false;
  bool expired_ = false;
};

// The processor each connection runs: reads one frame from the connection
// (memory grows with the bytes that arrive, up to `max_frame_bytes`; from
// its first byte the whole frame must arrive within `request_timeout_ms`,
// see FrameDeadline, else the connection is closed with a warning line), runs
// `inner` (a GuardedProcessor) on it through a FrameReader and the bounded
// binary protocol, and writes the answer as one frame. A transport failure
// (end-of-file, idle timeout, interrupt) ends the connection quietly in
// TConnectedClient; an oversized frame ends it with one warning line.
// Stateless; shared by all connections.
class FramedRequestProcessor : public at::TProcessor {
 public:
  FramedRequestProcessor(std::shared_ptr<at::TProcessor> inner, uint32_t max_frame_bytes,
                         int idle_timeout_ms, int request_timeout_ms)
      : inner_(std::move(inner)),
        max_frame_bytes_(max_frame_bytes),
        idle_timeout_ms_(idle_timeout_ms),
        request_timeout_ms_(request_timeout_ms) {}

  bool process(std::shared_ptr<at::protocol::TProtocol> in,
               std::shared_ptr<at::protocol::TProtocol> /*out*/,
               void* connection_context) override {
    std::shared_ptr<TTransport> connection = in->getTransport();
    // Between frames the client may stay silent up to the idle timeout (the
    // socket's receive timeout); the frame's deadline starts with its first
    // byte.
    uint8_t size_bytes[4];
    uint32_t got = connection->read(size_bytes, sizeof(size_bytes));
    if (got == 0) throw TTransportException(TTransportException::END_OF_FILE, "connection closed");
    auto frame = std::make_shared<at::transport::TMemoryBuffer>();
    {
      FrameDeadline deadline(*connection, idle_timeout_ms_, request_timeout_ms_);
      try {
        ReadFrame(deadline, size_bytes, got, *frame);
      } catch (const TTransportException& e) {
        if (deadline.expired()) {
          if (auto r = slow_frames_.Tick(); r.log) {
            spdlog::warn(
                "thrift: closed a connection: its frame was not complete {} ms after its first "
                "byte (--thrift-request-timeout-ms){}",
                request_timeout_ms_, r.Suffix());
          }
        }
        throw;
      }
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
  // The rest of the frame header (`got` of its 4 bytes are in `size_bytes`),
  // then the frame's body into `frame`, every read under `deadline`.
  void ReadFrame(FrameDeadline& deadline, uint8_t (&size_bytes)[4], uint32_t got,
                 at::transport::TMemoryBuffer& frame) {
    while (got < sizeof(size_bytes)) {
      got += deadline.Read(size_bytes + got, static_cast<uint32_t>(sizeof(size_bytes)) - got);
    }
    const uint32_t size = (uint32_t{size_bytes[0]} << 24) | (uint32_t{size_bytes[1]} << 16) |
                          (uint32_t{size_bytes[2]} << 8) | uint32_t{size_bytes[3]};
    if (size == 0 || size > max_frame_bytes_) {
      if (auto r = oversized_.Tick(); r.log) {
        spdlog::warn("thrift: closed a connection: a frame of {} bytes (the limit is {}){}", size,
                     max_frame_bytes_, r.Suffix());
      }
      throw TTransportException(TTransportException::CORRUPTED_DATA, "frame size refused");
    }
    std::array<uint8_t, kReadChunkBytes> chunk;
    for (uint32_t left = size; left > 0;) {
      const uint32_t n = deadline.Read(chunk.data(), std::min<uint32_t>(left, kReadChunkBytes));
      frame.write(chunk.data(), n);
      left -= n;
    }
  }

  const std::shared_ptr<at::TProcessor> inner_;
  const uint32_t max_frame_bytes_;
  const int idle_timeout_ms_;
  const int request_timeout_ms_;
  LogThrottle oversized_;
  LogThrottle slow_frames_;
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
            m.options.max_frame_bytes, static_cast<size_t>(limits::kThriftMaxMessageBytes))),
        std::max(1, m.options.idle_timeout_ms), std::max(1, m.options.request_timeout_ms));
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
  spdlog::info(
      "thrift front end listening on {}:{} (at most {} connections, idle timeout {} ms, request "
      "timeout {} ms)",
      m.options.host, m.port, m.options.max_connections, m.options.idle_timeout_ms,
      m.options.request_timeout_ms);
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
