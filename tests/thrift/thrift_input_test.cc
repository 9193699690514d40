// Untrusted input on treatyd's Thrift port, against
// a real treatyd child process on SQLite with a real HTTP participant:
//
// - Hostile frames (a list declared with 2^31-1 or 4 million elements in a
//   few bytes, huge string lengths, deep struct and list nesting, an
//   oversized frame): treatyd stays up, answers (TApplicationException) or
//   closes that connection, a normal call still works after, and its
//   resident memory does not grow by more than 64 MiB.
// - Strings that break the input rules (a non-UTF-8 byte in a step name, an
//   action URL, a gtid or a payload; NUL in a name; a deep payload):
//   InvalidRequest naming the field, never echoing the bytes; a valid saga
//   still succeeds.

#include <gtest/gtest.h>

#include <climits>
#include <memory>
#include <string>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include "CoordinatorService.h"
#include "common/text.h"
#include "support/subprocess.h"
#include "support/test_participant.h"
#include "support/treatyd_process.h"
#include "thrift/thrift_wire.h"

namespace treaty::testing {
namespace {

namespace at = apache::thrift;

constexpr int64_t kMaxGrowthKib = 64 * 1024;

class ThriftInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("treaty-thrift-input"));
    participant_ = new TestParticipant();
    TreatydOptions opts;
    opts.store = "sqlite:" + *dir_ + "/log.db";
    treatyd_ = new TreatydProcess(*dir_, "treatyd", opts);
    start_error_ = new std::string();
    if (Status s = treatyd_->Start(); !s.ok()) {
      *start_error_ = s.ToString();
      return;
    }
    thrift_port_ = ThriftPortOf(treatyd_->url(), treatyd_->http_addr());
    if (thrift_port_ == 0) *start_error_ = "no thrift port in /v1/cluster";
  }
  static void TearDownTestSuite() {
    delete treatyd_;
    delete participant_;
    delete start_error_;
    delete dir_;
  }
  void SetUp() override { ASSERT_TRUE(start_error_->empty()) << *start_error_; }

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
  static std::unique_ptr<Client> Connect() {
    auto c = std::make_unique<Client>();
    auto socket = std::make_shared<at::transport::TSocket>("127.0.0.1", thrift_port_);
    socket->setRecvTimeout(30000);
    c->transport = std::make_shared<at::transport::TFramedTransport>(socket);
    c->transport->open();
    c->rpc = std::make_unique<rpc::CoordinatorServiceClient>(
        std::make_shared<at::protocol::TBinaryProtocol>(c->transport));
    return c;
  }

  static rpc::SagaStep Step(const std::string& name) {
    rpc::SagaStep s;
    s.name = name;
    s.action = participant_->Url(name, "action");
    s.compensate = participant_->Url(name, "compensate");
    return s;
  }
  static rpc::SagaRequest Saga(const std::string& gtid, const std::string& step) {
    rpc::SagaRequest req;
    req.__set_gtid(gtid);
    req.steps.push_back(Step(step));
    return req;
  }

  // A valid saga over a fresh connection, waited for: COMMITTED.
  static void ExpectValidSagaCommits(const std::string& gtid) {
    auto c = Connect();
    rpc::SagaRequest req = Saga(gtid, "ok");
    req.__set_wait(true);
    rpc::TxnStatus out;
    ASSERT_NO_THROW(c->rpc->submitSaga(out, req));
    EXPECT_EQ(out.state, "COMMITTED");
    rpc::Transaction txn;
    ASSERT_NO_THROW(c->rpc->getTransaction(txn, gtid));
    EXPECT_EQ(txn.gtid, gtid);
  }

  // submitSaga(req) must fail with InvalidRequest whose message names
  // `field` and is clean text.
  static void ExpectInvalid(const rpc::SagaRequest& req, const std::string& field) {
    auto c = Connect();
    rpc::TxnStatus out;
    try {
      c->rpc->submitSaga(out, req);
      ADD_FAILURE() << "accepted; expected InvalidRequest naming " << field;
    } catch (const rpc::InvalidRequest& e) {
      EXPECT_NE(e.message.find(field), std::string::npos) << e.message;
      EXPECT_TRUE(IsValidUtf8(e.message));
      EXPECT_EQ(e.message.find('\0'), std::string::npos);
    }
  }

  static std::string* dir_;
  static TestParticipant* participant_;
  static TreatydProcess* treatyd_;
  static std::string* start_error_;
  static int thrift_port_;
};

