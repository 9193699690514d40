// TxnProtocols (the protocols by kind) and what each protocol says about a
// repeated submission and a logged transaction: the part of TxnService that
// differs between saga and 2PC.

#include "engine/txn_protocol.h"

#include <gtest/gtest.h>

#include "engine/engine_fakes.h"
#include "engine/saga_protocol.h"
#include "engine/states.h"
#include "engine/two_phase_protocol.h"

namespace treaty {
namespace {

class FakeProtocol : public TxnProtocol {
 public:
  TxnKind kind() const override { return TxnKind::kSaga; }
  Result<std::shared_ptr<TxnDriver>> Restore(EngineContext*, const TxnDetail&) const override {
    return Status::Internal("not restorable");
  }
};

TEST(TxnProtocolsTest, BuiltinHasOneProtocolPerKind) {
  const TxnProtocols protocols = TxnProtocols::Builtin();
  ASSERT_NE(protocols.Find(TxnKind::kSaga), nullptr);
  ASSERT_NE(protocols.Find(TxnKind::k2pc), nullptr);
  EXPECT_EQ(protocols.Find(TxnKind::kSaga)->kind(), TxnKind::kSaga);
  EXPECT_EQ(protocols.Find(TxnKind::k2pc)->kind(), TxnKind::k2pc);
  EXPECT_EQ(protocols.Find(std::string(states::kSaga)), protocols.Find(TxnKind::kSaga));
  EXPECT_EQ(protocols.Find(std::string(states::k2pc)), protocols.Find(TxnKind::k2pc));
  EXPECT_EQ(protocols.Find(std::string("tcc")), nullptr) << "an unknown stored kind";
}

TEST(TxnProtocolsTest, OneProtocolPerKind) {
  TxnProtocols protocols;
  EXPECT_EQ(protocols.Find(TxnKind::kSaga), nullptr);
  ASSERT_TRUE(protocols.Add(std::make_unique<FakeProtocol>()).ok());
  EXPECT_EQ(protocols.Add(std::make_unique<FakeProtocol>()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(protocols.Find(TxnKind::k2pc), nullptr);
}

class ProtocolTest : public testing::DriverTest {
 protected:
  ProtocolTest() : DriverTest(7) {}

  static TxnRow Row(const std::string& kind, const std::string& spec) {
    TxnRow row;
    row.gtid = "g1";
    row.kind = kind;
    row.state = "RUNNING";
    row.spec = spec;
    return row;
  }
  static TwoPhaseSpec TwoPc(const std::string& client, int64_t timeout_ms = 60000) {
    TwoPhaseSpec spec;
    spec.gtid = "g1";
    spec.client = client;
    spec.timeout_ms = timeout_ms;
    return spec;
  }
};

TEST_F(ProtocolTest, SagaSubmissionIsTheSameOnlyWithTheSameNormalizedSpec) {
  const SagaSpec spec = SagaSpecOf("g1", {"a", "b"}, {3, 50, 200});
  auto same = NewSagaSubmission(spec);
  EXPECT_EQ(same->kind(), TxnKind::kSaga);
  EXPECT_EQ(same->gtid(), "g1");
  EXPECT_TRUE(same->Check(nullptr).ok()) << "no policy: no guard";
  EXPECT_TRUE(same->SameAs(Row("saga", ToJson(spec).dump())).ok());
  EXPECT_EQ(same->SameAs(Row("2pc", ToJson(spec).dump())).code(), StatusCode::kConflict);
  const SagaSpec other = SagaSpecOf("g1", {"a"}, {3, 50, 200});
  EXPECT_EQ(same->SameAs(Row("saga", ToJson(other).dump())).code(), StatusCode::kConflict);
  EXPECT_EQ(same->SameAs(Row("saga", "not json")).code(), StatusCode::kConflict);

  auto live = StartSaga(spec);
  EXPECT_TRUE(OnEngine([&] { return same->SameAs(*live); }).ok());
  EXPECT_EQ(NewSagaSubmission(other)->SameAs(*live).code(), StatusCode::kConflict);
}

TEST_F(ProtocolTest, TwoPhaseBeginIsTheSameWithTheSameOptionsAndBindsTheClient) {
  const TwoPhaseSpec alice = TwoPc("alice");
  auto begin = NewTwoPhaseSubmission(alice);
  EXPECT_EQ(begin->kind(), TxnKind::k2pc);
  EXPECT_TRUE(begin->SameAs(Row("2pc", ToJson(alice).dump())).ok());
  EXPECT_TRUE(begin->SameAs(Row("2pc", ToJson(TwoPc("")).dump())).ok())
      << "begun with authentication off: the same begin";
  EXPECT_EQ(begin->SameAs(Row("2pc", ToJson(TwoPc("bob")).dump())).code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(begin->SameAs(Row("2pc", ToJson(TwoPc("alice", 5000)).dump())).code(),
            StatusCode::kConflict);
  EXPECT_EQ(begin->SameAs(Row("saga", ToJson(alice).dump())).code(), StatusCode::kConflict);

  auto saga = StartSaga(SagaSpecOf("g1", {"a"}, {3, 50, 200}));
  EXPECT_EQ(begin->SameAs(*saga).code(), StatusCode::kConflict) << "a saga under that gtid";
}

TEST_F(ProtocolTest, EachProtocolRestoresItsOwnKindFromTheLog) {
  const TxnProtocols protocols = TxnProtocols::Builtin();
  StartSaga(SagaSpecOf("s1", {"a"}, {3, 50, 200}));
  Begin2pc("t1", {"a"}, {3, 50, 200});
  runner_.Advance(1);
  ASSERT_TRUE(log_.txns.count("s1") && log_.txns.count("t1"));
  for (const std::string gtid : {"s1", "t1"}) {
    const TxnDetail& detail = log_.txns[gtid];
    const TxnProtocol* protocol = protocols.Find(detail.txn.kind);
    ASSERT_NE(protocol, nullptr) << gtid;
    auto driver = protocol->Restore(&ctx_, detail);
    ASSERT_TRUE(driver.ok()) << driver.status().ToString();
    EXPECT_EQ((*driver)->gtid(), gtid);
    EXPECT_EQ((*driver)->kind(), protocol->kind());
  }
  TxnDetail broken = log_.txns["s1"];
  broken.txn.spec = "{";
  EXPECT_EQ(protocols.Find(TxnKind::kSaga)->Restore(&ctx_, broken).status().code(),
            StatusCode::kInternal);
}

}  // namespace
}  // namespace treaty
