#pragma once

// ThriftTestParticipant: a scriptable Thrift ParticipantService
// (idl/participant.thrift) for integration tests, the Thrift twin of
// TestParticipant. Serves framed/binary on 127.0.0.1:<free port> with its
// own threads. Each call is recorded; the reply follows the Rule set for its
// (branch, op), default OK (vote YES). Rule outcome sequences advance per
// (gtid, branch, op); the last one repeats.
//
// Thread-safe: every method may be called from any thread while calls arrive.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace treaty {

class ThriftTestParticipant {
 public:
  enum class Reply { kOk, kFailed, kRetry, kThrow };
  enum class Vote { kYes, kNo, kReadOnly };
  struct Rule {
    std::vector<Reply> replies = {Reply::kOk};
    Vote vote = Vote::kYes;
    int delay_ms = 0;
  };
  struct Call {
    std::string gtid, branch, op, payload, idempotency_key, traceparent;
    bool one_phase = false;
  };

  // Starts serving at once; aborts the process if it cannot bind.
  ThriftTestParticipant();
  ~ThriftTestParticipant();
  ThriftTestParticipant(const ThriftTestParticipant&) = delete;
  ThriftTestParticipant& operator=(const ThriftTestParticipant&) = delete;

  uint16_t port() const;
  // "thrift://127.0.0.1:PORT"
  std::string Url() const;
  void SetRule(const std::string& branch, const std::string& op, Rule rule);
  std::vector<Call> Calls() const;
  int CallCount(const std::string& gtid, const std::string& branch, const std::string& op) const;
  bool WaitFor(const std::function<bool(const std::vector<Call>&)>& pred,
               std::chrono::milliseconds timeout);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty
