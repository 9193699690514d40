#include "common/json_input.h"

#include <gtest/gtest.h>

#include <string>

#include "common/text.h"

namespace treaty {
namespace {

using nlohmann::json;

std::string Nested(int depth, std::string_view inner = "1") {
  return std::string(depth, '[') + std::string(inner) + std::string(depth, ']');
}

TEST(JsonInputTest, DepthLimitIsInclusive) {
  Result<json> ok = ParseJson(Nested(limits::kMaxJsonDepth), "the request body");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(JsonDepth(*ok), limits::kMaxJsonDepth);

  Result<json> deep = ParseJson(Nested(limits::kMaxJsonDepth + 1), "the request body");
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(deep.status().message().find("the request body"), std::string::npos);
  EXPECT_NE(deep.status().message().find("64"), std::string::npos);

  // Objects count like arrays.
  std::string objects;
  for (int i = 0; i <= limits::kMaxJsonDepth; ++i) objects += "{\"a\":";
  objects += "1" + std::string(limits::kMaxJsonDepth + 1, '}');
  EXPECT_FALSE(ParseJson(objects, "x").ok());
  EXPECT_TRUE(ParseJson(Nested(3), "x", 3).ok());
  EXPECT_FALSE(ParseJson(Nested(4), "x", 3).ok());
}

TEST(JsonInputTest, HundredThousandNestedArraysAreRefusedWithoutCrashing) {
  // A 200 KB payload of 100,000 nested arrays.
  const std::string body = R"({"steps":[{"name":"a","payload":)" + Nested(100000) + "}]}";
  ASSERT_GT(body.size(), 200000u);
  Result<json> r = ParseJson(body, "the request body");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("deeper than 64"), std::string::npos) << r.status().message();
  // Unbalanced deep input too.
  EXPECT_FALSE(ParseJson(std::string(100000, '['), "x").ok());
  EXPECT_FALSE(ParseJson(std::string(100000, '{'), "x").ok());
}

TEST(JsonInputTest, RefusesInvalidJsonAndInvalidUtf8) {
  for (const std::string bad :
       {std::string("{"), std::string("{\"a\":}"), std::string(""), std::string("1 2"),
        std::string("{\"a\":\"\xFF\"}"), std::string("{\"a\":\"\xC0\xAF\"}"),
        std::string("{\"a\":\"\xED\xA0\x80\"}"), std::string("{\"\xFF\":1}"),
        std::string("\"\x1B\"")}) {
    Result<json> r = ParseJson(bad, "the request body");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    const std::string& m = r.status().message();
    EXPECT_EQ(m.rfind("the request body", 0), 0u) << m;
    EXPECT_TRUE(IsValidUtf8(m)) << m;
    for (unsigned char c : m) EXPECT_FALSE(c < 0x20 || c >= 0x7F) << m;
  }
  Result<json> good = ParseJson(R"({"a":"caf\u00e9","b":"é"})", "x");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ((*good)["b"], "\xC3\xA9");
}

TEST(JsonInputTest, DumpJsonNeverThrowsOnData) {
  json j = {{"gtid", "\xFF"}, {"detail", "x" + std::string("\xC3", 1)}, {"ok", "caf\xC3\xA9"}};
  EXPECT_THROW((void)j.dump(), json::type_error);  // what used to abort treatyd
  std::string out;
  ASSERT_NO_THROW(out = DumpJson(j));
  EXPECT_TRUE(IsValidUtf8(out));
  json back = json::parse(out);
  EXPECT_EQ(back["gtid"], "\xEF\xBF\xBD");
  EXPECT_EQ(back["ok"], "caf\xC3\xA9");
  EXPECT_EQ(DumpJson(json::array({1, "a"})), R"([1,"a"])");
}

TEST(JsonInputTest, JsonDepthIsIterative) {
  EXPECT_EQ(JsonDepth(json(1)), 0);
  EXPECT_EQ(JsonDepth(json::array()), 1);
  EXPECT_EQ(JsonDepth(json::parse(R"({"a":[1,{"b":[]}],"c":2})")), 4);
}

}  // namespace
}  // namespace treaty