std::string* ThriftInputTest::dir_ = nullptr;
TestParticipant* ThriftInputTest::participant_ = nullptr;
TreatydProcess* ThriftInputTest::treatyd_ = nullptr;
std::string* ThriftInputTest::start_error_ = nullptr;
int ThriftInputTest::thrift_port_ = 0;

// submitSaga whose SagaRequest.steps declares `count` structs, then ends.
std::string StepsListFrame(int32_t count) {
  ThriftWriter w;
  w.MessageBegin("submitSaga")
      .Field(ttype::kStruct, 1)
      .Field(ttype::kList, 2)
      .ListBegin(ttype::kStruct, count)
      .Stop()
      .Stop();
  return Frame(w.bytes());
}

// submitSaga whose gtid declares `length` bytes and carries none.
std::string GtidLengthFrame(int32_t length) {
  ThriftWriter w;
  w.MessageBegin("submitSaga").Field(ttype::kStruct, 1).Field(ttype::kString, 1).I32(length);
  return Frame(w.bytes());
}

// submitSaga whose request carries an unknown field of structs nested
// `depth` deep (skipped by the reader, recursively).
std::string DeepStructFrame(int depth) {
  ThriftWriter w;
  w.MessageBegin("submitSaga").Field(ttype::kStruct, 1);
  for (int i = 0; i < depth; ++i) w.Field(ttype::kStruct, 99);
  for (int i = 0; i < depth; ++i) w.Stop();
  w.Stop().Stop();
  return Frame(w.bytes());
}

// An unknown field of lists of lists, `depth` deep.
std::string DeepListFrame(int depth) {
  ThriftWriter w;
  w.MessageBegin("submitSaga").Field(ttype::kStruct, 1).Field(ttype::kList, 98);
  for (int i = 0; i < depth; ++i) w.ListBegin(ttype::kList, 1);
  w.ListBegin(ttype::kI32, 0);
  w.Stop().Stop();
  return Frame(w.bytes());
}

// An unknown field: a map declaring `count` string->string entries.
std::string MapFrame(int32_t count) {
  ThriftWriter w;
  w.MessageBegin("submitSaga")
      .Field(ttype::kStruct, 1)
      .Field(ttype::kMap, 97)
      .I8(ttype::kString)
      .I8(ttype::kString)
      .I32(count)
      .Stop()
      .Stop();
  return Frame(w.bytes());
}

TEST_F(ThriftInputTest, HostileFramesNeitherKillNorBloatTreatyd) {
  ExpectValidSagaCommits("t-before-frames");
  const int64_t rss_before = ResidentKib(treatyd_->proc().pid());
  ASSERT_GT(rss_before, 0);

  const std::string list_max = StepsListFrame(INT32_MAX);
  EXPECT_EQ(list_max.size(), 39u);  // the reported frame
  const struct {
    const char* what;
    std::string frame;
  } cases[] = {
      {"list of 2^31-1 steps", list_max},
      {"list of 4 million steps", StepsListFrame(4'000'000)},
      {"list of 65536 steps in a small frame", StepsListFrame(65536)},
      {"gtid of 2^31-1 bytes", GtidLengthFrame(INT32_MAX)},
      {"gtid of 8 MiB - 1 bytes in a small frame", GtidLengthFrame(8 * 1024 * 1024 - 1)},
      {"negative string length", GtidLengthFrame(-5)},
      {"structs nested 10000 deep", DeepStructFrame(10000)},
      {"lists nested 10000 deep", DeepListFrame(10000)},
      {"map of 2^31-1 entries", MapFrame(INT32_MAX)},
      {"map of 4 million entries", MapFrame(4'000'000)},
      {"frame declaring 2 GiB", ThriftWriter().I32(INT32_MAX).Raw("x").bytes()},
  };
  // Each frame several times, so every worker thread meets each one.
  for (int round = 0; round < 4; ++round) {
    for (const auto& c : cases) {
      SCOPED_TRACE(c.what);
      WireReply r = SendRaw(thrift_port_, c.frame, 10000);
      ASSERT_TRUE(r.connected);
      EXPECT_FALSE(r.timed_out) << "neither answered nor closed";
      if (!r.frame.empty()) EXPECT_EQ(r.message_type(), 3) << "expected an exception reply";
      ASSERT_TRUE(treatyd_->running() && treatyd_->proc().Wait(0) < 0) << "treatyd exited:\n"
                                                                       << treatyd_->Log();
    }
  }
  ExpectValidSagaCommits("t-after-frames");
  const int64_t rss_after = ResidentKib(treatyd_->proc().pid());
  EXPECT_LT(rss_after - rss_before, kMaxGrowthKib)
      << "resident memory grew from " << rss_before << " KiB to " << rss_after << " KiB";
}

