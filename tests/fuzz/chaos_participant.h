#pragma once

// ChaosParticipant: an HTTP participant on loopback, written on raw TCP, that
// answers treatyd's action / compensate / prepare / commit / abort calls with
// hostile HTTP: random status codes (also 1xx, 3xx, 600+ and malformed status
// lines), random headers, bodies of random bytes, ill-formed UTF-8, long
// non-ASCII text, NUL, CR/LF and ESC; chunked and broken chunked framing,
// Content-Length too short or too long, duplicate lengths, bodies up to 9 MB,
// a header of 100 KB, answers cut off mid-way, connections closed without an
// answer or held past the call's time-out.
//
// Deterministic: the answer to the n-th delivery of (gtid, branch, op)
// depends only on (seed, gtid, branch, op, n), whatever the arrival order.
// After SetBehave(true) every call gets a well-formed 200 "{}" (a yes vote).
//
// One I/O thread (Asio coroutines); every public method is thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace treaty::fuzz {

class ChaosParticipant {
 public:
  // Starts listening on 127.0.0.1 (a free port) at once.
  explicit ChaosParticipant(uint64_t seed);
  ~ChaosParticipant();  // closes everything and joins the I/O thread
  ChaosParticipant(const ChaosParticipant&) = delete;
  ChaosParticipant& operator=(const ChaosParticipant&) = delete;

  uint16_t port() const { return port_; }
  // "http://127.0.0.1:PORT/<branch>/<op>"
  std::string Url(const std::string& branch, const std::string& op) const;
  void SetBehave(bool behave);

  // Calls answered so far, and how many of each kind of answer.
  int64_t calls() const;
  std::map<std::string, int64_t> kinds() const;
  // Printable record of the answers given to `gtid`'s calls, in order.
  std::vector<std::string> AnswersFor(const std::string& gtid) const;
  // The last `n` answers given (to anyone), printable.
  std::vector<std::string> Recent(size_t n) const;

  struct Answer {
    std::string kind;    // e.g. "status", "chunked-bad", "close"
    std::string bytes;   // written as is
    bool close = false;  // close the connection after writing
    int hold_ms = 0;     // before closing: keep the connection open this long
  };
  // The answer to the n-th (from 1) delivery of (gtid, branch, op).
  static Answer Make(uint64_t seed, const std::string& gtid, const std::string& branch,
                     const std::string& op, int n);

 private:
  struct Impl;
  // Counts the delivery, picks (and records) its answer.
  Answer Next(const std::string& gtid, const std::string& branch, const std::string& op);

  uint64_t seed_;
  uint16_t port_ = 0;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;

  mutable std::mutex mu_;
  bool behave_ = false;                                      // guarded by mu_
  std::map<std::string, int> deliveries_;                    // guarded by mu_
  std::map<std::string, std::vector<std::string>> by_gtid_;  // guarded by mu_
  std::vector<std::string> recent_;                          // guarded by mu_ (ring)
  size_t recent_next_ = 0;                                   // guarded by mu_
  std::map<std::string, int64_t> kinds_;                     // guarded by mu_
  int64_t calls_ = 0;                                        // guarded by mu_
};

}  // namespace treaty::fuzz
