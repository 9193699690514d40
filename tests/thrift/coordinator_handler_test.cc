// CoordinatorHandler (the Thrift front end) against a real in-process
// treaty::Server on SQLite: a real Thrift client over loopback for the typed
// errors and for refusing new work while draining, and the handler called
// directly for refusing new work while the log store is known down.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include "CoordinatorService.h"
#include "api/api_fixture.h"
#include "engine/readiness.h"
#include "http/http_client.h"
#include "support/fake_task_runner.h"
#include "thrift/coordinator_handler.h"

namespace treaty::testing {
namespace {

namespace at = apache::thrift;
using Rule = TestParticipant::Rule;

class CoordinatorHandlerTest : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    if (HasFatalFailure()) return;
    client_ = Connect();
  }
  void TearDown() override {
    if (transport_) transport_->close();
    client_.reset();
    ApiTest::TearDown();
  }

  std::unique_ptr<rpc::CoordinatorServiceClient> Connect() {
    auto socket = std::make_shared<at::transport::TSocket>("127.0.0.1", server_->thrift_port());
    socket->setRecvTimeout(30000);
    transport_ = std::make_shared<at::transport::TFramedTransport>(socket);
    transport_->open();
    return std::make_unique<rpc::CoordinatorServiceClient>(
        std::make_shared<at::protocol::TBinaryProtocol>(transport_));
  }

  rpc::SagaStep SagaStepTo(const std::string& name) {
    rpc::SagaStep s;
    s.name = name;
    s.action = participant_->Url(name, "action");
    s.compensate = participant_->Url(name, "compensate");
    return s;
  }
  rpc::SagaRequest Saga(const std::string& gtid, std::vector<std::string> steps) {
    rpc::SagaRequest req;
    req.__set_gtid(gtid);
    for (const auto& name : steps) req.steps.push_back(SagaStepTo(name));
    return req;
  }

  // Submits saga `gtid` of one step `step` whose action answers 503,
  // retried up to 1000 times at most 100 ms apart: it stays RUNNING.
  rpc::TxnStatus SubmitRetryingSaga(const std::string& gtid, const std::string& step) {
    Rule unavailable;
    unavailable.statuses = {503};
    participant_->SetRule(step, "action", unavailable);
    rpc::SagaRequest req = Saga(gtid, {step});
    rpc::RetryPolicy retry;
    retry.__set_max_attempts(1000);
    retry.__set_max_backoff_ms(100);
    req.steps[0].__set_retry_policy(retry);
    rpc::TxnStatus out;
    client_->submitSaga(out, req);
    return out;
  }

  std::shared_ptr<at::transport::TTransport> transport_;
  std::unique_ptr<rpc::CoordinatorServiceClient> client_;
};

TEST_P(CoordinatorHandlerTest, BadInputIsInvalidRequest) {
  rpc::TxnStatus out;
  EXPECT_THROW(client_->submitSaga(out, Saga("t-empty", {})), rpc::InvalidRequest);

  rpc::SagaRequest bad_payload = Saga("t-payload", {"a"});
  bad_payload.steps[0].__set_payload("{not json");
  EXPECT_THROW(client_->submitSaga(out, bad_payload), rpc::InvalidRequest);

  rpc::Transaction txn;
  EXPECT_THROW(client_->getTransaction(txn, std::string(10000, 'g')), rpc::InvalidRequest);
  rpc::TxnPage page;
  rpc::ListRequest list;
  list.__set_kind("neither");
  EXPECT_THROW(client_->listTransactions(page, list), rpc::InvalidRequest);
}

TEST_P(CoordinatorHandlerTest, UnknownGtidIsNotFound) {
  rpc::Transaction txn;
  EXPECT_THROW(client_->getTransaction(txn, "t-nobody"), rpc::NotFound);
  rpc::TxnStatus out;
  EXPECT_THROW(client_->commit2pc(out, "t-nobody"), rpc::NotFound);
}