TEST_F(ThriftInputTest, ConnectionKeepsServingAfterARefusedFrame) {
  // A refused request is answered on its connection; the next frame on the
  // same connection is a normal call.
  auto c = Connect();
  rpc::TxnStatus out;
  EXPECT_THROW(c->rpc->submitSaga(out, Saga("t-\xff", "a")), rpc::InvalidRequest);
  EXPECT_NO_THROW(c->rpc->submitSaga(out, Saga("t-same-connection", "ok")));
  EXPECT_EQ(out.gtid, "t-same-connection");
}

TEST_F(ThriftInputTest, NonUtf8StepNameIsInvalidRequest) {
  ExpectInvalid(Saga("t-name", "a\xff"), "steps[0].name");
  ExpectInvalid(Saga("t-name2", "\xc3"), "steps[0].name");  // a cut character
  ExpectValidSagaCommits("t-after-name");
}

TEST_F(ThriftInputTest, NulInStepNameIsInvalidRequest) {
  ExpectInvalid(Saga("t-nul", std::string("a\0b", 3)), "steps[0].name");
  rpc::SagaRequest after = Saga("t-nul-after", "a");
  after.__set_concurrent(true);
  after.steps[0].__set_after({std::string("x\0", 2)});
  ExpectInvalid(after, "'after'");
  ExpectValidSagaCommits("t-after-nul");
}

TEST_F(ThriftInputTest, NonUtf8ActionUrlIsInvalidRequest) {
  rpc::SagaRequest req = Saga("t-url", "a");
  req.steps[0].action += "\xff";
  ExpectInvalid(req, "'action'");
  req = Saga("t-url2", "a");
  req.steps[0].compensate = "http://127.0.0.1:1/\r\nHost: evil";
  ExpectInvalid(req, "'compensate'");
  req = Saga("t-url3", "a");
  req.steps[0].action = "thrift://h:abc";
  ExpectInvalid(req, "'action'");
  ExpectValidSagaCommits("t-after-url");
}

TEST_F(ThriftInputTest, NonUtf8GtidIsInvalidRequest) {
  ExpectInvalid(Saga("t-\xff", "a"), "'gtid'");
  ExpectInvalid(Saga(std::string("t\0x", 3), "a"), "'gtid'");
  // Every call that takes a gtid checks it.
  auto c = Connect();
  rpc::TxnStatus out;
  rpc::Transaction txn;
  EXPECT_THROW(c->rpc->getTransaction(txn, "g\xff"), rpc::InvalidRequest);
  EXPECT_THROW(c->rpc->commit2pc(out, "g\xff"), rpc::InvalidRequest);
  EXPECT_THROW(c->rpc->abort2pc(out, "g\xfe"), rpc::InvalidRequest);
  EXPECT_THROW(c->rpc->retryTransaction(out, "g\x80", ""), rpc::InvalidRequest);
  EXPECT_THROW(c->rpc->abortTransaction(out, "g\xc0\xaf", ""), rpc::InvalidRequest);
  EXPECT_THROW(c->rpc->pauseTransaction(out, "g\xff", ""), rpc::InvalidRequest);
  EXPECT_THROW(c->rpc->resumeTransaction(out, "g\xff", ""), rpc::InvalidRequest);
  EXPECT_THROW(c->rpc->resolveBranch(out, "g\xff", "b", "COMMITTED", "fixed"), rpc::InvalidRequest);
  rpc::Branch2pc b;
  b.name = "b";
  b.prepare = b.commit = b.abort = participant_->Url("b", "x");
  EXPECT_THROW(c->rpc->registerBranch(out, "g\xff", b), rpc::InvalidRequest);
  ExpectValidSagaCommits("t-after-gtid");
}

