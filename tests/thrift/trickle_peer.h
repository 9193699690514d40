#pragma once

// TricklePeer: a hostile Thrift peer on 127.0.0.1 (raw POSIX sockets) that
// keeps every connection busy without ever finishing, for the tests of the
// Thrift clients' call deadlines (coordinator/common/socket_deadline.h). It
// reads what the client sends first (a TLS ClientHello, a Thrift call),
// then writes the start of an answer and one more byte every `interval_ms`,
// so that no per-read time-out ever fires:
//
//   kTlsHandshake  a TLS handshake record header announcing 16 KiB, then
//                  the record's bytes one at a time
//   kReply         a Thrift frame header announcing 100 bytes, then the
//                  frame's bytes one at a time
//
// Each connection has its own thread. The destructor stops writing, closes
// every connection and joins the threads. Thread-safe.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace treaty::testing {

class TricklePeer {
 public:
  enum class Mode { kTlsHandshake, kReply };

  explicit TricklePeer(Mode mode, int interval_ms = 300);  // listens at once
  ~TricklePeer();
  TricklePeer(const TricklePeer&) = delete;
  TricklePeer& operator=(const TricklePeer&) = delete;

  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  void AcceptLoop();
  void Serve(int fd);

  const Mode mode_;
  const int interval_ms_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> servers_;  // guarded by mu_
};

}  // namespace treaty::testing
