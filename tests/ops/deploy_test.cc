// treatyd and treatyctl as deployed: the real binaries run as child
// processes. --version and the treaty_build_info gauge; `treatyd migrate`
// however the store is given; --config (the sample deploy/config/treatyd.conf
// is complete and accepted; an unknown key, a section, a bare key that takes
// a value, a value of the wrong kind or with a control character are
// refused naming the file, line and key, escaped and bounded; a FIFO, a
// device or a file over 1 MiB is refused at once; the file is opened once);
// --check-config and a real start agree on the store URI;
// --advertise-http and the address a wildcard listener shows; the systemd
// readiness protocol over a NOTIFY_SOCKET this test binds; the unit file
// through `systemd-analyze verify` when that tool works here.

#include <signal.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/version.h"
#include "http/http_client.h"
#include "support/subprocess.h"
#include "support/treatyd_process.h"

namespace treaty::testing {
namespace {

using nlohmann::json;

struct RunResult {
  int code = -1;
  std::string output;  // stdout and stderr
};

// Runs `argv` to completion (at most 30 s) with its output captured.
RunResult RunBinary(const std::string& dir, const std::string& name,
                    std::vector<std::string> argv) {
  Subprocess proc(std::move(argv), dir + "/" + name + ".out");
  if (!proc.Start().ok()) return {};
  const int code = proc.Wait(30000);
  return {code, proc.Log()};
}

std::string SourceDir() {
  const char* dir = std::getenv("TREATY_SOURCE_DIR");
  return dir ? dir : "../..";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string HostName() {
  char name[256] = {};
  return gethostname(name, sizeof(name) - 1) == 0 ? name : "";
}

class DeployTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("treaty-deploy"); }
  void TearDown() override { (void)std::system(("rm -rf '" + dir_ + "'").c_str()); }

  TreatydOptions Options(const std::string& name) {
    TreatydOptions o;
    o.store = "sqlite:" + dir_ + "/" + name + ".db";
    return o;
  }

  // The coordinators rows of GET /v1/cluster.
  json Cluster(const TreatydProcess& t) {
    auto r = HttpFetch("GET", t.url() + "/v1/cluster");
    if (!r.ok() || r->status != 200) return json::array();
    return json::parse(r->body)["coordinators"];
  }

