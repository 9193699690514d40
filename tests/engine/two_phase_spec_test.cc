// Parsing of the 2PC begin and enlistment bodies: one-phase commit is
// declared per branch, never at begin (a stored legacy flag is still read).

#include "engine/two_phase_spec.h"

#include <gtest/gtest.h>

namespace treaty {
namespace {

using nlohmann::json;

json Branch(const std::string& name) {
  return {{"name", name},
          {"prepare", "http://127.0.0.1:1/" + name + "/prepare"},
          {"commit", "http://127.0.0.1:1/" + name + "/commit"},
          {"abort", "http://127.0.0.1:1/" + name + "/abort"}};
}

TEST(TwoPhaseSpecTest, BeginRefusesOnePhaseTrueNamingTheField) {
  auto r = ParseTwoPhaseSpec({{"gtid", "g-1"}, {"one_phase", true}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'one_phase'"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("per branch at enlistment"), std::string::npos);
}

TEST(TwoPhaseSpecTest, BeginAcceptsOnePhaseFalseAndDoesNotStoreIt) {
  auto r = ParseTwoPhaseSpec({{"gtid", "g-1"}, {"one_phase", false}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->legacy_one_phase);
  EXPECT_EQ(ToJson(*r), ToJson(*ParseTwoPhaseSpec({{"gtid", "g-1"}})));
  EXPECT_FALSE(ToJson(*r).contains("one_phase"));
  EXPECT_FALSE(ParseTwoPhaseSpec({{"one_phase", "yes"}}).ok());
}

TEST(TwoPhaseSpecTest, StoredLegacyOnePhaseIsRead) {
  TwoPhaseLimits stored;
  stored.stored = true;
  auto r = ParseTwoPhaseSpec({{"timeout_ms", 1000}, {"one_phase", true}}, stored);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->legacy_one_phase);
  EXPECT_EQ(ToJson(*r), (json{{"timeout_ms", 1000}, {"one_phase", true}}));
  auto off = ParseTwoPhaseSpec({{"timeout_ms", 1000}, {"one_phase", false}}, stored);
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->legacy_one_phase);
}

TEST(TwoPhaseSpecTest, BranchOnePhaseIsOptionalAndWrittenOnlyWhenTrue) {
  auto plain = ParseBranchSpec(Branch("a"));
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_FALSE(plain->one_phase);
  EXPECT_FALSE(ToJson(*plain).contains("one_phase"));

  json body = Branch("a");
  body["one_phase"] = false;
  auto off = ParseBranchSpec(body);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(ToJson(*off), ToJson(*plain)) << "an old branch's stored spec compares the same";

  body["one_phase"] = true;
  auto on = ParseBranchSpec(body);
  ASSERT_TRUE(on.ok());
  EXPECT_TRUE(on->one_phase);
  EXPECT_EQ(ToJson(*on).value("one_phase", false), true);
  json again = ToJson(*on);
  again["name"] = "a";
  EXPECT_TRUE(ParseBranchSpec(again)->one_phase);

  body["one_phase"] = 1;
  auto bad = ParseBranchSpec(body);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'one_phase'"), std::string::npos);
}

TEST(TwoPhaseSpecTest, ClientIsStoredWhenSetAndReadBackButNeverTakenFromABody) {
  TwoPhaseSpec spec;
  spec.timeout_ms = 1000;
  EXPECT_FALSE(ToJson(spec).contains("client")) << "begun with authentication off";
  spec.client = "shop";
  const json written = ToJson(spec);
  EXPECT_EQ(written, (json{{"timeout_ms", 1000}, {"client", "shop"}}));

  TwoPhaseLimits stored;
  stored.stored = true;
  auto back = ParseTwoPhaseSpec(written, stored);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->client, "shop");
  EXPECT_EQ(ToJson(*back), written);
  auto old = ParseTwoPhaseSpec({{"timeout_ms", 1000}}, stored);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->client, "") << "an older release's spec: any client may drive it";

  auto from_body = ParseTwoPhaseSpec({{"gtid", "g-1"}, {"client", "shop"}});
  ASSERT_FALSE(from_body.ok()) << "a client cannot name itself in the begin body";
  EXPECT_EQ(from_body.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(from_body.status().message().find("'client'"), std::string::npos);
  EXPECT_FALSE(ParseTwoPhaseSpec({{"client", 7}}, stored).ok());
}

}  // namespace
}  // namespace treaty
