// Thrift calls that wait must not starve other clients.
//
// Six clients each submit a saga with wait=true whose only step is answered
// by a real HTTP participant after 12 s; while they wait, another client
// reads a transaction and submits a saga with wait=false. Those two calls
// must be answered within 5 s (on the old TNonblockingServer with four
// workers they waited for a worker, ~12 s), and every waiting saga still
// ends COMMITTED. Real treatyd child process on SQLite.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include "CoordinatorService.h"
#include "support/subprocess.h"
#include "support/test_participant.h"
#include "support/treatyd_process.h"
#include "thrift/thrift_wire.h"

namespace treaty::testing {
namespace {

namespace at = apache::thrift;
using std::chrono::steady_clock;

constexpr int kWaitingClients = 6;  // more than the old server's four workers
constexpr int kOldWorkers = 4;
constexpr int kSlowStepMs = 12000;
constexpr auto kAnswerBound = std::chrono::seconds(5);

struct Client {
  std::shared_ptr<at::transport::TTransport> transport;
  std::unique_ptr<rpc::CoordinatorServiceClient> rpc;
  ~Client() {
    try {
      transport->close();
    } catch (...) {
    }
  }
};

std::unique_ptr<Client> Connect(int port) {
  auto c = std::make_unique<Client>();
  auto socket = std::make_shared<at::transport::TSocket>("127.0.0.1", port);
  socket->setRecvTimeout(60000);
  c->transport = std::make_shared<at::transport::TFramedTransport>(socket);
  c->transport->open();
  c->rpc = std::make_unique<rpc::CoordinatorServiceClient>(
      std::make_shared<at::protocol::TBinaryProtocol>(c->transport));
  return c;
}

rpc::SagaRequest Saga(const TestParticipant& participant, const std::string& gtid,
                      const std::string& step, bool wait) {
  rpc::SagaStep s;
  s.name = step;
  s.action = participant.Url(step, "action");
  s.compensate = participant.Url(step, "compensate");
  s.__set_timeout_ms(30000);
  rpc::SagaRequest req;
  req.__set_gtid(gtid);
  req.steps.push_back(s);
  req.__set_wait(wait);
  return req;
}

TEST(ThriftStarvationTest, WaitingSubmitsDoNotStarveOtherClients) {
  const std::string dir = MakeTempDir("treaty-thrift-starvation");
  TestParticipant participant;
  participant.SetRule("slow", "action", {{200}, kSlowStepMs, "{}"});
  TreatydOptions opts;
  opts.store = "sqlite:" + dir + "/log.db";
  TreatydProcess treatyd(dir, "treatyd", opts);
  ASSERT_TRUE(treatyd.Start().ok());
  const int port = ThriftPortOf(treatyd.url(), treatyd.http_addr());
  ASSERT_NE(port, 0);

  std::atomic<int> committed{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaitingClients; ++i) {
    waiters.emplace_back([&, i] {
      try {
        auto c = Connect(port);
        rpc::TxnStatus out;
        c->rpc->submitSaga(out, Saga(participant, "waiting-" + std::to_string(i), "slow", true));
        if (out.state == "COMMITTED") ++committed;
      } catch (const std::exception& e) {
        ADD_FAILURE() << "waiting submit " << i << ": " << e.what();
      }
    });
  }
  // The waiting calls are in progress once the participant holds their steps
  // (the old server let only four through; the others waited for a worker).
  ASSERT_TRUE(participant.WaitFor(
      [](const std::vector<TestParticipant::Call>& calls) {
        int n = 0;
        for (const auto& c : calls) n += c.branch == "slow" && c.op == "action";
        return n >= kOldWorkers;
      },
      std::chrono::seconds(20)));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));

  const auto start = steady_clock::now();
  auto other = Connect(port);
  rpc::Transaction txn;
  ASSERT_NO_THROW(other->rpc->getTransaction(txn, "waiting-0"));
  EXPECT_EQ(txn.state, "RUNNING");
  const auto read_took = steady_clock::now() - start;
  rpc::TxnStatus quick;
  ASSERT_NO_THROW(other->rpc->submitSaga(quick, Saga(participant, "quick", "fast", false)));
  const auto both_took = steady_clock::now() - start;
  std::printf(
      "getTransaction answered after %lld ms, getTransaction + submitSaga(wait=false) "
      "after %lld ms, while %d calls wait\n",
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(read_took).count()),
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(both_took).count()),
      kWaitingClients);
  EXPECT_LT(both_took, kAnswerBound);

  for (auto& t : waiters) t.join();
  EXPECT_EQ(committed.load(), kWaitingClients);
}

}  // namespace
}  // namespace treaty::testing
