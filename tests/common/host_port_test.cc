#include "common/host_port.h"

#include <gtest/gtest.h>

#include <string>

namespace treaty {
namespace {

using Error = AuthorityParts::Error;

struct Split {
  Error error;
  std::string host;
  bool has_port;
  std::string port;
  bool bracketed;
};

void ExpectSplit(std::string_view text, ExtraColons extra, const Split& want) {
  const AuthorityParts got = SplitAuthority(text, extra);
  EXPECT_EQ(got.error, want.error) << text;
  EXPECT_EQ(got.host, want.host) << text;
  EXPECT_EQ(got.has_port, want.has_port) << text;
  EXPECT_EQ(got.port, want.port) << text;
  EXPECT_EQ(got.bracketed, want.bracketed) << text;
}

TEST(SplitAuthorityTest, BracketsAndOneColonReadTheSameUnderEveryRule) {
  for (ExtraColons extra : {ExtraColons::kFirstSplits, ExtraColons::kNoPort,
                            ExtraColons::kLastSplits, ExtraColons::kRefuse}) {
    ExpectSplit("example.com", extra, {Error::kNone, "example.com", false, "", false});
    ExpectSplit("example.com:80", extra, {Error::kNone, "example.com", true, "80", false});
    ExpectSplit("host:", extra, {Error::kNone, "host", true, "", false});
    ExpectSplit(":80", extra, {Error::kNone, "", true, "80", false});
    ExpectSplit("", extra, {Error::kNone, "", false, "", false});
    ExpectSplit("[::1]:80", extra, {Error::kNone, "::1", true, "80", true});
    ExpectSplit("[::1]", extra, {Error::kNone, "::1", false, "", true});
    ExpectSplit("[::1]:", extra, {Error::kNone, "::1", true, "", true});
    ExpectSplit("[]:80", extra, {Error::kNone, "", true, "80", true});
    ExpectSplit("[::1]:80:90", extra, {Error::kNone, "::1", true, "80:90", true});
    ExpectSplit("[::1", extra, {Error::kUnclosedBracket, "", false, "", false});
    ExpectSplit("[", extra, {Error::kUnclosedBracket, "", false, "", false});
    ExpectSplit("[::1]x", extra, {Error::kAfterBracket, "::1", false, "", true});
    ExpectSplit("[a]b]:1", extra, {Error::kAfterBracket, "a", false, "", true});
  }
}

TEST(SplitAuthorityTest, SeveralColonsAreReadAsTheRuleSays) {
  ExpectSplit("a:b:c", ExtraColons::kFirstSplits, {Error::kNone, "a", true, "b:c", false});
  ExpectSplit("::1:80", ExtraColons::kFirstSplits, {Error::kNone, "", true, ":1:80", false});
  ExpectSplit("a:b:c", ExtraColons::kNoPort, {Error::kNone, "a:b:c", false, "", false});
  ExpectSplit("fd00::/8", ExtraColons::kNoPort, {Error::kNone, "fd00::/8", false, "", false});
  ExpectSplit("::1:5678", ExtraColons::kLastSplits, {Error::kNone, "::1", true, "5678", false});
  ExpectSplit("a:b:", ExtraColons::kLastSplits, {Error::kNone, "a:b", true, "", false});
  ExpectSplit("a:b:c", ExtraColons::kRefuse, {Error::kSeveralColons, "", false, "", false});
  ExpectSplit("::", ExtraColons::kRefuse, {Error::kSeveralColons, "", false, "", false});
}

TEST(SplitAuthorityTest, ControlBytesAreLeftForTheCallerToJudge) {
  const std::string text("h\0st:8\n0", 8);
  const AuthorityParts got = SplitAuthority(text, ExtraColons::kRefuse);
  EXPECT_EQ(got.error, Error::kNone);
  EXPECT_EQ(got.host, std::string_view("h\0st", 4));
  EXPECT_EQ(got.port, "8\n0");
  EXPECT_FALSE(ParsePortNumber(got.port).has_value());
}

TEST(ParsePortNumberTest, DigitsUpTo65535) {
  EXPECT_EQ(ParsePortNumber("0"), 0);
  EXPECT_EQ(ParsePortNumber("1"), 1);
  EXPECT_EQ(ParsePortNumber("80"), 80);
  EXPECT_EQ(ParsePortNumber("080"), 80);
  EXPECT_EQ(ParsePortNumber("0000000000080"), 80);
  EXPECT_EQ(ParsePortNumber("65535"), 65535);
  for (std::string_view bad :
       {"", "65536", "99999", "4294967377", "18446744073709551697", "+80", "-1", " 80", "80 ",
        "8 0", "0x50", "80a", "\xEF\xBC\x98\xEF\xBC\x90" /* full-width digits */}) {
    EXPECT_FALSE(ParsePortNumber(bad).has_value()) << bad;
  }
  EXPECT_FALSE(ParsePortNumber(std::string("8\0", 2)).has_value());
  EXPECT_FALSE(ParsePortNumber(std::string(100000, '9')).has_value());
}

TEST(FormatHostPortTest, BracketsIpv6AndReadsBack) {
  EXPECT_EQ(FormatHostPort("127.0.0.1", 7480), "127.0.0.1:7480");
  EXPECT_EQ(FormatHostPort("example.com", 1), "example.com:1");
  EXPECT_EQ(FormatHostPort("::1", 65535), "[::1]:65535");
  EXPECT_EQ(FormatHostPort("fe80::1", 0), "[fe80::1]:0");
  for (const char* host : {"127.0.0.1", "::1", "2001:db8::7", "svc.internal"}) {
    const std::string text = FormatHostPort(host, 8080);
    const AuthorityParts parts = SplitAuthority(text, ExtraColons::kRefuse);
    EXPECT_EQ(parts.error, Error::kNone) << text;
    EXPECT_EQ(parts.host, host) << text;
    EXPECT_EQ(ParsePortNumber(parts.port), 8080) << text;
  }
}

}  // namespace
}  // namespace treaty
