// The Client over thrift:// against scripted loopback CoordinatorServices
// whose errors are thrown by the coordinator's own mapping
// (coordinator/thrift/rpc_convert.h ThrowStatus): a Conflict whose `code`
// is "not_owner" reads as kLostOwnership and moves the call on to another
// coordinator, as REST's 409 "not_owner" does (client_transport_test.cc);
// a Conflict without a code (a coordinator older than Conflict.code) stays
// a Conflict. A kept-alive connection the coordinator closes after acting on
// a call, before answering, is retried on a fresh one and the reply marked
// resent (the Client then reads "already COMMITTED" as the outcome); one
// closed after part of the answer is never retried. Real coordinators over
// Thrift: client_failover_test.cc.

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include <thrift/TProcessor.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TServerSocket.h>
#include <thrift/transport/TTransportException.h>

#include "CoordinatorService.h"
#include "coordinator_transport.h"
#include "thrift/rpc_convert.h"
#include "treaty/client.h"

namespace treaty::testing {
namespace {

namespace at = apache::thrift;
namespace sdk = treaty::sdk;
using treaty_sdk_detail::Delivery;

// A CoordinatorService on 127.0.0.1 (framed, binary, as treatyd's) whose
// 2PC calls answer as scripted (Answer; thread-safe): {gtid, state} for an
// OK status, else the exception ThrowStatus makes of it; AnswerOldConflict
// throws a Conflict without a code. getTransaction always answers the
// scripted state. Counts calls. DropNext: the next call acts, then its
// connection is closed unanswered (or after the start of an answer).
class LoopbackThriftCoordinator {
 public:
  enum class Drop {
    kNone,
    kBeforeAnswer,  // close without writing a byte of the answer
    kMidAnswer,     // write the start of a frame, then close
  };

  LoopbackThriftCoordinator() {
    at::GlobalOutput.setOutputFunction([](const char*) {});
    auto handler = std::make_shared<Handler>(this);
    auto socket = std::make_shared<at::transport::TServerSocket>("127.0.0.1", 0);
    socket_ = socket.get();
    server_ = std::make_unique<at::server::TThreadedServer>(
        std::make_shared<DroppingProcessor>(
            std::make_shared<rpc::CoordinatorServiceProcessor>(handler), this),
        socket, std::make_shared<at::transport::TFramedTransportFactory>(),
        std::make_shared<at::protocol::TBinaryProtocolFactory>());
    auto events = std::make_shared<Events>();
    server_->setServerEventHandler(events);
    auto listening = events->listening.get_future();
    thread_ = std::thread([this] {
      try {
        server_->serve();
      } catch (const std::exception&) {
      }
    });
    listening.wait();
  }
  ~LoopbackThriftCoordinator() {
    server_->stop();
    thread_.join();
  }
  LoopbackThriftCoordinator(const LoopbackThriftCoordinator&) = delete;
  LoopbackThriftCoordinator& operator=(const LoopbackThriftCoordinator&) = delete;

  std::string url() const { return "thrift://127.0.0.1:" + std::to_string(socket_->getPort()); }
  // What every call answers from now on: `state` when `s` is OK.
  void Answer(const Status& s, const std::string& state = "COMMITTED") {
    std::lock_guard<std::mutex> l(mu_);
    status_ = s;
    state_ = state;
    old_conflict_ = false;
  }
  void AnswerOldConflict(const std::string& message) {
    std::lock_guard<std::mutex> l(mu_);
    status_ = Status::Conflict(message);
    old_conflict_ = true;
  }
  int calls() const { return calls_.load(); }
  void DropNext(Drop d) {
    std::lock_guard<std::mutex> l(mu_);
    drop_ = d;
  }

 private:
  // Serves calls with `inner`, except one to drop (DropNext).
  class DroppingProcessor : public at::TProcessor {
   public:
    DroppingProcessor(std::shared_ptr<at::TProcessor> inner, LoopbackThriftCoordinator* c)
        : inner_(std::move(inner)), c_(c) {}
    bool process(std::shared_ptr<at::protocol::TProtocol> in,
                 std::shared_ptr<at::protocol::TProtocol> out, void* context) override {
      // The server calls this before the call arrives: wait for it first.
      if (!in->getTransport()->peek()) return false;
      const Drop drop = c_->TakeDrop();
      if (drop == Drop::kNone) return inner_->process(in, out, context);
      // The handler acts; its answer goes nowhere.
      auto sink = std::make_shared<at::protocol::TBinaryProtocol>(
          std::make_shared<at::transport::TMemoryBuffer>());
      inner_->process(in, sink, context);
      if (drop == Drop::kMidAnswer) {
        auto framed =
            std::dynamic_pointer_cast<at::transport::TFramedTransport>(out->getTransport());
        const uint8_t start[] = {0, 0, 0, 100, 0x80, 0x01};  // a 100-byte frame begins
        framed->getUnderlyingTransport()->write(start, sizeof(start));
        framed->getUnderlyingTransport()->flush();
      }
      // The server closes the connection.
      throw at::transport::TTransportException(at::transport::TTransportException::END_OF_FILE,
                                               "dropped by the test");
    }

   private:
    std::shared_ptr<at::TProcessor> inner_;
    LoopbackThriftCoordinator* c_;
  };

  Drop TakeDrop() {
    std::lock_guard<std::mutex> l(mu_);
    return std::exchange(drop_, Drop::kNone);
  }

  struct Handler : rpc::CoordinatorServiceNull {
    explicit Handler(LoopbackThriftCoordinator* c) : c(c) {}
    void begin2pc(rpc::TxnStatus& out, const rpc::Begin2pcRequest& req) override {
      c->Act(out, req.gtid);
    }
    void registerBranch(rpc::TxnStatus& out, const std::string& gtid,
                        const rpc::Branch2pc&) override {
      c->Act(out, gtid);
    }
    void commit2pc(rpc::TxnStatus& out, const std::string& gtid) override { c->Act(out, gtid); }
    void abort2pc(rpc::TxnStatus& out, const std::string& gtid) override { c->Act(out, gtid); }
    void getTransaction(rpc::Transaction& out, const std::string& gtid) override {
      ++c->calls_;
      std::lock_guard<std::mutex> l(c->mu_);
      out.gtid = gtid;
      out.kind = "2pc";
      out.state = c->state_;
    }
    LoopbackThriftCoordinator* c;
  };
  struct Events : at::server::TServerEventHandler {
    void preServe() override { listening.set_value(); }
    std::promise<void> listening;
  };

  void Act(rpc::TxnStatus& out, const std::string& gtid) {
    ++calls_;
    std::lock_guard<std::mutex> l(mu_);
    if (old_conflict_) {
      rpc::Conflict e;  // as an older coordinator throws it: no code
      e.message = status_.message();
      throw e;
    }
    if (!status_.ok()) ThrowStatus(status_);
    out.gtid = gtid;
    out.state = state_;
  }

