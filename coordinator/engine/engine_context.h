#pragma once

// EngineContext: what every in-memory transaction driver needs, injected by
// TxnService (or a test). Owned by TxnService; drivers hold a raw pointer and
// must not outlive it. Touched only on `runner`.

#include <cstdint>
#include <functional>
#include <random>
#include <string>

#include "common/task_runner.h"
#include "engine/participant_caller.h"
#include "engine/txn_log.h"

namespace treaty {

// Who asked for an operator action, and why.
struct OperatorRequest {
  // Who acts: the authenticated client's name and where it came from,
  // "<name>@<peer ip:port>" (REST) or "<name>@thrift"; "anonymous@..." when
  // authentication is off (docs/security.md).
  std::string actor;
  std::string reason;  // free text, valid UTF-8, at most 1024 bytes
};

struct EngineOptions {
  int64_t default_call_timeout_ms = 10000;  // participant call time-out when a step sets none
  // Failed attempts of one branch's call (saga action or compensation,
  // commit, abort) before its transaction is flagged needs_attention.
  int attention_after_attempts = 10;
  int64_t retry_initial_backoff_ms = 100;  // compensation / phase-2 retries
  int64_t retry_max_backoff_ms = 30000;
  int64_t log_retry_backoff_ms = 1000;  // after a log write failed as Unavailable
  // Past-deadline flags: a transaction whose outcome was decided before its
  // deadline (COMPENSATING, COMMITTING, ABORTING) and is unfinished at the
  // deadline is flagged needs_attention then; one the deadline itself sent
  // into compensation or abort is flagged if still unfinished this long after
  // the deadline. 0: neither flag is raised.
  int64_t stuck_after_ms = 60000;
  // Write-behind of a saga's forward progress (docs/architecture.md "Write-
  // behind"). A change nobody waits for (no call waits for it to be logged,
  // no answer, no terminal state) is written at most this long after it was
  // made, or with the next change that must be durable, whichever comes
  // first; and a saga step whose dependencies have just succeeded sends its
  // FIRST action attempt without waiting for its RUNNING to be logged, so
  // long as the saga's create is logged and this coordinator's lease is held
  // (EngineContext::lease_held). After a crash the log may then lag the
  // participants by that much happy-path progress; recovery resends those
  // actions (idempotent, protocol.md) and, should the saga abort, compensates
  // every step that may have started (Saga). 0: every change is written at
  // once and every call waits for it (plan -> log -> act for every call).
  int64_t write_behind_ms = 50;
};

// Notified by drivers on the engine runner.
class TxnObserver {
 public:
  virtual ~TxnObserver() = default;
  // The transaction reached a terminal state, durably.
  virtual void OnFinished(const std::string& gtid, const std::string& kind,
                          const std::string& state) = 0;
  // The driver stopped driving (lost ownership or create failed).
  virtual void OnDropped(const std::string& gtid, const Status& why) = 0;
  // A participant call completed.
  virtual void OnCall(const std::string& op, CallOutcome outcome, int64_t latency_ms) {}
  // A new transaction's create write is durable (TxnService; metrics).
  virtual void OnStarted(const std::string& gtid, const std::string& kind) {}
};

struct EngineContext {
  TaskRunner* runner = nullptr;
  ParticipantCaller* caller = nullptr;
  TxnLog* log = nullptr;
  TxnObserver* observer = nullptr;
  std::string owner;  // this coordinator's id: the fencing token of every write
  EngineOptions options;
  // True while no peer can have declared coordinator `owner` (this one's
  // id as the engine knows it, `owner` above) dead: it is the id registered
  // now and its last heartbeat is recent (Membership::LeaseHeld). Asked on
  // the runner before a call goes out ahead of its log write (write-behind):
  // without the lease it waits for its fenced write like any other. Null:
  // always held (a driver test).
  std::function<bool(const std::string& owner)> lease_held;
  std::mt19937_64 rng{std::random_device{}()};

  // Exponential backoff with jitter for the attempt-th retry (1-based):
  // uniformly in [d/2, d] with d = min(max, initial * 2^(attempt-1)).
  int64_t Backoff(int attempt, int64_t initial_ms, int64_t max_ms);
  // Recovery: the attempt (1-based) whose Backoff() could have drawn
  // `delay_ms`, so a restored retry backs off further instead of starting
  // over: the smallest attempt whose d is at least `delay_ms` (1 for a delay
  // up to `initial_ms`; the level where d reaches `max_ms` for any longer one).
  static int BackoffLevel(int64_t delay_ms, int64_t initial_ms, int64_t max_ms);
};

}  // namespace treaty
