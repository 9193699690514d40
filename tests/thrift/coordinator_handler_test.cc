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
#include "http/http_client.h"
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
  CoordinatorHandlerOptions opts;
  opts.store_health = &health;
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

INSTANTIATE_TEST_SUITE_P(Engines, CoordinatorHandlerTest, ::testing::Values("sqlite"),
                         EngineParamName);

}  // namespace
}  // namespace treaty::testing
