#include "http/http_connection_pool.h"

#include <algorithm>

#include <boost/asio/post.hpp>

#include "common/idle_socket.h"

namespace treaty {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

using Strand = net::strand<net::io_context::executor_type>;

std::variant<PlainStream, TlsStream> MakeStream(const Strand& strand, net::ssl::context* tls) {
  if (tls) return std::variant<PlainStream, TlsStream>(std::in_place_type<TlsStream>, strand, *tls);
  return std::variant<PlainStream, TlsStream>(std::in_place_type<PlainStream>, strand);
}

}  // namespace

PooledConnection::PooledConnection(net::io_context& io, std::shared_ptr<net::ssl::context> tls)
    : tls_context(std::move(tls)),
      strand(net::make_strand(io)),
      stream(MakeStream(strand, tls_context.get())),
      resolver(strand) {}

beast::tcp_stream& PooledConnection::tcp() {
  if (TlsStream* s = tls()) return s->next_layer();
  return std::get<PlainStream>(stream);
}

void PooledConnection::Close() {
  beast::error_code ec;
  resolver.cancel();
  tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
  tcp().close();
}

bool PooledConnection::LooksAlive() { return IdleSocketUsable(tcp().socket().native_handle()); }

namespace {

void PostClose(const std::shared_ptr<PooledConnection>& c) {
  net::post(c->strand, [c] { c->Close(); });
}

}  // namespace

HostPool::HostPool(net::io_context& io, const Endpoint& endpoint, HttpCallerOptions options)
    : io_(io),
      endpoint_(endpoint),
      host_(endpoint.host),
      port_(std::to_string(endpoint.port)),
      authority_(endpoint.Authority()),
      options_(options),
      last_used_(Clock::now()),
      sweep_timer_(io) {}

std::shared_ptr<PooledConnection> HostPool::NewConnection() {
  return std::make_shared<PooledConnection>(io_, endpoint_.tls() ? options_.tls : nullptr);
}

void HostPool::Touch() {
  MutexLock lock(&mu_);
  last_used_ = Clock::now();
}

bool HostPool::Unused(Clock::time_point now, std::chrono::milliseconds idle_for) {
  MutexLock lock(&mu_);
  return open_ == 0 && waiting_.empty() && now - last_used_ >= idle_for;
}

bool HostPool::Expired(const PooledConnection& c, Clock::time_point now) const {
  return now - c.idle_since >= std::chrono::milliseconds(options_.idle_timeout_ms);
}

void HostPool::Acquire(const std::shared_ptr<PoolWaiter>& waiter) {
  std::shared_ptr<PooledConnection> conn;
  std::vector<std::shared_ptr<PooledConnection>> stale;
  {
    MutexLock lock(&mu_);
    auto now = Clock::now();
    while (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      if (!Expired(*c, now) && c->LooksAlive()) {
        conn = std::move(c);
        conn->reused = true;
        break;
      }
      stale.push_back(std::move(c));
      --open_;
    }
    if (!conn) {
      if (open_ < options_.max_connections_per_host) {
        ++open_;
        conn = NewConnection();
      } else {
        waiting_.push_back(waiter);
      }
    }
  }
  for (auto& c : stale) PostClose(c);
  if (conn) net::post(conn->strand, [waiter, conn] { waiter->Attach(conn); });
}

void HostPool::Release(const std::shared_ptr<PooledConnection>& conn, bool reusable) {
  std::shared_ptr<PoolWaiter> next;
  std::shared_ptr<PooledConnection> give;
  bool close = false;
  {
    MutexLock lock(&mu_);
    last_used_ = Clock::now();
    while (!waiting_.empty() && !next) {
      next = std::move(waiting_.front());
      waiting_.pop_front();
      if (next->finished()) next.reset();
    }
    if (next) {
      give = reusable ? conn : NewConnection();
      give->reused = reusable;
    } else if (reusable && !shut_down_) {
      conn->idle_since = Clock::now();
      idle_.push_back(conn);
      ArmSweep();
    } else {
      --open_;
      close = reusable;
    }
  }
  if (close) conn->Close();  // we are on conn's strand
  if (next) net::post(give->strand, [next, give] { next->Attach(give); });
}

void HostPool::Forget(const PoolWaiter* waiter) {
  MutexLock lock(&mu_);
  auto it = std::find_if(waiting_.begin(), waiting_.end(),
                         [waiter](const auto& w) { return w.get() == waiter; });
  if (it != waiting_.end()) waiting_.erase(it);
}

void HostPool::Shutdown() {
  std::vector<std::shared_ptr<PooledConnection>> idle;
  {
    MutexLock lock(&mu_);
    shut_down_ = true;
    open_ -= static_cast<int>(idle_.size());
    idle.swap(idle_);
    sweep_timer_.cancel();
  }
  for (auto& c : idle) PostClose(c);
}

void HostPool::ArmSweep() {
  if (sweep_armed_ || shut_down_) return;
  sweep_armed_ = true;
  sweep_timer_.expires_after(std::chrono::milliseconds(options_.idle_timeout_ms));
  sweep_timer_.async_wait([weak = weak_from_this()](beast::error_code ec) {
    if (auto self = weak.lock()) self->Sweep();
  });
}

void HostPool::Sweep() {
  std::vector<std::shared_ptr<PooledConnection>> expired;
  {
    MutexLock lock(&mu_);
    sweep_armed_ = false;
    auto now = Clock::now();
    auto keep =
        std::partition(idle_.begin(), idle_.end(), [&](const auto& c) { return Expired(*c, now); });
    expired.assign(idle_.begin(), keep);
    idle_.erase(idle_.begin(), keep);
    open_ -= static_cast<int>(expired.size());
    if (!idle_.empty()) ArmSweep();
  }
  for (auto& c : expired) PostClose(c);
}

}  // namespace treaty
