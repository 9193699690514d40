#pragma once

// TestParticipant: a scriptable HTTP participant for integration tests.
//
// Serves POST /<branch>/<op> on 127.0.0.1:<free port> with its own
// io_context and threads. Each call is recorded; the answer follows the Rule
// set for its (branch, op), default 200 "{}". A 2xx answer "applies the
// effect" once per Idempotency-Key, so tests can check that at-least-once
// delivery stays exactly-once in effect (EffectCount <= 1).
//
// (branch, op) of a call are taken from the Treaty-Branch / Treaty-Op headers,
// else from the JSON body, else from the path /<branch>/<op>. Rule status
// sequences advance per (gtid, branch, op): the n-th delivery of that triple
// gets statuses[n] (the last one repeats).
//
// Thread-safe: every method may be called from any thread, while calls arrive.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "http/http_server.h"

namespace treaty {

class TestParticipant {
 public:
  struct Rule {
    std::vector<int> statuses = {200};  // answered in order per (gtid,branch,op); last repeats
    int delay_ms = 0;                   // wait (without blocking a thread) before answering
    std::string body = "{}";            // response body, e.g. {"vote":"readonly"}
  };

  struct Call {
    std::string gtid, branch, op;
    std::string idempotency_key;
    std::string traceparent;
    std::string payload;  // the body's "payload" value as JSON text ("null" when absent)
    std::string path, body, remote;
    std::map<std::string, std::string> headers;  // lower-case names
    int status = 0;                              // what was (or will be) answered
    std::chrono::steady_clock::time_point at;    // arrival
  };

  struct Options {
    int threads = 2;
    int idle_timeout_ms = 60000;  // server-side keep-alive idle timeout
  };

  // Starts listening at once; aborts the test process if it cannot bind.
  TestParticipant();
  explicit TestParticipant(Options options);
  ~TestParticipant();  // stops the server and joins its threads
  TestParticipant(const TestParticipant&) = delete;
  TestParticipant& operator=(const TestParticipant&) = delete;

  uint16_t port() const;
  // "http://127.0.0.1:PORT/<branch>/<op>"
  std::string Url(const std::string& branch, const std::string& op) const;

  void SetRule(const std::string& branch, const std::string& op, Rule rule);
  void ClearRules();

  std::vector<Call> Calls() const;  // in arrival order
  int CallCount(const std::string& gtid, const std::string& branch, const std::string& op) const;
  int EffectCount(const std::string& gtid, const std::string& branch, const std::string& op) const;
  // Distinct client connections (remote ip:port) seen so far.
  int ConnectionCount() const;

  // Blocks until `pred(Calls())` holds or `timeout` passes; returns whether it held.
  bool WaitFor(const std::function<bool(const std::vector<Call>&)>& pred,
               std::chrono::milliseconds timeout);
  bool WaitForCalls(size_t count, std::chrono::milliseconds timeout);
  // Blocks until a call of `op` to `branch` of `gtid` has arrived, or `timeout`
  // passes; returns whether one did.
  bool WaitForCall(const std::string& gtid, const std::string& branch, const std::string& op,
                   std::chrono::milliseconds timeout);

 private:
  using Key = std::tuple<std::string, std::string, std::string>;  // gtid, branch, op
  void Handle(HttpRequest req, HttpResponder respond);
  void Answer(size_t index, const Rule& rule, HttpResponder respond);

  boost::asio::io_context io_;
  std::unique_ptr<HttpServer> server_;
  std::vector<std::thread> threads_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::pair<std::string, std::string>, Rule> rules_;  // guarded by mu_
  std::vector<Call> calls_;                                    // guarded by mu_
  std::map<Key, int> deliveries_;                              // guarded by mu_
  std::map<Key, int> effects_;                                 // guarded by mu_
  std::set<std::string> applied_keys_;                         // guarded by mu_
  std::set<std::string> remotes_;                              // guarded by mu_
};

}  // namespace treaty