  at::transport::TServerSocket* socket_ = nullptr;
  std::unique_ptr<at::server::TThreadedServer> server_;
  std::thread thread_;
  std::atomic<int> calls_{0};
  std::mutex mu_;
  Status status_;                    // guarded by mu_
  std::string state_ = "COMMITTED";  // guarded by mu_
  bool old_conflict_ = false;        // guarded by mu_
  Drop drop_ = Drop::kNone;          // guarded by mu_
};

TEST(ClientThriftTransportTest, ConflictCodesAreTyped) {
  LoopbackThriftCoordinator c;
  auto t = treaty_sdk_detail::MakeCoordinatorTransport(c.url(), {});
  struct Case {
    Status answer;
    StatusCode code;
  };
  const std::vector<Case> cases = {
      {Status::LostOwnership("transaction t is not owned by a"), StatusCode::kLostOwnership},
      {Status::Conflict("already COMMITTED"), StatusCode::kConflict},
      {Status::NotFound("no t"), StatusCode::kNotFound},
      {Status::InvalidArgument("bad"), StatusCode::kInvalidArgument},
      {Status::TooLarge("big"), StatusCode::kInvalidArgument},
      {Status::Unauthenticated("who"), StatusCode::kUnauthenticated},
      {Status::PermissionDenied("role 'submit'"), StatusCode::kPermissionDenied},
      {Status::Unavailable("draining"), StatusCode::kUnavailable},
      {Status::TimedOut("slow log"), StatusCode::kUnavailable},  // Thrift has no TimedOut
  };
  for (const auto& k : cases) {
    c.Answer(k.answer);
    auto r = t->Commit("t", 2000);
    ASSERT_EQ(r.delivery, Delivery::kAnswered) << r.message;
    EXPECT_EQ(r.code, k.code) << k.answer.ToString() << " -> " << ErrorCodeName(r.code);
  }
  // An older coordinator's Conflict has no code: a conflict.
  c.AnswerOldConflict("driven by coordinator 'a'");
  auto old = t->Commit("t", 2000);
  EXPECT_EQ(old.delivery, Delivery::kAnswered);
  EXPECT_EQ(old.code, StatusCode::kConflict);
  EXPECT_EQ(old.message, "driven by coordinator 'a'");
  // All on one kept-alive connection: typed exceptions leave it usable.
  EXPECT_EQ(t->connections_opened(), 1);
}

TEST(ClientThriftTransportTest, NotOwnerFailsOverToAnotherCoordinator) {
  LoopbackThriftCoordinator a, b;
  sdk::Client client({.coordinators = {a.url(), b.url()},
                      .request_timeout_ms = 2000,
                      .backoff_ms = 10,
                      .failover_timeout_ms = 5000});
  a.Answer(Status::Ok(), "ACTIVE");
  ASSERT_TRUE(client.Begin("t1").ok());  // a owns t1
  ASSERT_EQ(a.calls(), 1);

  // a lost t1 while committing it; b has taken it over and commits.
  a.Answer(Status::LostOwnership("transaction t1 is not owned by a"));
  b.Answer(Status::Ok(), "COMMITTED");
  auto r = client.Commit("t1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state, "COMMITTED");
  EXPECT_EQ(a.calls(), 2);
  EXPECT_EQ(b.calls(), 1);

  // Nobody takes it over within failover_timeout_ms: Unavailable naming
  // the last not_owner answer, escaped.
  LoopbackThriftCoordinator lone;
  lone.Answer(Status::LostOwnership("lost\nt2"));
  sdk::Client bounded({.coordinators = {lone.url()}, .backoff_ms = 20, .failover_timeout_ms = 400});
  auto s = bounded.Commit("t2").status();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("lost\\nt2"), std::string::npos) << s.message();
  EXPECT_GE(lone.calls(), 2);
}

TEST(ClientThriftTransportTest, AnOlderCoordinatorsConflictFromTheOwnerIsFinal) {
  LoopbackThriftCoordinator a, b;
  sdk::Client client({.coordinators = {a.url(), b.url()}, .backoff_ms = 10});
  a.Answer(Status::Ok(), "ACTIVE");
  ASSERT_TRUE(client.Begin("t1").ok());
  a.AnswerOldConflict("already ABORTED");
  auto r = client.Commit("t1");
  EXPECT_EQ(r.status().code(), StatusCode::kConflict) << r.status().ToString();
  EXPECT_EQ(b.calls(), 0);
}

TEST(ClientThriftTransportTest, AConnectionClosedAfterTheCallWasWrittenIsAResend) {
  LoopbackThriftCoordinator c;
  auto t = treaty_sdk_detail::MakeCoordinatorTransport(c.url(), {});
  auto first = t->Commit("t", 2000);
  ASSERT_EQ(first.delivery, Delivery::kAnswered) << first.message;
  EXPECT_FALSE(first.resent);

  // The coordinator acts on the call, then closes the kept-alive connection
  // unanswered: sent again on a fresh one, and marked as such.
  c.DropNext(LoopbackThriftCoordinator::Drop::kBeforeAnswer);
  auto again = t->Commit("t", 2000);
  ASSERT_EQ(again.delivery, Delivery::kAnswered) << again.message;
  EXPECT_EQ(again.code, StatusCode::kOk);
  EXPECT_TRUE(again.resent);
  EXPECT_EQ(c.calls(), 3);  // the dropped call acted too
  EXPECT_EQ(t->connections_opened(), 2);

  // Closed after part of the answer came: never sent again.
  c.DropNext(LoopbackThriftCoordinator::Drop::kMidAnswer);
  auto partial = t->Commit("t", 2000);
  EXPECT_EQ(partial.delivery, Delivery::kNoAnswer) << partial.message;
  EXPECT_FALSE(partial.resent);
  EXPECT_EQ(c.calls(), 4);
  EXPECT_EQ(t->connections_opened(), 2);
}

// The Client reads a resent Commit's "already COMMITTED" as the outcome of
// its own first copy, not as a conflict.
TEST(ClientThriftTransportTest, AResentCommitsConflictIsItsOutcome) {
  LoopbackThriftCoordinator c;
  sdk::Client client({.coordinators = {c.url()}, .request_timeout_ms = 2000, .backoff_ms = 10});
  c.Answer(Status::Ok(), "ACTIVE");
  ASSERT_TRUE(client.Begin("t1").ok());
  // The first copy commits and its answer is lost with the connection; the
  // second finds the transaction committed.
  c.Answer(Status::Conflict("transaction t1 is already COMMITTED"), "COMMITTED");
  c.DropNext(LoopbackThriftCoordinator::Drop::kBeforeAnswer);
  auto r = client.Commit("t1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state, "COMMITTED");
}

}  // namespace
}  // namespace treaty::testing
