#include "store/list_cursor.h"

#include <gtest/gtest.h>

#include <vector>

namespace treaty {
namespace {

TEST(ListCursorTest, RoundTripsAnyStorableGtid) {
  const std::vector<std::string> gtids = {"abc", "a.b:c/d", "caf\xC3\xA9", "x y",
                                          std::string(128, 'z')};
  for (const std::string& gtid : gtids) {
    for (int64_t at : {int64_t{-5}, int64_t{0}, int64_t{1700000000000}}) {
      const std::string text = EncodeListCursor({at, gtid});
      Result<ListCursor> c = DecodeListCursor(text);
      ASSERT_TRUE(c.ok()) << text;
      EXPECT_EQ(c->created_at_ms, at);
      EXPECT_EQ(c->gtid, gtid);
    }
  }
  EXPECT_EQ(EncodeListCursor({1700000000000, "ab"}), "1700000000000.6162");
}

TEST(ListCursorTest, PrefixUpperBoundIsTheLeastStringAfterThePrefixRange) {
  EXPECT_EQ(PrefixUpperBound("a-"), "a.");
  EXPECT_EQ(PrefixUpperBound("order~"), "order\x7f");
  EXPECT_EQ(PrefixUpperBound("a\xff\xff"), "b");
  EXPECT_EQ(PrefixUpperBound("\xff"), std::nullopt);
  EXPECT_EQ(PrefixUpperBound(""), std::nullopt);
}

TEST(ListCursorTest, RejectsGarbage) {
  const std::vector<std::string> bad = {
      "",
      ".",
      "x.61",
      "12",
      "12.6",
      "12.zz",
      "12.616",
      "1.ff",                            // gtid "\xFF" (PostgreSQL answered 500)
      "1.c3",                            // truncated UTF-8
      "1.c0af",                          // overlong
      "1.eda080",                        // surrogate
      "1.00",                            // NUL
      "1.610a62",                        // control character
      "1.",                              // empty gtid
      "1." + std::string(2 * 129, '6'),  // longer than a gtid may be
      "+1.61",
      " 1.61",
      "01.61",
      "-0.61",
      "1.6A",
      "1.61 ",
      "1.61.62",
      "1..61",
      "99999999999999999999.61",  // out of range
  };
  for (const std::string& text : bad) {
    Result<ListCursor> c = DecodeListCursor(text);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_NE(c.status().message().find("'cursor'"), std::string::npos);
    if (text.size() > 2) {
      EXPECT_EQ(c.status().message().find(text), std::string::npos) << "echoes the cursor";
    }
  }
}

}  // namespace
}  // namespace treaty
