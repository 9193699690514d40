#include "engine/engine_fakes.h"

namespace treaty::testing {
void FakeCaller::Call(ParticipantRequest request, Callback done) {
  if (on_call) on_call(request);
  calls.push_back({request.gtid, request.branch, request.op, runner_->NowMs()});
  const std::string key = request.branch + "/" + request.op;
  int n = seen_[request.gtid + "/" + key]++;
  Script script;
  if (auto it = scripts_.find(key); it != scripts_.end()) script = it->second;
  CallOutcome outcome = CallOutcome::kOk;
  if (!script.outcomes.empty()) {
    outcome = script.outcomes[std::min<size_t>(n, script.outcomes.size() - 1)];
  }
  ParticipantResponse r;
  r.outcome = outcome;
  r.readonly_vote = script.readonly;
  r.http_status = outcome == CallOutcome::kOk                ? 200
                  : outcome == CallOutcome::kBusinessFailure ? 409
                                                             : 503;
  if (outcome != CallOutcome::kOk) r.error = "scripted";
  if (outcome == CallOutcome::kTransient && script.config_error) {
    r.http_status = 404;
    r.config_error = true;
    r.error = "HTTP 404 (scripted)";
  }
  r.latency_ms = script.delay_ms;
  runner_->PostAfter(script.delay_ms, [done = std::move(done), r] { done(r); });
}

std::vector<std::string> FakeCaller::Sequence(const std::string& gtid) const {
  std::vector<std::string> out;
  for (const auto& c : calls) {
    if (c.gtid == gtid) out.push_back(c.branch + "/" + c.op);
  }
  return out;
}

int FakeCaller::Count(const std::string& gtid, const std::string& branch,
                      const std::string& op) const {
  int n = 0;
  for (const auto& c : calls) n += c.gtid == gtid && c.branch == branch && c.op == op;
  return n;
}

std::vector<int64_t> FakeCaller::Times(const std::string& gtid, const std::string& branch,
                                       const std::string& op) const {
  std::vector<int64_t> out;
  for (const auto& c : calls) {
    if (c.gtid == gtid && c.branch == branch && c.op == op) out.push_back(c.at);
  }
  return out;
}

const BranchRow* FakeLog::Branch(const std::string& gtid, const std::string& name) const {
  auto it = txns.find(gtid);
  if (it == txns.end()) return nullptr;
  for (const auto& b : it->second.branches) {
    if (b.name == name) return &b;
  }
  return nullptr;
}

Status FakeLog::Apply(const TxnWrite& w) {
  if (w.create) {
    if (auto it = txns.find(w.gtid); it != txns.end()) {
      // As the LogWriter: a create re-sent after an unknown outcome that
      // meets exactly its own row is OK.
      const TxnRow& row = it->second.txn;
      const bool own = w.create_outcome_unknown && row.owner == w.create->owner &&
                       row.kind == w.create->kind && row.spec == w.create->spec &&
                       row.state == w.create->state && row.version == w.create->version;
      return own ? Status::Ok() : Status::Conflict("exists");
    }
    TxnDetail d;
    d.txn = *w.create;
    d.branches = w.new_branches;
    d.events = w.events;
    txns[w.gtid] = d;
    return Status::Ok();
  }
  auto it = txns.find(w.gtid);
  if (it == txns.end()) return Status::NotFound("no such gtid");
  TxnDetail& d = it->second;
  if (d.txn.owner != w.owner) return Status::LostOwnership("owner is " + d.txn.owner);
  if (w.state) d.txn.state = *w.state;
  if (w.needs_attention) d.txn.needs_attention = *w.needs_attention;
  if (w.paused) d.txn.paused = *w.paused;
  if (w.last_error) d.txn.last_error = *w.last_error;
  if (w.release_owner) d.txn.owner.clear();
  ++d.txn.version;
  for (const auto& b : w.new_branches) d.branches.push_back(b);
  for (const auto& u : w.branch_updates) {
    for (auto& b : d.branches) {
      if (b.name != u.name) continue;
      if (u.state) b.state = *u.state;
      if (u.attempts) b.attempts = *u.attempts;
      if (u.last_error) b.last_error = *u.last_error;
      if (u.next_attempt_at_ms) b.next_attempt_at_ms = *u.next_attempt_at_ms;
      b.updated_at_ms = w.now_ms;
    }
  }
  for (EventRow e : w.events) {
    // As the LogStore (docs/schema.md "History: one event per run of retries"):
    // a collapsing event updates the newest event of its branch when that has
    // the same type.
    if (e.first_at_ms == 0) e.first_at_ms = e.at_ms;
    EventRow* newest = nullptr;
    for (auto it = d.events.rbegin(); it != d.events.rend() && !newest; ++it) {
      if (it->branch == e.branch) newest = &*it;
    }
    if (e.collapse && newest && newest->type == e.type) {
      newest->count += e.count;
      newest->detail = e.detail;
      newest->at_ms = e.at_ms;
      continue;
    }
    e.collapse = false;
    d.events.push_back(std::move(e));
  }
  return Status::Ok();
}

void FakeLog::Write(TxnWrite write, Callback done) {
  ++writes;
  Status s = Status::Ok();
  if (fail_next_writes > 0) {
    --fail_next_writes;
    s = Status::Unavailable("injected");
  } else if (lose_ack_of_next_writes > 0) {
    --lose_ack_of_next_writes;
    s = Apply(write);
    if (s.ok()) s = Status::Unavailable("injected: committed, answer lost");
  } else {
    s = Apply(write);
  }
  runner_->PostAfter(answer_after_ms, [done = std::move(done), s] { done(s); });
}

SagaSpec DriverTest::SagaSpecOf(const std::string& gtid, const std::vector<std::string>& names,
                                RetryPolicy retry, int64_t timeout_ms) {
  SagaSpec spec;
  spec.gtid = gtid;
  spec.timeout_ms = timeout_ms;
  for (const auto& n : names) {
    SagaStep s;
    s.name = n;
    s.action = "http://svc/" + n + "/action";
    s.compensate = "http://svc/" + n + "/compensate";
    s.retry = retry;
    spec.steps.push_back(s);
  }
  return spec;
}

std::shared_ptr<Saga> DriverTest::StartSaga(SagaSpec spec) {
  auto saga = OnEngine([&] { return Saga::Create(&ctx_, std::move(spec)); });
  drivers_.push_back(saga);
  OnEngine([&] { saga->Start(); });
  return saga;
}

std::shared_ptr<TwoPhase> DriverTest::Begin2pc(const std::string& gtid,
                                               const std::vector<std::string>& names,
                                               RetryPolicy prepare_retry, int64_t timeout_ms) {
  TwoPhaseSpec spec;
  spec.gtid = gtid;
  spec.timeout_ms = timeout_ms;
  spec.prepare_retry = prepare_retry;
  auto t = OnEngine([&] { return TwoPhase::Create(&ctx_, spec); });
  drivers_.push_back(t);
  OnEngine([&] { t->Start(); });
  runner_.Advance(10);
  for (const auto& n : names) {
    BranchSpec b;
    b.name = n;
    b.prepare = "http://svc/" + n + "/prepare";
    b.commit = "http://svc/" + n + "/commit";
    b.abort = "http://svc/" + n + "/abort";
    Status got = Status::Internal("no answer");
    OnEngine([&] { t->Enlist(std::move(b), 16, [&](Status s) { got = s; }); });
    runner_.Advance(10);
    EXPECT_TRUE(got.ok()) << got.ToString();
  }
  return t;
}

void DriverTest::RequestCommit(const std::shared_ptr<TwoPhase>& t) {
  OnEngine([&] { t->RequestCommit([](Result<TxnState>) {}); });
}

std::string DriverTest::Finish(const std::string& gtid, int64_t max_ms) {
  runner_.RunUntil([&] { return recorder_.finished.count(gtid) > 0; }, max_ms);
  return recorder_.finished.count(gtid) ? recorder_.finished[gtid] : "(not finished)";
}

}  // namespace treaty::testing