  std::string dir_;
};

TEST_F(DeployTest, VersionOfBothBinaries) {
  const std::regex shape(
      R"(^(treatyd|treatyctl) \d+\.\d+\.\d+ \(git [0-9A-Za-z._+~-]+, built \S+\)\n$)");
  for (const char* program : {"treatyd", "treatyctl"}) {
    RunResult r = RunBinary(dir_, program, {BinaryPath(program), "--version"});
    EXPECT_EQ(r.code, 0) << program << ": " << r.output;
    EXPECT_TRUE(std::regex_match(r.output, shape)) << r.output;
    EXPECT_EQ(r.output, VersionLine(program) + "\n");
  }
  // Version() is CMake's project(VERSION).
  const std::string cmake = ReadFile(SourceDir() + "/CMakeLists.txt");
  EXPECT_NE(cmake.find("project(treaty VERSION " + std::string(Version()) + " "), std::string::npos)
      << Version();
}

TEST_F(DeployTest, MetricsCarryBuildInfo) {
  TreatydProcess t(dir_, "metrics", Options("metrics"));
  ASSERT_TRUE(t.Start().ok()) << t.Log();
  auto r = HttpFetch("GET", t.url() + "/metrics");
  ASSERT_TRUE(r.ok() && r->status == 200) << t.Log();
  const std::string line = "treaty_build_info{version=\"" + std::string(Version()) +
                           "\",commit=\"" + std::string(GitCommit()) + "\"} 1\n";
  EXPECT_NE(r->body.find("# TYPE treaty_build_info gauge\n"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find(line), std::string::npos) << line << r->body;
}

// The documented forms of `treatyd migrate` (docs/operations.md).
TEST_F(DeployTest, MigrateTakesTheStoreAnyWay) {
  const std::string treatyd = BinaryPath("treatyd");
  const std::string applied = "migrations applied to sqlite store";
  RunResult after =
      RunBinary(dir_, "after", {treatyd, "migrate", "--store", "sqlite:" + dir_ + "/a.db"});
  EXPECT_EQ(after.code, 0) << after.output;
  EXPECT_NE(after.output.find(applied), std::string::npos) << after.output;
  EXPECT_GT(ReadFile(dir_ + "/a.db").size(), 0u);
  // Again: nothing left to apply, still 0.
  after = RunBinary(dir_, "again", {treatyd, "migrate", "--store", "sqlite:" + dir_ + "/a.db"});
  EXPECT_EQ(after.code, 0) << after.output;

  RunResult before =
      RunBinary(dir_, "before", {treatyd, "--store", "sqlite:" + dir_ + "/b.db", "migrate"});
  EXPECT_EQ(before.code, 0) << before.output;
  EXPECT_GT(ReadFile(dir_ + "/b.db").size(), 0u);

  setenv("TREATY_STORE", ("sqlite:" + dir_ + "/c.db").c_str(), 1);
  RunResult env = RunBinary(dir_, "env", {treatyd, "migrate"});
  unsetenv("TREATY_STORE");
  EXPECT_EQ(env.code, 0) << env.output;
  EXPECT_GT(ReadFile(dir_ + "/c.db").size(), 0u);

  WriteFile(dir_ + "/migrate.conf", "store = \"sqlite:" + dir_ + "/d.db\"\n");
  RunResult config =
      RunBinary(dir_, "config", {treatyd, "migrate", "--config", dir_ + "/migrate.conf"});
  EXPECT_EQ(config.code, 0) << config.output;
  EXPECT_GT(ReadFile(dir_ + "/d.db").size(), 0u);

  // A misspelt option is a usage error naming it.
  RunResult bad =
      RunBinary(dir_, "bad", {treatyd, "migrate", "--stor", "sqlite:" + dir_ + "/e.db"});
  EXPECT_EQ(bad.code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--stor"), std::string::npos) << bad.output;
}

// Every long option of `treatyd --help` is a key of the sample configuration.
TEST_F(DeployTest, SampleConfigListsEveryOption) {
  RunResult help = RunBinary(dir_, "help", {BinaryPath("treatyd"), "--help"});
  ASSERT_EQ(help.code, 0) << help.output;
  const std::string sample = ReadFile(SourceDir() + "/deploy/config/treatyd.conf");
  ASSERT_FALSE(sample.empty());
  // Not configuration: what to do this run, or the file itself.
  const std::set<std::string> not_keys = {"help", "version", "config", "check-config"};
  const std::regex option(R"(^  (?:-\w,)?--([a-z0-9-]+))");
  int seen = 0;
  std::istringstream lines(help.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Subcommands:", 0) == 0) break;  // the subcommands' own options follow
    std::smatch m;
    if (!std::regex_search(line, m, option) || not_keys.count(m[1])) continue;
    ++seen;
    const std::regex key("(^|\n)(# )?" + std::string(m[1]) + " = ");
    EXPECT_TRUE(std::regex_search(sample, key)) << "--" << m[1] << " is not in the sample";
  }
  EXPECT_GT(seen, 30) << help.output;
}

TEST_F(DeployTest, SampleConfigIsAccepted) {
  const std::string treatyd = BinaryPath("treatyd");
  const std::string sample = SourceDir() + "/deploy/config/treatyd.conf";
  RunResult as_is = RunBinary(dir_, "as-is", {treatyd, "--config", sample, "--check-config"});
  EXPECT_EQ(as_is.code, 0) << as_is.output;
  EXPECT_NE(as_is.output.find("configuration OK"), std::string::npos) << as_is.output;

  // With every `# key = value` line uncommented: each default is a valid value.
  std::istringstream in(ReadFile(sample));
  std::string all;
  int uncommented = 0;
  for (std::string line; std::getline(in, line);) {
    if (std::regex_match(line, std::regex(R"(# [a-z0-9-]+ = .*)"))) {
      line = line.substr(2);
      ++uncommented;
    }
    all += line + "\n";
  }
  EXPECT_GT(uncommented, 30);
  WriteFile(dir_ + "/all.conf", all);
  RunResult every =
      RunBinary(dir_, "every", {treatyd, "--config", dir_ + "/all.conf", "--check-config"});
  EXPECT_EQ(every.code, 0) << every.output;

  // And it serves with it (the command line overrides its store and address).
  TreatydOptions o = Options("sample");
  o.extra = {"--config", sample};
  TreatydProcess t(dir_, "sample", o);
  ASSERT_TRUE(t.Start().ok()) << t.Log();
  EXPECT_FALSE(t.CoordinatorId().empty()) << t.Log();
}

TEST_F(DeployTest, UnknownConfigKeyIsRefusedByName) {
  const std::string treatyd = BinaryPath("treatyd");
  WriteFile(dir_ + "/typo.conf",
            "store = \"sqlite:" + dir_ + "/typo.db\"\nhttp-max-conections = 10\n");
  for (const char* mode : {"--check-config", "--http=127.0.0.1:0"}) {
    RunResult r = RunBinary(dir_, "typo", {treatyd, "--config", dir_ + "/typo.conf", mode});
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_NE(r.output.find("unknown key 'http-max-conections'"), std::string::npos) << r.output;
  }
  EXPECT_EQ(ReadFile(dir_ + "/typo.db").size(), 0u) << "the store was opened";

  // A value out of range is refused naming the option, as on the command line.
  WriteFile(dir_ + "/range.conf", "lease-ms = 5\n");
  RunResult range =
      RunBinary(dir_, "range", {treatyd, "--config", dir_ + "/range.conf", "--check-config"});
  EXPECT_EQ(range.code, 2) << range.output;
  EXPECT_NE(range.output.find("--lease-ms"), std::string::npos) << range.output;

  // A lease under 3 heartbeats would run out between heartbeats (peers
  // declaring each other dead in turn): refused naming both options.
  for (const char* mode : {"--check-config", "--http=127.0.0.1:0"}) {
    RunResult flap = RunBinary(dir_, "flap",
                               {treatyd, "--store", "sqlite:" + dir_ + "/flap.db", "--heartbeat-ms",
                                "2000", "--lease-ms", "5999", mode});
    EXPECT_EQ(flap.code, 2) << flap.output;
    EXPECT_NE(flap.output.find("--lease-ms (5999) must be at least 3 times --heartbeat-ms (2000)"),
              std::string::npos)
        << flap.output;
  }

  RunResult missing =
      RunBinary(dir_, "missing", {treatyd, "--config", dir_ + "/absent.conf", "--check-config"});
  EXPECT_EQ(missing.code, 2) << missing.output;
  EXPECT_NE(missing.output.find("absent.conf"), std::string::npos) << missing.output;
}

// Each mistake in the file is refused (exit 2, before anything is opened)
// naming the file, the line and the key as written. Before: a `[server]`
// section had its keys reported as "server.lease-ms" and its end as
// "server.--", without a line; a bare `store` became store = "true"; a key
// set twice kept its first value silently.
TEST_F(DeployTest, ConfigMistakesNameFileLineAndKey) {
  const std::string treatyd = BinaryPath("treatyd");
  const std::string conf = dir_ + "/mistake.conf";
  const std::string store = "store = \"sqlite:" + dir_ + "/mistake.db\"\n";
  struct Case {
    std::string text;
    std::string named;  // after "--config FILE: "
  };
  const std::vector<Case> cases = {
      {store + "[server]\nlease-ms = 5000\n", "line 2: section header '[server]'"},
      {store + "lease-ms = 5000\n[server]\n", "line 3: section header '[server]'"},
      {"# where the log is\nstore\n", "line 2: 'store' needs a value"},
      {store + "lease-ms = 5000\nlease-ms = 6000\n",
       "line 3: 'lease-ms' is set again (first on line 2)"},
      {store + "check-config = true\n", "line 2: 'check-config' is an option of the command line"},
      {store + "\n\nhttp-max-conections = 10\n", "line 4: unknown key 'http-max-conections'"},
  };
  for (const Case& c : cases) {
    WriteFile(conf, c.text);
    for (const char* mode : {"--check-config", "--http=127.0.0.1:0"}) {
      RunResult r = RunBinary(dir_, "mistake", {treatyd, "--config", conf, mode});
      EXPECT_EQ(r.code, 2) << c.text << r.output;
      EXPECT_NE(r.output.find("treatyd: --config " + conf + ": " + c.named), std::string::npos)
          << c.text << r.output;
      EXPECT_EQ(r.output.find("server."), std::string::npos) << r.output;
    }
  }
  EXPECT_EQ(ReadFile(dir_ + "/mistake.db").size(), 0u) << "the store was opened";

  // A bare flag is that flag set: `insecure` allows the wildcard listener.
  WriteFile(conf, store + "insecure\n");
  RunResult flag =
      RunBinary(dir_, "flag", {treatyd, "--config", conf, "--http=0.0.0.0:0", "--check-config"});
  EXPECT_EQ(flag.code, 0) << flag.output;
  EXPECT_NE(flag.output.find("configuration OK"), std::string::npos) << flag.output;
}

// --config names a regular file of at most 1 MiB; anything else is refused
// at once, naming it. Before, /dev/zero was read without end and a FIFO
// blocked the start until a writer came.
TEST_F(DeployTest, ConfigThatIsNotASmallFileIsRefusedAtOnce) {
  const std::string treatyd = BinaryPath("treatyd");
  const std::string fifo = dir_ + "/fifo.conf";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string big = dir_ + "/big.conf";
  std::string comments;
  while (comments.size() <= (1u << 20)) comments += "# " + std::string(77, 'x') + "\n";
  WriteFile(big, comments);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/dev/zero", "not a regular file"},
      {fifo, "not a regular file"},
      {dir_, "a directory"},
      {big, "larger than 1048576 bytes"},
  };
  for (const auto& [path, why] : cases) {
    for (const char* mode : {"--check-config", "--http=127.0.0.1:0"}) {
      const auto began = std::chrono::steady_clock::now();
      RunResult r = RunBinary(dir_, "not-a-file", {treatyd, "--config", path, mode});
      EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(10)) << path;
      EXPECT_EQ(r.code, 2) << path << ": " << r.output;
      EXPECT_NE(r.output.find(path), std::string::npos) << r.output;
      EXPECT_NE(r.output.find(why), std::string::npos) << r.output;
    }
  }
}

// --check-config makes every check a start would make before it opens the
// store: a configuration it passes must not then fail to start (under
// systemd, ExecStartPre would pass and Restart= loop). Each refusal names
// its option and exits 2, at check and at start alike.
TEST_F(DeployTest, CheckConfigRefusesWhatStartWouldRefuse) {
  const std::string treatyd = BinaryPath("treatyd");
  const std::string store = "--store=sqlite:" + dir_ + "/check.db";
  WriteFile(dir_ + "/bad-tokens", "not a tokens line\n");
  WriteFile(dir_ + "/short-key", "too short");
  WriteFile(dir_ + "/garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
  struct Case {
    std::vector<std::string> args;
    std::string named;  // text the refusal must contain
  };
  const std::vector<Case> cases = {
      {{"--auth-tokens", dir_ + "/bad-tokens"}, "line 1"},
      {{"--http", "0.0.0.0:0"}, "--auth-tokens"},
      {{"--participant-allow", "a/b/c"}, "a/b/c"},
      {{"--participant-hmac-key", dir_ + "/short-key"}, "--participant-hmac-key"},
      {{"--tls-cert", dir_ + "/garbage.pem", "--tls-key", dir_ + "/garbage.pem"}, "--tls"},
      {{"--audit-log", dir_ + "/no-such-dir/audit.log"}, "--audit-log"},
  };
  for (const Case& c : cases) {
    for (const char* mode : {"--check-config", "--thrift=off"}) {
      std::vector<std::string> argv = {treatyd, store, mode};
      argv.insert(argv.end(), c.args.begin(), c.args.end());
      if (c.args[0] != "--http") argv.push_back("--http=127.0.0.1:0");
      RunResult r = RunBinary(dir_, "check", argv);
      EXPECT_EQ(r.code, 2) << mode << " " << c.args[0] << ": " << r.output;
      EXPECT_NE(r.output.find(c.named), std::string::npos) << c.args[0] << ": " << r.output;
      EXPECT_EQ(r.output.find("configuration OK"), std::string::npos) << r.output;
    }
  }
}

// Each value must have its option's kind. Before: `insecure = ""` turned
// the flag on (CLI11 takes an empty flag value as set), `= yes`, `= 1`,
// `= "true"` and `= [true]` were taken too, `io-threads = [3]` and
// `io-threads = "3"` were accepted.
TEST_F(DeployTest, ConfigValueOfTheWrongKindIsRefused) {
  const std::string treatyd = BinaryPath("treatyd");
  const std::string conf = dir_ + "/kind.conf";
  const std::string store = "store = \"sqlite:" + dir_ + "/kind.db\"\n";
  struct Case {
    std::string line;
    std::string named;  // after "line 2: "
  };
  const std::vector<Case> cases = {
      {"insecure = \"\"", "'insecure' is a flag"},
      {"insecure = yes", "'insecure' is a flag"},
      {"insecure = 1", "'insecure' is a flag"},
      {"insecure = \"true\"", "'insecure' is a flag"},
      {"insecure = [true]", "'insecure' takes one value, not a list"},
      {"metrics-open = \"\"", "'metrics-open' is a flag"},
      {"io-threads = [3]", "'io-threads' takes one value, not a list"},
      {"io-threads = \"3\"", "'io-threads' takes an integer"},
      {"io-threads = 3x", "'io-threads' takes an integer"},
      {"store-timeout-ms = \"0\"", "'store-timeout-ms' takes an integer"},
      {"log-level = [\"info\"]", "'log-level' takes one value, not a list"},
  };
  int run = 0;  // each run its own output file: the outputs of one name add up
  for (const Case& c : cases) {
    WriteFile(conf, store + c.line + "\n");
    // A non-loopback listener: allowed only if the flag were taken as set.
    for (const char* mode : {"--check-config", "--thrift=off"}) {
      RunResult r = RunBinary(dir_, "kind" + std::to_string(++run),
                              {treatyd, "--config", conf, "--http=0.0.0.0:0", mode});
      EXPECT_EQ(r.code, 2) << c.line << ": " << r.output;
      EXPECT_NE(r.output.find("treatyd: --config " + conf + ": line 2: " + c.named),
                std::string::npos)
          << c.line << ": " << r.output;
    }
  }
  // The kinds as documented still work.
  WriteFile(conf, store +
                      "insecure = true\nmetrics-open = false\nio-threads = 3\n"
                      "allowed-hosts = [\"a.example\", \"b.example\"]\n"
                      "participant-allow = \"*.svc,10.0.0.0/8\"\n");
  RunResult ok = RunBinary(dir_, "kinds", {treatyd, "--config", conf, "--check-config"});
  EXPECT_EQ(ok.code, 0) << ok.output;
}

// Text of the file or the command line reaches the terminal escaped and
// bounded. Before: a NUL cut a store path short (sqlite:/x.db<NUL>.evil
// opened /x.db), a 1,000,000-byte key gave a 1 MB message, CLI11's own
// value errors printed a raw ESC (a terminal escape) or CR.
TEST_F(DeployTest, ConfigTextReachesTheTerminalEscapedAndBounded) {
  const std::string treatyd = BinaryPath("treatyd");
  const std::string conf = dir_ + "/text.conf";
  const std::string db = dir_ + "/x.db";
  struct Case {
    std::string text;
    std::string named;  // after "--config FILE: "
  };
  const std::vector<Case> cases = {
      {std::string("store = \"sqlite:") + db + std::string("\0.evil\"\n", 8),
       "line 1: the value of 'store' holds the control character \\x00"},
      {"store = 'sqlite:" + db + "\x1b'\n", "line 1: the value of 'store' holds the control"},
      {"log-level = \"a\x1b[2Jb\"\n", "line 1: the value of 'log-level' holds the control"},
      {"allowed-hosts = [\"a\x07\"]\n", "line 1: the value of 'allowed-hosts' holds the control"},
      {"store = \"a\"\rlease-ms = 5000\r", "line 1: a carriage return"},
      {"# only a comment\rinsecure\r", "line 1: a carriage return"},
      {std::string(1000000, 'k') + " = 1\n", "line 1: unknown key 'kkkk"},
      {"store = \"a\"\n\xEF\xBB\xBFlease-ms = 5000\n", "line 2: a byte order mark"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    WriteFile(conf, c.text);
    // Its own output file each: the outputs of one name add up.
    RunResult r =
        RunBinary(dir_, "text" + std::to_string(i), {treatyd, "--config", conf, "--check-config"});
    EXPECT_EQ(r.code, 2) << r.output.substr(0, 300);
    EXPECT_NE(r.output.find("treatyd: --config " + conf + ": " + c.named), std::string::npos)
        << r.output.substr(0, 300);
    EXPECT_LT(r.output.size(), 1000u) << r.output.substr(0, 1000);
    for (char ch : r.output) {
      EXPECT_TRUE(ch == '\n' || static_cast<unsigned char>(ch) >= 0x20) << r.output;
    }
  }
  EXPECT_NE(access(db.c_str(), F_OK), 0) << "the store was opened";

  // CLI11's own refusal of a value (not a member, out of range), from the
  // file or the command line: escaped and bounded too.
  WriteFile(conf, "log-level = \"" + std::string(100000, 'a') + "\"\n");
  RunResult long_value = RunBinary(dir_, "long", {treatyd, "--config", conf, "--check-config"});
  EXPECT_EQ(long_value.code, 2) << long_value.output.substr(0, 300);
  EXPECT_LT(long_value.output.size(), 1000u);
  RunResult escape =
      RunBinary(dir_, "escape", {treatyd, "--log-level", "a\x1b[2J\rb", "--check-config"});
  EXPECT_EQ(escape.code, 2) << escape.output;
  EXPECT_NE(escape.output.find("--log-level"), std::string::npos) << escape.output;
  EXPECT_NE(escape.output.find("a\\x1b[2J\\rb"), std::string::npos) << escape.output;
  EXPECT_EQ(escape.output.find('\x1b'), std::string::npos) << escape.output;

  // A byte order mark at the very start (as some editors save) is skipped.
  WriteFile(conf, "\xEF\xBB\xBFstore = \"sqlite:" + db + "\"\n");
  RunResult bom = RunBinary(dir_, "bom", {treatyd, "--config", conf, "--check-config"});
  EXPECT_EQ(bom.code, 0) << bom.output;
}

// The file is opened exactly once (by treatyd's own bounded, non-blocking
// read), so it cannot be swapped for a FIFO between a check and the read.
// Before: once by the check and once more by CLI11's std::ifstream.
TEST_F(DeployTest, ConfigFileIsOpenedOnce) {
  const std::string treatyd = BinaryPath("treatyd");
  const std::string conf = dir_ + "/once.conf";
  WriteFile(conf, "store = \"sqlite:" + dir_ + "/once.db\"\n");
  const int watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(watch, 0);
  // Closes watched too: inotify merges an event into an identical one
  // still unread, so two opens in a row would count as one.
  ASSERT_GE(inotify_add_watch(watch, conf.c_str(), IN_OPEN | IN_CLOSE), 0);
  RunResult r = RunBinary(dir_, "once", {treatyd, "--config", conf, "--check-config"});
  EXPECT_EQ(r.code, 0) << r.output;
  int opens = 0;
  alignas(inotify_event) char buf[4096];
  for (ssize_t n; (n = read(watch, buf, sizeof buf)) > 0;) {
    for (char* p = buf; p < buf + n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(p);
      if (event->mask & IN_OPEN) ++opens;
      p += sizeof(inotify_event) + event->len;
    }
  }
  close(watch);
  EXPECT_EQ(opens, 1);
}

// The store URI is part of what --check-config checks, without opening the
// store, and a real start refuses the same URIs the same way (exit 2, a
// configuration error) before connecting. Before: --check-config said OK
// to each, and a start failed with "unknown store URI" (exit 2) or
// "connect: connection lost: invalid connection option" (exit 1). The
// message never shows the password.
// A flag's environment variable takes true or false only, as in the config
// file: CLI11 alone read "", "yes" or "1" as set, so an empty
// TREATY_INSECURE allowed a public listener without authentication.
TEST_F(DeployTest, FlagEnvironmentVariablesTakeTrueOrFalseOnly) {
  const std::string treatyd = BinaryPath("treatyd");
  const std::string store = "--store=sqlite:" + dir_ + "/flags.db";
  int run = 0;
  for (const char* name : {"TREATY_INSECURE", "TREATY_METRICS_OPEN"}) {
    for (const char* value : {"", "yes", "1", "on", "TRUE", " true"}) {
      setenv(name, value, 1);
      RunResult r = RunBinary(dir_, "flagenv" + std::to_string(++run),
                              {treatyd, store, "--http=0.0.0.0:0", "--check-config"});
      unsetenv(name);
      EXPECT_EQ(r.code, 2) << name << "='" << value << "': " << r.output;
      // " true" CLI11 refuses itself ("Could not convert"), before this check.
      if (std::string(value) != " true") {
        EXPECT_NE(r.output.find(std::string(name) + " must be true or false"), std::string::npos)
            << r.output;
      }
    }
  }
  // true is taken (a public listener then needs --insecure: here it has it).
  setenv("TREATY_INSECURE", "true", 1);
  RunResult ok = RunBinary(dir_, "flagenv-true",
                           {treatyd, store, "--http=0.0.0.0:0", "--thrift=off", "--check-config"});
  unsetenv("TREATY_INSECURE");
  EXPECT_EQ(ok.code, 0) << ok.output;
  // false is taken too: without --insecure the public listener is refused.
  setenv("TREATY_INSECURE", "false", 1);
  RunResult refused =
      RunBinary(dir_, "flagenv-false",
                {treatyd, store, "--http=0.0.0.0:0", "--thrift=off", "--check-config"});
  unsetenv("TREATY_INSECURE");
  EXPECT_EQ(refused.code, 2) << refused.output;
  EXPECT_EQ(refused.output.find("must be true or false"), std::string::npos) << refused.output;
  // Commands that take neither flag are not refused for them.
  setenv("TREATY_INSECURE", "1", 1);
  RunResult version = RunBinary(dir_, "flagenv-version", {treatyd, "--version"});
  RunResult migrate = RunBinary(dir_, "flagenv-migrate", {treatyd, "migrate", store});
  unsetenv("TREATY_INSECURE");
  EXPECT_EQ(version.code, 0) << version.output;
  EXPECT_EQ(migrate.code, 0) << migrate.output;
}

TEST_F(DeployTest, CheckConfigAndStartAgreeOnTheStoreUri) {
  const std::string treatyd = BinaryPath("treatyd");
  struct Case {
    std::string store;
    std::string named;  // text the refusal must contain
  };
  const std::vector<Case> cases = {
      {"mysql://u:hunter2@x/db", "unknown kind of store 'mysql:'"},
      {"", "store URI: empty"},
      {"sqlite:", "sqlite: needs a PATH"},
      {"host=127.0.0.1 bogus=1", "invalid connection option \"bogus\""},
      {"postgresql://u:hunter2@h:badport/db", "port 'badport' is not a number 1..65535"},
      {"postgresql://u:hunter2@h:70000/db", "port '70000'"},
      {"postgresql://u:hunter2@h/db?bogus=1", "invalid URI query parameter: \"bogus\""},
      {"postgresql://u:hunter2%zz@h/db", "invalid percent-encoded token"},
      {"postgres://u:hunter2@[::1/db", "IPv6 host address"},
      {"host=h password=hunter2 sslmode=sometimes", "sslmode 'sometimes' is not one of"},
      {"host=h password=hun ter2", "missing \"=\" after (not shown)"},
      {"host=h connect_timeout=soon", "connect_timeout 'soon' is not an integer"},
      {"host=h1,h2 port=1,2,3", "3 ports for 2 hosts"},
  };
  // Given in the file (as under systemd), so that "" is a value too.
  const std::string conf = dir_ + "/store.conf";
  int run = 0;  // each run its own output file: the outputs of one name add up
  for (const Case& c : cases) {
    WriteFile(conf, "store = '" + c.store + "'\n");
    for (const char* mode : {"--check-config", "--thrift=off"}) {
      RunResult r = RunBinary(dir_, "store" + std::to_string(++run),
                              {treatyd, "--config", conf, "--http=127.0.0.1:0", mode});
      EXPECT_EQ(r.code, 2) << mode << " " << c.store << ": " << r.output;
      EXPECT_NE(r.output.find(c.named), std::string::npos) << c.store << ": " << r.output;
      EXPECT_EQ(r.output.find("hunter2"), std::string::npos) << r.output;
      EXPECT_EQ(r.output.find("ter2"), std::string::npos) << r.output;
      EXPECT_EQ(r.output.find("connection lost"), std::string::npos) << r.output;
      EXPECT_EQ(r.output.find("configuration OK"), std::string::npos) << r.output;
    }
    RunResult migrate =
        RunBinary(dir_, "migrate" + std::to_string(++run), {treatyd, "migrate", "--config", conf});
    EXPECT_EQ(migrate.code, 2) << c.store << ": " << migrate.output;
  }
  // And on the command line.
  RunResult cli = RunBinary(dir_, "cli", {treatyd, "--store", "mysql://x", "--check-config"});
  EXPECT_EQ(cli.code, 2) << cli.output;
  EXPECT_NE(cli.output.find("unknown kind of store 'mysql:'"), std::string::npos) << cli.output;

  // A well-formed URI of a server that is not there passes the check; the
  // start fails to connect: Unavailable, exit 1.
  const std::string down = "postgresql://treaty@127.0.0.1:1/treaty?connect_timeout=2";
  RunResult check = RunBinary(dir_, "down-check", {treatyd, "--store=" + down, "--check-config"});
  EXPECT_EQ(check.code, 0) << check.output;
  RunResult start = RunBinary(dir_, "down-start",
                              {treatyd, "--store=" + down, "--http=127.0.0.1:0", "--thrift=off"});
  EXPECT_EQ(start.code, 1) << start.output;
  EXPECT_NE(start.output.find("Unavailable"), std::string::npos) << start.output;
}

TEST_F(DeployTest, AdvertisedAddressIsWhatTheClusterShows) {
  TreatydOptions o = Options("adv");
  o.extra = {"--advertise-http", "treaty-a.example:7999"};
  TreatydProcess a(dir_, "adv", o);
  ASSERT_TRUE(a.Start().ok()) << a.Log();
  json rows = Cluster(a);
  ASSERT_EQ(rows.size(), 1u) << rows;
  EXPECT_EQ(rows[0].value("http", ""), "treaty-a.example:7999") << rows;
  EXPECT_EQ(rows[0].value("thrift", "").rfind("127.0.0.1:", 0), 0u) << rows;
  a.proc().Signal(SIGTERM);
  EXPECT_EQ(a.proc().Wait(20000), 0) << a.Log();

  // A wildcard listener is shown with the host name, never 0.0.0.0.
  const std::string host = HostName();
  ASSERT_FALSE(host.empty());
  TreatydOptions w = Options("wild");
  w.listen_host = "0.0.0.0";
  w.thrift = "0.0.0.0:0";
  w.extra = {"--insecure"};
  TreatydProcess b(dir_, "wild", w);
  ASSERT_TRUE(b.Start().ok()) << b.Log();
  rows = Cluster(b);
  ASSERT_EQ(rows.size(), 1u) << rows;
  EXPECT_EQ(rows[0].value("http", ""), host + ":" + std::to_string(b.port())) << rows;
  EXPECT_EQ(rows[0].value("thrift", "").rfind(host + ":", 0), 0u) << rows;
  EXPECT_EQ(rows.dump().find("0.0.0.0"), std::string::npos) << rows;
  EXPECT_EQ(b.http_addr(), rows[0].value("http", ""));
  EXPECT_FALSE(b.CoordinatorId().empty());

  // Bad values: a usage error naming the option; from the environment too.
  const std::string treatyd = BinaryPath("treatyd");
  for (const char* bad : {"0.0.0.0:7480", "treaty-a.example", "http://x:1", "[::]:1", "a:99999"}) {
    RunResult r = RunBinary(dir_, "bad", {treatyd, "--advertise-http", bad, "--check-config"});
    EXPECT_EQ(r.code, 2) << bad << ": " << r.output;
    EXPECT_NE(r.output.find("--advertise-http"), std::string::npos) << bad << ": " << r.output;
  }
  setenv("TREATY_ADVERTISE_HTTP", "no-port", 1);
  RunResult env = RunBinary(dir_, "env", {treatyd, "--check-config"});
  unsetenv("TREATY_ADVERTISE_HTTP");
  EXPECT_EQ(env.code, 2) << env.output;
  EXPECT_NE(env.output.find("--advertise-http"), std::string::npos) << env.output;
}

// A unix datagram socket standing in for systemd's NOTIFY_SOCKET.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    bound_ = fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~NotifySocket() {
    if (fd_ >= 0) close(fd_);
    unlink(path_.c_str());
  }
  bool bound() const { return bound_; }
  // The next message, or "" after timeout_ms.
  std::string Next(int timeout_ms) {
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[4096];
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
};

TEST_F(DeployTest, SystemdReadinessAndStopping) {
  NotifySocket notify(dir_ + "/notify.sock");
  ASSERT_TRUE(notify.bound()) << dir_;
  setenv("NOTIFY_SOCKET", (dir_ + "/notify.sock").c_str(), 1);
  Subprocess proc({BinaryPath("treatyd"), "--store", "sqlite:" + dir_ + "/n.db", "--http",
                   "127.0.0.1:0", "--thrift", "127.0.0.1:0", "--drain-timeout-ms", "2000"},
                  dir_ + "/notify.log");
  const Status started = proc.Start();
  unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(started.ok()) << started.ToString();

  // READY=1 names the URL (the port was 0: nothing could have polled it
  // before); it must answer at once.
  const std::string ready = notify.Next(20000);
  ASSERT_EQ(ready.rfind("READY=1\n", 0), 0u) << ready << proc.Log();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(ready, m, std::regex(R"(STATUS=serving (http://\S+) as )")))
      << ready;
  auto health = HttpFetch("GET", m[1].str() + "/healthz", "", {}, 2000);
  ASSERT_TRUE(health.ok()) << health.status().ToString();
  EXPECT_EQ(health->status, 200);

  proc.Signal(SIGHUP);
  EXPECT_EQ(notify.Next(10000), "RELOADING=1");
  EXPECT_EQ(notify.Next(10000), "READY=1");

  proc.Signal(SIGTERM);
  const std::string stopping = notify.Next(10000);
  EXPECT_EQ(stopping.rfind("STOPPING=1\n", 0), 0u) << stopping;
  EXPECT_NE(stopping.find("EXTEND_TIMEOUT_USEC=32000000"), std::string::npos) << stopping;
  EXPECT_EQ(proc.Wait(20000), 0) << proc.Log();
  EXPECT_EQ(notify.Next(200), "") << "nothing after STOPPING";
}

TEST_F(DeployTest, SystemdNotReadyWhenStartFails) {
  NotifySocket notify(dir_ + "/notify.sock");
  ASSERT_TRUE(notify.bound()) << dir_;
  setenv("NOTIFY_SOCKET", (dir_ + "/notify.sock").c_str(), 1);
  // A directory where the SQLite file should be: the store cannot open.
  Subprocess proc({BinaryPath("treatyd"), "--store", "sqlite:" + dir_, "--http", "127.0.0.1:0",
                   "--thrift", "off"},
                  dir_ + "/fail.log");
  const Status started = proc.Start();
  unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(started.ok()) << started.ToString();
  EXPECT_EQ(proc.Wait(20000), 1) << proc.Log();
  const std::string status = notify.Next(1000);
  EXPECT_EQ(status.rfind("STATUS=cannot start: ", 0), 0u) << status;
  EXPECT_EQ(status.find("READY=1"), std::string::npos) << status;
}

// `systemd-analyze verify` of deploy/systemd/treatyd.service (ExecStart
// pointed at the built binary), when the tool works on this machine.
TEST_F(DeployTest, UnitFileVerifies) {
  if (access("/usr/bin/systemd-analyze", X_OK) != 0) GTEST_SKIP() << "no systemd-analyze";
  WriteFile(dir_ + "/probe.service", "[Service]\nExecStart=/bin/true\n");
  RunResult probe = RunBinary(
      dir_, "probe", {"/usr/bin/systemd-analyze", "verify", "--man=no", dir_ + "/probe.service"});
  if (probe.code != 0 || !probe.output.empty()) {
    GTEST_SKIP() << "systemd-analyze verify does not work here: " << probe.output;
  }
  std::string unit = ReadFile(SourceDir() + "/deploy/systemd/treatyd.service");
  ASSERT_NE(unit.find("Type=notify\n"), std::string::npos);
  ASSERT_NE(unit.find("ExecStart=/usr/bin/treatyd --config /etc/treaty/treatyd.conf\n"),
            std::string::npos);
  unit = std::regex_replace(unit, std::regex("/usr/bin/treatyd"), BinaryPath("treatyd"));
  WriteFile(dir_ + "/treatyd.service", unit);
  RunResult r =
      RunBinary(dir_, "verify",
                {"/usr/bin/systemd-analyze", "verify", "--man=no", dir_ + "/treatyd.service"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, "") << "systemd warns about the unit";
  // TimeoutStopSec must exceed the default drain timeout (10 s).
  std::smatch m;
  ASSERT_TRUE(std::regex_search(unit, m, std::regex(R"(\nTimeoutStopSec=(\d+)\n)")));
  EXPECT_GT(std::stoi(m[1]), 10);
}

}  // namespace
}  // namespace treaty::testing
