// Deterministic fuzz of treatyd's Thrift front end: valid
// submitSaga messages serialized by the generated client, then mutated
// (bytes flipped, hostile 32-bit values written over length fields,
// truncated, bytes inserted, wrong frame lengths, plain random bytes), each
// sent as one frame on a fresh connection to a real treatyd child on a
// SQLite log. Every case must be answered with a well-formed reply or
// exception, or have its connection closed; the server stays up; afterwards
// a valid submitSaga succeeds and every saga that was acknowledged is found
// with GET /v1/transactions/{gtid}.
//
// Seed and case count: TREATY_FUZZ_SEED / TREATY_FUZZ_CASES (fuzz_support.h).

#include <gtest/gtest.h>

#include <climits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <thrift/TApplicationException.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include "CoordinatorService.h"
#include "fuzz_support.h"
#include "support/test_participant.h"
#include "thrift/thrift_wire.h"

namespace treaty::fuzz {
namespace {

namespace at = apache::thrift;
using testing::SendRaw;
using testing::ThriftWriter;
using testing::WireReply;

constexpr uint64_t kDefaultSeed = 0x7417f7u;
constexpr int kDefaultCases = 3000;

// A valid submitSaga of case `index`: 1 to 3 steps, sometimes concurrent with
// `after`, a payload, retry settings, wait or not.
rpc::SagaRequest ValidSaga(FuzzRandom& rnd, const TestParticipant& participant, int index) {
  rpc::SagaRequest req;
  req.__set_gtid("fz-" + std::to_string(index));
  const int steps = static_cast<int>(rnd.Int(1, 3));
  const bool concurrent = rnd.Chance(0.3);
  if (concurrent) req.__set_concurrent(true);
  for (int i = 0; i < steps; ++i) {
    rpc::SagaStep s;
    s.name = "s" + std::to_string(i);
    s.action = participant.Url(s.name, "action");
    s.compensate = participant.Url(s.name, "compensate");
    if (rnd.Chance(0.6)) s.__set_payload("{\"n\":" + std::to_string(rnd.Int(0, 999)) + "}");
    if (concurrent && i > 0) s.__set_after({"s0"});
    if (rnd.Chance(0.3)) {
      rpc::RetryPolicy p;
      p.__set_max_attempts(static_cast<int32_t>(rnd.Int(1, 3)));
      s.__set_retry_policy(p);
    }
    req.steps.push_back(std::move(s));
  }
  if (rnd.Chance(0.2)) req.__set_timeout_ms(rnd.Int(1000, 60000));
  return req;
}

// The message (without frame) the generated client sends for `req`.
std::string Serialize(const rpc::SagaRequest& req) {
  auto buffer = std::make_shared<at::transport::TMemoryBuffer>();
  rpc::CoordinatorServiceClient client(std::make_shared<at::protocol::TBinaryProtocol>(buffer));
  client.send_submitSaga(req);
  return buffer->getBufferAsString();
}

// One mutation of `msg`, framed; `kind` says which for failure reports.
std::string Mutate(FuzzRandom& rnd, std::string msg, std::string* kind) {
  static const std::vector<int32_t> kHostile = {INT32_MAX,  INT32_MIN, -1,      0,
                                                4'000'000,  65536,     65537,   1 << 24,
                                                0x7fff0000, 255,       1 << 20, 8 * 1024 * 1024};
  auto pos = [&] { return static_cast<size_t>(rnd.Int(0, static_cast<int64_t>(msg.size()) - 1)); };
  switch (rnd.Int(0, 7)) {
    case 0:
    case 1: {  // a few bytes flipped
      *kind = "flip";
      const int n = static_cast<int>(rnd.Int(1, 4));
      for (int i = 0; i < n; ++i) msg[pos()] ^= static_cast<char>(rnd.Int(1, 255));
      return testing::Frame(msg);
    }
    case 2: {  // a hostile 32-bit value over what may be a length
      *kind = "hostile-int";
      const size_t at = std::min(pos(), msg.size() - 4);
      const std::string v = ThriftWriter().I32(rnd.Pick(kHostile)).bytes();
      msg.replace(at, 4, v);
      return testing::Frame(msg);
    }
    case 3: {  // truncated
      *kind = "truncate";
      return testing::Frame(msg.substr(0, pos()));
    }
    case 4: {  // random bytes inserted
      *kind = "insert";
      msg.insert(pos(), rnd.Bytes(static_cast<size_t>(rnd.Int(1, 16))));
      return testing::Frame(msg);
    }
    case 5: {  // frame length that lies (the connection is half-closed)
      *kind = "frame-length";
      ThriftWriter w;
      w.I32(static_cast<int32_t>(msg.size()) + static_cast<int32_t>(rnd.Int(-8, 8)));
      return w.bytes() + msg;
    }
    case 6: {  // a random body after a valid header prefix
      *kind = "random-tail";
      return testing::Frame(msg.substr(0, pos()) + rnd.Bytes(static_cast<size_t>(rnd.Int(0, 64))));
    }
    default: {  // random bytes
      *kind = "random";
      return rnd.Bytes(static_cast<size_t>(rnd.Int(0, 64)));
    }
  }
}

// The reply frame as the generated client reads it: "" and sets *acked when
// it is a submitSaga result; "" for a typed or application exception; else
// why it is not a well-formed answer.
std::string ReadReply(const std::string& frame, std::string* acked) {
  auto buffer = std::make_shared<at::transport::TMemoryBuffer>(
      reinterpret_cast<uint8_t*>(const_cast<char*>(frame.data())),
      static_cast<uint32_t>(frame.size()));
  rpc::CoordinatorServiceClient client(std::make_shared<at::protocol::TBinaryProtocol>(buffer));
  try {
    rpc::TxnStatus out;
    client.recv_submitSaga(out);
    *acked = out.gtid;
    return out.gtid.empty() ? "a result without a gtid" : "";
  } catch (const rpc::InvalidRequest&) {
  } catch (const rpc::NotFound&) {
  } catch (const rpc::Conflict&) {
  } catch (const rpc::Unavailable&) {
  } catch (const at::TApplicationException&) {
  } catch (const std::exception& e) {
    return std::string("malformed reply: ") + e.what();
  }
  return "";
}

TEST(ThriftFuzzTest, MutatedSubmitSagaFrames) {
  TestParticipant participant;
  FuzzTreatyd treatyd("sqlite", {});
  ASSERT_TRUE(treatyd.Start().ok()) << treatyd.LogTail();
  const int thrift_port =
      testing::ThriftPortOf(treatyd.url(), "127.0.0.1:" + std::to_string(treatyd.port()));
  ASSERT_NE(thrift_port, 0);

  const uint64_t seed = FuzzSeed(kDefaultSeed);
  const int cases = FuzzCases(kDefaultCases);
  std::set<std::string> acked;
  int answered = 0, closed = 0;
  for (int i = 0; i < cases; ++i) {
    FuzzRandom rnd = FuzzRandom::ForCase(seed, static_cast<uint64_t>(i));
    std::string kind;
    const std::string bytes = Mutate(rnd, Serialize(ValidSaga(rnd, participant, i)), &kind);
    WireReply r = SendRaw(thrift_port, bytes, 10000, /*half_close=*/true);
    const std::string where = "seed " + std::to_string(seed) + " case " + std::to_string(i) + " (" +
                              kind + "): " + Printable(bytes, 200);
    ASSERT_TRUE(r.connected) << where << "\n" << treatyd.LogTail();
    ASSERT_FALSE(r.timed_out) << where << ": neither answered nor closed";
    if (r.frame.empty()) {
      ++closed;
    } else {
      ++answered;
      std::string gtid;
      const std::string error = ReadReply(r.frame, &gtid);
      ASSERT_EQ(error, "") << where << "\nreply: " << Printable(r.frame);
      if (!gtid.empty()) acked.insert(gtid);
    }
    if (i % 250 == 0) ASSERT_EQ(treatyd.CheckHealthy(), "") << where;
  }
  ASSERT_EQ(treatyd.CheckHealthy(), "");
  // The fuzz must have reached the handler both ways.
  EXPECT_GT(answered, cases / 4);
  EXPECT_GT(acked.size(), 0u);

  // A valid submitSaga still succeeds.
  {
    auto socket = std::make_shared<at::transport::TSocket>("127.0.0.1", thrift_port);
    socket->setRecvTimeout(30000);
    auto transport = std::make_shared<at::transport::TFramedTransport>(socket);
    transport->open();
    rpc::CoordinatorServiceClient client(
        std::make_shared<at::protocol::TBinaryProtocol>(transport));
    FuzzRandom rnd(seed);
    rpc::SagaRequest req = ValidSaga(rnd, participant, -1);
    req.__set_gtid("fz-final");
    req.__set_wait(true);
    rpc::TxnStatus out;
    ASSERT_NO_THROW(client.submitSaga(out, req));
    EXPECT_EQ(out.state, "COMMITTED");
    transport->close();
  }
  // Nothing acknowledged is lost.
  for (const auto& gtid : acked) {
    SimpleReply r = Get(treatyd.url(), "/v1/transactions/" + PercentEncode(gtid));
    EXPECT_EQ(r.status, 200) << "acknowledged saga " << Printable(gtid) << ": " << r.body;
  }
  RecordProperty("answered", answered);
  RecordProperty("closed", closed);
  RecordProperty("acknowledged", static_cast<int>(acked.size()));
}

}  // namespace
}  // namespace treaty::fuzz
