// The trace of a transaction in the engine: stored in its spec (a body
// cannot set it), not compared on re-submission, carried by every
// participant call with a new span id, and read back on restore (a spec
// logged before traces were stored gets one derived from its gtid).

#include <gtest/gtest.h>

#include <set>

#include "common/trace_context.h"
#include "engine/engine_fakes.h"
#include "engine/saga.h"
#include "engine/saga_protocol.h"
#include "engine/saga_spec.h"
#include "engine/two_phase.h"
#include "engine/two_phase_protocol.h"
#include "engine/two_phase_spec.h"

namespace treaty {
namespace {

using nlohmann::json;

const TraceContext kCaller{"4bf92f3577b34da6a3ce929d0e0e4736", "00", "rojo=1"};

json SagaBody() {
  return {{"gtid", "t1"},
          {"steps", {{{"name", "a"}, {"action", "http://svc/a"}, {"compensate", "http://svc/c"}}}}};
}

TEST(TraceSpecTest, StoredInTheSpecNeverTakenFromABody) {
  json body = SagaBody();
  body["trace"] = ToJson(kCaller);
  auto refused = ParseSagaSpec(body);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("unknown field 'trace'"), std::string::npos);
  auto tpc_refused = ParseTwoPhaseSpec({{"trace", ToJson(kCaller)}});
  ASSERT_FALSE(tpc_refused.ok());
  EXPECT_NE(tpc_refused.status().message().find("unknown field 'trace'"), std::string::npos);

  auto spec = ParseSagaSpec(SagaBody());
  ASSERT_TRUE(spec.ok());
  EXPECT_FALSE(ToJson(*spec).contains("trace")) << "no trace yet: none stored";
  spec->trace = kCaller;
  SpecLimits stored;
  stored.stored = true;
  auto back = ParseSagaSpec(ToJson(*spec), stored);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->trace, kCaller);
  EXPECT_EQ(WithoutTrace(ToJson(*spec)), ToJson(*ParseSagaSpec(SagaBody())));

  TwoPhaseSpec tpc;
  tpc.trace = kCaller;
  TwoPhaseLimits tpc_stored;
  tpc_stored.stored = true;
  auto tpc_back = ParseTwoPhaseSpec(ToJson(tpc), tpc_stored);
  ASSERT_TRUE(tpc_back.ok()) << tpc_back.status().message();
  EXPECT_EQ(tpc_back->trace, kCaller);
  // A malformed stored trace is an error naming the field.
  json bad = ToJson(*spec);
  bad["trace"]["trace_id"] = "XYZ";
  auto bad_back = ParseSagaSpec(bad, stored);
  ASSERT_FALSE(bad_back.ok());
  EXPECT_NE(bad_back.status().message().find("trace.trace_id"), std::string::npos);
}

TEST(TraceSpecTest, ARepeatedSubmissionUnderAnotherTraceIsTheSame) {
  auto spec = ParseSagaSpec(SagaBody());
  ASSERT_TRUE(spec.ok());
  SagaSpec logged_spec = *spec;
  logged_spec.trace = kCaller;
  TxnRow logged;
  logged.gtid = "t1";
  logged.kind = "saga";
  logged.spec = ToJson(logged_spec).dump();
  SagaSpec again = *spec;
  again.trace = TraceContext{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "01", ""};
  EXPECT_TRUE(NewSagaSubmission(again)->SameAs(logged).ok());
  EXPECT_TRUE(NewSagaSubmission(*spec)->SameAs(logged).ok());
  SagaSpec other = again;
  other.timeout_ms = 5;
  EXPECT_EQ(NewSagaSubmission(other)->SameAs(logged).code(), StatusCode::kConflict);

  TwoPhaseSpec begun;
  begun.trace = kCaller;
  TxnRow tpc_logged;
  tpc_logged.gtid = "t2";
  tpc_logged.kind = "2pc";
  tpc_logged.spec = ToJson(begun).dump();
  TwoPhaseSpec tpc_again;
  tpc_again.gtid = "t2";
  EXPECT_TRUE(NewTwoPhaseSubmission(tpc_again)->SameAs(tpc_logged).ok());
}

