// Request signatures: a signed request verifies with its key (and during a
// rotation with any accepted key); any change to the key, method, target or
// body, an old or future timestamp, or a malformed header is refused.

#include "security/request_signature.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/subprocess.h"

namespace treaty {
namespace {

const std::string kKey = "0123456789abcdef0123456789abcdef-key-one";
const std::string kOtherKey = "fedcba9876543210fedcba9876543210-key-two";
constexpr int64_t kNow = 1'700'000'000;
constexpr int64_t kSkew = 300;
const std::string kBody = R"({"gtid":"g1","op":"prepare"})";

Status Verify(const std::vector<std::string>& keys, const std::string& header, int64_t now = kNow,
              const std::string& method = "POST", const std::string& target = "/pay/prepare?x=1",
              const std::string& body = kBody) {
  return VerifyRequestSignature(keys, header, now, kSkew, method, target, body);
}

TEST(RequestSignatureTest, RoundTrip) {
  std::string header = SignRequest(kKey, kNow, "POST", "/pay/prepare?x=1", kBody);
  ASSERT_EQ(header.substr(0, 16), "t=1700000000,v1=");
  const std::string hex = header.substr(16);
  EXPECT_EQ(hex.size(), 64u);
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos) << "lower-case hex";
  EXPECT_TRUE(Verify({kKey}, header).ok());
  EXPECT_TRUE(Verify({kOtherKey, kKey}, header).ok()) << "any accepted key (rotation)";
  EXPECT_TRUE(Verify({kKey}, header, kNow + kSkew).ok());
  EXPECT_TRUE(Verify({kKey}, header, kNow - kSkew).ok());
  // Deterministic: the same input signs the same.
  EXPECT_EQ(header, SignRequest(kKey, kNow, "POST", "/pay/prepare?x=1", kBody));
}

TEST(RequestSignatureTest, KnownVectors) {
  // Computed independently: printf '1\nPOST\n/\n' | openssl dgst -sha256 -hmac key
  EXPECT_EQ(SignRequest("key", 1, "POST", "/", ""),
            "t=1,v1=4f868b77015f541b09f9013143a0a58f6ea3b2c95b013e4703ef46e98c547107");
  EXPECT_EQ(SignRequest(kKey, kNow, "POST", "/pay/prepare?x=1", kBody),
            "t=1700000000,v1=9d31eaeb7b8bdc9273a158fd12767340caa526da18b45015fdb1c1151cade68a");
}

TEST(RequestSignatureTest, AnyChangeIsRefused) {
  std::string header = SignRequest(kKey, kNow, "POST", "/pay/prepare?x=1", kBody);
  auto refused = [](const Status& s) {
    return s.code() == StatusCode::kUnauthenticated && s.message() == "bad request signature";
  };
  EXPECT_TRUE(refused(Verify({kOtherKey}, header))) << "wrong key";
  EXPECT_TRUE(refused(Verify({}, header))) << "no key";
  EXPECT_TRUE(refused(Verify({kKey}, header, kNow, "PUT"))) << "method";
  EXPECT_TRUE(refused(Verify({kKey}, header, kNow, "POST", "/pay/commit?x=1"))) << "target";
  EXPECT_TRUE(refused(Verify({kKey}, header, kNow, "POST", "/pay/prepare?x=2"))) << "query";
  EXPECT_TRUE(refused(Verify({kKey}, header, kNow, "POST", "/pay/prepare?x=1", kBody + " ")))
      << "body";
  // A tampered timestamp with the old MAC.
  std::string retimed = "t=" + std::to_string(kNow + 1) + header.substr(header.find(','));
  EXPECT_TRUE(refused(Verify({kKey}, retimed))) << "timestamp";
  // One flipped hex digit.
  std::string flipped = header;
  flipped.back() = flipped.back() == '0' ? '1' : '0';
  EXPECT_TRUE(refused(Verify({kKey}, flipped)));
}

TEST(RequestSignatureTest, OldAndFutureTimestampsAreRefused) {
  std::string header = SignRequest(kKey, kNow, "POST", "/pay/prepare?x=1", kBody);
  for (int64_t now : {kNow + kSkew + 1, kNow - kSkew - 1, kNow + 86400 * 365}) {
    Status s = Verify({kKey}, header, now);
    EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << now;
    EXPECT_NE(s.message().find("more than 300 s"), std::string::npos) << s.message();
  }
}

TEST(RequestSignatureTest, SeveralSignaturesAnyMayMatch) {
  std::string mine = SignRequest(kKey, kNow, "POST", "/pay/prepare?x=1", kBody);
  std::string theirs = SignRequest(kOtherKey, kNow, "POST", "/pay/prepare?x=1", kBody);
  std::string both = mine + ",v1=" + theirs.substr(theirs.find("v1=") + 3);
  EXPECT_TRUE(Verify({kOtherKey}, both).ok());
  EXPECT_TRUE(Verify({kKey}, both).ok());
  EXPECT_FALSE(Verify({"a-third-key-that-is-long-enough-000"}, both).ok());
}

TEST(RequestSignatureTest, MalformedHeadersAreRefusedWithoutEcho) {
  std::string good = SignRequest(kKey, kNow, "POST", "/pay/prepare?x=1", kBody);
  std::string hex = good.substr(good.find("v1=") + 3);
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(toupper(c));
  EXPECT_TRUE(Verify({kKey}, "t=1700000000,v1=" + upper).ok()) << "hex case does not matter";

  Status missing = Verify({kKey}, "");
  EXPECT_EQ(missing.code(), StatusCode::kUnauthenticated);
  EXPECT_NE(missing.message().find("missing"), std::string::npos);

  for (const std::string& bad : std::vector<std::string>{
           "garbage", "t=1700000000", "v1=" + hex, "t=,v1=" + hex, "t=-1700000000,v1=" + hex,
           "t=1700000000,v1=" + hex.substr(1), "t=1700000000,v1=" + hex + "0",
           "t=1700000000,v1=" + hex.substr(0, 63) + "g", "t=1700000000 ,v1=" + hex,
           "t=1700000000,v1=" + hex + ",", "t=1700000000,v2=" + hex,
           "t=1700000000,t=1700000000,v1=" + hex, "t=1700000000,v1=" + hex + ",x=1",
           "t=17000000000000000000000,v1=" + hex, " t=1700000000,v1=" + hex,
           "T=1700000000,v1=" + hex}) {
    Status s = Verify({kKey}, bad);
    EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << bad;
    EXPECT_NE(s.message().find("malformed"), std::string::npos) << bad << ": " << s.message();
    EXPECT_EQ(s.message().find(hex.substr(0, 12)), std::string::npos) << "echoes the header";
  }
}

TEST(RequestSignatureTest, LoadSigningKey) {
  const std::string dir = testing::MakeTempDir("treaty-sig");
  ASSERT_FALSE(dir.empty());
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name, std::ios::binary) << text;
    return dir + "/" + name;
  };
  const std::string key32(32, 'k');
  auto lf = LoadSigningKey(write("lf", key32 + "\n"), "--participant-hmac-key");
  ASSERT_TRUE(lf.ok()) << lf.status().ToString();
  EXPECT_EQ(*lf, key32);
  auto crlf = LoadSigningKey(write("crlf", key32 + "\r\n"), "--participant-hmac-key");
  ASSERT_TRUE(crlf.ok());
  EXPECT_EQ(*crlf, key32);
  auto two = LoadSigningKey(write("two", key32 + "\n\n"), "--participant-hmac-key");
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(*two, key32 + "\n") << "only one trailing newline is removed";
  auto raw = LoadSigningKey(write("raw", key32), "--participant-hmac-key");
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(*raw, key32);

  auto shorter = LoadSigningKey(write("short", std::string(31, 'k') + "\n"), "--opt");
  ASSERT_FALSE(shorter.ok());
  EXPECT_EQ(shorter.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(shorter.status().message().find("--opt"), std::string::npos);
  EXPECT_NE(shorter.status().message().find("32 bytes"), std::string::npos);
  EXPECT_EQ(shorter.status().message().find("kkkk"), std::string::npos) << "never echoes the key";

  auto missing = LoadSigningKey(dir + "/none", "--opt");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("--opt"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// A directory (or anything not a regular file) is refused as an error; the
// read must not throw (libstdc++ streams throw "Is a directory").
TEST(RequestSignatureTest, LoadSigningKeyRefusesADirectory) {
  const std::string dir = testing::MakeTempDir("treaty-sig");
  ASSERT_FALSE(dir.empty());
  auto key = LoadSigningKey(dir, "--participant-hmac-key");
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(key.status().message().find("--participant-hmac-key"), std::string::npos);
  EXPECT_NE(key.status().message().find(dir), std::string::npos) << key.status().message();
  EXPECT_NE(key.status().message().find("directory"), std::string::npos) << key.status().message();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace treaty
