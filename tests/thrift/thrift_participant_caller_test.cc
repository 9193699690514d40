// ThriftParticipantCaller against real loopback Thrift servers: which
// failures are configuration errors (ParticipantResponse::config_error) and
// which are passing faults.

#include "thrift/thrift_participant_caller.h"

#include <netdb.h>

#include <chrono>
#include <future>
#include <memory>
#include <thread>

#include <gtest/gtest.h>
#include <thrift/TOutput.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/server/TNonblockingServer.h>
#include <thrift/transport/TNonblockingServerSocket.h>

#include "CoordinatorService.h"
#include "support/thrift_test_participant.h"

namespace treaty {
namespace {

using namespace std::chrono_literals;
namespace at = apache::thrift;

// A Thrift server on loopback that speaks framed/binary but serves another
// service (the coordinator's, with a do-nothing handler): every
// ParticipantService method is unknown to it.
class WrongServiceServer {
 public:
  WrongServiceServer() {
    at::GlobalOutput.setOutputFunction([](const char*) {});
    auto processor = std::make_shared<rpc::CoordinatorServiceProcessor>(
        std::make_shared<rpc::CoordinatorServiceNull>());
    auto socket = std::make_shared<at::transport::TNonblockingServerSocket>("127.0.0.1", 0);
    server_ = std::make_unique<at::server::TNonblockingServer>(
        processor, std::make_shared<at::protocol::TBinaryProtocolFactory>(), socket);
    std::promise<void> bound;
    auto bound_future = bound.get_future();
    loop_ = std::thread([this, &bound] {
      server_->registerEvents(nullptr);
      port_ = static_cast<uint16_t>(server_->getListenPort());
      bound.set_value();
      try {
        server_->serve();
      } catch (const std::exception&) {
      }
      done_ = true;
    });
    bound_future.wait();
  }
  ~WrongServiceServer() {
    while (!done_) {
      server_->stop();
      std::this_thread::sleep_for(20ms);
    }
    loop_.join();
  }
  std::string Url() const { return "thrift://127.0.0.1:" + std::to_string(port_); }

 private:
  std::unique_ptr<at::server::TNonblockingServer> server_;
  std::thread loop_;
  std::atomic<bool> done_{false};
  uint16_t port_ = 0;
};

ParticipantResponse CallSync(ThriftParticipantCaller& caller, const std::string& url,
                             const std::string& op) {
  ParticipantRequest req;
  req.url = url;
  req.gtid = "g1";
  req.branch = "b1";
  req.op = op;
  req.payload_json = "{}";
  req.timeout_ms = 5000;
  std::promise<ParticipantResponse> done;
  auto fut = done.get_future();
  caller.Call(req, [&done](ParticipantResponse r) { done.set_value(std::move(r)); });
  EXPECT_EQ(fut.wait_for(30s), std::future_status::ready);
  return fut.get();
}

TEST(ThriftParticipantCallerTest, UnknownMethodIsAConfigError) {
  WrongServiceServer wrong;
  ThriftParticipantCaller caller(ThriftCallerOptions{});
  auto r = CallSync(caller, wrong.Url(), "commit");
  EXPECT_EQ(r.outcome, CallOutcome::kTransient);
  EXPECT_TRUE(r.config_error) << r.error;
  EXPECT_NE(r.error.find("does not know the method 'commit'"), std::string::npos) << r.error;
}

// As over HTTP: "no such name" from this machine's resolver is a
// configuration error; a resolver that cannot answer now (EAI_AGAIN, e.g. no
// DNS server reachable) is a passing fault.
TEST(ThriftParticipantCallerTest, UnresolvableHostIsAConfigError) {
  ThriftParticipantCaller caller(ThriftCallerOptions{});
  auto r = CallSync(caller, "thrift://no-such-participant.invalid:9090", "commit");
  EXPECT_EQ(r.outcome, CallOutcome::kTransient);
  addrinfo* found = nullptr;
  const int gai = getaddrinfo("no-such-participant.invalid", nullptr, nullptr, &found);
  if (found) freeaddrinfo(found);
  ASSERT_NE(gai, 0) << "the resolver claims a name under .invalid exists";
  const bool no_such_name = gai == EAI_NONAME
#ifdef EAI_NODATA
                            || gai == EAI_NODATA
#endif
      ;
  EXPECT_EQ(r.config_error, no_such_name) << r.error << "; getaddrinfo: " << gai_strerror(gai);
  EXPECT_NE(r.error.find("host 'no-such-participant.invalid' does not resolve"), std::string::npos)
      << r.error;
}

TEST(ThriftParticipantCallerTest, PassingFaultsAreNotConfigErrors) {
  ThriftTestParticipant participant;
  participant.SetRule("b1", "prepare", {{ThriftTestParticipant::Reply::kOk}});
  participant.SetRule("b1", "commit", {{ThriftTestParticipant::Reply::kRetry}});
  participant.SetRule("b1", "abort", {{ThriftTestParticipant::Reply::kThrow}});
  ThriftParticipantCaller caller(ThriftCallerOptions{});

  auto ok = CallSync(caller, participant.Url(), "prepare");
  EXPECT_EQ(ok.outcome, CallOutcome::kOk);
  EXPECT_FALSE(ok.config_error);

  auto retry = CallSync(caller, participant.Url(), "commit");
  EXPECT_EQ(retry.outcome, CallOutcome::kTransient);
  EXPECT_FALSE(retry.config_error) << retry.error;

  auto raised = CallSync(caller, participant.Url(), "abort");  // handler threw
  EXPECT_EQ(raised.outcome, CallOutcome::kTransient);
  EXPECT_FALSE(raised.config_error) << raised.error;

  auto refused = CallSync(caller, "thrift://127.0.0.1:1", "commit");
  EXPECT_EQ(refused.outcome, CallOutcome::kTransient);
  EXPECT_FALSE(refused.config_error) << refused.error;
}

}  // namespace
}  // namespace treaty
