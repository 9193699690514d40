#include "thrift/trickle_peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>

namespace treaty::testing {

namespace {

// Writes all of `data`; false when the client went away.
bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

TricklePeer::TricklePeer(Mode mode, int interval_ms) : mode_(mode), interval_ms_(interval_ms) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listen_fd_, 16) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("TricklePeer: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

TricklePeer::~TricklePeer() {
  stop_ = true;
  acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> servers;
  {
    std::lock_guard<std::mutex> l(mu_);
    servers.swap(servers_);
  }
  for (auto& t : servers) t.join();
}

void TricklePeer::AcceptLoop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++accepted_;
    std::lock_guard<std::mutex> l(mu_);
    servers_.emplace_back([this, fd] {
      Serve(fd);
      ::close(fd);
    });
  }
}

void TricklePeer::Serve(int fd) {
  // What the client sends first (a ClientHello, a call): read and dropped.
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 5000) <= 0) return;
  char buf[4096];
  if (::recv(fd, buf, sizeof(buf), 0) <= 0) return;
  // A handshake record of 16 KiB; a frame of 100 bytes.
  const std::string start = mode_ == Mode::kTlsHandshake ? std::string("\x16\x03\x03\x40\x00", 5)
                                                         : std::string("\x00\x00\x00\x64", 4);
  if (!WriteAll(fd, start)) return;
  while (!stop_) {
    for (int waited = 0; waited < interval_ms_ && !stop_; waited += 10) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (stop_ || !WriteAll(fd, std::string(1, '\x01'))) return;
  }
}

}  // namespace treaty::testing
