// security/config_file.h: ParseConfigText (treatyd's --config format: every
// refusal names its line and the key as written; sections and bare keys
// that take a value are refused) and the readers' refusal of anything but
// a regular file (a FIFO, /dev/zero) before a byte is read.

#include "security/config_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

namespace treaty {
namespace {

// The options of a small treatyd.
ConfigKeyKind KindOf(const std::string& key) {
  static const std::map<std::string, ConfigKeyKind> kKeys = {
      {"store", ConfigKeyKind::kValue},         {"lease-ms", ConfigKeyKind::kValue},
      {"allowed-hosts", ConfigKeyKind::kValue}, {"insecure", ConfigKeyKind::kFlag},
      {"metrics-open", ConfigKeyKind::kFlag},   {"config", ConfigKeyKind::kNotInFile},
      {"log-level", ConfigKeyKind::kValue},
  };
  auto it = kKeys.find(key);
  return it == kKeys.end() ? ConfigKeyKind::kUnknown : it->second;
}

Result<std::vector<ConfigSetting>> Parse(std::string_view text) {
  return ParseConfigText(text, KindOf);
}

// The refusal message of `text` ("" when it parses).
std::string Refusal(std::string_view text) {
  auto r = Parse(text);
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

TEST(ConfigTextTest, ParsesTheDocumentedForms) {
  auto r = Parse(
      "# comment\n"
      "\n"
      "store = \"sqlite:/var/lib/treaty/a#b.db\"   # a '#' inside quotes is text\n"
      "  lease-ms=5000\r\n"
      "log-level = info # bare word\n"
      "allowed-hosts = [\"a.example\", 'b.example:7480',\n"
      "  # a comment inside the list\n"
      "  c.example,   # bare, trailing comma\n"
      "]\n"
      "insecure\n"
      "metrics-open = false\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 6u);
  const auto& s = *r;
  EXPECT_EQ(s[0].key, "store");
  EXPECT_EQ(s[0].values, std::vector<std::string>{"sqlite:/var/lib/treaty/a#b.db"});
  EXPECT_EQ(s[0].line, 3);
  EXPECT_EQ(s[1].key, "lease-ms");
  EXPECT_EQ(s[1].values, std::vector<std::string>{"5000"});
  EXPECT_EQ(s[1].line, 4);
  EXPECT_EQ(s[2].values, std::vector<std::string>{"info"});
  EXPECT_EQ(s[3].key, "allowed-hosts");
  EXPECT_EQ(s[3].values, (std::vector<std::string>{"a.example", "b.example:7480", "c.example"}));
  EXPECT_EQ(s[3].line, 6);
  EXPECT_EQ(s[4].key, "insecure");  // a bare flag means true
  EXPECT_EQ(s[4].values, std::vector<std::string>{"true"});
  EXPECT_EQ(s[4].line, 10);
  EXPECT_EQ(s[5].values, std::vector<std::string>{"false"});
  EXPECT_EQ(s[5].line, 11);

  auto esc = Parse(R"(store = "a\"b\\c" )");
  ASSERT_TRUE(esc.ok()) << esc.status().message();
  EXPECT_EQ((*esc)[0].values[0], "a\"b\\c");
  auto literal = Parse(R"(store = 'C:\x\y')");
  ASSERT_TRUE(literal.ok()) << literal.status().message();
  EXPECT_EQ((*literal)[0].values[0], R"(C:\x\y)");
  auto empty = Parse("store = \"\"");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ((*empty)[0].values, std::vector<std::string>{""});
}

// A section header was taken for a table and the keys under it reported as
// "server.store" (or the section's end as "server.--"): it is refused at
// its own line, quoting it.
TEST(ConfigTextTest, SectionIsRefusedAtItsLine) {
  const std::string msg = Refusal("store = \"x\"\n\n[server]\nlease-ms = 5000\n");
  EXPECT_EQ(msg.rfind("line 3: section header '[server]'", 0), 0u) << msg;
  EXPECT_EQ(msg.find("server."), std::string::npos) << msg;  // "server.--", "server.++"
  EXPECT_EQ(Refusal("[[server]]\n").rfind("line 1: section header '[[server]]'", 0), 0u);
}

TEST(ConfigTextTest, UnknownKeyIsNamedWithItsLine) {
  EXPECT_EQ(Refusal("store = \"x\"\n# c\nhttp-max-conections = 10\n")
                .rfind("line 3: unknown key 'http-max-conections'", 0),
            0u);
  // A dotted key is a key like any other (no tables).
  EXPECT_EQ(Refusal("server.store = \"x\"\n").rfind("line 1: unknown key 'server.store'", 0), 0u);
  EXPECT_EQ(Refusal("config = \"/etc/x\"\n")
                .rfind("line 1: 'config' is an option of the command line only", 0),
            0u);
  // Not a key at all: quoted with control characters escaped.
  const std::string msg = Refusal("\n\x1b[31m = 1\n");
  EXPECT_EQ(msg.rfind("line 2: expected `key = value`, found '\\x1b[31m = 1'", 0), 0u) << msg;
}

// A bare key used to become the value "true": allowed for flags only.
TEST(ConfigTextTest, BareKeyNeedsAValueUnlessAFlag) {
  EXPECT_EQ(Refusal("insecure = true\nstore\n").rfind("line 2: 'store' needs a value", 0), 0u)
      << Refusal("insecure = true\nstore\n");
  EXPECT_EQ(Refusal("store   # a comment\n").rfind("line 1: 'store' needs a value", 0), 0u);
  EXPECT_EQ(Refusal("store =\n").rfind("line 1: 'store' = nothing", 0), 0u);
  EXPECT_EQ(Refusal("insecure =   # nothing\n").rfind("line 1: 'insecure' = nothing", 0), 0u);
  EXPECT_EQ(Refusal("metrics-open\n"), "");
}

TEST(ConfigTextTest, OtherMistakesNameTheLineAndKey) {
  EXPECT_EQ(Refusal("store = \"a\"\nstore = \"b\"\n")
                .rfind("line 2: 'store' is set again (first on line 1)", 0),
            0u);
  EXPECT_EQ(
      Refusal("store = \"a\" b\n").rfind("line 1: unexpected text after the value of 'store'", 0),
      0u);
  EXPECT_EQ(Refusal("store = \"abc\n").rfind("line 1: the value of 'store': a \" is not closed", 0),
            0u);
  EXPECT_EQ(
      Refusal("store = \"a\\qb\"\n").rfind("line 1: the value of 'store': unsupported escape", 0),
      0u);
  EXPECT_EQ(Refusal("store: 1\n").rfind("line 1: expected '=' after 'store'", 0), 0u);
  EXPECT_EQ(
      Refusal("allowed-hosts = []\n").rfind("line 1: the list of 'allowed-hosts' is empty", 0), 0u);
  EXPECT_EQ(Refusal("allowed-hosts = [\"a\",\n\"b\"\n")
                .rfind("line 1: the list of 'allowed-hosts' is not closed", 0),
            0u);
  EXPECT_EQ(Refusal("allowed-hosts = [\"a\" \"b\"]\n")
                .rfind("line 1: expected ',' or ']' in the list of 'allowed-hosts'", 0),
            0u);
}

class ConfigFileReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/treaty-config-file-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string dir_;
};

// Neither blocks: a FIFO without a writer, /dev/zero without end.
TEST_F(ConfigFileReadTest, OnlyARegularFileIsRead) {
  const auto began = std::chrono::steady_clock::now();
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& path : {fifo, std::string("/dev/zero"), dir_}) {
    Status check = CheckRegularFile("--config", path);
    EXPECT_EQ(check.code(), StatusCode::kInvalidArgument) << path;
    EXPECT_EQ(check.message().rfind("--config: cannot read '" + path + "'", 0), 0u)
        << check.message();
    auto read = ReadConfigFile("--config", path, kMaxOptionsFileBytes);
    EXPECT_FALSE(read.ok()) << path;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(5));

  const std::string big = dir_ + "/big.conf";
  std::ofstream(big) << std::string(kMaxOptionsFileBytes + 1, '#');
  auto read = ReadConfigFile("--config", big, kMaxOptionsFileBytes);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("larger than"), std::string::npos);
  EXPECT_TRUE(CheckRegularFile("--config", big).ok());
}

}  // namespace
}  // namespace treaty
