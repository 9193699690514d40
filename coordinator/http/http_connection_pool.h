#pragma once

// Private to treaty_http: the keep-alive connection pool behind
// HttpParticipantCaller (one HostPool per scheme, host and port: http:// and
// https:// to the same host:port never share a connection).

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "common/endpoint.h"
#include "common/mutex.h"
#include "http/http_participant_caller.h"

namespace treaty {

// The streams HTTP is spoken over: plain TCP (http://) or TLS over TCP (https://).
using PlainStream = boost::beast::tcp_stream;
using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

// One keep-alive connection. Touched only on `strand` while a call holds it;
// while idle in a pool it has no pending operation. A connection that was
// closed is never handed out again.
struct PooledConnection {
  // `tls` null: plain TCP; else TLS with that client context (kept alive by
  // the connection).
  PooledConnection(boost::asio::io_context& io, std::shared_ptr<boost::asio::ssl::context> tls);

  // On the strand (or while idle): cancels everything and closes the socket
  // (a TLS connection is dropped without close_notify).
  void Close();
  // While idle: false when the peer closed (or sent unsolicited bytes).
  bool LooksAlive();

  // The TCP layer: connect, time-outs, the socket.
  boost::beast::tcp_stream& tcp();
  // The TLS layer, or null for plain TCP.
  TlsStream* tls() { return std::get_if<TlsStream>(&stream); }
  // Calls fn(PlainStream&) or fn(TlsStream&): the one HTTP exchange serves both.
  template <class Fn>
  void WithStream(Fn&& fn) {
    std::visit(std::forward<Fn>(fn), stream);
  }

  const std::shared_ptr<boost::asio::ssl::context> tls_context;  // null for plain TCP
  boost::asio::strand<boost::asio::io_context::executor_type> strand;
  std::variant<PlainStream, TlsStream> stream;
  boost::asio::ip::tcp::resolver resolver;
  boost::beast::flat_buffer buffer;
  bool connected = false;
  bool reused = false;  // taken from the idle list (so possibly stale)
  std::chrono::steady_clock::time_point idle_since;
};

// Someone waiting for a connection (a participant call).
class PoolWaiter {
 public:
  virtual ~PoolWaiter() = default;
  // True once the waiter no longer wants a connection (it timed out). Thread-safe.
  virtual bool finished() const = 0;
  // Runs on conn->strand. The waiter now holds the connection's slot and must
  // give it back with HostPool::Release exactly once (directly or after
  // replacing the connection with a fresh one it keeps the slot for).
  virtual void Attach(std::shared_ptr<PooledConnection> conn) = 0;
};

// Connections to one scheme://host:port. Every connection that exists (idle, in use
// or connecting) holds a slot; slots never exceed max_connections_per_host.
// Waiters beyond the bound are served in FIFO order as slots free up. Idle
// connections are reused most-recent-first, checked for a peer close before
// reuse, and closed after idle_timeout_ms. Thread-safe (mu_).
// HttpParticipantCaller forgets a HostPool once Unused() holds.
class HostPool : public std::enable_shared_from_this<HostPool> {
 public:
  // `endpoint` comes from ParseEndpoint (host and port already checked); an
  // https:// one needs options.tls.
  HostPool(boost::asio::io_context& io, const Endpoint& endpoint, HttpCallerOptions options);

  // A new, unconnected connection of this pool's kind (TLS for https://).
  std::shared_ptr<PooledConnection> NewConnection();

  // Gives `waiter` a connection (posting waiter->Attach onto its strand) or
  // queues it until a slot frees.
  void Acquire(const std::shared_ptr<PoolWaiter>& waiter);
  // Gives back the slot held by `conn` (call on conn's strand). A reusable
  // connection goes to the next waiter or the idle list; a non-reusable one
  // must already be closed, and its slot goes to the next waiter as a fresh
  // connection, or is freed.
  void Release(const std::shared_ptr<PooledConnection>& conn, bool reusable);
  // Drops `waiter` from the queue if it is still there.
  void Forget(const PoolWaiter* waiter);
  // Closes idle connections; connections released later are closed too.
  void Shutdown();
  // Marks the pool as used now (a call is about to Acquire).
  void Touch();
  // True when no connection exists (idle ones included), nobody waits and
  // the last Touch/Release is at least `idle_for` old.
  bool Unused(std::chrono::steady_clock::time_point now, std::chrono::milliseconds idle_for);

  boost::asio::io_context& io() { return io_; }
  const Endpoint& endpoint() const { return endpoint_; }
  const HttpCallerOptions& options() const { return options_; }
  const std::string& host() const { return host_; }
  const std::string& port() const { return port_; }
  // "host:port" (IPv6 in brackets): the Host header and error messages.
  const std::string& authority() const { return authority_; }

 private:
  void ArmSweep() TREATY_REQUIRES(mu_);
  void Sweep();
  bool Expired(const PooledConnection& c, std::chrono::steady_clock::time_point now) const;

  boost::asio::io_context& io_;
  const Endpoint endpoint_;
  const std::string host_, port_, authority_;
  const HttpCallerOptions options_;
  Mutex mu_;
  std::vector<std::shared_ptr<PooledConnection>> idle_ TREATY_GUARDED_BY(mu_);  // newest last
  std::deque<std::shared_ptr<PoolWaiter>> waiting_ TREATY_GUARDED_BY(mu_);
  int open_ TREATY_GUARDED_BY(mu_) = 0;  // slots in use
  bool shut_down_ TREATY_GUARDED_BY(mu_) = false;
  bool sweep_armed_ TREATY_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point last_used_ TREATY_GUARDED_BY(mu_);
  boost::asio::steady_timer sweep_timer_ TREATY_GUARDED_BY(mu_);
};

}  // namespace treaty
