#include "engine/saga_spec.h"

#include <gtest/gtest.h>

namespace treaty {
namespace {

using nlohmann::json;

json Step(const std::string& name) {
  return {{"name", name},
          {"action", "http://127.0.0.1:1/" + name},
          {"compensate", "http://127.0.0.1:1/" + name + "/undo"}};
}

std::string Error(const json& body) {
  auto r = ParseSagaSpec(body);
  return r.ok() ? "" : r.status().message();
}

TEST(SagaSpecTest, AcceptsAMinimalSagaAndFillsDefaults) {
  auto r = ParseSagaSpec({{"steps", {Step("a")}}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->steps[0].payload, "null");
  EXPECT_EQ(r->steps[0].retry.max_attempts, 5);
  EXPECT_TRUE(r->gtid.empty());
}

TEST(SagaSpecTest, NormalizedFormRoundTrips) {
  json body = {{"gtid", "g-1"}, {"concurrent", true}, {"steps", {Step("a"), Step("b")}}};
  body["steps"][1]["after"] = {"a"};
  body["steps"][1]["payload"] = {{"seats", 2}};
  auto r = ParseSagaSpec(body);
  ASSERT_TRUE(r.ok());
  auto again = ParseSagaSpec(ToJson(*r));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(ToJson(*again), ToJson(*r));
}

TEST(SagaSpecTest, RejectsBadInputWithAClearMessage) {
  EXPECT_NE(Error(json::array()).find("JSON object"), std::string::npos);
  EXPECT_NE(Error(json::object()).find("'steps'"), std::string::npos);
  EXPECT_NE(Error({{"steps", json::array()}}).find("at least one"), std::string::npos);
  EXPECT_NE(Error({{"steps", {Step("a"), Step("a")}}}).find("duplicate step name 'a'"),
            std::string::npos);
  json missing = Step("a");
  missing.erase("compensate");
  EXPECT_NE(Error({{"steps", {missing}}}).find("'compensate'"), std::string::npos);
  json ftp = Step("a");
  ftp["action"] = "ftp://x/y";
  EXPECT_NE(Error({{"steps", {ftp}}}).find("http://"), std::string::npos);
  json unknown_after = Step("b");
  unknown_after["after"] = {"zz"};
  EXPECT_NE(Error({{"concurrent", true}, {"steps", {Step("a"), unknown_after}}})
                .find("unknown step 'zz'"),
            std::string::npos);
  json a = Step("a"), b = Step("b");
  a["after"] = {"b"};
  b["after"] = {"a"};
  EXPECT_NE(Error({{"concurrent", true}, {"steps", {a, b}}}).find("cycle"), std::string::npos);
  EXPECT_NE(Error({{"timeout_ms", -1}, {"steps", {Step("a")}}}).find("timeout_ms"),
            std::string::npos);
  EXPECT_NE(Error({{"gtid", "a/b"}, {"steps", {Step("a")}}}).find("gtid"), std::string::npos);
  EXPECT_NE(Error({{"stepz", 1}, {"steps", {Step("a")}}}).find("unknown field 'stepz'"),
            std::string::npos);
  json retry = Step("a");
  retry["retry"] = {{"max_attempts", 0}};
  EXPECT_NE(Error({{"steps", {retry}}}).find("max_attempts"), std::string::npos);
  json after_seq = Step("b");
  after_seq["after"] = {"a"};
  EXPECT_NE(Error({{"steps", {Step("a"), after_seq}}}).find("concurrent"), std::string::npos);
}

}  // namespace
}  // namespace treaty