// The operator actions' strings (a reason, a branch name, an outcome) follow
// the same rules as over REST: InvalidRequest naming the field, never the bytes.
TEST_F(ThriftInputTest, BadOperatorInputIsInvalidRequest) {
  auto c = Connect();
  rpc::TxnStatus out;
  const auto expect_invalid = [&](auto call, const std::string& field) {
    try {
      call();
      ADD_FAILURE() << "accepted; expected InvalidRequest naming " << field;
    } catch (const rpc::InvalidRequest& e) {
      EXPECT_NE(e.message.find(field), std::string::npos) << e.message;
      EXPECT_TRUE(IsValidUtf8(e.message)) << e.message;
      EXPECT_EQ(e.message.find('\xff'), std::string::npos);
    }
  };
  expect_invalid([&] { c->rpc->pauseTransaction(out, "op-g", "why \xff"); }, "'reason'");
  expect_invalid([&] { c->rpc->retryTransaction(out, "op-g", std::string(1025, 'r')); },
                 "'reason'");
  expect_invalid([&] { c->rpc->abortTransaction(out, "op-g", "line\nforged"); }, "'reason'");
  expect_invalid([&] { c->rpc->resumeTransaction(out, "op-g", std::string("nul\0x", 5)); },
                 "'reason'");
  expect_invalid([&] { c->rpc->resolveBranch(out, "op-g", "b", "COMMITTED", ""); }, "'reason'");
  expect_invalid([&] { c->rpc->resolveBranch(out, "op-g", "b", "DONE", "fixed"); }, "'outcome'");
  expect_invalid([&] { c->rpc->resolveBranch(out, "op-g", "b\xff", "COMMITTED", "fixed"); },
                 "'branch'");
  expect_invalid([&] { c->rpc->resolveBranch(out, "op-g", "", "ABORTED", "fixed"); }, "'branch'");
  // Well-formed input on an unknown gtid reaches the core: NotFound.
  EXPECT_THROW(c->rpc->pauseTransaction(out, "op-unknown", "maintenance"), rpc::NotFound);
  EXPECT_THROW(c->rpc->resolveBranch(out, "op-unknown", "b", "ABORTED", "fixed by hand"),
               rpc::NotFound);
  ExpectValidSagaCommits("t-after-operator");
}

TEST_F(ThriftInputTest, BadPayloadIsInvalidRequest) {
  rpc::SagaRequest req = Saga("t-payload", "a");
  req.steps[0].__set_payload("\"\xff\"");
  ExpectInvalid(req, "steps[0].payload");
  req.steps[0].__set_payload(std::string(100000, '[') + std::string(100000, ']'));
  ExpectInvalid(req, "steps[0].payload");
  // A payload is limited on its own to 32 levels (limits::kMaxPayloadDepth),
  // as over REST, so the participant call that carries it stays within 64.
  req.steps[0].__set_payload(std::string(33, '[') + std::string(33, ']'));
  ExpectInvalid(req, "steps[0].payload");
  // At the limit is fine.
  req.steps[0].__set_payload(std::string(32, '[') + std::string(32, ']'));
  req.__set_wait(true);
  auto c = Connect();
  rpc::TxnStatus out;
  EXPECT_NO_THROW(c->rpc->submitSaga(out, req));
  EXPECT_EQ(out.state, "COMMITTED");

  // A 2PC branch's payload too.
  rpc::Begin2pcRequest begin;
  begin.__set_gtid("t-2pc-payload");
  ASSERT_NO_THROW(c->rpc->begin2pc(out, begin));
  rpc::Branch2pc b;
  b.name = "b";
  b.prepare = participant_->Url("b", "prepare");
  b.commit = participant_->Url("b", "commit");
  b.abort = participant_->Url("b", "abort");
  b.__set_payload(std::string(1000, '{') + "\xff");
  EXPECT_THROW(c->rpc->registerBranch(out, "t-2pc-payload", b), rpc::InvalidRequest);
  b.name = "b\xff";
  b.__set_payload("{}");
  EXPECT_THROW(c->rpc->registerBranch(out, "t-2pc-payload", b), rpc::InvalidRequest);
  ExpectValidSagaCommits("t-after-payload");
}

TEST_F(ThriftInputTest, BadListArgumentsAreInvalidRequest) {
  auto c = Connect();
  rpc::TxnPage page;
  rpc::ListRequest req;
  req.__set_cursor("1.ff");
  EXPECT_THROW(c->rpc->listTransactions(page, req), rpc::InvalidRequest);
  req = rpc::ListRequest();
  req.__set_cursor("\xff");
  EXPECT_THROW(c->rpc->listTransactions(page, req), rpc::InvalidRequest);
  req = rpc::ListRequest();
  req.__set_state("RUNNING\xff");
  EXPECT_THROW(c->rpc->listTransactions(page, req), rpc::InvalidRequest);
  req = rpc::ListRequest();
  req.__set_limit(5);
  EXPECT_NO_THROW(c->rpc->listTransactions(page, req));
}

}  // namespace
}  // namespace treaty::testing
