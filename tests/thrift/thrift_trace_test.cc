// The Thrift front end's trace context: SagaRequest.traceparent/tracestate
// and Begin2pcRequest.traceparent reach every participant call, as the REST
// headers do (the same TraceFromHeaders); an invalid one starts a new trace
// and never fails the call. A real Thrift client over loopback against a
// real in-process treaty::Server on SQLite, a real HTTP participant.

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include "CoordinatorService.h"
#include "api/api_fixture.h"
#include "common/trace_context.h"

namespace treaty::testing {
namespace {

namespace at = apache::thrift;

constexpr char kTraceId[] = "0af7651916cd43dd8448eb211c80319c";
constexpr char kTraceParent[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

class ThriftTraceTest : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    if (HasFatalFailure()) return;
    auto socket = std::make_shared<at::transport::TSocket>("127.0.0.1", server_->thrift_port());
    socket->setRecvTimeout(30000);
    transport_ = std::make_shared<at::transport::TFramedTransport>(socket);
    transport_->open();
    client_ = std::make_unique<rpc::CoordinatorServiceClient>(
        std::make_shared<at::protocol::TBinaryProtocol>(transport_));
  }
  void TearDown() override {
    if (transport_) transport_->close();
    client_.reset();
    ApiTest::TearDown();
  }

  rpc::SagaRequest Saga(const std::string& gtid) {
    rpc::SagaRequest req;
    req.__set_gtid(gtid);
    for (std::string name : {"a", "b"}) {
      rpc::SagaStep s;
      s.name = name;
      s.action = participant_->Url(name, "action");
      s.compensate = participant_->Url(name, "compensate");
      req.steps.push_back(s);
    }
    return req;
  }

  // The trace ids of `gtid`'s calls (each call's span id distinct).
  std::set<std::string> TraceIds(const std::string& gtid, std::set<std::string>* tracestates) {
    std::set<std::string> ids, spans;
    int n = 0;
    for (const auto& c : participant_->Calls()) {
      if (c.gtid != gtid) continue;
      ++n;
      auto f = ParseTraceParent(c.traceparent);
      EXPECT_TRUE(f.ok()) << c.traceparent;
      if (!f.ok()) continue;
      ids.insert(f->trace_id);
      spans.insert(f->parent_id);
      auto ts = c.headers.find("tracestate");
      tracestates->insert(ts == c.headers.end() ? "" : ts->second);
    }
    EXPECT_EQ(spans.size(), static_cast<size_t>(n)) << gtid << ": a span id sent twice";
    return ids;
  }

  std::shared_ptr<at::transport::TTransport> transport_;
  std::unique_ptr<rpc::CoordinatorServiceClient> client_;
};

TEST_P(ThriftTraceTest, SubmitSagaAndBegin2pcContinueTheCallersTrace) {
  rpc::SagaRequest traced = Saga("th1");
  traced.__set_traceparent(kTraceParent);
  traced.__set_tracestate("congo=t61rcWkgMzE");
  traced.__set_wait(true);
  rpc::TxnStatus out;
  client_->submitSaga(out, traced);
  EXPECT_EQ(out.state, "COMMITTED");
  std::set<std::string> states;
  EXPECT_EQ(TraceIds("th1", &states), std::set<std::string>{kTraceId});
  EXPECT_EQ(states, std::set<std::string>{"congo=t61rcWkgMzE"});

  rpc::SagaRequest invalid = Saga("th2");
  invalid.__set_traceparent("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  invalid.__set_wait(true);
  client_->submitSaga(out, invalid);  // not refused
  EXPECT_EQ(out.state, "COMMITTED");
  states.clear();
  auto fresh = TraceIds("th2", &states);
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_NE(*fresh.begin(), kTraceId);
  EXPECT_EQ(states, std::set<std::string>{""});

  rpc::Begin2pcRequest begin;
  begin.__set_gtid("th3");
  begin.__set_traceparent(kTraceParent);
  client_->begin2pc(out, begin);
  rpc::Branch2pc branch;
  branch.name = "x";
  branch.prepare = participant_->Url("x", "prepare");
  branch.commit = participant_->Url("x", "commit");
  branch.abort = participant_->Url("x", "abort");
  client_->registerBranch(out, "th3", branch);
  client_->commit2pc(out, "th3");
  EXPECT_EQ(out.state.rfind("COMMIT", 0), 0u) << out.state;  // COMMITTING or COMMITTED
  ASSERT_TRUE(WaitCalls("th3", "x", "commit", 1));
  states.clear();
  EXPECT_EQ(TraceIds("th3", &states), std::set<std::string>{kTraceId});
}

INSTANTIATE_TEST_SUITE_P(Engines, ThriftTraceTest, ::testing::Values("sqlite"), EngineParamName);

}  // namespace
}  // namespace treaty::testing
