#include "loopback_coordinator.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace treaty::testing {

namespace {

// Reads until `buf` holds a whole request (header and Content-Length body);
// false on EOF/error, or after `idle_close_ms` (> 0) with nothing received.
bool ReadRequest(int fd, std::string& buf, int idle_close_ms, std::string* head,
                 std::string* body) {
  while (true) {
    const size_t end = buf.find("\r\n\r\n");
    if (end != std::string::npos) {
      *head = buf.substr(0, end);
      size_t length = 0;
      std::string lower = *head;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      if (auto cl = lower.find("content-length:"); cl != std::string::npos) {
        length = std::strtoul(lower.c_str() + cl + 15, nullptr, 10);
      }
      if (buf.size() >= end + 4 + length) {
        *body = buf.substr(end + 4, length);
        buf.erase(0, end + 4 + length);
        return true;
      }
    }
    if (idle_close_ms > 0 && buf.empty()) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, idle_close_ms) == 0) return false;  // idle too long
    }
    char chunk[4096];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buf.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace

LoopbackCoordinator::LoopbackCoordinator() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    throw std::runtime_error("LoopbackCoordinator: cannot listen on 127.0.0.1");
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

LoopbackCoordinator::~LoopbackCoordinator() { Stop(); }

void LoopbackCoordinator::Stop() {
  std::vector<std::thread> servers;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_) return;
    stopped_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  acceptor_.join();
  ::close(listen_fd_);
  {
    std::lock_guard<std::mutex> l(mu_);
    servers.swap(servers_);
  }
  for (auto& t : servers) t.join();
}

void LoopbackCoordinator::SetBehavior(Behavior b) {
  std::lock_guard<std::mutex> l(mu_);
  behavior_ = std::move(b);
}

std::string LoopbackCoordinator::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

int LoopbackCoordinator::accepted() const {
  std::lock_guard<std::mutex> l(mu_);
  return accepted_;
}

std::vector<LoopbackCoordinator::Request> LoopbackCoordinator::requests() const {
  std::lock_guard<std::mutex> l(mu_);
  return requests_;
}

void LoopbackCoordinator::AcceptLoop() {
  while (true) {
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    std::lock_guard<std::mutex> l(mu_);
    if (fd < 0 || stopped_) {
      if (fd >= 0) ::close(fd);
      return;
    }
    open_fds_.push_back(fd);
    const int number = ++accepted_;
    servers_.emplace_back([this, fd, number] { Serve(fd, number); });
  }
}

void LoopbackCoordinator::Serve(int fd, int number) {
  std::string buf, head, body;
  while (true) {
    Behavior b;
    {
      std::lock_guard<std::mutex> l(mu_);
      b = behavior_;
    }
    if (!ReadRequest(fd, buf, b.idle_close_ms, &head, &body)) break;
    {
      std::lock_guard<std::mutex> l(mu_);
      b = behavior_;  // as set when the request arrived
      const size_t sp1 = head.find(' ');
      const size_t sp2 = head.find(' ', sp1 + 1);
      requests_.push_back({head.substr(0, sp1), head.substr(sp1 + 1, sp2 - sp1 - 1), body, number});
    }
    if (b.mode == Mode::kDropRequest) break;
    if (b.mode == Mode::kSilent) {
      char c;
      while (::recv(fd, &c, 1, 0) > 0) {
      }
      break;
    }
    const std::string answer =
        "HTTP/1.1 " + std::to_string(b.status) +
        " X\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(b.body.size()) +
        "\r\n\r\n" + b.body;
    if (::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL) < 0) break;
    if (b.mode == Mode::kAnswerAndClose) break;
  }
  std::lock_guard<std::mutex> l(mu_);
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
  open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
}

}  // namespace treaty::testing
