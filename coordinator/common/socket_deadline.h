#pragma once

// SocketDeadline: an absolute time limit on the blocking work done on one
// connected socket (a TLS handshake, a Thrift call's write and read), for
// clients whose library blocks with only a per-read time-out (Thrift's
// TSocket and TSSLSocket restart theirs at every byte, so a peer trickling
// one byte a second is never timed out; libpq waits for an answer as long
// as the socket stays open). Shared by treatyd's thrift(s):// participant
// calls, the SDK's thrift(s):// coordinator calls (thrift_client_tls.h) and
// the PostgreSQL pool's call deadline (store/pg_connection_pool.h).
//
// While a SocketDeadline is alive, a process-wide watchdog thread (one,
// started by the first SocketDeadline, never stopped) calls
// ::shutdown(fd, SHUT_RDWR) on its socket once the deadline passes: a
// recv(), poll(), SSL_read() or SSL_connect() blocked on it returns at once
// and the library reports an error (end of file, reset), which the owner
// reads as a time-out through expired(). The socket is not closed (its owner
// still owns the descriptor) but is useless afterwards: close it, never
// reuse it. Destroying the SocketDeadline disarms it under the watchdog's
// lock, so a descriptor closed (and reused by another socket) after that is
// never shut down by it.
//
//   {
//     SocketDeadline limit(socket->getSocketFD(), deadline);
//     try { client->call(...); } catch (const TTransportException& e) {
//       if (limit.expired() || e.getType() == TIMED_OUT) ... "timed out"
//     }
//   }  // disarmed
//
// Thread-safety: each SocketDeadline belongs to the thread doing the blocking
// work; any number of threads may hold one at once. The watchdog never
// blocks on a socket (shutdown(2) does not block).

#include <chrono>
#include <cstdint>

namespace treaty {

class SocketDeadline {
 public:
  using Clock = std::chrono::steady_clock;

  // Arms the limit: at `deadline` (already past: at once) `fd` is shut down
  // unless this is destroyed first. fd < 0 arms nothing (expired() then
  // tells only whether the deadline passed).
  SocketDeadline(int fd, Clock::time_point deadline);
  // Disarms; after it returns the watchdog never touches `fd` again.
  ~SocketDeadline();
  SocketDeadline(const SocketDeadline&) = delete;
  SocketDeadline& operator=(const SocketDeadline&) = delete;

  // Disarms now (the destructor then does nothing); true when the watchdog
  // had already shut the socket down, which must then not be reused (a
  // call that succeeded just as the deadline passed).
  bool Release();

  // Whether the deadline passed: the watchdog shut the socket down, or the
  // clock is at or past the deadline (a library that returned by its own
  // per-read time-out just before the watchdog woke).
  bool expired() const;
  // Milliseconds left until the deadline, at least 1 (for a per-read
  // time-out that should not end the wait before the watchdog does).
  int remaining_ms() const;

 private:
  const Clock::time_point deadline_;
  uint64_t id_ = 0;  // the watchdog's registration, 0 for none
};

// Milliseconds from now until `deadline`, at least 1 and at most INT_MAX.
int MillisUntil(SocketDeadline::Clock::time_point deadline);

}  // namespace treaty
