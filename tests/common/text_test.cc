#include "common/text.h"

#include <gtest/gtest.h>

#include <string>

#include "common/limits.h"

namespace treaty {
namespace {

std::string Repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

TEST(TextTest, Utf8ValidityFollowsRfc3629) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9"));           // é
  EXPECT_TRUE(IsValidUtf8("\xE2\x82\xAC"));          // €
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));      // U+1F600
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));      // U+10FFFF, the last code point
  EXPECT_TRUE(IsValidUtf8(std::string("a\0b", 3)));  // NUL is valid UTF-8
  EXPECT_FALSE(IsValidUtf8("\xFF"));                 // never valid
  EXPECT_FALSE(IsValidUtf8("\x80"));                 // lone continuation
  EXPECT_FALSE(IsValidUtf8("\xC3"));                 // truncated
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));             // truncated
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));             // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xC1\xBF"));             // overlong
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));         // overlong '/' in 3 bytes
  EXPECT_FALSE(IsValidUtf8("\xF0\x80\x80\xAF"));     // overlong '/' in 4 bytes
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));         // U+D800, a surrogate
  EXPECT_FALSE(IsValidUtf8("\xED\xBF\xBF"));         // U+DFFF, a surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));     // U+110000, past the end
  EXPECT_FALSE(IsValidUtf8("\xF5\x80\x80\x80"));     // never valid lead byte
  EXPECT_FALSE(IsValidUtf8("\xC3\x28"));             // bad continuation
}

TEST(TextTest, ToValidUtf8ReplacesIllFormedBytesAndNul) {
  EXPECT_EQ(ToValidUtf8("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(ToValidUtf8("a\xFF"
                        "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(ToValidUtf8(std::string("a\0b", 3)),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(ToValidUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_TRUE(IsValidUtf8(ToValidUtf8("\xC3")));
}

TEST(TextTest, ExcerptNeverCutsACodePoint) {
  // The reported case: "x" + 100 x "é" is 201 bytes; a 200-byte excerpt used
  // to end in half an "é".
  const std::string answer = "x" + Repeat("\xC3\xA9", 100);
  ASSERT_EQ(answer.size(), 201u);
  const std::string cut = Excerpt(answer, limits::kErrorExcerptBytes);
  EXPECT_LE(cut.size(), 200u);
  EXPECT_TRUE(IsValidUtf8(cut));
  EXPECT_EQ(cut.substr(cut.size() - 3), "...");
  EXPECT_EQ(cut.substr(0, cut.size() - 3), "x" + Repeat("\xC3\xA9", 98));

  // Every budget, every width of code point: valid, within budget, a prefix.
  const std::string mixed = Repeat("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 20);
  for (size_t max = 0; max < mixed.size() + 2; ++max) {
    const std::string e = Excerpt(mixed, max);
    EXPECT_LE(e.size(), max) << max;
    EXPECT_TRUE(IsValidUtf8(e)) << max;
    const std::string body = e.size() >= 3 && e.substr(e.size() - 3) == "..." && e != mixed
                                 ? e.substr(0, e.size() - 3)
                                 : e;
    EXPECT_EQ(mixed.compare(0, body.size(), body), 0) << max;
  }
  EXPECT_EQ(Excerpt("short", 200), "short");
  EXPECT_EQ(Excerpt("a\xFF", 200), "a\xEF\xBF\xBD");  // made valid even when not cut
}

TEST(TextTest, EscapeControlLeavesNoControlCharacter) {
  EXPECT_EQ(EscapeControl("line\nforged"), "line\\nforged");
  EXPECT_EQ(EscapeControl("a\rb\tc\\d"), "a\\rb\\tc\\\\d");
  EXPECT_EQ(EscapeControl("\x1B[31mred"), "\\x1b[31mred");
  EXPECT_EQ(EscapeControl("del\x7F"), "del\\x7f");
  EXPECT_EQ(EscapeControl("c1\xC2\x85"), "c1\\u0085");  // NEL
  EXPECT_EQ(EscapeControl("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(EscapeControl("\xFF"), "\xEF\xBF\xBD");
  const std::string nul = EscapeControl(std::string("a\0b", 3));
  EXPECT_EQ(nul.find('\0'), std::string::npos);
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  const std::string out = EscapeControl(all);
  EXPECT_TRUE(IsValidUtf8(out));
  for (unsigned char c : out) EXPECT_FALSE(c < 0x20 || c == 0x7F) << static_cast<int>(c);
}

TEST(TextTest, IdentifierRules) {
  EXPECT_TRUE(ValidateIdentifier("trip-1", "'gtid'").ok());
  EXPECT_TRUE(ValidateIdentifier("a.b:c_d~e", "'gtid'").ok());
  EXPECT_TRUE(ValidateIdentifier("...", "'gtid'").ok());
  EXPECT_TRUE(ValidateIdentifier(std::string(limits::kMaxIdentifierBytes, 'a'), "'gtid'").ok());

  const std::string bad[] = {
      "",
      std::string(limits::kMaxIdentifierBytes + 1, 'a'),
      std::string("a\0b", 3),
      "a\nb",
      "a\rb",
      "a\x1B"
      "b",
      "a\x7F",
      "a b",
      "a/b",
      "a?b",
      "a#b",
      "a%b",
      "a\\b",
      ".",
      "..",
      "caf\xC3\xA9",
      "\xFF",
  };
  for (const std::string& value : bad) {
    Status s = ValidateIdentifier(value, "steps[2].name");
    ASSERT_FALSE(s.ok()) << value;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("steps[2].name"), std::string::npos) << s.message();
    EXPECT_TRUE(IsValidUtf8(s.message()));
    if (!value.empty() && value != "." && value != "..") {  // the rule names those
      EXPECT_EQ(s.message().find(value), std::string::npos) << "echoes the value";
    }
  }
}

TEST(TextTest, IdentifierCharacterSet) {
  for (int c = 0; c < 256; ++c) {
    const bool expected =
        c >= 0x21 && c <= 0x7E && c != '/' && c != '?' && c != '#' && c != '%' && c != '\\';
    EXPECT_EQ(IsIdentifierChar(static_cast<char>(c)), expected) << c;
    EXPECT_EQ(ValidateIdentifier(std::string("a") + static_cast<char>(c), "f").ok(), expected) << c;
  }
}

TEST(TextTest, ValidateTextNamesTheField) {
  EXPECT_TRUE(ValidateText("caf\xC3\xA9", "'reason'", 10).ok());
  EXPECT_FALSE(ValidateText("\xFF", "'reason'", 10).ok());
  EXPECT_FALSE(ValidateText(std::string("a\0b", 3), "'reason'", 10).ok());
  Status s = ValidateText("toolong", "'reason'", 3);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'reason'"), std::string::npos);
}

}  // namespace
}  // namespace treaty
