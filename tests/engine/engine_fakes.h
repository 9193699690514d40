#pragma once

// Fakes for unit tests of the engine: a manual clock and task queue
// (FakeTaskRunner, support/fake_task_runner.h), a scripted participant
// caller, and an in-memory log with fencing and fault injection.
// Single-threaded: everything runs inside FakeTaskRunner::Run*.

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/task_runner.h"
#include "engine/engine_context.h"
#include "engine/participant_caller.h"
#include "engine/saga.h"
#include "engine/two_phase.h"
#include "engine/txn_log.h"
#include "store/records.h"
#include "support/fake_task_runner.h"

namespace treaty::testing {

class FakeCaller : public ParticipantCaller {
 public:
  explicit FakeCaller(FakeTaskRunner* runner) : runner_(runner) {}

  struct Script {
    std::vector<CallOutcome> outcomes;  // in order; the last repeats; empty = ok
    int64_t delay_ms = 5;
    bool readonly = false;
    // Failures answer HTTP 404 flagged config_error (a configuration error).
    bool config_error = false;
  };
  // Script for calls to branch `branch` with op `op`.
  void Set(const std::string& branch, const std::string& op, Script script) {
    scripts_[branch + "/" + op] = std::move(script);
  }
  // Observer invoked at call time (before the answer), e.g. to check the log.
  std::function<void(const ParticipantRequest&)> on_call;

  void Call(ParticipantRequest request, Callback done) override;

  struct Record {
    std::string gtid, branch, op;
    int64_t at;
  };
  std::vector<Record> calls;
  // "branch/op" of every call, in call order, for one gtid.
  std::vector<std::string> Sequence(const std::string& gtid) const;
  int Count(const std::string& gtid, const std::string& branch, const std::string& op) const;
  // Fake-clock times of the calls of `op` to `branch` of `gtid`, in call order.
  std::vector<int64_t> Times(const std::string& gtid, const std::string& branch,
                             const std::string& op) const;

 private:
  FakeTaskRunner* runner_;
  std::map<std::string, Script> scripts_;
  std::map<std::string, int> seen_;  // per gtid/branch/op: calls so far
};

// In-memory log with the LogStore's write semantics (create conflict,
// owner fencing). Completions are posted on the runner.
class FakeLog : public TxnLog {
 public:
  explicit FakeLog(FakeTaskRunner* runner) : runner_(runner) {}
  void Write(TxnWrite write, Callback done) override;

  int fail_next_writes = 0;         // fail this many writes with Unavailable
  int lose_ack_of_next_writes = 0;  // apply this many writes, then answer Unavailable
  int64_t answer_after_ms = 1;      // a write is applied at once and answered this much later
  std::map<std::string, TxnDetail> txns;
  int writes = 0;

  // Reassigns a transaction to another owner (simulates a takeover).
  void SetOwner(const std::string& gtid, const std::string& owner) { txns[gtid].txn.owner = owner; }
  const BranchRow* Branch(const std::string& gtid, const std::string& name) const;

 private:
  Status Apply(const TxnWrite& w);
  FakeTaskRunner* runner_;
};

// Records what drivers report to their observer.
class Recorder : public TxnObserver {
 public:
  void OnFinished(const std::string& gtid, const std::string&, const std::string& state) override {
    finished[gtid] = state;
  }
  void OnDropped(const std::string& gtid, const Status& why) override { dropped[gtid] = why; }
  std::map<std::string, std::string> finished;
  std::map<std::string, Status> dropped;
};

// Base fixture of the driver tests: fake clock, participants and log, and an
// EngineContext wired to them (owner "coord-1", short retry backoffs,
// attention after 3 failures, a fixed random seed), with builders of sagas
// and 2PC transactions whose participant URLs are http://svc/<name>/<op>.
class DriverTest : public ::testing::Test {
 protected:
  explicit DriverTest(uint64_t seed) : caller_(&runner_), log_(&runner_) {
    ctx_.runner = &runner_;
    ctx_.caller = &caller_;
    ctx_.log = &log_;
    ctx_.observer = &recorder_;
    ctx_.owner = "coord-1";
    ctx_.options.retry_initial_backoff_ms = 100;
    ctx_.options.retry_max_backoff_ms = 1000;
    ctx_.options.attention_after_attempts = 3;
    ctx_.rng.seed(seed);
  }

  // A saga of steps `names` (in order), each retried per `retry`; a deadline
  // `timeout_ms` after it starts (0: none).
  static SagaSpec SagaSpecOf(const std::string& gtid, const std::vector<std::string>& names,
                             RetryPolicy retry, int64_t timeout_ms = 0);
  // Creates and starts a saga; the fixture keeps the driver (drivers_).
  std::shared_ptr<Saga> StartSaga(SagaSpec spec);
  // Creates and starts 2PC `gtid` (prepare retried per `prepare_retry`,
  // deadline `timeout_ms`), then enlists branches `names`, each expected to
  // be accepted (10 ms of fake time after each step). Kept in drivers_.
  std::shared_ptr<TwoPhase> Begin2pc(const std::string& gtid, const std::vector<std::string>& names,
                                     RetryPolicy prepare_retry, int64_t timeout_ms = 60000);
  // Requests the commit of `t`, ignoring the answer.
  void RequestCommit(const std::shared_ptr<TwoPhase>& t);
  // Runs `fn` now on the engine strand (FakeTaskRunner::RunInTask) and
  // returns its result: driver methods assert that they run there.
  template <typename Fn>
  auto OnEngine(Fn&& fn) {
    return runner_.RunInTask(std::forward<Fn>(fn));
  }
  // Runs until `gtid` finishes (at most `max_ms` of fake time): its final
  // state, or "(not finished)".
  std::string Finish(const std::string& gtid, int64_t max_ms = 600000);

  FakeTaskRunner runner_;
  FakeCaller caller_;
  FakeLog log_;
  Recorder recorder_;
  EngineContext ctx_;
  // Drivers are owned by their TxnService in production; here by the test.
  std::vector<std::shared_ptr<TxnDriver>> drivers_;
};

}  // namespace treaty::testing
