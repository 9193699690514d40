#pragma once

// LoopbackCoordinator: a scripted stand-in for a coordinator's REST front
// end, on raw POSIX sockets at 127.0.0.1 (no dependency on the SDK or the
// coordinator), for the Client's transport tests. It counts the TCP
// connections it accepts and records every request, so tests can tell
// keep-alive from one connection per call and see exactly what was sent.
//
// Each accepted connection is served by its own thread, one request after
// another (HTTP/1.1, Content-Length bodies only). What it does with a
// request is the current Behavior (SetBehavior; thread-safe). Stop() (or
// the destructor) closes the listener and every connection and joins the
// threads.

#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace treaty::testing {

class LoopbackCoordinator {
 public:
  enum class Mode {
    kAnswer,          // answer and keep the connection open (keep-alive)
    kAnswerAndClose,  // answer (without "Connection: close"), then close
    kDropRequest,     // read the request, close without answering
    kSilent,          // read the request, never answer (until Stop)
  };
  struct Behavior {
    Mode mode = Mode::kAnswer;
    int status = 200;
    std::string body = R"({"gtid":"g","state":"COMMITTED"})";
    // > 0: close a connection that stays idle this long after an answer.
    int idle_close_ms = 0;
  };
  struct Request {
    std::string method, target, body;
    int connection = 0;  // 1-based number of the connection it came on
  };

  LoopbackCoordinator();  // listens at once on a free port
  ~LoopbackCoordinator();
  LoopbackCoordinator(const LoopbackCoordinator&) = delete;
  LoopbackCoordinator& operator=(const LoopbackCoordinator&) = delete;

  void SetBehavior(Behavior b);
  std::string url() const;  // http://127.0.0.1:PORT
  int accepted() const;     // TCP connections accepted so far
  std::vector<Request> requests() const;
  void Stop();

 private:
  void AcceptLoop();
  void Serve(int fd, int number);

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread acceptor_;
  mutable std::mutex mu_;
  Behavior behavior_;                 // guarded by mu_
  std::vector<Request> requests_;     // guarded by mu_
  std::vector<int> open_fds_;         // guarded by mu_
  std::vector<std::thread> servers_;  // guarded by mu_
  int accepted_ = 0;                  // guarded by mu_
  bool stopped_ = false;              // guarded by mu_
};

}  // namespace treaty::testing