TEST_P(CoordinatorHandlerTest, SameGtidDifferentBodyIsConflict) {
  rpc::TxnStatus out;
  rpc::SagaRequest first = Saga("t-conflict", {"a"});
  first.__set_wait(true);
  client_->submitSaga(out, first);
  EXPECT_EQ(out.gtid, "t-conflict");
  EXPECT_EQ(out.state, "COMMITTED");
  // The same body again is an idempotent replay, a different one a conflict.
  EXPECT_NO_THROW(client_->submitSaga(out, first));
  EXPECT_THROW(client_->submitSaga(out, Saga("t-conflict", {"a", "b"})), rpc::Conflict);
}

TEST_P(CoordinatorHandlerTest, RefusesNewWorkWhileDraining) {
  // A slow step keeps the drain waiting (drain_timeout_ms is 2 s).
  Rule slow;
  slow.delay_ms = 1500;
  participant_->SetRule("slow", "action", slow);
  rpc::TxnStatus out;
  client_->submitSaga(out, Saga("t-inflight", {"slow"}));
  ASSERT_TRUE(participant_->WaitForCalls(1, std::chrono::seconds(10)));

  std::thread drain([this] { EXPECT_TRUE(server_->Drain().ok()); });
  // /readyz fails once draining has begun.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int ready_status = 200;
  while (ready_status != 503 && std::chrono::steady_clock::now() < deadline) {
    auto r = HttpFetch("GET", server_->http_url() + "/readyz", "", {}, 5000);
    ready_status = r.ok() ? r->status : 0;
    if (ready_status != 503) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(ready_status, 503);

  EXPECT_THROW(client_->submitSaga(out, Saga("t-new", {"a"})), rpc::Unavailable);
  rpc::Begin2pcRequest begin;
  begin.__set_gtid("t-new-2pc");
  EXPECT_THROW(client_->begin2pc(out, begin), rpc::Unavailable);
  // Reads still work.
  rpc::Transaction txn;
  EXPECT_NO_THROW(client_->getTransaction(txn, "t-inflight"));
  EXPECT_EQ(txn.gtid, "t-inflight");
  drain.join();
}

TEST_P(CoordinatorHandlerTest, RefusesNewWorkWhileStoreIsDown) {
  StoreHealth health(/*probe_after_ms=*/60000);
  FakeTaskRunner blocking;  // AdmitNewWork never posts to it
  ReadinessDeps deps;
  deps.queries = server_->queries();
  deps.blocking = &blocking;
  deps.health = &health;
  Readiness readiness(std::move(deps));
  CoordinatorHandlerOptions opts;
  opts.readiness = &readiness;
  opts.queries = server_->queries();
  CoordinatorHandler handler([this] { return server_->service(); }, opts);

  rpc::TxnStatus out;
  handler.submitSaga(out, Saga("t-before", {"a"}));
  EXPECT_EQ(out.gtid, "t-before");

  health.Report(Status::Unavailable("database down"));
  EXPECT_THROW(handler.submitSaga(out, Saga("t-after", {"a"})), rpc::Unavailable);
  rpc::Begin2pcRequest begin;
  begin.__set_gtid("t-after-2pc");
  EXPECT_THROW(handler.begin2pc(out, begin), rpc::Unavailable);
  rpc::Transaction txn;
  EXPECT_NO_THROW(handler.getTransaction(txn, "t-before"));
  EXPECT_THROW(handler.getTransaction(txn, "t-after"), rpc::NotFound);

  health.Report(Status::Ok());
  EXPECT_NO_THROW(handler.begin2pc(out, begin));
}

// The operator actions over Thrift: answers carry paused/finished, the
// transaction and its events the new optional fields, refusals are typed.
TEST_P(CoordinatorHandlerTest, OperatorActionsAndTheirFields) {
  rpc::TxnStatus out = SubmitRetryingSaga("t-op", "slow");
  ASSERT_TRUE(participant_->WaitForCalls(1, std::chrono::seconds(10)));

  ASSERT_NO_THROW(client_->retryTransaction(out, "t-op", "participant redeployed"));
  EXPECT_EQ(out.gtid, "t-op");
  EXPECT_EQ(out.state, "RUNNING");
  EXPECT_TRUE(out.__isset.paused && !out.paused);
  EXPECT_TRUE(out.__isset.finished && !out.finished);
  ASSERT_NO_THROW(client_->retryTransaction(out, "t-op", ""));  // reason optional

  rpc::Transaction txn;
  client_->getTransaction(txn, "t-op");
  EXPECT_TRUE(txn.__isset.paused);
  EXPECT_TRUE(txn.__isset.last_error);
  ASSERT_FALSE(txn.history.empty());
  for (const auto& e : txn.history) {
    EXPECT_TRUE(e.__isset.count && e.count >= 1);
    EXPECT_TRUE(e.__isset.first_at_ms && e.first_at_ms <= e.at_ms && e.first_at_ms > 0);
  }
  rpc::TxnPage page;
  rpc::ListRequest list;
  list.__set_paused(true);
  client_->listTransactions(page, list);
  for (const auto& t : page.items) EXPECT_TRUE(t.paused) << t.gtid;

  EXPECT_THROW(client_->resolveBranch(out, "t-nobody", "slow", "ABORTED", "fixed"), rpc::NotFound);
  EXPECT_THROW(client_->resolveBranch(out, "t-op", "slow", "ABORTED", ""), rpc::InvalidRequest);
  ASSERT_NO_THROW(client_->abortTransaction(out, "t-op", "customer cancelled"));
  participant_->SetRule("slow", "compensate", Rule{});
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  do {
    client_->getTransaction(txn, "t-op");
    if (txn.state == "ABORTED") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  } while (std::chrono::steady_clock::now() < end);
  ASSERT_EQ(txn.state, "ABORTED");
  EXPECT_THROW(client_->retryTransaction(out, "t-op", ""), rpc::Conflict);
  EXPECT_THROW(client_->abortTransaction(out, "t-op", ""), rpc::Conflict);
  EXPECT_THROW(client_->pauseTransaction(out, "t-op", ""), rpc::Conflict);
  EXPECT_THROW(client_->resumeTransaction(out, "t-op", ""), rpc::Conflict);
}

// Branch2pc.one_phase reaches the stored branch spec.
TEST_P(CoordinatorHandlerTest, EnlistmentDeclaresOnePhase) {
  rpc::TxnStatus out;
  rpc::Begin2pcRequest begin;
  begin.__set_gtid("t-1pc");
  client_->begin2pc(out, begin);
  rpc::Branch2pc b;
  b.name = "acct";
  b.prepare = participant_->Url("acct", "prepare");
  b.commit = participant_->Url("acct", "commit");
  b.abort = participant_->Url("acct", "abort");
  b.__set_one_phase(true);
  ASSERT_NO_THROW(client_->registerBranch(out, "t-1pc", b));
  rpc::Transaction txn;
  client_->getTransaction(txn, "t-1pc");
  ASSERT_EQ(txn.branches.size(), 1u);
  EXPECT_NE(txn.branches[0].spec.find("\"one_phase\":true"), std::string::npos)
      << txn.branches[0].spec;
}

// Expected to pass once the engine implements Pause/Resume.
TEST_P(CoordinatorHandlerTest, PauseAndResumeOverThrift) {
  rpc::TxnStatus out = SubmitRetryingSaga("t-pause", "held");
  ASSERT_NO_THROW(client_->pauseTransaction(out, "t-pause", "maintenance"));
  EXPECT_TRUE(out.paused);
  EXPECT_THROW(client_->pauseTransaction(out, "t-pause", ""), rpc::Conflict);
  rpc::TxnPage page;
  rpc::ListRequest list;
  list.__set_paused(true);
  client_->listTransactions(page, list);
  ASSERT_EQ(page.items.size(), 1u);
  EXPECT_EQ(page.items[0].gtid, "t-pause");
  ASSERT_NO_THROW(client_->resumeTransaction(out, "t-pause", "done"));
  EXPECT_FALSE(out.paused);
  EXPECT_THROW(client_->resumeTransaction(out, "t-pause", ""), rpc::Conflict);
}

INSTANTIATE_TEST_SUITE_P(Engines, CoordinatorHandlerTest, ::testing::Values("sqlite"),
                         EngineParamName);

}  // namespace
}  // namespace treaty::testing
