// The SDK's Thrift ParticipantService under untrusted input: an
// in-process ParticipantServer serving Thrift on loopback.
//
// - Hostile frames (a string declared 2^31-1 bytes long, containers of 2^31-1
//   and 4 million elements, deep nesting, an oversized frame): the server
//   (this process) stays up, answers or closes that connection, a normal
//   call still works after, and resident memory grows by less than 64 MiB.
// - Calls whose gtid, branch or payload break the input rules are answered
//   with a TApplicationException and never reach the handler.

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <climits>
#include <memory>
#include <string>

#include <thrift/TApplicationException.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include "ParticipantService.h"
#include "thrift/thrift_wire.h"
#include "treaty/participant_server.h"

namespace treaty::testing {
namespace {

namespace at = apache::thrift;
namespace sdk = treaty::sdk;

constexpr int64_t kMaxGrowthKib = 64 * 1024;

class ThriftLimitsSdkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sdk::ParticipantServerOptions options;
    options.thrift_port = 0;
    options.handler_threads = 4;
    server_ = std::make_unique<sdk::ParticipantServer>(options);
    auto count = [this](const sdk::CallContext&) {
      ++handled_;
      return treaty::Status::Ok();
    };
    server_->AddSagaStep("book", count, count);
    auto s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    port_ = server_->thrift_port();
    ASSERT_NE(port_, 0);
  }

  struct Client {
    std::shared_ptr<at::transport::TTransport> transport;
    std::unique_ptr<rpc::ParticipantServiceClient> rpc;
    ~Client() {
      try {
        transport->close();
      } catch (...) {
      }
    }
  };
  std::unique_ptr<Client> Connect() {
    auto c = std::make_unique<Client>();
    auto socket = std::make_shared<at::transport::TSocket>("127.0.0.1", port_);
    socket->setRecvTimeout(20000);
    c->transport = std::make_shared<at::transport::TFramedTransport>(socket);
    c->transport->open();
    c->rpc = std::make_unique<rpc::ParticipantServiceClient>(
        std::make_shared<at::protocol::TBinaryProtocol>(c->transport));
    return c;
  }

  static rpc::ParticipantCall Call(const std::string& gtid, const std::string& branch) {
    rpc::ParticipantCall call;
    call.gtid = gtid;
    call.branch = branch;
    call.op = "action";
    call.payload = "{\"seat\":\"1A\"}";
    call.idempotency_key = gtid + "/" + branch + "/action";
    return call;
  }

  // A normal action on a fresh connection: OK, and the handler ran.
  void ExpectNormalCallWorks(const std::string& gtid) {
    const int before = handled_;
    auto c = Connect();
    rpc::ParticipantReply reply;
    ASSERT_NO_THROW(c->rpc->action(reply, Call(gtid, "book")));
    EXPECT_EQ(reply.outcome, rpc::Outcome::OK);
    EXPECT_EQ(handled_, before + 1);
  }

  // The call is answered with a TApplicationException naming `field`, and
  // the handler never sees it.
  void ExpectRefused(const rpc::ParticipantCall& call, const std::string& field) {
    const int before = handled_;
    auto c = Connect();
    rpc::ParticipantReply reply;
    try {
      c->rpc->action(reply, call);
      ADD_FAILURE() << "accepted; expected a refusal naming " << field;
    } catch (const at::TApplicationException& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
    EXPECT_EQ(handled_, before);
  }

  std::unique_ptr<sdk::ParticipantServer> server_;
  std::atomic<int> handled_{0};
  int port_ = 0;
};

// action() whose ParticipantCall starts with field `id` of `type`; the
// caller appends the rest.
ThriftWriter ActionWith(uint8_t type, int16_t id) {
  ThriftWriter w;
  w.MessageBegin("action").Field(ttype::kStruct, 1).Field(type, id);
  return w;
}

TEST_F(ThriftLimitsSdkTest, HostileFramesNeitherKillNorBloatTheServer) {
  ExpectNormalCallWorks("g-before");
  const int64_t rss_before = ResidentKib(::getpid());
  ASSERT_GT(rss_before, 0);

  ThriftWriter deep_structs = ActionWith(ttype::kStruct, 99);
  for (int i = 0; i < 10000; ++i) deep_structs.Field(ttype::kStruct, 1);
  ThriftWriter deep_lists = ActionWith(ttype::kList, 98);
  for (int i = 0; i < 10000; ++i) deep_lists.ListBegin(ttype::kList, 1);
  const struct {
    const char* what;
    std::string frame;
  } cases[] = {
      {"gtid of 2^31-1 bytes", Frame(ActionWith(ttype::kString, 1).I32(INT32_MAX).bytes())},
      {"gtid of 16 MiB - 1 bytes in a small frame",
       Frame(ActionWith(ttype::kString, 1).I32(16 * 1024 * 1024 - 1).bytes())},
      {"payload of 8 MiB - 1 bytes in a small frame",
       Frame(ActionWith(ttype::kString, 4).I32(8 * 1024 * 1024 - 1).bytes())},
      {"list of 2^31-1 structs",
       Frame(ActionWith(ttype::kList, 97).ListBegin(ttype::kStruct, INT32_MAX).bytes())},
      {"list of 4 million strings",
       Frame(ActionWith(ttype::kList, 97).ListBegin(ttype::kString, 4'000'000).bytes())},
      {"map of 2^31-1 entries", Frame(ActionWith(ttype::kMap, 96)
                                          .I8(ttype::kString)
                                          .I8(ttype::kStruct)
                                          .I32(INT32_MAX)
                                          .bytes())},
      {"structs nested 10000 deep", Frame(deep_structs.bytes())},
      {"lists nested 10000 deep", Frame(deep_lists.bytes())},
      {"frame declaring 2 GiB", ThriftWriter().I32(INT32_MAX).Raw("x").bytes()},
  };
  for (int round = 0; round < 4; ++round) {
    for (const auto& c : cases) {
      SCOPED_TRACE(c.what);
      WireReply r = SendRaw(port_, c.frame, 10000);
      ASSERT_TRUE(r.connected);
      EXPECT_FALSE(r.timed_out) << "neither answered nor closed";
      if (!r.frame.empty()) EXPECT_EQ(r.message_type(), 3) << "expected an exception reply";
    }
  }
  ExpectNormalCallWorks("g-after");
  const int64_t rss_after = ResidentKib(::getpid());
  EXPECT_LT(rss_after - rss_before, kMaxGrowthKib)
      << "resident memory grew from " << rss_before << " KiB to " << rss_after << " KiB";
}

TEST_F(ThriftLimitsSdkTest, CallsBreakingTheInputRulesNeverReachTheHandler) {
  ExpectRefused(Call("g\xff", "book"), "'gtid'");
  ExpectRefused(Call(std::string("g\0h", 3), "book"), "'gtid'");
  ExpectRefused(Call("g-1", "bo\xffok"), "'branch'");
  ExpectRefused(Call("..", "book"), "'gtid'");
  rpc::ParticipantCall deep = Call("g-2", "book");
  deep.payload = std::string(100000, '[') + std::string(100000, ']');
  ExpectRefused(deep, "'payload'");
  rpc::ParticipantCall bad_utf8 = Call("g-3", "book");
  bad_utf8.payload = "\"\xc3\"";
  ExpectRefused(bad_utf8, "'payload'");
  rpc::ParticipantCall other_key = Call("g-4", "book");
  other_key.idempotency_key = "g-5/book/action";
  ExpectRefused(other_key, "'idempotency_key'");
  ExpectNormalCallWorks("g-after-refusals");
}

}  // namespace
}  // namespace treaty::testing
