// W3C Trace Context parsing (common/trace_context.h): valid and invalid
// traceparent and tracestate values, random and derived ids, the stored form.

#include "common/trace_context.h"

#include <random>
#include <set>
#include <string>

#include <gtest/gtest.h>

namespace treaty {
namespace {

constexpr char kValid[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceParentTest, ParsesVersion00) {
  auto f = ParseTraceParent(kValid);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->version, "00");
  EXPECT_EQ(f->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(f->parent_id, "00f067aa0ba902b7");
  EXPECT_EQ(f->flags, "01");
  auto unsampled = ParseTraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(unsampled.ok());
  EXPECT_EQ(unsampled->flags, "00");
}

TEST(TraceParentTest, FutureVersionsAreReadByTheirFirstFourFields) {
  auto exact = ParseTraceParent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09");
  ASSERT_TRUE(exact.ok()) << exact.status().message();
  EXPECT_EQ(exact->version, "cc");
  EXPECT_EQ(exact->flags, "09");
  auto longer =
      ParseTraceParent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future");
  ASSERT_TRUE(longer.ok()) << longer.status().message();
  EXPECT_EQ(longer->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  // A later version must still have a '-' after the flags when longer.
  EXPECT_FALSE(ParseTraceParent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x").ok());
}

TEST(TraceParentTest, RefusesMalformedValuesNamingTheProblem) {
  struct Case {
    const char* value;
    const char* says;
  } cases[] = {
      {"", "at least 55"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "at least 55"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", "exactly 55"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011", "exactly 55"},
      {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version ff"},
      {"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version"},
      {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "trace-id"},
      {"00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01", "trace-id"},
      {"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "trace-id is all zeros"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "parent-id is all zeros"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", "parent-id"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x", "trace-flags"},
      {"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "separated by '-'"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", "separated by '-'"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01", "separated by '-'"},
      {" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version"},
  };
  for (const Case& c : cases) {
    auto f = ParseTraceParent(c.value);
    ASSERT_FALSE(f.ok()) << c.value;
    EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument) << c.value;
    EXPECT_NE(f.status().message().find(c.says), std::string::npos)
        << c.value << " -> " << f.status().message();
    EXPECT_EQ(f.status().message().rfind("traceparent: ", 0), 0u) << f.status().message();
  }
}

// Fuzz-ish: every single-character change of a valid value is either still
// valid (and then parses to exactly those characters) or refused, never a
// crash; a change to a non-hex or upper-case byte is always refused.
TEST(TraceParentTest, EverySingleByteMutationIsParsedOrRefusedCleanly) {
  const std::string valid = kValid;
  const std::string bytes = std::string("0123456789abcdefABCDEF-_ xz\t\n") + '\0' + '\xff';
  for (size_t i = 0; i < valid.size(); ++i) {
    for (char b : bytes) {
      std::string v = valid;
      v[i] = b;
      auto f = ParseTraceParent(v);
      const bool hex = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f');
      const bool dash_position = i == 2 || i == 35 || i == 52;
      if (dash_position ? b != '-' : !hex) {
        EXPECT_FALSE(f.ok()) << "position " << i << " byte " << int(b);
        continue;
      }
      if (!f.ok()) continue;  // e.g. version ff
      EXPECT_EQ(f->version + "-" + f->trace_id + "-" + f->parent_id + "-" + f->flags, v);
    }
  }
  std::mt19937_64 rng(7);
  for (int n = 0; n < 2000; ++n) {
    std::string v(rng() % 70, ' ');
    for (char& c : v) c = static_cast<char>(rng() % 256);
    auto f = ParseTraceParent(v);
    if (f.ok()) {
      EXPECT_GE(v.size(), 55u);
    }
  }
}

TEST(TraceStateTest, AcceptsListsAndRefusesMalformedOnes) {
  EXPECT_TRUE(CheckTraceState("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE").ok());
  EXPECT_TRUE(CheckTraceState("rojo=1, congo=2 ,, tenant@vendor=x").ok());
  EXPECT_TRUE(CheckTraceState("a*/_-b=v a l").ok());
  EXPECT_FALSE(CheckTraceState("novalue").ok());
  EXPECT_FALSE(CheckTraceState("Upper=1").ok());
  EXPECT_FALSE(CheckTraceState("=1").ok());
  EXPECT_FALSE(CheckTraceState("k=").ok());
  EXPECT_FALSE(CheckTraceState("k=a=b").ok());
  EXPECT_FALSE(CheckTraceState("k=\x01").ok());
  EXPECT_FALSE(CheckTraceState(std::string(513, 'a')).ok());
  std::string many;
  for (int i = 0; i < 33; ++i) many += "k" + std::to_string(i) + "=v,";
  auto s = CheckTraceState(many);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("more than 32"), std::string::npos) << s.message();
}

TEST(TraceFromHeadersTest, ContinuesAValidTraceAndIgnoresAnInvalidOne) {
  TraceContext t = TraceFromHeaders(kValid, "rojo=1");
  EXPECT_EQ(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(t.flags, "01");
  EXPECT_EQ(t.tracestate, "rojo=1");
  TraceContext unsampled =
      TraceFromHeaders("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "");
  EXPECT_EQ(unsampled.flags, "00");
  EXPECT_TRUE(unsampled.tracestate.empty());
  // An invalid tracestate alone is dropped; the trace is kept.
  TraceContext bad_state = TraceFromHeaders(kValid, "NOT VALID");
  EXPECT_EQ(bad_state.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_TRUE(bad_state.tracestate.empty());
  // No or an invalid traceparent: no trace (the engine starts one), and the
  // tracestate is ignored with it.
  EXPECT_TRUE(TraceFromHeaders("", "rojo=1").empty());
  TraceContext invalid =
      TraceFromHeaders("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "rojo=1");
  EXPECT_TRUE(invalid.empty());
  EXPECT_TRUE(invalid.tracestate.empty());
}

TEST(TraceIdsTest, RandomIdsAreWellFormedAndDistinct) {
  std::mt19937_64 rng(42);
  std::set<std::string> traces, spans;
  for (int i = 0; i < 200; ++i) {
    std::string t = NewTraceId(rng), s = NewSpanId(rng);
    TraceContext ctx{t, "01", ""};
    auto parsed = ParseTraceParent(FormatTraceParent(ctx, s));
    ASSERT_TRUE(parsed.ok()) << parsed.status().message();
    EXPECT_EQ(parsed->trace_id, t);
    EXPECT_EQ(parsed->parent_id, s);
    traces.insert(t);
    spans.insert(s);
  }
  EXPECT_EQ(traces.size(), 200u);
  EXPECT_EQ(spans.size(), 200u);
}

TEST(TraceIdsTest, DerivedIdIsStablePerKey) {
  EXPECT_EQ(DerivedTraceId("trip-42"), DerivedTraceId("trip-42"));
  EXPECT_NE(DerivedTraceId("trip-42"), DerivedTraceId("trip-43"));
  TraceContext ctx{DerivedTraceId(""), "01", ""};
  EXPECT_TRUE(ParseTraceParent(FormatTraceParent(ctx, "00f067aa0ba902b7")).ok());
}

TEST(TraceJsonTest, RoundTripsAndRefusesMalformedStoredForms) {
  TraceContext t{"4bf92f3577b34da6a3ce929d0e0e4736", "00", "rojo=1"};
  auto back = TraceFromJson(ToJson(t));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, t);
  EXPECT_FALSE(
      ToJson(TraceContext{"4bf92f3577b34da6a3ce929d0e0e4736", "01", ""}).contains("tracestate"));
  EXPECT_FALSE(TraceFromJson(nlohmann::json::array()).ok());
  EXPECT_FALSE(TraceFromJson({{"trace_id", "abc"}}).ok());
  EXPECT_FALSE(TraceFromJson({{"trace_id", std::string(32, '0')}}).ok());
  EXPECT_FALSE(TraceFromJson({{"trace_id", t.trace_id}, {"flags", 1}}).ok());
  auto unknown = TraceFromJson({{"trace_id", t.trace_id}, {"span", "x"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown field 'span'"), std::string::npos);
}

}  // namespace
}  // namespace treaty