class TraceDriverTest : public testing::DriverTest {
 protected:
  TraceDriverTest() : DriverTest(5) {
    caller_.on_call = [this](const ParticipantRequest& r) {
      traceparents_.push_back(r.traceparent);
      tracestates_.push_back(r.tracestate);
    };
  }
  // Every traceparent seen so far: version 00, of `trace`, spans distinct.
  void ExpectTrace(const TraceContext& trace) {
    std::set<std::string> spans;
    for (const auto& tp : traceparents_) {
      auto f = ParseTraceParent(tp);
      ASSERT_TRUE(f.ok()) << tp;
      EXPECT_EQ(f->version, "00");
      EXPECT_EQ(f->trace_id, trace.trace_id);
      EXPECT_EQ(f->flags, trace.flags);
      spans.insert(f->parent_id);
    }
    EXPECT_EQ(spans.size(), traceparents_.size());
    for (const auto& ts : tracestates_) EXPECT_EQ(ts, trace.tracestate);
  }
  std::vector<std::string> traceparents_, tracestates_;
};

TEST_F(TraceDriverTest, CallsCarryTheCallersTraceAcrossARestore) {
  caller_.Set("b", "action",
              {{CallOutcome::kTransient, CallOutcome::kTransient, CallOutcome::kOk}});
  SagaSpec spec = SagaSpecOf("t1", {"a", "b"}, {5, 10, 10});
  spec.trace = kCaller;
  StartSaga(spec);
  ASSERT_TRUE(runner_.RunUntil([&] { return caller_.Count("t1", "b", "action") >= 1; }));
  for (auto& d : drivers_) OnEngine([&] { d->Drop(Status::Internal("kill -9")); });
  auto restored = Saga::Restore(&ctx_, log_.txns["t1"]);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  drivers_.push_back(*restored);
  OnEngine([&] { (*restored)->Start(); });
  EXPECT_EQ(Finish("t1"), "COMMITTED");
  EXPECT_GE(traceparents_.size(), 4u);
  ExpectTrace(kCaller);
}

TEST_F(TraceDriverTest, WithoutACallersTraceOneIsMadeAndKept) {
  auto t = Begin2pc("t2", {"x", "y"}, {3, 10, 10});
  RequestCommit(t);
  EXPECT_EQ(Finish("t2"), "COMMITTED");
  ASSERT_EQ(traceparents_.size(), 4u);  // 2 prepares, 2 commits
  auto first = ParseTraceParent(traceparents_[0]);
  ASSERT_TRUE(first.ok());
  ExpectTrace(TraceContext{first->trace_id, "01", ""});
  auto stored = json::parse(log_.txns["t2"].txn.spec);
  EXPECT_EQ(stored["trace"]["trace_id"], first->trace_id) << stored.dump();
}

TEST_F(TraceDriverTest, ASpecLoggedWithoutATraceGetsOneDerivedFromItsGtid) {
  caller_.Set("a", "action", {{CallOutcome::kTransient}});
  StartSaga(SagaSpecOf("old", {"a"}, {1000, 10, 10}));
  ASSERT_TRUE(runner_.RunUntil([&] { return caller_.Count("old", "a", "action") >= 1; }));
  for (auto& d : drivers_) OnEngine([&] { d->Drop(Status::Internal("kill -9")); });
  json spec = json::parse(log_.txns["old"].txn.spec);
  spec.erase("trace");  // as an older release logged it
  log_.txns["old"].txn.spec = spec.dump();
  traceparents_.clear();
  tracestates_.clear();
  for (int i = 0; i < 2; ++i) {
    auto restored = Saga::Restore(&ctx_, log_.txns["old"]);
    ASSERT_TRUE(restored.ok()) << restored.status().ToString();
    drivers_.push_back(*restored);
    OnEngine([&] { (*restored)->Start(); });
    const size_t before = traceparents_.size();
    ASSERT_TRUE(runner_.RunUntil([&] { return traceparents_.size() > before; }));
    OnEngine([&] { (*restored)->Drop(Status::Internal("kill -9")); });
  }
  ExpectTrace(TraceContext{DerivedTraceId("old"), "01", ""});
}

}  // namespace
}  // namespace treaty
