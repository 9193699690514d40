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
      {"store", ConfigKeyKind::kText},         {"lease-ms", ConfigKeyKind::kInteger},
      {"allowed-hosts", ConfigKeyKind::kList}, {"insecure", ConfigKeyKind::kFlag},
      {"metrics-open", ConfigKeyKind::kFlag},  {"config", ConfigKeyKind::kNotInFile},
      {"log-level", ConfigKeyKind::kText},
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
  // \n is not an escape any more: a value holds no newline.
  EXPECT_EQ(
      Refusal("store = \"a\\nb\"\n").rfind("line 1: the value of 'store': unsupported escape", 0),
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

// A flag takes only a bare true or false (or stands alone). Before,
// `insecure = ""` set the flag (CLI11 reads an empty flag value as set) and
// yes, 1, "true", [true] were taken.
TEST(ConfigTextTest, FlagTakesOnlyBareTrueOrFalse) {
  for (const char* value :
       {"\"\"", "''", "yes", "1", "\"true\"", "'false'", "TRUE", "on", "true false"}) {
    const std::string text = std::string("insecure = ") + value + "\n";
    EXPECT_EQ(Refusal(text).rfind("line 1: 'insecure' is a flag: write true or false, unquoted", 0),
              0u)
        << text << Refusal(text);
  }
  EXPECT_EQ(Refusal("store = \"x\"\nmetrics-open = [true]\n")
                .rfind("line 2: 'metrics-open' takes one value, not a list", 0),
            0u);
  auto r = Parse("insecure = true\nmetrics-open = false # off\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)[0].values, std::vector<std::string>{"true"});
  EXPECT_EQ((*r)[1].values, std::vector<std::string>{"false"});
}

// Every value has its option's kind: only a list option takes a list, an
// integer option takes a bare integer. Before, `lease-ms = [3]` and
// `lease-ms = "3"` were accepted.
TEST(ConfigTextTest, ValueMustHaveItsOptionsKind) {
  const std::pair<const char*, const char*> refused[] = {
      {"lease-ms = [3]", "line 1: 'lease-ms' takes one value, not a list"},
      {"lease-ms = \"3\"", "line 1: 'lease-ms' takes an integer, unquoted"},
      {"lease-ms = '3'", "line 1: 'lease-ms' takes an integer, unquoted"},
      {"lease-ms = 3x", "line 1: 'lease-ms' takes an integer, unquoted"},
      {"lease-ms = 3.5", "line 1: 'lease-ms' takes an integer, unquoted"},
      {"lease-ms = -", "line 1: 'lease-ms' takes an integer, unquoted"},
      {"lease-ms = 99999999999999999999", "line 1: 'lease-ms' takes an integer, unquoted"},
      {"store = [\"sqlite:/a\"]", "line 1: 'store' takes one value, not a list"},
      {"log-level = [info, debug]", "line 1: 'log-level' takes one value, not a list"},
  };
  for (const auto& [text, why] : refused) {
    EXPECT_EQ(Refusal(text).rfind(why, 0), 0u) << text << ": " << Refusal(text);
  }
  for (const char* text :
       {"lease-ms = 5000", "lease-ms = -1", "store = sqlite:/a", "allowed-hosts = \"a,b\"",
        "allowed-hosts = [a]", "log-level = 'info'"}) {
    EXPECT_EQ(Refusal(text), "") << text;
  }
}

// A control character in a value (quoted, bare or in a list) is refused
// naming line and key; tab is allowed. Before, a NUL was taken and cut the
// value short where it was used (sqlite:/tmp/x.db<NUL>.evil opened /tmp/x.db).
TEST(ConfigTextTest, ControlCharacterInAValueIsRefused) {
  const std::pair<std::string, std::string> refused[] = {
      {std::string("store = \"sqlite:/tmp/x.db\0.evil\"\n", 32),
       "line 1: the value of 'store' holds the control character \\x00 (only tab is allowed)"},
      {std::string("\nstore = 'a\0b'\n", 15), "line 2: the value of 'store' holds"},
      {std::string("store = a\0b\n", 12), "line 1: the value of 'store' holds"},
      {"log-level = \"a\x1b[2Jb\"\n",
       "line 1: the value of 'log-level' holds the control "
       "character \\x1b"},
      {"allowed-hosts = [\"a\",\n \"b\x7f\"]\n", "line 2: the value of 'allowed-hosts' holds"},
      {"store = \"a\x0b\"\n", "line 1: the value of 'store' holds the control character \\x0b"},
  };
  for (const auto& [text, why] : refused) {
    EXPECT_EQ(Refusal(text).rfind(why, 0), 0u) << Refusal(text);
  }
  auto tab = Parse("store = \"a\tb\"\nlog-level = 'c\td'\n");
  ASSERT_TRUE(tab.ok()) << tab.status().message();
  EXPECT_EQ((*tab)[0].values[0], "a\tb");
}

// Every message quoting the file is escaped and short. Before, a
// 1,000,000-byte unknown key gave a 1 MB message; CR-only line endings
// left a CR in a value (CLI11 then printed it raw) or hid the following
// lines in a comment; a byte order mark gave an invisible character.
TEST(ConfigTextTest, MessagesAreEscapedAndBounded) {
  const std::string huge(1000000, 'k');
  for (const std::string& text :
       {huge + " = 1\n", "store = \"a\"\n" + huge + "\n", "[" + huge + "]\n",
        "store " + huge + "\n", "store = \"a\" " + huge + "\n"}) {
    const std::string msg = Refusal(text);
    EXPECT_FALSE(msg.empty());
    EXPECT_LT(msg.size(), 400u) << msg.substr(0, 200);
  }
  EXPECT_EQ(Refusal(huge + " = 1\n").rfind("line 1: unknown key 'kkk", 0), 0u);
  EXPECT_EQ(Refusal("store = \"a\"\rlease-ms = 5000\r")
                .rfind("line 1: a carriage return (\\r) not followed by a newline", 0),
            0u);
  EXPECT_EQ(Refusal("store = \"a\"\n# c\rinsecure\r").rfind("line 2: a carriage return", 0), 0u);
  EXPECT_EQ(Refusal("store = \"a\r\"\r\n").rfind("line 1: a carriage return", 0), 0u);
  // A byte order mark at the very start is skipped; anywhere else named.
  auto bom = Parse("\xEF\xBB\xBFstore = \"a\"\r\n");
  ASSERT_TRUE(bom.ok()) << bom.status().message();
  EXPECT_EQ((*bom)[0].key, "store");
  EXPECT_EQ(Refusal("store = \"a\"\n\xEF\xBB\xBFlease-ms = 1\n")
                .rfind("line 2: a byte order mark (U+FEFF) is allowed only at the start", 0),
            0u);
  for (char c = 1; c < 0x20; ++c) {
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') continue;
    const std::string msg = Refusal(std::string("lease-ms = 1 ") + c + "x\n");
    for (char m : msg) EXPECT_GE(static_cast<unsigned char>(m), 0x20) << msg;
  }
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
