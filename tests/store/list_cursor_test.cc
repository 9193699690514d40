#include "store/list_cursor.h"

#include <gtest/gtest.h>

#include <vector>

namespace treaty {
namespace {

TEST(ListCursorTest, RoundTripsAnyGtid) {
  const std::vector<std::string> gtids = {"", "abc", "a.b:c/d", std::string("\0\xff\"x", 4)};
  for (const std::string& gtid : gtids) {
    const std::string text = EncodeListCursor({-5, gtid});
    Result<ListCursor> c = DecodeListCursor(text);
    ASSERT_TRUE(c.ok()) << text;
    EXPECT_EQ(c->created_at_ms, -5);
    EXPECT_EQ(c->gtid, gtid);
  }
  EXPECT_EQ(EncodeListCursor({1700000000000, "ab"}), "1700000000000.6162");
}

TEST(ListCursorTest, RejectsGarbage) {
  for (const char* bad : {"", ".", "x.61", "12", "12.6", "12.zz", "12.616"}) {
    EXPECT_EQ(DecodeListCursor(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace treaty
